package alerting

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// An off-delay does not complete while the sensor is lost: the return is
// held, as an uncertain or bad sample holds it, and its off-delay starts
// again from the next usable sample.
func TestOffDelayHeldWhileLost(t *testing.T) {
	const cfg = `
points:
  - id: d.lel
    kind: combustible
    poll: 1s
    alarms:
      high: {off_delay: 60s, action: fan}
actions:
  - id: fan
`
	out, e := runInline(t, cfg, `
0s lel=0
1s lel=25
2s lel=15
3s tick
5s tick
6s tick
30s tick
61s tick
62s tick
63s tick
63s state d.lel.high
63s state d.lel.comm
`)
	require.Contains(t, out, "activate d.lel.comm", out)
	require.NotContains(t, out, "return d.lel.high", out)
	require.NotContains(t, out, "action_release", out)
	st, _ := e.Alarm("d.lel.high")
	require.True(t, st.Active)
	require.True(t, e.Actions()[0].Tripped)

	// Back: the off-delay runs again from the first usable sample.
	out, _ = runInline(t, cfg, `
0s lel=0
1s lel=25
2s lel=15
5s tick
62s tick
100s lel=15
159s lel=15
159s tick
160s tick
`)
	require.Contains(t, out, "1m40s #4 return d.lel.comm", out)
	require.Contains(t, out, "2m40s #5 return d.lel.high", out)
	require.Contains(t, out, "2m40s #6 action_release fan", out)

	// Back before the off-delay would have ended: it runs from then too
	// (held from the moment the point was lost, not only when it was due).
	out, _ = runInline(t, cfg, `
0s lel=0
1s lel=25
2s lel=15
5s tick
30s lel=15
32s lel=15
32s tick
62s lel=15
62s tick
89s lel=15
89s tick
90s tick
`)
	require.Contains(t, out, "30s #4 return d.lel.comm", out)
	require.Contains(t, out, "1m30s #5 return d.lel.high", out)
	require.Contains(t, out, "1m30s #6 action_release fan", out)
}

// A deviation is judged on both sensors: its return is held while the
// sensor it is compared with is lost, too.
func TestDeviationOffDelayHeldWhilePeerLost(t *testing.T) {
	const cfg = `
points:
  - {id: a.ch4, kind: combustible, poll: 1s}
  - id: b.ch4
    kind: combustible
    poll: 60s
    alarms:
      deviation: {limit: 0.3, with: a.ch4, off_delay: 60s}
`
	const start = `
0s a.ch4=0.3 b.ch4=0.3
1s a.ch4=0.3 b.ch4=1.0
2s a.ch4=0.3 b.ch4=0.3
5s tick
`
	out, e := runInline(t, cfg, start+`
62s tick
63s tick
`)
	require.Contains(t, out, "5s #2 activate a.ch4.comm", out)
	require.NotContains(t, out, "return b.ch4.deviation", out)
	st, _ := e.Alarm("b.ch4.deviation")
	require.True(t, st.Active)

	// a back at 30s: the off-delay runs from then.
	out, _ = runInline(t, cfg, start+`
30s a.ch4=0.3
32s a.ch4=0.3
32s tick
62s a.ch4=0.3
62s tick
89s a.ch4=0.3
89s tick
90s tick
`)
	require.NotContains(t, out, "1m2s #", out)
	require.Contains(t, out, "1m30s #4 return b.ch4.deviation", out)
}
