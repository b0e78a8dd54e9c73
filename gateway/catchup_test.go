package gateway

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// commOf counts dev's comm alarms raised and cleared.
func commOf(t *testing.T, g *Gateway, dev string) (raised, cleared int) {
	t.Helper()
	for _, e := range commEvents(t, g, dev) {
		switch e.Type {
		case "activate":
			raised++
		case "return":
			cleared++
		}
	}
	return raised, cleared
}

// catchUpWhileAnswering runs a core 4 s behind through a catch-up (and
// then its loop for 2.5 s) while d000, silent since 2.7 s ago (its comm
// timeout falls due 0.3 s from now), answers: read before that and queued
// while the catch-up's first tick is judged (beforeDeadline), or read after
// it and queued while the catch-up runs. d002's alarm, committed in the
// catch-up, holds the core 0.8 s (its AlarmCommitted hook) and queues
// d000's answer. It returns d000's comm alarms raised and cleared.
func catchUpWhileAnswering(t *testing.T, beforeDeadline bool) (int, int) {
	var arm atomic.Bool
	var g *Gateway
	var start time.Time
	g = newCoreGateway(t, 3, Options{TickEvery: 250 * time.Millisecond, AlarmCommitted: func(time.Time, int) {
		if !arm.Swap(false) {
			return
		}
		b := benchBatches(1)[0]
		if beforeDeadline {
			b.At = time.Now() // before d0's deadline (start+300ms)
			g.batches <- b
			time.Sleep(800 * time.Millisecond)
		} else {
			time.Sleep(800 * time.Millisecond)
			b.At = time.Now() // after d0's deadline (start+300ms)
			g.batches <- b
		}
	}})
	ctx := t.Context()
	start = time.Now()
	due := start.Add(-4 * time.Second).Truncate(250 * time.Millisecond)
	then := start.Add(-2700 * time.Millisecond)
	g.flush(ctx, g.eng.Tick(then))
	old := benchBatches(3)
	for i := range old {
		old[i].At = then
	}
	g.tickedAt = time.Now()
	g.onBatches(ctx, old)
	r, c := commOf(t, g, "d000")
	require.Zero(t, r+c)
	hot := benchBatches(3)[2]
	hot.Readings = slices.Clone(hot.Readings)
	hot.Readings[0].Value = 1.2
	if beforeDeadline {
		hot.At = due.Add(-10 * time.Millisecond) // early: slow first onTimer
	} else {
		hot.At = start.Add(-1 * time.Second) // in catchUp's loop
	}
	d1 := benchBatches(3)[1]
	d1.At = start
	g.batches <- hot
	g.batches <- d1
	arm.Store(true)
	w := &wakeTimer{t: time.NewTimer(time.Hour), at: due}
	defer w.stop()
	g.runTick(ctx, w, g.takeRest(nil))
	for time.Now().Before(start.Add(2500 * time.Millisecond)) {
		g.turn(ctx, ctx, w)
	}
	return commOf(t, g, "d000")
}

// d000's answer, read after its comm timeout fell due and queued while
// the core catches up, comes after the tick that raises its 20 comm
// alarms, as for an idle core: the ticks that fall due while a catch-up
// runs are run, with the polls carried to them, not skipped (skipped, the
// answer was evaluated before the next tick and the alarms were lost).
func TestCatchUpRunsTheTicksThatFellDueMeanwhile(t *testing.T) {
	raised, cleared := catchUpWhileAnswering(t, false)
	require.Equal(t, 20, raised, "comm alarms lost")
	require.Equal(t, 20, cleared)
}

// d000's answer, read before its comm timeout fell due but queued after
// the core took its queue, raises nothing, as for an idle core: a
// catch-up runs only the ticks due by the time it took the queue
// (takenAt), not by the time it got to them (then it judged those without
// the answers queued meanwhile: comm alarms raised and cleared).
func TestCatchUpTicksOnlyWithTheAnswersInHand(t *testing.T) {
	raised, _ := catchUpWhileAnswering(t, true)
	require.Zero(t, raised, "comm alarms raised for an answer read before the timeout")
}
