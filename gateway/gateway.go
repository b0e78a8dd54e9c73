package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/httpapi"
	"github.com/canary-gw/canary/gateway/ingest"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/configerr"
	"github.com/canary-gw/canary/internal/recycle"
)

// Options configure a Gateway.
type Options struct {
	// Site is the loaded (defaulted and validated) site config.
	Site *configs.Site
	Log  zerolog.Logger
	// Registry receives the gateway's metrics and is served on /metrics;
	// nil makes a private one.
	Registry *prometheus.Registry
	// HTTPListener, when set, serves the API and UI on it instead of
	// listening on Site.HTTP.Listen (tests and the demo use it).
	HTTPListener net.Listener
	// NoHTTP turns the HTTP API off.
	NoHTTP bool
	// TickEvery is how often time-driven alarm transitions (delays,
	// communication loss, shelve expiry) are evaluated; default 250ms.
	TickEvery time.Duration
	// ActionTimeout bounds one interlock write and read-back; default 2s.
	ActionTimeout time.Duration
	// AlarmCommitted, when set, is called on the core goroutine after a
	// poll batch that raised or cleared alarms is committed to the outbox,
	// with the poll response's arrival time (canary bench times alarms with
	// it). It must return at once.
	AlarmCommitted func(readingAt time.Time, events int)
}

