package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/internal/jsonenc"
)

// Options configure an Ingest.
type Options struct {
	// MQTT is the broker connection, defaults applied; ClientID is required
	// and must differ between replicas.
	MQTT configs.MQTT
	// ShareGroup is the shared subscription group (replicas split the load).
	ShareGroup string
	// Sites limits the subscription; empty subscribes to every site.
	Sites []string
	// Writer stores the points.
	Writer *Writer
	// BatchPoints flushes a batch at this many points (default 5000);
	// BatchWait flushes a partial batch this long after its first message
	// (default configs.IngestBatchWait).
	BatchPoints int
	BatchWait   time.Duration
	// Writes bounds the write requests in flight (default 2): the next
	// batches are decoded and written while one is still with InfluxDB.
	Writes int
	// NoReceipts turns delivery receipts off.
	NoReceipts bool
	Log        zerolog.Logger
}

// Stats are counters since start.
type Stats struct {
	Messages    uint64 // messages acknowledged
	Points      uint64 // points written
	Batches     uint64 // successful writes
	DeadLetters uint64 // messages sent to the dead-letter topic
	Receipts    uint64 // receipts published
}

// Ingest consumes MQTT and writes InfluxDB.
type Ingest struct {
	o   Options
	log zerolog.Logger

	messages, points, batches, deadLetters, receipts atomic.Uint64
	subscribed                                       atomic.Bool
}

// Subscribed reports whether the current connection holds its subscriptions
// (for readiness checks).
func (in *Ingest) Subscribed() bool { return in.subscribed.Load() }

// New checks the options; it does not dial.
func New(o Options) (*Ingest, error) {
	o.MQTT.SetDefaults()
	if err := o.MQTT.Validate(); err != nil {
		return nil, fmt.Errorf("new ingest: mqtt config: %w", err)
	}
	if o.MQTT.ClientID == "" {
		return nil, errors.New("new ingest: mqtt client_id required (fixed, one per replica)")
	}
	if o.Writer == nil {
		return nil, errors.New("new ingest: no influxdb writer")
	}
	if o.ShareGroup == "" {
		o.ShareGroup = "canary-ingest"
	}
	if o.BatchPoints <= 0 {
		o.BatchPoints = 5000
	}
	if o.BatchWait <= 0 {
		o.BatchWait = configs.IngestBatchWait
	}
	if o.Writes <= 0 {
		o.Writes = 2
	}
	if _, err := mqtt.ClientOptions(o.MQTT, o.MQTT.ClientID); err != nil {
		return nil, fmt.Errorf("new ingest: %w", err)
	}
	return &Ingest{
		o:   o,
		log: o.Log.With().Str("component", "ingest").Str("client_id", o.MQTT.ClientID).Logger(),
	}, nil
}

// Stats returns the counters.
func (in *Ingest) Stats() Stats {
	return Stats{Messages: in.messages.Load(), Points: in.points.Load(), Batches: in.batches.Load(),
		DeadLetters: in.deadLetters.Load(), Receipts: in.receipts.Load()}
}

// Filters are the shared-subscription topic filters.
func (in *Ingest) Filters() map[string]byte {
	sites := in.o.Sites
	if len(sites) == 0 {
		sites = []string{"+"}
	}
	f := map[string]byte{}
	for _, s := range sites {
		base := "$share/" + in.o.ShareGroup + "/" + in.o.MQTT.TopicPrefix + "/v1/" + s + "/"
		f[base+"readings/+"] = 1
		f[base+"alarms/+"] = 1
		f[base+"events"] = 1
	}
	return f
}

