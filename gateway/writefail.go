package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
)

// A failing outbox (the disk full or failing: bbolt's write or fsync
// refused) loses nothing the gateway can keep. The events of the failed
// commits (alarm transitions, operator commands with their user and
// comment: the audit trail) wait in unsentEvents, in order, and are
// committed first, in parts of their own, by whatever comes next (a tick's
// retry, a poll's alarm, a command); the states of their alarms follow
// (unsentStates, with the seq of each alarm's latest event, unsentSeq;
// resendAlarms). Readings of a
// failed commit are lost; the log and canary_outbox_append_errors_total
// count them. While commits fail the site's alarm outbox.write_failed
// (configs.WriteFailedAlarm, priority 1) stands: nothing new reaches the
// control room, and the local UI and API say why. Its own transitions
// wait with the rest and are delivered when the disk takes them.

// writeCalm is how long without a failed commit, after a commit that
// succeeded with nothing left waiting, before the write-failed alarm
// returns: a disk that fails one commit in three must not make it chatter.
const writeCalm = 10 * time.Second

// maxUnsentEvents bounds the events kept for a failing outbox: about 10 MB.
// Past it the oldest go (counted in canary_events_lost_total and logged):
// the alarms themselves are not lost, their current states are sent again
// (unsentStates), only the record of transitions from a failure that has lasted
// through 50 000 of them.
const maxUnsentEvents = 50_000

// diskFailLogEvery bounds the log lines of failed commits (and failed
// alarm-state snapshots): on a dead disk every tick's retry, every
// readings commit and every snapshot fails, five a second or more, into a
// journal that is likely on the same disk. The first of a spell is
// logged at once, then at most one line per period, with how many were
// not logged; canary_outbox_append_errors_total counts them all.
const diskFailLogEvery = 10 * time.Second

// diskFailPace is the state of that bound; failures come from the core
// and from the outbox's commit goroutine (asynchronous readings commits).
type diskFailPace struct {
	mu    sync.Mutex
	last  time.Time
	quiet int
}

// appendFailLog returns the error line for a failed commit, or nil (on
// which zerolog's methods do nothing) within diskFailLogEvery of the
// last line.
func (g *Gateway) diskFailLog() *zerolog.Event {
	l := &g.failLog
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < diskFailLogEvery {
		l.quiet++
		return nil
	}
	ev := g.log.Error()
	if l.quiet > 0 {
		ev = ev.Int("failures_not_logged", l.quiet)
	}
	l.last, l.quiet = now, 0
	return ev
}

// writeFailAlarm is the core's bookkeeping for the alarm.
type writeFailAlarm struct {
	started bool      // the engine's restored state was read
	on      bool      // raised (or restored active) and not yet returned
	fails   uint64    // Gateway.appendFails at the tick that saw the last failure
	oks     uint64    // Gateway.appendOKs at the tick that saw the last failure
	spell   uint64    // Gateway.appendFails when the alarm was raised
	last    time.Time // the tick that last saw a failure
	lost    uint64    // events dropped past maxUnsentEvents, logged at the tick
}

// noteAppend counts an outbox commit's outcome, every one, here only
// (canary_outbox_append_errors_total too). A closed outbox is the gateway
// stopping, not the disk.
func (g *Gateway) noteAppend(err error) {
	switch {
	case err == nil:
		g.appendOKs.Add(1)
	case !errors.Is(err, outbox.ErrClosed):
		g.appendFails.Add(1)
		g.met.appendErrors.Inc()
	}
}

// keepUnsent keeps the events of a failed commit for the next one.
func (g *Gateway) keepUnsent(evs []alerting.Event) {
	g.unsentEvents = append(g.unsentEvents, evs...)
	over := len(g.unsentEvents) - maxUnsentEvents
	if over <= 0 {
		return
	}
	// The oldest go, operators' actions (the events with a user: ack,
	// shelve, reset, …) last: the record of who did what is what a
	// failure this long must keep longest; the engine's own transitions
	// have their alarms' states sent anyway.
	kept, dropped := g.unsentEvents[:0], 0
	for _, ev := range g.unsentEvents {
		if dropped < over && ev.User == "" {
			dropped++
			continue
		}
		kept = append(kept, ev)
	}
	if rest := len(kept) - maxUnsentEvents; rest > 0 {
		kept = append(kept[:0], kept[rest:]...)
		dropped += rest
	}
	clear(g.unsentEvents[len(kept):]) // their strings are let go
	g.unsentEvents = kept
	g.writeFail.lost += uint64(dropped)
	g.met.eventsLost.Add(float64(dropped))
}

// flushUnsentEvents commits the events waiting from failed commits, in
// order, in commits of at most maxCommitEvents (as a flood's parts), each
// durable before the next: a backlog of a long failure is never one huge
// transaction, and what a commit took leaves the backlog at once. The seq
// of each alarm's latest event goes to unsentSeq, for its state (however
// much later resendAlarms sends it). It stops at the first commit that
// fails and returns its error.
func (g *Gateway) flushUnsentEvents(ctx context.Context) error {
	if len(g.unsentEvents) == 0 {
		return nil
	}
	total := len(g.unsentEvents)
	for len(g.unsentEvents) > 0 {
		part := g.unsentEvents[:min(len(g.unsentEvents), maxCommitEvents)]
		items := make([]outbox.Item, len(part))
		for i := range part {
			ev := &part[i]
			items[i] = mqtt.EventItem(func(dst []byte, seq uint64) []byte {
				if ev.Alarm != "" {
					g.unsentSeq[ev.Alarm] = seq
				}
				e := *ev
				e.Seq = seq
				return e.AppendJSON(dst)
			})
		}
		if _, err := g.appendAll(ctx, items); err != nil {
			return err
		}
		g.unsentEvents = g.unsentEvents[len(part):]
	}
	g.unsentEvents = nil // the array of a long failure is let go
	g.log.Info().Int("events", total).Msg("outbox commits again: the alarm events that waited are committed")
	return nil
}

// judgeWrites raises or returns the write-failed alarm; on the core
// goroutine, at its tick.
func (g *Gateway) judgeWrites(ctx context.Context, now time.Time) {
	w := &g.writeFail
	if w.lost > 0 {
		g.log.Error().Uint64("events", w.lost).Int("kept", len(g.unsentEvents)).
			Msg("outbox failing: oldest alarm events dropped from memory; the alarms' current states are kept and sent")
		w.lost = 0
	}
	if !w.started {
		// Restored active from before a restart: it returns once a commit
		// has succeeded and a calm has passed, unless failures go on.
		w.started = true
		if st, ok := g.eng.Alarm(configs.WriteFailedAlarm); ok && st.Active {
			w.on, w.last = true, now
		}
	}
	fails, oks := g.appendFails.Load(), g.appendOKs.Load()
	var active bool
	switch {
	case fails != w.fails:
		if !w.on {
			w.on, w.spell = true, w.fails
		}
		w.fails, w.oks, w.last = fails, oks, now
		active = true
	case w.on && oks != w.oks && len(g.unsentEvents) == 0 && len(g.unsent) == 0 && len(g.unsentStates) == 0 && now.Sub(w.last) >= writeCalm:
		// A commit succeeded since the tick that saw the last failure,
		// and nothing waits any more.
		w.on = false
	default:
		return
	}
	evs, err := g.eng.SetSystem(now, configs.WriteFailedAlarm, active, float64(fails-w.spell))
	if err != nil {
		g.log.Error().Err(err).Msg("write-failed alarm")
		return
	}
	if len(evs) > 0 {
		g.flush(ctx, evs)
	}
}
