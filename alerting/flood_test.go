package alerting

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFloodMemoryStaysFixed: every sensor of a site fails and recovers on
// every 100 ms poll for two minutes (an overloaded or flapping site: 2 400
// activations of each sensor's bad alarm). The engine flags each alarm
// chattering once and the site's flood once, as a whole-history count
// would, and ends both a full window after the flapping stops, while
// what it keeps for the counts stays at ChatterCount times per alarm and
// floodKeep per site however long the flood lasts.
func TestFloodMemoryStaysFixed(t *testing.T) {
	const sensors = 200
	cfg := methaneConfig(sensors)
	e, err := New(cfg)
	require.NoError(t, err)
	ids := make([]string, sensors)
	for i, pc := range cfg.Points {
		ids[i] = pc.ID()
	}
	samples := make([]Sample, sensors)
	step := func(now time.Time, good bool) []Event {
		for i, id := range ids {
			samples[i] = Sample{Point: id, Value: 0.3, Quality: Good}
			if !good {
				samples[i] = Sample{Point: id, Value: math.NaN(), Quality: BadQuality}
			}
		}
		evs, err := e.Step(now, samples)
		require.NoError(t, err)
		return append(evs, e.Tick(now)...)
	}
	count := map[EventType]int{}
	now := scriptStart
	const cycles = 1200 // 2 minutes of 100 ms polls, bad and good in turn
	for c := range cycles {
		for _, ev := range step(now, c%2 == 1) {
			count[ev.Type]++
		}
		now = now.Add(100 * time.Millisecond)
	}
	require.Equal(t, 1, count[EvFloodStart], "one flood start")
	require.Equal(t, sensors, count[EvChattering], "each bad alarm flagged chattering once")
	require.Equal(t, sensors*cycles/2, count[EvActivate], "every failure annunciated")

	keep := 0
	for _, a := range e.alist {
		if a.x != nil {
			require.LessOrEqual(t, len(a.x.chatter.buf), e.opts.ChatterCount, "alarm %s", a.id)
			keep = max(keep, cap(a.x.chatter.buf))
		}
	}
	require.LessOrEqual(t, keep, 2*e.opts.ChatterCount, "chatter storage per alarm")
	st := e.sites["s"]
	require.LessOrEqual(t, cap(st.acts.buf), 2*e.floodKeep(), "flood storage per site")

	// Quiet for the flood window: the chattering flags end a minute
	// after their last activation, the flood once fewer than FloodEnd
	// activations are left in its window.
	for range int(e.opts.FloodWindow/(100*time.Millisecond)) + 10 {
		for _, ev := range step(now, true) {
			count[ev.Type]++
		}
		now = now.Add(100 * time.Millisecond)
	}
	require.Equal(t, sensors, count[EvChatteringEnd])
	require.Equal(t, 1, count[EvFloodEnd])
	require.False(t, e.Flood("s"))
}
