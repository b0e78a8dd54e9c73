package alerting

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A site's suppress_by names a discrete sensor with a comm alarm, not the
// alarm's own, and hides a priority-1 or interlock alarm only where the
// config allows it (shelvable: true), as shelving.
func TestSuppressByChecks(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	no, yes := false, true
	stop := PointConfig{Site: "s", Device: "pump", Sensor: "stop", Kind: "generic", Discrete: true, Path: "stop"}
	cases := []struct {
		name   string
		stop   PointConfig
		alarms SensorAlarms
		err    string
	}{
		{"a contact with its comm alarm", stop, SensorAlarms{Low: &LimitConfig{Limit: f(0.2), SuppressBy: "pump.stop"}}, ""},
		{"a contact without its comm alarm", func() PointConfig {
			p := stop
			p.Alarms.Comm = &LimitConfig{Enabled: &no, OverrideRegulatory: true}
			return p
		}(), SensorAlarms{Low: &LimitConfig{Limit: f(0.2), SuppressBy: "not pump.stop"}}, `"pump.stop" has no comm alarm`},
		{"a priority-1 alarm", stop, SensorAlarms{LowLow: &LimitConfig{Limit: f(0.1), Priority: new(1), SuppressBy: "pump.stop"}},
			"a priority-1 or interlock alarm is suppressed by design only with shelvable: true"},
		{"a priority-1 alarm allowed", stop, SensorAlarms{LowLow: &LimitConfig{Limit: f(0.1), Priority: new(1), SuppressBy: "pump.stop", Shelvable: &yes}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{PointFlagsOnly: true, Points: []PointConfig{c.stop,
				{Site: "s", Device: "pump-pt", Sensor: "suction", Kind: "pressure", Path: "suction", Alarms: c.alarms}}}
			_, err := New(cfg)
			if c.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, c.err)
		})
	}
}
