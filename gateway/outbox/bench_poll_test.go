package outbox

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/internal/cputime"
)

// payload1k is about the size of one 20-reading poll batch on the wire.
var payload1k = make([]byte, 1400)

func batchItems(devices int) []Item {
	items := make([]Item, devices)
	for i := range items {
		items[i] = Item{Kind: KindReadings, Stream: "d" + strconv.Itoa(i), Encode: func(dst []byte, _ uint64) []byte {
			return append(dst, payload1k...)
		}}
	}
	return items
}

// BenchmarkAppend commits polls of 20 readings: one poll per commit (what a
// lone caller gets) and 50 polls per commit (what the core hands over when
// polls arrive together), each followed by the publisher's release, so the
// store stays at its steady size. Every commit is fsynced.
func BenchmarkAppend(b *testing.B) {
	for _, per := range []int{1, 10, 50} {
		b.Run("polls_per_commit="+strconv.Itoa(per), func(b *testing.B) { benchAppend(b, per) })
	}
}

// cpuTime is the process's CPU time so far: commits wait for the disk, so
// wall time per poll says little about what they cost the box.
func cpuTime() time.Duration {
	d, _ := cputime.Process()
	return d
}

func benchAppend(b *testing.B, per int) {
	ob, err := Open(Options{Dir: b.TempDir(), Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	ctx := context.Background()
	items := batchItems(per)
	var after uint64
	cpu0 := cpuTime()
	b.ResetTimer()
	var keys []Key
	for b.Loop() {
		keys, after = appendDrain(b, ob, items, after, keys[:0])
		if err := ob.Release(ctx, keys...); err != nil {
			b.Fatal(err)
		}
	}
	polls := float64(b.N * per)
	b.ReportMetric(polls*20/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/polls, "µs/poll")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/polls, "cpu-µs/poll")
}

// appendDrain commits items, reads them back as the publisher does (the
// records after key after) and appends their keys to keys; it returns the
// keys and the last one's ID.
func appendDrain(b *testing.B, ob *Outbox, items []Item, after uint64, keys []Key) ([]Key, uint64) {
	if _, err := ob.Append(context.Background(), items...); err != nil {
		b.Fatal(err)
	}
	recs, err := ob.Drain(Readings, after, len(items))
	if err != nil || len(recs) != len(items) {
		b.Fatalf("drain: %d records, %v", len(recs), err)
	}
	for i := range recs {
		keys = append(keys, recs[i].Key)
	}
	return keys, recs[len(recs)-1].Key.ID
}

// BenchmarkSteadyCommit is the reference load's commit: the polls of one
// second (50 × 20 readings) appended in one commit, with the release of the
// previous second's records, acknowledged meanwhile, riding on it
// (ReleaseLater), as the gateway and its publisher do. It reports the pages
// bbolt writes per commit and the bytes of the file.
func BenchmarkSteadyCommit(b *testing.B) {
	const per = 50
	ob, err := Open(Options{Dir: b.TempDir(), Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	items := batchItems(per)
	var after uint64
	var prev []Key
	step := func() {
		ob.ReleaseLater(prev...)
		prev, after = appendDrain(b, ob, items, after, prev[:0])
	}
	for range 20 { // the store at its steady size
		step()
	}
	st0 := ob.db.Stats()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		step()
	}
	b.StopTimer()
	st1 := ob.db.Stats()
	st := st1.Sub(&st0)
	b.ReportMetric(float64(st.TxStats.GetWrite())/float64(b.N), "page-writes/commit")
	b.ReportMetric(float64(st.TxStats.GetPageCount())/float64(b.N), "pages-alloc/commit")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*per), "cpu-µs/poll")
	if fi, err := os.Stat(filepath.Join(ob.db.Path())); err == nil {
		b.ReportMetric(float64(fi.Size())/1024, "file-KiB")
	}
}
