package mqtt

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
)

func benchBatch() Readings {
	m := Readings{Site: "demo", Device: "face3-gas", Seq: 123456, TS: time.Now()}
	for i := 0; i < 8; i++ {
		m.Readings = append(m.Readings, Reading{Sensor: "ch4-" + strconv.Itoa(i), Kind: "methane", Value: 0.4321 + float64(i), Valid: true, Unit: "%vol", Quality: QualityGood})
	}
	return m
}

func BenchmarkAppendReadings(b *testing.B) {
	m := benchBatch()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendReadings(buf[:0], &m)
	}
	b.ReportMetric(float64(len(m.Readings)*b.N)/b.Elapsed().Seconds(), "readings/s")
}

func BenchmarkDecodeReadings(b *testing.B) {
	m := benchBatch()
	p := AppendReadings(nil, &m)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeReadings(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(m.Readings)*b.N)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkPublish drains a backlog of b.N poll batches (8 readings each)
// to a real Mosquitto at QoS 1 and releases them on PUBACK (or, in receipt
// mode, on receipts a stand-in consumer sends back at once).
func BenchmarkPublish(b *testing.B) {
	for _, window := range []int{64, 256, 1024} {
		b.Run("puback/inflight="+strconv.Itoa(window), func(b *testing.B) {
			m := testenv.StartMosquitto(b, testenv.MosquittoOptions{})
			ob, err := outbox.Open(outbox.Options{Dir: b.TempDir(), Log: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			defer ob.Close()
			batch := benchBatch()
			items := make([]outbox.Item, 0, 512)
			for left := b.N; left > 0; {
				items = items[:0]
				for i := 0; i < min(left, 512); i++ {
					batch.Device = "dev" + strconv.Itoa(i%32)
					items = append(items, ReadingsItem(batch))
				}
				if _, err := ob.Append(context.Background(), items...); err != nil {
					b.Fatal(err)
				}
				left -= len(items)
			}
			cfg := configs.MQTT{URL: m.URL}
			p, err := NewPublisher(Options{Config: cfg, Site: "demo", Outbox: ob, MaxInflight: window, Log: zerolog.Nop(), ShutdownGrace: -1})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ResetTimer()
			go func() { done <- p.Run(ctx) }()
			for ob.Stats().Records[outbox.Readings] > 0 {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
			b.ReportMetric(float64(8*b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
