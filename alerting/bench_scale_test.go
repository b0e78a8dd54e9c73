package alerting

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// methaneConfig is the gateway's 1 000-methane-sensor scenario in small:
// coal-face methane detectors, 20 per device, polled every second, whose
// high_high trips an interlock (so each also has a "bypassed" alarm).
func methaneConfig(sensors int) Config {
	cfg := Config{Actions: []ActionConfig{{ID: "cut", Site: "s"}}}
	for i := range sensors {
		cfg.Points = append(cfg.Points, PointConfig{Site: "s", Device: fmt.Sprintf("dev%03d", i/20),
			Sensor: fmt.Sprintf("ch4_%02d", i%20), Kind: "methane", Poll: time.Second,
			Alarms: SensorAlarms{HighHigh: &LimitConfig{Action: "cut"}}})
	}
	return cfg
}

// mixedConfig is benchEngine's mix: methane with an interlock, oxygen,
// H2S with TWA/STEL, pressure with a rate window.
func mixedConfig(sensors int) Config {
	cfg := Config{Actions: []ActionConfig{{ID: "cut", Site: "s"}}}
	for i := range sensors {
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
		pc.Site, pc.Device, pc.Sensor, pc.Poll = "s", fmt.Sprintf("d%d", i/8), fmt.Sprintf("x%d", i), time.Second
		cfg.Points = append(cfg.Points, pc)
	}
	return cfg
}

func steadyValue(kind string) float64 {
	switch kind {
	case "oxygen":
		return 20.9
	case "pressure":
		return 5
	case "h2s":
		// Clean air: an accumulating TWA of any positive reading reaches
		// its limit after enough simulated hours of a long benchmark.
		return 0
	}
	return 0.3
}

// BenchmarkTickFewDue is the gateway's idle case: every sensor reports a
// steady good value once a second (one Step per op) and Tick runs every
// 250 ms (four per op); only periodic work (TWA/STEL minute closing) is
// due. ns/tick is the time of one Tick alone; ns/op includes the Step.
func BenchmarkTickFewDue(b *testing.B) {
	for _, alarms := range []int{2000, 20000} {
		b.Run(fmt.Sprintf("alarms=%d", alarms), func(b *testing.B) {
			// The mix has 5.25 alarms per sensor on average.
			cfg := mixedConfig(alarms * 4 / 21)
			e, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			samples := make([]Sample, len(cfg.Points))
			for i, pc := range cfg.Points {
				samples[i] = Sample{Point: pc.ID(), Value: steadyValue(pc.Kind), Quality: Good}
			}
			now := scriptStart
			var ticking time.Duration
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Step(now, samples); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for range 4 {
					now = now.Add(250 * time.Millisecond)
					if evs := e.Tick(now); len(evs) > 0 {
						b.Fatalf("steady state raised %d events, first %+v", len(evs), evs[0])
					}
				}
				ticking += time.Since(start)
			}
			b.ReportMetric(float64(ticking.Nanoseconds())/float64(4*b.N), "ns/tick")
			b.ReportMetric(float64(len(e.alist)), "alarms")
		})
	}
}

// BenchmarkEngineMemory reports the heap an engine holds per alarm and per
// sensor once built (runtime.ReadMemStats around New, after a GC), and
// what New allocates in total (B/op, allocs/op: the startup churn).
func BenchmarkEngineMemory(b *testing.B) {
	for _, mix := range []struct {
		name string
		cfg  func(int) Config
	}{{"methane", methaneConfig}, {"mixed", mixedConfig}} {
		for _, sensors := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("%s/sensors=%d", mix.name, sensors), func(b *testing.B) {
				cfg := mix.cfg(sensors)
				var before, after runtime.MemStats
				var held, alarms float64
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					runtime.GC()
					runtime.ReadMemStats(&before)
					b.StartTimer()
					e, err := New(cfg)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					runtime.GC()
					runtime.ReadMemStats(&after)
					held = float64(after.HeapAlloc) - float64(before.HeapAlloc)
					alarms = float64(len(e.alist))
					runtime.KeepAlive(e)
					b.StartTimer()
				}
				b.ReportMetric(held/alarms, "B/alarm")
				b.ReportMetric(held/float64(sensors), "B/sensor")
				b.ReportMetric(alarms, "alarms")
			})
		}
	}
}

// BenchmarkResolve is what configs validation and New spend resolving the
// presets of N methane sensors.
func BenchmarkResolve(b *testing.B) {
	for _, sensors := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("sensors=%d", sensors), func(b *testing.B) {
			cfg := methaneConfig(sensors)
			b.ReportAllocs()
			for b.Loop() {
				for _, pc := range cfg.Points {
					if _, err := Resolve(pc.Kind, pc.Profile, pc.Unit, pc.Poll, pc.Alarms); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
