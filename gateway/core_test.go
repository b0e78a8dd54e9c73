package gateway

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/gateway/loadtest"
	"github.com/canary-gw/canary/gateway/outbox"
)

func TestUntilGrid(t *testing.T) {
	const grid = 250 * time.Millisecond
	base := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		now, d, want time.Duration // now as an offset from a grid point
	}{
		{now: 0, d: 0, want: ms(250)},            // due now, on the grid: the next point, not now
		{now: ms(10), d: 0, want: ms(240)},       // due now: the next point
		{now: ms(10), d: ms(240), want: ms(240)}, // due exactly on a point
		{now: ms(10), d: ms(241), want: ms(490)}, // just past a point: the one after
		{now: 0, d: time.Second, want: time.Second},
		{now: ms(100), d: time.Second, want: ms(1150)},
		{now: ms(249), d: ms(1), want: ms(1)},
	} {
		got := untilGrid(base.Add(tc.now), tc.d, grid)
		require.Equal(t, tc.want, got, "now +%v, due in %v", tc.now, tc.d)
		// With a monotonic clock reading too (time.Now's kind).
		mono := time.Now()
		at := mono.Add(untilGrid(mono, tc.d, grid))
		require.False(t, at.Before(mono.Add(tc.d)), "woken before due")
		require.True(t, at.After(mono))
		require.Zero(t, at.Round(0).UnixNano()%int64(grid), "not on the grid")
	}
}

// Readings are committed when their burst is over: nothing queued, no
// poll under way, and the last commit of readings a tick old.
func TestBurstOver(t *testing.T) {
	const tick = 250 * time.Millisecond
	long := time.Now().Add(-time.Second)
	for _, tc := range []struct {
		name      string
		pending   int
		queued    bool
		polling   int64
		committed time.Time
		want      bool
	}{
		{"burst over", 3, false, 0, long, true},
		{"nothing waiting", 0, false, 0, long, false},
		{"a poll still under way", 3, false, 1, long, false},
		{"a batch still queued", 3, true, 0, long, false},
		{"committed within a tick: wait to share", 3, false, 0, time.Now(), false},
	} {
		g := &Gateway{o: Options{TickEvery: tick}, batches: make(chan modbus.Batch, 1), committedAt: tc.committed}
		g.pending = make([]outbox.Item, tc.pending)
		if tc.queued {
			g.batches <- modbus.Batch{}
		}
		g.polling.Store(tc.polling)
		require.Equal(t, tc.want, g.burstOver(), tc.name)
	}
}

// The core's timer is never moved once it has fired: a tick that waits for
// a busy core is never thrown away or pushed back (a core kept busy by
// polls would otherwise starve every timer of the engine). Before it fires
// it moves to wherever work is next due, earlier or later.
func TestWakeTimerNeverLosesADueTick(t *testing.T) {
	// Fired, not yet received: an event on the busy core asks for a later
	// time (an hour, so that a re-armed timer could not pass for the
	// fire); the fire must still be there.
	w := newWakeTimer(time.Now(), 0)
	deadline := time.Now().Add(5 * time.Second)
	for !time.Now().After(w.at) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	w.move(time.Now(), time.Hour)
	select {
	case <-w.t.C:
	case <-time.After(5 * time.Second):
		t.Fatal("a fired tick was thrown away by an event")
	}

	// Not yet fired: moved later (the readings it waited for were
	// committed), then earlier (work became due sooner).
	now := time.Now()
	w = newWakeTimer(now, time.Hour)
	w.move(now, 2*time.Hour)
	require.Equal(t, now.Add(2*time.Hour), w.at, "an unfired timer was not moved later")
	// The same time, read from another clock reading a few ns apart:
	// the timer is not re-armed.
	armed := w.t
	w.move(now.Add(10*time.Nanosecond), 2*time.Hour-7*time.Nanosecond)
	require.Same(t, armed, w.t, "the timer was re-armed for the same time")
	w.move(now, time.Millisecond)
	require.Equal(t, now.Add(time.Millisecond), w.at)
	select {
	case <-w.t.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the timer moved earlier never fired")
	}
}