// Run consumes until ctx ends. Messages not yet written are left
// unacknowledged; the broker delivers them again (to this replica's
// persistent session or, once it is gone, per the broker's shared
// subscription rules).
func (in *Ingest) Run(ctx context.Context) error {
	opts, err := mqtt.ClientOptions(in.o.MQTT, in.o.MQTT.ClientID)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	// The connection is mqtt.ClientOptions' buffered one, sending as soon
	// as the writer yields: with one scheduler thread the acker and paho's
	// writer hand each PUBACK over without the flusher running in between,
	// so a batch's acknowledgements still leave in one write. (It used to
	// gather for 2 ms: two more timer wake-ups a second for nothing;
	// docs/performance-history.md item 28.)
	q := newQueue()
	filters := in.Filters()
	// OrderMatters(true) runs the handler on paho's router goroutine
	// instead of one new goroutine per message; that is safe because the
	// handler never blocks (queue.push only appends). The queue is bounded
	// by the broker: it sends at most its in-flight window of messages
	// this client has not acknowledged.
	opts.SetStore(newInboundStore()) // see inboundStore: paho's copy of every received message is never used
	// The first connection is this function's (mqtt.ConnectLogged), so that
	// what keeps it from the broker (a wrong password, an untrusted
	// certificate, no route) is logged: paho's own retries report it only
	// on its debug logger, and an ingest that never connected said
	// nothing at all. Once connected, paho reconnects.
	opts.SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(false).
		SetMaxReconnectInterval(10 * time.Second).
		SetOrderMatters(true).SetAutoAckDisabled(true).SetKeepAlive(15 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { q.push(m) }).
		SetOnConnectHandler(func(c paho.Client) {
			// Subscribe on every connect: Mosquitto before 2.0.12 does not
			// restore a durable client's shared subscriptions after a broker
			// restart (what was published before this point is lost to the
			// group; receipt mode recovers it from the gateway's outbox).
			// A refused subscription (SUBACK 0x80, the broker's ACL) is
			// tried again while this connection lasts: paho does not, and
			// the ingest must not look connected while it consumes nothing.
			for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
				err := waitToken(c.SubscribeMultiple(filters, nil), 10*time.Second)
				if err == nil {
					break
				}
				in.log.Error().Err(err).Dur("backoff", backoff).Msg("subscribe failed")
				if !c.IsConnectionOpen() {
					return
				}
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return
				}
			}
			in.subscribed.Store(true)
			in.log.Info().Str("broker", in.o.MQTT.URL).Msg("mqtt connected")
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			in.subscribed.Store(false)
			in.log.Warn().Err(err).Msg("mqtt connection lost")
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			in.log.Warn().Str("broker", in.o.MQTT.URL).Msg("mqtt reconnecting")
		})
	c := paho.NewClient(opts)
	connecting := make(chan struct{})
	go func() {
		defer close(connecting)
		mqtt.ConnectLogged(ctx, c, in.log, in.o.MQTT.URL)
	}()
	defer func() {
		<-connecting // returns once ctx ends, if not connected before
		c.Disconnect(250)
	}()
	return in.pipeline(ctx, c, q)
}

func waitToken(t paho.Token, d time.Duration) error {
	if !t.WaitTimeout(d) {
		return errors.New("timed out")
	}
	return mqtt.SubscribeErr(t)
}

// queue hands messages from paho's handler to the batcher without
// blocking paho. It wakes the batcher when the first message of a batch
// arrives (to start the batch's clock) and every wakeEvery messages after
// (to decode as they come under load), not for every message.
type queue struct {
	mu   sync.Mutex
	msgs []paho.Message
	wake chan struct{}

	// cutAt is when (time since epoch, monotonic) the filling batch may be
	// cut early (see earlyCut); the first message after it wakes the
	// batcher. noCut: no batch is waiting for it.
	epoch time.Time
	cutAt atomic.Int64
}

const (
	wakeEvery = 64
	noCut     = math.MaxInt64
)

func newQueue() *queue {
	q := &queue{wake: make(chan struct{}, 1), epoch: time.Now()}
	q.cutAt.Store(noCut)
	return q
}

