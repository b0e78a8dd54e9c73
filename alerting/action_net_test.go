package alerting

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// runInline runs a scripted timeline (the golden harness's steps) against
// an inline config.yaml and returns the rendered output and the engine.
func runInline(t *testing.T, cfgYAML, steps string) (string, *Engine) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(cfgYAML), 0o644))
	cfg := loadScriptConfig(t, p)
	s := &script{t: t, cfg: cfg, e: newEngine(t, cfg)}
	s.run(steps)
	return s.out.String(), s.e
}

const coalFaceCfg = `
points:
  - id: face3-gas.ch4
    kind: methane
    profile: coal_face
    poll: 1s
    alarms:
      high_high: {action: power-cut}
actions:
  - id: power-cut
    confirm_timeout: 2s
`

// An action's demand is decided once per call: a fail-safe trip handed
// over to a limit (or one sensor's trip to another's) within one Step
// or Tick is no release and new trip, which the gateway would write to
// the relay one after the other (power back on above the cut level).
func TestActionNetChangePerCall(t *testing.T) {
	for _, tc := range []struct {
		name, cfg, steps string
		// lines the output must hold, in order
		want []string
	}{{
		name: "bad then high_high in one step",
		cfg:  coalFaceCfg,
		steps: `
0s ch4=0.4
1s ch4=0 bad
1200ms result power-cut ok
2s ch4=1.8
`,
		want: []string{
			"action_trip power-cut permitted->tripped",
			"return face3-gas.ch4.bad",
			"activate face3-gas.ch4.high_high",
		},
	}, {
		name: "comm loss then high_high",
		cfg:  coalFaceCfg,
		steps: `
0s ch4=0.4
1s tick
5s tick
5200ms result power-cut ok
6s ch4=1.8
7s ch4=1.8
7s tick
`,
		want: []string{
			"action_trip power-cut permitted->tripped",
			"return face3-gas.ch4.comm",
			"activate face3-gas.ch4.high_high",
		},
	}, {
		name: "two sensors hand over one action in one step",
		cfg: `
points:
  - id: a.h2s
    kind: h2s
    alarms:
      high_high: {action: evac}
  - id: b.h2s
    kind: h2s
    alarms:
      high_high: {action: evac}
actions:
  - id: evac
`,
		steps: `
0s a.h2s=0 b.h2s=0
1s a.h2s=25 b.h2s=10
2s a.h2s=18 b.h2s=25
`,
		want: []string{
			"action_trip evac permitted->tripped",
			"return a.h2s.high_high",
			"activate b.h2s.high_high",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			out, e := runInline(t, tc.cfg, tc.steps)
			require.NotContains(t, out, "action_release", out)
			require.NotContains(t, out, "failed", out)
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				require.GreaterOrEqual(t, i, 0, "want %q in order in\n%s", w, out)
				rest = rest[i+len(w):]
			}
			require.Equal(t, 1, strings.Count(out, "action_trip"), out)
			for _, a := range e.Actions() {
				require.True(t, a.Tripped, "%+v", a)
			}
		})
	}
}