// A tick that falls due while the core is busy runs as soon as the core is
// free, not a tick later: device d000 falls silent, and while its comm
// timeout expires the core is held up by an alarm on d001 (its
// AlarmCommitted hook blocks across the due tick). The comm alarms must
// carry the due tick's time; re-arming the timer after the busy event
// would have thrown that tick away and raised them 250 ms late. An answer
// d000 gives after the tick fell due, queued while the core is held, must
// not hide them (taken before the tick, it did in about half the runs).
func TestCoreRunsATickThatFellDueWhileBusy(t *testing.T) {
	const tick = 250 * time.Millisecond
	var hold atomic.Int64 // unix ns until which the hook blocks the core
	g := newCoreGateway(t, 2, Options{TickEvery: tick, AlarmCommitted: func(time.Time, int) {
		if until := hold.Swap(0); until > 0 {
			time.Sleep(time.Until(time.Unix(0, until)))
		}
	}})
	bs := benchBatches(2)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.core(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	// Both devices answer once; d000 then falls silent. Its comm timeout
	// (3 × the 1 s poll) falls due on the first grid tick at or after
	// last + 3 s.
	last := time.Now()
	for _, b := range bs {
		b.At = last
		g.batches <- b
	}
	due := last.Add(3 * time.Second)
	dueTick := due.Round(0).Truncate(tick)
	if dueTick.Before(due.Round(0)) {
		dueTick = dueTick.Add(tick)
	}
	// 100 ms before that tick, an alarm on d001 whose commit hook holds
	// the core until 100 ms after it.
	time.Sleep(time.Until(dueTick.Add(-100 * time.Millisecond)))
	hold.Store(dueTick.Add(100 * time.Millisecond).UnixNano())
	b := bs[1]
	b.Readings = slices.Clone(b.Readings)
	b.Readings[0].Value = 1.2 // above methane's 1.0 %vol limit
	b.At = time.Now()
	g.batches <- b
	// While the core is held, after the tick fell due, d000 answers again:
	// read too late, its answer must not hide the comm alarm that fell due
	// before it, whichever of the two the core's select takes first.
	time.Sleep(time.Until(dueTick.Add(50 * time.Millisecond)))
	late := bs[0]
	late.At = time.Now()
	g.batches <- late

	// The comm alarm's activation, from the outbox's alarm lane.
	var ev struct {
		Type  string    `json:"type"`
		Alarm string    `json:"alarm"`
		TS    time.Time `json:"ts"`
	}
	want := loadtest.DeviceID(0) + "." + loadtest.SensorID(0) + ".comm"
	deadline := time.Now().Add(10 * time.Second)
	for ev.Alarm != want && time.Now().Before(deadline) {
		recs, err := g.ob.Drain(outbox.Alarms, 0, 10000)
		require.NoError(t, err)
		for _, r := range recs {
			if r.Kind != outbox.KindEvent {
				continue
			}
			var e = ev
			if json.Unmarshal(r.Payload, &e) == nil && e.Alarm == want && e.Type == "activate" {
				ev = e
				break
			}
		}
		if ev.Alarm != want {
			time.Sleep(20 * time.Millisecond)
		}
	}
	require.Equal(t, want, ev.Alarm, "the silent device's comm alarm was never raised")
	require.False(t, ev.TS.After(dueTick.Add(50*time.Millisecond)),
		"comm alarm raised at %v, the tick it fell due on was %v (due %v)", ev.TS, dueTick, due)
}

// A site polled every second wakes the core once a second: once its burst
// of polls is committed, the core sleeps until a second after its last
// tick, past the pollers' next grid time, and not until the deadline the
// waiting readings had (half a second on, a wake-up for nothing). A burst
// that ends a grid step or more after the last tick ticks at its end, so
// that a tick that fell off the pollers' grid (at a deadline, an engine
// timer) comes back to it instead of waking the process every second at
// its own time: a tick a grid step before the bursts stayed there when the
// step was half a second.
func TestCoreWakesWithThePolls(t *testing.T) {
	const tick = 250 * time.Millisecond
	g := newCoreGateway(t, 2, Options{TickEvery: tick})
	bs := benchBatches(2)
	// Steady state: the engine's points started, its state persisted.
	start := time.Now()
	g.flush(t.Context(), g.eng.Tick(start))
	g.persistNow(start)

	// The last tick just before the burst: the burst is only committed.
	last := time.Now()
	g.tickedAt = last
	for i := range bs {
		bs[i].At = last
	}
	g.onBatches(t.Context(), bs)
	now := time.Now()
	require.Empty(t, g.pending, "the burst's readings were not committed at its end")
	require.Equal(t, last, g.tickedAt, "ticked at the end of a burst right after a tick")
	require.Equal(t, untilGrid(now, last.Add(maxIdle).Sub(now), tick), g.nextTick(now),
		"after the burst the core should sleep until a second after its last tick")

	// While readings wait, the core wakes at their deadline.
	g.pendingSince = now
	g.pending = append(g.pending, outbox.Item{})
	require.Equal(t, untilGrid(now, tick, tick), g.nextTick(now),
		"while readings wait, the core wakes at their deadline rounded up to the grid")
	g.pending = g.pending[:0]

	// The last tick less than a grid step before the burst's end: no tick.
	g.tickedAt = time.Now().Add(-tick / 2)
	was := g.tickedAt
	g.committedAt = time.Time{}
	g.onBatches(t.Context(), bs)
	require.Empty(t, g.pending, "the burst's readings were not committed at its end")
	require.Equal(t, was, g.tickedAt, "ticked at the end of a burst less than a grid step after a tick")

	// The last tick a grid step before the burst (at x.750, the bursts at
	// x.000): it ticks at the burst's end, or it would wake the core a
	// grid step before every burst for good.
	g.tickedAt = time.Now().Add(-tick)
	was = g.tickedAt
	g.committedAt = time.Time{}
	g.onBatches(t.Context(), bs)
	require.True(t, g.tickedAt.After(was), "a burst a grid step after the last tick did not tick at its end")

	// The last tick off the grid, 600 ms before the burst: it ticks at the
	// burst's end, counted from the grid time before it, so that the core
	// next wakes maxIdle after that grid time: with the pollers, whose
	// next slot is on the same grid, not a grid step after them.
	g.tickedAt = time.Now().Add(-600 * time.Millisecond)
	g.committedAt = time.Time{}
	before := time.Now()
	for i := range bs {
		bs[i].At = before
	}
	g.onBatches(t.Context(), bs)
	after := time.Now()
	// (A grid time is at most a step before now: later than the old tick.)
	require.False(t, g.tickedAt.Before(before.Truncate(tick)), "a burst half a second after the last tick did not tick at its end")
	require.False(t, g.tickedAt.After(after.Truncate(tick)))
	require.True(t, g.tickedAt.Equal(g.tickedAt.Truncate(tick)), "the burst's tick is counted from the grid time before it")
	require.Contains(t, g.tickedAt.String(), " m=", "tickedAt lost its monotonic reading (a wall-clock step would move the next tick)")
	now = time.Now()
	wake := now.Add(g.nextTick(now))
	// (On the wall clock: the grid is; two readings of the clock need not
	// have the same offset between wall and monotonic time.)
	require.True(t, g.tickedAt.Add(maxIdle).Round(0).Equal(wake.Round(0)), "after a burst that ticked, the core should wake maxIdle after its grid time: %v, not %v",
		g.tickedAt.Add(maxIdle), wake)

	// The wall clock stepped back an hour since the last tick: the next
	// tick is still at most maxIdle (and a grid step) away.
	g.tickedAt = time.Now().Add(time.Hour).Round(0).Truncate(tick)
	now = time.Now()
	require.LessOrEqual(t, g.nextTick(now), maxIdle+tick, "a wall clock stepped back put the next tick off")
}

// A flood is committed in parts of at most maxCommitEvents events, not in
// one transaction: every event lands once, in order; each alarm's state
// follows its last event, in the same part, and carries that event's seq;
// the readings go with the last part.
func TestFloodIsCommittedInParts(t *testing.T) {
	const devices = 300 // 6 000 sensors
	g := newCoreGateway(t, devices, Options{})
	ctx := t.Context()
	bs := benchBatches(devices)
	now := time.Now()
	for i := range bs {
		bs[i].At = now
		for s := range bs[i].Readings {
			bs[i].Readings[s].Quality = modbus.QualityBad
		}
	}
	// d000 fails first and answers again last, so its alarms have events
	// in the first part and in the last.
	again := benchBatches(1)[0]
	again.At = now.Add(time.Millisecond)
	group := append(slices.Clone(bs), again)

	commits0 := g.ob.Stats().Commits
	g.onBatches(ctx, group)
	g.flush(ctx, nil)

	recs, err := g.ob.Drain(outbox.Alarms, 0, 1<<20)
	require.NoError(t, err)
	type evRec struct {
		Seq   uint64 `json:"seq"`
		Alarm string `json:"alarm"`
		Type  string `json:"type"`
	}
	var events []evRec
	var eventAt []int64             // each event's commit time
	lastEvent := map[string]int{}   // alarm → index in events of its last event
	stateAfter := map[string]int{}  // alarm → events seen before its state
	stateSeq := map[string]uint64{} // alarm → the seq in its state
	for _, r := range recs {
		switch r.Kind {
		case outbox.KindEvent:
			var e evRec
			require.NoError(t, json.Unmarshal(r.Payload, &e))
			require.Equal(t, r.Seq, e.Seq)
			if e.Alarm != "" {
				lastEvent[e.Alarm] = len(events)
			}
			events = append(events, e)
			eventAt = append(eventAt, r.At)
		case outbox.KindAlarm:
			if len(r.Payload) == 0 {
				continue // the retained topic cleared after a return to normal
			}
			var st struct {
				Seq uint64 `json:"seq"`
			}
			require.NoError(t, json.Unmarshal(r.Payload, &st))
			_, dup := stateAfter[r.Stream]
			require.False(t, dup, "alarm %s: one state per commit, got two", r.Stream)
			stateAfter[r.Stream] = len(events)
			stateSeq[r.Stream] = st.Seq
		}
	}
	n := len(events)
	require.Greater(t, n, maxCommitEvents, "the flood must need more than one part")
	parts := (n + maxCommitEvents - 1) / maxCommitEvents
	require.Equal(t, commits0+uint64(parts), g.ob.Stats().Commits,
		"%d events: %d commits of at most %d", n, parts, maxCommitEvents)
	for i, e := range events {
		require.Equal(t, uint64(i+1), e.Seq, "events in order, none lost or repeated")
	}
	straddling := 0
	require.Equal(t, len(lastEvent), len(stateAfter), "a state for every alarm with events")
	for a, li := range lastEvent {
		after, ok := stateAfter[a]
		require.True(t, ok, "alarm %s has events but no state", a)
		require.Greater(t, after, li, "alarm %s: state before its last event", a)
		require.Equal(t, li/maxCommitEvents, (after-1)/maxCommitEvents,
			"alarm %s: state not in the part of its last event", a)
		require.Equal(t, events[li].Seq, stateSeq[a], "alarm %s: state carries the seq of its last event", a)
		if strings.HasPrefix(a, loadtest.DeviceID(0)+".") {
			straddling++
			require.Equal(t, parts-1, li/maxCommitEvents, "d000's alarms end in the last part")
		}
	}
	require.Positive(t, straddling)
	t.Logf("%d events in %d parts, %d alarms, %d of d000 straddling", n, parts, len(lastEvent), straddling)

	readings, err := g.ob.Drain(outbox.Readings, 0, 1<<20)
	require.NoError(t, err)
	require.Len(t, readings, devices+1, "every poll's readings, once")
	require.NotEqual(t, eventAt[0], eventAt[n-1], "the first and last parts are separate commits")
	for _, r := range readings {
		require.Equal(t, eventAt[n-1], r.At, "the readings go with the last part")
	}
}

// When the core's tick falls due with polls waiting in its queue, they are
// judged as a core idle at the tick's time would have judged them. Both
// devices were last read 3.5 s before the tick (comm timeout 3 × the 1 s
// poll). Answers read before the tick fell due count before it: no comm
// alarm (a tick taken first, as select could pick, raised 40 and cleared
// them at once). Answers read after it come after the tick: the comm
// alarms that fell due are raised, carrying the tick's time (taken first,
// they hid them).
func TestTimerJudgesQueuedPollsAsAnIdleCoreWould(t *testing.T) {
	for _, tc := range []struct {
		name    string
		readAt  time.Duration // after the tick fell due
		raised  int
		cleared int
	}{
		{"answers read before the tick", -time.Second, 0, 0},
		{"answers read after the tick", 100 * time.Millisecond, 40, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newCoreGateway(t, 2, Options{TickEvery: 250 * time.Millisecond})
			due := silentBeforeDue(t, g)
			queued := benchBatches(2)
			for i := range queued {
				queued[i].At = due.Add(tc.readAt)
			}
			w := &wakeTimer{t: time.NewTimer(time.Hour), at: due}
			defer w.stop()
			g.runTick(t.Context(), w, queued)
			runDueTicks(t, g, w)
			raised, cleared := commTransitions(t, g, due)
			require.Equal(t, tc.raised, raised, "comm alarms raised")
			require.Equal(t, tc.cleared, cleared, "comm alarms cleared by the answers")
		})
	}
}

