package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
)

// cmdReq is an operator command on its way into the core.
type cmdReq struct {
	cmd  command.Command
	done chan error
}

// core is the one goroutine that owns the alarm engine. ctx only tells it
// to leave the loop: everything it commits is committed with a context that
// is never cancelled, so that a transition the engine made is never lost to
// a shutdown racing the outbox.
func (g *Gateway) core(ctx context.Context) error {
	// The core wakes for time-driven work only when some is due (see
	// nextTick), on multiples of TickEvery, as the pollers start on
	// multiples of their period and the publisher works on the same grid,
	// so that the process wakes once for all of them: on an edge box each
	// wake-up costs more than the work it does.
	now := time.Now()
	g.tickedAt = now
	tick := newWakeTimer(now, g.nextTick(now))
	defer tick.stop()
	work := context.WithoutCancel(ctx)
	for {
		if stop, err := g.turn(ctx, work, tick); stop {
			return err
		}
	}
}

// turn is one turn of the core's loop: it waits for the next event and
// handles it. stop reports that ctx ended, err what draining returned.
func (g *Gateway) turn(ctx, work context.Context, tick *wakeTimer) (stop bool, err error) {
	// Leaving has priority over work that is ready at the same time.
	select {
	case <-ctx.Done():
		return true, g.drain(work)
	default:
	}
	select {
	case <-ctx.Done():
		return true, g.drain(work)
	case b := <-g.batches:
		group := g.takeQueued(b)
		if g.tickIfDue(work, tick, group) {
			return false, nil
		}
		g.onBatches(work, group)
	case c := <-g.cmds:
		g.ticksIfDue(work, tick)
		c.done <- g.onCommand(work, c.cmd)
	case r := <-g.actDone:
		g.ticksIfDue(work, tick)
		g.onActionResult(work, r)
	case <-tick.t.C:
		g.runTick(work, tick, g.takeRest(nil))
		return false, nil
	}
	// Any other event may have made work due sooner (a delay started,
	// readings waiting, an action to retry) or later (waiting readings
	// committed at the end of their burst: without moving the timer back,
	// the core woke at their deadline for nothing, a second wake-up every
	// second).
	now := time.Now()
	tick.move(now, g.nextTick(now))
	return false, nil
}

// tickIfDue runs the tick that fell due before an event select took (it
// picks at random among ready cases, or the timer has yet to fire), with
// the polls queued (group, taken before the clock is read), and reports
// whether it did. An event handled before a due tick could hide what the
// tick would have raised: a late poll answer a comm alarm, a late action
// result its confirmation failure, a shelve an expired on-delay.
func (g *Gateway) tickIfDue(ctx context.Context, tick *wakeTimer, group []modbus.Batch) bool {
	if time.Now().Before(tick.at) {
		return false
	}
	g.runTick(ctx, tick, g.takeRest(group))
	return true
}

// ticksIfDue runs, before a command or an action result, the tick that
// fell due and, catching up, those after it due by now (runTickOr): the
// event is then handled after the polls in hand, on the engine's clock.
// Handled between two replayed ticks, it moved the engine's clock to now,
// and the next tick was judged at now before the polls carried to it were
// evaluated: comm alarms raised and cleared for devices whose answers were
// in hand. Ticks falling due while it catches up may leave polls carried
// again: a few more rounds, not more (maxEventCatchUps), so that the event
// waits at most that long.
func (g *Gateway) ticksIfDue(ctx context.Context, tick *wakeTimer) {
	for range maxEventCatchUps {
		if time.Now().Before(tick.at) {
			return
		}
		g.runTickOr(ctx, tick, g.takeRest(nil), true)
		if len(g.carry) == 0 {
			return
		}
	}
}

// maxEventCatchUps bounds the catch-ups an event waits for (ticksIfDue).
const maxEventCatchUps = 3

// runTick runs the tick the timer was armed for, with the polls queued, and
// arms the timer for the next. A fire not received yet is discarded by
// the re-arming (Go >= 1.23): its tick ran.
//
// A core far behind (a full queue, a long tick) may find that the next
// tick an idle core would have run after this one is already due. The
// polls read after this tick then wait (carry) for that tick, and the
// timer is armed for its own time, past, so it fires at once: those polls
// are judged against it as an idle core would have judged them. Evaluated
// at once, an answer read after a tick that fell due meanwhile hid the
// comm alarm (or the expired on-delay) that tick raises, and the core
// went back to the grid after now, skipping it. Between the two ticks the
// core goes back to its select, where commands and shutdown are served.
//
// A core further behind than that (see replays) catches up instead: it
// runs in this call every tick due by the time it took the queue, each
// after the polls read before it (catchUp), then goes on as above from
// the last of them. Replaying one
// tick per turn of its loop, a core slower than the clock fell further
// behind at every tick, and the polls it held waited longer and longer:
// past the ceiling their age, the alarm latency, grew to 51 s in two
// minutes (docs/performance-history.md, item 43).
func (g *Gateway) runTick(ctx context.Context, tick *wakeTimer, queued []modbus.Batch) {
	g.runTickOr(ctx, tick, queued, false)
}

// runTickOr is runTick; with catchUp set it catches up whenever later
// polls wait for a tick that is due (ticksIfDue).
func (g *Gateway) runTickOr(ctx context.Context, tick *wakeTimer, queued []modbus.Batch, catchUp bool) {
	if len(g.carry) > 0 {
		// Taken from the queue before these, so read before them (about).
		// queued is never g.carry's own buffer (takeQueued and takeRest
		// fill g.group's), or the clear below would drop carried polls.
		merged := append(g.carry, queued...)
		clear(queued) // copied: the group's buffer keeps no readings alive
		queued, g.carry = merged, merged
	}
	due := tick.at
	later := g.onTimer(ctx, due, queued)
	g.carry = g.carry[:0]
	if len(later) > 0 {
		// As an idle core would have armed its timer after this tick.
		next := due.Add(g.nextTick(due))
		if !next.After(time.Now()) && (catchUp || !g.replays(next, len(later))) {
			later, due = g.catchUp(ctx, due, later)
			next = due.Add(g.nextTick(due))
		}
		if !next.After(time.Now()) {
			g.carry = append(g.carry, later...)
			clear(later)
			now := time.Now()
			tick.set(now, next.Sub(now))
			return
		}
		g.evaluateInGroups(ctx, later)
		clear(later) // drop the readings
	}
	// From the clock, not the fire time: a core that was busy goes back
	// to the grid instead of ticking twice.
	now := time.Now()
	tick.set(now, g.nextTick(now))
}

// replays reports whether the core carries later polls to the tick due at
// next, an idle core's next tick, which is already due: while next is at
// most maxReplay behind the clock and they fit in the carry, a queue's
// worth and the polls that were under way when the tick took the queue
// (takeRest). Otherwise it catches up (runTick). The polls it holds are
// thus bounded in number (the carry, what a tick takes, the queue and the
// blocked pollers), and the ticks it has yet to run in time.
func (g *Gateway) replays(next time.Time, later int) bool {
	return time.Since(next) <= maxReplay && later <= g.carryCap
}

