package outbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

var (
	bucketAlarms   = []byte("alarms")
	bucketReadings = []byte("readings")
	bucketSeq      = []byte("seq")
	bucketMeta     = []byte("meta")
	metaDropped    = []byte("dropped_records")
)

// ErrClosed is returned by calls on a closed outbox.
var ErrClosed = errors.New("outbox closed")

// Options configure Open.
type Options struct {
	// Dir holds outbox.db; it is created if missing.
	Dir string
	// MaxBytes bounds the stored records (keys + values). Past it the oldest
	// readings are dropped. Alarms are never dropped, even past the bound.
	MaxBytes int64
	// OnDrop is told about readings dropped to stay under MaxBytes. It runs on
	// the commit goroutine: it must not block and must not call the outbox
	// (hand the news to a channel).
	OnDrop func(Drop)
	// MaxGroup caps how many queued requests one transaction takes (default 4096).
	MaxGroup int
	// Log receives lifecycle and drop messages.
	Log zerolog.Logger
	// Now is the clock (nil: time.Now); tests step its wall reading.
	Now func() time.Time
	// Consumers is how many consumers read the outbox, each on its own
	// and at its own pace: 1 (the default) or 2 (a site writing InfluxDB
	// itself besides publishing over MQTT). A record is deleted when every
	// consumer released it; until then one consumer's Drain skips what it
	// released itself. Which consumer released what is kept in memory: a
	// restart forgets it, and each consumer gets again what it had not
	// seen deleted (a duplicate, which both consumers' idempotent writes
	// absorb), never less.
	Consumers int
}

// MaxConsumers is the most consumers an outbox serves (Options.Consumers).
const MaxConsumers = 2

// Drop reports readings dropped by one commit.
type Drop struct {
	Records int
	Bytes   int64
	// Total is every record dropped since the outbox was created.
	Total uint64
}

// Item is one message to append.
type Item struct {
	Kind Kind
	// Stream keys the sequence: the device id, the alarm id or "events".
	Stream string
	// Encode appends the wire payload given the sequence number allocated at
	// commit. It runs on the commit goroutine, once per commit that tries
	// the item, and must be quick; the same item must give the same bytes
	// for the same seq.
	Encode func(dst []byte, seq uint64) []byte
	// Gap is how many of the stream's seqs to leave unused before this
	// item's: batches its producer did not append (the gateway sheds the
	// readings of a core far behind), so that a subscriber counting seqs
	// sees that they are missing. An item with a Gap and no Encode stores
	// nothing: it only leaves its Gap unused, durably, where no later item
	// of the stream does yet.
	Gap uint64
}

// checkItems rejects items an append cannot commit.
func checkItems(items []Item) error {
	for i, it := range items {
		if !it.Kind.valid() {
			return fmt.Errorf("append: item %d: unknown kind %d", i, it.Kind)
		}
		if it.Encode == nil && it.Gap == 0 {
			return fmt.Errorf("append: item %d: no encoder", i)
		}
	}
	return nil
}

// Stats is a snapshot of the outbox.
type Stats struct {
	Records        [2]int   // by lane
	Bytes          [2]int64 // by lane
	DroppedRecords uint64
	CorruptRecords uint64
	Commits        uint64
}