// A core more than maxGroup polls behind still judges every queued poll
// by when it was read: the tick takes the whole queue (takeRest), not the
// first maxGroup polls. Taken up to maxGroup, the answer at the back of
// the queue was judged after the tick, and its device raised 20 comm
// alarms that its own answer then cleared (docs/performance-history.md, item 39).
func TestTickTakesTheWholeQueue(t *testing.T) {
	g := newCoreGateway(t, 2, Options{TickEvery: 250 * time.Millisecond})
	g.batches = make(chan modbus.Batch, 4*maxGroup) // a site polled 2 048 times a second
	ctx := t.Context()
	due := silentBeforeDue(t, g)
	answers := benchBatches(2)
	for i := range 2 * maxGroup {
		b := answers[0]
		b.At = due.Add(-time.Second + time.Duration(i)*time.Microsecond)
		g.batches <- b
	}
	answers[1].At = due.Add(-time.Millisecond)
	g.batches <- answers[1]

	w := &wakeTimer{t: time.NewTimer(time.Hour), at: due}
	defer w.stop()
	require.True(t, g.tickIfDue(ctx, w, nil))
	runDueTicks(t, g, w)
	raised, cleared := commTransitions(t, g, due)
	require.Zero(t, raised, "comm alarms raised for devices whose answers were queued")
	require.Zero(t, cleared)
	require.Empty(t, g.batches, "the queued polls were not all taken")
}

