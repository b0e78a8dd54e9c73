package outbox

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

// payload of a typical poll batch: 8 readings, ~700 bytes of JSON.
var benchPayload = make([]byte, 700)

func benchItem(dev string) Item {
	return Item{Kind: KindReadings, Stream: dev, Encode: func(dst []byte, _ uint64) []byte { return append(dst, benchPayload...) }}
}

// One producer: every Append waits for its own fsync.
func BenchmarkOutboxAppend(b *testing.B) {
	ob, err := Open(Options{Dir: b.TempDir(), Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := ob.Append(ctx, benchItem("d0")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
	b.ReportMetric(float64(ob.Stats().Commits)/float64(b.N), "commits/batch")
}

// Many pollers at once: their appends share transactions and fsyncs.
func BenchmarkOutboxAppendParallel(b *testing.B) {
	ob, err := Open(Options{Dir: b.TempDir(), Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(32) // 32 goroutines per CPU, as many devices polled at once
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dev := "d" + strconv.FormatInt(n.Add(1), 10)
		for pb.Next() {
			if _, err := ob.Append(ctx, benchItem(dev)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
	b.ReportMetric(float64(b.N)/float64(ob.Stats().Commits), "batches/commit")
}

// Drain and release a backlog, 256 records per release transaction, as
// the publisher does.
func BenchmarkOutboxDrainRelease(b *testing.B) {
	ob, err := Open(Options{Dir: b.TempDir(), Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	ctx := context.Background()
	items := make([]Item, 256)
	for i := range items {
		items[i] = benchItem("d" + strconv.Itoa(i%16))
	}
	for range (b.N + 255) / 256 {
		if _, err := ob.Append(ctx, items...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	done := 0
	for done < b.N {
		recs, err := ob.Drain(Readings, 0, 256)
		if err != nil {
			b.Fatal(err)
		}
		keys := make([]Key, len(recs))
		for i := range recs {
			keys[i] = recs[i].Key
		}
		if err := ob.Release(ctx, keys...); err != nil {
			b.Fatal(err)
		}
		done += len(recs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
}
