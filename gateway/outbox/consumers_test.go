package outbox

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func openConsumers(t *testing.T, dir string, maxBytes int64, consumers int) *Outbox {
	t.Helper()
	ob, err := Open(Options{Dir: dir, MaxBytes: maxBytes, Consumers: consumers, Log: zerolog.New(zerolog.NewTestWriter(t))})
	require.NoError(t, err)
	return ob
}

func keys(recs []Record) []Key {
	out := make([]Key, len(recs))
	for i, r := range recs {
		out[i] = r.Key
	}
	return out
}

// With two consumers a record leaves only when both released it, in
// either order; each consumer's drain skips what it released itself and
// reports how far it read, and a restart forgets the marks: each consumer
// gets again what was not deleted.
func TestTwoConsumersEachReleaseBeforeDelete(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ob := openConsumers(t, dir, 0, 2)
	for c := range 2 { // Open signals both, for a backlog from before
		<-ob.AppendedTo(c)
	}
	_, err := ob.Append(ctx, item(KindReadings, "d"), item(KindReadings, "d"), item(KindReadings, "d"), item(KindEvent, "events"))
	require.NoError(t, err)
	for c := range 2 {
		select {
		case <-ob.AppendedTo(c):
		default:
			t.Fatalf("consumer %d not signalled", c)
		}
	}

	recs0, next0, err := ob.DrainFor(0, nil, Readings, 0, 10, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"d#1", "d#2", "d#3"}, payloads(recs0))
	require.Equal(t, recs0[2].Key.ID, next0)

	// Consumer 0 releases the first two: nothing is deleted yet.
	require.NoError(t, ob.ReleaseBy(ctx, 0, recs0[0].Key, recs0[1].Key))
	require.Equal(t, 3, ob.Stats().Records[Readings])
	// Consumer 0 no longer gets them, and its cursor moves past them.
	again, next, err := ob.DrainFor(0, nil, Readings, 0, 10, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"d#3"}, payloads(again))
	require.Equal(t, recs0[2].Key.ID, next)
	one, next, err := ob.DrainFor(0, nil, Readings, 0, 1, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"d#3"}, payloads(one), "max counts records returned, not skipped")
	require.Equal(t, recs0[2].Key.ID, next)
	// Consumer 1 still gets all three.
	recs1, _, err := ob.DrainFor(1, nil, Readings, 0, 10, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"d#1", "d#2", "d#3"}, payloads(recs1))

	// Consumer 1 releases the second and third (deferred): the second
	// goes (both released it), the third waits for consumer 0.
	ob.ReleaseLaterBy(1, recs1[1].Key, recs1[2].Key)
	require.NoError(t, ob.Release(ctx)) // commits the deferred releases
	require.Equal(t, 2, ob.Stats().Records[Readings])
	r0, _, err := ob.DrainFor(0, nil, Readings, 0, 10, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"d#3"}, payloads(r0))
	r1, _, err := ob.DrainFor(1, nil, Readings, 0, 10, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"d#1"}, payloads(r1))
	// A release repeated by the same consumer is not the other's.
	require.NoError(t, ob.ReleaseBy(ctx, 1, recs1[2].Key))
	require.Equal(t, 2, ob.Stats().Records[Readings])
	ob.halfMu.Lock()
	require.Len(t, ob.released[0], 1, "consumer 0's mark of d#2 went with the record")
	require.Len(t, ob.released[1], 1)
	ob.halfMu.Unlock()

	// The alarm lane too, and Release (consumer 0's) counts as consumer 0.
	al, _, err := ob.DrainFor(1, nil, Alarms, 0, 10, nil)
	require.NoError(t, err)
	require.Len(t, al, 1)
	require.NoError(t, ob.ReleaseBy(ctx, 1, al[0].Key))
	require.Equal(t, 1, ob.Stats().Records[Alarms])
	require.NoError(t, ob.Release(ctx, al[0].Key))
	require.Zero(t, ob.Stats().Records[Alarms])

	// A restart forgets who released what: both get d#1 and d#3 again.
	require.NoError(t, ob.Close())
	ob = openConsumers(t, dir, 0, 2)
	defer ob.Close()
	for c := range 2 {
		r, _, err := ob.DrainFor(c, nil, Readings, 0, 10, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"d#1", "d#3"}, payloads(r), "consumer %d after a restart", c)
	}
	_, _, err = ob.DrainFor(2, nil, Readings, 0, 10, nil)
	require.Error(t, err)
	require.Error(t, ob.ReleaseBy(ctx, 2, Key{Lane: Readings, ID: 1}))
	require.Nil(t, ob.AppendedTo(2))
}

