package ingest

import (
	"sync"

	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
)

// Fresh hands the line protocol of the readings a gateway commits to its
// outbox over to its Direct writer, built at the commit from the readings
// themselves as their payload is encoded, so that the writer need not
// decode the payload it reads back from the outbox: decoding was about a
// twentieth of the gateway's CPU at the reference load
// (docs/performance-history.md, item 64).
//
// It is a cache, never the record: the writer still drains, writes and
// releases the outbox's records, and a record Fresh does not hold (evicted
// while InfluxDB was away, committed before a restart, or one whose
// payload would not decode) is decoded from the outbox as before. The
// lines are the ones the decoded payload gives, byte for byte
// (TestFreshLinesAreTheDecodedPayloads).
//
// Safe for concurrent use: the outbox's commit goroutine adds, the writer
// takes.
type Fresh struct {
	mu      sync.Mutex
	entries map[freshKey]freshEntry
	// order is a ring of the keys in the order they were added: past
	// maxFreshRecords or maxFreshBytes the oldest goes first, as the
	// writer, which drains oldest first, would have read it soonest.
	order       []freshKey
	head, n     int
	bytes       int      // the lines held: their buffers' capacity
	free        [][]byte // buffers of taken or evicted entries, for reuse
	freeBytes   int
	values      [][2]int // scratch of add: the payload's value spans
	texts       [][]byte // scratch of add: the value texts
	added, hits uint64
}

type freshKey struct {
	stream string // the device
	seq    uint64
}

type freshEntry struct {
	lines  []byte
	points int
}

// Bounds of what Fresh holds: about 20 seconds of the reference load's
// lines (110 kB a second), or 1.3 at 10 000 sensors; a writer further
// behind (InfluxDB slow or away) decodes the older records instead.
const (
	maxFreshRecords = 1024
	maxFreshBytes   = 512 << 10
)

// NewFresh returns an empty Fresh.
func NewFresh() *Fresh {
	return &Fresh{entries: make(map[freshKey]freshEntry), order: make([]freshKey, maxFreshRecords)}
}

// Item is mqtt.ReadingsItem whose encoder also builds the readings' lines
// for the writer, with the seq the outbox gives them.
func (f *Fresh) Item(m mqtt.Readings) outbox.Item {
	return outbox.Item{Kind: outbox.KindReadings, Stream: m.Device, Encode: func(dst []byte, seq uint64) []byte {
		m.Seq = seq
		f.mu.Lock()
		defer f.mu.Unlock()
		dst, f.values = mqtt.AppendReadingsValues(dst, &m, f.values[:0])
		f.addLocked(&m, dst)
		return dst
	}}
}

// addLocked keeps the lines of m, whose payload AppendReadingsValues
// wrote into buf (f.values its value spans in it). A commit that failed and is tried
// again, or a seq given again after a failed commit, encodes the same key
// again: the last encoding is the one committed, and it replaces the
// lines kept.
func (f *Fresh) addLocked(m *mqtt.Readings, buf []byte) {
	k := freshKey{m.Device, m.Seq}
	if old, had := f.entries[k]; had {
		f.dropLocked(old)
		delete(f.entries, k)
	}
	if !mqtt.Decodable(m) {
		return // decoded from the outbox, which says what is wrong with it
	}
	texts := f.texts[:0]
	for i, v := range f.values {
		var t []byte
		if m.Readings[i].Valid {
			t = buf[v[0]:v[1]:v[1]]
		}
		texts = append(texts, t)
	}
	lines := appendReadingLines(f.buffer(), m, texts)
	clear(texts) // no reference to the outbox's commit buffer is kept
	f.texts = texts[:0]
	if cap(lines) > maxFreshBytes {
		f.recycle(lines)
		return
	}
	for f.n > 0 && (f.n == len(f.order) || f.bytes+cap(lines) > maxFreshBytes) {
		f.evictOldestLocked()
	}
	// A key added again has a second place in order: the first one's turn
	// forgets the lines early, which only has them decoded.
	f.order[(f.head+f.n)%len(f.order)] = k
	f.n++
	f.entries[k] = freshEntry{lines: lines, points: len(m.Readings)}
	f.bytes += cap(lines)
	f.added++
}

// evictOldestLocked forgets the oldest key added, if its lines are still
// held.
func (f *Fresh) evictOldestLocked() {
	k := f.order[f.head]
	f.order[f.head] = freshKey{}
	f.head = (f.head + 1) % len(f.order)
	f.n--
	if e, ok := f.entries[k]; ok {
		delete(f.entries, k)
		f.dropLocked(e)
	}
}

// dropLocked lets an entry's lines go (their buffer is kept for reuse).
func (f *Fresh) dropLocked(e freshEntry) {
	f.bytes -= cap(e.lines)
	f.recycle(e.lines)
}

// buffer returns an empty buffer for lines.
func (f *Fresh) buffer() []byte {
	if n := len(f.free); n > 0 {
		b := f.free[n-1]
		f.free[n-1] = nil
		f.free = f.free[:n-1]
		f.freeBytes -= cap(b)
		return b[:0]
	}
	return nil
}

// recycle keeps b for buffer, within maxFreshBytes of buffers kept.
func (f *Fresh) recycle(b []byte) {
	if b == nil || f.freeBytes+cap(b) > maxFreshBytes {
		return
	}
	f.free = append(f.free, b)
	f.freeBytes += cap(b)
}

// take appends the lines of the readings record of stream and seq to dst
// and forgets them, if Fresh holds them; points is how many.
func (f *Fresh) take(dst []byte, stream string, seq uint64) (_ []byte, points int, ok bool) {
	if f == nil {
		return dst, 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := freshKey{stream, seq}
	e, ok := f.entries[k]
	if !ok {
		return dst, 0, false
	}
	delete(f.entries, k)
	dst = append(dst, e.lines...)
	f.dropLocked(e)
	f.hits++
	// The key stays in order until its turn comes: it finds no entry then.
	return dst, e.points, true
}

// FreshStats are a Fresh's counters since it was made.
type FreshStats struct {
	Added uint64 // records whose lines were built at commit (a commit tried again counts again)
	Taken uint64 // of them, written from those lines
	Held  int    // records whose lines are held now
}

// Stats returns the counters.
func (f *Fresh) Stats() FreshStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FreshStats{Added: f.added, Taken: f.hits, Held: len(f.entries)}
}
