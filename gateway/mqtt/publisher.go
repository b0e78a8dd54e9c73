package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/jsonenc"
)

// DeviceStatus is one device's entry in the retained status message.
type DeviceStatus struct {
	Device string `json:"device"`
	// Comm is the device's communication state as the gateway sees it
	// (for example "ok" or "lost").
	Comm string `json:"comm"`
	// LastSeq is the last reading sequence number committed for the device;
	// the publisher fills it from the outbox when it is 0.
	LastSeq uint64 `json:"last_seq"`
}

// FaultHoldStatus is the fault hold in force, in the retained status
// message: an overloaded gateway holding its sensors' comm and bad alarms
// active (docs/alarms.md).
type FaultHoldStatus struct {
	// Since is when the hold began, as every ts (AppendTime).
	Since  string `json:"since"`
	Reason string `json:"reason"`
}

// CommandHandler answers one operator command received on
// <prefix>/v1/<site>/cmd; its return value is published on cmd/result
// (held while the link is down, see answer). It runs on one goroutine
// owned by the publisher, one command at a time.
type CommandHandler func(ctx context.Context, payload []byte) []byte

// Why a command was not run, as answered on cmd/result.
const (
	rejectRetained = "retained commands are not executed: publish without the retain flag (and clear the retained message)"
	rejectFull     = "command queue full: not executed, try again"
	rejectStopping = "gateway shutting down: command not executed"
)

// cmdQueue is how many received commands wait for the handler.
const cmdQueue = 64

// maxAnswers bounds the answers waiting to be published: results held
// while the link is down and rejections made on paho's router.
const maxAnswers = 256

// pendingAnswer is a cmd/result payload not yet published.
type pendingAnswer struct {
	id   string // for logs
	b    []byte
	held bool // not published when first due: logged when it is
}

// Options configure a Publisher.
type Options struct {
	// Config is the mqtt section, defaults applied.
	Config configs.MQTT
	Site   string
	Outbox *outbox.Outbox
	// Release is configs.ReleasePuback or configs.ReleaseReceipt.
	Release string
	Log     zerolog.Logger
	// Status returns the per-device communication state for the retained
	// status message; nil leaves the device list out.
	Status func() []DeviceStatus
	// FaultHold returns the fault hold in force for the retained status
	// message, nil when none (call StatusChanged when it changes); nil
	// leaves it out.
	FaultHold func() *FaultHoldStatus
	// Commands handles <prefix>/v1/<site>/cmd; nil does not subscribe.
	Commands CommandHandler

	// MaxInflight bounds unreleased published readings (default 256);
	// the alarm lane has its own window (alarmWindow) so a reading
	// backlog never holds an alarm back.
	MaxInflight int
	// MaxUnreceipted bounds, in receipt mode, the readings published and
	// acknowledged by the broker but not yet receipted (default 4096): while
	// canary ingest is down readings wait in the outbox beyond that. Alarm
	// records have no such bound: alarms reach the broker (and the control
	// rooms subscribed to it) whether or not ingest is running.
	MaxUnreceipted int
	// ReceiptTimeout: in receipt mode a record acknowledged by the broker
	// but not receipted by then is published again (default 30s).
	ReceiptTimeout time.Duration
	// StatusInterval republishes the status (default 1m).
	StatusInterval time.Duration
	// ConnectTimeout bounds connecting and waiting for a subscription or a
	// status publish (default 10s).
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive (default 15s): a dead link is noticed
	// within about 1.5 times this.
	KeepAlive time.Duration
	// BackoffMin and BackoffMax bound the jittered reconnect backoff
	// (default 200ms and 30s).
	BackoffMin, BackoffMax time.Duration
	// ShutdownGrace is how long Run waits for outstanding PUBACKs after ctx
	// ends (default 2s; 0 uses the default, negative does not wait).
	ShutdownGrace time.Duration
}

// alarmWindow bounds the alarm records waiting for a PUBACK. As wide as
// the readings' default: alarms go first, and with 64 a backlog of them
// (a gateway's comm alarms after a stall) drained at a quarter of the
// readings' pace, about 250 records a second at 40 % of a core
// (docs/performance-history.md, item 53).
const alarmWindow = 256

