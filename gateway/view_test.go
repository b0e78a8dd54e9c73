package gateway

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/gateway/httpapi"
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

// The alarms gauge's counts, kept up to date transition by transition,
// always equal a recount of the alarms that are not normal, whatever
// sequence of states and priorities the alarms go through.
func TestAlarmClassesFollowTheAlarms(t *testing.T) {
	v := view{alarms: map[string]httpapi.Alarm{}, classes: map[alarmClass]int{}}
	states := []alerting.State{alerting.Normal, alerting.Unacknowledged, alerting.Acknowledged,
		alerting.ReturnedUnack, alerting.Shelved, alerting.OutOfService}
	rng := rand.New(rand.NewPCG(3, 5))
	for step := range 5000 {
		st := alerting.AlarmState{ID: fmt.Sprintf("a%d", rng.IntN(40)), State: states[rng.IntN(len(states))],
			Priority: 1 + rng.IntN(3)}
		v.setAlarm(nil, st)
		want := map[alarmClass]int{}
		for _, a := range v.alarms {
			want[alarmClass{a.State, a.Priority}]++
		}
		got := map[alarmClass]int{}
		v.alarmClasses(func(state string, priority, n int) {
			require.Positive(t, n, "step %d: a series with no alarms is dropped, not left at 0", step)
			got[alarmClass{state, priority}] = n
		})
		require.Equal(t, want, got, "step %d", step)
	}
}