// A poller blocked on a full queue holds its answer until a place frees:
// the tick takes it too. Bounded by the queue's capacity alone, the tick
// left it queued and raised its device's 20 comm alarms with the answer in
// hand, in exactly the state (a full queue) where that starts a flood.
func TestTickTakesTheAnswersOfBlockedPollers(t *testing.T) {
	g := newCoreGateway(t, 2, Options{TickEvery: 250 * time.Millisecond})
	g.batches = make(chan modbus.Batch, 8)
	ctx := t.Context()
	due := silentBeforeDue(t, g)
	answers := benchBatches(2)
	for i := range cap(g.batches) {
		b := answers[0]
		b.At = due.Add(-time.Second + time.Duration(i)*time.Millisecond)
		g.batches <- b
	}
	answers[1].At = due.Add(-600 * time.Millisecond)
	g.polling.Add(1) // a poller counts its poll until the hand-over returns
	sent := make(chan struct{})
	go func() {
		g.batches <- answers[1]
		g.polling.Add(-1)
		close(sent)
	}()
	waitForBlockedSend(t)

	w := &wakeTimer{t: time.NewTimer(time.Hour), at: due}
	defer w.stop()
	require.True(t, g.tickIfDue(ctx, w, nil))
	<-sent
	runDueTicks(t, g, w)
	raised, cleared := commTransitions(t, g, due)
	require.Zero(t, raised, "comm alarms raised for a device whose answer was handed over")
	require.Zero(t, cleared)
	require.Empty(t, g.batches)
}

// A core behind carries at most a queue's worth of polls (and those under
// way) to its next tick; with more read after the tick, it catches up
// (replays): it runs the ticks due by then back to back, evaluates the
// polls, and goes back to the grid after the clock, counted. Here the
// core is 2.5 s behind and the queue of 8 is
// refilled before each tick, as blocked pollers refill it: the first tick
// carries 8 to the next an idle core would have run (a second later, 1.5 s
// behind: within maxReplay); that one would carry 16 to the one after it,
// also due.
func TestBehindCoreCarriesAtMostAQueue(t *testing.T) {
	g := newCoreGateway(t, 2, Options{TickEvery: 250 * time.Millisecond})
	g.batches = make(chan modbus.Batch, 8)
	due := time.Now().Add(-2500 * time.Millisecond).Truncate(250 * time.Millisecond)
	w := &wakeTimer{t: time.NewTimer(time.Hour), at: due}
	defer w.stop()
	answers := benchBatches(2)
	carried := 0
	for i := range 2 {
		for j := len(g.batches); j < cap(g.batches); j++ {
			b := answers[j%2]
			b.At = time.Now()
			g.batches <- b
		}
		g.runTick(t.Context(), w, g.takeRest(nil))
		require.LessOrEqual(t, len(g.carry), cap(g.batches), "tick %d: polls carried past a queue's worth", i)
		carried = max(carried, len(g.carry))
	}
	require.Equal(t, cap(g.batches), carried, "the first tick did not carry the polls read after it")
	require.Empty(t, g.carry, "the second tick did not catch up")
	require.True(t, w.at.After(time.Now()), "caught up, the timer was not armed after the clock")
	require.Equal(t, 1.0, counterValue(t, g.met.catchups), "the catch-up was not counted")
}

// A core further behind than maxReplay catches up in one go: it runs
// every tick due by the time it took its queue, each after the answers
// read before it, without
// going back to its loop between them. The devices' comm timeouts fell
// due 2.9 s after the first tick, before their answers were read: the
// tick at 3 s raises their comm alarms with its time, and the answers
// then clear them. Evaluated at once, the answers hid them (as they hide
// an on-delay that expired among the ticks skipped: an alarm lost).
func TestFarBehindCoreCatchesUp(t *testing.T) {
	g := newCoreGateway(t, 2, Options{TickEvery: 250 * time.Millisecond})
	ctx := t.Context()
	// A grid time passing between the catch-up and its end makes the
	// next tick due, and the polls read after the last tick caught up
	// with are rightly carried to it: about one run in 50 before this.
	awayFromGridTime(250*time.Millisecond, 100*time.Millisecond)
	due := time.Now().Add(-5 * time.Second).Truncate(250 * time.Millisecond)
	silentSince(t, g, due.Add(-100*time.Millisecond), due)
	for _, b := range benchBatches(2) {
		b.At = time.Now()
		g.batches <- b
	}
	w := &wakeTimer{t: time.NewTimer(time.Hour), at: due}
	defer w.stop()
	g.runTick(ctx, w, g.takeRest(nil))
	require.Empty(t, g.carry, "polls carried by a core further behind than maxReplay")
	require.Empty(t, g.batches)
	require.True(t, w.at.After(time.Now()), "the timer was not armed after the clock")
	require.Equal(t, 1.0, counterValue(t, g.met.catchups), "the catch-up was not counted")
	raised, cleared := commTransitions(t, g, due.Add(3*time.Second))
	require.Equal(t, 40, raised, "comm alarms that fell due among the ticks caught up with")
	require.Equal(t, 40, cleared, "comm alarms cleared by the answers read after them")
}