// One consumer (the default) deletes at the first release, as before.
func TestOneConsumerDeletesAtRelease(t *testing.T) {
	ob := openConsumers(t, t.TempDir(), 0, 0)
	defer ob.Close()
	ctx := context.Background()
	_, err := ob.Append(ctx, item(KindReadings, "d"))
	require.NoError(t, err)
	recs, err := ob.Drain(Readings, 0, 10)
	require.NoError(t, err)
	require.NoError(t, ob.Release(ctx, keys(recs)...))
	require.Zero(t, ob.Stats().Records[Readings])
	require.Nil(t, ob.AppendedTo(1))
	_, err = Open(Options{Dir: t.TempDir(), Consumers: 3})
	require.ErrorContains(t, err, "3 consumers")
}

// Readings dropped at max_bytes take their release marks with them: the
// marks are bounded by the records stored.
func TestDroppedRecordsTakeTheirMarks(t *testing.T) {
	ob := openConsumers(t, t.TempDir(), 600, 2)
	defer ob.Close()
	ctx := context.Background()
	for range 5 {
		_, err := ob.Append(ctx, item(KindReadings, "device-with-a-long-name"))
		require.NoError(t, err)
	}
	recs, _, err := ob.DrainFor(0, nil, Readings, 0, 100, nil)
	require.NoError(t, err)
	require.NoError(t, ob.ReleaseBy(ctx, 0, keys(recs)...))
	ob.halfMu.Lock()
	marked := len(ob.released[0])
	ob.halfMu.Unlock()
	require.Equal(t, len(recs), marked)
	// Consumer 1 never comes: the bound drops the oldest, marks and all.
	for range 200 {
		_, err := ob.Append(ctx, item(KindReadings, "device-with-a-long-name"))
		require.NoError(t, err)
	}
	require.NotZero(t, ob.Stats().DroppedRecords)
	ob.halfMu.Lock()
	defer ob.halfMu.Unlock()
	for k := range ob.released[0] {
		t.Errorf("mark of dropped record %v kept", k)
	}
}

// A corrupt record is deleted whoever released it: no consumer can use it.
func TestCorruptRecordLeavesWithTwoConsumers(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ob := openConsumers(t, dir, 0, 2)
	_, err := ob.Append(ctx, item(KindReadings, "d"), item(KindReadings, "d"))
	require.NoError(t, err)
	require.NoError(t, ob.Close())
	db, err := bolt.Open(dir+"/outbox.db", 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReadings).Put(keyBytes(1), []byte("garbage that is long enough"))
	}))
	require.NoError(t, db.Close())

	ob = openConsumers(t, dir, 0, 2)
	defer ob.Close()
	recs, next, err := ob.DrainFor(1, nil, Readings, 0, 10, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"d#2"}, payloads(recs))
	require.Equal(t, uint64(2), next)
	require.Equal(t, 1, ob.Stats().Records[Readings], "the corrupt record is gone")
	r0, _, err := ob.DrainFor(0, nil, Readings, 0, 10, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"d#2"}, payloads(r0))
}

