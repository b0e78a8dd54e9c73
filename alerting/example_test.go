package alerting_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/canary-gw/canary/alerting"
)

// How the gateway wires the engine: build it from the site's sensors,
// feed each poll with Step, call Tick about once a second, route operator
// commands, publish events and the changed alarm states, and perform the
// interlock actions the engine asks for.
func Example() {
	limit := 1.2
	e, err := alerting.New(alerting.Config{
		Points: []alerting.PointConfig{{
			Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Profile: "coal_face",
			Poll: time.Second, Path: "devices[0].sensors[0]",
			Alarms: alerting.SensorAlarms{HighHigh: &alerting.LimitConfig{Limit: &limit, Action: "power-cut"}},
		}},
		Actions: []alerting.ActionConfig{{ID: "power-cut", Site: "demo", ConfirmTimeout: 2 * time.Second}},
	})
	if err != nil {
		fmt.Println(err) // may hold only warnings: see configerr.HasErrors
		return
	}
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	evs, _ := e.Step(t0, []alerting.Sample{{Point: "face3-gas.ch4", Value: 1.3, Quality: alerting.Good}})
	for _, ev := range evs {
		if ev.Type == alerting.EvActionTrip {
			// gateway: write the trip value, read back, then report
			evs2, _ := e.ActionResult(t0.Add(300*time.Millisecond), ev.Action, true, "feed off")
			evs = append(evs, evs2...)
		}
	}
	for _, ev := range evs {
		fmt.Println(ev.Seq, ev.Type, ev.Alarm, ev.To)
	}
	st, _ := e.Alarm("face3-gas.ch4.high_high")
	b, _ := json.Marshal(st)
	fmt.Println(string(b))
	_, err = e.Reset(t0.Add(time.Minute), "face3-gas.ch4.high_high", "alice", "gas cleared")
	fmt.Println(err)
	// Output:
	// 1 activate face3-gas.ch4.high_high unacknowledged
	// 2 activate face3-gas.ch4.high unacknowledged
	// 3 action_trip power-cut tripped
	// 4 action_confirmed power-cut tripped
	// {"id":"face3-gas.ch4.high_high","site":"demo","device":"face3-gas","sensor":"ch4","condition":"high_high","priority":1,"state":"unacknowledged","active":true,"latched":false,"value":1.3,"limit":1.2,"since":"2026-03-01T08:00:00.000000000Z","updated":"2026-03-01T08:00:00.000000000Z","acked_by":"","comment":""}
	// reset face3-gas.ch4.high_high: reset refused: the alarm condition is still present
}