// stableSession is how long a session must last for the reconnect backoff
// to start afresh after it (Run).
const stableSession = 10 * time.Second

// shortSessionBackoff caps the wait after a session shorter than that.
const shortSessionBackoff = 5 * time.Second

// tickEvery paces receipt mode's resends.
const tickEvery = 250 * time.Millisecond

// untilNext is the time from now to the next multiple of d.
func untilNext(now time.Time, d time.Duration) time.Duration {
	return now.Truncate(d).Add(d).Sub(now)
}

// PublisherStats are counters since the publisher was made.
type PublisherStats struct {
	Published   uint64 // PUBLISH packets sent (including republished)
	Released    uint64 // records released from the outbox
	Republished uint64 // records sent again after a receipt timeout
	Sessions    uint64 // successful connections
	Receipts    uint64 // receipts applied
	Attempts    uint64 // connection attempts
	Refused     uint64 // subscriptions the broker refused (SUBACK 0x80)
	Connected   bool
}

// Publisher drains the outbox to the broker. Make it with NewPublisher and
// run it with Run.
type Publisher struct {
	o       Options
	topics  Topics
	receipt bool
	log     zerolog.Logger

	kick chan struct{}
	cmds chan []byte
	// refused counts subscriptions the broker refused (subscribe).
	refused atomic.Uint64

	// Answers go out on their own goroutine (answerLoop) in the order
	// queued: paho's router, which makes some of them, must not publish.
	ansMu   sync.Mutex
	answers []pendingAnswer
	ansKick chan struct{}
	// cmdLoopDone is closed when the command loop has returned.
	cmdLoopDone chan struct{}

	clientMu sync.Mutex
	client   paho.Client

	published, released, republished, sessions, receipts, attempts atomic.Uint64
	connected                                                      atomic.Bool

	// recycle keeps the payloads and flights of acknowledged records
	// (recycle.go); sessions run one after another on Run's goroutine.
	recycle recycler
}

// NewPublisher checks the options; it does not dial.
func NewPublisher(o Options) (*Publisher, error) {
	if o.Outbox == nil {
		return nil, errors.New("new publisher: no outbox")
	}
	if !ValidID(o.Site) {
		return nil, fmt.Errorf("new publisher: site %q is not an id", o.Site)
	}
	o.Config.SetDefaults()
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("new publisher: mqtt config: %w", err)
	}
	switch o.Release {
	case "":
		o.Release = configs.ReleasePuback
	case configs.ReleasePuback, configs.ReleaseReceipt:
	default:
		return nil, fmt.Errorf("new publisher: release %q (want puback or receipt)", o.Release)
	}
	if o.Config.ClientID == "" {
		o.Config.ClientID = "canary-" + o.Site
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 256
	}
	if o.MaxUnreceipted <= 0 {
		o.MaxUnreceipted = 4096
	}
	def(&o.ReceiptTimeout, 30*time.Second)
	def(&o.StatusInterval, time.Minute)
	def(&o.ConnectTimeout, 10*time.Second)
	def(&o.KeepAlive, 15*time.Second)
	def(&o.BackoffMin, 200*time.Millisecond)
	def(&o.BackoffMax, 30*time.Second)
	def(&o.ShutdownGrace, 2*time.Second)
	// Fail on unreadable secrets and certificates now, not at first connect.
	if _, err := ClientOptions(o.Config, o.Config.ClientID); err != nil {
		return nil, fmt.Errorf("new publisher: %w", err)
	}
	return &Publisher{
		o:       o,
		topics:  NewTopics(o.Config.TopicPrefix, o.Site),
		receipt: o.Release == configs.ReleaseReceipt,
		log:     o.Log.With().Str("component", "publisher").Str("site", o.Site).Logger(),
		kick:    make(chan struct{}, 1),
		cmds:    make(chan []byte, cmdQueue),
		ansKick: make(chan struct{}, 1),
		recycle: newRecycler(),
	}, nil
}

// Topics returns the site's topics.
func (p *Publisher) Topics() Topics { return p.topics }

