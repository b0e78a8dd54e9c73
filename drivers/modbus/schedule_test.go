package modbus

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSchedule(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const period = 100 * time.Millisecond
	tests := []struct {
		name        string
		fails       int
		done        time.Duration // when the poll of tick t0 finished
		wantNext    time.Duration
		wantSkipped uint64
		wantBackoff uint64
	}{
		{"on time", 0, 30 * time.Millisecond, 100 * time.Millisecond, 0, 0},
		{"finished exactly at the next tick skips it", 0, 100 * time.Millisecond, 200 * time.Millisecond, 1, 0},
		{"overrun by 3.5 periods: skipped, not bunched", 0, 350 * time.Millisecond, 400 * time.Millisecond, 3, 0},
		{"first failure: next tick as usual", 1, 60 * time.Millisecond, 100 * time.Millisecond, 0, 0},
		{"second failure: 1 period backoff", 2, 60 * time.Millisecond, 200 * time.Millisecond, 0, 1},
		{"fourth failure: 4 periods backoff", 4, 60 * time.Millisecond, 500 * time.Millisecond, 0, 4},
		{"backoff capped by max_backoff", 30, 60 * time.Millisecond, 1100 * time.Millisecond, 0, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Poller{}
			d := &devState{cfg: DeviceConfig{Poll: period, MaxBackoff: time.Second}, next: t0, fails: tc.fails}
			p.schedule(d, t0.Add(tc.done))
			require.Equal(t, t0.Add(tc.wantNext), d.next, "stays on the grid of t0")
			require.Equal(t, tc.wantSkipped, d.stats.Skipped)
			require.Equal(t, tc.wantBackoff, d.stats.Backoff)
			require.Equal(t, tc.wantSkipped+tc.wantBackoff, d.pending)
		})
	}
}

func TestGroupSpreadsLinksInSlots(t *testing.T) {
	mk := func(n int, poll time.Duration) *Group {
		g := &Group{}
		for range n {
			g.pollers = append(g.pollers, &Poller{devs: []*devState{{cfg: DeviceConfig{Poll: poll}}, {cfg: DeviceConfig{Poll: 2 * poll}}}})
		}
		return g
	}
	// A small group starts together: one wake-up per period.
	g := mk(smallGroup, time.Second)
	g.spread()
	for _, p := range g.pollers {
		require.Zero(t, p.phase)
	}
	// 25 links past the small group: slots of linksPerSlot a fraction of
	// the (shortest) period apart, filled round robin.
	n := smallGroup + 25
	g = mk(n, 800*time.Millisecond)
	g.spread()
	slots := (n + linksPerSlot - 1) / linksPerSlot
	count := map[time.Duration]int{}
	for i, p := range g.pollers {
		require.Equal(t, 800*time.Millisecond*time.Duration(i%slots)/time.Duration(slots), p.phase)
		count[p.phase]++
	}
	require.Len(t, count, slots)
	for _, c := range count {
		require.LessOrEqual(t, c, linksPerSlot)
	}
}

// TestLateTimeout: a timeout is the gateway's own lateness only when the
// read came back well past its deadline; a silent device returns at the
// deadline (plus wake-up jitter) and stays a device timeout.
func TestLateTimeout(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		elapsed, timeout time.Duration
		want             bool
	}{
		{500 * ms, 500 * ms, false}, // at the deadline: the device was silent
		{530 * ms, 500 * ms, false}, // a slow wake-up is still the device
		{769 * ms, 500 * ms, false}, // up to half a timeout + 20 ms
		{771 * ms, 500 * ms, true},  // the poller was not running
		{3 * time.Second, 500 * ms, true},
		{140 * ms, 80 * ms, false},
		{141 * ms, 80 * ms, true},
		{time.Hour, 0, false}, // no timeout known: never "late"
	} {
		require.Equal(t, tc.want, late(tc.elapsed, tc.timeout), "%v of %v", tc.elapsed, tc.timeout)
	}
}

