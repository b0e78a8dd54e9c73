package alerting

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A point that flaps all through a long hold is held once: the list the
// hold's end walks is bounded by the site's comm alarms, not by the flaps.
func TestFaultHoldListBounded(t *testing.T) {
	cfg := Config{Points: []PointConfig{{Site: "s1", Device: "tank", Sensor: "t1", Kind: "temperature", Poll: time.Second}}}
	e := newEngine(t, cfg)
	now := scriptStart
	_, err := e.Step(now, []Sample{{Point: "tank.t1", Value: 20, Quality: Good}})
	require.NoError(t, err)
	e.SetFaultHold(now, true, "overloaded")
	require.False(t, e.Unsaved())
	raised := 0
	for range 100 {
		now = now.Add(3 * time.Second)
		for _, ev := range e.Tick(now) { // lost
			if ev.Type == EvActivate {
				raised++
			}
		}
		now = now.Add(time.Second)
		evs, err := e.Step(now, []Sample{{Point: "tank.t1", Value: 20, Quality: Good}}) // back: held
		require.NoError(t, err)
		require.Empty(t, evs)
		// No event, but the snapshot marks the held alarms: save it.
		require.True(t, e.Unsaved())
		require.False(t, e.Unsaved(), "reported once")
	}
	require.Equal(t, 1, raised, "raised once, held since")
	require.Len(t, e.heldList, 1)
	evs := e.SetFaultHold(now, false, "calm")
	require.Len(t, evs, 2, "the hold's end, and the one return")
	require.Equal(t, EvReturn, evs[1].Type)
	require.Empty(t, e.heldList)
	require.False(t, e.points["tank.t1"].comm.inHeldList)
}
