package modbus

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	mb "github.com/simonvetter/modbus"

	"github.com/canary-gw/canary/internal/configerr"
	"github.com/canary-gw/canary/internal/recycle"
)

// Device is one device with its sensors, as the site config gives them.
type Device struct {
	Config  DeviceConfig
	Sensors []SensorConfig
}

// Options configure pollers.
type Options struct {
	// Logger receives lifecycle and state-change logs; default zerolog.Nop().
	Logger *zerolog.Logger
	// Sink receives every batch, from the link's goroutine, in poll order.
	// It must not block for long: the link waits for it. The batch is the
	// sink's to keep.
	Sink func(Batch)
	// Polling, when set, counts the polls under way: raised before a
	// poll's first request, lowered once its batch was handed to Sink (or
	// the poll was abandoned). With 0 and nothing queued after the sink, a
	// consumer knows a burst of polls is over and can commit what it
	// gathered without waiting for a timer.
	Polling *atomic.Int64
	// Lateness, when set, counts across the pollers that share it the
	// polls started and the gateway's own lateness among them (late
	// starts and abandoned polls, as in DeviceStats): a consumer reads
	// its pollers' lateness without a copy of every device's stats.
	Lateness *Lateness
	// Readings, when set, is where each batch's Readings come from. A
	// sink that is done with a batch (nothing reads its Readings any
	// more) may Put them back for a later poll; one that keeps batches
	// leaves it nil.
	Readings *recycle.Slices[Reading]
}

// Lateness counts polls and the gateway's own lateness (see
// Options.Lateness).
type Lateness struct {
	// Polls counts the polls started.
	Polls atomic.Uint64
	// LateStarts counts polls that started late (DeviceStats.LateStarts).
	LateStarts atomic.Uint64
	// Late counts polls abandoned as late (DeviceStats.Late).
	Late atomic.Uint64
}

// isTimeout reports whether err is a request timeout.
func isTimeout(err error) bool { return errors.Is(err, ErrTimeout) }

// errLate marks a timeout that says nothing about the device: the request's
// deadline passed while the poller was not running.
var errLate = errors.New("poller ran late (gateway overloaded)")

// late reports whether a request that timed out after elapsed, with the
// given timeout, timed out because the poller was not scheduled: a silent
// device makes the read return at its deadline (plus a few milliseconds of
// wake-up), not half a timeout after it.
func late(elapsed, timeout time.Duration) bool {
	return timeout > 0 && elapsed > timeout+timeout/2+20*time.Millisecond
}

// retryBase is the first pause before a retry within one poll; it doubles.
const retryBase = 20 * time.Millisecond

// devState is one device as its link owner polls it.
type devState struct {
	cfg      DeviceConfig
	plan     *Plan
	next     time.Time // next tick on the fixed grid
	fails    int       // consecutive failed polls (timeout or link error)
	pending  uint64    // skipped ticks not yet reported in a batch
	stats    DeviceStats
	sensorIx map[string]int
	status   []statusRule // sensors whose quality a status word sets
}

// statusRule is a sensor's StatusConfig, resolved to reading indexes and
// bit masks.
type statusRule struct {
	sensor, word   int
	wordID         string
	bad, uncertain uint64
}

// Poller owns one link and polls the devices behind it in turn, each on
// its own fixed-rate schedule. Devices on one serial line (same rtu://
// path) or one TCP endpoint (same host:port, unit ids multiplexed as behind
// a serial gateway) share one Poller, so requests never interleave.
type Poller struct {
	link    *Link
	devs    []*devState
	sink    func(Batch)
	polling *atomic.Int64 // see Options.Polling; never nil
	log     zerolog.Logger
	writes  chan writeReq
	reopen  bool // reconnect after timeouts too (stream links can desync)
	// phase delays the first poll: a Group spreads its links over the poll
	// period in slots so that hundreds of devices do not all answer in the
	// same millisecond (a burst that queues behind itself and delays alarms).
	phase time.Duration

	mu sync.Mutex // guards devs[*].stats

	// lateness is Options.Lateness; never nil.
	lateness *Lateness
	readings *recycle.Slices[Reading] // Options.Readings; nil: new ones
}