// maxReplay bounds how far behind the clock the core replays its ticks
// one per turn of its loop (replays).
const maxReplay = 2 * time.Second

// catchUp runs, after the tick due at due, every tick an idle core would
// have run by the time the polls in hand were taken from the queue
// (takenAt), each after those of later read before it, as runTick over as
// many turns would have, but without going back to the loop between them:
// the polls in hand are judged exactly, and the core's ticks catch up
// with the clock, whatever its lag. It returns the polls read after the
// last tick it ran, and that tick's time; the ticks due after it, which
// fell due while the polls were evaluated, run as runTick's do, with
// those polls carried to the first. Counted and logged (caughtUp).
func (g *Gateway) catchUp(ctx context.Context, due time.Time, later []modbus.Batch) ([]modbus.Batch, time.Time) {
	g.caughtUp(due, len(later))
	// onTimer returns its late polls in g.late: the polls it judges are in
	// a buffer of their own.
	polls := append(g.caught[:0], later...)
	clear(later)
	for len(polls) > 0 {
		next := due.Add(g.nextTick(due))
		if next.After(g.takenAt) {
			break
		}
		rest := g.onTimer(ctx, next, polls) // evaluates and clears polls
		polls = append(polls[:0], rest...)
		clear(rest)
		due = next
	}
	g.caught = polls[:0]
	return polls, due
}

// caughtUp counts a catch-up (runTick) and warns of it, one line per 10 s
// while they last.
func (g *Gateway) caughtUp(due time.Time, polls int) {
	g.met.catchups.Inc()
	g.catchups++
	g.catchupUnlogged++
	if now := time.Now(); now.Sub(g.catchupLogged) >= shedLogEvery {
		g.log.Warn().Dur("behind", now.Sub(due)).Int("polls", polls).Uint64("catchups", g.catchupUnlogged).
			Msg("core behind: caught up with the clock, its ticks run back to back")
		g.catchupLogged, g.catchupUnlogged = now, 0
	}
}

// onTimer is the core's work for the tick due at due, with the polls that
// were queued when it was taken. They are judged as a core that was idle
// at due would have judged them: those read by then are evaluated before
// the tick, and those read later are returned, for after it (runTick), in
// a buffer the next call reuses. A busy core that took the tick before
// queued polls (select picks at random among ready cases) judged their
// devices by the readings before them: a comm alarm for a device whose
// answer was in hand, cleared by the next group (under load, a flood of
// the gateway's own making: docs/performance-history.md, item 38). One that took
// every queued poll first erred the other way: a late answer hid the comm
// alarm (or the expired on-delay) that fell due before it. The tick runs
// at due, so what it raises carries the time it fell due.
func (g *Gateway) onTimer(ctx context.Context, due time.Time, queued []modbus.Batch) []modbus.Batch {
	late := g.late[:0]
	early := queued[:0]
	for _, b := range queued {
		if !b.At.IsZero() && !b.At.After(due) {
			early = append(early, b)
		} else {
			late = append(late, b)
		}
	}
	clear(queued[len(early):]) // moved to late
	g.late = late
	g.evaluateInGroups(ctx, early)
	g.onTick(ctx, due)
	return late
}

// onTick is the core's time-driven work: the engine's timers, failed
// actions, alarm states to send again and the alarm snapshot.
func (g *Gateway) onTick(ctx context.Context, now time.Time) {
	g.tickedAt = now
	g.judgeOverload(ctx, now)
	g.releaseHeld(ctx, now)
	// The readings waiting since the last commit share this one.
	g.flush(ctx, g.eng.Tick(now))
	g.judgeDrops(ctx, now)
	g.met.faultHeld.Set(float64(g.eng.Held()))
	g.retryActions(now)
	g.resendAlarms(ctx)
	g.judgeWrites(ctx, now)
	if g.eng.Unsaved() {
		g.stateDirty = true // an alarm held, or no longer (snapshot's "held")
	}
	for _, st := range g.eng.HeldChanged() {
		g.view.setAlarm(g.http, st) // its row shows it held, or no longer
	}
	if g.stateDirty && now.Sub(g.persistedAt) >= g.snapshotGap() {
		g.persistNow(now)
	}
}

// wakeTimer is the core's timer for time-driven work. After a tick it is
// set afresh; after any other event it is moved to when work is next due,
// unless it has fired: since Go 1.23 Reset discards a fire nobody received,
// so moving a fired timer would throw away a tick that is due, and a core
// kept busy by polls would push its tick back again and again and starve
// every timer of the engine. nextTick never recedes as time passes (its
// times are the engine's timers, the last tick plus maxIdle and the
// waiting readings' deadline), so moving an unfired timer later cannot
// starve anything either.
type wakeTimer struct {
	t  *time.Timer
	at time.Time // when t fires (or fired)
}

func newWakeTimer(now time.Time, d time.Duration) *wakeTimer {
	return &wakeTimer{t: time.NewTimer(d), at: now.Add(d)}
}

// set arms the timer d after now; only after its fire was received or its
// tick ran (tickIfDue). A fresh timer, as in move: one that fell due but
// has not run is still in the runtime's heap, and resetting it would leave
// its new time noted for a wake-up even after a later move.
func (w *wakeTimer) set(now time.Time, d time.Duration) {
	w.t.Stop()
	w.t = time.NewTimer(d)
	w.at = now.Add(d)
}

// move re-arms the timer for d after now, earlier or later. A timer that
// has fired or is due (at is not after now) is left alone: its fire waits
// for the core. Timers never fire early, so one whose time has not come has
// not fired.
//
// The timer is replaced, not reset: the Go runtime keeps a timer that the
// core waited on in its heap at the time it had then, and one reset to a
// later time wakes the process at that old time for nothing; one reset to
// an earlier time does too once moved back, as the runtime notes the
// earliest time a timer was reset to until that time has come. The
// core's timer went to the deadline of a burst's waiting readings, half a
// second on, and back to the next second once the burst was committed:
// every second the process woke at x.500, and the runtime's monitor
// thread then polled every 20 µs through the next burst instead of every
// 10 ms (docs/performance-history.md, item 45). A stopped timer stays in the heap
// too, but the runtime takes it out when another is added while it is the
// next due, as the fresh one is when the core next waits on it (on the
// same scheduler thread: with canary run's GOMAXPROCS=1, always).
func (w *wakeTimer) move(now time.Time, d time.Duration) {
	at := now.Add(d)
	// now was read before nextTick ran: look at the clock again, so that
	// a timer that fell due meanwhile is not reset (it would fire again at
	// once for the same grid time, but the rule stays literal). A time
	// within sameTime of the one armed is the same grid time: two readings
	// of the clock need not have the same offset between wall and monotonic
	// time, and the timer was re-armed after every poll of a burst for the
	// same grid time, a few ns apart. (Compared on the wall clock, a
	// forward step of the clock could pass a time a step earlier for the
	// one armed, and leave the tick that late.)
	if !now.Before(w.at) || (at.Sub(w.at) > -sameTime && at.Sub(w.at) < sameTime) || !time.Now().Before(w.at) {
		return
	}
	w.t.Stop()
	w.t = time.NewTimer(time.Until(at))
	w.at = at
}

