package outbox

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/clocktest"
)

func TestAgeMarks(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	sec := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var a ageMarks
	a.add(1, sec(0), false)
	a.add(5, sec(0.5), false) // within a second of the last mark: covered by it
	a.add(9, sec(2), false)
	a.add(12, sec(1.5), true) // older than the last mark: merged, the older time kept
	require.Equal(t, []ageMark{{1, sec(0), false}, {9, sec(1.5), true}}, a.m)

	for _, c := range []struct {
		id   uint64
		mk   ageMark
		ok   bool
		left int
	}{
		{0, ageMark{}, false, 2}, // before every mark
		{7, ageMark{1, sec(0), false}, true, 2},
		{9, ageMark{9, sec(1.5), true}, true, 1}, // the mark before it is dropped
		{3, ageMark{}, false, 1},
		{40, ageMark{9, sec(1.5), true}, true, 1},
	} {
		mk, ok := a.oldest(c.id)
		require.Equal(t, c.ok, ok, "id %d", c.id)
		require.Equal(t, c.mk, mk, "id %d", c.id)
		require.Len(t, a.m, c.left, "id %d", c.id)
	}
	a.reset()
	require.Empty(t, a.m)
}

// Past maxMarks the marks are thinned; what every record reads as its
// commit time stays at or before the true one (ages err on the old side),
// and the first mark stays exact.
func TestAgeMarksBounded(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var a ageMarks
	truth := map[uint64]time.Time{}
	for i := range uint64(5000) {
		at := t0.Add(time.Duration(i) * 2 * time.Second)
		a.add(i*3+1, at, i == 4000) // one restored mark: merges keep the flag
		for id := i*3 + 1; id <= i*3+3; id++ {
			truth[id] = at
		}
	}
	require.LessOrEqual(t, len(a.m), maxMarks)
	require.Equal(t, ageMark{1, t0, false}, a.m[0])
	restored := 0
	for _, mk := range a.m {
		if mk.restored {
			restored++
		}
	}
	require.Equal(t, 1, restored, "the restored mark's flag was lost in a merge")
	for id, at := range truth {
		c := ageMarks{m: slices.Clone(a.m)}
		mk, ok := c.oldest(id)
		require.True(t, ok, "id %d", id)
		require.False(t, mk.at.After(at), "id %d reads younger than it is", id)
	}
}

// laneAge never reads younger than the marks or the wall clock can show.
func TestLaneAge(t *testing.T) {
	now := time.Now() // with a monotonic reading, as the outbox's clock
	wallAt := func(ago time.Duration) int64 { return now.Round(0).Add(-ago).UnixNano() }
	for _, c := range []struct {
		name  string
		marks []ageMark
		id    uint64
		at    int64
		want  time.Duration
	}{
		{"own mark, wall clock stepped back since", []ageMark{{1, now.Add(-time.Minute), false}}, 3, wallAt(-time.Hour), time.Minute},
		{"own mark, wall clock stepped forward since", []ageMark{{1, now.Add(-time.Minute), false}}, 3, wallAt(2 * time.Hour), time.Minute},
		{"restored mark, the clock set right after the open", []ageMark{{1, now.Add(-time.Minute), true}}, 3, wallAt(10 * time.Minute), 10 * time.Minute},
		{"restored mark, the wall clock behind", []ageMark{{1, now.Add(-time.Minute), true}}, 3, wallAt(-time.Hour), time.Minute},
		{"marks newer than the record left", []ageMark{{5, now.Add(-time.Minute), false}}, 3, wallAt(-time.Hour), time.Minute},
		{"marks newer, the wall older", []ageMark{{5, now.Add(-time.Minute), false}}, 3, wallAt(5 * time.Minute), 5 * time.Minute},
		{"no mark yet", nil, 3, wallAt(2 * time.Second), 2 * time.Second},
		{"no mark, the wall clock behind", nil, 3, wallAt(-time.Hour), 0},
	} {
		a := ageMarks{m: slices.Clone(c.marks)}
		require.Equal(t, c.want, a.laneAge(now, c.id, c.at), c.name)
	}
}

func TestRecordAt(t *testing.T) {
	v := appendHeader(nil, KindAlarm, 300, -42, "dev0.ch4.high")
	at, ok := recordAt(v)
	require.True(t, ok)
	require.Equal(t, int64(-42), at)
	v = appendHeader(nil, KindReadings, 1<<40, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC).UnixNano(), "d")
	at, ok = recordAt(v)
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC).UnixNano(), at)
	for _, bad := range [][]byte{nil, {recordVersion}, {9, 1, 1, 1}, {recordVersion, 1, 0x80}, {recordVersion, 1, 1}} {
		_, ok := recordAt(bad)
		require.False(t, ok, "%x", bad)
	}
}

// steppedClock is time.Now with its wall reading moved by the seconds in
// step: a system clock stepped while the process runs.
func steppedClock(step *atomic.Int64) func() time.Time {
	return func() time.Time { return clocktest.WallStep(time.Now(), time.Duration(step.Load())*time.Second) }
}