// NewPollers validates the devices (defaults must already be set), groups
// them by link and returns one Poller per link. Nothing is dialled yet.
func NewPollers(devices []Device, opts Options) ([]*Poller, error) {
	logger := zerolog.Nop()
	if opts.Logger != nil {
		logger = *opts.Logger
	}
	sink := opts.Sink
	if sink == nil {
		sink = func(Batch) {}
	}
	polling := opts.Polling
	if polling == nil {
		polling = new(atomic.Int64)
	}
	lateness := opts.Lateness
	if lateness == nil {
		lateness = new(Lateness)
	}
	byLink := map[string]*Poller{}
	var out []*Poller
	var errs []error
	for i := range devices {
		d := devices[i].Config
		if err := d.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", d.ID, err))
			continue
		}
		plan, err := NewPlan(&d, devices[i].Sensors)
		if err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", d.ID, err))
			continue
		}
		key := linkKey(d.URL)
		p := byLink[key]
		if p == nil {
			p = &Poller{sink: sink, polling: polling, lateness: lateness, readings: opts.Readings,
				writes: make(chan writeReq), reopen: scheme(d.URL) != schemeRTU}
			p.log = logger.With().Str("component", "modbus").Str("link", d.URL).Logger()
			byLink[key] = p
			out = append(out, p)
		} else if err := sameLink(&p.devs[0].cfg, &d); err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", d.ID, err))
			continue
		}
		ds := &devState{cfg: d, plan: plan, sensorIx: map[string]int{}}
		for j, s := range plan.Sensors {
			ds.sensorIx[s] = j
		}
		ds.status = statusRules(devices[i].Sensors, ds.sensorIx)
		ds.stats = DeviceStats{Device: d.ID, Link: d.URL, Unit: *d.Unit, Online: true}
		p.devs = append(p.devs, ds)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, p := range out {
		// The shortest timeout of the devices bounds every request on the
		// link: it honours each device's bound and keeps a dead unit from
		// holding the line longer than any device allows.
		cfg := p.devs[0].cfg
		for _, ds := range p.devs {
			cfg.Timeout = min(cfg.Timeout, ds.cfg.Timeout)
		}
		l, err := NewLink(&cfg, p.log)
		if err != nil {
			return nil, err
		}
		p.link = l
	}
	return out, nil
}

// linkKey identifies a physical link: the serial device, or host:port.
func linkKey(url string) string {
	addr := linkAddress(url)
	if scheme(url) == schemeRTU {
		addr = serialPath(addr)
	}
	return scheme(url) + "://" + addr
}

// serialPath resolves symlinks (/dev/serial/by-id/...) so that two
// spellings of one port share its poller: the line is half-duplex. A port
// not plugged in yet cannot be resolved; its cleaned path stands in.
func serialPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// sameLink checks that two devices on one link agree on its settings.
func sameLink(a, b *DeviceConfig) error {
	line := b.URL
	if a.URL != b.URL {
		line += " (as " + a.URL + ")" // another spelling of the same link
	}
	if a.Baud != b.Baud || a.Parity != b.Parity || a.DataBits != b.DataBits || a.StopBits != b.StopBits {
		return fmt.Errorf("shares serial line %s with device %s but its serial settings differ (baud, parity, data_bits, stop_bits must match)", line, a.ID)
	}
	if a.CAFile != b.CAFile || a.CertFile != b.CertFile || a.KeyFile != b.KeyFile {
		return fmt.Errorf("shares link %s with device %s but its TLS files differ", line, a.ID)
	}
	return nil
}

// ValidateLinks checks what devices sharing a link must agree on (serial
// settings, TLS files) and that no two devices have the same id. Paths are
// relative to the device list ("[3].baud"); defaults must be set.
func ValidateLinks(devices []DeviceConfig) error {
	var l configerr.List
	first := map[string]int{}
	ids := map[string]int{}
	for i := range devices {
		d := &devices[i]
		if j, dup := ids[d.ID]; dup && d.ID != "" {
			l.Add(fmt.Sprintf("[%d].id", i), "duplicate device id %q (also [%d])", d.ID, j)
		} else {
			ids[d.ID] = i
		}
		key := linkKey(d.URL)
		j, seen := first[key]
		if !seen {
			first[key] = i
			continue
		}
		if err := sameLink(&devices[j], d); err != nil {
			field := "baud"
			if scheme(d.URL) != schemeRTU {
				field = "ca_file"
			}
			l.Add(fmt.Sprintf("[%d].%s", i, field), "%s", err)
		}
	}
	return l.Err()
}

