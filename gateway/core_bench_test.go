package gateway

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/loadtest"
	"github.com/canary-gw/canary/internal/cputime"
)

// benchGateway is a gateway for the reference scenario (devices × 20
// methane readings) with its outbox on disk, not running: the benchmark
// drives the core's poll path directly, without network.
func benchGateway(tb testing.TB, devices int) *Gateway {
	return newCoreGateway(tb, devices, Options{})
}

// newCoreGateway builds that gateway with o (Site, Log and NoHTTP are
// filled in).
func newCoreGateway(tb testing.TB, devices int, o Options) *Gateway {
	tb.Helper()
	o.Site, o.Log, o.NoHTTP = coreSite(tb, devices), zerolog.Nop(), true
	g, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = g.Close() })
	return g
}

// coreSite is newCoreGateway's site: devices × 20 sensors, polled every
// second, at ports never dialled. (The gateway keeps the site without its
// devices: a test that needs them parses its own.)
func coreSite(tb testing.TB, devices int) *configs.Site {
	tb.Helper()
	ports := make([]int, devices)
	for i := range ports {
		ports[i] = 20000 + i // never dialled
	}
	sc := loadtest.Scenario{Site: "bench", Devices: devices, Sensors: 20, Poll: time.Second, Ports: ports,
		BrokerURL: "tcp://127.0.0.1:1", OutboxDir: tb.TempDir(), MaxOutbox: "4GiB"}
	text, err := sc.SiteYAML()
	if err != nil {
		tb.Fatal(err)
	}
	var site configs.Site
	if _, err := configs.Parse("bench.yaml", []byte(text), &site); err != nil {
		tb.Fatal(err)
	}
	return &site
}

func benchBatches(devices int) []modbus.Batch {
	bs := make([]modbus.Batch, devices)
	for d := range bs {
		rs := make([]modbus.Reading, 20)
		for s := range rs {
			rs[s] = modbus.Reading{Sensor: loadtest.SensorID(s), Value: 0.2 + float64(s)/100, Quality: modbus.QualityGood}
		}
		bs[d] = modbus.Batch{Device: loadtest.DeviceID(d), Readings: rs}
	}
	return bs
}

// BenchmarkCorePolls is the core's work per poll: alarm evaluation, the
// views, the MQTT payload and the durable outbox commit, with readings
// sharing commits as under load (a commit every maxPending polls). With
// alarms, sensor s00 of every poll crosses its limit, so every poll is an
// alarm transition committed at once: the worst case.
func BenchmarkCorePolls(b *testing.B) {
	for _, alarms := range []bool{false, true} {
		b.Run("alarms="+strconv.FormatBool(alarms), func(b *testing.B) {
			const devices = 50
			g := benchGateway(b, devices)
			batches := benchBatches(devices)
			ctx := context.Background()
			high := false
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				now := time.Now()
				if alarms {
					high = !high
				}
				for i := range batches {
					batches[i].At = now
					if high {
						batches[i].Readings[0].Value = 1.2
					} else {
						batches[i].Readings[0].Value = 0.2
					}
				}
				g.onBatches(ctx, batches)
			}
			g.flush(ctx, nil)
			polls := float64(b.N * devices)
			b.ReportMetric(polls*20/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/polls, "µs/poll")
		})
	}
}

// BenchmarkCoreFlood is one device's poll during an alarm flood: every
// sensor of a site (1 000 or 10 000 sensors) has raised its bad alarm (a site-wide
// failure, unacknowledged), and one device's 20 sensors flap between bad
// and good on each op: 20 transitions committed at once. What a
// transition costs must not grow with the alarms already standing, or a
// flood slows the core down as it grows.
func BenchmarkCoreFlood(b *testing.B) {
	for _, devices := range []int{50, 500} {
		b.Run("standing="+strconv.Itoa(devices*20), func(b *testing.B) { coreFlood(b, devices) })
	}
}

func coreFlood(b *testing.B, devices int) {
	g := benchGateway(b, devices)
	batches := benchBatches(devices)
	ctx := context.Background()
	setBad := func(bt *modbus.Batch, bad bool) {
		for s := range bt.Readings {
			bt.Readings[s].Quality = modbus.QualityGood
			if bad {
				bt.Readings[s].Quality = modbus.QualityBad
			}
		}
	}
	now := time.Now()
	for i := range batches {
		batches[i].At = now
		setBad(&batches[i], true)
	}
	g.onBatches(ctx, batches)
	g.flush(ctx, nil)
	standing := len(g.view.alarms)
	if standing < devices*20 {
		b.Fatalf("%d alarms standing, want at least %d", standing, devices*20)
	}
	one := batches[:1]
	bad := true
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		bad = !bad
		one[0].At = time.Now()
		setBad(&one[0], bad)
		g.onBatches(ctx, one)
	}
	// Wall time is mostly the commits' fsyncs; the CPU is the cost that
	// competes with polling when the core is saturated.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N*20), "cpu-µs/transition")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*20), "µs/transition")
	b.ReportMetric(float64(standing), "alarms_standing")
}

// BenchmarkCoreFloodWide is a site-wide flood: every sensor of 500
// devices (10 000) flips between bad and good on each op, all in one
// group of polls, so each op commits 10 000 transitions in parts. This is
// the flood of an overloaded gateway whose devices all went unread at once
// (docs/performance-history.md, item 35): its cost per transition, with the
// commit's fixed costs spread over thousands, is what decides whether the
// core keeps up.
func BenchmarkCoreFloodWide(b *testing.B) {
	const devices = 500
	g := benchGateway(b, devices)
	batches := benchBatches(devices)
	ctx := context.Background()
	bad := false
	cpu0 := processCPU()
	var transitions int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		bad = !bad
		now := time.Now()
		for i := range batches {
			batches[i].At = now
			for s := range batches[i].Readings {
				batches[i].Readings[s].Quality = modbus.QualityGood
				if bad {
					batches[i].Readings[s].Quality = modbus.QualityBad
				}
			}
		}
		g.onBatches(ctx, batches)
		g.flush(ctx, nil)
		transitions += devices * 20
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(transitions), "cpu-µs/transition")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(transitions), "µs/transition")
}

// processCPU is the process's CPU time so far.
func processCPU() time.Duration {
	d, _ := cputime.Process()
	return d
}
