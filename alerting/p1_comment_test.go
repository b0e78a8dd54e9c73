package alerting

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The engine's own priority-1 alarms (an action's failed, a priority-1
// system alarm) need a comment to be acknowledged, as every P1 alarm does.
func TestP1SystemAlarmsNeedAckComment(t *testing.T) {
	out, _ := runInline(t, coalFaceCfg+`systems:
  - {id: core.overrun, condition: readings_dropped, priority: 1}
  - {id: outbox.readings_dropped, condition: readings_dropped, priority: 2}
`, `
0s ch4=0.4
1s ch4=1.6
3s tick
3s system core.overrun on 1
3s system outbox.readings_dropped on 1
4s ack power-cut.failed op
4s ack core.overrun op
4s ack face3-gas.ch4.high_high op
4s ack outbox.readings_dropped op
5s ack power-cut.failed op "relay checked"
5s ack core.overrun op "seen"
`)
	for _, want := range []string{
		"3s #4 activate power-cut.failed",
		"4s ERR ack: ack power-cut.failed: comment required for a priority-1 alarm",
		"4s ERR ack: ack core.overrun: comment required for a priority-1 alarm",
		"4s ERR ack: ack face3-gas.ch4.high_high: comment required for a priority-1 alarm",
		"ack outbox.readings_dropped unacknowledged->acknowledged",
		"5s #8 ack power-cut.failed unacknowledged->acknowledged",
		"5s #9 ack core.overrun unacknowledged->acknowledged",
	} {
		require.Contains(t, out, want, out)
	}
}