// sameTime: two times of the core's timer this close are one grid time.
const sameTime = time.Millisecond

// stop stops the timer (the core is leaving).
func (w *wakeTimer) stop() { w.t.Stop() }

// maxIdle bounds the time between two of the core's ticks when nothing is
// due: the engine's Tick runs at least about once a second (a comm alarm's
// value, the age, is taken at Tick). A burst of polls that ends at least a
// grid step (TickEvery, at most maxIdle/2) after the last tick ticks at its
// end (onBatches): the process is awake then anyway. (Half a second, as it
// was, let a tick at x.750, a grid step before bursts at x.000, stay there
// for good: no burst ended half a second after it, and the core woke at
// x.750 every second for the bound alone; docs/performance-history.md, item 45.)
// That tick counts from the grid time before it, so a site polled every
// second arms the core's timer for its next polls' time and never wakes
// for the tick alone. Counted from the burst's end instead, the timer was
// armed for a TickEvery after the next polls, and
// moved on by their burst before it fired: but the Go runtime still wakes
// at a timer's old time when it is moved later (or stopped), so the
// process woke a quarter second after every burst for nothing
// (docs/performance-history.md, item 37).
const maxIdle = time.Second

// nextTick returns how long the core may sleep: until the engine's next
// timer (Engine.NextDue), the deadline of waiting readings, a failed
// action's retry, an alarm state to send again or the alarm snapshot, at
// most maxIdle after the last tick, rounded up to the TickEvery grid. A
// 1 000-reading site polled every second thus wakes once a second for
// everything: its polls, and the tick at their end (it woke four times,
// once per 250 ms tick, and later twice, for the polls and for a tick
// maxIdle after the last); a Tick that NextDue skips would have found
// nothing to do (the engine's tests check that against a Tick every time).
func (g *Gateway) nextTick(now time.Time) time.Duration {
	// The idle bound is counted on the wall clock: tickedAt is a grid time
	// by its wall reading, and the bound counted on the monotonic clock
	// lands a few ns off the grid (the two clocks are read apart), a whole
	// TickEvery late when past it. Capped at maxIdle, so that a wall clock
	// stepped back cannot put the next tick off.
	idle := min(maxIdle, g.tickedAt.Round(0).Add(maxIdle).Sub(now.Round(0)))
	d := min(g.eng.NextDue(now), idle)
	if len(g.pending) > 0 {
		d = min(d, g.pendingSince.Add(g.o.TickEvery).Sub(now))
	}
	if len(g.unsent) > 0 || len(g.unsentStates) > 0 || len(g.unsentEvents) > 0 {
		d = 0
	}
	for _, at := range g.actRetry {
		d = min(d, at.Sub(now))
	}
	if g.stateDirty {
		d = min(d, g.persistedAt.Add(g.snapshotGap()).Sub(now))
	}
	if g.releasing() {
		d = 0 // the next grid time: held alarms are released each tick
	}
	next := untilGrid(now, max(d, 0), g.o.TickEvery)
	if g.neededDirty {
		// Not on the grid: a latch, trip or release that came right
		// after a snapshot is saved neededGap after it, not up to a grid
		// step later (a crash in between re-tripped a released interlock
		// at the restart). Rare: a wake-up of its own is cheap.
		next = min(next, max(g.persistedAt.Add(g.neededGap()).Sub(now), 0))
	}
	return next
}

// snapshotGap is the gap the next snapshot waits for: neededGap while a
// change stateNeededNow wants saved is pending, else persistGap.
func (g *Gateway) snapshotGap() time.Duration {
	if g.neededDirty {
		return g.neededGap()
	}
	return g.persistGap()
}

// untilGrid is the time from now to the first multiple of grid at or after
// now+d, and strictly after now.
func untilGrid(now time.Time, d, grid time.Duration) time.Duration {
	at := now.Add(d).Round(0)
	next := at.Truncate(grid)
	if next.Before(at) {
		next = next.Add(grid)
	}
	if !next.After(now.Round(0)) {
		next = next.Add(grid)
	}
	return next.Sub(now.Round(0))
}

// drain commits what the pollers handed over before they stopped, and
// waits for it: the publisher's last round comes after.
func (g *Gateway) drain(ctx context.Context) error {
	g.stopping = true
	// Polls carried to a tick that is due (runTick) come before the queue.
	g.evaluateInGroups(ctx, g.carry)
	g.carry = g.carry[:0]
	for {
		select {
		case b := <-g.batches:
			g.onBatches(ctx, g.takeQueued(b))
		default:
			g.flush(ctx, nil)
			// And for the asynchronous commits still queued.
			for range maxAsyncCommits {
				g.asyncSlots <- struct{}{}
			}
			for range maxAsyncCommits {
				<-g.asyncSlots
			}
			// A last try for what a failing disk kept back: once the
			// process ends it is gone.
			g.resendAlarms(ctx)
			clean := len(g.unsentEvents) == 0 && len(g.unsent) == 0 && len(g.unsentStates) == 0
			if !clean {
				// Not a clean stop: the next start publishes every
				// alarm's state again (resendAll), so the broker's
				// retained states are right; the events are lost.
				g.log.Error().Int("events", len(g.unsentEvents)).Int("alarms", len(g.unsent)+len(g.unsentStates)).
					Msg("stopping with alarm events and states the outbox would not take: the events are lost, the states are published again at the next start")
			}
			if err := g.persist(); err != nil {
				return err
			}
			if clean {
				g.markClean()
			}
			return nil
		}
	}
}

// persistEvery bounds how often the alarm state snapshot is written.
const persistEvery = 250 * time.Millisecond

// persistShare bounds the core's time spent writing snapshots to about
// 1/persistShare: the next snapshot waits persistShare times as long as
// the last one took, if that is longer than persistEvery, and at most
// persistMaxGap. A snapshot encodes every alarm that is not normal: in a
// flood of 60 000 alarms it took 40–60 ms, and written every 250 ms it
// cost a fifth of the core that the flood needed for its transitions. The
// transitions themselves are durable in the outbox at once; the snapshot
// only restores the engine after a restart.
const persistShare = 10

// persistMaxGap bounds the gap however slow the last snapshot was (an SD
// card's fsync can stall for seconds): latches, acks and shelves reach the
// snapshot within it.
const persistMaxGap = 2 * time.Second

// persistGap is how long after the last snapshot the next may be written.
func (g *Gateway) persistGap() time.Duration {
	return max(persistEvery, min(persistShare*g.persistTook, persistMaxGap))
}

// neededGap is persistGap for the changes a restart could not get back
// (stateNeededNow): not the 250 ms floor, which a latch right after a
// routine snapshot would wait out, only the share of the core a slow
// snapshot may take (and persistNeededMin, for a flood of such changes).
func (g *Gateway) neededGap() time.Duration {
	return max(persistNeededMin, min(persistShare*g.persistTook, persistMaxGap))
}

// persistNeededMin: see neededGap.
const persistNeededMin = 20 * time.Millisecond

