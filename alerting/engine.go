package alerting

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/canary-gw/canary/internal/configerr"
)

type shelveMode uint8

const (
	notShelved shelveMode = iota
	timedShelve
	oneShotShelve
)

// alarm is one alarm condition instance and its ISA-18.2 state.
type alarm struct {
	id, site, device, sensor string
	cond                     Condition
	spec                     CondSpec
	point                    *point // nil for group and action alarms
	group                    *group // set on a group's trip alarm
	actions                  []*action
	// feeds: alarms of groups this alarm votes in (for first-out).
	memberOf []*group

	pending      bool
	pendingSince time.Time

	active, acked, latched bool
	since, updated         time.Time
	ackedAt                time.Time
	ackedBy, comment       string
	value, limit           float64

	shelve      shelveMode
	shelveUntil time.Time
	oos         bool
	oosUntil    time.Time
	suppressed  bool

	firstOut   bool
	chatter    []time.Time
	chattering bool
	stale      bool
}

func (a *alarm) baseState() State {
	switch {
	case (a.active || a.latched) && !a.acked:
		return Unacknowledged
	case a.active || a.latched:
		return Acknowledged
	case !a.acked:
		return ReturnedUnack
	}
	return Normal
}

func (a *alarm) state() State {
	switch {
	case a.oos:
		return OutOfService
	case a.shelve != notShelved:
		return Shelved
	case a.suppressed:
		return Normal
	}
	return a.baseState()
}

func (a *alarm) annunciated() bool { return !a.oos && a.shelve == notShelved && !a.suppressed }

func (a *alarm) shelvable() bool {
	return a.spec.Shelvable || (a.spec.Priority > 1 && len(a.actions) == 0)
}

// point is one sensor.
type point struct {
	id, site, device, sensor string
	path                     string // config path, for errors
	res                      Resolved
	limits                   []*alarm
	rate, dev, bad, comm     *alarm
	frozen, twa, stel        *alarm
	bypassed                 *alarm
	all                      []*alarm
	devWatchers              []*alarm // deviation alarms of other points comparing with this one
	devPeer                  *point
	groups                   []*group

	quality   Quality
	seen      bool // a sample has arrived since start
	overRange bool
	value     float64
	lastValid time.Time
	started   bool

	roc    rocWindow
	frzRef float64
	frzN   int
	exp    *exposure
}

// Engine is the alarm engine: pure and deterministic. It is not safe for
// concurrent use; the gateway owns it from one goroutine.
type Engine struct {
	// last is the latest time the engine was given; time never runs
	// backwards inside the engine (see monotonic).
	last    time.Time
	opts    Options
	points  map[string]*point
	plist   []*point
	alarms  map[string]*alarm
	alist   []*alarm
	groups  []*group
	actions map[string]*action
	aclist  []*action
	flags   map[string]bool
	bySupp  map[string][]*alarm
	sites   map[string]*siteState
	out     []Event
	dirty   []*group
	siteIDs []string // sorted, for a deterministic event order
}

type siteState struct {
	seq   uint64
	flood bool
	acts  []time.Time // annunciated activations, acts[head:] within the flood window
	head  int
}