// A command handled while the core carries polls to due ticks waits for
// them all (ticksIfDue), not one: handled between two, it moved the
// engine's clock to now, and the next tick was judged at now before the
// answer carried to it was evaluated. Here d001's answer was read 50 ms
// before its comm timeout fell due, but after the tick before: judged at
// now, its 20 comm alarms were raised and then cleared.
func TestCommandWaitsForTheCarriedTicks(t *testing.T) {
	g := newCoreGateway(t, 2, Options{TickEvery: 250 * time.Millisecond})
	ctx := t.Context()
	// d = the first tick due, 1.75–2 s ago; t2 = d+0.25 (d000's comm
	// timeout falls due at d+0.1), t3 = t2+1 s (the idle bound), t4 =
	// d+1.5 (d001's falls due at d+1.35), all within maxReplay.
	d := time.Now().Add(-1750 * time.Millisecond).Truncate(250 * time.Millisecond)
	g.flush(ctx, g.eng.Tick(d.Add(-3*time.Second)))
	old := benchBatches(2)
	old[0].At = d.Add(-2900 * time.Millisecond)
	old[1].At = d.Add(-1650 * time.Millisecond)
	g.tickedAt = time.Now()
	g.onBatches(ctx, old)
	answers := benchBatches(2)
	answers[0].At = d.Add(50 * time.Millisecond)   // before its timeout
	answers[1].At = d.Add(1300 * time.Millisecond) // after t3, before its timeout
	for _, b := range answers {
		g.batches <- b
	}
	w := &wakeTimer{t: time.NewTimer(time.Hour), at: d}
	defer w.stop()
	g.runTick(ctx, w, g.takeRest(nil))
	require.Len(t, g.carry, 2, "the answers were not carried")
	g.ticksIfDue(ctx, w)
	require.Empty(t, g.carry, "the command would run between carried ticks")
	require.Error(t, g.onCommand(ctx, command.Command{Action: command.Ack, Alarm: "nope", User: "op"}))
	runDueTicks(t, g, w)
	raised, _ := commTransitions(t, g, d)
	require.Zero(t, raised, "comm alarms raised for answers carried past a command")
}

// counterValue reads a Prometheus counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

// waitForBlockedSend waits until a goroutine started by the calling test
// (its stack names the test) is blocked sending on a channel (at most
// 5 s); another goroutine blocked on a send does not count.
func waitForBlockedSend(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for range 500 {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "[chan send") && strings.Contains(g, t.Name()+".func") {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the test's goroutine never blocked on a send")
}

// A core far behind runs the ticks an idle core would have run between
// the polls it finds queued. Device d002's comm alarm falls due 100 ms
// after the first tick and its answer was read 400 ms after it: the tick
// 250 ms after the first raises its 20 comm alarms, with that time, and
// the answer then clears them. d001's answer, read 50 ms after the first
// tick, came in time. Evaluated together at the first tick's end, the
// answers hid d002's comm alarms and the core went back to the grid after
// the clock, skipping the tick between.
func TestBackloggedCoreRunsTheTicksBetweenItsPolls(t *testing.T) {
	g := newCoreGateway(t, 2, Options{TickEvery: 250 * time.Millisecond})
	ctx := t.Context()
	due := time.Now().Add(-1500 * time.Millisecond).Truncate(250 * time.Millisecond) // within maxReplay
	silentSince(t, g, due.Add(-2900*time.Millisecond), due)
	answers := benchBatches(2)
	answers[0].At = due.Add(50 * time.Millisecond)
	answers[1].At = due.Add(400 * time.Millisecond)

	w := &wakeTimer{t: time.NewTimer(time.Hour), at: due}
	defer w.stop()
	g.runTick(ctx, w, answers)
	armed := w.at
	runDueTicks(t, g, w)
	raised, cleared := commTransitions(t, g, due.Add(250*time.Millisecond))
	require.Equal(t, 20, raised, "comm alarms raised by the tick between the answers")
	require.Equal(t, 20, cleared, "comm alarms cleared by the later answer")
	require.Equal(t, due.Add(250*time.Millisecond), armed.Round(0), "the timer was not armed for the tick an idle core would have run next")
}

// runDueTicks runs the ticks that runTick left due with polls carried to
// them, as the core's timer fires at once for them (at most ten).
func runDueTicks(t *testing.T, g *Gateway, w *wakeTimer) {
	t.Helper()
	for i := 0; len(g.carry) > 0; i++ {
		require.Less(t, i, 10, "polls carried past ten ticks")
		require.False(t, w.at.After(time.Now()), "polls carried to a tick that is not due")
		g.runTick(t.Context(), w, g.takeRest(nil))
	}
}

// The poll queue holds a second of the site's polls, within its bounds.
func TestHandoverCap(t *testing.T) {
	site := func(n int, poll time.Duration) []configs.Device {
		devs := make([]configs.Device, n)
		for i := range devs {
			devs[i].Poll = poll
		}
		return devs
	}
	for _, tc := range []struct {
		name string
		devs []configs.Device
		want int
	}{
		{"reference site, 50 at 1 s", site(50, time.Second), minHandover},
		{"500 at 100 ms", site(500, 100*time.Millisecond), 5000},
		{"a period that does not divide a second", site(10, 300*time.Millisecond), minHandover},
		{"300 at 300 ms, rounded up", site(300, 300*time.Millisecond), 1200},
		{"no period set: the default second", site(400, 0), 400},
		{"bounded", site(20000, 10*time.Millisecond), maxHandover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, handoverCap(tc.devs))
		})
	}
}

// A command or action result that select takes after the tick fell due
// waits for that tick (tickIfDue), which takes the polls queued meanwhile
// as the timer would: here the comm alarms that fell due are raised with
// the tick's time, then the answer read after it clears them. Before the
// tick falls due, nothing runs.
func TestTickIfDueRunsTheDueTickFirst(t *testing.T) {
	g := newCoreGateway(t, 2, Options{TickEvery: 250 * time.Millisecond})
	ctx := t.Context()
	due := silentBeforeDue(t, g)

	later := &wakeTimer{t: time.NewTimer(time.Hour), at: time.Now().Add(time.Hour)}
	defer later.stop()
	require.False(t, g.tickIfDue(ctx, later, nil), "a tick not yet due ran")

	for _, b := range benchBatches(2) {
		b.At = due.Add(100 * time.Millisecond)
		g.batches <- b
	}
	w := &wakeTimer{t: time.NewTimer(time.Hour), at: due}
	defer w.stop()
	require.True(t, g.tickIfDue(ctx, w, nil))
	require.Empty(t, g.batches, "the queued polls were not taken")
	require.True(t, w.at.After(due), "the timer was not armed for the next tick")
	runDueTicks(t, g, w)
	raised, cleared := commTransitions(t, g, due)
	require.Equal(t, 40, raised)
	require.Equal(t, 40, cleared)
}

