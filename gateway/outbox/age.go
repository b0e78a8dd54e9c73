package outbox

import (
	"encoding/binary"
	"sort"
	"time"
)

// ageMarks tells the age of a lane's oldest waiting record on the
// monotonic clock. A record stores its commit time from the wall clock
// (Record.At), and an age read from it jumps with every step of that clock:
// after NTP stepped a box's clock back an hour at boot, a lane stuck since
// before the step reads as an hour younger (0, clamped), and a step forward
// makes everything waiting look old at once. So the outbox keeps, per lane,
// a mark at the first record of each commit that appended to it, with the
// commit's time as time.Now gave it (a monotonic reading), and the age of
// the oldest record is the time since the last mark at or before it.
//
// Bounded: a commit less than a second after the last mark is covered by
// that mark (its records read up to a second older than they are), and past
// maxMarks every other mark is merged into the one before it, keeping the
// older time: ages err on the old side, which is the side an alert on a
// stuck lane wants. Marks behind the oldest waiting record are dropped as
// it is read (oldest).
//
// Records restored at Open get marks from their stored wall times, as old
// as they were then (minus a step of the clock between their commit and the
// open, which nothing can tell); from the open on they age on the
// monotonic clock too.
type ageMarks struct {
	m []ageMark
}

type ageMark struct {
	id uint64    // the first record (bbolt key) the mark covers
	at time.Time // when it was committed
}

// maxMarks bounds the marks of one lane: 1 024 marks are 32 KiB.
const maxMarks = 1024

// add notes that records from id on were committed at at. ids must come in
// ascending order; times need not (restored records' wall times).
func (a *ageMarks) add(id uint64, at time.Time) {
	if n := len(a.m); n > 0 {
		last := &a.m[n-1]
		if at.Sub(last.at) < time.Second {
			if at.Before(last.at) {
				last.at = at
			}
			return
		}
	}
	a.m = append(a.m, ageMark{id: id, at: at})
	if len(a.m) > maxMarks {
		// Merge each odd mark into the even one before it.
		out := a.m[:0]
		for i := 0; i < len(a.m); i += 2 {
			mk := a.m[i]
			if i+1 < len(a.m) && a.m[i+1].at.Before(mk.at) {
				mk.at = a.m[i+1].at
			}
			out = append(out, mk)
		}
		clear(a.m[len(out):])
		a.m = out
	}
}

// oldest returns the commit time of the oldest waiting record, id, and
// drops the marks before the one that covers it. ok is false when no mark
// covers it.
func (a *ageMarks) oldest(id uint64) (at time.Time, ok bool) {
	i := sort.Search(len(a.m), func(i int) bool { return a.m[i].id > id }) - 1
	if i < 0 {
		return time.Time{}, false
	}
	if i > 0 {
		n := copy(a.m, a.m[i:])
		clear(a.m[n:])
		a.m = a.m[:n]
	}
	return a.m[0].at, true
}

// recordAt reads the commit time (Unix ns) from a stored record's header
// without checking it (DecodeRecord does, when the record is read).
func recordAt(v []byte) (int64, bool) {
	if len(v) < 2 || v[0] != recordVersion {
		return 0, false
	}
	_, n := binary.Uvarint(v[2:])
	if n <= 0 {
		return 0, false
	}
	at, m := binary.Varint(v[2+n:])
	if m <= 0 {
		return 0, false
	}
	return at, true
}