// New builds an engine from cfg, resolving every point's preset and
// overrides. The returned error holds configerr field errors (paths like
// "points[2].alarms.high.limit", "groups[0].points[1]"); warnings alone do
// not stop the engine from being built (the engine is returned with the
// warnings as error: check configerr.HasErrors).
func New(cfg Config) (*Engine, error) {
	var errs configerr.List
	e := &Engine{
		opts:    cfg.Options.withDefaults(),
		points:  map[string]*point{},
		alarms:  map[string]*alarm{},
		actions: map[string]*action{},
		flags:   map[string]bool{},
		bySupp:  map[string][]*alarm{},
		sites:   map[string]*siteState{},
	}
	for i, ac := range cfg.Actions {
		path := fmt.Sprintf("actions[%d]", i)
		if ac.ID == "" {
			errs.Add(path+".id", "required")
			continue
		}
		if _, dup := e.actions[ac.ID]; dup {
			errs.Add(path+".id", "duplicate action %q", ac.ID)
			continue
		}
		if ac.ConfirmTimeout < 0 {
			errs.Add(path+".confirm_timeout", "must not be negative")
		}
		act := &action{cfg: ac}
		act.failed = e.addAlarm(ac.Site, ac.ID+"."+string(Failed), "", "", Failed,
			CondSpec{Condition: Failed, Priority: 1, Latch: true, ResetNeedsAck: true, Source: "SAFETY §5.2 feedback"}, nil)
		act.failed.limit = math.NaN()
		e.actions[ac.ID] = act
		e.aclist = append(e.aclist, act)
	}
	for i, pc := range cfg.Points {
		path := fmt.Sprintf("points[%d]", i)
		if pc.Path != "" {
			path = pc.Path
		}
		if pc.Device == "" || pc.Sensor == "" {
			errs.Add(path, "device and sensor are required")
			continue
		}
		id := pc.ID()
		if _, dup := e.points[id]; dup {
			errs.Add(path, "duplicate point %q", id)
			continue
		}
		res, err := Resolve(pc.Kind, pc.Profile, pc.Unit, pc.Poll, pc.Alarms)
		errs.Merge(path, err)
		if configerr.HasErrors(err) {
			continue
		}
		p := &point{id: id, path: path, site: pc.Site, device: pc.Device, sensor: pc.Sensor, res: res, quality: BadQuality, value: math.NaN()}
		var interlockActs []*action
		for _, s := range res.Conditions {
			a := e.addAlarm(pc.Site, id+"."+string(s.Condition), pc.Device, pc.Sensor, s.Condition, s, p)
			for _, an := range s.Actions {
				act, ok := e.actions[an]
				if !ok {
					errs.Add(path+".alarms."+string(s.Condition)+".action", "unknown action %q", an)
					continue
				}
				a.actions = append(a.actions, act)
				act.triggers = append(act.triggers, a)
				interlockActs = append(interlockActs, act)
			}
			switch s.Condition {
			case HighHigh, High, Low, LowLow:
				p.limits = append(p.limits, a)
			case Rate:
				p.rate = a
			case Deviation:
				p.dev = a
			case Bad:
				p.bad = a
			case Comm:
				p.comm = a
			case Frozen:
				p.frozen = a
			case TWA:
				p.twa = a
			case STEL:
				p.stel = a
			}
		}
		if p.twa != nil || p.stel != nil {
			p.exp = &exposure{}
		}
		// Fail-safe: a bad or lost safety-critical sensor trips every
		// interlock its alarms drive.
		if res.SafetyCritical {
			for _, fa := range []*alarm{p.bad, p.comm} {
				if fa == nil {
					continue
				}
				for _, act := range interlockActs {
					if !containsAction(fa.actions, act) {
						fa.actions = append(fa.actions, act)
						act.triggers = append(act.triggers, fa)
					}
				}
			}
		}
		e.points[id] = p
		e.plist = append(e.plist, p)
	}
	for _, p := range e.plist {
		if p.dev == nil {
			continue
		}
		peer, ok := e.points[p.dev.spec.With]
		if !ok || peer == p {
			errs.Add(p.path+".alarms.deviation.with", "unknown or same sensor %q (want another \"device.sensor\")", p.dev.spec.With)
			continue
		}
		p.devPeer = peer
		peer.devWatchers = append(peer.devWatchers, p.dev)
	}
	for i, gc := range cfg.Groups {
		e.addGroup(&errs, fmt.Sprintf("groups[%d]", i), gc)
	}
	// Points that feed an interlock get a standing "bypassed" alarm for
	// out-of-service inputs.
	for _, p := range e.plist {
		feeds := len(p.groups) > 0
		for _, a := range p.all {
			if len(a.actions) > 0 {
				feeds = true
			}
		}
		if feeds {
			p.bypassed = e.addAlarm(p.site, p.id+"."+string(Bypassed), p.device, p.sensor, Bypassed,
				CondSpec{Condition: Bypassed, Priority: 2, Source: "SAFETY table (b) out of service"}, p)
			p.bypassed.limit = math.NaN()
		}
	}
	for _, a := range e.alist {
		if a.spec.SuppressBy != "" {
			e.bySupp[a.spec.SuppressBy] = append(e.bySupp[a.spec.SuppressBy], a)
		}
	}
	if configerr.HasErrors(errs.Err()) {
		return nil, errs.Err()
	}
	return e, errs.Err()
}

func containsAction(l []*action, a *action) bool {
	for _, x := range l {
		if x == a {
			return true
		}
	}
	return false
}

