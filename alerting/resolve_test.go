package alerting

import (
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/configerr"
)

func f(v float64) *float64             { return &v }
func b(v bool) *bool                   { return &v }
func d(v time.Duration) *time.Duration { return &v }
func i(v int) *int                     { return &v }

func paths(err error) []string {
	var out []string
	for _, fe := range configerr.Sorted(err) {
		sev := "E "
		if fe.Severity == configerr.SeverityWarning {
			sev = "W "
		}
		out = append(out, sev+fe.Path)
	}
	sort.Strings(out)
	return out
}

// TestPresets checks every preset of SAFETY.md table (a) the brief names.
func TestPresets(t *testing.T) {
	type lvl struct {
		c          Condition
		limit      float64
		prio       int
		latch      bool
		restore    float64
		hasRestore bool
	}
	cases := []struct {
		kind, profile, unit string
		levels              []lvl
		safety              bool
	}{
		{"methane", "", "%vol", []lvl{{HighHigh, 1.5, 1, true, 1.0, true}, {High, 1.0, 2, false, 0, false}}, true},
		{"methane", "coal_face", "%vol", []lvl{{HighHigh, 1.5, 1, true, 1.0, true}, {High, 1.0, 2, false, 0, false}}, true},
		{"methane", "return_airway", "%vol", []lvl{{HighHigh, 1.0, 1, true, 1.0, true}, {High, 1.0, 2, false, 1.0, true}}, true},
		{"methane", "intake", "%vol", []lvl{{HighHigh, 0.5, 1, true, 0.5, true}, {High, 0.5, 2, false, 0.5, true}}, true},
		{"methane", "main_return", "%vol", []lvl{{High, 0.75, 2, false, 0, false}}, true},
		{"methane", "us_coal_machine", "%vol", []lvl{{HighHigh, 2.0, 1, true, 0, false}, {High, 1.0, 2, false, 0, false}}, true},
		{"combustible", "", "%LEL", []lvl{{HighHigh, 40, 1, true, 0, false}, {High, 20, 2, false, 0, false}}, false},
		{"combustible", "cn_petrochem", "%LEL", []lvl{{HighHigh, 50, 1, true, 0, false}, {High, 20, 2, false, 0, false}}, false},
		{"h2s", "", "ppm", []lvl{{HighHigh, 20, 1, false, 0, false}, {High, 10, 2, false, 0, false}, {TWA, 10, 3, false, 0, false}, {STEL, 15, 2, false, 0, false}}, false},
		{"h2s", "cn_petrochem", "mg/m3", []lvl{{HighHigh, 20, 1, true, 0, false}, {High, 10, 2, false, 0, false}}, false},
		{"co", "", "ppm", []lvl{{HighHigh, 70, 1, false, 0, false}, {High, 35, 2, false, 0, false}}, false},
		{"co", "cn_coal", "ppm", []lvl{{High, 24, 2, false, 0, false}}, false},
		{"oxygen", "", "%vol", []lvl{{High, 23.5, 2, false, 0, false}, {Low, 19.5, 2, false, 0, false}, {LowLow, 18.0, 1, true, 0, false}}, false},
		{"current", "", "mA", nil, false},
		{"temperature", "", "°C", nil, false},
		{"generic", "", "", nil, false},
	}
	for _, c := range cases {
		t.Run(c.kind+"/"+c.profile, func(t *testing.T) {
			r, err := Resolve(c.kind, c.profile, "", time.Second, SensorAlarms{})
			require.NoError(t, err)
			require.Equal(t, c.unit, r.Unit)
			require.Equal(t, c.safety, r.SafetyCritical)
			for _, l := range c.levels {
				s, ok := r.Cond(l.c)
				require.True(t, ok, "condition %s", l.c)
				require.Equal(t, l.limit, s.Limit, "%s limit", l.c)
				require.Equal(t, l.prio, s.Priority, "%s priority", l.c)
				require.Equal(t, l.latch, s.Latch, "%s latch", l.c)
				require.Equal(t, l.hasRestore, s.HasRestore, "%s restore", l.c)
				require.Equal(t, l.restore, s.Restore, "%s restore", l.c)
				require.True(t, s.Regulatory)
				require.NotEmpty(t, s.Source)
			}
			// every kind has the fault conditions: a lost sensor is an alarm
			_, ok := r.Cond(Bad)
			require.True(t, ok)
			_, ok = r.Cond(Comm)
			require.True(t, ok)
		})
	}
}