// maxGroup bounds how many queued polls the core takes at once.
const maxGroup = 512

// maxPending bounds how many polls' readings wait for a shared outbox
// commit; they wait until their burst of polls is over (burstOver), and at
// most TickEvery (250 ms by default) rounded up to the TickEvery grid, so
// under 500 ms.
// It also bounds one commit's fsync, which an alarm arriving meanwhile
// waits for: at 10 000 sensors, commits of 64 polls instead of 512 took
// the alarm latency p99 from 6–11 ms to 4–6 ms (canary bench).
// A crash loses at most those readings, which never reached the outbox and
// so never got a seq (no hole); never an alarm, which is committed at once.
const maxPending = 64

// takeQueued returns b and every batch already waiting behind it (up to
// maxGroup). Devices polled on the same schedule answer together; one
// commit (one fsync) for all of them instead of one each keeps the core
// ahead of the pollers and the alarm latency at one commit.
func (g *Gateway) takeQueued(b modbus.Batch) []modbus.Batch {
	clear(g.group) // the last group's readings, not kept alive by the buffer
	return g.receive(append(g.group[:0], b), maxGroup-1)
}

// takeRest appends every poll queued now to group (nil: a group of its
// own), for a tick: onTimer judges them all by when they were read. Taken
// up to maxGroup only, the polls behind those were judged after the tick,
// and a core more than maxGroup polls behind raised comm alarms on
// devices whose answers were in its queue. It takes what is queued and
// what the pollers are handing over (a poller blocked on a full queue
// holds its answer until a place frees), no more, so pollers adding
// meanwhile cannot keep it going. The polls carried to the next tick are
// bounded by replays, not here: a tick that took nothing while the carry
// was full left answers read before it in the queue, and raised comm
// alarms for their devices.
func (g *Gateway) takeRest(group []modbus.Batch) []modbus.Batch {
	if group == nil {
		clear(g.group)
		group = g.group[:0]
	}
	polling := int(g.polling.Load())
	// Read before the blocked pollers hand over (which lowers polling).
	g.carryCap = cap(g.batches) + polling
	group = g.receive(group, len(g.batches)+polling)
	// Every poll read by now is in hand, or on its way from a poller that
	// is not blocked (catchUp).
	g.takenAt = time.Now()
	return group
}

// receive appends up to n polls waiting in the queue to group, without
// waiting, and keeps group's buffer for the next take.
func (g *Gateway) receive(group []modbus.Batch, n int) []modbus.Batch {
	for range n {
		select {
		case b := <-g.batches:
			group = append(group, b)
		default:
			g.group = group
			return group
		}
	}
	g.group = group
	return group
}

// evaluateInGroups evaluates polls maxGroup at a time, as they would have
// been taken from the queue: a commit stays bounded however far behind
// the core is.
func (g *Gateway) evaluateInGroups(ctx context.Context, polls []modbus.Batch) {
	for len(polls) > 0 {
		n := min(len(polls), maxGroup)
		g.evaluateGroup(ctx, polls[:n])
		clear(polls[:n]) // evaluated: the buffer does not keep the readings
		polls = polls[n:]
	}
}

// onBatches evaluates polls as they arrive. Their readings wait (until the
// next tick, at most maxPending polls) to share an outbox commit, one fsync, with
// the polls after them; a poll that raised or cleared an alarm is committed
// at once, with every reading waiting before it, so that an alarm is never
// held back for the sake of batching.
func (g *Gateway) onBatches(ctx context.Context, group []modbus.Batch) {
	if over := g.evaluateGroup(ctx, group); over && time.Since(g.tickedAt) >= min(g.o.TickEvery, maxIdle/2) {
		now := time.Now()
		g.onTick(ctx, now) // see maxIdle
		// Counted from the grid time before the burst's end, as a
		// timer's tick is: the next tick, maxIdle on, then falls on the
		// pollers' next grid time, not a TickEvery after it (see
		// maxIdle). now.Add keeps the monotonic reading (Truncate drops
		// it: a wall-clock step would then move the next tick).
		g.tickedAt = now.Add(-now.Round(0).Sub(now.Truncate(g.o.TickEvery)))
	}
}

// evaluateGroup runs a group of polls through the engine and commits
// what must be committed now (see onBatches); over reports that the burst
// they belong to is over.
func (g *Gateway) evaluateGroup(ctx context.Context, group []modbus.Batch) (over bool) {
	evs := g.evBuf[:0]
	alarmAt := g.alarmAt[:0]
	for i := range group {
		start := time.Now()
		var payload mqtt.Readings
		e := g.evaluate(&group[i], &payload)
		evs = append(evs, e...)
		if len(e) == 0 && g.shedding(&group[i], start) {
			g.shed(&group[i], start)
			g.payloads.Put(payload.Readings) // not committed: free now
			g.donePolled(&group[i])
			continue
		}
		if len(g.pending) == 0 {
			g.pendingSince = start
		}
		item := g.readingsItem(payload)
		if len(g.shedGap) > 0 {
			if n := g.shedGap[group[i].Device]; n > 0 {
				item.Gap = n
				delete(g.shedGap, group[i].Device)
			}
		}
		g.pending = append(g.pending, item)
		g.pendingPayloads = append(g.pendingPayloads, payload.Readings)
		g.met.observeBatch(group[i], time.Since(group[i].At)) // its wait for the core included
		g.donePolled(&group[i])
		if len(e) > 0 {
			alarmAt = append(alarmAt, payload.TS)
		}
	}
	g.alarmAt = alarmAt
	over = len(evs) == 0 && len(g.pending) < maxPending && g.burstSettled()
	if len(evs) > 0 || len(g.pending) >= maxPending || over {
		g.flush(ctx, evs)
		if g.o.AlarmCommitted != nil {
			for _, at := range alarmAt {
				g.o.AlarmCommitted(at, len(evs))
			}
		}
	}
	// The events are committed (flush ran if there were any): their
	// buffer serves the next group. Grown from nothing for every group, it
	// was a fifth of what a site-wide flood allocated
	// (BenchmarkCoreFloodWide).
	clear(evs)
	if cap(evs) <= maxKeptEvents {
		g.evBuf = evs[:0]
	} else {
		g.evBuf = nil
	}
	return over
}

// readingsItem is the outbox item of a poll's payload; with a direct
// InfluxDB writer its lines are built as it is committed (ingest.Fresh).
func (g *Gateway) readingsItem(payload mqtt.Readings) outbox.Item {
	if g.fresh != nil {
		return g.fresh.Item(payload)
	}
	return mqtt.ReadingsItem(payload)
}

// donePolled hands an evaluated poll's readings back to the pollers: the
// engine, the views and the payload have what they need of them (copies),
// and every poll is evaluated once. So a batch handed to the core is not
// its maker's any more: its readings are kept for reuse if their capacity
// is a power of two (the pollers' always is), so a test that hands the
// core the same batches again must make their readings of another
// capacity (benchBatches' 20) or copy them.
func (g *Gateway) donePolled(b *modbus.Batch) { g.polled.Put(b.Readings) }