func (e *Engine) addAlarm(site, id, device, sensor string, c Condition, s CondSpec, p *point) *alarm {
	a := &alarm{id: id, site: site, device: device, sensor: sensor, cond: c, spec: s, point: p,
		acked: true, value: math.NaN(), limit: s.Limit}
	switch c {
	case Bad, Frozen:
		a.limit = math.NaN()
	case Comm:
		a.limit = s.Timeout.Seconds()
	}
	if _, ok := e.sites[site]; !ok {
		e.sites[site] = &siteState{}
		i := sort.SearchStrings(e.siteIDs, site)
		e.siteIDs = append(e.siteIDs, "")
		copy(e.siteIDs[i+1:], e.siteIDs[i:])
		e.siteIDs[i] = site
	}
	e.alarms[id] = a
	e.alist = append(e.alist, a)
	if p != nil {
		p.all = append(p.all, a)
	}
	return a
}

// emit appends an event with the next sequence number of the alarm's site.
func (e *Engine) emit(site string, ev Event) {
	st := e.sites[site]
	if st == nil {
		st = &siteState{}
		e.sites[site] = st
	}
	st.seq++
	ev.Seq = st.seq
	ev.Site = site
	e.out = append(e.out, ev)
}

func (e *Engine) alarmEvent(a *alarm, now time.Time, t EventType, from State, user, comment string) {
	e.emit(a.site, Event{TS: now, Type: t, Alarm: a.id, From: from, To: a.state(), Active: a.active,
		Value: a.value, Limit: a.limit, User: user, Comment: comment})
}

func (e *Engine) take() []Event {
	out := e.out
	e.out = nil
	return out
}

// setCond drives an alarm's condition through its on/off delay. cond is
// the condition including hysteresis (deadband / restore on the return).
func (e *Engine) setCond(a *alarm, now time.Time, cond bool) {
	if cond == a.active {
		a.pending = false
		return
	}
	delay := a.spec.OffDelay
	if cond {
		delay = a.spec.OnDelay
	}
	if delay > 0 {
		if !a.pending {
			a.pending, a.pendingSince = true, now
		}
		if now.Sub(a.pendingSince) < delay {
			return
		}
	}
	a.pending = false
	if cond {
		e.activate(a, now)
	} else {
		e.deactivate(a, now)
	}
}

// hold freezes an alarm's condition (its input is not usable): pending
// delays restart from the next usable sample.
func (a *alarm) hold() { a.pending = false }

func (e *Engine) activate(a *alarm, now time.Time) {
	from := a.state()
	a.active, a.latched, a.acked = true, false, false
	a.since, a.updated = now, now
	a.ackedBy, a.comment, a.ackedAt = "", "", time.Time{}
	a.stale = false
	e.alarmEvent(a, now, EvActivate, from, "", "")
	// chattering: N activations within the window
	w := e.opts.ChatterWindow
	keep := a.chatter[:0]
	for _, t := range a.chatter {
		if now.Sub(t) < w {
			keep = append(keep, t)
		}
	}
	a.chatter = append(keep, now)
	if !a.chattering && len(a.chatter) >= e.opts.ChatterCount {
		a.chattering = true
		e.alarmEvent(a, now, EvChattering, a.state(), "", strconv.Itoa(len(a.chatter))+" activations within "+w.String())
	}
	if a.annunciated() {
		e.countFlood(a.site, now)
	}
	for _, g := range a.memberOf {
		e.markFirstOut(g, a, now)
	}
	e.updateActions(a, now)
}

func (e *Engine) deactivate(a *alarm, now time.Time) {
	from := a.state()
	a.active = false
	a.latched = a.spec.Latch
	a.updated = now
	if d := now.Sub(a.since); d < e.opts.FleetingBelow {
		e.alarmEvent(a, now, EvFleeting, from, "", "active for "+d.String())
	}
	e.alarmEvent(a, now, EvReturn, from, "", "")
	if a.shelve == oneShotShelve {
		from := a.state()
		a.shelve = notShelved
		e.alarmEvent(a, now, EvUnshelve, from, "", "one-shot shelve ended: alarm returned")
	}
	e.afterNormal(a, now)
	e.updateActions(a, now)
}

// afterNormal runs when an alarm may have reached normal.
func (e *Engine) afterNormal(a *alarm, now time.Time) {
	if a.group != nil && a.baseState() == Normal {
		e.clearFirstOut(a.group, now)
	}
}