func (q *queue) push(m paho.Message) {
	q.mu.Lock()
	q.msgs = append(q.msgs, m)
	n := len(q.msgs)
	q.mu.Unlock()
	if n == 1 || n%wakeEvery == 0 || q.cutDue() {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// armCut sets when the filling batch may be cut early (noCut: never).
func (q *queue) armCut(at time.Duration) { q.cutAt.Store(int64(at)) }

// cutDue reports, once, that the early cut's time has come.
func (q *queue) cutDue() bool {
	at := q.cutAt.Load()
	return at != noCut && int64(time.Since(q.epoch)) >= at && q.cutAt.CompareAndSwap(at, noCut)
}

// take returns the queued messages and keeps spare (emptied) for the next
// ones, so the two slices are reused in turn.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

func (q *queue) take(spare []paho.Message) []paho.Message {
	q.mu.Lock()
	got := q.msgs
	q.msgs = spare[:0]
	q.mu.Unlock()
	return got
}

type deadLetter struct {
	site, topic string
	payload     []byte
	reason      string
}

// json is the dead letter's payload (docs/mqtt.md), not HTML-escaped: the
// error and the original payload's text come out as they were, < > &
// included.
func (d deadLetter) json(ingest string) ([]byte, error) {
	return jsonenc.Marshal(struct {
		Topic   string `json:"topic"`
		Error   string `json:"error"`
		Payload string `json:"payload"`
		Ingest  string `json:"ingest"`
	}{d.topic, d.reason, string(d.payload), ingest})
}

type batch struct {
	msgs   []paho.Message
	spans  []span // lines of each message in body
	body   []byte
	points int
	dead   []deadLetter
	seqs   map[string]*siteSeqs
	done   chan error // the write's outcome
}

type span struct{ from, to int }

type siteSeqs struct {
	readings map[string][]uint64
	events   []uint64
}

func newBatch() *batch { return &batch{seqs: map[string]*siteSeqs{}, done: make(chan error, 1)} }

func (b *batch) reset() {
	clear(b.msgs) // let the payloads go
	clear(b.dead)
	b.msgs, b.spans, b.body, b.points, b.dead = b.msgs[:0], b.spans[:0], b.body[:0], 0, b.dead[:0]
	if cap(b.body) > maxKeptBody {
		b.body = nil // a rare huge batch does not stay resident
	}
	b.seqs = map[string]*siteSeqs{}
}

// maxKeptBody bounds the line-protocol buffer a batch keeps between uses.
const maxKeptBody = 1 << 20

func (b *batch) site(s string) *siteSeqs {
	ss := b.seqs[s]
	if ss == nil {
		ss = &siteSeqs{readings: map[string][]uint64{}}
		b.seqs[s] = ss
	}
	return ss
}

// add decodes one message into the batch.
func (in *Ingest) add(b *batch, dec *mqtt.ReadingsDecoder, r *mqtt.Readings, m paho.Message) {
	b.msgs = append(b.msgs, m)
	from := len(b.body)
	site, kind, name := mqtt.ParseTopic(in.o.MQTT.TopicPrefix, m.Topic())
	var err error
	switch kind {
	case mqtt.TopicReadings:
		err = dec.Decode(m.Payload(), r)
		if err == nil && (r.Site != site || r.Device != name) {
			err = fmt.Errorf("payload names %s/%s but topic %s/%s", r.Site, r.Device, site, name)
		}
		if err == nil {
			b.body = appendReadingLines(b.body, r, dec.ValueTexts())
			b.points += len(r.Readings)
			ss := b.site(r.Site)
			ss.readings[r.Device] = append(ss.readings[r.Device], r.Seq)
		}
	case mqtt.TopicAlarm:
		if len(m.Payload()) == 0 {
			break // a cleared retained alarm: nothing to store
		}
		var a mqtt.AlarmState
		a, err = mqtt.DecodeAlarmState(m.Payload())
		if err == nil {
			b.body = AppendAlarmLine(b.body, site, &a)
			b.points++
		}
	case mqtt.TopicEvents:
		var e mqtt.Event
		e, err = mqtt.DecodeEvent(m.Payload())
		if err == nil {
			b.body = AppendEventLine(b.body, site, &e)
			b.points++
			ss := b.site(site)
			ss.events = append(ss.events, e.Seq)
		}
	default:
		err = fmt.Errorf("unexpected topic %q", m.Topic())
	}
	if err != nil {
		b.body = b.body[:from]
		b.dead = append(b.dead, deadLetter{site: site, topic: m.Topic(), payload: m.Payload(), reason: err.Error()})
		in.noteDone(b, m)
	}
	b.spans = append(b.spans, span{from, len(b.body)})
}

// freeBatches holds the batches not in use and hands out the most recently
// returned first. Each batch keeps its grown buffers (up to maxKeptBody) for
// the next use; handed out in turn, every batch would grow to a full
// batch's size even when one or two are enough (at 1 000 readings/s one
// batch a second, written long before the next is cut): the other two kept
// about 0.5 MB of line protocol resident for nothing. Under load every
// batch is in use, as before.
type freeBatches struct {
	mu    sync.Mutex
	stack []*batch
	ready chan struct{} // one token per batch on the stack
}

func newFreeBatches(n int) *freeBatches {
	f := &freeBatches{ready: make(chan struct{}, n)}
	for range n {
		f.push(newBatch())
	}
	return f
}

// push returns a batch; it never blocks (there are only n batches).
func (f *freeBatches) push(b *batch) {
	f.mu.Lock()
	f.stack = append(f.stack, b)
	f.mu.Unlock()
	f.ready <- struct{}{}
}

// pop takes the most recently returned batch; the caller holds a token
// received from ready.
func (f *freeBatches) pop() *batch {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.stack[len(f.stack)-1]
	f.stack[len(f.stack)-1] = nil
	f.stack = f.stack[:len(f.stack)-1]
	return b
}

// pipeline runs the three stages: the batcher (this goroutine) decodes
// queued messages into line protocol; up to Writes writers store batches
// at once; the acker waits for the batches in the order they were cut and,
// for each, publishes dead letters and receipts and acknowledges its
// messages — so a message is acknowledged only after InfluxDB accepted all
// of it, and acknowledgements go out in the order the messages came.
func (in *Ingest) pipeline(ctx context.Context, c paho.Client, q *queue) error {
	g, ctx := errgroup.WithContext(ctx)
	n := in.o.Writes
	// Writes batches in flight, one filling, one being acknowledged: the
	// channels below never block their senders.
	free := newFreeBatches(n + 2)
	writes := make(chan *batch, n+2)
	order := make(chan *batch, n+2)
	for range n {
		g.Go(func() error {
			for b := range writes {
				b.done <- in.write(ctx, b)
			}
			return nil
		})
	}
	g.Go(func() error { return in.ack(ctx, c, order, free) })
	g.Go(func() error {
		defer close(order)
		defer close(writes)
		return in.batcher(ctx, q, free, writes, order)
	})
	err := g.Wait()
	if ctx.Err() != nil && !errors.Is(err, errAckFailed) {
		return nil
	}
	return err
}

var errAckFailed = errors.New("ingest stopped")

// earlyCut: a batch within BatchWait/earlyCut of its due time is cut when
// the next messages arrive instead of when its timer fires. A gateway sends
// a site's polls once a second, so at batch_wait 1s each batch fell due
// within milliseconds of the next second's messages and the ingest woke
// twice (docs/performance-history.md item 28). A steady stream cuts batches at
// most 1/32 sooner (about 3 % more writes); nothing waits longer.
const earlyCut = 32

func (in *Ingest) batcher(ctx context.Context, q *queue, free *freeBatches, writes, order chan *batch) error {
	// Values go into line protocol as the payload wrote them
	// (appendReadingLines): never parsed when they need not be.
	dec := mqtt.ReadingsDecoder{SkipValues: true}
	var r mqtt.Readings
	var taken []paho.Message // taken from the queue; next is the first not yet added
	next := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var b *batch
	started, due := false, false
	early := in.o.BatchWait - in.o.BatchWait/earlyCut
	start := func() {
		started = true
		timer.Reset(in.o.BatchWait)
		q.armCut(time.Since(q.epoch) + early)
	}
	for {
		if b == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-free.ready:
				b = free.pop()
			}
		}
		// Take queued messages when the batch is due or enough are there;
		// at a trickle they wait in the queue until the batch's time is up.
		if next == len(taken) && (due || q.len() >= wakeEvery) {
			clear(taken)
			taken, next = q.take(taken), 0
		}
		for ; next < len(taken) && b.points < in.o.BatchPoints; next++ {
			in.add(b, &dec, &r, taken[next])
			taken[next] = nil
		}
		if len(b.msgs) > 0 && (due || b.points >= in.o.BatchPoints) {
			order <- b
			writes <- b
			b, due, started = nil, false, false
			timer.Stop()
			q.armCut(noCut)
			if next < len(taken) || q.len() > 0 {
				start()
			}
			continue
		}
		if due {
			due, started = false, false // nothing was queued after all
			q.armCut(noCut)
		}
		if next < len(taken) {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
			if !started {
				start()
			} else if q.cutAt.Load() == noCut || q.cutDue() {
				// Messages arrive while the batch is nearly due (a
				// gateway's next second of polls): cut it now, in this
				// wake-up, rather than wake again for the timer.
				due = true
			}
		case <-timer.C:
			due = true
		}
	}
}

