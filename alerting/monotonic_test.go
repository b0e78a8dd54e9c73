package alerting

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Times from different sources (a poll's response arrival, the gateway's
// ticker, an operator) can arrive slightly out of order. Inside the engine
// time never runs backwards: no event is stamped before an earlier one.
func TestTimeNeverRunsBackwards(t *testing.T) {
	e, err := New(Config{Points: []PointConfig{{Site: "s", Device: "d", Sensor: "ch4", Kind: "methane", Poll: time.Second}}})
	require.NoError(t, err)
	t0 := scriptStart
	var all []Event
	evs, err := e.Observe(t0.Add(10*time.Second), Sample{Point: "d.ch4", Value: 1.2})
	require.NoError(t, err)
	all = append(all, evs...)
	// Polls fail from 11 s on; at the 15 s tick no good sample came for
	// more than 3 × poll: communication loss.
	for s := 11; s <= 14; s++ {
		evs, err = e.Observe(t0.Add(time.Duration(s)*time.Second), Sample{Point: "d.ch4", Quality: BadQuality})
		require.NoError(t, err)
		all = append(all, evs...)
	}
	all = append(all, e.Tick(t0.Add(15*time.Second))...)
	// A good poll whose response arrived at 14.5 s is evaluated after the tick.
	evs, err = e.Observe(t0.Add(14500*time.Millisecond), Sample{Point: "d.ch4", Value: 0.2})
	require.NoError(t, err)
	all = append(all, evs...)
	var sawComm bool
	for _, ev := range all {
		if ev.Alarm == "d.ch4.comm" {
			sawComm = true
		}
	}
	require.True(t, sawComm, "the test needs a tick-driven comm alarm: %v", all)
	for i := 1; i < len(all); i++ {
		require.False(t, all[i].TS.Before(all[i-1].TS), "event %d (%s %s) at %s is before event %d at %s",
			i, all[i].Type, all[i].Alarm, all[i].TS, i-1, all[i-1].TS)
	}
	st, ok := e.Alarm("d.ch4.comm")
	require.True(t, ok)
	require.False(t, st.Updated.Before(st.Since), "updated %s before since %s", st.Updated, st.Since)
}