// Outbox is the durable queue. Its methods are safe for concurrent use.
type Outbox struct {
	db       *bolt.DB
	maxBytes int64
	maxGroup int
	onDrop   func(Drop)
	log      zerolog.Logger
	now      func() time.Time // Options.Now

	reqs     chan *request
	stop     chan struct{}
	done     chan struct{}
	appended [MaxConsumers]chan struct{}
	// consumers is Options.Consumers (1 or 2).
	consumers int
	// laterQueued wakes the commit loop when the first deferred release
	// arrives (ReleaseLater), so that it bounds how long it waits.
	laterQueued chan struct{}
	// arena holds one commit's records end to end; owned by the commit
	// loop (see commit and baseArena), as is arenaUsed, when a commit
	// last needed more than baseArena of it.
	arena     []byte
	arenaUsed time.Time
	// drained counts the bytes Drain read since the mapping was last
	// trimmed (trimMapping).
	drained atomic.Int64
	// drops keeps the log of dropped readings to a line per period;
	// owned by the commit loop.
	drops dropLog

	// sending is held (read) by a request from its check of closed
	// until it is in the queue, and (write) by Close while it sets
	// closed: a request is either refused or queued before Close stops
	// the commit loop, whose last drain then answers it. Without it a
	// request that passed the check could be queued after that drain and
	// never answered (Append waiting forever; AppendAsync's callback
	// never called for items it reported queued).
	sending sync.RWMutex

	// halfMu guards released: by consumer, the records it released that
	// another consumer has not (Options.Consumers 2 only). The commit loop
	// writes it, Drain reads it. Bounded by the records stored: a mark
	// goes with its record (released by the other consumer, or dropped).
	halfMu    sync.Mutex
	released  [MaxConsumers]map[Key]struct{}
	marksPeak [MaxConsumers]int // the most marks released[c] held since it was made

	mu sync.Mutex // guards the fields below (also read by Stats/LastSeq)
	// later holds, by consumer, ReleaseLater's keys, deleted by the next
	// commit.
	later   [MaxConsumers][]Key
	closed  bool
	seqs    map[string]uint64
	records [2]int
	bytes   [2]int64
	dropped uint64
	corrupt uint64
	commits uint64
	ages    [2]ageMarks // by lane: see ageMarks
}

type request struct {
	items   []Item
	release []Key
	// by is the consumer releasing; force deletes whoever released
	// (corrupt records).
	by    int
	force bool
	seqs  []uint64
	err   error
	done  chan struct{}
	then  func([]uint64, error) // AppendAsync's callback
}

