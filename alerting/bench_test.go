package alerting

import (
	"fmt"
	"testing"
	"time"
)

func benchEngine(b *testing.B, n int) (*Engine, []string) {
	var cfg Config
	cfg.Actions = []ActionConfig{{ID: "cut", Site: "s"}}
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		dev := fmt.Sprintf("d%d", i/8)
		var pc PointConfig
		switch i % 4 {
		case 0:
			pc = PointConfig{Kind: "methane", Alarms: SensorAlarms{HighHigh: &LimitConfig{Action: "cut"}}}
		case 1:
			pc = PointConfig{Kind: "oxygen"}
		case 2:
			pc = PointConfig{Kind: "h2s"}
		default:
			pc = PointConfig{Kind: "pressure", Alarms: SensorAlarms{Range: []float64{0, 10},
				High: &LimitConfig{Limit: f(6)}, HighHigh: &LimitConfig{Limit: f(8)},
				Rate: &LimitConfig{Limit: f(-10), Percent: b2(true), Period: d(15 * time.Minute)}}}
		}
		pc.Site, pc.Device, pc.Sensor, pc.Poll = "s", dev, fmt.Sprintf("x%d", i), time.Second
		cfg.Points = append(cfg.Points, pc)
		ids = append(ids, pc.ID())
	}
	e, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return e, ids
}

func b2(v bool) *bool { return &v }

// BenchmarkObserve measures sample evaluations per second on one core:
// steady-state samples (no transitions) of mixed kinds.
func BenchmarkObserve(b *testing.B) {
	e, ids := benchEngine(b, 1024)
	vals := []float64{0.3, 20.9, 2, 5}
	now := scriptStart
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		k := n % len(ids)
		if k == 0 {
			now = now.Add(time.Second)
		}
		if _, err := e.Observe(now, Sample{Point: ids[k], Value: vals[k%4] + float64(n%7)*0.01, Quality: Good}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}

// BenchmarkObserveTransitions alternates a methane point across its limits
// so every sample activates or returns alarms and emits events.
func BenchmarkObserveTransitions(b *testing.B) {
	e, ids := benchEngine(b, 64)
	now := scriptStart
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		now = now.Add(100 * time.Millisecond)
		v := 0.3
		if n%2 == 0 {
			v = 1.2
		}
		if _, err := e.Observe(now, Sample{Point: ids[(n/2%16)*4], Value: v, Quality: Good}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}

// BenchmarkTick measures Tick over 1024 points with nothing due: the cost
// that no longer grows with the number of points (see tick.go).
func BenchmarkTick(b *testing.B) {
	e, ids := benchEngine(b, 1024)
	now := scriptStart
	for _, id := range ids {
		_, _ = e.Observe(now, Sample{Point: id, Value: 0.1, Quality: Good})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		now = now.Add(time.Millisecond)
		e.Tick(now)
	}
}