func TestPressurePresetSpanDeadband(t *testing.T) {
	r, err := Resolve("pressure", "", "", time.Second, SensorAlarms{
		Range: []float64{0, 10}, High: &LimitConfig{Limit: f(6)}, HighHigh: &LimitConfig{Limit: f(8)}})
	require.NoError(t, err)
	h, _ := r.Cond(High)
	require.InDelta(t, 0.2, h.Deadband, 1e-12)
	require.Equal(t, 15*time.Second, h.OnDelay)
	require.Equal(t, 15*time.Second, h.OffDelay)
	require.Equal(t, 2, h.Priority)
	hh, _ := r.Cond(HighHigh)
	require.True(t, hh.Latch)
	require.Equal(t, 1, hh.Priority)
	require.Zero(t, hh.OnDelay)
	require.Equal(t, "MPa", r.Unit)
}

func TestCommTimeout(t *testing.T) {
	r, err := Resolve("methane", "", "", 20*time.Second, SensorAlarms{})
	require.NoError(t, err)
	c, _ := r.Cond(Comm)
	require.Equal(t, 30*time.Second, c.Timeout, "coal profiles cap the comm timeout at 30 s")
	r, err = Resolve("co", "", "", 2*time.Second, SensorAlarms{})
	require.NoError(t, err)
	c, _ = r.Cond(Comm)
	require.Equal(t, 6*time.Second, c.Timeout, "3 x poll")
}

func TestResolveErrors(t *testing.T) {
	cases := []struct {
		name          string
		kind, profile string
		unit          string
		a             SensorAlarms
		want          []string
	}{
		{"unknown kind", "methan", "", "", SensorAlarms{}, []string{"E kind"}},
		{"unknown profile", "methane", "face", "", SensorAlarms{}, []string{"E profile"}},
		{"unit mismatch", "h2s", "", "mg/m3", SensorAlarms{}, []string{"E unit"}},
		{"raise high limit", "methane", "", "", SensorAlarms{High: &LimitConfig{Limit: f(1.2)}}, []string{"E alarms.high.limit"}},
		{"raise with override", "methane", "", "", SensorAlarms{High: &LimitConfig{Limit: f(1.2), OverrideRegulatory: true}}, []string{"W alarms.high.limit"}},
		{"tighten is fine", "methane", "", "", SensorAlarms{High: &LimitConfig{Limit: f(0.8)}, HighHigh: &LimitConfig{Limit: f(1.2)}}, nil},
		{"lower low limit", "oxygen", "", "", SensorAlarms{Low: &LimitConfig{Limit: f(19.0)}}, []string{"E alarms.low.limit"}},
		{"remove latch", "methane", "", "", SensorAlarms{HighHigh: &LimitConfig{Latch: b(false)}}, []string{"E alarms.high_high.latch"}},
		{"longer on-delay", "methane", "", "", SensorAlarms{HighHigh: &LimitConfig{OnDelay: d(10 * time.Second)}}, []string{"E alarms.high_high.on_delay"}},
		{"raise restore", "methane", "", "", SensorAlarms{HighHigh: &LimitConfig{Restore: f(1.2)}}, []string{"E alarms.high_high.restore"}},
		{"lower priority", "methane", "", "", SensorAlarms{HighHigh: &LimitConfig{Priority: i(3)}}, []string{"E alarms.high_high.priority"}},
		{"disable", "combustible", "", "", SensorAlarms{HighHigh: &LimitConfig{Enabled: b(false)}}, []string{"E alarms.high_high.enabled"}},
		{"disable comm", "co", "", "", SensorAlarms{Comm: &LimitConfig{Enabled: b(false)}}, []string{"E alarms.comm.enabled"}},
		{"clear safety", "methane", "", "", SensorAlarms{SafetyCritical: b(false)}, []string{"E alarms.safety_critical"}},
		{"sensor-wide override", "methane", "", "", SensorAlarms{SafetyCritical: b(false), OverrideRegulatory: true, High: &LimitConfig{Limit: f(1.1)}},
			[]string{"W alarms.high.limit", "W alarms.safety_critical"}},
		{"coal comm too long", "methane", "", "", SensorAlarms{Comm: &LimitConfig{Timeout: d(time.Minute)}}, []string{"E alarms.comm.timeout"}},
		{"bad priority", "co", "", "", SensorAlarms{High: &LimitConfig{Priority: i(7)}}, []string{"E alarms.high.priority"}},
		{"negative deadband", "co", "", "", SensorAlarms{High: &LimitConfig{Deadband: f(-1)}}, []string{"E alarms.high.deadband"}},
		{"order", "co", "", "", SensorAlarms{High: &LimitConfig{Limit: f(30)}, HighHigh: &LimitConfig{Limit: f(20)}}, []string{"E alarms.high_high.limit"}},
		{"toxic needs limits", "toxic", "", "", SensorAlarms{}, []string{"E alarms"}},
		{"added without limit", "pressure", "", "", SensorAlarms{High: &LimitConfig{OnDelay: d(time.Second)}}, []string{"E alarms.high.limit"}},
		{"deviation needs with", "co", "", "", SensorAlarms{Deviation: &LimitConfig{Limit: f(3)}}, []string{"E alarms.deviation.with"}},
		{"twa mode", "co", "", "", SensorAlarms{TWA: &LimitConfig{Limit: f(25), Mode: "daily"}}, []string{"E alarms.twa.mode"}},
		{"twa shift", "co", "", "", SensorAlarms{TWA: &LimitConfig{Limit: f(25), ShiftStart: "25:00"}}, []string{"E alarms.twa.shift_start"}},
		{"stel window", "co", "", "", SensorAlarms{STEL: &LimitConfig{Limit: f(100), Period: d(30 * time.Minute)}}, []string{"E alarms.stel.period"}},
		{"rate zero", "pressure", "", "", SensorAlarms{High: &LimitConfig{Limit: f(5)}, Rate: &LimitConfig{Limit: f(0)}}, []string{"E alarms.rate.limit"}},
		{"frozen samples", "pressure", "", "", SensorAlarms{High: &LimitConfig{Limit: f(5)}, Frozen: &LimitConfig{Samples: i(1)}}, []string{"E alarms.frozen.samples"}},
		{"range", "pressure", "", "", SensorAlarms{Range: []float64{5, 1}, High: &LimitConfig{Limit: f(5)}}, []string{"E alarms.range"}},
		{"restore above limit", "pressure", "", "", SensorAlarms{High: &LimitConfig{Limit: f(5), Restore: f(6)}}, []string{"E alarms.high.restore"}},
		{"timeout on high", "co", "", "", SensorAlarms{High: &LimitConfig{Timeout: d(time.Second)}}, []string{"E alarms.high.timeout"}},
		// Accepted and ignored until 2026-12-01 (a comm alarm runs on timeout).
		{"limit on comm", "co", "", "", SensorAlarms{Comm: &LimitConfig{Limit: f(0)}}, []string{"E alarms.comm.limit"}},
		{"limit on bad", "co", "", "", SensorAlarms{Bad: &LimitConfig{Limit: f(1)}}, []string{"E alarms.bad.limit"}},
		// bad's timeout bounds an uncertain spell: set, but never off.
		{"shorter timeout on bad", "co", "", "", SensorAlarms{Bad: &LimitConfig{Timeout: d(time.Minute)}}, nil},
		{"longer timeout on bad", "co", "", "", SensorAlarms{Bad: &LimitConfig{Timeout: d(10 * time.Minute)}}, []string{"E alarms.bad.timeout"}},
		{"longer timeout on bad overridden", "co", "", "", SensorAlarms{Bad: &LimitConfig{Timeout: d(10 * time.Minute), OverrideRegulatory: true}}, []string{"W alarms.bad.timeout"}},
		{"bad timeout zero", "co", "", "", SensorAlarms{Bad: &LimitConfig{Timeout: d(0)}}, []string{"E alarms.bad.timeout"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Resolve(c.kind, c.profile, c.unit, time.Second, c.a)
			require.Equal(t, c.want, paths(err), "%v", err)
		})
	}
}

