package alerting

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const groupResetCfg = `
points:
  - {id: a.ch4, kind: methane, poll: 1s}
  - {id: b.ch4, kind: methane, poll: 1s}
  - {id: c.ch4, kind: methane, poll: 1s}
groups:
  - id: face3
    sensors: [a.ch4, b.ch4, c.ch4]
    vote: 2oo3
    latch: true
    action: power-cut
actions:
  - id: power-cut
`

const groupTripped = `
0s a.ch4=0.3 b.ch4=0.3 c.ch4=0.3
1s a.ch4=1.6 b.ch4=1.6 c.ch4=1.6
2s a.ch4=0.5 b.ch4=0.5 c.ch4=0.5
3s ack face3.high_high op "evac"
`

// A latched group trip is reset only on good, returned readings of every
// member in service: the group alarm has no value of its own.
func TestGroupResetNeedsGoodMembers(t *testing.T) {
	for _, tc := range []struct {
		name, steps, want string
	}{
		{"after a restart before any reading", `
4s restart
5s tick
5s reset face3.high_high op "after restart"
`, "ERR reset: reset face3.high_high: reset refused: the sensor's quality is not good (a.ch4: no reading since the engine started)"},
		{"one member not read since the restart", `
4s restart
5s a.ch4=0.3 b.ch4=0.3
5s reset face3.high_high op "after restart"
`, "ERR reset: reset face3.high_high: reset refused: the sensor's quality is not good (c.ch4: no reading since the engine started)"},
		{"all members uncertain above the limit", `
4s a.ch4=2.0 uncertain b.ch4=2.0 uncertain c.ch4=2.0 uncertain
5s reset face3.high_high op "calibrating"
`, "ERR reset: reset face3.high_high: reset refused: the sensor's quality is not good (a.ch4: uncertain)"},
		{"a member lost", `
4s a.ch4=0.3 b.ch4=0.3
5s tick
5s reset face3.high_high op "c is gone"
`, "ERR reset: reset face3.high_high: reset refused: the sensor's quality is not good (c.ch4: communication lost)"},
		{"a member above its return threshold", `
4s a.ch4=0.3 b.ch4=0.3 c.ch4=1.2
5s reset face3.high_high op "one still high"
`, "ERR reset: reset face3.high_high: reset refused: the alarm condition is still present (c.ch4.high_high: value 1.2 is not below the restore level 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, e := runInline(t, groupResetCfg, groupTripped+tc.steps)
			require.Contains(t, out, tc.want, out)
			require.NotContains(t, out, "reset face3.high_high acknowledged->normal", out)
			st, _ := e.Alarm("face3.high_high")
			require.True(t, st.Latched)
			require.True(t, e.Actions()[0].Tripped)
		})
	}
	// Good, returned readings of every member: the reset goes through,
	// and a member out of service is not judged.
	for _, steps := range []string{`
4s a.ch4=0.3 b.ch4=0.3 c.ch4=0.3
5s reset face3.high_high op "cleared"
`, `
4s restart
5s oos c.ch4 maint 1h "swap"
6s a.ch4=0.3 b.ch4=0.3
7s reset face3.high_high op "cleared, c bypassed"
`} {
		out, e := runInline(t, groupResetCfg, groupTripped+steps)
		require.NotContains(t, out, "ERR", out)
		require.Contains(t, out, "reset face3.high_high acknowledged->normal", out)
		require.Contains(t, out, "action_release power-cut", out)
		require.False(t, e.Actions()[0].Tripped)
	}
}