// shedding reports whether a poll's readings are to be shed: the core is
// so far behind that the poll was read more than shedAfter ago (see
// shedAges). Committing and publishing the readings is about 40 % of
// what the gateway does per poll at its ceiling (600 000 readings/s on
// one core here), so a core past it that keeps doing so falls further
// behind, its outbox fills and drops readings at max_bytes, and its
// devices go unread past their comm timeout. Shedding the readings of
// polls that make no alarm transition leaves that to judging polls:
// the alarms, the views and the live readings stay whole, the telemetry
// thins out, and the seqs left unused show the gap to every subscriber.
// A poll that made an alarm transition keeps its readings, and so does
// shutdown. At 700 800/s offered it delivered more of the readings and
// the outbox dropped fewer; it does not stop the alarm floods of an
// overloaded gateway (docs/performance-history.md, item 42).
func (g *Gateway) shedding(b *modbus.Batch, now time.Time) bool {
	// No device's threshold is below minShedAge: a core on time (every
	// poll, at its ceiling too) decides without a map lookup.
	age := now.Sub(b.At)
	if g.stopping || b.At.IsZero() || age <= minShedAge {
		return false
	}
	after, ok := g.shedAfter[b.Device]
	return ok && age > after
}

// shed counts a poll whose readings the core sheds (see shedding) and
// leaves its seq unused: in the device's next appended poll, or at the
// next flush, whichever comes first.
func (g *Gateway) shed(b *modbus.Batch, now time.Time) {
	g.shedGap[b.Device]++
	g.met.shed.Add(float64(len(b.Readings)))
	g.shedUnlogged++
	if now.Sub(g.shedLogged) >= shedLogEvery {
		g.log.Warn().Str("device", b.Device).Dur("age", now.Sub(b.At)).Uint64("polls_shed", g.shedUnlogged).
			Msg("core behind: readings of late polls not published (alarms still evaluated; their seqs are left unused)")
		g.shedLogged, g.shedUnlogged = now, 0
	}
}

// shedLogEvery paces the shedding warning: one line, with the count, per
// 10 s while it lasts.
const shedLogEvery = 10 * time.Second

// shedAges is, by device, the age past which the core sheds a poll's
// readings (shedding): half the shortest comm timeout of its sensors, and
// at least minShedAge. A device without a comm alarm is never shed.
func shedAges(v *view, eng *alerting.Engine) map[string]time.Duration {
	ages := make(map[string]time.Duration, len(v.byDevice))
	for dev, ms := range v.byDevice {
		var least time.Duration
		for i := range ms {
			if t, ok := eng.CommTimeout(ms[i].id); ok && (least == 0 || t < least) {
				least = t
			}
		}
		if least > 0 {
			ages[dev] = max(least/2, minShedAge)
		}
	}
	return ages
}

// minShedAge is the least lag at which the core sheds: a core held up for
// less (a slow fsync, a pause of the process; the worst seen on this
// project's VM took 100-330 ms) delivers every reading late rather than
// lose any. The poll queue holds a second of polls, so shedding still
// starts before the pollers wait on it.
const minShedAge = 500 * time.Millisecond

// maxKeptEvents bounds the events buffer kept between groups of polls
// (about 3 MB of events).
const maxKeptEvents = 4 * maxCommitEvents

// burstSettled is burstOver, asked again after every goroutine that is
// ready to run has run. A poller whose device answers at once (the reply
// is there before it reads) hands its batch over before the other pollers
// of its slot, woken by the same timer, have started theirs: the core,
// woken first by the hand-over, saw no poll under way and committed that
// one poll alone, and the slot's other polls then waited for their
// deadline, a commit and a wake-up more, in about one second of three at
// the reference load (scripts/load.sh). Yielding lets them start (and
// count themselves in Polling) first.
func (g *Gateway) burstSettled() bool {
	if !g.burstOver() {
		return false
	}
	runtime.Gosched()
	return g.burstOver()
}

// burstOver reports whether the readings waiting should be committed now,
// without waiting for a timer: every poll that was started has been
// handed over and evaluated (the pollers of a slot start together, so
// their answers come in a burst), and the last commit of readings is at
// least a TickEvery old, so that a large site whose slots follow each
// other closely still shares commits (about 4 a second, at most
// maxPending polls each). A small site polled every second commits once a
// second, in the same wake-up as its polls.
func (g *Gateway) burstOver() bool {
	return len(g.pending) > 0 && len(g.batches) == 0 && g.polling.Load() == 0 &&
		time.Since(g.committedAt) >= g.o.TickEvery
}

// flush commits the waiting readings with evs, and leaves unused the seqs
// of polls shed since their device's last appended one: durable now, not
// with a later poll of the device that may never come.
func (g *Gateway) flush(ctx context.Context, evs []alerting.Event) {
	if len(g.pending) > 0 {
		g.committedAt = time.Now()
	}
	for dev, n := range g.shedGap {
		// After every waiting poll of the device: those shed came later.
		g.pending = append(g.pending, outbox.Item{Kind: outbox.KindReadings, Stream: dev, Gap: n})
	}
	clear(g.shedGap)
	g.commit(ctx, evs, g.pending, g.pendingPayloads)
	clear(g.pending) // drop the encoders' references to the payloads
	g.pending = g.pending[:0]
	clear(g.pendingPayloads)
	g.pendingPayloads = g.pendingPayloads[:0]
}

// evaluate runs one poll's readings through the engine and the views and
// fills its MQTT payload.
func (g *Gateway) evaluate(b *modbus.Batch, payload *mqtt.Readings) []alerting.Event {
	at := b.At
	if at.IsZero() {
		at = time.Now()
	}
	metas := g.view.sensors(b)
	samples := g.samples[:0]
	*payload = mqtt.Readings{Site: g.site.Site, Device: b.Device, TS: at.UTC(), Readings: g.payloads.Get(len(b.Readings))}
	for i, r := range b.Readings {
		m := &metas[i]
		q := quality(r.Quality)
		v := r.Value
		if q == alerting.BadQuality || math.IsNaN(v) || math.IsInf(v, 0) {
			v = math.NaN()
		}
		samples = append(samples, alerting.Sample{Point: m.id, Ref: m.ref, Value: v, Quality: q, Fault: r.Fault})
		payload.Readings = append(payload.Readings, mqtt.Reading{
			Sensor: r.Sensor, Kind: m.kind, Unit: m.unit,
			Value: v, Valid: !math.IsNaN(v), Quality: q.String(),
		})
	}
	g.samples = samples
	evs, err := g.eng.Step(at, samples)
	if err != nil {
		g.log.Error().Err(err).Str("device", b.Device).Msg("alarm evaluation")
	}
	// Publish the quality the engine judged, not only the driver's: a value
	// above the sensor's valid range is uncertain, one far below it (or in a
	// NAMUR NE 43 fault band) is bad.
	for i := range payload.Readings {
		_, q, ok := g.eng.PointAt(metas[i].ref)
		if !ok {
			_, q, ok = g.eng.Point(metas[i].id)
		}
		if ok {
			payload.Readings[i].Quality = q.String()
		}
	}
	g.view.setReadings(metas, *payload, at)
	if g.view.setDevice(*b) {
		// The retained status names each device's communication state.
		g.pub.StatusChanged()
	}
	if g.http != nil {
		g.view.publishReadings(g.http, metas, *payload)
	}
	return evs
}