// Devices returns the ids of the devices this poller owns.
func (p *Poller) Devices() []string {
	ids := make([]string, len(p.devs))
	for i, d := range p.devs {
		ids[i] = d.cfg.ID
	}
	return ids
}

// Stats returns a snapshot of every device's counters.
func (p *Poller) Stats() []DeviceStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]DeviceStats, len(p.devs))
	for i, d := range p.devs {
		out[i] = d.stats
	}
	return out
}

// Run polls until ctx ends, then closes the link and returns nil. Device
// failures are reported in batches and stats, never as Run's error.
func (p *Poller) Run(ctx context.Context) error {
	defer p.link.Close()
	// Start on the grid of the poll period (at most 1 s), as the gateway's
	// other periodic work does: the process then wakes once for all of it.
	start := gridStart(time.Now(), min(p.minPoll(), time.Second), p.phase)
	for _, d := range p.devs {
		d.next = start
	}
	p.log.Info().Strs("devices", p.Devices()).Msg("polling started")
	defer p.log.Info().Msg("polling stopped")
	timer := time.NewTimer(0)
	defer timer.Stop()
	free := time.Now() // when the link was last free: after the last poll or write
	for {
		d := p.due()
		timer.Reset(time.Until(d.next))
		select {
		case <-ctx.Done():
			return nil
		case w := <-p.writes:
			timer.Stop() // Go >= 1.23: no stale tick to drain
			r := p.write(w)
			free = time.Now()
			var ex *ExceptionError
			if r.err != nil && !errors.As(r.err, &ex) && p.reopen && p.link.IsOpen() {
				// As after a failed poll (read): an answer or part of one
				// may still come on this connection, and the next request
				// would read it as its own.
				_ = p.link.Close()
			}
			w.done <- r
			continue
		case <-timer.C:
		}
		if ctx.Err() != nil {
			return nil // the tick and the cancel came together
		}
		if stallWake != nil {
			stallWake()
		}
		// How late the poll starts after its tick, or after the link
		// was free if that was later: the gateway's own lateness (a
		// slow device or line only makes the link free later). The time
		// since includes a wait to hand the last batch over to a core
		// that is behind (Options.Sink): the gateway's lateness too. (A
		// write taken first, with the tick already passed, moves the
		// link's free time on: that late start is not counted.)
		if time.Since(maxTime(d.next, free)) > d.cfg.Poll/4 {
			p.mu.Lock()
			d.stats.LateStarts++
			p.mu.Unlock()
			p.lateness.LateStarts.Add(1)
		}
		p.lateness.Polls.Add(1)
		p.polling.Add(1)
		b := p.poll(ctx, d)
		if ctx.Err() != nil {
			p.polling.Add(-1)
			return nil // a poll cut short by shutdown is not a device failure
		}
		free = time.Now()
		p.schedule(d, free)
		if !b.Late {
			p.sink(b)
		}
		p.polling.Add(-1)
	}
}

// gridStart is the first tick at or after now's next multiple of grid,
// shifted by phase. It keeps now's monotonic clock reading (Truncate drops
// it): the schedule then runs on the monotonic clock, and a step of the
// wall clock (NTP at boot) neither stops polling for the step's length (a
// step back) nor counts the step's ticks as skipped (a step forward). After
// such a step the ticks stay where they were, off the wall-clock grid the
// core and the publisher wake on, until a restart: more wake-ups, nothing
// missed.
func gridStart(now time.Time, grid, phase time.Duration) time.Time {
	return now.Add(grid - now.Sub(now.Truncate(grid)) + phase)
}

// stallWake, set by tests, puts a poller off after its timer fired, as a
// busy gateway would (the scheduler running it late).
var stallWake func()

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// spread gives the links their phases. A small group (at most
// smallGroup links) starts in one slot: its answers arrive together and
// are handled in one wake-up of the process, which on an edge box costs
// more than the work it does (50 devices in slots of 10: 10.5 ms of CPU
// per 1000 readings; in one slot: 6.7 ms, scripts/load.sh). A larger group
// starts in slots of linksPerSlot spread over the poll period, so that no
// burst queues an alarm behind hundreds of polls (at 500 devices, slots of
// 50 gave an alarm latency p50 of 2.9 ms, slots of 10 1.3 ms).
func (g *Group) spread() {
	slots := 1
	if len(g.pollers) > smallGroup {
		slots = (len(g.pollers) + linksPerSlot - 1) / linksPerSlot
	}
	for i, p := range g.pollers {
		p.phase = p.minPoll() * time.Duration(i%slots) / time.Duration(slots)
	}
}