// Open opens (or creates) the outbox in o.Dir and starts its commit goroutine.
// Close stops it.
func Open(o Options) (*Outbox, error) {
	if o.Dir == "" {
		return nil, errors.New("open outbox: no dir")
	}
	if o.Consumers == 0 {
		o.Consumers = 1
	}
	if o.Consumers < 1 || o.Consumers > MaxConsumers {
		return nil, fmt.Errorf("open outbox: %d consumers (want 1 or %d)", o.Consumers, MaxConsumers)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	path := filepath.Join(o.Dir, "outbox.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        5 * time.Second, // another process holds the lock
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	ob := &Outbox{
		db:        db,
		maxBytes:  o.MaxBytes,
		maxGroup:  o.MaxGroup,
		onDrop:    o.OnDrop,
		log:       o.Log,
		reqs:      make(chan *request, 1024),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		seqs:      map[string]uint64{},
		now:       o.Now,
		consumers: o.Consumers,

		laterQueued: make(chan struct{}, 1),
	}
	if ob.now == nil {
		ob.now = time.Now
	}
	for c := range ob.consumers {
		ob.appended[c] = make(chan struct{}, 1)
		if ob.consumers > 1 {
			ob.released[c] = map[Key]struct{}{}
		}
	}
	if ob.maxGroup <= 0 {
		ob.maxGroup = 4096
	}
	if err := ob.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	ob.log.Info().Int("alarms", ob.records[Alarms]).Int("readings", ob.records[Readings]).
		Int64("bytes", ob.bytes[0]+ob.bytes[1]).Msg("outbox opened")
	go ob.commitLoop()
	// Wake a consumer at once if a backlog survived the restart.
	ob.signal()
	return ob, nil
}

func streamKey(k Kind, stream string) string { return string(rune('0'+k)) + stream }

func (ob *Outbox) load() error {
	return ob.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketAlarms, bucketReadings, bucketSeq, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if err := tx.Bucket(bucketSeq).ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				ob.seqs[string(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		}); err != nil {
			return err
		}
		if v := tx.Bucket(bucketMeta).Get(metaDropped); len(v) == 8 {
			ob.dropped = binary.BigEndian.Uint64(v)
		}
		opened := ob.now()
		for lane, name := range [][]byte{bucketAlarms, bucketReadings} {
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				ob.records[lane]++
				ob.bytes[lane] += int64(len(k) + len(v))
				// As old at the open as the wall clock says, and aging on
				// the monotonic clock from here (ageMarks).
				if at, ok := recordAt(v); ok && len(k) == 8 {
					age := max(0, opened.Sub(time.Unix(0, at)))
					ob.ages[lane].add(binary.BigEndian.Uint64(k), opened.Add(-age), true)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		// Counting read the whole backlog (and bbolt's free-page scan
		// the whole file): none of it need stay resident.
		if tx.Size() >= trimEvery {
			trimMapping(ob.db, tx)
		}
		return nil
	})
}

// Close stops the commit goroutine (after finishing queued requests) and
// closes the file.
func (ob *Outbox) Close() error {
	ob.sending.Lock()
	ob.mu.Lock()
	if ob.closed {
		ob.mu.Unlock()
		ob.sending.Unlock()
		return nil
	}
	ob.closed = true
	ob.mu.Unlock()
	ob.sending.Unlock()
	close(ob.stop)
	<-ob.done
	if err := ob.db.Close(); err != nil {
		return fmt.Errorf("close outbox: %w", err)
	}
	return nil
}

// Append commits items in one durable transaction (shared with concurrent
// callers) and returns the sequence number allocated to each. When it
// returns nil the items are on disk.
func (ob *Outbox) Append(ctx context.Context, items ...Item) ([]uint64, error) {
	if err := checkItems(items); err != nil {
		return nil, err
	}
	r := &request{items: items, done: make(chan struct{})}
	if err := ob.submit(ctx, r); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	return r.seqs, r.err
}

// AppendAsync queues items for the next commit and returns without waiting
// for it: the caller goes on while the disk works. then is called on the
// commit goroutine with the seqs (err nil: the items are on disk) or the
// error, before any request queued after this one completes, so commit
// order is queue order. then must not block on, or call, this outbox. The
// only waits are for room in the queue (back-pressure) and for a Close
// under way to mark the outbox closed; a closed outbox is reported at once.
func (ob *Outbox) AppendAsync(items []Item, then func(seqs []uint64, err error)) error {
	if err := checkItems(items); err != nil {
		return err
	}
	if err := ob.enqueue(context.Background(), &request{items: items, then: then}); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return nil
}

// Release deletes records; a key that is already gone is ignored. It also
// commits the releases ReleaseLater deferred, so Release() with no keys
// flushes those.
func (ob *Outbox) Release(ctx context.Context, keys ...Key) error {
	return ob.release(ctx, &request{release: keys, done: make(chan struct{})})
}

// ReleaseBy is Release for consumer c (0 is Release's, see
// Options.Consumers): with two consumers a record is deleted by the
// second release.
func (ob *Outbox) ReleaseBy(ctx context.Context, c int, keys ...Key) error {
	if c < 0 || c >= ob.consumers {
		return fmt.Errorf("release: no consumer %d", c)
	}
	return ob.release(ctx, &request{release: keys, by: c, done: make(chan struct{})})
}

// release submits r and waits for its commit. With no keys it is still
// queued, behind any commit under way, so that when it returns every
// release made before the call is on disk (a commit that has already taken
// the deferred ones may be in its transaction); the commit loop answers
// it without a transaction when there is nothing to write.
func (ob *Outbox) release(ctx context.Context, r *request) error {
	if err := ob.submit(ctx, r); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return r.err
}

// ReleaseLater deletes records with the next commit instead of a commit of
// their own: a consumer releasing what the broker acknowledged adds no
// transaction, its deletes ride on the next append's. They are committed
// within laterMaxAge when no append comes. Until then the records stay on
// disk, so a crash or a reconnect publishes them again (a duplicate,
// which the consumers' idempotent writes absorb), never loses one.
func (ob *Outbox) ReleaseLater(keys ...Key) { ob.ReleaseLaterBy(0, keys...) }

// ReleaseLaterBy is ReleaseLater for consumer c (see ReleaseBy). A
// consumer the outbox does not have releases nothing.
func (ob *Outbox) ReleaseLaterBy(c int, keys ...Key) {
	if len(keys) == 0 || c < 0 || c >= ob.consumers {
		return
	}
	ob.mu.Lock()
	first := len(ob.later[0])+len(ob.later[1]) == 0
	ob.later[c] = append(ob.later[c], keys...)
	ob.mu.Unlock()
	if first {
		select {
		case ob.laterQueued <- struct{}{}:
		default:
		}
	}
}

// The record buffer kept between commits. baseArena holds a commit of
// readings (64 polls of 120 readings fit) and is always kept. A part of an
// alarm flood (4 096 events with their alarm states: a few MiB) grows it;
// grown up to maxArena it is kept while commits keep needing it, and let
// go arenaKeep after the last one did: regrown for every part, it was a
// third of what a flood allocated (BenchmarkCoreFloodWide: 117 → 75 MB
// per 10 000 transitions). A commit larger than maxArena allocates its own.
const (
	baseArena = 1 << 20
	maxArena  = 8 << 20
)

// arenaKeep: see baseArena. A variable for the test.
var arenaKeep = 10 * time.Second

// keepArena keeps a commit's record buffer for the next (see baseArena).
func (ob *Outbox) keepArena(arena []byte, now time.Time) {
	if len(arena) > baseArena {
		ob.arenaUsed = now
	}
	switch {
	case cap(arena) > maxArena:
		ob.arena = nil
	case cap(arena) > 2*baseArena && now.Sub(ob.arenaUsed) >= arenaKeep:
		// (Up to twice baseArena is what a commit within baseArena can
		// grow it to: always kept.)
		ob.arena = nil
	default:
		ob.arena = arena[:0]
	}
}

// laterMaxAge bounds how long a deferred release waits for an append to
// share its commit: longer than a 1 s poll period, so that a site polled
// every second never commits its releases on their own.
const laterMaxAge = 2 * time.Second

func (ob *Outbox) submit(ctx context.Context, r *request) error {
	if err := ob.enqueue(ctx, r); err != nil {
		return err
	}
	// Once queued the request will be committed or failed; waiting for the
	// answer (not for ctx) keeps "returned error" meaning "not stored".
	<-r.done
	return nil
}

// enqueue puts r in the commit loop's queue, or reports why not: the
// outbox is closed, or ctx ended while the queue was full.
// Holding sending while it waits for room is safe: the commit loop keeps
// taking requests until Close, which waits for sending, stops it.
func (ob *Outbox) enqueue(ctx context.Context, r *request) error {
	ob.sending.RLock()
	defer ob.sending.RUnlock()
	ob.mu.Lock()
	closed := ob.closed
	ob.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if enqueueHook != nil {
		enqueueHook(ob)
	}
	select {
	case ob.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueueHook, set only by tests, runs between enqueue's check of closed
// and its send: where a Close used to slip in.
var enqueueHook func(*Outbox)

// Appended is signalled (without blocking the committer) after every commit
// that appended records. Consumer 0's: see AppendedTo.
func (ob *Outbox) Appended() <-chan struct{} { return ob.appended[0] }

// AppendedTo is Appended for consumer c (nil for a consumer the outbox
// does not have: it never fires).
func (ob *Outbox) AppendedTo(c int) <-chan struct{} {
	if c < 0 || c >= ob.consumers {
		return nil
	}
	return ob.appended[c]
}

func (ob *Outbox) signal() {
	for c := range ob.consumers {
		select {
		case ob.appended[c] <- struct{}{}:
		default:
		}
	}
}

// LastSeq is the last sequence number allocated to a stream of kind k.
func (ob *Outbox) LastSeq(k Kind, stream string) uint64 {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.seqs[streamKey(k, stream)]
}

// Stats returns counters and sizes.
func (ob *Outbox) Stats() Stats {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return Stats{Records: ob.records, Bytes: ob.bytes, DroppedRecords: ob.dropped, CorruptRecords: ob.corrupt, Commits: ob.commits}
}

func (ob *Outbox) commitLoop() {
	defer close(ob.done)
	group := make([]*request, 0, 64)
	// later fires laterMaxAge after the first deferred release, if no
	// commit took it meanwhile.
	later := time.NewTimer(time.Hour)
	later.Stop()
	defer later.Stop()
	for {
		var first *request
		select {
		case first = <-ob.reqs:
		case <-ob.laterQueued:
			later.Reset(laterMaxAge)
			continue
		case <-later.C:
			first = &request{} // commits the deferred releases
		case <-ob.stop:
			// Finish what was queued before Close, and the deferred
			// releases.
			for {
				select {
				case r := <-ob.reqs:
					ob.commit([]*request{r})
				default:
					ob.commit([]*request{{}})
					ob.drops.flush(ob.log)
					return
				}
			}
		}
		group = append(group[:0], first)
	more:
		for len(group) < ob.maxGroup {
			select {
			case r := <-ob.reqs:
				group = append(group, r)
			default:
				break more
			}
		}
		ob.commit(group)
	}
}

// commit runs one transaction for a group of requests, with the releases
// ReleaseLater deferred.
func (ob *Outbox) commit(group []*request) {
	ob.mu.Lock()
	lastSeq := ob.seqs
	later := ob.later
	ob.later = [MaxConsumers][]Key{}
	ob.mu.Unlock()
	for c := range later {
		if len(later[c]) > 0 {
			group = append(group, &request{release: later[c], by: c})
		}
	}
	if idle(group) {
		return
	}
	if nothingToWrite(group) {
		// Only waiters (Release with nothing deferred): answered in queue
		// order, after every commit before them, without an fsync.
		for _, r := range group {
			if r.then != nil {
				r.then(nil, nil)
			}
			if r.done != nil {
				close(r.done)
			}
		}
		return
	}
	newSeqs := map[string]uint64{}
	var (
		recDelta  [2]int
		byteDelta [2]int64
		drop      Drop
		appended  bool
		arena     = ob.arena[:0]
		committed = ob.now()
		now       = committed.UnixNano()
		firstID   [2]uint64 // by lane, the first record appended; 0 for none
		liveBytes [2]int64
		seqsByReq = make([][]uint64, len(group))
		// forget are the records this commit deletes whose release marks
		// (Options.Consumers 2) go with them once it is durable.
		forget []Key
	)
	ob.mu.Lock()
	liveBytes = ob.bytes
	ob.mu.Unlock()
	// Every commit is synced, releases too. A release-only commit without
	// its fsync (NoSync, until 2026-12-01) looked like it could only cost
	// duplicates, but bbolt hands the pages that commit freed — pages of
	// the last durable tree — to the next transaction, which overwrites
	// them before its own fsync: a power cut then leaves a meta page on
	// disk pointing at overwritten or never-written pages, a file bbolt
	// cannot open, and a gateway that does not start. Releases ride on the
	// next append's commit (ReleaseLater) so that few commits only release.
	err := ob.db.Update(func(tx *bolt.Tx) error {
		seqB := tx.Bucket(bucketSeq)
		buckets := [2]*bolt.Bucket{tx.Bucket(bucketAlarms), tx.Bucket(bucketReadings)}
		for ri, r := range group {
			for _, k := range r.release {
				if k.Lane > Readings {
					continue
				}
				b := buckets[k.Lane]
				kb := keyBytes(k.ID)
				if v := b.Get(kb); v != nil {
					if ob.consumers > 1 {
						if !r.force && !ob.lastRelease(k, r.by) {
							continue
						}
						forget = append(forget, k)
					}
					n := int64(len(kb) + len(v))
					if err := b.Delete(kb); err != nil {
						return fmt.Errorf("delete %s/%d: %w", k.Lane, k.ID, err)
					}
					recDelta[k.Lane]--
					byteDelta[k.Lane] -= n
				}
			}
			if len(r.items) > 0 {
				seqsByReq[ri] = make([]uint64, len(r.items))
			}
			for i, it := range r.items {
				sk := streamKey(it.Kind, it.Stream)
				seq, ok := newSeqs[sk]
				if !ok {
					seq = lastSeq[sk]
				}
				seq += it.Gap
				if it.Encode == nil {
					// Only seqs to leave unused (see Item.Gap).
					newSeqs[sk] = seq
					seqsByReq[ri][i] = seq
					continue
				}
				seq++
				newSeqs[sk] = seq
				seqsByReq[ri][i] = seq
				lane := it.Kind.Lane()
				b := buckets[lane]
				id, err := b.NextSequence()
				if err != nil {
					return fmt.Errorf("next key: %w", err)
				}
				if firstID[lane] == 0 {
					firstID[lane] = id
				}
				// bbolt keeps a reference to the value until commit, so
				// records are laid end to end in one buffer that is
				// reused by the next commit. When it grows, the records
				// before keep the old array, which lives until commit.
				start := len(arena)
				arena = appendHeader(arena, it.Kind, seq, now, it.Stream)
				arena = it.Encode(arena, seq)
				arena = appendSum(arena, start)
				buf := arena[start:len(arena):len(arena)]
				kb := keyBytes(id)
				if err := b.Put(kb, buf); err != nil {
					return fmt.Errorf("put %s/%d: %w", lane, id, err)
				}
				recDelta[lane]++
				byteDelta[lane] += int64(len(kb) + len(buf))
				appended = true
			}
		}
		for sk, seq := range newSeqs {
			if err := seqB.Put([]byte(sk), keyBytes(seq)); err != nil {
				return fmt.Errorf("put seq %q: %w", sk[1:], err)
			}
		}
		// Bound the store: oldest readings first, never alarms.
		if ob.maxBytes > 0 {
			total := liveBytes[0] + liveBytes[1] + byteDelta[0] + byteDelta[1]
			if total > ob.maxBytes {
				c := buckets[Readings].Cursor()
				var dels [][]byte
				for k, v := c.First(); k != nil && total > ob.maxBytes; k, v = c.Next() {
					n := int64(len(k) + len(v))
					total -= n
					drop.Records++
					drop.Bytes += n
					dels = append(dels, append([]byte(nil), k...))
					if ob.consumers > 1 && len(k) == 8 {
						forget = append(forget, Key{Lane: Readings, ID: binary.BigEndian.Uint64(k)})
					}
				}
				for _, k := range dels {
					if err := buckets[Readings].Delete(k); err != nil {
						return fmt.Errorf("drop oldest reading: %w", err)
					}
				}
				recDelta[Readings] -= drop.Records
				byteDelta[Readings] -= drop.Bytes
				if drop.Records > 0 {
					ob.mu.Lock()
					drop.Total = ob.dropped + uint64(drop.Records)
					ob.mu.Unlock()
					if err := tx.Bucket(bucketMeta).Put(metaDropped, keyBytes(drop.Total)); err != nil {
						return fmt.Errorf("count drops: %w", err)
					}
				}
			}
		}
		return nil
	})
	// bbolt copied the records into its pages (or dropped them): their
	// buffer serves the next commit (see baseArena).
	ob.keepArena(arena, time.Now())
	if err != nil {
		err = fmt.Errorf("commit: %w", err)
		// Rolled back: nothing was dropped, and nothing is reported.
		drop = Drop{}
		if len(later[0])+len(later[1]) > 0 {
			// Not deleted: the next commit tries again, at the latest
			// laterMaxAge from now. (Release marks this commit added
			// stay: they are true, and a release is idempotent.)
			ob.mu.Lock()
			for c := range later {
				ob.later[c] = append(later[c], ob.later[c]...)
			}
			ob.mu.Unlock()
			select {
			case ob.laterQueued <- struct{}{}:
			default:
			}
		}
	} else {
		if len(forget) > 0 {
			ob.forgetMarks(forget)
		}
		ob.mu.Lock()
		// In place: every alarm's retained topic is a stream, so copying
		// the map made each commit O(alarms ever published), the largest
		// cost of a commit in an alarm flood. This goroutine is the only
		// writer and writes under mu; its own unlocked reads (lastSeq)
		// cannot race with readers, who take mu.
		for k, v := range newSeqs {
			ob.seqs[k] = v
		}
		for l := range recDelta {
			ob.records[l] += recDelta[l]
			ob.bytes[l] += byteDelta[l]
		}
		ob.commits++
		if drop.Records > 0 {
			ob.dropped = drop.Total
		}
		for l, id := range firstID {
			if ob.records[l] == 0 {
				ob.ages[l].reset()
			}
			if id != 0 {
				ob.ages[l].add(id, committed, false)
			}
		}
		ob.mu.Unlock()
	}
	// Before answering: whoever appended sees the drop already reported.
	ob.drops.note(ob.log, time.Now(), drop)
	if drop.Records > 0 && ob.onDrop != nil {
		ob.onDrop(drop)
	}
	// The consumers are signalled before the appenders are answered: an
	// Append that has returned has its records signalled already.
	if err == nil && appended {
		ob.signal()
	}
	for i, r := range group {
		if err != nil {
			r.err = err
		} else {
			r.seqs = seqsByReq[i]
		}
		if r.then != nil {
			r.then(r.seqs, r.err)
		}
		if r.done != nil {
			close(r.done)
		}
	}
}

// OldestAge is how long the oldest record waiting in lane l has waited,
// on the monotonic clock where it can tell (ageMarks.laneAge), or 0 when
// the lane is empty.
func (ob *Outbox) OldestAge(l Lane) (time.Duration, error) {
	recs, err := ob.Drain(l, 0, 1)
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	now := ob.now()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.ages[l].laneAge(now, recs[0].Key.ID, recs[0].At), nil
}

// nothingToWrite reports whether a group has no item and no release.
func nothingToWrite(group []*request) bool {
	for _, r := range group {
		if len(r.items) > 0 || len(r.release) > 0 {
			return false
		}
	}
	return true
}

// idle reports whether a group has nothing to commit and nobody waiting.
func idle(group []*request) bool {
	for _, r := range group {
		if len(r.items) > 0 || len(r.release) > 0 || r.done != nil || r.then != nil {
			return false
		}
	}
	return true
}

// lastRelease reports whether consumer by's release of k is the last one
// (another consumer released it already): the record goes. Otherwise it
// marks k released by by. The commit loop's, with two consumers.
//
// The mark is set in either case: if the transaction that deletes the
// record rolls back, the record stays and so does every consumer's mark,
// and the next release of it deletes it. The marks go with the record
// once its deletion is committed (forgetMarks).
func (ob *Outbox) lastRelease(k Key, by int) bool {
	ob.halfMu.Lock()
	defer ob.halfMu.Unlock()
	ob.released[by][k] = struct{}{}
	ob.marksPeak[by] = max(ob.marksPeak[by], len(ob.released[by]))
	for c := range ob.consumers {
		if _, ok := ob.released[c][k]; !ok {
			return false
		}
	}
	return true
}

// forgetMarks drops the release marks of deleted records. A map that
// empties after holding many marks (a long outage of one uplink) is made
// anew: Go's maps do not shrink, and two million marks kept about 100 MB.
func (ob *Outbox) forgetMarks(keys []Key) {
	ob.halfMu.Lock()
	defer ob.halfMu.Unlock()
	for _, k := range keys {
		for c := range ob.consumers {
			delete(ob.released[c], k)
		}
	}
	for c := range ob.consumers {
		if len(ob.released[c]) == 0 && ob.marksPeak[c] > marksKept {
			ob.released[c], ob.marksPeak[c] = map[Key]struct{}{}, 0
		}
	}
}

// marksKept is how many release marks a consumer's emptied map may have
// held and still be kept.
const marksKept = 4096

// Drain returns up to max records of lane with a key above after, in commit
// order (so in sequence order per stream). Corrupt records are skipped,
// counted and deleted.
func (ob *Outbox) Drain(lane Lane, after uint64, max int) ([]Record, error) {
	return ob.DrainInto(nil, lane, after, max, nil)
}

// DrainFor is DrainInto for consumer c (see Options.Consumers): it skips
// the records c released that wait for another consumer, and returns as
// next the last key it read, records skipped included, for c's next call
// (so that a consumer far ahead of the other does not read its own
// released records again on every call).
func (ob *Outbox) DrainFor(c int, dst []Record, lane Lane, after uint64, max int, alloc func(n int) []byte) (recs []Record, next uint64, err error) {
	if c < 0 || c >= ob.consumers {
		return nil, after, fmt.Errorf("drain: no consumer %d", c)
	}
	return ob.drain(c, dst, lane, after, max, alloc)
}

// DrainInto is Drain for a consumer that recycles its memory: the records
// are appended to dst[:0], and each payload is copied into alloc(n), which
// returns a slice of length n (nil alloc: a new one). The publisher reuses
// the payloads of acknowledged records this way: a copy of every record
// read back was the largest part of the gateway's garbage at a steady load
// (docs/performance-history.md, item 57).
//
// Drain and DrainInto see every stored record, whoever released it (the
// outbox's own OldestAge, tests, a sole consumer); a consumer of an outbox
// with two reads with DrainFor.
func (ob *Outbox) DrainInto(dst []Record, lane Lane, after uint64, max int, alloc func(n int) []byte) ([]Record, error) {
	recs, _, err := ob.drain(-1, dst, lane, after, max, alloc)
	return recs, err
}

func (ob *Outbox) drain(by int, dst []Record, lane Lane, after uint64, max int, alloc func(n int) []byte) ([]Record, uint64, error) {
	if lane > Readings {
		return nil, after, fmt.Errorf("drain: unknown lane %d", lane)
	}
	var (
		out     = dst[:0]
		corrupt []Key
		next    = after
		skip    = by >= 0 && ob.consumers > 1 // by's released records, waiting for another consumer
	)
	name := bucketAlarms
	if lane == Readings {
		name = bucketReadings
	}
	err := ob.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(name).Cursor()
		read := 0
		defer func() {
			if ob.drained.Add(int64(read)) >= trimEvery {
				ob.drained.Store(0)
				trimMapping(ob.db, tx)
			}
		}()
		for k, v := c.Seek(keyBytes(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			read += len(k) + len(v)
			id := binary.BigEndian.Uint64(k)
			next = id
			if skip {
				// Locked per look-up, not across bbolt's calls.
				ob.halfMu.Lock()
				_, mine := ob.released[by][Key{Lane: lane, ID: id}]
				ob.halfMu.Unlock()
				if mine {
					continue
				}
			}
			r, err := decodeRecord(v, alloc)
			if err != nil {
				corrupt = append(corrupt, Key{Lane: lane, ID: id})
				continue
			}
			r.Key = Key{Lane: lane, ID: id}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, bolt.ErrDatabaseNotOpen) {
			return nil, after, ErrClosed
		}
		return nil, after, fmt.Errorf("drain %s: %w", lane, err)
	}
	if len(corrupt) > 0 {
		ob.mu.Lock()
		ob.corrupt += uint64(len(corrupt))
		ob.mu.Unlock()
		ob.log.Error().Int("count", len(corrupt)).Str("lane", lane.String()).Msg("corrupt outbox records skipped")
		// Deleted whoever else reads them: no consumer can use them.
		if err := ob.release(context.Background(), &request{release: corrupt, force: true, done: make(chan struct{})}); err != nil {
			return out, next, fmt.Errorf("drain %s: drop corrupt records: %w", lane, err)
		}
	}
	return out, next, nil
}

// trimEvery is how many bytes Drain reads between two trimMapping calls.
const trimEvery = 16 << 20

// trimMapping takes the pages of the outbox file out of the process's
// resident set; they stay in the page cache, and the next read faults
// them back in from there. bbolt reads the file through a read-only shared
// memory mapping, so draining a backlog of hundreds of megabytes left all
// of it resident in `canary run` (537 MB at 400 000 readings/s offered,
// docs/performance-history.md, item 27): memory that grew with the backlog up to max_bytes,
// though the kernel could reclaim it. The mapping only changes under
// bbolt's remap, which waits for open transactions, so tx keeps it stable
// here. MADV_DONTNEED on a shared file mapping loses nothing: the file
// (and the page cache) holds the data. A failure only leaves the pages
// resident.
func trimMapping(db *bolt.DB, tx *bolt.Tx) {
	if size := tx.Size(); size > 0 {
		// A raw system call on bbolt's address: no unsafe.Pointer made
		// from an integer.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, db.Info().Data, uintptr(size), unix.MADV_DONTNEED)
	}
}