// commit appends alarm transitions (priority lane) and readings to the
// outbox in one commit, hands tripped and released actions to the action
// runner, updates the views and persists the engine state when alarms
// changed.
//
// payloads are the readings of the readings' payloads: commit returns them
// for reuse once they are encoded.
func (g *Gateway) commit(ctx context.Context, evs []alerting.Event, readings []outbox.Item, payloads [][]mqtt.Reading) {
	if len(evs) == 0 && len(readings) == 0 {
		return
	}
	// Every event, from a poll, a tick, a command or a restore (until
	// 2026-12-01 only those of polls were counted: a flood's comm alarms,
	// raised by ticks, were not).
	g.met.events.Add(float64(len(evs)))
	if len(evs) == 0 && !g.stopping {
		// Readings only: the core does not wait for the disk, so an alarm
		// in the next poll is evaluated (and committed behind these, in
		// queue order) without queueing behind an fsync.
		g.appendAsync(readings, payloads)
		return
	}
	// A flood is committed in parts of at most maxCommitEvents events, in
	// order, each durable before the next is built: one transaction for
	// every event of a flood held all of them several times over at once
	// (their encoders, payloads, records and bbolt's pages), 10⁵ events
	// and about 1 GB at 60 000 sensors. Each alarm's state goes in the
	// part that holds its last event, so it still follows its events and
	// carries the seq of the latest. The readings go in the last part.
	var last map[string]int
	if len(evs) > maxCommitEvents {
		last = make(map[string]int, len(evs)/2)
		for i := range evs {
			if evs[i].Alarm != "" {
				last[evs[i].Alarm] = i
			}
		}
	}
	for lo := 0; ; lo += maxCommitEvents {
		hi := min(lo+maxCommitEvents, len(evs))
		if hi == len(evs) {
			g.commitPart(ctx, evs, lo, hi, last, readings)
			g.putPayloads(payloads) // commitPart waited for both outboxes
			break
		}
		g.commitPart(ctx, evs, lo, hi, last, nil)
	}
	if len(evs) > 0 {
		needed := g.stateNeededNow(evs)
		if now := time.Now(); needed && now.Sub(g.persistedAt) >= g.neededGap() {
			// Let the publisher take the alarm to the broker first (one
			// scheduler thread), then make the latch or trip survive a
			// crash: see stateNeededNow.
			runtime.Gosched()
			g.persistNow(now)
		} else {
			g.persistDue()
			g.neededDirty = g.neededDirty || needed // saved neededGap after the last (nextTick)
		}
	}
}

// stateNeededNow reports whether evs hold a change a restart could not get
// back from live readings: a latching alarm raised, an interlock tripped or
// released. Lost to a crash before the next tick's snapshot, a methane trip
// whose gas has cleared by the restart would come back as no alarm and a
// permitted action, while the trip is on the broker and the relay cut —
// and the crash may be the trip's own power cut. These are rare and the
// snapshot is written at once for them (within neededGap), after the
// publisher had its turn; other changes wait for the tick (persistDue).
func (g *Gateway) stateNeededNow(evs []alerting.Event) bool {
	for i := range evs {
		switch evs[i].Type {
		case alerting.EvActionTrip, alerting.EvActionRelease:
			return true
		case alerting.EvActivate:
			if g.eng.Latching(evs[i].Alarm) {
				return true
			}
		}
	}
	return false
}

// maxCommitEvents bounds the alarm events in one outbox commit (see
// commit). A poll of a large device that fails raises a few hundred;
// only a flood across many devices goes past it.
const maxCommitEvents = 4096

// commitPart commits evs[lo:hi] with the states of the alarms whose last
// event in evs is among them (all of them when last is nil), and
// readings, in one outbox commit, then updates the views.
func (g *Gateway) commitPart(ctx context.Context, evs []alerting.Event, lo, hi int, last map[string]int, readings []outbox.Item) {
	items := make([]outbox.Item, 0, 2*(hi-lo)+len(readings))
	// The state of each alarm the events changed, read once from the
	// engine (after all of them), in the order of their first events.
	changed := map[string]bool{}
	states := g.stateBuf[:0] // at most maxCommitEvents: kept for the next part
	defer func() {
		clear(states)
		g.stateBuf = states[:0]
	}()
	// eventSeq is the seq of the latest event of each alarm in this commit,
	// filled in as the outbox encodes the events (in order, before the
	// alarm states appended after them), so that the alarm's state carries
	// the seq of the transition that produced it into InfluxDB.
	eventSeq := map[string]uint64{}
	for i := lo; i < hi; i++ {
		// Encoded straight into the outbox's record buffer, from the
		// caller's event (the outbox runs the encoders while this
		// goroutine waits in appendAll) with the seq on a copy: a commit
		// that fails must leave the event's seq as it was.
		ev := &evs[i]
		items = append(items, mqtt.EventItem(func(dst []byte, seq uint64) []byte {
			if ev.Alarm != "" {
				eventSeq[ev.Alarm] = seq
			}
			e := *ev
			e.Seq = seq
			return e.AppendJSON(dst)
		}))
		switch ev.Type {
		case alerting.EvActionTrip, alerting.EvActionRelease:
			g.queueAction(*ev)
		}
		if ev.Alarm == "" || changed[ev.Alarm] {
			continue
		}
		if j, ok := last[ev.Alarm]; ok && j >= hi {
			continue // its state goes with a later part
		}
		changed[ev.Alarm] = true
		if st, ok := g.eng.Alarm(ev.Alarm); ok {
			states = append(states, st)
		}
	}
	for k := range states {
		st := &states[k] // states is complete: the pointer stays valid
		id := st.ID
		items = appendStateItems(items, st, func() uint64 { return eventSeq[id] })
	}
	items = append(items, readings...)
	// Not ctx: when the core is told to stop, a tick or linger that raced
	// with it must still land. The outbox is open until Run returned, so
	// this cannot block forever.
	// Events of earlier commits that failed go first, in order, in
	// commits of their own (writefail.go); while they cannot, these
	// wait behind them.
	var seqs []uint64
	err := g.flushUnsentEvents(context.WithoutCancel(ctx))
	if err == nil {
		seqs, err = g.appendAll(context.WithoutCancel(ctx), items)
	}
	if err != nil {
		// Alarm states that did not go out are sent again on every tick
		// until they do (resendAlarms): the retained topic must not stay
		// stale, nor InfluxDB's alarm measurement miss the state.
		for _, st := range states {
			g.unsentStates[st.ID] = true
		}
		// The outbox refuses only when closed or the disk fails: the
		// alarm state is still live in the engine, the UI and the
		// persisted snapshot, and the log says what did not go out. The
		// events wait for a later commit (writefail.go).
		g.keepUnsent(evs[lo:hi])
		g.diskFailLog().Err(err).Int("events", hi-lo).Int("events_waiting", len(g.unsentEvents)).Msg("outbox append failed")
	} else {
		for _, st := range states {
			delete(g.unsentStates, st.ID) // sent with this commit
			delete(g.unsentSeq, st.ID)
		}
	}
	for i := lo; i < hi; i++ {
		if i-lo < len(seqs) {
			evs[i].Seq = seqs[i-lo]
		}
		g.view.addTransition(g.http, evs[i])
	}
	for _, st := range states {
		g.view.setAlarm(g.http, st)
	}
}