// Gateway is the edge gateway of one site.
type Gateway struct {
	o    Options
	site *configs.Site
	log  zerolog.Logger

	// ob is the durable queue. With the site's influxdb: section it has
	// two consumers, the MQTT publisher and the direct InfluxDB writer,
	// each releasing what it delivered: a record leaves when both have.
	ob     *outbox.Outbox
	direct *ingest.Direct
	// fresh hands direct the lines of the readings as they are
	// committed (readingsItem); nil without direct.
	fresh *ingest.Fresh
	// legacy drains the second queue an older gateway kept for InfluxDB
	// (outbox/influxdb), if it holds records, then removes it.
	legacy  *legacyQueue
	eng     *alerting.Engine
	polls   *modbus.Group
	pub     *mqtt.Publisher
	http    *httpapi.Server
	actions map[string]configs.Action
	// registers names the sensors at the actions' target and read-back
	// registers: the devices' configs are let go once compiled (New).
	registers map[register]string
	devices   int // configured devices, for the log
	met       *metrics

	statePath string
	batches   chan modbus.Batch
	cmds      chan cmdReq
	actDone   chan actResult
	// actSlots: each action's desired state, driven by its own runner
	// (actions.go). actStop is closed once the core has stopped.
	actSlots map[string]*actSlot
	actStop  chan struct{}
	// coreStop is closed when the core stops taking events (its drain
	// begins): a command handed over later is answered "gateway stopping".
	coreStop <-chan struct{}
	runCtx   atomic.Pointer[context.Context]
	// sinkMu and sinkClosed: once the stop begins no poll is handed to
	// the core, while the pollers still run for the interlock writes
	// pending at the stop (Run).
	sinkMu     sync.RWMutex
	sinkClosed bool

	view  view
	ready atomic.Bool

	// Core-goroutine state: alarm states to send again, failed interlock
	// actions waiting for their next attempt.
	unsent     map[string]bool
	actRetry   map[string]time.Time
	actBackoff map[string]time.Duration

	// Scratch space of the core goroutine, reused across polls.
	group []modbus.Batch
	late  []modbus.Batch // onTimer's queued polls read after the tick fell due
	// carry holds polls read after the last tick that ran, waiting for the
	// next, which is already due (runTick).
	carry []modbus.Batch
	// carryCap bounds the carry (replays): a queue's worth and the polls
	// under way when the last tick took the queue (takeRest).
	carryCap int
	// caught is catchUp's buffer; takenAt when the last tick took the
	// queue (takeRest).
	caught  []modbus.Batch
	takenAt time.Time
	alarmAt []time.Time
	samples []alerting.Sample
	// evBuf and stateBuf: a group's events and a commit part's alarm
	// states, kept for the next (see onBatches, commitPart).
	evBuf    []alerting.Event
	stateBuf []alerting.AlarmState
	pending  []outbox.Item // readings waiting for a shared commit
	// pendingPayloads are the readings of pending's payloads; once their
	// commit has encoded them they go back to payloads, for later polls.
	pendingPayloads [][]mqtt.Reading
	payloads        *recycle.Slices[mqtt.Reading]
	// polled: the pollers' batches' readings, back from the core once
	// it has evaluated them (evaluateGroup).
	polled *recycle.Slices[modbus.Reading]
	// pendingSince: when the first of pending arrived; committedAt: the
	// latest commit of readings.
	pendingSince, committedAt time.Time
	// tickedAt is when the core last ticked: the grid time its timer was
	// armed for, or, for a tick at the end of a burst of polls, the grid
	// time before that end (maxIdle).
	tickedAt time.Time
	// polling counts the polls under way (modbus.Options.Polling).
	polling atomic.Int64
	// lateness counts the pollers' polls and lateness
	// (modbus.Options.Lateness); catchups the core's catch-ups. overload
	// judges them for the fault hold (overload.go).
	lateness modbus.Lateness
	catchups uint64
	overload overloadJudge
	// judgeClock is the overload judge's clock: time.Now when nil (tests
	// set their own).
	judgeClock func() time.Time
	// releasedAt is how far on the judge's clock the pace of releasing
	// held alarms has been used (releaseHeld); zero when no release is
	// under way. releaseRate is the pace, a second.
	releasedAt  time.Time
	releaseRate int
	// holdStatus is the fault hold in force, for the retained status.
	holdStatus atomic.Pointer[mqtt.FaultHoldStatus]
	// drops counts the readings batches the outbox dropped (onDrop, from
	// its commit goroutine); drop is the core's view of them for the
	// readings-dropped alarm (drops.go).
	drops atomic.Uint64
	drop  dropAlarm
	// appendFails and appendOKs count the outbox commits that failed and
	// that succeeded (noteAppend, from the core and from the outbox's
	// commit goroutine); writeFail is the core's view of them for the
	// write-failed alarm, unsentEvents the events of failed commits
	// waiting to be appended again (writefail.go).
	appendFails, appendOKs atomic.Uint64
	writeFail              writeFailAlarm
	unsentEvents           []alerting.Event
	failLog                diskFailPace
	// unsentStates: alarm states a failed commit did not take, sent again
	// as commitPart sends them (resendAlarms); unsent only republishes.
	unsentStates map[string]bool
	unsentSeq    map[string]uint64

	// Alarm state snapshot bookkeeping (core goroutine).
	stateDirty bool
	// neededDirty: stateDirty holds a change stateNeededNow wants saved at
	// once, deferred because it came within neededGap of the last snapshot.
	neededDirty bool
	persistedAt time.Time
	persistTook time.Duration // how long the last snapshot took (persistGap)
	// stopping: the core is draining; commits wait for the disk.
	stopping bool
	// shedAfter is, by device, the age past which a poll's readings are
	// shed (shed); shedGap counts, by device, the polls shed since its
	// last appended one; shedLogged and shedUnlogged pace the warning.
	shedAfter    map[string]time.Duration
	shedGap      map[string]uint64
	shedLogged   time.Time
	shedUnlogged uint64
	// catchupLogged and catchupUnlogged pace the catch-up warning.
	catchupLogged   time.Time
	catchupUnlogged uint64
	// asyncSlots holds one token per readings commit not yet on disk.
	asyncSlots chan struct{}
}

// trendBudgetBytes bounds the memory of the UI's trends over all sensors
// (httpapi.TrendPointBytes, 9 bytes, a point, allocated at each sensor's
// first reading): 131 072 points, 131 per sensor at 1 000 sensors (one per
// 6.8 s over the 15-minute window), 30 at 5 000 and more (one per 30 s).
// The chart always spans the window; readings between two points share
// one, keeping its most deviant value (httpapi's trend). InfluxDB is the
// history.
const trendBudgetBytes = 131072 * httpapi.TrendPointBytes