// smallGroup and linksPerSlot: see spread.
const (
	smallGroup   = 50
	linksPerSlot = 10
)

// minPoll is the shortest poll period of the link's devices.
func (p *Poller) minPoll() time.Duration {
	m := p.devs[0].cfg.Poll
	for _, d := range p.devs[1:] {
		m = min(m, d.cfg.Poll)
	}
	return m
}

// due returns the device whose next tick comes first.
func (p *Poller) due() *devState {
	best := p.devs[0]
	for _, d := range p.devs[1:] {
		if d.next.Before(best.next) {
			best = d
		}
	}
	return best
}

// schedule moves a device to its next tick on the fixed grid. Ticks that
// already passed are skipped and counted, never bunched; a failing device
// also skips the ticks within its backoff.
func (p *Poller) schedule(d *devState, now time.Time) {
	period := d.cfg.Poll
	d.next = d.next.Add(period)
	var skipped, backoff uint64
	if !d.next.After(now) {
		n := uint64(now.Sub(d.next)/period) + 1
		d.next = d.next.Add(time.Duration(n) * period)
		skipped = n
	}
	if d.fails > 1 {
		// One failure may be a glitch: keep the rate. From the second
		// on, back off exponentially (1, 2, 4, ... periods, capped) so a
		// dead unit cannot take the line from the live ones.
		wait := min(period<<min(d.fails-2, 20), max(d.cfg.MaxBackoff, period))
		for d.next.Before(now.Add(wait)) {
			d.next = d.next.Add(period)
			backoff++
		}
	}
	d.pending += skipped + backoff
	p.mu.Lock()
	d.stats.Skipped += skipped
	d.stats.Backoff += backoff
	p.mu.Unlock()
}

// poll reads every request of one device and decodes its readings.
// splitOnRefusal is the request cut at its gaps when the device refused it
// with "illegal data address" and it bridged gaps; nil otherwise (and on the
// hot path, where err is nil, without allocating).
func splitOnRefusal(r *Request, err error) []Request {
	if err == nil || !errors.Is(err, mb.ErrIllegalDataAddress) {
		return nil
	}
	return splitAtGaps(*r)
}