// appendStateItems appends the outbox items of an alarm's state after a
// transition: the state with the seq of the alarm's latest event (for the
// retained topic and InfluxDB's alarm measurement), and for a normal state
// then the empty retained payload. The normal state goes out first, so that
// live subscribers and InfluxDB see the return to normal; the empty payload
// then clears the topic, so the broker holds exactly the alarms that need
// attention.
func appendStateItems(items []outbox.Item, st *alerting.AlarmState, eventSeq func() uint64) []outbox.Item {
	items = append(items, mqtt.AlarmStateItem(st.ID, st.AppendJSON, eventSeq))
	if st.State == alerting.Normal {
		items = append(items, mqtt.AlarmItem(st.ID, nil))
	}
	return items
}

// persistDue marks the engine snapshot due after alarms changed: the next
// tick writes it (on the TickEvery grid, at most once per persistGap), or
// the shutdown. A snapshot walks every alarm and writes those not normal,
// plus two fsyncs, too much for every poll at thousands of sensors. The
// transitions themselves are already durable in the outbox; the snapshot
// only restores the engine after a restart.
//
// Not written here, at once, even when the last is older than persistGap:
// written right after the commit of the alarm that changed the state, its
// encoding and fsyncs (about 2 ms at 10 000 sensors) held the core and,
// on its one scheduler thread, the publisher with the alarm on its way to
// the broker. In canary bench at 10 000 sensors that was the alarm
// latency's p99 (docs/performance-history.md, item 59). A crash loses the
// state changes since the last snapshot, as before, and now also those of
// the tick grid step after a quiet spell. An operator's command is still
// written at once (onCommand).
func (g *Gateway) persistDue() {
	g.stateDirty = true
}

func (g *Gateway) persistNow(now time.Time) {
	start := time.Now()
	err := g.persist()
	g.persistTook = time.Since(start)
	if err != nil {
		// Paced with the outbox's failures: the same failing disk fails
		// the snapshot at every tick.
		g.diskFailLog().Err(err).Msg("persist alarm state")
		return
	}
	g.stateDirty, g.neededDirty = false, false
	g.persistedAt = now
}

// onCommand runs an operator command on the engine.
func (g *Gateway) onCommand(ctx context.Context, c command.Command) error {
	now := time.Now()
	var evs []alerting.Event
	var err error
	switch c.Action {
	case command.Ack:
		evs, err = g.eng.Ack(now, c.Alarm, c.User, c.Comment)
	case command.Shelve:
		if c.OneShot {
			evs, err = g.eng.ShelveOneShot(now, c.Alarm, c.User, c.Comment)
		} else {
			evs, err = g.eng.Shelve(now, c.Alarm, c.User, c.Comment, c.Duration)
		}
	case command.Unshelve:
		evs, err = g.eng.Unshelve(now, c.Alarm, c.User, c.Comment)
	case command.Reset:
		evs, err = g.eng.Reset(now, c.Alarm, c.User, c.Comment)
	case command.OutOfService:
		evs, err = g.eng.OutOfService(now, c.Alarm, c.User, c.Comment, c.Duration)
	case command.ReturnToService:
		evs, err = g.eng.ReturnToService(now, c.Alarm, c.User, c.Comment)
	default:
		err = fmt.Errorf("unknown action %q", c.Action)
	}
	g.commit(ctx, evs, nil, nil)
	if len(evs) > 0 && g.stateDirty {
		// An operator's command reaches the snapshot at once, as before
		// item 59 (persistDue), whenever the last snapshot was: it is
		// rare, not on an alarm's way to the broker, and an unshelve or a
		// reset lost to a crash would come back after the restart as the
		// alarm shelved or latched again (a reset right after a routine
		// snapshot waited for the next one, and a crash then tripped the
		// released interlock again).
		g.persistNow(now)
	}
	g.met.commands.WithLabelValues(string(c.Action), resultLabel(err)).Inc()
	ev := g.log.Info()
	if err != nil {
		ev = g.log.Warn().Err(err)
	}
	ev.Str("alarm", c.Alarm).Str("user", c.User).Str("action", string(c.Action)).Msg("operator command")
	return err
}

func resultLabel(err error) string {
	if err != nil {
		return "rejected"
	}
	return "ok"
}

// errStopping answers a command that reached the core too late: it had
// stopped taking commands (the drain at shutdown), so it was not applied.
var errStopping = errors.New("gateway stopping: the command was not applied")

// runCommand hands a command to the core and waits for its answer. Once
// the core has stopped taking commands (the stop has begun) it answers
// errStopping at once: the command never waits for the caller's context,
// which an HTTP server's shutdown does not cancel.
func (g *Gateway) runCommand(ctx context.Context, c command.Command) error {
	req := cmdReq{cmd: c, done: make(chan error, 1)}
	select {
	case g.cmds <- req:
	case <-g.coreStop:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	// Handed over: the core answers before it takes anything else.
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// The core may have run it. "context canceled" would read as not
		// applied.
		return errors.New("gateway stopping: the command was handed over and may have been applied; check the alarm's state")
	}
}

// mqttCommand answers one command from the site's cmd topic.
func (g *Gateway) mqttCommand(ctx context.Context, payload []byte) []byte {
	c, err := command.Parse(payload)
	if err == nil {
		err = g.view.authorize(c.User, c.Action)
	}
	if err == nil {
		err = g.runCommand(ctx, c)
	}
	if err != nil {
		g.log.Warn().Err(err).Str("id", c.ID).Msg("mqtt command rejected")
	}
	return command.Answer(c.ID, err).JSON()
}