// handoverCap is how many polls may wait for the core: a second of the
// site's polls, at least minHandover and at most maxHandover. The queue
// absorbs a core that is behind for a while (an alarm flood's commits, a
// stall of the whole process) without holding the pollers up: a poller
// blocked on a full queue skips its device's ticks, the device goes
// unread past its comm timeout, and each of its sensors raises a comm
// alarm, whose commits put the core further behind (docs/performance-history.md,
// item 39). Queued polls are judged by when they were read (onTimer), so
// waiting in the queue raises nothing. Past a full queue, with as much
// carried to the core's next tick (takeRest), the pollers wait: the
// gateway is then overloaded, not held up, and the skipped ticks and comm
// alarms say so.
func handoverCap(devs []configs.Device) int {
	n := 0
	for i := range devs {
		p := devs[i].Poll
		if p <= 0 {
			p = time.Second
		}
		n += int(min((time.Second+p-1)/p, maxHandover))
		if n >= maxHandover {
			break
		}
	}
	return min(max(n, minHandover), maxHandover)
}

// minHandover and maxHandover bound the poll queue (handoverCap). A queued
// poll holds its readings (48 bytes each: 5.8 KB for a 120-sensor device)
// and 120 bytes of the channel's buffer, which is allocated at start: a
// full queue of 5 000 such polls (500 devices every 100 ms) is 29 MB.
const (
	minHandover = 256
	maxHandover = 16384
)