// StatusChanged asks for the status message to be published again soon
// (for example after a device went offline).
func (p *Publisher) StatusChanged() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{Published: p.published.Load(), Released: p.released.Load(), Republished: p.republished.Load(),
		Sessions: p.sessions.Load(), Receipts: p.receipts.Load(), Attempts: p.attempts.Load(), Refused: p.refused.Load(), Connected: p.connected.Load()}
}

// Run connects, publishes and reconnects with jittered backoff until ctx
// ends; then it waits up to ShutdownGrace for outstanding PUBACKs, marks
// the site offline and disconnects. Whatever was not released stays in the
// outbox for the next run.
func (p *Publisher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if p.o.Commands != nil {
		p.cmdLoopDone = make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(p.cmdLoopDone)
			p.commandLoop(ctx)
		}()
		go func() {
			defer wg.Done()
			p.answerLoop(ctx)
		}()
	}
	defer func() {
		wg.Wait()
		p.logUnanswered()
	}()
	bo := Backoff{Min: p.o.BackoffMin, Max: p.o.BackoffMax}
	for {
		start := time.Now()
		connected, err := p.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, outbox.ErrClosed) {
			return fmt.Errorf("publish: %w", err)
		}
		// Only a session that lasted starts the backoff afresh: one the
		// broker ends at once (most often another client connecting with
		// the same client_id, which takes the session over) would
		// otherwise reconnect every 200 ms, two gateways knocking each
		// other off for ever.
		short := connected && time.Since(start) < stableSession
		if connected && !short {
			bo.Reset()
		}
		d := bo.Next()
		if short {
			// At most a few seconds all the same: an uplink that drops
			// every few seconds must not keep alarms from the control
			// rooms for BackoffMax.
			d = min(d, shortSessionBackoff)
		}
		msg := "mqtt session ended"
		if short {
			msg = "mqtt session ended soon after connecting (is another client using this client_id? each gateway needs its own)"
		}
		p.log.Warn().Err(err).Str("broker", p.o.Config.URL).Str("client_id", p.o.Config.ClientID).Dur("backoff", d).Msg(msg)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

type flight struct {
	rec    outbox.Record
	tok    paho.Token
	sentAt time.Time
	resent int  // times published again for want of a receipt
	acked  bool // PUBACK seen, waiting for a receipt
	done   bool // released or abandoned
}

type seqKey struct {
	kind   outbox.Kind
	stream string
	seq    uint64
}

// session is one connection: connect, subscribe, publish until the link
// fails or ctx ends.
type session struct {
	p        *Publisher
	client   paho.Client
	lost     chan struct{}
	lostOnce sync.Once
	lostErr  atomic.Pointer[error]
	receipts chan []byte

	fifo     [2][]*flight // published, waiting for the token, per lane
	inflight [2]int       // unreleased flights per lane
	acked    [2]int       // of those, acknowledged by the broker, waiting for a receipt
	awaiting map[seqKey]*flight
	cursor   [2]uint64
	// drained: the lane's last Drain returned all there was; the lane is
	// read again only after the outbox signals an append (a bbolt read
	// transaction per lane per loop turn was a tenth of the gateway's CPU
	// at low load).
	drained [2]bool
	release []outbox.Key
	recs    []outbox.Record // Drain's, reused
	// lastReceipt: when the last receipt came (resendStale).
	lastReceipt time.Time
}

func (s *session) markLost(err error) {
	s.lostErr.Store(&err)
	s.lostOnce.Do(func() { close(s.lost) })
}

func (s *session) isLost() bool {
	select {
	case <-s.lost:
		return true
	default:
		return false
	}
}

func (p *Publisher) statusPayload(state string) []byte {
	msg := struct {
		State     string           `json:"state"`
		Site      string           `json:"site"`
		TS        string           `json:"ts,omitempty"`
		FaultHold *FaultHoldStatus `json:"fault_hold,omitempty"`
		Devices   []DeviceStatus   `json:"devices,omitempty"`
	}{State: state, Site: p.o.Site}
	if state == "online" {
		msg.TS = string(AppendTime(nil, time.Now()))
		if p.o.FaultHold != nil {
			msg.FaultHold = p.o.FaultHold()
		}
		if p.o.Status != nil {
			msg.Devices = p.o.Status()
			for i := range msg.Devices {
				if msg.Devices[i].LastSeq == 0 {
					msg.Devices[i].LastSeq = p.o.Outbox.LastSeq(outbox.KindReadings, msg.Devices[i].Device)
				}
			}
		}
	}
	b, err := jsonenc.Marshal(msg) // without HTML escaping, as every payload (docs/mqtt.md)
	if err != nil {
		panic(fmt.Sprintf("marshal status: %v", err)) // strings and integers only
	}
	return b
}