// write stores a batch; a batch InfluxDB refuses is written again message
// by message, and what InfluxDB refuses then is dead-lettered.
func (in *Ingest) write(ctx context.Context, b *batch) error {
	err := in.o.Writer.Write(ctx, b.body)
	var rej *RejectedError
	if !errors.As(err, &rej) {
		return err
	}
	// Find the messages InfluxDB refuses: write each on its own.
	in.log.Warn().Err(err).Int("messages", len(b.msgs)).Msg("batch rejected, isolating the bad messages")
	b.seqs = map[string]*siteSeqs{}
	for i, m := range b.msgs {
		sp := b.spans[i]
		if sp.from == sp.to {
			// Nothing to write (dead-lettered at decode, a cleared
			// retained alarm, no readings): still done, and its receipt
			// must not be lost with the reset above, or a gateway in
			// receipt mode sends it again and again.
			in.noteDone(b, m)
			continue
		}
		werr := in.o.Writer.Write(ctx, b.body[sp.from:sp.to])
		if errors.As(werr, &rej) {
			site, _, _ := mqtt.ParseTopic(in.o.MQTT.TopicPrefix, m.Topic())
			b.dead = append(b.dead, deadLetter{site: site, topic: m.Topic(), payload: m.Payload(), reason: werr.Error()})
		} else if werr != nil {
			return werr
		}
		in.noteDone(b, m)
	}
	return nil
}

