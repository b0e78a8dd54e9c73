package alerting

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/configerr"
)

// fault_vote bypass removes a bad or lost input from the vote: on a
// safety-critical sensor that turns off its fail-safe, a loosening (an
// error unless override_regulatory, then a warning).
func TestFaultVoteBypassOnSafetyCriticalIsLoosening(t *testing.T) {
	for _, tc := range []struct {
		name, kind, vote string
		override         bool
		err              string
		warnOnly         bool
	}{
		{name: "trip on coal methane", kind: "methane", vote: "trip"},
		{name: "bypass on CO (not safety-critical)", kind: "co", vote: "bypass"},
		{name: "bypass on coal methane", kind: "methane", vote: "bypass",
			err: "groups[0].fault_vote: loosens a regulatory limit: fault_vote bypass removes the bad or lost safety-critical sensor a.x from the vote"},
		{name: "bypass on coal methane with override", kind: "methane", vote: "bypass", override: true,
			err: "WARNING: loosens a regulatory limit (override_regulatory is set): fault_vote bypass", warnOnly: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pts []PointConfig
			for _, d := range []string{"a", "b", "c"} {
				pts = append(pts, PointConfig{Site: "s1", Device: d, Sensor: "x", Kind: tc.kind, Poll: time.Second})
			}
			e, err := New(Config{Points: pts, Actions: []ActionConfig{{ID: "cut", Site: "s1"}},
				Groups: []GroupConfig{{ID: "g", Site: "s1", Points: []string{"a.x", "b.x", "c.x"}, M: 2, N: 3,
					FaultVote: tc.vote, Latch: true, Action: "cut", OverrideRegulatory: tc.override}}})
			if tc.err == "" {
				require.NoError(t, err)
				require.NotNil(t, e)
				return
			}
			require.ErrorContains(t, err, tc.err)
			require.Equal(t, !tc.warnOnly, configerr.HasErrors(err))
			require.Equal(t, tc.warnOnly, e != nil)
		})
	}
}

// Table (a) bounds the on-delay of the trip levels whose limits come from
// the config: pressure HH/LL 0–2 s, toxic L2 (and LL) 0–5 s. Longer is a
// loosening.
func TestTripOnDelayAboveTableAIsLoosening(t *testing.T) {
	lim := func(v float64, d time.Duration, override bool) *LimitConfig {
		return &LimitConfig{Limit: &v, OnDelay: &d, OverrideRegulatory: override}
	}
	for _, tc := range []struct {
		name, kind string
		a          SensorAlarms
		err        string
		warnOnly   bool
	}{
		{name: "pressure HH 2s", kind: "pressure", a: SensorAlarms{Range: []float64{0, 10}, HighHigh: lim(9, 2*time.Second, false)}},
		{name: "pressure HH 3s", kind: "pressure", a: SensorAlarms{Range: []float64{0, 10}, HighHigh: lim(9, 3*time.Second, false)},
			err: "alarms.high_high.on_delay: loosens a regulatory limit: on-delay 3s is longer than the pressure trip delay of at most 2s"},
		{name: "pressure LL 120s", kind: "pressure", a: SensorAlarms{Range: []float64{0, 10}, LowLow: lim(1, 120*time.Second, false)},
			err: "alarms.low_low.on_delay: loosens a regulatory limit: on-delay 2m0s is longer than the pressure trip delay of at most 2s"},
		{name: "pressure HH 120s with override", kind: "pressure", a: SensorAlarms{Range: []float64{0, 10}, HighHigh: lim(9, 120*time.Second, true)},
			err: "WARNING: loosens a regulatory limit (override_regulatory is set): on-delay 2m0s", warnOnly: true},
		{name: "pressure H 60s (not a trip)", kind: "pressure", a: SensorAlarms{Range: []float64{0, 10}, High: lim(8, 60*time.Second, false)}},
		{name: "toxic HH 5s", kind: "toxic", a: SensorAlarms{High: lim(10, 0, false), HighHigh: lim(20, 5*time.Second, false)}},
		{name: "toxic HH 300s", kind: "toxic", a: SensorAlarms{High: lim(10, 0, false), HighHigh: lim(20, 300*time.Second, false)},
			err: "alarms.high_high.on_delay: loosens a regulatory limit: on-delay 5m0s is longer than the toxic trip delay of at most 5s"},
		{name: "toxic HH 300s with override", kind: "toxic", a: SensorAlarms{OverrideRegulatory: true, High: lim(10, 0, false), HighHigh: lim(20, 300*time.Second, false)},
			err: "WARNING", warnOnly: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(tc.kind, "", "", time.Second, tc.a)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
			require.Equal(t, !tc.warnOnly, configerr.HasErrors(err))
		})
	}
}
