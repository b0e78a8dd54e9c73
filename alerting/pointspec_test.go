package alerting

import (
	"testing"
	"time"
)

// PointSpec's Conditions alias the specs the alarms of every point with the
// same compiled config run on: a caller's write changes another point's limit.
func TestPointSpecAliases(t *testing.T) {
	cfg := Config{Points: []PointConfig{
		{Site: "s", Device: "d", Sensor: "a", Kind: "methane", Poll: time.Second},
		{Site: "s", Device: "d", Sensor: "b", Kind: "methane", Poll: time.Second},
	}}
	e := newEngine(t, cfg)
	r, _ := e.PointSpec("d.a")
	for i := range r.Conditions {
		if r.Conditions[i].Condition == High {
			r.Conditions[i].Limit = 99
		}
	}
	evs, _ := e.Observe(scriptStart, Sample{Point: "d.b", Value: 1.2})
	for _, ev := range evs {
		if ev.Alarm == "d.b.high" && ev.Type == EvActivate {
			return
		}
	}
	t.Fatalf("d.b.high did not activate at 1.2 %%vol after d.a's PointSpec was edited: %v", evs)
}