// The age of the oldest record counts every record waiting, for either
// consumer: a backlog only InfluxDB's writer has not released is as old
// as it is (it read 0 s while 300 000 records waited, and read them all).
func TestOldestAgeCountsEitherConsumersBacklog(t *testing.T) {
	base := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // no monotonic reading: ages by this clock
	var off atomic.Int64
	ob, err := Open(Options{Dir: t.TempDir(), Consumers: 2, Log: zerolog.Nop(), Now: func() time.Time { return base.Add(time.Duration(off.Load())) }})
	require.NoError(t, err)
	defer ob.Close()
	ctx := context.Background()
	_, err = ob.Append(ctx, item(KindReadings, "d"), item(KindReadings, "d"))
	require.NoError(t, err)
	off.Store(int64(10 * time.Second))
	recs, _, err := ob.DrainFor(0, nil, Readings, 0, 10, nil)
	require.NoError(t, err)
	require.NoError(t, ob.ReleaseBy(ctx, 0, keys(recs)...))
	age, err := ob.OldestAge(Readings)
	require.NoError(t, err)
	require.GreaterOrEqual(t, age, 9*time.Second, "the records wait for consumer 1")
	all, err := ob.Drain(Readings, 0, 10)
	require.NoError(t, err)
	require.Len(t, all, 2, "Drain sees every stored record")
}

// Release with no keys is a barrier: when it returns, a release deferred
// before the call is on disk, even when a commit under way had already
// taken it (it returned at once, while that commit was in its
// transaction).
func TestReleaseWithNoKeysWaitsForTheCommitUnderWay(t *testing.T) {
	ob := openConsumers(t, t.TempDir(), 0, 2)
	defer ob.Close()
	ctx := context.Background()
	for i := range 100 {
		_, err := ob.Append(ctx, item(KindReadings, "d"))
		require.NoError(t, err)
		recs, _, err := ob.DrainFor(1, nil, Readings, 0, 1, nil)
		require.NoError(t, err)
		require.Len(t, recs, 1)
		require.NoError(t, ob.ReleaseBy(ctx, 0, recs[0].Key))
		ob.ReleaseLaterBy(1, recs[0].Key)
		// A commit that takes the deferred release with it; Release is
		// called once it has (it is then in its transaction, or done).
		require.NoError(t, ob.AppendAsync([]Item{item(KindEvent, "events")}, func([]uint64, error) {}))
		for taken := false; !taken; {
			ob.mu.Lock()
			taken = len(ob.later[1]) == 0
			ob.mu.Unlock()
		}
		require.NoError(t, ob.Release(ctx))
		left, err := ob.Drain(Readings, 0, 10)
		require.NoError(t, err)
		require.Empty(t, left, "round %d: the released record is still stored when Release returned", i)
	}
}

// A consumer's map of marks that emptied after a long outage is made anew
// (Go's maps keep their peak size).
func TestReleaseMarksGiveBackTheirMemory(t *testing.T) {
	ob := openConsumers(t, t.TempDir(), 0, 2)
	defer ob.Close()
	ctx := context.Background()
	items := make([]Item, marksKept+10)
	for i := range items {
		items[i] = item(KindReadings, "d")
	}
	_, err := ob.Append(ctx, items...)
	require.NoError(t, err)
	recs, _, err := ob.DrainFor(0, nil, Readings, 0, len(items), nil)
	require.NoError(t, err)
	require.NoError(t, ob.ReleaseBy(ctx, 0, keys(recs)...))
	ob.halfMu.Lock()
	require.Len(t, ob.released[0], len(items))
	before := ob.released[0]
	ob.halfMu.Unlock()
	require.NoError(t, ob.ReleaseBy(ctx, 1, keys(recs)...))
	require.Zero(t, ob.Stats().Records[Readings])
	ob.halfMu.Lock()
	defer ob.halfMu.Unlock()
	require.Empty(t, ob.released[0])
	require.Zero(t, ob.marksPeak[0])
	// A new map, not the emptied one.
	before[Key{Lane: Readings, ID: 1}] = struct{}{}
	require.Empty(t, ob.released[0])
}

// An Append that has returned has its records signalled to every consumer
// already: a consumer woken by the appender (or a test) finds them.
func TestAppendReturnsSignalled(t *testing.T) {
	ob := openConsumers(t, t.TempDir(), 0, 2)
	defer ob.Close()
	for c := range 2 {
		<-ob.AppendedTo(c) // Open's signal, for a backlog from before
	}
	ctx := context.Background()
	for i := range 300 {
		_, err := ob.Append(ctx, item(KindReadings, "d"))
		require.NoError(t, err)
		for c := range 2 {
			select {
			case <-ob.AppendedTo(c):
			default:
				t.Fatalf("append %d: consumer %d not signalled when Append returned", i, c)
			}
		}
	}
}
