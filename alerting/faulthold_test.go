package alerting

import (
	"fmt"
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
	// Held, lost again and held again 100 times: one change to show, the
	// list of changes bounded by the alarms.
	changed := e.HeldChanged()
	require.Len(t, changed, 1)
	require.Equal(t, "tank.t1.comm", changed[0].ID)
	require.True(t, changed[0].Held)
	require.Nil(t, e.HeldChanged(), "reported once")
	// Lost again and held again since: as last given, nothing to show.
	now = now.Add(3 * time.Second)
	e.Tick(now)
	now = now.Add(time.Second)
	_, err = e.Step(now, []Sample{{Point: "tank.t1", Value: 20, Quality: Good}})
	require.NoError(t, err)
	require.Nil(t, e.HeldChanged(), "held again, as last shown")
	require.Len(t, e.heldList, 1)
	require.Equal(t, 1, e.Held())
	evs := e.SetFaultHold(now, false, "calm")
	require.Len(t, evs, 1, "the hold's end; the held alarm waits for its release")
	require.Equal(t, EvFaultHoldEnd, evs[0].Type)
	evs = e.ReleaseHeld(now, -1)
	require.Len(t, evs, 1, "the one return")
	require.Equal(t, EvReturn, evs[0].Type)
	require.Empty(t, e.heldList)
	require.Zero(t, e.Held())
	require.False(t, e.points["tank.t1"].comm.inHeldList)
	changed = e.HeldChanged()
	require.Len(t, changed, 1)
	require.False(t, changed[0].Held, "released")
}

// Released a few at a time, the held alarms return in the order they
// were held, and the list is walked once: those no longer held (lost
// again) are passed by, not counted.
func TestReleaseHeldInOrder(t *testing.T) {
	var cfg Config
	for i := range 5 {
		cfg.Points = append(cfg.Points, PointConfig{Site: "s1", Device: "tank", Sensor: fmt.Sprintf("t%d", i), Kind: "temperature", Poll: time.Second})
	}
	e := newEngine(t, cfg)
	now := scriptStart
	good := func(ids ...int) []Sample {
		var s []Sample
		for _, i := range ids {
			s = append(s, Sample{Point: fmt.Sprintf("tank.t%d", i), Value: 20, Quality: Good})
		}
		return s
	}
	_, err := e.Step(now, good(0, 1, 2, 3, 4))
	require.NoError(t, err)
	e.SetFaultHold(now, true, "overloaded")
	now = now.Add(3 * time.Second)
	require.Len(t, e.Tick(now), 5, "all lost")
	// Back in the order 3, 1, 4, 0, 2: held in that order.
	for _, i := range []int{3, 1, 4, 0, 2} {
		now = now.Add(100 * time.Millisecond)
		evs, err := e.Step(now, good(i))
		require.NoError(t, err)
		require.Empty(t, evs)
	}
	require.Equal(t, 5, e.Held())
	var ids []string
	for _, st := range e.HeldChanged() {
		require.True(t, st.Held, st.ID)
		ids = append(ids, st.ID)
	}
	require.Equal(t, []string{"tank.t3.comm", "tank.t1.comm", "tank.t4.comm", "tank.t0.comm", "tank.t2.comm"}, ids, "each held, for a view to show")
	require.Empty(t, e.ReleaseHeld(now, -1), "nothing while the hold is on")
	e.SetFaultHold(now, false, "calm")
	returned := func(evs []Event) (ids []string) {
		for _, ev := range evs {
			if ev.Type == EvFleeting {
				continue // active for a moment: said before its return
			}
			require.Equal(t, EvReturn, ev.Type)
			ids = append(ids, ev.Alarm)
		}
		return ids
	}
	require.Equal(t, []string{"tank.t3.comm", "tank.t1.comm"}, returned(e.ReleaseHeld(now, 2)))
	require.Equal(t, 3, e.Held())
	// t4 lost again before its release: no longer held, and passed by.
	now = now.Add(3 * time.Second)
	_, err = e.Step(now, good(0, 1, 2, 3))
	require.NoError(t, err)
	e.Tick(now)
	require.Equal(t, 2, e.Held())
	require.Equal(t, []string{"tank.t0.comm"}, returned(e.ReleaseHeld(now, 1)))
	require.Equal(t, []string{"tank.t2.comm"}, returned(e.ReleaseHeld(now, 5)))
	require.Zero(t, e.Held())
	require.Empty(t, e.heldList)
	a, ok := e.Alarm("tank.t4.comm")
	require.True(t, ok)
	require.True(t, a.Active, "lost again: active, as any lost point's")
}

// Holds that start again before the last one's alarms are all released
// (a gateway the returns overload again) reuse the list's places: it
// stays within twice the alarms held, however many cycles; and once none
// is held (lost again, or reset), what is left of it is let go.
func TestHeldListReusesReleasedPlaces(t *testing.T) {
	const points = 10
	var cfg Config
	for i := range points {
		cfg.Points = append(cfg.Points, PointConfig{Site: "s1", Device: "tank", Sensor: fmt.Sprintf("t%d", i), Kind: "temperature", Poll: time.Second})
	}
	e := newEngine(t, cfg)
	now := scriptStart
	all := make([]Sample, points)
	for i := range all {
		all[i] = Sample{Point: fmt.Sprintf("tank.t%d", i), Value: 20, Quality: Good}
	}
	step := func(ss []Sample) {
		_, err := e.Step(now, ss)
		require.NoError(t, err)
	}
	step(all)
	// Each cycle those released last time are lost and back, held again,
	// while the others, read all along, stay held.
	lost := map[string]bool{}
	for i := range points {
		lost[fmt.Sprintf("tank.t%d.comm", i)] = true
	}
	for range 50 {
		e.SetFaultHold(now, true, "overloaded")
		var read []Sample
		for _, s := range all {
			if !lost[s.Point+".comm"] {
				read = append(read, s)
			}
		}
		for range 3 {
			now = now.Add(time.Second)
			step(read)
			e.Tick(now)
		}
		now = now.Add(time.Second)
		step(all) // back: held
		require.Equal(t, points, e.Held())
		e.SetFaultHold(now, false, "calm")
		clear(lost)
		for _, ev := range returnsOf(e.ReleaseHeld(now, points/2)) {
			lost[ev.Alarm] = true
		}
		require.Len(t, lost, points/2)
		require.Equal(t, points/2, len(e.heldList)-e.heldHead)
		require.LessOrEqual(t, len(e.heldList), 2*points)
	}
	// The rest lost again: none held, and the list is let go.
	now = now.Add(3 * time.Second)
	e.Tick(now)
	require.Zero(t, e.Held())
	require.Empty(t, e.heldList)
	for _, a := range e.alist {
		require.False(t, a.inHeldList, a.id)
	}
}

// returnsOf is the return events of evs.
func returnsOf(evs []Event) []Event {
	var out []Event
	for _, ev := range evs {
		if ev.Type == EvReturn {
			out = append(out, ev)
		}
	}
	return out
}