// New builds a gateway: it opens the outbox and restores the alarm state
// from disk, but dials nothing.
func New(o Options) (*Gateway, error) {
	if o.Site == nil {
		return nil, errors.New("gateway: no site config")
	}
	if o.TickEvery <= 0 {
		// Each tick walks every configured alarm; 250 ms keeps that fixed
		// cost low on a large site while delays, communication loss and
		// shelve expiry stay far inside the 2 s a coal-mine power cut
		// allows. Limit alarms are evaluated as each poll arrives, not here.
		o.TickEvery = 250 * time.Millisecond
	}
	if o.ActionTimeout <= 0 {
		o.ActionTimeout = 2 * time.Second
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	s := o.Site
	g := &Gateway{
		o: o, site: s,
		log:      o.Log.With().Str("site", s.Site).Logger(),
		batches:  make(chan modbus.Batch, handoverCap(s.Devices)),
		carryCap: handoverCap(s.Devices),
		// releaseHeld's pace, halved by holds that come while it runs.
		releaseRate: heldReleasePerSecond,
		asyncSlots:  make(chan struct{}, maxAsyncCommits),
		payloads:    recycle.New[mqtt.Reading](maxKeptPayloadReadings),
		polled:      recycle.New[modbus.Reading](maxKeptPayloadReadings),
		cmds:        make(chan cmdReq),
		actDone:     make(chan actResult, 64),
		actSlots:    map[string]*actSlot{},
		actStop:     make(chan struct{}),
		actions:     map[string]configs.Action{},

		unsent:       map[string]bool{},
		unsentStates: map[string]bool{},
		unsentSeq:    map[string]uint64{},
		actRetry:     map[string]time.Time{},
		actBackoff:   map[string]time.Duration{},
	}
	g.registers = map[register]string{}
	for _, a := range s.Actions {
		g.actions[a.ID] = a
		g.actSlots[a.ID] = newActSlot()
		g.noteRegister(s, a.Device, a.Table, a.Address)
		if rb := a.Readback; rb != nil && rb.Address != nil {
			g.noteRegister(s, rb.Device, rb.Table, *rb.Address)
		}
	}
	g.met = newMetrics(o.Registry, s.Site)

	eng, err := alerting.New(s.AlertingConfig())
	if configerr.HasErrors(err) {
		return nil, fmt.Errorf("gateway: build alarm engine: %w", err)
	}
	g.eng = eng
	g.view.init(s, eng)
	g.shedAfter, g.shedGap = shedAges(&g.view, eng), map[string]uint64{}

	if err := os.MkdirAll(s.Outbox.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("gateway: outbox dir: %w", err)
	}
	consumers := 1 // the MQTT publisher
	if s.InfluxDB != nil {
		consumers = 2 // and the direct InfluxDB writer
	}
	ob, err := outbox.Open(outbox.Options{
		Dir: s.Outbox.Dir, MaxBytes: int64(s.Outbox.MaxBytes), Log: g.log.With().Str("outbox", "mqtt").Logger(),
		OnDrop: g.onDrop, Consumers: consumers,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.ob = ob
	g.statePath = filepath.Join(s.Outbox.Dir, "alarm-state.json")
	if s.InfluxDB != nil {
		if err := g.openDirect(); err != nil {
			_ = g.Close() // the outbox, and an older InfluxDB queue if one was opened
			return nil, err
		}
	}

	devs := make([]modbus.Device, len(s.Devices))
	for i := range s.Devices {
		devs[i] = modbus.Device{Config: s.Devices[i].DeviceConfig, Sensors: s.Devices[i].ModbusSensors()}
	}
	plog := g.log
	polls, err := modbus.NewGroup(devs, modbus.Options{Logger: &plog, Sink: g.sink, Polling: &g.polling, Lateness: &g.lateness,
		Readings: g.polled})
	if err != nil {
		_ = g.Close() // the outbox, and an older InfluxDB queue if one was opened
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.polls = polls

	pub, err := mqtt.NewPublisher(mqtt.Options{
		Config: s.MQTT, Site: s.Site, Outbox: ob, Release: s.Outbox.Release,
		Log:       g.o.Log, // the publisher adds its own site and component fields
		Status:    g.deviceStatus,
		FaultHold: g.holdStatus.Load,
		Commands:  g.mqttCommand,
	})
	if err != nil {
		_ = g.Close() // the outbox, and an older InfluxDB queue if one was opened
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.pub = pub
	o.Registry.MustRegister(newCollector(g))

	if !o.NoHTTP {
		users, err := httpapi.LoadUsers(s.HTTP)
		if err != nil {
			_ = g.Close() // the outbox, and an older InfluxDB queue if one was opened
			return nil, fmt.Errorf("gateway: http users: %w", err)
		}
		g.view.users = users
		// The UI's trends share one memory budget: a site with many
		// sensors keeps fewer points per sensor rather than growing
		// without bound on a small edge box.
		sensors := 0
		for _, d := range s.Devices {
			sensors += len(d.Sensors)
		}
		trendPoints := min(1800, max(30, trendBudgetBytes/httpapi.TrendPointBytes/max(sensors, 1)))
		srv, err := httpapi.New(httpapi.Options{
			TrendPoints: trendPoints,
			Config:      s.HTTP, Users: users, Backend: (*backend)(g), Registry: o.Registry,
			Logger: g.log,
			Site:   s.Site, SiteName: s.Name,
		})
		if err != nil {
			_ = g.Close() // the outbox, and an older InfluxDB queue if one was opened
			return nil, fmt.Errorf("gateway: %w", err)
		}
		g.http = srv
		g.view.numberTrends(srv)
	}
	// The devices' configs are compiled by now: into the pollers, the
	// engine, the view and g.registers. Parsed, a 1 000-sensor site's
	// devices are 0.4 MB of heap the gateway would keep for nothing, so it
	// keeps the site without them. (They are freed only if the caller lets
	// go of its copy too: cmd/canary's run does.)
	g.devices = len(s.Devices)
	trimmed := *s
	trimmed.Devices = nil
	g.site, g.o.Site = &trimmed, &trimmed
	return g, nil
}

// register is a device's register, by table and address.
type register struct {
	device, table string
	address       int
}

// noteRegister looks up, while the devices' configs are still there, the
// sensor at an action's register.
func (g *Gateway) noteRegister(s *configs.Site, device, table string, address int) {
	if id, ok := s.SensorAt(device, table, address); ok {
		g.registers[register{device, table, address}] = id
	}
}

// sensorAt is the id of the sensor configured at a device's register.
func (g *Gateway) sensorAt(device, table string, address int) (string, bool) {
	id, ok := g.registers[register{device, table, address}]
	return id, ok
}

// Close releases the outbox; call it after Run returned.
func (g *Gateway) Close() error {
	err := g.ob.Close()
	if g.legacy != nil {
		err = errors.Join(err, g.legacy.ob.Close())
	}
	return err
}

// openDirect opens the InfluxDB writer for the site's influxdb: section,
// the outbox's consumer 1.
func (g *Gateway) openDirect() error {
	w, err := ingest.NewWriter(ingest.WriterOptions{Config: *g.site.InfluxDB, Log: g.log})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.fresh = ingest.NewFresh()
	d, err := ingest.NewDirect(ingest.DirectOptions{Outbox: g.ob, Consumer: 1, Writer: w, Site: g.site.Site,
		BatchPoints: g.site.InfluxDB.BatchPoints, BatchWait: g.site.InfluxDB.BatchWait, Fresh: g.fresh, Log: g.o.Log}) // it adds its own site field
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.direct = d
	g.legacy = openLegacyQueue(filepath.Join(g.site.Outbox.Dir, "influxdb"), w, g.site.Site, g.o.Log)
	return nil
}

// appendAsync queues readings for the next commit without waiting for it;
// a failure is logged and counted as a synchronous one is.
func (g *Gateway) appendAsync(items []outbox.Item, payloads [][]mqtt.Reading) {
	items = slices.Clone(items)
	payloads = slices.Clone(payloads)
	// Bounded: with maxAsyncCommits queued the core waits, as it would for
	// a synchronous commit, so a slow disk holds the pollers back (they
	// count skipped polls) instead of piling readings up in memory.
	g.asyncSlots <- struct{}{}
	err := g.ob.AppendAsync(items, func(_ []uint64, err error) {
		<-g.asyncSlots
		g.putPayloads(payloads)
		g.noteAppend(err)
		if err != nil {
			g.diskFailLog().Err(err).Int("records", len(items)).Msg("outbox append failed")
		}
	})
	if err != nil {
		<-g.asyncSlots
		g.putPayloads(payloads)
		g.noteAppend(err)
		g.diskFailLog().Err(err).Int("records", len(items)).Msg("outbox append failed")
	}
}

// putPayloads returns the readings of payloads whose commit is over (the
// outbox has encoded them, or will never): it encodes an item only
// inside the commit its request is in, once, and a request that failed is
// not tried again.
func (g *Gateway) putPayloads(payloads [][]mqtt.Reading) {
	for _, p := range payloads {
		g.payloads.Put(p)
	}
}

// maxKeptPayloadReadings bounds the readings kept for reuse, of payloads
// (about 1.3 MB) and of polls (about 1 MB): a second of polls at 10 000
// sensors, and then some.
const maxKeptPayloadReadings = 1 << 14

// maxAsyncCommits bounds the readings commits queued and not yet on disk.
const maxAsyncCommits = 4

func (g *Gateway) appendAll(ctx context.Context, items []outbox.Item) ([]uint64, error) {
	seqs, err := g.ob.Append(ctx, items...)
	g.noteAppend(err)
	return seqs, err
}

// Engine state restored from disk, then everything runs until ctx ends.
// Shutdown drains: no poll is handed to the core any more, the core
// commits what it already has, the interlock actions finish what is
// pending (the pollers still run for their writes), then the pollers
// stop and the publisher gets its grace period.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.restore(ctx); err != nil {
		return err
	}
	g.runCtx.Store(&ctx)

	pollCtx, stopPolls := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPolls()
	coreCtx, stopCore := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCore()
	g.coreStop = coreCtx.Done()
	// The action runners outlive the core, bounded (actionStopGrace).
	actCtx, stopActs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopActs()
	// The publisher, the InfluxDB writer and the HTTP server outlive the
	// core by a little: they stop after it has committed its last batch
	// (so that goes out too), and they also stop when any component fails,
	// so a failed component never leaves a gateway that says "online"
	// without evaluating anything: Run returns and the service restarts.
	compCtx, stopComps := context.WithCancel(context.WithoutCancel(ctx))
	defer stopComps()

	grp, gctx := errgroup.WithContext(ctx)
	var pollWG sync.WaitGroup
	pollWG.Add(1)
	grp.Go(func() error {
		defer pollWG.Done()
		if err := g.polls.Run(pollCtx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("pollers: %w", err)
		}
		return nil
	})
	coreDone := make(chan struct{})
	grp.Go(func() error {
		defer close(coreDone)
		return g.core(coreCtx)
	})
	actWG := g.startActions(actCtx, g.actStop)
	if g.direct != nil {
		grp.Go(func() error {
			if err := g.direct.Run(compCtx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("influxdb: %w", err)
			}
			return nil
		})
	}
	if g.legacy != nil {
		grp.Go(func() error { return g.legacy.run(compCtx) })
	}
	grp.Go(func() error {
		if err := g.pub.Run(compCtx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("mqtt: %w", err)
		}
		return nil
	})
	if g.http != nil {
		grp.Go(func() error {
			var err error
			if g.o.HTTPListener != nil {
				err = g.http.Serve(compCtx, g.o.HTTPListener)
			} else {
				err = g.http.Run(compCtx)
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		})
	}
	// Stop order: when ctx (or a failing component) ends the group, no
	// poll is handed to the core any more, the core drains what it has
	// (a trip it decides then is still written), the action runners
	// finish what is pending, within actionStopGrace, then the pollers
	// stop (they serve the writes until then), then the publisher (with
	// its grace period for outstanding PUBACKs), the InfluxDB writer and
	// the HTTP server.
	grp.Go(func() error {
		<-gctx.Done()
		g.ready.Store(false)
		g.closeSink()
		stopCore()
		<-coreDone
		close(g.actStop)
		bound := time.AfterFunc(g.actionStopGrace(), stopActs)
		actWG.Wait()
		bound.Stop()
		stopPolls()
		pollWG.Wait()
		stopComps()
		return nil
	})
	g.ready.Store(true)
	g.log.Info().Int("devices", g.devices).Msg("gateway running")
	err := grp.Wait()
	g.log.Info().Msg("gateway stopped")
	return err
}

// sink receives poll batches from the link goroutines. It blocks while
// the core is behind (back-pressure on the pollers, never a dropped batch)
// and gives up only when the gateway stops. Once the stop has begun
// (closeSink) it hands nothing to the core: the pollers run on only for
// the interlock writes pending at the stop.
func (g *Gateway) sink(b modbus.Batch) {
	p := g.runCtx.Load()
	if p == nil {
		return
	}
	g.sinkMu.RLock()
	defer g.sinkMu.RUnlock()
	if g.sinkClosed {
		return
	}
	select {
	case g.batches <- b:
	case <-(*p).Done():
	}
}

// closeSink makes sink hand no more polls to the core, once a hand-over
// under way is over.
func (g *Gateway) closeSink() {
	g.sinkMu.Lock()
	g.sinkClosed = true
	g.sinkMu.Unlock()
}

// actionStopGrace bounds how long the action runners may take, once the
// core has stopped, to finish the trips and releases pending then (the
// writes; a separate read-back point is not waited for): the action
// timeout, at least 2 s.
func (g *Gateway) actionStopGrace() time.Duration {
	return max(g.o.ActionTimeout, 2*time.Second)
}

// onDrop counts dropped readings; the outbox logs them (a line per period,
// not per commit).
func (g *Gateway) onDrop(d outbox.Drop) {
	g.met.dropped.Add(float64(d.Records))
	g.drops.Add(uint64(d.Records))
}
