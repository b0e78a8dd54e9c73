package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/canary-gw/canary/gateway/mqtt"
)

// The fault hold (alerting.Engine.SetFaultHold): while the gateway is
// itself overloaded, its sensors' comm and bad alarms stay active once
// raised, so that the devices it leaves unread now and then, and the
// requests that time out, do not raise and return every sensor's alarm
// again and again (a flood whose commits take the CPU its pollers lack:
// docs/performance.md, "The one-core ceiling, and past it").
// docs/alarms.md says what an operator sees.
const (
	// judgeEvery is the window over which lateness is judged.
	judgeEvery = time.Second
	// holdAfter: the hold starts at the holdLateWindows-th late window
	// within it. One stall of the process, however long, makes one or two
	// (the window it ends in, and the next if the pollers' late starts
	// spill over): not an overload.
	holdAfter       = 10 * time.Second
	holdLateWindows = 3
	// holdCalm is how long the gateway must run without a late window
	// before the hold ends; it doubles, up to holdCalmMax, when a hold
	// starts again within the last one's calm after it ended (a gateway
	// that the returns themselves overload again), and is back to
	// holdCalm once holdCalmReset has passed since the last hold ended.
	holdCalm      = 30 * time.Second
	holdCalmMax   = 10 * time.Minute
	holdCalmReset = 10 * time.Minute
	// lateStartShare: a window is late when at least 1/lateStartShare of
	// its polls started late (a quarter period after their tick). At full
	// load within the ceiling 0.03 % did; with half the CPU a load needs,
	// 11 % (docs/performance.md).
	lateStartShare = 20
	// heldReleasePerSecond paces the return of the alarms a hold kept
	// active, once it has ended (Engine.ReleaseHeld): an overload that
	// left every device unread held all of a site's comm and bad alarms
	// (160 080 at 800 400 readings/s), and their returns all at once
	// were a burst of events and commits that made the gateway late
	// again (docs/performance-history.md, item 54). A late window while
	// they return starts a hold again (overloadJudge.aftermath), which
	// stops them, and halves the pace, down to heldReleaseMin a second,
	// until none is left: the returns may be what made it late.
	heldReleasePerSecond = 1000
	heldReleaseMin       = 125
)

// lateness is what the pollers and the core counted so far: polls
// started, polls started late, polls abandoned as late, core catch-ups.
type lateness struct {
	polls, lateStarts, late, catchups uint64
}

func (l lateness) sub(o lateness) lateness {
	return lateness{l.polls - o.polls, l.lateStarts - o.lateStarts, l.late - o.late, l.catchups - o.catchups}
}

// lateWindow reports whether a window with these counts shows the gateway
// running late: a poll abandoned, a catch-up, or a share of late starts.
func (l lateness) lateWindow() bool {
	return l.late > 0 || l.catchups > 0 || (l.lateStarts > 0 && l.lateStarts*lateStartShare >= l.polls)
}

// overloadJudge decides when the fault hold starts and ends. It is driven
// by the core's ticks, on the clock (not the ticks' due times: a core
// catching up runs many of those within a moment), with the counters
// read then.
type overloadJudge struct {
	seen     lateness
	judgedAt time.Time // start of the current window (zero: no baseline)
	// lateAt holds the ends of the latest late windows, the latest first.
	lateAt  [holdLateWindows]time.Time
	held    bool
	calm    time.Duration
	endedAt time.Time // the last hold's end (zero: none)
	// waiting: alarms the last hold kept active are still waiting to
	// return (set by the caller before each judgement).
	waiting bool
}

// verdict is a change of the hold: on says which way, reason says why.
type verdict struct {
	on     bool
	reason string
}

// judge takes the counters at now and returns a change of the hold, if
// any.
func (j *overloadJudge) judge(now time.Time, c lateness) (verdict, bool) {
	if j.judgedAt.IsZero() {
		j.seen, j.judgedAt = c, now
		return verdict{}, false
	}
	window := now.Sub(j.judgedAt)
	if window < judgeEvery {
		return verdict{}, false
	}
	d := c.sub(j.seen)
	j.seen, j.judgedAt = c, now
	if d.lateWindow() {
		copy(j.lateAt[1:], j.lateAt[:])
		j.lateAt[0] = now
		first := j.lateAt[holdLateWindows-1]
		again := j.aftermath(now)
		if !j.held && (again || !first.IsZero() && now.Sub(first) <= holdAfter) {
			j.start(now)
			what := "gateway overloaded"
			if again {
				what = "gateway overloaded again"
			}
			return verdict{true, fmt.Sprintf("%s (in the last %s: %d polls abandoned as late, %d of %d polls started late, %d core catch-ups): comm and bad alarms held active until it has run %s without running late",
				what, window.Round(100*time.Millisecond), d.late, d.lateStarts, d.polls, d.catchups, j.calm)}, true
		}
		return verdict{}, false
	}
	if j.held && now.Sub(j.lateAt[0]) >= j.calm {
		j.held, j.endedAt = false, now
		return verdict{false, fmt.Sprintf("gateway no longer overloaded (%s without running late): the held comm and bad alarms of sensors read well again return, at most %d a second", j.calm, heldReleasePerSecond)}, true
	}
	return verdict{}, false
}