// Observe evaluates one sample taken at now (the edge timestamp). It
// returns the resulting events in order; an unknown point is an error.
func (e *Engine) Observe(now time.Time, s Sample) ([]Event, error) {
	now = e.monotonic(now)
	p, ok := e.points[s.Point]
	if !ok {
		return nil, fmt.Errorf("observe %q: %w", s.Point, ErrUnknownPoint)
	}
	e.observe(p, now, s)
	e.flushGroups(now)
	return e.take(), nil
}

// Step evaluates a batch of samples taken at now (one poll); unknown
// points are skipped and reported in the error after all others ran.
func (e *Engine) Step(now time.Time, samples []Sample) ([]Event, error) {
	now = e.monotonic(now)
	var unknown []string
	for _, s := range samples {
		p, ok := e.points[s.Point]
		if !ok {
			unknown = append(unknown, s.Point)
			continue
		}
		e.observe(p, now, s)
	}
	e.flushGroups(now)
	out := e.take()
	if len(unknown) > 0 {
		return out, fmt.Errorf("step: %w: %s", ErrUnknownPoint, strings.Join(unknown, ", "))
	}
	return out, nil
}

func (e *Engine) observe(p *point, now time.Time, s Sample) {
	if !p.started {
		p.started, p.lastValid = true, now
	}
	v := s.Value
	q := s.Quality
	over := false
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		q = BadQuality
	case p.res.NE43:
		switch {
		case v <= 3.6 || v >= 21.0:
			q = BadQuality
		case v < 3.8 || v > 20.5:
			if q == Good {
				q = Uncertain
			}
			over = v > 20.5
		}
	case p.res.Max > p.res.Min && q == Good:
		// Zero drift of a few percent of span below the range is normal.
		// Further below is a reading no gas can give (negative oxygen, a
		// transmitter driven below its zero): a sensor fault, as NAMUR
		// NE 43's fault-low band is for a raw loop, so it is bad and
		// raises the sensor's bad alarm instead of holding its limits in
		// silence. Above the range the sensor is saturated but readable.
		if v > p.res.Max {
			q, over = Uncertain, true
		} else if v < p.res.Min-0.02*(p.res.Max-p.res.Min) {
			q = BadQuality
		}
	}
	p.quality, p.overRange, p.value, p.seen = q, over, v, true
	// Communication is judged on the quality the gateway delivered: a value
	// that was read but is in a NE 43 fault band is a sensor fault (the
	// bad alarm), not a communication loss.
	if s.Quality != BadQuality {
		p.lastValid = now
		if p.comm != nil {
			p.comm.value = 0
			e.setCond(p.comm, now, false)
		}
	}
	if p.bad != nil {
		p.bad.value = v
		e.setCond(p.bad, now, q == BadQuality)
	}
	for _, a := range p.limits {
		usable := q == Good || (over && a.cond.isHighSide())
		if !usable {
			a.hold()
			continue
		}
		a.value = v
		e.setCond(a, now, limitCond(a, v))
	}
	if p.rate != nil {
		if q == Good {
			e.evalRate(p, now, v)
		} else {
			p.rate.hold()
		}
	}
	if p.dev != nil {
		e.evalDeviation(p.dev, p, p.devPeer, now)
	}
	for _, a := range p.devWatchers {
		e.evalDeviation(a, a.point, p, now)
	}
	if p.frozen != nil {
		e.evalFrozen(p, now, v, q)
	}
	if p.exp != nil {
		e.closeMinute(p, now)
		if q == Good {
			p.exp.add(now, v)
		}
	}
	for _, g := range p.groups {
		if !g.dirty {
			g.dirty = true
			e.dirty = append(e.dirty, g)
		}
	}
}

// flushGroups evaluates the voting groups whose inputs changed, once per
// batch so that a poll's samples vote together.
func (e *Engine) flushGroups(now time.Time) {
	for _, g := range e.dirty {
		g.dirty = false
		e.evalGroup(g, now)
	}
	e.dirty = e.dirty[:0]
}