// The oldest record's age follows the monotonic clock: a step of the wall
// clock back neither makes a waiting record young (it read 0 for the
// length of the step) nor does a step forward make it old at once.
func TestOldestAgeAcrossWallClockSteps(t *testing.T) {
	var step atomic.Int64
	ob, err := Open(Options{Dir: t.TempDir(), Log: zerolog.Nop(), Now: steppedClock(&step)})
	require.NoError(t, err)
	defer ob.Close()
	age, err := ob.OldestAge(Readings)
	require.NoError(t, err)
	require.Zero(t, age, "an empty lane")
	_, err = ob.Append(context.Background(), benchItem("d0"))
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)

	step.Store(-3600)
	age, err = ob.OldestAge(Readings)
	require.NoError(t, err)
	require.GreaterOrEqual(t, age, 300*time.Millisecond, "a step back hid the wait")
	require.Less(t, age, time.Minute)

	step.Store(3600)
	age, err = ob.OldestAge(Readings)
	require.NoError(t, err)
	require.GreaterOrEqual(t, age, 300*time.Millisecond)
	require.Less(t, age, time.Minute, "a step forward aged the record")
	a, err := ob.OldestAge(Alarms)
	require.NoError(t, err)
	require.Zero(t, a, "the alarms lane is empty")
}

// Records restored at the open are as old as their stored wall time says
// then, and age on the monotonic clock from there (or by the wall clock,
// when that says they are older); records committed after the open get
// marks of their own, on the monotonic clock alone.
func TestOldestAgeOfRestoredRecords(t *testing.T) {
	dir := t.TempDir()
	var step atomic.Int64
	step.Store(-600) // the records are committed ten minutes before the open
	ob, err := Open(Options{Dir: dir, Log: zerolog.Nop(), Now: steppedClock(&step)})
	require.NoError(t, err)
	_, err = ob.Append(context.Background(), Item{Kind: KindAlarm, Stream: "a1", Encode: func(dst []byte, _ uint64) []byte { return append(dst, `{}`...) }})
	require.NoError(t, err)
	require.NoError(t, ob.Close())

	step.Store(0)
	ob, err = Open(Options{Dir: dir, Log: zerolog.Nop(), Now: steppedClock(&step)})
	require.NoError(t, err)
	defer ob.Close()
	near := func(want time.Duration) {
		t.Helper()
		age, err := ob.OldestAge(Alarms)
		require.NoError(t, err)
		require.InDelta(t, want.Seconds(), age.Seconds(), 30, "age %v", age)
	}
	near(10 * time.Minute)
	// A restored record also reads its wall age when that is older (the
	// clock at the open may have been wrong, see the next test): a step
	// forward after the open ages it, erring old.
	step.Store(3600)
	near(70 * time.Minute)

	_, err = ob.Append(context.Background(), Item{Kind: KindAlarm, Stream: "a2", Encode: func(dst []byte, _ uint64) []byte { return append(dst, `{}`...) }})
	require.NoError(t, err)
	recs, err := ob.Drain(Alarms, 0, 1)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.NoError(t, ob.Release(context.Background(), recs[0].Key))
	near(0) // the new record's own mark, not the restored one's

	// All delivered: the lane's marks go with its records.
	recs, err = ob.Drain(Alarms, 0, 1)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.NoError(t, ob.Release(context.Background(), recs[0].Key))
	ob.mu.Lock()
	left := len(ob.ages[Alarms].m)
	ob.mu.Unlock()
	require.Zero(t, left, "marks kept for an empty lane")
}

// A box whose clock is behind when the outbox opens (no real-time clock,
// NTP not reached yet) sees restored records as new; once the clock is set
// right they read as old as they are, not as old as the open.
func TestOldestAgeOfRestoredRecordsWithTheClockBehindAtTheOpen(t *testing.T) {
	dir := t.TempDir()
	var step atomic.Int64
	step.Store(-600) // committed ten minutes before the true now
	ob, err := Open(Options{Dir: dir, Log: zerolog.Nop(), Now: steppedClock(&step)})
	require.NoError(t, err)
	_, err = ob.Append(context.Background(), benchItem("d0"))
	require.NoError(t, err)
	require.NoError(t, ob.Close())

	step.Store(-3600) // opened with the clock an hour behind
	ob, err = Open(Options{Dir: dir, Log: zerolog.Nop(), Now: steppedClock(&step)})
	require.NoError(t, err)
	defer ob.Close()
	age, err := ob.OldestAge(Readings)
	require.NoError(t, err)
	require.Less(t, age, time.Minute, "the clock says the record is from the future")
	step.Store(0) // NTP sets it right
	age, err = ob.OldestAge(Readings)
	require.NoError(t, err)
	require.InDelta(t, (10 * time.Minute).Seconds(), age.Seconds(), 30, "age %v", age)
}