// TestSlowLinkIsNotALateStart: two devices share a link, and the first
// answers 700 ms after each request: the second device's polls start that
// much after their tick, because the link was busy, not because the
// gateway ran late. Neither counts a late start.
func TestSlowLinkIsNotALateStart(t *testing.T) {
	url := requestServer(t, func(req []byte) []byte { // unit 1 slow, unit 2 at once
		if req[6] == 1 {
			time.Sleep(700 * time.Millisecond)
		}
		return answerTo(req)
	})
	slow := device("slow", url, 1, time.Second, []SensorConfig{sensor("v", "holding", 0, "float32", "ABCD")})
	fast := device("fast", url, 2, time.Second, []SensorConfig{sensor("v", "holding", 0, "float32", "ABCD")})
	slow.Config.Timeout, fast.Config.Timeout = 900*time.Millisecond, 900*time.Millisecond
	var c batches
	g, stop := runGroup(t, []Device{slow, fast}, c.sink) // slow first: polled first at a shared tick
	require.Eventually(t, func() bool { return len(c.get("fast")) >= 3 }, 15*time.Second, 20*time.Millisecond)
	stop()

	for _, b := range c.get("fast") {
		require.NoError(t, b.Err)
		// The premise: the fast device waited for the link. Its tick
		// is on the second's grid; its answer came 700 ms or more later.
		require.GreaterOrEqual(t, b.At.Sub(b.At.Truncate(time.Second)), 690*time.Millisecond, "the fast device did not wait for the link")
	}
	for _, s := range g.Stats() {
		require.Positive(t, s.Polls, "device %s", s.Device)
		require.Zero(t, s.LateStarts, "device %s: a late start counted for a busy link", s.Device)
		require.Zero(t, s.Skipped, "device %s", s.Device)
	}
}

// TestLateWakeIsALateStart: a poller put off after its timer fired (as a
// busy gateway's scheduler does) by more than a quarter of the poll period
// counts a late start; put off by less, it does not. (Margins are wide: a
// loaded test machine may delay a wake-up by tens of milliseconds.)
func TestLateWakeIsALateStart(t *testing.T) {
	url := requestServer(t, answerTo)
	d := device("dev", url, 1, time.Second, []SensorConfig{sensor("v", "holding", 0, "float32", "ABCD")})
	var wakes atomic.Int32
	stallWake = func() {
		switch wakes.Add(1) {
		case 2:
			time.Sleep(600 * time.Millisecond) // past a quarter of 1 s
		case 3:
			time.Sleep(20 * time.Millisecond) // within it
		}
	}
	t.Cleanup(func() { stallWake = nil }) // after the pollers stop
	var c batches
	var lateness Lateness
	g, stop := runGroupWith(t, []Device{d}, Options{Sink: c.sink, Lateness: &lateness})
	require.Eventually(t, func() bool { return len(c.get("dev")) >= 4 }, 15*time.Second, 20*time.Millisecond)
	stop()
	s := g.Stats()[0]
	require.Equal(t, uint64(1), s.LateStarts, "the poll put off 600 ms, and only it")
	require.Zero(t, s.Late, "nothing spoilt: the poll only started late")
	// The shared counters count the same (Options.Lateness).
	require.Equal(t, uint64(1), lateness.LateStarts.Load())
	require.Zero(t, lateness.Late.Load())
	require.GreaterOrEqual(t, lateness.Polls.Load(), s.Polls)
}

// TestGridStart: the first tick is on the grid (plus the phase), after
// now, and keeps the monotonic clock reading, so that the schedule does
// not follow steps of the wall clock.
func TestGridStart(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct{ grid, phase time.Duration }{
		{time.Second, 0}, {100 * time.Millisecond, 0}, {time.Second, 300 * time.Millisecond},
	} {
		start := gridStart(now, tc.grid, tc.phase)
		require.Contains(t, start.String(), "m=", "grid %s: the monotonic reading is kept", tc.grid)
		onGrid := start.Add(-tc.phase)
		require.Zero(t, onGrid.Round(0).Sub(onGrid.Round(0).Truncate(tc.grid)), "grid %s: on the grid", tc.grid)
		require.True(t, onGrid.After(now), "grid %s: after now", tc.grid)
		require.LessOrEqual(t, onGrid.Sub(now), tc.grid, "grid %s: within a grid period", tc.grid)
	}
}

// TestHandOverWaitIsALateStart: a poller that waits to hand its batch over
// (a core that is behind, Options.Sink) starts its next poll late, with
// the link free all along: a late start.
func TestHandOverWaitIsALateStart(t *testing.T) {
	url := requestServer(t, answerTo)
	d := device("dev", url, 1, time.Second, []SensorConfig{sensor("v", "holding", 0, "float32", "ABCD")})
	var c batches
	var n atomic.Int32
	g, stop := runGroup(t, []Device{d}, func(b Batch) {
		if n.Add(1) == 2 {
			// Past the next tick (1 s) and a quarter period more: the
			// next poll starts about 400 ms after its tick.
			time.Sleep(1400 * time.Millisecond)
		}
		c.sink(b)
	})
	require.Eventually(t, func() bool { return len(c.get("dev")) >= 4 }, 15*time.Second, 20*time.Millisecond)
	stop()
	s := g.Stats()[0]
	require.Equal(t, uint64(1), s.LateStarts, "the poll after the wait, and only it")
	require.Zero(t, s.Skipped, "the wait ended before the tick after")
}
