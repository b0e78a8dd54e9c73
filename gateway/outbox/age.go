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
// the oldest record is the time since the last mark at or before it
// (laneAge).
//
// Bounded: a commit less than a second after the last mark is covered by
// that mark (its records read up to a second older than they are), and past
// maxMarks every other mark is merged into the one before it, keeping the
// older time: ages err on the old side, which is the side an alert on a
// stuck lane wants. Marks behind the oldest waiting record are dropped as
// it is read (oldest), and all of a lane's when it empties.
//
// Records restored at Open get marks from their stored wall times, as old
// as they were then. The clock at the open may be wrong (a box without a
// real-time clock, before NTP): a restored record's age is the larger of
// its age on those marks and its age by the wall clock now, so a clock set
// right after the open shows it as old as it is.
type ageMarks struct {
	m []ageMark
}

type ageMark struct {
	id       uint64    // the first record (bbolt key) the mark covers
	at       time.Time // when it was committed
	restored bool      // from a stored wall time at the open (see laneAge)
}

// maxMarks bounds the marks of one lane: 1 024 marks are 40 KiB.
const maxMarks = 1024

// add notes that records from id on were committed at at. ids must come in
// ascending order; times need not (restored records' wall times).
func (a *ageMarks) add(id uint64, at time.Time, restored bool) {
	if n := len(a.m); n > 0 {
		last := &a.m[n-1]
		if at.Sub(last.at) < time.Second {
			if at.Before(last.at) {
				last.at = at
			}
			last.restored = last.restored || restored
			return
		}
	}
	a.m = append(a.m, ageMark{id: id, at: at, restored: restored})
	if len(a.m) > maxMarks {
		// Merge each odd mark into the even one before it.
		out := a.m[:0]
		for i := 0; i < len(a.m); i += 2 {
			mk := a.m[i]
			if i+1 < len(a.m) {
				if next := a.m[i+1]; next.at.Before(mk.at) {
					mk.at = next.at
				}
				mk.restored = mk.restored || a.m[i+1].restored
			}
			out = append(out, mk)
		}
		clear(a.m[len(out):])
		a.m = out
	}
}

// oldest returns the mark that covers record id, the oldest waiting, and
// drops the marks before it. Without one (the marks that covered it were
// dropped by a newer id, or none was added yet) it returns ok false.
func (a *ageMarks) oldest(id uint64) (ageMark, bool) {
	i := sort.Search(len(a.m), func(i int) bool { return a.m[i].id > id }) - 1
	if i < 0 {
		return ageMark{}, false
	}
	if i > 0 {
		n := copy(a.m, a.m[i:])
		clear(a.m[n:])
		a.m = a.m[:n]
	}
	return a.m[0], true
}

// reset drops every mark: the lane is empty.
func (a *ageMarks) reset() {
	clear(a.m)
	a.m = a.m[:0]
}

// laneAge is the age at now of the oldest waiting record, id, committed at
// wall time at (Unix ns), by the marks (see ageMarks), never younger than
// they or the wall clock can show:
//   - covered by a mark made by this process: the time since the mark;
//   - covered by a restored mark: the larger of that and its wall age;
//   - not covered, marks newer than it left (a concurrent reader dropped
//     the ones that covered it): the larger of its wall age and the time
//     since the first mark, as it was committed before that;
//   - no mark at all (a commit whose mark is not added yet): its wall age.
func (a *ageMarks) laneAge(now time.Time, id uint64, at int64) time.Duration {
	wall := now.Round(0).Sub(time.Unix(0, at))
	var age time.Duration
	switch mk, ok := a.oldest(id); {
	case ok && !mk.restored:
		age = now.Sub(mk.at)
	case ok:
		age = max(now.Sub(mk.at), wall)
	case len(a.m) > 0:
		age = max(now.Sub(a.m[0].at), wall)
	default:
		age = wall
	}
	return max(0, age)
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