// limitCond is a limit condition with the deadband (or restore level)
// applied to the return only.
func limitCond(a *alarm, v float64) bool {
	s := &a.spec
	if a.cond.isHighSide() {
		if !a.active {
			return v >= s.Limit
		}
		if s.HasRestore {
			return !(v < s.Restore)
		}
		return !(v < s.Limit-s.Deadband)
	}
	if !a.active {
		return v <= s.Limit
	}
	if s.HasRestore {
		return !(v > s.Restore)
	}
	return !(v > s.Limit+s.Deadband)
}

// highCond is a generic "value >= limit" with deadband on the return.
func highCond(a *alarm, v float64) bool {
	if !a.active {
		return v >= a.spec.Limit
	}
	return !(v < a.spec.Limit-a.spec.Deadband)
}

func (e *Engine) evalDeviation(a *alarm, p, peer *point, now time.Time) {
	if peer == nil || p.quality != Good || peer.quality != Good {
		a.hold()
		return
	}
	d := math.Abs(p.value - peer.value)
	a.value = d
	e.setCond(a, now, highCond(a, d))
}

func (e *Engine) evalFrozen(p *point, now time.Time, v float64, q Quality) {
	a := p.frozen
	if q != Good {
		a.hold()
		return
	}
	switch {
	case math.Abs(v) <= a.spec.ZeroBand:
		p.frzN = 0
	case p.frzN == 0 || math.Abs(v-p.frzRef) > a.spec.Limit:
		p.frzRef, p.frzN = v, 1
	default:
		p.frzN++
	}
	a.value = float64(p.frzN)
	e.setCond(a, now, p.frzN >= a.spec.Samples)
}

// Tick runs the time-driven transitions at now: communication loss,
// expiring on/off delays, shelve and out-of-service expiry, re-alarm,
// stale and chattering flags, flood end, action confirmation timeouts and
// closing of TWA/STEL minute averages. Call it at least once per second.
func (e *Engine) Tick(now time.Time) []Event {
	now = e.monotonic(now)
	for _, p := range e.plist {
		if !p.started {
			p.started, p.lastValid = true, now
		}
		if p.comm != nil {
			age := now.Sub(p.lastValid)
			p.comm.value = age.Seconds()
			if age >= p.comm.spec.Timeout {
				e.setCond(p.comm, now, true)
			}
		}
		if p.exp != nil {
			e.closeMinute(p, now)
		}
	}
	for _, a := range e.alist {
		if a.pending {
			e.setCond(a, now, !a.active)
		}
		if a.shelve == timedShelve && !now.Before(a.shelveUntil) {
			e.unshelve(a, now, "", "shelve expired")
		}
		if a.oos && !a.oosUntil.IsZero() && !now.Before(a.oosUntil) {
			e.returnToService(a, now, "", "out-of-service period expired")
		}
		if a.active && a.acked && a.spec.ReAlarm > 0 && now.Sub(a.ackedAt) >= a.spec.ReAlarm {
			from := a.state()
			a.acked, a.ackedAt, a.updated = false, time.Time{}, now
			e.alarmEvent(a, now, EvReAlarm, from, "", "active and acknowledged for "+a.spec.ReAlarm.String())
		}
		if a.active && !a.stale && now.Sub(a.since) > e.opts.StaleAfter {
			a.stale = true
			e.alarmEvent(a, now, EvStale, a.state(), "", "active for more than "+e.opts.StaleAfter.String())
		}
		if a.chattering && len(a.chatter) > 0 && now.Sub(a.chatter[len(a.chatter)-1]) >= e.opts.ChatterWindow {
			a.chattering = false
			a.chatter = a.chatter[:0]
			e.alarmEvent(a, now, EvChatteringEnd, a.state(), "", "")
		}
	}
	for _, site := range e.siteIDs {
		st := e.sites[site]
		if st.flood {
			e.pruneFlood(st, now)
			if n := len(st.acts) - st.head; n < e.opts.FloodEnd {
				st.flood = false
				e.emit(site, Event{TS: now, Type: EvFloodEnd, Value: float64(n), Limit: float64(e.opts.FloodEnd)})
			}
		}
	}
	for _, g := range e.groups {
		e.evalGroup(g, now)
	}
	for _, act := range e.aclist {
		if act.awaiting && !now.Before(act.deadline) {
			act.awaiting = false
			act.failed.value = 0
			e.setCond(act.failed, now, true)
		}
	}
	return e.take()
}