// restore loads the persisted alarm state: a restart keeps every
// unacknowledged, latched and shelved alarm with its original since.
func (g *Gateway) restore(ctx context.Context) error {
	clean := g.takeCleanMark()
	data, err := os.ReadFile(g.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gateway: read alarm state: %w", err)
	}
	evs, err := g.eng.Restore(time.Now(), data)
	var gone *alerting.UnknownAlarmsError
	if errors.As(err, &gone) {
		// Alarms taken out of the config (a device removed while one of
		// its alarms stood): the rest is restored, and their retained
		// states must go, or every control room shows them for ever,
		// unacknowledgeable ("unknown alarm").
		g.log.Warn().Strs("alarms", gone.IDs).Str("file", g.statePath).
			Msg("alarm state restored but for alarms no longer configured; their retained states are cleared")
		items := make([]outbox.Item, len(gone.IDs))
		for i, id := range gone.IDs {
			items[i] = mqtt.AlarmItem(id, nil)
		}
		if _, aerr := g.appendAll(ctx, items); aerr != nil {
			g.log.Error().Err(aerr).Strs("alarms", gone.IDs).Msg("outbox append failed: retained states of alarms no longer configured not cleared")
		}
		err = nil
	}
	if err != nil && evs == nil && len(nonNormal(g.eng.Alarms())) == 0 {
		// A corrupt state file must not keep the gateway from watching
		// the site; the alarms re-raise from live readings.
		g.log.Error().Err(err).Str("file", g.statePath).Msg("alarm state not restored")
		bad := g.statePath + ".corrupt"
		_ = os.Rename(g.statePath, bad)
		g.resendAll(ctx) // whatever the broker keeps is not what the engine knows
		return nil
	}
	if err != nil {
		// Partly restored (e.g. alarms that are no longer configured):
		// keep what was restored, including the interlock trips it
		// re-issues.
		g.log.Warn().Err(err).Str("file", g.statePath).Msg("alarm state partly restored")
	}
	if saved, behind, ok := g.eng.ClockBehindSnapshot(); ok && behind >= time.Second {
		// A box without a real-time clock, NTP not reached yet: say so,
		// as restored periods and reminders now also end by the time
		// passed since the restore (docs/alarms.md).
		g.log.Warn().Time("saved_at", saved).Dur("behind", behind).
			Msg("clock is behind the alarm state's saved time: restored shelves, out-of-service periods and reminders end at the latest as if restarted when it was saved")
	}
	if ids := g.eng.ShortenedShelves(); len(ids) > 0 {
		// A shelve that would have run past max_shelve from now (a clock
		// wrong in a way the state's saved time does not show) ends
		// sooner than the operator set it: say which.
		g.log.Warn().Strs("alarms", ids).Str("file", g.statePath).
			Msg("restored shelves cut to max_shelve from now")
	}
	restored := nonNormal(g.eng.Alarms())
	for _, st := range restored {
		g.view.setAlarm(nil, st)
		// Publish every restored state again: retained states are
		// idempotent, and a broker that lost its store, or a crash
		// between the outbox commit and the snapshot, would otherwise
		// leave the retained topic wrong until the next transition.
		g.unsent[st.ID] = true
	}
	g.commit(ctx, evs, nil, nil)
	if !clean {
		g.resendAll(ctx)
	}
	g.resendAlarms(ctx)
	g.log.Info().Int("alarms", len(g.eng.Alarms())).Msg("alarm state restored")
	return nil
}

// After a crash (no clean mark), every alarm's state is published again,
// normal ones too, which clears their retained topics: a transition
// committed and published after the last snapshot (the snapshot waits for
// the tick) left a retained state the restored engine does not have, say
// an alarm active whose gas has cleared since, and nothing would correct it
// before the alarm's next transition. Alarms that latch or trip an
// interlock are in the snapshot at once (stateNeededNow); the rest come
// back from live readings. One retained message per alarm, once.

// cleanMark is the file a clean shutdown leaves beside the snapshot.
func (g *Gateway) cleanMark() string { return g.statePath + ".clean" }

// markClean notes a clean shutdown, after the last snapshot.
func (g *Gateway) markClean() {
	if err := os.WriteFile(g.cleanMark(), []byte("the gateway stopped cleanly after writing alarm-state.json\n"), 0o640); err != nil {
		g.log.Warn().Err(err).Msg("clean shutdown mark not written: the next start publishes every alarm state again")
	}
}

// takeCleanMark reports whether the last run stopped cleanly and removes
// the mark, durably, so that a crash of this run is seen as one.
func (g *Gateway) takeCleanMark() bool {
	if err := os.Remove(g.cleanMark()); err != nil {
		return false
	}
	if d, err := os.Open(filepath.Dir(g.statePath)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return true
}

// resendAll queues every alarm's state for publishing (resendAlarms),
// except a latching alarm the engine has as normal: its retained state on
// the broker, should it say latched, may be the only trace of a trip the
// snapshot missed (within neededGap of the one before), so it is left for
// an operator to see rather than cleared.
func (g *Gateway) resendAll(ctx context.Context) {
	for _, st := range g.eng.Alarms() {
		if st.State == alerting.Normal && g.eng.Latching(st.ID) {
			continue
		}
		g.unsent[st.ID] = true
	}
	g.resendAlarms(ctx)
}

func nonNormal(all []alerting.AlarmState) []alerting.AlarmState {
	var out []alerting.AlarmState
	for _, st := range all {
		if st.State != alerting.Normal {
			out = append(out, st)
		}
	}
	return out
}

// resendAlarms publishes the current state of every alarm whose state did
// not reach the outbox (unsentStates: with its row for InfluxDB, after
// the events that waited) or must be republished after a restart (unsent:
// the retained message only).
func (g *Gateway) resendAlarms(ctx context.Context) {
	if len(g.unsent) == 0 && len(g.unsentStates) == 0 && len(g.unsentEvents) == 0 {
		return
	}
	if err := g.flushUnsentEvents(ctx); err != nil {
		g.diskFailLog().Err(err).Int("events", len(g.unsentEvents)).Msg("outbox append failed, alarm events and states will be sent again")
		return
	}
	if len(g.unsent) == 0 && len(g.unsentStates) == 0 {
		return
	}
	items := make([]outbox.Item, 0, len(g.unsent)+2*len(g.unsentStates))
	ids := make([]string, 0, len(g.unsent)+len(g.unsentStates))
	for id := range g.unsentStates {
		st, ok := g.eng.Alarm(id)
		if !ok {
			delete(g.unsentStates, id)
			continue
		}
		seq := g.unsentSeq[id]
		items = appendStateItems(items, &st, func() uint64 { return seq })
		ids = append(ids, id)
	}
	for id := range g.unsent {
		if g.unsentStates[id] {
			continue
		}
		st, ok := g.eng.Alarm(id)
		if !ok {
			delete(g.unsent, id)
			continue
		}
		var payload []byte
		if st.State != alerting.Normal {
			payload, _ = st.MarshalJSON()
		}
		items = append(items, mqtt.AlarmItem(id, payload))
		ids = append(ids, id)
	}
	if _, err := g.appendAll(ctx, items); err != nil {
		g.diskFailLog().Err(err).Int("alarms", len(ids)).Msg("outbox append failed, alarm states will be sent again")
		return
	}
	for _, id := range ids {
		delete(g.unsent, id)
		delete(g.unsentStates, id)
	}
	if len(g.unsentStates) == 0 {
		clear(g.unsentSeq) // seqs of alarms whose states went with later commits
	}
}

// persist writes the engine snapshot atomically (write, fsync, rename).
func (g *Gateway) persist() error {
	tmp := g.statePath + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	// Streamed in chunks: a flood's snapshot is never whole in memory.
	if err := g.eng.WriteSnapshot(time.Now(), f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, g.statePath); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(g.statePath)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func quality(q modbus.Quality) alerting.Quality {
	switch q {
	case modbus.QualityGood:
		return alerting.Good
	case modbus.QualityUncertain:
		return alerting.Uncertain
	default:
		return alerting.BadQuality
	}
}