// silentBeforeDue has both devices of g read last 3.5 s before the time
// it returns, a second ago: their comm alarms (timeout 3 s) fell due by
// then. Nothing is raised yet.
func silentBeforeDue(t *testing.T, g *Gateway) (due time.Time) {
	t.Helper()
	due = time.Now().Add(-time.Second)
	silentSince(t, g, due.Add(-3500*time.Millisecond), due)
	return due
}

// silentSince has both devices of g read last at then; nothing is raised
// by due.
func silentSince(t *testing.T, g *Gateway, then, due time.Time) {
	t.Helper()
	ctx := t.Context()
	g.flush(ctx, g.eng.Tick(then))
	old := benchBatches(2)
	for i := range old {
		old[i].At = then
	}
	g.tickedAt = time.Now() // no tick at the end of this burst
	g.onBatches(ctx, old)
	raised, cleared := commTransitions(t, g, due)
	require.Zero(t, raised+cleared)
}

// commTransitions commits what waits, drains the outbox's alarm lane and
// counts the comm alarms raised (each must carry the time due) and
// cleared.
func commTransitions(t *testing.T, g *Gateway, due time.Time) (raised, cleared int) {
	t.Helper()
	for _, e := range commEvents(t, g, "") {
		switch e.Type {
		case "activate":
			raised++
			require.True(t, e.TS.Equal(due), "%s raised at %v, the tick fell due at %v", e.Alarm, e.TS, due)
		case "return":
			cleared++
		}
	}
	return raised, cleared
}

// commEvent is a comm alarm's event, read back from the outbox.
type commEvent struct {
	Type  string    `json:"type"`
	Alarm string    `json:"alarm"`
	TS    time.Time `json:"ts"`
}

// commEvents commits what waits, drains and releases the outbox's alarm
// lane, and returns the comm alarm events in it of the devices whose ids
// start with dev ("": all).
func commEvents(t *testing.T, g *Gateway, dev string) []commEvent {
	t.Helper()
	var evs []commEvent
	for _, r := range drainAlarmLane(t, g) {
		var e commEvent
		if r.Kind != outbox.KindEvent || json.Unmarshal(r.Payload, &e) != nil ||
			!strings.HasSuffix(e.Alarm, ".comm") || !strings.HasPrefix(e.Alarm, dev) {
			continue
		}
		evs = append(evs, e)
	}
	return evs
}

// drainAlarmLane commits what waits, and drains and releases the outbox's
// alarm lane.
func drainAlarmLane(t *testing.T, g *Gateway) []outbox.Record {
	t.Helper()
	ctx := t.Context()
	g.flush(ctx, nil)
	recs, err := g.ob.Drain(outbox.Alarms, 0, 100000)
	require.NoError(t, err)
	for _, r := range recs {
		require.NoError(t, g.ob.Release(ctx, r.Key))
	}
	return recs
}

// A core far behind sheds the readings of the polls that change no alarm:
// a poll evaluated more than half its device's comm timeout (and at least
// minShedAge) after it was read (3 s at the 1 s poll here: shed after
// 1.5 s) is evaluated, and its
// readings are counted as shed, not appended; the device's next appended
// poll, or else the next flush, leaves their seqs unused. A late poll that
// raises an alarm keeps its readings, and so does every poll once the
// gateway is stopping.
func TestCoreShedsTheReadingsOfLatePolls(t *testing.T) {
	g := newCoreGateway(t, 3, Options{})
	ctx := t.Context()
	d0, d1, d2 := loadtest.DeviceID(0), loadtest.DeviceID(1), loadtest.DeviceID(2)
	require.Equal(t, 1500*time.Millisecond, g.shedAfter[d0])
	now := time.Now()
	poll := func(dev int, age time.Duration, ch4 float64) modbus.Batch {
		b := benchBatches(dev + 1)[dev]
		b.At = now.Add(-age)
		b.Readings[0].Value = ch4
		return b
	}
	// Ages only grow while the test runs: those kept are 1 s inside the rule.
	g.onBatches(ctx, []modbus.Batch{
		poll(0, 6*time.Second, 0.2),        // shed
		poll(0, 5*time.Second, 0.2),        // shed
		poll(0, 4*time.Second, 1.2),        // raises the high alarm: kept, after a gap of 2
		poll(0, 3*time.Second, 1.2),        // still high, changes nothing: shed
		poll(1, 2*time.Second, 0.2),        // shed
		poll(2, 2*time.Second, 0.25),       // shed, and no later poll of d002
		poll(0, 500*time.Millisecond, 1.2), // kept, after a gap of 1
		poll(1, 400*time.Millisecond, 0.2), // kept, after a gap of 1
	})
	v, _, ok := g.eng.Point(d2 + ".s00")
	require.True(t, ok)
	require.Equal(t, 0.25, v, "a shed poll is still evaluated")
	g.stopping = true // shutdown: nothing is shed, and commits wait for the disk
	g.onBatches(ctx, []modbus.Batch{poll(1, 10*time.Second, 0.2)})
	g.flush(ctx, nil)

	recs, err := g.ob.Drain(outbox.Readings, 0, 100)
	require.NoError(t, err)
	seqs := map[string][]uint64{}
	for _, r := range recs {
		var m struct {
			Seq     uint64 `json:"seq"`
			Device  string `json:"device"`
			Reading []struct {
				Value float64 `json:"value"`
			} `json:"readings"`
		}
		require.NoError(t, json.Unmarshal(r.Payload, &m))
		require.Equal(t, r.Seq, m.Seq)
		require.Equal(t, r.Stream, m.Device)
		if m.Device == d0 {
			require.Equal(t, 1.2, m.Reading[0].Value, "d000 kept only its high polls")
		}
		seqs[r.Stream] = append(seqs[r.Stream], r.Seq)
	}
	require.Equal(t, map[string][]uint64{d0: {3, 5}, d1: {2, 3}}, seqs)
	require.Equal(t, uint64(1), g.ob.LastSeq(outbox.KindReadings, d2),
		"a device's last shed polls leave their seqs unused at the flush, with no record")

	alarms, err := g.ob.Drain(outbox.Alarms, 0, 100)
	require.NoError(t, err)
	raised := 0
	for _, r := range alarms {
		if r.Kind == outbox.KindEvent && strings.Contains(string(r.Payload), `"alarm":"`+d0+`.s00.`) {
			raised++
		}
	}
	require.Positive(t, raised, "the late poll's alarm is committed")

	mfs, err := g.o.Registry.Gather()
	require.NoError(t, err)
	shed := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "canary_readings_shed_total" {
			shed = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	require.Equal(t, 5.0*20, shed, "five polls of 20 readings shed")
}

// awayFromGridTime waits, if need be, until the next multiple of grid is
// at least room away.
func awayFromGridTime(grid, room time.Duration) {
	now := time.Now()
	if next := now.Truncate(grid).Add(grid); next.Sub(now) < room {
		time.Sleep(next.Sub(now) + time.Millisecond)
	}
}

// TestQueueDepthIsExported: canary_core_queued_polls counts the polls read
// and waiting for the core, canary_core_queue_capacity how many may wait.
func TestQueueDepthIsExported(t *testing.T) {
	g := newCoreGateway(t, 3, Options{})
	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := g.o.Registry.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s in /metrics", name)
		return 0
	}
	require.Equal(t, float64(handoverCap(coreSite(t, 3).Devices)), gauge("canary_core_queue_capacity"))
	require.Zero(t, gauge("canary_core_queued_polls"))
	for _, b := range benchBatches(2) { // the core is not running: they wait
		g.batches <- b
	}
	require.Equal(t, 2.0, gauge("canary_core_queued_polls"))
}