// aftermath reports whether now is in a hold's aftermath: within holdCalm
// after it ended, or while the alarms it kept active are still waiting
// to return. A late window then starts a hold at once, not at the third
// (holdLateWindows): it is most likely the same overload, or the
// returns' own, and three late seconds are enough for the alarms still
// held to be lost again, and for every sensor's alarms to be raised and
// returned again, before the hold (30 000 events at 40 % of a core:
// docs/performance-history.md, item 54). Not the whole doubled calm
// after it: with a calm of 10 minutes, a single stall every few minutes
// would keep the site in holds.
func (j *overloadJudge) aftermath(now time.Time) bool {
	return j.waiting || !j.endedAt.IsZero() && now.Sub(j.endedAt) < holdCalm
}

// start starts a hold at now, setting the calm it needs to end.
func (j *overloadJudge) start(now time.Time) {
	switch {
	case j.calm == 0 || (!j.endedAt.IsZero() && now.Sub(j.endedAt) >= holdCalmReset):
		j.calm = holdCalm
	case !j.endedAt.IsZero() && now.Sub(j.endedAt) < j.calm:
		j.calm = min(2*j.calm, holdCalmMax)
	}
	j.held = true
}

// judgeOverload starts or ends the fault hold as the pollers' and the
// core's lateness says (core goroutine, before the tick due at now, so
// that the tick's expiring off-delays see it). The lateness is judged on
// the clock (judgeClock), the hold set at now.
func (g *Gateway) judgeOverload(ctx context.Context, now time.Time) {
	c := lateness{polls: g.lateness.Polls.Load(), lateStarts: g.lateness.LateStarts.Load(),
		late: g.lateness.Late.Load(), catchups: g.catchups}
	g.overload.waiting = g.eng.Held() > 0
	v, changed := g.overload.judge(g.clock(), c)
	if !changed {
		return
	}
	if v.on && !g.releasedAt.IsZero() {
		// A hold again while alarms were returning: they may be what
		// made the gateway late. The rest return slower.
		g.releaseRate = max(g.releaseRate/2, heldReleaseMin)
	}
	if v.on {
		g.met.faultHolds.Inc()
		g.met.faultHold.Set(1)
		g.holdStatus.Store(&mqtt.FaultHoldStatus{Since: string(mqtt.AppendTime(nil, now)), Reason: v.reason})
		g.log.Warn().Msg(v.reason)
	} else {
		g.met.faultHold.Set(0)
		g.holdStatus.Store(nil)
		g.log.Info().Msg(v.reason)
	}
	g.flush(ctx, g.eng.SetFaultHold(now, v.on, v.reason))
	if g.pub != nil {
		g.pub.StatusChanged()
	}
}

// clock is the overload judge's clock (judgeClock).
func (g *Gateway) clock() time.Time {
	if g.judgeClock != nil {
		return g.judgeClock()
	}
	return time.Now()
}

// releasing reports whether alarms a fault hold kept active are waiting
// to be released (releaseHeld), the hold over: the core then wakes at
// every grid time for them.
func (g *Gateway) releasing() bool {
	return !g.overload.held && g.eng.Held() > 0
}

// releaseHeld returns the alarms a fault hold kept active, once it has
// ended (or after a restart during one), heldReleasePerSecond at most,
// on the clock: the ticks' due times would let a core catching up (many
// due ticks within a moment) return a second's worth at each (core
// goroutine, each tick, after the judge: a late window starts a hold
// again, which stops them).
func (g *Gateway) releaseHeld(ctx context.Context, now time.Time) {
	clock := g.clock()
	switch {
	case !g.releasing():
		if g.eng.Held() == 0 {
			if !g.releasedAt.IsZero() {
				g.log.Info().Msg("fault hold: no alarm held any more")
			}
			g.releaseRate = heldReleasePerSecond
		}
		g.releasedAt = time.Time{}
		return
	case g.releasedAt.IsZero():
		g.log.Info().Int("held", g.eng.Held()).Msgf("fault hold: returning the held alarms, %d a second", g.releaseRate)
		g.releasedAt = clock.Add(-min(g.o.TickEvery, judgeEvery))
	}
	// At most a second's worth; the remainder of a share is carried.
	rate := time.Duration(g.releaseRate)
	g.releasedAt = later(g.releasedAt, clock.Add(-judgeEvery))
	n := int(clock.Sub(g.releasedAt) * rate / time.Second)
	if n <= 0 {
		return
	}
	g.releasedAt = g.releasedAt.Add(time.Duration(n) * time.Second / rate)
	g.flush(ctx, g.eng.ReleaseHeld(now, n))
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