func TestNewErrors(t *testing.T) {
	cfg := Config{
		Points: []PointConfig{
			{Site: "s", Device: "d", Sensor: "a", Kind: "methane", Alarms: SensorAlarms{HighHigh: &LimitConfig{Action: "nope"}}},
			{Site: "s", Device: "d", Sensor: "b", Kind: "methane", Alarms: SensorAlarms{Deviation: &LimitConfig{Limit: f(0.2), With: "d.zz"}},
				Path: "devices[0].sensors[1]"},
			{Site: "s", Device: "d", Sensor: "a", Kind: "methane"},
		},
		Groups: []GroupConfig{{ID: "g", Site: "s", Points: []string{"d.a", "d.x"}, M: 2, N: 3, FaultVote: "maybe"}},
	}
	_, err := New(cfg)
	require.Equal(t, []string{"E devices[0].sensors[1].alarms.deviation.with", "E groups[0].fault_vote",
		"E groups[0].sensors[1]", "E groups[0].vote", "E points[0].alarms.high_high.action", "E points[2]"}, paths(err))
}

func TestParseVote(t *testing.T) {
	m, n, err := ParseVote("2oo3")
	require.NoError(t, err)
	require.Equal(t, [2]int{2, 3}, [2]int{m, n})
	for _, bad := range []string{"", "3oo2", "0oo1", "2of3", "2oo"} {
		_, _, err := ParseVote(bad)
		require.Error(t, err, bad)
	}
}