// TestLateStartsAreExported: /metrics carries a late-start series for
// every device, labelled with its id. Only the wiring: the gateway here
// never polls, so every count is 0 (drivers/modbus counts them:
// TestLateWakeIsALateStart, TestHandOverWaitIsALateStart).
func TestLateStartsAreExported(t *testing.T) {
	g := newCoreGateway(t, 3, Options{})
	mfs, err := g.o.Registry.Gather()
	require.NoError(t, err)
	devices := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "canary_device_late_starts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "device" {
					devices[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{}
	for _, d := range coreSite(t, 3).Devices {
		want[d.ID] = 0 // not polled yet
	}
	require.Equal(t, want, devices)
}

// TestDevicesConfigIsLetGo: once New has compiled the devices' configs
// (pollers, engine, view, HTTP API, the actions' registers), nothing in the
// gateway holds the parsed devices or their sensors any more: at 1 000
// sensors they are 0.4 MB of heap kept for nothing (docs/performance.md,
// "Memory").
func TestDevicesConfigIsLetGo(t *testing.T) {
	var freed atomic.Int32
	var want int32
	g := func() *Gateway { // the site is the closure's alone
		site := registersSite(t)
		want = int32(1 + len(site.Devices))
		runtime.SetFinalizer(&site.Devices[0], func(*configs.Device) { freed.Add(1) })
		for i := range site.Devices {
			runtime.SetFinalizer(&site.Devices[i].Sensors[0], func(*configs.Sensor) { freed.Add(1) })
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		g, err := New(Options{Site: site, Log: zerolog.Nop(), HTTPListener: ln})
		require.NoError(t, err)
		t.Cleanup(func() { _ = g.Close(); _ = ln.Close() })
		return g
	}()
	require.NotNil(t, g.http, "the HTTP API is built too")
	for range 100 {
		runtime.GC()
		if freed.Load() == want {
			require.Nil(t, g.site.Devices)
			require.Equal(t, 2, g.devices)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d of the %d parsed arrays (devices, each device's sensors) are still reachable from the gateway", want-freed.Load(), want)
}

// TestActionRegistersOutliveTheDevicesConfig: an interlock writes its target
// register and confirms on its read-back register by the sensors configured
// there; those are looked up in New, before the devices' configs go.
func TestActionRegistersOutliveTheDevicesConfig(t *testing.T) {
	site := registersSite(t)
	g, err := New(Options{Site: site, Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	require.Nil(t, g.site.Devices, "the devices' configs are let go")
	for _, c := range []struct {
		table   string
		address int
		want    string
	}{{"coil", 0, "power_cut"}, {"discrete", 4, "feed"}, {"coil", 1, ""}, {"holding", 0, ""}} {
		id, ok := g.sensorAt("relay", c.table, c.address)
		require.Equal(t, c.want != "", ok, "%s %d", c.table, c.address)
		require.Equal(t, c.want, id, "%s %d", c.table, c.address)
	}
}

// registersSite: a methane detector whose high_high trips a relay's coil,
// confirmed on the relay's feed contact (another register).
func registersSite(t *testing.T) *configs.Site {
	t.Helper()
	const text = `
site: regs
mqtt: {url: "tcp://127.0.0.1:1"}
outbox: {dir: OUTBOX}
devices:
  - id: face-gas
    url: tcp://127.0.0.1:20001
    poll: 1s
    sensors:
      - {id: ch4, kind: methane, table: holding, address: 0, type: float32, alarms: {high_high: {action: power-cut}}}
  - id: relay
    url: tcp://127.0.0.1:20002
    poll: 1s
    sensors:
      - {id: power_cut, kind: generic, table: coil, address: 0, type: bool}
      - {id: feed, kind: generic, table: discrete, address: 4, type: bool}
actions:
  - id: power-cut
    device: relay
    table: coil
    address: 0
    trip: 1
    release: 0
    readback: {table: discrete, address: 4, trip: 0, release: 1}
`
	var site configs.Site
	_, err := configs.Parse("regs.yaml", []byte(strings.Replace(text, "OUTBOX", t.TempDir(), 1)), &site)
	require.NoError(t, err)
	return &site
}

// TestSnapshotWaitsForTheTick: the commit of an alarm does not write the
// engine snapshot, even with the last one long ago; the next tick does, on
// the tick grid (item 59: written with the commit, its encoding and fsyncs
// held the core, and on one scheduler thread the publisher with the
// alarm, for about 2 ms). An operator's command is still written at once.
func TestSnapshotWaitsForTheTick(t *testing.T) {
	const tick = 250 * time.Millisecond
	g := newCoreGateway(t, 1, Options{TickEvery: tick})
	start := time.Now()
	g.flush(t.Context(), g.eng.Tick(start))
	g.persistNow(start.Add(-time.Hour)) // the last snapshot an hour ago
	before, err := os.ReadFile(g.statePath)
	require.NoError(t, err)
	require.NotContains(t, string(before), `"d000.s00.high"`, "an alarm in the snapshot before it was raised")

	bs := benchBatches(1)
	bs[0].Readings[0].Value = 1.2 // past s00's 1.0 %vol
	bs[0].At = time.Now()
	g.onBatches(t.Context(), bs)
	st := g.ob.Stats()
	require.Positive(t, st.Records[outbox.Alarms], "the alarm was not committed at once")
	after, err := os.ReadFile(g.statePath)
	require.NoError(t, err)
	require.Equal(t, string(before), string(after), "the snapshot was written with the alarm's commit")
	require.True(t, g.stateDirty, "the snapshot is not due")

	now := time.Now()
	g.tickedAt = now // else the idle bound alone would wake the core at once
	d := g.nextTick(now)
	require.LessOrEqual(t, d, tick, "the core would not wake for the snapshot by the next tick")
	require.Equal(t, untilGrid(now, 0, tick), d, "the snapshot's tick is off the grid")
	g.onTick(t.Context(), now.Add(d))
	after, err = os.ReadFile(g.statePath)
	require.NoError(t, err)
	require.Contains(t, string(after), `"d000.s00.high"`, "the tick did not write the raised alarm into the snapshot")
	require.False(t, g.stateDirty)

	// An operator's command after a quiet spell is written at once.
	g.persistedAt = time.Now().Add(-time.Hour)
	require.NoError(t, g.onCommand(t.Context(), command.Command{Action: command.Ack, Alarm: "d000.s00.high", User: "olga", Comment: "seen"}))
	after, err = os.ReadFile(g.statePath)
	require.NoError(t, err)
	require.Contains(t, string(after), `"acked":true`, "the acknowledgement waited for a tick")
}

// A latching alarm raised (here the coal face's high_high, 1.5 %vol) is in
// the snapshot at once, not at the next tick: a crash in between, the
// trip's own power cut perhaps, would otherwise bring the gateway back
// with no latched alarm once the gas has cleared.
func TestLatchingTripIsSnapshotAtOnce(t *testing.T) {
	g := newCoreGateway(t, 1, Options{TickEvery: 250 * time.Millisecond})
	start := time.Now()
	g.flush(t.Context(), g.eng.Tick(start))
	g.persistNow(start.Add(-time.Hour))
	bs := benchBatches(1)
	bs[0].Readings[0].Value = 1.2 // high only: waits for the tick
	bs[0].At = time.Now()
	g.onBatches(t.Context(), bs)
	snap, err := os.ReadFile(g.statePath)
	require.NoError(t, err)
	require.NotContains(t, string(snap), `"d000.s00.high"`)

	// The last snapshot 50 ms ago, within the routine gap (250 ms).
	g.persistNow(time.Now().Add(-50 * time.Millisecond))
	// As on a quick disk: neededGap at its floor (20 ms). The snapshot
	// just written measured the test machine's disk, and a CI run's took
	// over 5 ms, which set neededGap past the 50 ms.
	g.persistTook = 0
	bs = benchBatches(1)
	bs[0].Readings[0].Value = 1.6 // high_high, latching
	bs[0].At = time.Now()
	g.onBatches(t.Context(), bs)
	snap, err = os.ReadFile(g.statePath)
	require.NoError(t, err)
	require.Contains(t, string(snap), `"d000.s00.high_high"`, "the latching alarm waited for a tick")
	require.False(t, g.stateDirty)
}

// After a crash, every alarm's state is published again, normal ones as an
// empty retained payload: an alarm committed and published after the last
// snapshot left a retained state the restored engine does not have. After
// a clean shutdown only the alarms that need attention are.
func TestCrashRepublishesEveryAlarmState(t *testing.T) {
	site := coreSite(t, 1)
	open := func() *Gateway {
		g, err := New(Options{Site: site, Log: zerolog.Nop(), NoHTTP: true})
		require.NoError(t, err)
		return g
	}
	// statesOf lists the alarm-state records waiting for the broker:
	// alarm id -> payload of its last one.
	statesOf := func(g *Gateway) map[string]string {
		recs, err := g.ob.Drain(outbox.Alarms, 0, 1<<20)
		require.NoError(t, err)
		out := map[string]string{}
		for _, r := range recs {
			if r.Kind == outbox.KindAlarm {
				out[r.Stream] = string(r.Payload)
			}
		}
		return out
	}
	g := open()
	g.flush(t.Context(), g.eng.Tick(time.Now()))
	g.persistNow(time.Now()) // the snapshot before the alarm
	bs := benchBatches(1)
	bs[0].Readings[0].Value = 1.2 // d000.s00.high, not latching: waits for the tick
	bs[0].At = time.Now()
	g.onBatches(t.Context(), bs)
	require.Contains(t, statesOf(g)["d000.s00.high"], `"state":"unacknowledged"`)
	require.NoError(t, g.Close()) // a crash: no tick, no shutdown snapshot

	g = open()
	require.NoError(t, g.restore(t.Context()))
	got := statesOf(g)
	require.Contains(t, got, "d000.s00.high")
	require.Empty(t, got["d000.s00.high"], "the stale retained alarm is not cleared")
	require.NotContains(t, got, "d000.s00.high_high", "a latching alarm's retained state, maybe a missed trip's, was cleared")
	latching := 0
	for _, st := range g.eng.Alarms() {
		if g.eng.Latching(st.ID) {
			latching++
		}
	}
	require.Positive(t, latching)
	require.Len(t, got, len(g.eng.Alarms())-latching, "every other alarm's state again")

	// A clean shutdown: nothing normal is published again.
	require.NoError(t, g.persist())
	g.markClean()
	for _, r := range mustDrain(t, g) {
		require.NoError(t, g.ob.Release(t.Context(), r.Key))
	}
	require.NoError(t, g.Close())
	g = open()
	defer g.Close()
	require.NoError(t, g.restore(t.Context()))
	require.Empty(t, statesOf(g), "normal alarms published again after a clean shutdown")
}

func mustDrain(t *testing.T, g *Gateway) []outbox.Record {
	recs, err := g.ob.Drain(outbox.Alarms, 0, 1<<20)
	require.NoError(t, err)
	return recs
}
