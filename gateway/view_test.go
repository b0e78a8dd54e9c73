package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/alerting"
)

// The audit trail keeps the newest historyLen transitions, in order,
// however many pass through it.
func TestHistoryKeepsTheNewestInOrder(t *testing.T) {
	var v view
	total := 5*historyLen + 17
	for i := range total {
		v.addTransition(nil, alerting.Event{Seq: uint64(i + 1), TS: time.Unix(int64(i), 0), Type: alerting.EvActivate,
			Alarm: fmt.Sprintf("a%d", i)})
		require.LessOrEqual(t, len(v.history), 2*historyLen)
	}
	tail := v.historyTail(0)
	require.Len(t, tail, historyLen)
	for i, tr := range tail {
		require.Equal(t, uint64(total-historyLen+i+1), tr.Seq)
	}
	last := v.historyTail(3)
	require.Equal(t, []uint64{uint64(total - 2), uint64(total - 1), uint64(total)}, []uint64{last[0].Seq, last[1].Seq, last[2].Seq})
	require.Len(t, v.historyTail(10*historyLen), historyLen)
}