func (p *Poller) poll(ctx context.Context, d *devState) Batch {
	unit := *d.cfg.Unit
	b := Batch{Device: d.cfg.ID, Unit: unit, Readings: p.readings.Get(len(d.plan.Sensors))[:len(d.plan.Sensors)]}
	for i, id := range d.plan.Sensors {
		b.Readings[i] = Reading{Sensor: id, Quality: QualityUnknown}
	}
	var errs []error
	var timeouts, exceptions, linkErrs, reconnects, lateAnswers uint64
	var linkDown error
	var lateAt time.Time // when the last request's answer came, if read late
	sent := time.Now()
	for ri := 0; ri < len(d.plan.Requests); ri++ {
		r := &d.plan.Requests[ri]
		if linkDown != nil {
			// The device did not answer this poll; don't make the line
			// wait for it again on every remaining request.
			p.fail(b.Readings, r, linkDown)
			continue
		}
		regs, bits, err := p.read(ctx, d, r, &reconnects)
		lateAt = time.Time{}
		if errors.Is(err, errLate) {
			b.Late = true
			break
		}
		if parts := splitOnRefusal(r, err); len(parts) > 1 {
			// The device refuses the unrequested registers the planner
			// bridged: read only what the sensors need, from now on.
			p.log.Warn().Str("device", d.cfg.ID).Str("table", r.Table.String()).Int("addr", int(r.Addr)).
				Int("count", int(r.Count)).Msg("device refuses merged read, splitting it at the gaps")
			d.plan.Requests = slices.Replace(d.plan.Requests, ri, ri+1, parts...)
			ri--
			continue
		}
		if err != nil {
			err = fmt.Errorf("read %s %d..%d: %w", r.Table, r.Addr, int(r.Addr)+int(r.Count)-1, err)
			errs = append(errs, err)
			switch {
			case IsException(err):
				exceptions++
			case isTimeout(err):
				timeouts++
				linkDown = err
			default:
				linkErrs++
				linkDown = err
			}
			p.fail(b.Readings, r, err)
			continue
		}
		if at, ok := p.link.LateAnswer(); ok {
			if time.Since(at) > d.cfg.Poll {
				// Read more than a poll period after it came, the answer
				// stands for a time the device's next poll would already
				// have covered, and judged now (the engine never runs
				// time backwards) it could clear a comm alarm for a
				// device that has gone quiet since: late, as before.
				b.Late = true
				break
			}
			lateAnswers++
			lateAt = at
		}
		for _, f := range r.Fields {
			rd := &b.Readings[f.Sensor]
			var v float64
			var derr error
			if r.Table.IsBits() {
				v = f.Codec.DecodeBit(bits[f.Offset])
			} else {
				v, derr = f.Codec.Decode(regs[f.Offset:])
			}
			if derr != nil {
				rd.Quality, rd.Reason = QualityBad, reason(derr)
			} else {
				rd.Value, rd.Quality = v, QualityGood
			}
		}
	}
	applyStatus(d.status, b.Readings)
	b.At = time.Now()
	if !lateAt.IsZero() {
		// The poll's last answer was read late: its values are the
		// device's when that answer came, not when the gateway got to
		// it. A tick due in between judges them before it (the core;
		// the engine never runs time backwards), and the latency is
		// the device's.
		b.At = lateAt
	}
	if b.Late {
		p.mu.Lock()
		d.stats.Late++
		// The poll's readings are abandoned, but what its requests met
		// happened: an exception answered before the late request, and
		// the link closed after a late timeout (TCP), are counted as on
		// any poll. (Timeouts and link errors cannot precede a late
		// request: either ends the poll's reads. The late request's own
		// timeout is the gateway's, not the device's: not counted.)
		d.stats.Exceptions += exceptions
		d.stats.Reconnects += reconnects
		d.stats.LateAnswers += lateAnswers
		n := d.stats.Late
		p.mu.Unlock()
		p.lateness.Late.Add(1)
		if n == 1 || n%100 == 0 {
			// An overloaded gateway: say so, without a line per poll.
			p.log.Warn().Str("device", d.cfg.ID).Int("unit", unit).Uint64("late_polls", n).
				Msg("poll abandoned: the gateway ran late (overloaded); no readings this poll")
		}
		return b
	}
	b.Latency = b.At.Sub(sent)
	b.Err = errors.Join(errs...)
	wasOnline := d.fails == 0
	if linkDown != nil {
		d.fails++
	} else {
		d.fails = 0
	}
	p.mu.Lock()
	d.stats.Polls++
	b.Polls = d.stats.Polls
	if b.Err != nil {
		d.stats.Errors++
	}
	d.stats.Timeouts += timeouts
	d.stats.Exceptions += exceptions
	d.stats.LinkErrors += linkErrs
	d.stats.Reconnects += reconnects
	d.stats.LateAnswers += lateAnswers
	d.stats.LastPoll = b.At
	if linkDown == nil {
		d.stats.LastLatency = b.Latency
	}
	d.stats.Online = linkDown == nil
	p.mu.Unlock()
	b.Skipped, d.pending = d.pending, 0
	switch {
	case wasOnline && linkDown != nil:
		p.log.Warn().Err(linkDown).Str("device", d.cfg.ID).Int("unit", unit).Msg("device offline")
	case !wasOnline && linkDown == nil:
		p.log.Info().Str("device", d.cfg.ID).Int("unit", unit).Msg("device online")
	case b.Err != nil:
		p.log.Debug().Err(b.Err).Str("device", d.cfg.ID).Int("unit", unit).Msg("poll failed")
	}
	return b
}

// fail marks the readings of one request bad.
func (p *Poller) fail(rs []Reading, r *Request, err error) {
	why := reason(errors.Unwrap(err))
	if why == "" {
		why = reason(err)
	}
	for _, f := range r.Fields {
		rs[f.Sensor].Quality, rs[f.Sensor].Reason, rs[f.Sensor].Value = QualityBad, why, 0
	}
}