// pruneFlood drops activations older than the flood window; the slice is
// compacted only when half of it is dead, so a flood costs O(1) per alarm.
func (e *Engine) pruneFlood(st *siteState, now time.Time) {
	for st.head < len(st.acts) && now.Sub(st.acts[st.head]) >= e.opts.FloodWindow {
		st.head++
	}
	if st.head > 64 && st.head*2 > len(st.acts) {
		st.acts = append(st.acts[:0], st.acts[st.head:]...)
		st.head = 0
	}
}

func (e *Engine) countFlood(site string, now time.Time) {
	st := e.sites[site]
	e.pruneFlood(st, now)
	st.acts = append(st.acts, now)
	if n := len(st.acts) - st.head; !st.flood && n > e.opts.FloodStart {
		st.flood = true
		e.emit(site, Event{TS: now, Type: EvFloodStart, Value: float64(n), Limit: float64(e.opts.FloodStart),
			Comment: fmt.Sprintf("more than %d alarms within %s", e.opts.FloodStart, e.opts.FloodWindow)})
	}
}

// Flood reports whether site is in an alarm flood.
func (e *Engine) Flood(site string) bool {
	st := e.sites[site]
	return st != nil && st.flood
}

// SetFlag sets a suppression flag (see LimitConfig.SuppressBy): while it
// is true the alarms naming it are suppressed by design. When suppression
// ends with the condition present the alarm annunciates as new, with the
// time of the suppression end.
func (e *Engine) SetFlag(now time.Time, name string, v bool) []Event {
	now = e.monotonic(now)
	if e.flags[name] == v {
		return nil
	}
	e.flags[name] = v
	for _, a := range e.bySupp[name] {
		from := a.state()
		a.suppressed = v
		a.updated = now
		if v {
			e.alarmEvent(a, now, EvSuppress, from, "", "suppressed by design: "+name)
			continue
		}
		if a.active {
			a.since, a.acked, a.ackedBy, a.comment = now, false, "", ""
			if a.annunciated() {
				e.countFlood(a.site, now)
			}
		}
		e.alarmEvent(a, now, EvUnsuppress, from, "", "suppression ended: "+name)
	}
	return e.take()
}

// Alarm returns the state of one alarm.
func (e *Engine) Alarm(id string) (AlarmState, bool) {
	a, ok := e.alarms[id]
	if !ok {
		return AlarmState{}, false
	}
	return a.snapshotState(), true
}

// Alarms returns the state of every configured alarm, in config order.
func (e *Engine) Alarms() []AlarmState {
	out := make([]AlarmState, len(e.alist))
	for i, a := range e.alist {
		out[i] = a.snapshotState()
	}
	return out
}

func (a *alarm) snapshotState() AlarmState {
	s := AlarmState{ID: a.id, Site: a.site, Device: a.device, Sensor: a.sensor, Condition: a.cond,
		Priority: a.spec.Priority, State: a.state(), Active: a.active, Latched: a.latched,
		Value: a.value, Limit: a.limit, Since: a.since, Updated: a.updated, AckedBy: a.ackedBy,
		Comment: a.comment, Acked: a.acked, OneShot: a.shelve == oneShotShelve, Suppressed: a.suppressed,
		FirstOut: a.firstOut, Chattering: a.chattering, Stale: a.stale, Quality: Good}
	if a.shelve == timedShelve {
		s.ShelvedUntil = a.shelveUntil
	}
	if a.point != nil {
		s.Quality = a.point.quality
	}
	return s
}

// Point returns the engine's view of a point: last value, quality
// (after NE43 / range classification) and whether it is over range.
func (e *Engine) Point(id string) (value float64, q Quality, ok bool) {
	p, ok := e.points[id]
	if !ok {
		return math.NaN(), BadQuality, false
	}
	return p.value, p.quality, true
}

// PointSpec returns the compiled configuration of a point.
func (e *Engine) PointSpec(id string) (Resolved, bool) {
	p, ok := e.points[id]
	if !ok {
		return Resolved{}, false
	}
	return p.res, true
}

// monotonic clamps now to the latest time seen. Callers pass times from
// different sources (a poll's response arrival, a ticker, an operator
// command), which may interleave slightly out of order; inside the engine
// time must never run backwards, or durations (delays, fleeting, stale)
// would come out negative.
func (e *Engine) monotonic(now time.Time) time.Time {
	if now.Before(e.last) {
		return e.last
	}
	e.last = now
	return now
}
