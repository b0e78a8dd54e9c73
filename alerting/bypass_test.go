package alerting

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// SAFETY §5.3 / table (b): the bypass of an interlock input is a standing
// alarm, time-limited, never silent.
func TestBypassStandsAndIsTimeLimited(t *testing.T) {
	cfg := Config{
		Points: []PointConfig{
			{Site: "s1", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Profile: "coal_face", Poll: time.Second,
				Alarms: SensorAlarms{HighHigh: &LimitConfig{Action: "power-cut"}}},
			{Site: "s1", Device: "a", Sensor: "ch4", Kind: "methane", Poll: time.Second},
			{Site: "s1", Device: "b", Sensor: "ch4", Kind: "methane", Poll: time.Second},
			{Site: "s1", Device: "bay", Sensor: "co", Kind: "co", Poll: time.Second},
		},
		Groups:  []GroupConfig{{ID: "g", Site: "s1", Points: []string{"a.ch4", "b.ch4"}, M: 1, N: 2, Latch: true}},
		Actions: []ActionConfig{{ID: "power-cut", Site: "s1"}},
	}
	e := newEngine(t, cfg)
	t0 := scriptStart
	_, err := e.Step(t0, []Sample{{Point: "face3-gas.ch4", Value: 0.4}, {Point: "a.ch4", Value: 0.2},
		{Point: "b.ch4", Value: 0.2, Quality: BadQuality}, {Point: "bay.co", Value: 0}})
	require.NoError(t, err)
	st, _ := e.Alarm("g.degraded")
	require.True(t, st.Active)

	// Out of service of an interlock input needs an expiry: the point, one
	// of its alarms, a voting member, a group's trip.
	for _, id := range []string{"face3-gas.ch4", "face3-gas.ch4.high_high", "face3-gas.ch4.high", "a.ch4", "a.ch4.high_high", "g.high_high"} {
		_, err := e.OutOfService(t0.Add(time.Second), id, "bob", "sensor swap", 0)
		require.ErrorIs(t, err, ErrBadDuration, id)
	}
	st, _ = e.Alarm("face3-gas.ch4.bypassed")
	require.False(t, st.Active, "a refused out of service bypasses nothing")
	// An alarm outside any interlock may still be out of service until returned.
	_, err = e.OutOfService(t0.Add(time.Second), "bay.co", "bob", "sensor swap", 0)
	require.NoError(t, err)

	evs, err := e.OutOfService(t0.Add(2*time.Second), "face3-gas.ch4", "bob", "sensor swap", time.Hour)
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	st, _ = e.Alarm("face3-gas.ch4.bypassed")
	require.True(t, st.Active)

	// The bypassed and degraded alarms can be neither shelved nor taken
	// out of service.
	for _, id := range []string{"face3-gas.ch4.bypassed", "g.degraded"} {
		_, err = e.Shelve(t0.Add(3*time.Second), id, "carol", "nuisance", time.Hour)
		require.ErrorIs(t, err, ErrNotShelvable, id)
		require.True(t, errors.Is(err, ErrStandingAlarm), id)
		_, err = e.ShelveOneShot(t0.Add(3*time.Second), id, "carol", "nuisance")
		require.ErrorIs(t, err, ErrStandingAlarm, id)
		for _, d := range []time.Duration{0, time.Hour} {
			_, err = e.OutOfService(t0.Add(4*time.Second), id, "bob", "hide it", d)
			require.ErrorIs(t, err, ErrStandingAlarm, id)
		}
		st, _ = e.Alarm(id)
		require.Equal(t, Unacknowledged, st.State, id)
	}

	// The bypass ends with its expiry.
	evs = e.Tick(t0.Add(2*time.Second + time.Hour))
	st, _ = e.Alarm("face3-gas.ch4.high_high")
	require.NotEqual(t, OutOfService, st.State)
	st, _ = e.Alarm("face3-gas.ch4.bypassed")
	require.False(t, st.Active, "%v", evs)
}

// A snapshot written by an engine that still let the bypassed alarm be
// shelved or taken out of service restores it shown.
func TestRestoreDoesNotHideBypassed(t *testing.T) {
	for _, hide := range []string{`"shelve":"timed","shelve_until":"2026-01-01T07:00:00Z"`, `"oos":true`} {
		e := newEngine(t, Config{Points: []PointConfig{{Site: "s1", Device: "face3-gas", Sensor: "ch4", Kind: "methane",
			Profile: "coal_face", Poll: time.Second, Alarms: SensorAlarms{HighHigh: &LimitConfig{Action: "power-cut"}}}},
			Actions: []ActionConfig{{ID: "power-cut", Site: "s1"}}})
		snap := `{"version":1,"seq":{"s1":3},"alarms":[
			{"id":"face3-gas.ch4.high_high","acked":true,"oos":true,"oos_until":"2026-01-01T07:00:00Z"},
			{"id":"face3-gas.ch4.bypassed","active":true,"acked":false,"since":"2026-01-01T06:00:00Z",` + hide + `}]}`
		_, err := e.Restore(scriptStart.Add(time.Minute), []byte(snap))
		require.NoError(t, err)
		st, _ := e.Alarm("face3-gas.ch4.bypassed")
		require.True(t, st.Active, hide)
		require.Equal(t, Unacknowledged, st.State, hide)
	}
}
