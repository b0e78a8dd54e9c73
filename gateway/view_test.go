package gateway

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/gateway/httpapi"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/internal/clocktest"
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

// oneSensorView is a view of one configured sensor, relay.power_cut.
func oneSensorView() *view {
	v := &view{epoch: time.Now(), meta: map[string]int{"relay.power_cut": 0}, live: make([]liveReading, 1),
		metas: []sensorMeta{{id: "relay.power_cut", device: "relay", sensor: "power_cut", idx: 0, trend: -1}}}
	v.byDevice = map[string][]sensorMeta{"relay": v.metas}
	return v
}

// setOne records the sensor's reading, answered at at.
func (v *view) setOne(value float64, at time.Time) {
	v.setReadings(v.byDevice["relay"], mqtt.Readings{Site: "s", Device: "relay", TS: at.UTC(),
		Readings: []mqtt.Reading{{Sensor: "power_cut", Value: value, Valid: true, Quality: "good"}}}, at)
}

// An interlock's read-back is judged on the monotonic clock: an answer
// that arrived after the write confirms it even when the wall clock was
// stepped back meanwhile (NTP at a box's boot; judged by wall time the
// confirmation failed, a false latched P1 "action failed"), and one that
// arrived before the write does not, even when the wall clock was
// stepped forward meanwhile (a stale answer confirming a write).
func TestReadBackAcrossWallClockSteps(t *testing.T) {
	v := oneSensorView()
	before := time.Now()
	asked := before.Add(time.Second)
	answered := asked.Add(time.Second)

	v.setOne(1, clocktest.WallStep(answered, -time.Hour))
	l, ok := v.latest("relay.power_cut")
	require.True(t, ok)
	require.Equal(t, 1.0, l.value)
	require.True(t, l.after(asked), "answered a second after the write, on a wall clock stepped an hour back")

	v.setOne(0, clocktest.WallStep(before, time.Hour))
	l, ok = v.latest("relay.power_cut")
	require.True(t, ok)
	require.False(t, l.after(asked), "answered a second before the write, on a wall clock stepped an hour forward")
}

// The API's reading carries when its answer arrived on the monotonic
// clock (Received), which the API judges its age by
// (httpapi.TestReadingAgeIsTheOlderOfTsAndReceipt).
func TestReadingReceivedIsMonotonic(t *testing.T) {
	v := oneSensorView()
	at := clocktest.WallStep(time.Now().Add(-40*time.Second), -time.Hour)
	v.setOne(1, at)
	r, ok := v.reading(&v.metas[0])
	require.True(t, ok)
	require.Equal(t, time.Duration(0), r.Received.Sub(at), "the same instant on the monotonic clock")
	require.Equal(t, at.Round(0).UTC(), r.TS.Round(0), "ts stays the wall clock's, as published")
}

// An MQTT command names its user; the site's users say what that user may
// do. Out of service and back need an engineer, and a site that lists no
// users cannot say who is one: it refuses them (the other commands it
// leaves to the broker's ACL).
func TestMQTTCommandRoles(t *testing.T) {
	none := &view{}
	for _, a := range []command.Action{command.Ack, command.Shelve, command.Unshelve, command.Reset} {
		require.NoError(t, none.authorize("anyone", a), a)
	}
	for _, a := range []command.Action{command.OutOfService, command.ReturnToService} {
		require.ErrorContains(t, none.authorize("anyone", a), "this site lists no users", a)
	}
	v := &view{users: []httpapi.User{{Name: "olga", Role: configs.RoleOperator}, {Name: "erik", Role: configs.RoleEngineer},
		{Name: "victor", Role: configs.RoleViewer}}}
	cases := []struct {
		user   string
		action command.Action
		err    string
	}{
		{"olga", command.Ack, ""},
		{"olga", command.Shelve, ""},
		{"olga", command.OutOfService, `user "olga" has role operator: out_of_service needs engineer`},
		{"olga", command.ReturnToService, "return_to_service needs engineer"},
		{"erik", command.OutOfService, ""},
		{"erik", command.ReturnToService, ""},
		{"erik", command.Reset, ""},
		{"victor", command.Ack, "commands need operator or engineer"},
		{"victor", command.OutOfService, "needs engineer"},
		{"mallory", command.Ack, `unknown user "mallory"`},
		{"mallory", command.OutOfService, `unknown user "mallory"`},
	}
	for _, c := range cases {
		err := v.authorize(c.user, c.action)
		if c.err == "" {
			require.NoError(t, err, "%s %s", c.user, c.action)
			continue
		}
		require.ErrorContains(t, err, c.err, "%s %s", c.user, c.action)
	}
}