// read runs one request with retries: a busy device or a lost link is
// retried after a short pause, with Close+Open after link errors (the
// library never reconnects); other exceptions are final.
func (p *Poller) read(ctx context.Context, d *devState, r *Request, reconnects *uint64) ([]uint16, []bool, error) {
	var err error
	cleanTimeout := false // an attempt timed out while the gateway was not saturated
	for attempt := 0; ; attempt++ {
		var regs []uint16
		var bits []bool
		idle := p.link.IdleCloses()
		if r.Table.IsBits() {
			bits, err = p.link.ReadBits(*d.cfg.Unit, r.Table, r.Addr, r.Count)
		} else {
			regs, err = p.link.ReadRegisters(*d.cfg.Unit, r.Table, r.Addr, r.Count)
		}
		*reconnects += p.link.IdleCloses() - idle // the device had closed it while idle
		if err == nil {
			return regs, bits, nil
		}
		// From when the request was sent: a slow dial or TLS handshake is
		// the link's time, not the poller running late. (An answer that
		// came within the timeout, still unread, was read: Link.takeLate.)
		lateErr := isTimeout(err) && !cleanTimeout &&
			(late(time.Since(p.link.SentAt()), p.link.Timeout()) || p.link.Saturated())
		if isTimeout(err) && !lateErr {
			// A timeout with the gateway running freely is the device's:
			// a retry in a busier moment must not turn this poll late.
			cleanTimeout = true
		}
		var ex *ExceptionError
		busy := errors.As(err, &ex) && (ex.Code == 6 || ex.Code == 5)
		if ex != nil && !busy {
			return nil, nil, err
		}
		if ex == nil && (!isTimeout(err) || p.reopen) && p.link.IsOpen() {
			// A stream that timed out mid-frame can be out of step, and
			// after EOF or a reset every call fails until reopened. On a
			// serial line a timeout is one silent unit, not a broken line.
			_ = p.link.Close()
			*reconnects++
		}
		if lateErr {
			// Retrying would only add load to an overloaded box.
			return nil, nil, fmt.Errorf("%w: %w", errLate, err)
		}
		if attempt >= *d.cfg.Retries {
			return nil, nil, err
		}
		pause := retryBase << attempt
		if deadline := d.next.Add(d.cfg.Poll); time.Until(deadline) < pause {
			return nil, nil, err // retrying would eat into the next tick
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, err
		case <-t.C:
		}
	}
}

// Group runs the pollers of a site's devices.
type Group struct {
	pollers  []*Poller
	byDevice map[string]*Poller
}

// NewGroup builds one Poller per link for devices (see NewPollers).
func NewGroup(devices []Device, opts Options) (*Group, error) {
	ps, err := NewPollers(devices, opts)
	if err != nil {
		return nil, err
	}
	g := &Group{pollers: ps, byDevice: map[string]*Poller{}}
	for _, p := range ps {
		for _, id := range p.Devices() {
			g.byDevice[id] = p
		}
	}
	return g, nil
}

// Pollers returns the group's pollers, one per link.
func (g *Group) Pollers() []*Poller { return g.pollers }

// Run runs every poller until ctx ends and waits for all of them.
func (g *Group) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(g.pollers))
	g.spread()
	for i, p := range g.pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Run(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stats returns every device's counters, sorted by device id.
func (g *Group) Stats() []DeviceStats {
	var out []DeviceStats
	for _, p := range g.pollers {
		out = append(out, p.Stats()...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

// Write writes value to a sensor of a device and reads it back (see
// Poller.Write).
func (g *Group) Write(ctx context.Context, device, sensor string, value float64) (float64, error) {
	p, ok := g.byDevice[device]
	if !ok {
		return 0, fmt.Errorf("write %s.%s: unknown device", device, sensor)
	}
	return p.Write(ctx, device, sensor, value)
}

// PollOnce polls every device of the link once, outside any schedule, and
// closes the link: for commissioning tools and tests. Do not call it while
// Run is running.
func (p *Poller) PollOnce(ctx context.Context) []Batch {
	defer p.link.Close()
	out := make([]Batch, 0, len(p.devs))
	for _, d := range p.devs {
		d.next = time.Now()
		out = append(out, p.poll(ctx, d))
	}
	return out
}