func (p *Publisher) session(ctx context.Context) (connected bool, err error) {
	s := &session{p: p, lost: make(chan struct{}), receipts: make(chan []byte, 256), awaiting: map[seqKey]*flight{}}
	opts, err := ClientOptions(p.o.Config, p.o.Config.ClientID)
	if err != nil {
		return false, err
	}
	// A fresh client per session, no paho reconnect and no paho resume: a
	// token can then only complete with nil after a real PUBACK on this
	// connection, and everything unreleased is republished by us.
	// OrderMatters keeps commands in the order they were sent; our handlers
	// only hand the payload to a channel, so they never hold the router up
	// for long.
	opts.SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(true).
		SetKeepAlive(p.o.KeepAlive).SetPingTimeout(p.o.KeepAlive/2+time.Second).
		SetConnectTimeout(p.o.ConnectTimeout).SetWriteTimeout(p.o.ConnectTimeout).
		SetBinaryWill(p.topics.Status(), p.statusPayload("offline"), 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) { s.markLost(err) })
	c := paho.NewClient(opts)
	p.attempts.Add(1)
	if err := wait(c.Connect(), p.o.ConnectTimeout); err != nil {
		c.Disconnect(0)
		return false, fmt.Errorf("connect %s: %w", p.o.Config.URL, err)
	}
	s.client = c
	p.setClient(c)
	p.connected.Store(true)
	p.sessions.Add(1)
	defer func() {
		p.connected.Store(false)
		p.setClient(nil)
	}()
	if p.receipt {
		err := p.subscribe(ctx, s, c, p.topics.Receipts(), func(_ paho.Client, m paho.Message) {
			select {
			case s.receipts <- m.Payload():
			case <-s.lost:
			}
		})
		if err != nil {
			c.Disconnect(0)
			return true, fmt.Errorf("subscribe %s: %w", p.topics.Receipts(), err)
		}
	}
	if p.o.Commands != nil {
		err := p.subscribe(ctx, s, c, p.topics.Cmd(), func(_ paho.Client, m paho.Message) {
			// This runs on paho's router: it only queues, never publishes.
			if m.Retained() {
				// A retained command would run again on every reconnect:
				// an operator action happens once, when it is sent.
				p.reject(m.Payload(), rejectRetained)
				return
			}
			select {
			case p.cmds <- m.Payload():
			default:
				p.reject(m.Payload(), rejectFull)
			}
		})
		if err != nil {
			c.Disconnect(0)
			return true, fmt.Errorf("subscribe %s: %w", p.topics.Cmd(), err)
		}
	}
	if err := wait(c.Publish(p.topics.Status(), 1, true, p.statusPayload("online")), p.o.ConnectTimeout); err != nil {
		c.Disconnect(0)
		return true, fmt.Errorf("publish status: %w", err)
	}
	p.log.Info().Str("broker", p.o.Config.URL).Str("release", p.o.Release).Msg("mqtt connected")
	p.kickAnswers() // those held while the link was down
	err = s.loop(ctx)
	if ctx.Err() != nil {
		s.shutdown()
		return true, nil
	}
	c.Disconnect(0)
	return true, err
}

func (p *Publisher) setClient(c paho.Client) {
	p.clientMu.Lock()
	p.client = c
	p.clientMu.Unlock()
}

// room is how many more records of lane may be published now: the
// records waiting for a PUBACK are bounded by the lane's window; in receipt
// mode the readings waiting for a receipt are bounded too.
func (s *session) room(l outbox.Lane) int {
	window := s.p.o.MaxInflight
	if l == outbox.Alarms {
		window = alarmWindow
	}
	room := window - (s.inflight[l] - s.acked[l])
	if s.p.receipt && l == outbox.Readings {
		room = min(room, s.p.o.MaxUnreceipted-s.inflight[l])
	}
	return room
}

