package alerting

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTableBCoverage maps every row of SAFETY.md table (b) to the scripted
// timeline(s) or tests that pin it down, so a row cannot silently lose its test.
// "Multi-level exclusive" is replaced by DESIGN.md's non-exclusive levels.
func TestTableBCoverage(t *testing.T) {
	rows := map[string][]string{
		"High limit activation":            {"high_limit", "nonexclusive_levels"},
		"Low limit activation":             {"low_limit"},
		"Deadband (return)":                {"deadband", "off_delay"},
		"Regulatory restore level":         {"regulatory_restore"},
		"Multi-level (non-exclusive)":      {"nonexclusive_levels"},
		"On-delay":                         {"on_delay"},
		"Off-delay":                        {"off_delay", "off_delay_lost"},
		"Acknowledge":                      {"acknowledge"},
		"Return-to-normal unacked":         {"rtn_unack"},
		"Latching":                         {"latching"},
		"Reset (latched / interlock)":      {"reset", "regulatory_restore", "reset_group"},
		"Timed shelving":                   {"timed_shelving"},
		"One-shot shelving":                {"oneshot_shelving"},
		"Unshelve":                         {"unshelve", "restart"},
		"Suppressed by design":             {"suppression"},
		"Out of service":                   {"out_of_service", "bypass_standing"},
		"Re-alarm":                         {"realarm"},
		"Chattering detection":             {"chattering"},
		"Fleeting detection":               {"fleeting"},
		"Stale detection":                  {"stale"},
		"Flood detection":                  {"flood"},
		"First-out":                        {"first_out"},
		"Priority ordering":                {"priority_ordering"},
		"NE43 validation (analog)":         {"ne43"},
		"Device-status validation":         {"device_status"},
		"Communication loss":               {"comm_loss", "off_delay_lost"},
		"Frozen value":                     {"frozen"},
		"Fail-safe on bad quality":         {"fail_safe", "fail_safe_handover"},
		"MooN voting":                      {"moon_voting", "moon_bypass"},
		"Interlock action":                 {"interlock_action", "regulatory_restore", "fail_safe_handover"},
		"Rate of change":                   {"rate"},
		"STEL":                             {"stel"},
		"TWA":                              {"twa", "twa_moving8h", "twa_no_shift", "twa_long_shift"},
		"Audit trail":                      {"audit_trail"},
		"KPI computation (TestKPIs)":       nil,
		"Deviation (DESIGN.md conditions)": {"deviation"},
	}
	for row, cases := range rows {
		for _, c := range cases {
			raw, err := os.ReadFile(filepath.Join("testdata", c, "expected.events"))
			require.NoError(t, err, "row %q: case %s", row, c)
			require.NotEmpty(t, strings.TrimSpace(string(raw)), "row %q: case %s has an empty golden", row, c)
		}
	}
}

// After a restart with an unknown shelving state the alarm is unshelved
// (OPC UA Part 9 ShelvedStateMachine).
func TestRestoreUnknownShelveMode(t *testing.T) {
	cfg := Config{Points: []PointConfig{{Site: "s", Device: "d", Sensor: "co", Kind: "co"}}}
	e, err := New(cfg)
	require.NoError(t, err)
	snap := `{"version":1,"seq":{"s":7},"alarms":[{"id":"d.co.high","active":true,"acked":false,
		"since":"2026-01-01T06:00:00Z","shelve":"someday"},{"id":"gone.alarm","acked":false}]}`
	_, err = e.Restore(scriptStart.Add(time.Hour), []byte(snap))
	require.ErrorContains(t, err, "gone.alarm")
	st, _ := e.Alarm("d.co.high")
	require.Equal(t, Unacknowledged, st.State)
	require.True(t, st.Since.Equal(scriptStart))
	evs, err := e.Ack(scriptStart.Add(time.Hour), "d.co.high", "u", "")
	require.NoError(t, err)
	require.Equal(t, uint64(8), evs[0].Seq, "sequence continues after a restart")
}