// ack finishes the batches in the order they were cut: dead letters,
// receipts, then the MQTT acknowledgements.
func (in *Ingest) ack(ctx context.Context, c paho.Client, order <-chan *batch, free *freeBatches) error {
	for b := range order {
		if err := <-b.done; err != nil {
			if ctx.Err() != nil {
				return nil // stopping: the broker delivers the rest again
			}
			return fmt.Errorf("%w: %w", errAckFailed, err)
		}
		in.finish(c, b)
		b.reset()
		free.push(b)
	}
	return nil
}

func (in *Ingest) finish(c paho.Client, b *batch) {
	for _, d := range b.dead {
		in.publishDeadLetter(c, d)
	}
	if !in.o.NoReceipts {
		for site, ss := range b.seqs {
			r := mqtt.Receipt{Ingest: in.o.MQTT.ClientID, Events: mqtt.Ranges(ss.events)}
			if len(ss.readings) > 0 {
				r.Readings = map[string][]mqtt.SeqRange{}
				for dev, seqs := range ss.readings {
					r.Readings[dev] = mqtt.Ranges(seqs)
				}
			}
			// Fire and forget: a lost receipt only makes the gateway send
			// the records again, which overwrite themselves.
			c.Publish(mqtt.NewTopics(in.o.MQTT.TopicPrefix, site).Receipts(), 1, false, mqtt.MarshalReceipt(r))
			in.receipts.Add(1)
		}
	}
	for _, m := range b.msgs {
		m.Ack()
	}
	in.messages.Add(uint64(len(b.msgs)))
	in.points.Add(uint64(b.points))
	in.batches.Add(1)
	in.log.Debug().Int("count", len(b.msgs)).Int("points", b.points).Msg("batch stored")
}

// noteDone records the sequence number of a message this ingest is done
// with (stored, or dead-lettered), for the receipt. It reads the payload
// leniently, so a message too broken to store is still named and the
// gateway stops sending it again.
func (in *Ingest) noteDone(b *batch, m paho.Message) {
	site, kind, name := mqtt.ParseTopic(in.o.MQTT.TopicPrefix, m.Topic())
	if site == "" || (kind != mqtt.TopicReadings && kind != mqtt.TopicEvents) {
		return
	}
	var v struct {
		Seq json.Number `json:"seq"`
	}
	if json.Unmarshal(m.Payload(), &v) != nil {
		return
	}
	seq, err := strconv.ParseUint(v.Seq.String(), 10, 64)
	if err != nil || seq == 0 {
		return
	}
	ss := b.site(site)
	if kind == mqtt.TopicReadings {
		ss.readings[name] = append(ss.readings[name], seq)
	} else {
		ss.events = append(ss.events, seq)
	}
}

func (in *Ingest) publishDeadLetter(c paho.Client, d deadLetter) {
	in.deadLetters.Add(1)
	in.log.Error().Str("topic", d.topic).Str("reason", d.reason).Msg("message dead-lettered")
	if d.site == "" {
		return // not a site topic: logged and counted only
	}
	body, err := d.json(in.o.MQTT.ClientID)
	if err != nil {
		return
	}
	if err := waitToken(c.Publish(mqtt.NewTopics(in.o.MQTT.TopicPrefix, d.site).DeadLetter(), 1, false, body), 10*time.Second); err != nil {
		in.log.Error().Err(err).Str("topic", d.topic).Msg("dead letter not published")
	}
}