// fill publishes from the outbox while the lanes have room: alarms first.
func (s *session) fill() error {
	for _, lane := range []outbox.Lane{outbox.Alarms, outbox.Readings} {
		for {
			room := s.room(lane)
			if room <= 0 || s.drained[lane] {
				break
			}
			// Consumer 0: a site that also writes InfluxDB itself has
			// the direct writer as consumer 1 (outbox.Options.Consumers).
			recs, next, err := s.p.o.Outbox.DrainFor(0, s.recs, lane, s.cursor[lane], room, s.p.recycle.payload)
			if err != nil {
				return err
			}
			for i := range recs {
				f := s.p.recycle.flight()
				f.rec = recs[i]
				s.publish(f)
				s.cursor[lane] = recs[i].Key.ID
			}
			// Past what it skipped too: its own released records still
			// waiting for the other consumer.
			s.cursor[lane] = max(s.cursor[lane], next)
			clear(recs) // the flights hold the payloads now
			s.recs = recs[:0]
			if len(recs) < room {
				s.drained[lane] = true
				break
			}
		}
	}
	return nil
}

func (s *session) topic(r *outbox.Record) (string, bool) {
	switch r.Kind {
	case outbox.KindReadings:
		return s.p.topics.Readings(r.Stream), false
	case outbox.KindAlarm:
		return s.p.topics.Alarm(r.Stream), true
	default:
		return s.p.topics.Events(), false
	}
}

func (s *session) publish(f *flight) {
	topic, retained := s.topic(&f.rec)
	lane := f.rec.Key.Lane
	f.tok = s.client.Publish(topic, 1, retained, f.rec.Payload)
	f.sentAt = time.Now()
	if f.acked {
		f.acked = false
		s.acked[lane]--
	}
	s.fifo[lane] = append(s.fifo[lane], f)
	if !f.done && !s.isRepublish(f) {
		s.inflight[lane]++
	}
	if s.p.receipt && f.rec.Kind != outbox.KindAlarm {
		s.awaiting[seqKey{f.rec.Kind, f.rec.Stream, f.rec.Seq}] = f
	}
	s.p.published.Add(1)
}

// isRepublish reports whether f is already counted in the window.
func (s *session) isRepublish(f *flight) bool {
	if !s.p.receipt || f.rec.Kind == outbox.KindAlarm {
		return false
	}
	_, ok := s.awaiting[seqKey{f.rec.Kind, f.rec.Stream, f.rec.Seq}]
	return ok
}

func (s *session) headDone(lane outbox.Lane) <-chan struct{} {
	if len(s.fifo[lane]) == 0 {
		return nil
	}
	return s.fifo[lane][0].tok.Done()
}

// complete handles finished tokens at the head of a lane.
func (s *session) complete(lane outbox.Lane) error {
	for len(s.fifo[lane]) > 0 {
		f := s.fifo[lane][0]
		select {
		case <-f.tok.Done():
		default:
			return nil
		}
		s.fifo[lane] = s.fifo[lane][1:]
		if f.done {
			continue
		}
		if err := f.tok.Error(); err != nil {
			return fmt.Errorf("publish %s seq %d: %w", f.rec.Stream, f.rec.Seq, err)
		}
		if s.isLost() {
			// Not proof of a PUBACK: the record will be republished.
			continue
		}
		if s.p.receipt && f.rec.Kind != outbox.KindAlarm {
			f.acked = true
			s.acked[lane]++
			continue
		}
		s.releaseFlight(f)
		// Acknowledged, released, published once on this session and
		// not waiting for a receipt: nothing refers to it any more.
		s.p.recycle.keep(f)
	}
	return nil
}

func (s *session) releaseFlight(f *flight) {
	if f.done {
		return
	}
	f.done = true
	s.inflight[f.rec.Key.Lane]--
	if f.acked {
		s.acked[f.rec.Key.Lane]--
	}
	delete(s.awaiting, seqKey{f.rec.Kind, f.rec.Stream, f.rec.Seq})
	s.release = append(s.release, f.rec.Key)
}

