package mqtt

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
)

// BenchmarkOutage10Min buffers what a 10-minute uplink outage at 1000
// readings/s leaves in the outbox — 50 devices × 20 readings, one poll per
// device per second, 600 polls each, committed one second's polls per
// commit as the gateway does — then reconnects and drains it to a real
// Mosquitto at QoS 1. It reports the disk the backlog used and how long the
// drain took. Run it with -benchtime 1x:
//
//	go test -run '^$' -bench Outage10Min -benchtime 1x ./gateway/mqtt/
func BenchmarkOutage10Min(b *testing.B) {
	const devices, sensors, seconds = 50, 20, 600
	for b.Loop() {
		m := testenv.StartMosquitto(b, testenv.MosquittoOptions{})
		dir := b.TempDir()
		ob, err := outbox.Open(outbox.Options{Dir: dir, Log: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		batch := Readings{Site: "mine", TS: time.Now()}
		for i := 0; i < sensors; i++ {
			batch.Readings = append(batch.Readings, Reading{Sensor: "s" + strconv.Itoa(i), Kind: "methane", Value: 0.42 + float64(i)/100, Valid: true, Unit: "%vol", Quality: QualityGood})
		}
		items := make([]outbox.Item, 0, devices)
		for s := 0; s < seconds; s++ {
			items = items[:0]
			batch.TS = batch.TS.Add(time.Second)
			for d := 0; d < devices; d++ {
				batch.Device = "dev" + strconv.Itoa(d)
				items = append(items, ReadingsItem(batch))
			}
			if _, err := ob.Append(context.Background(), items...); err != nil {
				b.Fatal(err)
			}
		}
		st := ob.Stats()
		var disk int64
		_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				disk += fi.Size()
			}
			return nil
		})
		p, err := NewPublisher(Options{Config: configs.MQTT{URL: m.URL}, Site: "mine", Outbox: ob, Log: zerolog.Nop(), ShutdownGrace: -1})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- p.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Minute)
		for ob.Stats().Records[outbox.Readings] > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		drain := time.Since(start)
		left := ob.Stats().Records[outbox.Readings]
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		_ = ob.Close()
		if left > 0 {
			b.Fatalf("%d batches still queued after 10 minutes of draining", left)
		}
		b.ReportMetric(float64(st.Records[outbox.Readings]), "batches")
		b.ReportMetric(float64(st.Bytes[outbox.Readings])/(1<<20), "queued_MiB")
		b.ReportMetric(float64(disk)/(1<<20), "disk_MiB")
		b.ReportMetric(drain.Seconds(), "drain_s")
		b.ReportMetric(float64(devices*sensors*seconds)/drain.Seconds(), "drained_readings/s")
	}
}
