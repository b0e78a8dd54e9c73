package ingest

import (
	"context"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/internal/testenv"
)

const benchReadings = 10 // readings per message

func benchMessage(dev string, seq int) []byte {
	m := mqtt.Readings{Site: "bench", Device: dev, Seq: uint64(seq), TS: base.Add(time.Duration(seq) * time.Millisecond)}
	for i := 0; i < benchReadings; i++ {
		m.Readings = append(m.Readings, mqtt.Reading{Sensor: "s" + strconv.Itoa(i), Kind: "methane", Value: float64(seq%100) / 10, Valid: true, Unit: "%vol", Quality: mqtt.QualityGood})
	}
	return mqtt.AppendReadings(nil, &m)
}

// BenchmarkIngest measures canary ingest end to end (Mosquitto → ingest →
// InfluxDB 1.8.10, ack after write) in points/s, and, in the same run and
// against the same server, InfluxDB's own ceiling for the same points
// posted as raw line protocol in 5000-point batches.
func BenchmarkIngest(b *testing.B) {
	m := testenv.StartMosquitto(b, testenv.MosquittoOptions{})
	in := testenv.StartInflux(b)
	log := zerolog.New(zerolog.NewTestWriter(b)).Level(zerolog.WarnLevel)

	b.Run("raw-line-protocol", func(b *testing.B) {
		var body []byte
		points := 0
		for i := 0; i < b.N; i++ {
			r, err := mqtt.DecodeReadings(benchMessage("raw"+strconv.Itoa(i%32), i+1))
			if err != nil {
				b.Fatal(err)
			}
			body = AppendReadingLines(body, &r)
			points += benchReadings
			if points%5000 == 0 || i == b.N-1 {
				b.StartTimer()
				if err := in.WriteLines(body); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				body = body[:0]
			}
		}
		b.ReportMetric(float64(b.N*benchReadings)/b.Elapsed().Seconds(), "points/s")
	})

	b.Run("canary-ingest", func(b *testing.B) {
		w, err := NewWriter(WriterOptions{Config: configs.InfluxDB{URL: in.URL, Bucket: in.Bucket}, Log: log})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		ing, err := New(Options{MQTT: configs.MQTT{URL: m.URL, ClientID: "bench-ingest-" + strconv.Itoa(b.N)}, ShareGroup: "bench-" + strconv.Itoa(b.N), // an earlier run's offline session would keep its share
			Writer: w, BatchPoints: 5000, BatchWait: 50 * time.Millisecond, Log: log})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ing.Run(ctx) }()
		defer func() {
			cancel()
			<-done
		}()
		for !ing.Subscribed() {
			time.Sleep(5 * time.Millisecond)
		}
		msgs := make([][]byte, b.N)
		for i := range msgs {
			msgs[i] = benchMessage("dev"+strconv.Itoa(i%32), i+1)
		}
		c := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL).SetClientID("bench-pub"))
		if !c.Connect().WaitTimeout(10 * time.Second) {
			b.Fatal("connect")
		}
		defer c.Disconnect(0)
		b.ResetTimer()
		toks := make([]paho.Token, 0, 256)
		for i, p := range msgs {
			toks = append(toks, c.Publish("canary/v1/bench/readings/dev"+strconv.Itoa(i%32), 1, false, p))
			if len(toks) == cap(toks) {
				for _, t := range toks {
					t.Wait()
				}
				toks = toks[:0]
			}
		}
		deadline := time.Now().Add(5 * time.Minute)
		for ing.Stats().Points < uint64(b.N*benchReadings) {
			if time.Now().After(deadline) {
				b.Fatalf("ingest stalled: %+v of %d points", ing.Stats(), b.N*benchReadings)
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchReadings)/b.Elapsed().Seconds(), "points/s")
	})
}