// handOver gives the records released since the last call to the outbox,
// which deletes them with its next commit (Outbox.ReleaseLater): releasing
// adds no transaction, no fsync and no timer of its own. A release lost to
// a crash only means a duplicate publish, which the consumers' idempotent
// writes absorb.
func (s *session) handOver() {
	if len(s.release) == 0 {
		return
	}
	s.p.o.Outbox.ReleaseLater(s.release...)
	s.p.released.Add(uint64(len(s.release)))
	s.release = s.release[:0]
}

// flush hands over the released records and commits them now.
func (s *session) flush() error {
	s.handOver()
	return s.p.o.Outbox.Release(context.Background())
}

func (s *session) applyReceipt(b []byte) {
	r, err := DecodeReceipt(b)
	if err != nil {
		s.p.log.Warn().Err(err).Msg("bad receipt ignored")
		return
	}
	s.p.receipts.Add(1)
	s.lastReceipt = time.Now()
	apply := func(kind outbox.Kind, stream string, rs []SeqRange) {
		for _, x := range rs {
			if x[1]-x[0] < uint64(len(s.awaiting)) {
				// Counted loop: a range ending at MaxUint64 must not wrap.
				for i := uint64(0); i <= x[1]-x[0]; i++ {
					if f, ok := s.awaiting[seqKey{kind, stream, x[0] + i}]; ok {
						s.releaseFlight(f)
					}
				}
				continue
			}
			for k, f := range s.awaiting {
				if k.kind == kind && k.stream == stream && k.seq >= x[0] && k.seq <= x[1] {
					s.releaseFlight(f)
				}
			}
		}
	}
	for dev, rs := range r.Readings {
		apply(outbox.KindReadings, dev, rs)
	}
	apply(outbox.KindEvent, EventsStream, r.Events)
}

// resendStale republishes records the broker acknowledged but no receipt
// named in time (a lost receipt, or a broker that lost the message): after
// ReceiptTimeout when a receipt came since the record was sent (the ingest
// runs, and this one was skipped), else (the ingest or InfluxDB down) after
// a wait that doubles with each resend, up to 16 times ReceiptTimeout.
// Republishing everything waiting every ReceiptTimeout for the whole of an
// outage queued the window again and again for the ingest's persistent
// session (about 490 000 duplicates an hour a site at 4096 readings).
func (s *session) resendStale() {
	now := time.Now()
	for _, f := range s.awaiting {
		if !f.acked || f.done {
			continue
		}
		wait := s.p.o.ReceiptTimeout
		if !s.lastReceipt.After(f.sentAt) {
			wait <<= min(f.resent, maxResendDoublings)
		}
		if now.Sub(f.sentAt) > wait {
			s.publish(f)
			f.resent++
			s.p.republished.Add(1)
		}
	}
}

// maxResendDoublings caps resendStale's backoff at 16 × ReceiptTimeout.
const maxResendDoublings = 4

func (s *session) loop(ctx context.Context) error {
	// Releases deferred by an earlier session are committed first, so
	// that this one does not publish them again.
	if err := s.p.o.Outbox.Release(context.Background()); err != nil {
		return err
	}
	// Only receipt mode has time-driven work (resending what no receipt
	// named); without it the loop wakes only for records, PUBACKs and the
	// status. Its tick is on multiples of tickEvery, the grid the
	// gateway's core and pollers use, so that the process wakes once for
	// all of them.
	tick := time.NewTimer(untilNext(time.Now(), tickEvery))
	defer tick.Stop()
	var tickC <-chan time.Time
	if s.p.receipt {
		tickC = tick.C
	} else {
		tick.Stop()
	}
	lastResend := time.Now()
	status := time.NewTicker(s.p.o.StatusInterval)
	defer status.Stop()
	for {
		if err := s.fill(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.lost:
			if e := s.lostErr.Load(); e != nil {
				return fmt.Errorf("connection lost: %w", *e)
			}
			return errors.New("connection lost")
		case <-s.headDone(outbox.Alarms):
			if err := s.complete(outbox.Alarms); err != nil {
				return err
			}
		case <-s.headDone(outbox.Readings):
			if err := s.complete(outbox.Readings); err != nil {
				return err
			}
		case <-s.p.o.Outbox.Appended():
			s.drained = [2]bool{}
		case b := <-s.receipts:
			s.applyReceipt(b)
		case <-s.p.kick:
			s.client.Publish(s.p.topics.Status(), 1, true, s.p.statusPayload("online"))
		case <-status.C:
			s.client.Publish(s.p.topics.Status(), 1, true, s.p.statusPayload("online"))
		case <-tickC:
			tick.Reset(untilNext(time.Now(), tickEvery))
			if time.Since(lastResend) > s.p.o.ReceiptTimeout/4 {
				s.resendStale()
				lastResend = time.Now()
			}
		}
		s.handOver()
	}
}

