package alerting

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/configerr"
)

// A reading far below the valid range (negative oxygen) is a sensor fault:
// bad quality and the bad alarm, never silence. Above the range a sensor is
// saturated but readable: uncertain, and it still counts for high limits.
func TestOutOfRangeReadings(t *testing.T) {
	e, err := New(Config{Points: []PointConfig{
		{Site: "s", Device: "d", Sensor: "o2", Kind: "oxygen", Poll: time.Second},
		{Site: "s", Device: "d", Sensor: "lel", Kind: "combustible", Poll: time.Second},
	}})
	require.NoError(t, err)
	t0 := scriptStart
	_, err = e.Step(t0, []Sample{{Point: "d.o2", Value: 20.9}, {Point: "d.lel", Value: 0}})
	require.NoError(t, err)

	_, err = e.Step(t0.Add(time.Second), []Sample{{Point: "d.o2", Value: -3}, {Point: "d.lel", Value: 150}})
	require.NoError(t, err)
	_, q, _ := e.Point("d.o2")
	require.Equal(t, BadQuality, q)
	st, ok := e.Alarm("d.o2.bad")
	require.True(t, ok)
	require.True(t, st.Active, "an impossible negative oxygen reading raises the sensor's bad alarm")

	_, q, _ = e.Point("d.lel")
	require.Equal(t, Uncertain, q, "over-range is uncertain")
	hh, ok := e.Alarm("d.lel.high_high")
	require.True(t, ok)
	require.True(t, hh.Active, "over-range still counts for the high limits")

	// A little zero drift below the range stays good.
	_, err = e.Step(t0.Add(2*time.Second), []Sample{{Point: "d.o2", Value: -0.2}})
	require.NoError(t, err)
	_, q, _ = e.Point("d.o2")
	require.Equal(t, Good, q)
}

// A range whose fault floor (2 % of the span under its minimum) is below
// the preset's loosens fault detection — a lower minimum or a wider span:
// an error unless override_regulatory, then a warning.
func TestRangeBelowThePresetIsLoosening(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a        SensorAlarms
		err      string
		warnOnly bool
	}{
		{name: "the preset's", a: SensorAlarms{Range: []float64{0, 4}}},
		{name: "narrower", a: SensorAlarms{Range: []float64{0, 2}}},
		{name: "wider top", a: SensorAlarms{Range: []float64{0, 100}}, err: "range [0 100] puts the sensor-fault floor at -2, below the methane/coal_face preset's -0.08"},
		{name: "negative minimum", a: SensorAlarms{Range: []float64{-50, 100}}, err: "below the methane/coal_face preset's -0.08"},
		{name: "with override", a: SensorAlarms{Range: []float64{-50, 100}, OverrideRegulatory: true}, err: "WARNING: loosens a regulatory limit", warnOnly: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve("methane", "coal_face", "", time.Second, tc.a)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
			require.Equal(t, !tc.warnOnly, configerr.HasErrors(err))
		})
	}
}

// Table (a)'s latches on conditions whose limits come from the config
// (toxic L2, pressure HH/LL) are regulatory: removing one needs
// override_regulatory; the limits themselves are the config's.
func TestConfigLimitLatchesAreRegulatory(t *testing.T) {
	f := false
	lim := 2.5
	for _, kind := range []string{"toxic", "pressure"} {
		_, err := Resolve(kind, "", "", time.Second, SensorAlarms{HighHigh: &LimitConfig{Limit: &lim, Latch: &f}})
		require.ErrorContains(t, err, "removes the latch", kind)
		require.True(t, configerr.HasErrors(err), kind)
		_, err = Resolve(kind, "", "", time.Second, SensorAlarms{HighHigh: &LimitConfig{Limit: &lim}})
		require.NoError(t, err, kind)
	}
}

// Toxic has no preset range: a configured one may not put the floor below
// 6 % of L1 under zero without override_regulatory.
func TestToxicRangeFloor(t *testing.T) {
	lim := 10.0
	_, err := Resolve("toxic", "", "", time.Second, SensorAlarms{High: &LimitConfig{Limit: &lim}, Range: []float64{0, 30}})
	require.NoError(t, err, "0-300 % OEL: floor -0.6, the profile's")
	_, err = Resolve("toxic", "", "", time.Second, SensorAlarms{High: &LimitConfig{Limit: &lim}, Range: []float64{-100, 300}})
	require.ErrorContains(t, err, "below the toxic profile's -0.6")
	require.True(t, configerr.HasErrors(err))
}

// An over-range value the driver already delivered as uncertain is the same
// reading: it still counts for the high-side limits (not the low ones), and
// an uncertain value inside the range still holds them.
func TestUncertainOverRangeRaisesHighLimits(t *testing.T) {
	e, err := New(Config{Points: []PointConfig{
		{Site: "s", Device: "d", Sensor: "lel", Kind: "combustible", Poll: time.Second},
		{Site: "s", Device: "d", Sensor: "o2", Kind: "oxygen", Poll: time.Second},
	}})
	require.NoError(t, err)
	t0 := scriptStart
	_, err = e.Step(t0, []Sample{{Point: "d.lel", Value: 0}, {Point: "d.o2", Value: 20.9}})
	require.NoError(t, err)
	// Uncertain inside the range: held.
	_, err = e.Step(t0.Add(time.Second), []Sample{{Point: "d.lel", Value: 60, Quality: Uncertain}})
	require.NoError(t, err)
	hh, _ := e.Alarm("d.lel.high_high")
	require.False(t, hh.Active, "an uncertain reading inside the range holds the limits")

	_, err = e.Step(t0.Add(2*time.Second), []Sample{{Point: "d.lel", Value: 120, Quality: Uncertain},
		{Point: "d.o2", Value: 30, Quality: Uncertain}})
	require.NoError(t, err)
	_, q, _ := e.Point("d.lel")
	require.Equal(t, Uncertain, q)
	for id, v := range map[string]float64{"d.lel.high_high": 120, "d.lel.high": 120, "d.o2.high": 30} {
		st, _ := e.Alarm(id)
		require.True(t, st.Active, "%s: an uncertain over-range reading counts for the high limits", id)
		require.Equal(t, v, st.Value, id)
	}
	st, _ := e.Alarm("d.o2.low")
	require.False(t, st.Active)
}