// shutdown answers the commands received, collects outstanding PUBACKs
// for a bounded time, releases what was acknowledged, marks the site
// offline and disconnects.
func (s *session) shutdown() {
	if g := s.p.o.ShutdownGrace; g > 0 {
		at := time.Now().Add(g)
		s.answerQueued(at)
		deadline := time.NewTimer(time.Until(at))
		defer deadline.Stop()
	wait:
		for len(s.fifo[0])+len(s.fifo[1]) > 0 && !s.isLost() {
			select {
			case <-deadline.C:
				break wait
			case <-s.lost:
				break wait
			case <-s.headDone(outbox.Alarms):
				if s.complete(outbox.Alarms) != nil {
					break wait
				}
			case <-s.headDone(outbox.Readings):
				if s.complete(outbox.Readings) != nil {
					break wait
				}
			case b := <-s.receipts:
				s.applyReceipt(b)
			}
		}
		if err := s.flush(); err != nil {
			s.p.log.Warn().Err(err).Msg("release on shutdown failed")
		}
		_ = wait(s.client.Publish(s.p.topics.Status(), 1, true, s.p.statusPayload("offline")), time.Second)
	}
	s.client.Disconnect(250)
	s.p.log.Info().Msg("mqtt disconnected")
}

// refusedRetry is how often a subscription the broker refused is tried
// again while the session lasts. A variable for the tests.
var refusedRetry = 30 * time.Second

// subscribe subscribes to topic for the session. A subscription the broker
// refuses (SUBACK 0x80: its ACL lets the gateway publish but not
// subscribe there) does not end the session: alarms and readings must still
// go out. It is logged, tried again every refusedRetry while the session
// lasts, and the commands (or, in receipt mode, the receipts) it would
// bring wait for it. Any other error ends the session, as before.
func (p *Publisher) subscribe(ctx context.Context, s *session, c paho.Client, topic string, h paho.MessageHandler) error {
	err := wait(c.Subscribe(topic, 1, h), p.o.ConnectTimeout)
	if !errors.Is(err, ErrSubscriptionRefused) {
		return err
	}
	p.refused.Add(1)
	p.log.Error().Err(err).Str("topic", topic).Dur("retry", refusedRetry).
		Msg("broker refused a subscription: publishing goes on without it")
	go func() {
		t := time.NewTicker(refusedRetry)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.lost:
				return
			case <-t.C:
			}
			err := wait(c.Subscribe(topic, 1, h), p.o.ConnectTimeout)
			if err == nil {
				p.log.Info().Str("topic", topic).Msg("subscribed after the broker had refused")
				return
			}
			if !errors.Is(err, ErrSubscriptionRefused) {
				return // the session is ending
			}
		}
	}()
	return nil
}

// answerQueued, on shutdown, lets the command loop finish the command it
// runs, answers the commands still queued as not executed and publishes
// the answers, all before the deadline.
func (s *session) answerQueued(deadline time.Time) {
	if s.p.cmdLoopDone == nil {
		return
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-s.p.cmdLoopDone:
	case <-t.C:
		return
	case <-s.lost:
		return
	}
	for b, ok := s.p.queued(); ok; b, ok = s.p.queued() {
		s.p.reject(b, rejectStopping)
	}
	s.p.sendAnswers(s.client, time.Until(deadline))
}

// queued takes a received command without waiting.
func (p *Publisher) queued() ([]byte, bool) {
	select {
	case b := <-p.cmds:
		return b, true
	default:
		return nil, false
	}
}

func (p *Publisher) commandLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-p.cmds:
			if ctx.Err() != nil {
				// Both were ready: a command is not started once stopping.
				p.reject(b, rejectStopping)
				return
			}
			res := p.o.Commands(ctx, b)
			if res == nil {
				p.log.Warn().Msg("command handler gave no result: nothing published")
				continue
			}
			var r command.Result
			_ = json.Unmarshal(res, &r) // only for the logs
			p.answer(r.ID, res)
		}
	}
}

// reject answers a command that is not run. It never blocks: it runs on
// paho's router.
func (p *Publisher) reject(payload []byte, reason string) {
	r := command.Reject(payload, reason)
	p.log.Warn().Str("id", r.ID).Str("reason", r.Error).Msg("command rejected")
	p.answer(r.ID, r.JSON())
}

// answer queues a cmd/result payload for answerLoop. An answer due while
// the link is down is held and published on the next connection: the
// command ran (or was refused), and a late answer tells the sender so. It
// never blocks; beyond maxAnswers the oldest answer is dropped, logged.
func (p *Publisher) answer(id string, b []byte) {
	a := pendingAnswer{id: id, b: b, held: !p.connected.Load()}
	if a.held {
		p.log.Warn().Str("id", id).Bytes("result", b).Msg("command result held: not connected; published on the next connection")
	}
	p.ansMu.Lock()
	p.answers = append(p.answers, a)
	var dropped []pendingAnswer
	if n := len(p.answers) - maxAnswers; n > 0 {
		dropped = append(dropped, p.answers[:n]...)
		p.answers = append(p.answers[:0], p.answers[n:]...)
	}
	p.ansMu.Unlock()
	for _, d := range dropped {
		p.log.Error().Str("id", d.id).Bytes("result", d.b).Msg("command result dropped: too many answers waiting for the broker")
	}
	p.kickAnswers()
}

func (p *Publisher) kickAnswers() {
	select {
	case p.ansKick <- struct{}{}:
	default:
	}
}

// answerLoop publishes the queued answers whenever there are some and a
// connection; a failed publish is tried again a second later or on the
// next connection.
func (p *Publisher) answerLoop(ctx context.Context) {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.ansKick:
		case <-retry:
		}
		retry = nil
		p.clientMu.Lock()
		c := p.client
		p.clientMu.Unlock()
		if c != nil && !p.sendAnswers(c, p.o.ConnectTimeout) {
			retry = time.After(time.Second)
		}
	}
}

// sendAnswers publishes the queued answers in order on c and waits up to
// timeout for each PUBACK. The answers from the first not acknowledged on
// are put back, to be published again: a duplicate if the broker had them
// after all (QoS 1 is at least once).
func (p *Publisher) sendAnswers(c paho.Client, timeout time.Duration) bool {
	p.ansMu.Lock()
	batch := p.answers
	p.answers = nil
	p.ansMu.Unlock()
	if len(batch) == 0 {
		return true
	}
	toks := make([]paho.Token, len(batch))
	for i, a := range batch {
		toks[i] = c.Publish(p.topics.CmdResult(), 1, false, a.b)
	}
	deadline := time.Now().Add(timeout)
	for i, tok := range toks {
		if err := wait(tok, time.Until(deadline)); err != nil {
			rest := batch[i:]
			ids := make([]string, len(rest))
			for j := range rest {
				rest[j].held = true
				ids[j] = rest[j].id
			}
			p.log.Warn().Err(err).Strs("ids", ids).Msg("command results held: not acknowledged by the broker; published again on the next try")
			p.ansMu.Lock()
			p.answers = append(rest, p.answers...)
			p.ansMu.Unlock()
			return false
		}
		if batch[i].held {
			p.log.Info().Str("id", batch[i].id).Msg("held command result published")
		}
	}
	return true
}

// logUnanswered logs, when Run ends, the commands and answers that will
// never be published: they live in memory only.
func (p *Publisher) logUnanswered() {
	for b, ok := p.queued(); ok; b, ok = p.queued() {
		r := command.Reject(b, rejectStopping)
		p.log.Warn().Str("id", r.ID).Msg("command not executed and not answered: gateway stopped")
	}
	p.ansMu.Lock()
	left := p.answers
	p.answers = nil
	p.ansMu.Unlock()
	for _, a := range left {
		p.log.Warn().Str("id", a.id).Bytes("result", a.b).Msg("command result not published: gateway stopped")
	}
}
