package alerting

import (
	"fmt"
	"math"
	"reflect"
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

// origin is where an alarm comes from; a point's alarms share the point's.
type origin struct {
	site, device, sensor string
}

// alarmLinks are an alarm's ties to voting groups and interlock actions;
// most alarms have none, so they live behind a pointer.
type alarmLinks struct {
	group   *group // set on a group's trip alarm
	actions []*action
	// memberOf: groups this alarm votes in (for first-out).
	memberOf []*group
}

// alarmExt is the state an alarm has only once it has been pending,
// active or commanded: a never-raised alarm (nearly all of them) carries
// none of it.
type alarmExt struct {
	// unseen: the alarm's last activation came while it was suppressed
	// by design (setFlag decides what is left to acknowledge when the
	// suppression ends).
	unseen                  bool
	pendingSince            time.Time
	since, updated, ackedAt time.Time
	shelveUntil, oosUntil   time.Time
	ackedBy, comment        string
	chatter                 recent // the latest ChatterCount activations
}

// alarm is one alarm condition instance and its ISA-18.2 state.
type alarm struct {
	id    string
	spec  *CondSpec // shared: a point's resolved preset, or the engine's
	org   *origin
	point *point // nil for group and action alarms
	links *alarmLinks
	x     *alarmExt

	value, limit float64
	idx          int32 // in Engine.alist

	pending                bool
	active, acked, latched bool
	shelve                 shelveMode
	oos                    bool
	suppressed             bool
	firstOut               bool
	chattering             bool
	stale                  bool
	batched                bool // queued in the current Tick's alarm pass
	// held: a point's comm or bad alarm the fault hold keeps active
	// (SetFaultHold) after its return fell due. Interlocks, groups and
	// reset see it as returned: the hold changes what the alarm shows,
	// not what it drives. inHeldList: it is in Engine.heldList (once,
	// however often held).
	held, inHeldList bool
	// heldNoted: in Engine.heldChanged. heldShown: held, as the last
	// HeldChanged gave it.
	heldNoted, heldShown bool
}

func (a *alarm) ext() *alarmExt {
	if a.x == nil {
		a.x = &alarmExt{}
	}
	return a.x
}

func (a *alarm) since() time.Time {
	if a.x == nil {
		return time.Time{}
	}
	return a.x.since
}

func (a *alarm) updated() time.Time {
	if a.x == nil {
		return time.Time{}
	}
	return a.x.updated
}

func (a *alarm) ackedAt() time.Time {
	if a.x == nil {
		return time.Time{}
	}
	return a.x.ackedAt
}

func (a *alarm) shelveUntil() time.Time {
	if a.x == nil {
		return time.Time{}
	}
	return a.x.shelveUntil
}

func (a *alarm) oosUntil() time.Time {
	if a.x == nil {
		return time.Time{}
	}
	return a.x.oosUntil
}

func (a *alarm) ackedBy() string {
	if a.x == nil {
		return ""
	}
	return a.x.ackedBy
}

func (a *alarm) comment() string {
	if a.x == nil {
		return ""
	}
	return a.x.comment
}

func (a *alarm) actions() []*action {
	if a.links == nil {
		return nil
	}
	return a.links.actions
}

func (a *alarm) memberOf() []*group {
	if a.links == nil {
		return nil
	}
	return a.links.memberOf
}

func (a *alarm) group() *group {
	if a.links == nil {
		return nil
	}
	return a.links.group
}

func (a *alarm) link() *alarmLinks {
	if a.links == nil {
		a.links = &alarmLinks{}
	}
	return a.links
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
	return !a.standing() && (a.spec.Shelvable || (a.spec.Priority > 1 && len(a.actions()) == 0))
}

// standing reports whether a is a bypassed or degraded alarm: it stands
// while an interlock input is bypassed or a voting group degraded, and
// is never hidden (not shelvable, not out of service).
func (a *alarm) standing() bool {
	c := a.spec.Condition
	return c == Bypassed || c == Degraded
}

// feedsInterlock reports whether a is part of an interlock: it drives
// an action, votes in a group, or belongs to a point that does (the
// point has a bypassed alarm). Its out of service is a bypass of the
// interlock: time-limited (SAFETY §5.3).
func (a *alarm) feedsInterlock() bool {
	return len(a.actions()) > 0 || len(a.memberOf()) > 0 || a.group() != nil ||
		(a.point != nil && a.point.bypassed != nil)
}

// point is one sensor.
type point struct {
	origin
	id  string
	res *Resolved // shared by every point with the same compiled config
	// all holds the point's alarms in condition order, then "bypassed";
	// all[:nLimits] are its limit alarms (high_high, high, low, low_low).
	all                 []*alarm
	nLimits             uint8
	bad, comm, bypassed *alarm
	x                   *pointExt

	quality   Quality
	seen      bool // a sample has arrived since start
	overRange bool
	// uncertainSince is the first sample of the current spell of uncertain
	// readings that are not over range; zero outside one (observe).
	uncertainSince time.Time
	started        bool
	value          float64
	lastValid      time.Time
	// commStamp is Engine.ticks when comm.value was last set by a sample
	// or a restore; after a later Tick the comm alarm's value is the age
	// of lastValid at that Tick (see Engine.valueOf).
	commStamp uint64

	idx    int32 // in Engine.plist
	cfgIdx int32 // in Config.Points, for error paths
	// The point's place in its comm-timeout watch list (see tick.go).
	prev, next int32
	commList   int32
	listed     bool
}

// pointExt holds what only some kinds of point need.
type pointExt struct {
	rate, dev, frozen, twa, stel *alarm
	devWatchers                  []*alarm // deviation alarms of other points comparing with this one
	devPeer                      *point
	groups                       []*group

	roc    rocWindow
	frzRef float64
	frzN   int
	exp    *exposure
	// flags are the suppression flags this point's readings set
	// (pointFlag): alarms whose suppress_by names the point.
	flags []pointFlag
}

// pointFlag is a suppression flag set by a point's readings: suppress_by
// "device.sensor" is set while the sensor reads non-zero (a contact
// closed, a bit set), "not device.sensor" while it reads zero; either only
// while the reading is good and current. A sensor in doubt (bad, uncertain,
// not read within its comm timeout) sets no flag: the alarms annunciate,
// the safe side.
type pointFlag struct {
	key string // the suppress_by text, the flag's name
	not bool
}

// notPrefix makes suppress_by's flag the sensor reading zero.
const notPrefix = "not "

func (p *point) limits() []*alarm { return p.all[:p.nLimits] }

func (p *point) ext() *pointExt {
	if p.x == nil {
		p.x = &pointExt{}
	}
	return p.x
}

func (p *point) groups() []*group {
	if p.x == nil {
		return nil
	}
	return p.x.groups
}

// Engine is the alarm engine: pure and deterministic. It is not safe for
// concurrent use; the gateway owns it from one goroutine.
type Engine struct {
	// last is the latest time the engine was given; time never runs
	// backwards inside the engine (see monotonic).
	last time.Time
	// shortened lists the alarms whose restored shelve was cut to
	// MaxShelve from the restore (ShortenedShelves).
	shortened []string

	// behind is set by a Restore whose wall clock was behind the
	// snapshot's saved_at (restoredclock.go).
	behind  *behindClock
	opts    Options
	points  map[string]*point
	plist   []*point
	extra   map[string]*alarm // alarms of groups, actions and systems, by id
	systems []*alarm          // Config.Systems
	alist   []*alarm
	groups  []*group
	actions map[string]*action
	aclist  []*action
	flags   map[string]bool
	bySupp  map[string][]*alarm
	// nFlagPoints counts the points whose readings set flags (Step
	// observes them first).
	nFlagPoints int
	// inStep defers the clearing of point flags to the end of Step
	// (clears): a suppression starts before the batch's other samples
	// and ends after them.
	inStep bool
	clears []string
	sites  map[string]*siteState
	out    []Event
	dirty  []*group
	// actDirty: the actions whose triggers changed during the current
	// call, decided at its end (flushActions).
	actDirty []*action
	siteIDs  []string // sorted, for a deterministic event order

	// faultHeld: active comm and bad alarms do not return
	// (SetFaultHold). heldList holds those kept active, in the order
	// they were held, from heldHead on, for ReleaseHeld; nHeld counts
	// those still held.
	faultHeld bool
	heldList  []*alarm
	heldHead  int
	nHeld     int
	// heldChanged lists, once each, the alarms whose held changed since
	// the last HeldChanged.
	heldChanged []*alarm
	// unsaved: a change without an event (keepHeld, lostAgain) that
	// the snapshot should have (Unsaved).
	unsaved bool

	// Shared specs of the alarms the engine derives.
	failedSpec, bypassedSpec, degradedSpec *CondSpec

	timers
}

type siteState struct {
	seq   uint64
	flood bool
	acts  recent // the latest annunciated activations (floodKeep of them)
}

// resolvedKey groups the resolved configs New can share between points.
type resolvedKey struct{ kind, profile, unit string }

// maxShared bounds how many distinct resolved configs of one kind,
// profile and unit New compares a new one with (each comparison is a
// reflect.DeepEqual), so a config of all-different sensors stays linear.
const maxShared = 8

// New builds an engine from cfg, resolving every point's preset and
// overrides. The returned error holds configerr field errors (paths like
// "points[2].alarms.high.limit", "groups[0].points[1]"); warnings alone do
// not stop the engine from being built (the engine is returned with the
// warnings as error: check configerr.HasErrors).
func New(cfg Config) (*Engine, error) {
	var errs configerr.List
	e := &Engine{
		opts:    cfg.Options.withDefaults(),
		points:  make(map[string]*point, len(cfg.Points)),
		extra:   map[string]*alarm{},
		actions: map[string]*action{},
		flags:   map[string]bool{},
		bySupp:  map[string][]*alarm{},
		sites:   map[string]*siteState{},
		plist:   make([]*point, 0, len(cfg.Points)),
		failedSpec: &CondSpec{Condition: Failed, Priority: 1, Latch: true, ResetNeedsAck: true,
			CommentRequired: true, Source: "SAFETY §5.2 feedback"},
		bypassedSpec: &CondSpec{Condition: Bypassed, Priority: 2, Source: "SAFETY table (b) out of service"},
		degradedSpec: &CondSpec{Condition: Degraded, Priority: 2, ResetNeedsAck: true, Source: "SAFETY table (b) MooN voting"},
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
		act.failed = e.addAlarm(ac.ID+"."+string(Failed), &origin{site: ac.Site}, e.failedSpec, nil)
		act.failed.limit = math.NaN()
		e.actions[ac.ID] = act
		e.aclist = append(e.aclist, act)
	}
	for i, sc := range cfg.Systems {
		path := fmt.Sprintf("systems[%d]", i)
		if _, dup := e.extra[sc.ID]; dup || sc.ID == "" {
			errs.Add(path+".id", "empty or duplicate alarm id %q", sc.ID)
			continue
		}
		// A priority-1 alarm's acknowledgement needs a comment, as for
		// every other priority-1 alarm.
		spec := &CondSpec{Condition: sc.Condition, Priority: sc.Priority, CommentRequired: sc.Priority == 1, Source: sc.Source}
		a := e.addAlarm(sc.ID, &origin{site: sc.Site}, spec, nil)
		a.limit = math.NaN()
		e.systems = append(e.systems, a)
	}
	shared := map[resolvedKey][]*Resolved{}
	var scratch [len(sensorConditions)]CondSpec
	cand := new(Resolved) // compared with the shared ones without a copy per point
	var interlockActs []*action
	for i, pc := range cfg.Points {
		if pc.Device == "" || pc.Sensor == "" {
			errs.Add(pointPath(cfg, i), "device and sensor are required")
			continue
		}
		id := pc.ID()
		if _, dup := e.points[id]; dup {
			errs.Add(pointPath(cfg, i), "duplicate point %q", id)
			continue
		}
		res, n, err := resolve(&scratch, pc.Kind, pc.Profile, pc.Unit, pc.Poll, pc.Alarms)
		if err != nil {
			errs.Merge(pointPath(cfg, i), err)
			if configerr.HasErrors(err) {
				continue
			}
		}
		*cand = res
		if n > 0 {
			cand.Conditions = scratch[:n:n]
		}
		rp := shareResolved(shared, cand)
		p := &point{origin: origin{site: pc.Site, device: pc.Device, sensor: pc.Sensor}, id: id, res: rp,
			quality: BadQuality, value: math.NaN(), idx: int32(len(e.plist)), cfgIdx: int32(i), prev: -1, next: -1, commList: -1}
		p.all = make([]*alarm, 0, len(rp.Conditions)+1)
		ids := conditionIDs(id, rp.Conditions)
		interlockActs = interlockActs[:0]
		for k := range rp.Conditions {
			s := &rp.Conditions[k]
			a := e.addAlarm(ids[k], &p.origin, s, p)
			for _, an := range s.Actions {
				act, ok := e.actions[an]
				if !ok {
					errs.Add(pointPath(cfg, i)+".alarms."+string(s.Condition)+".action", "unknown action %q", an)
					continue
				}
				l := a.link()
				l.actions = append(l.actions, act)
				act.triggers = append(act.triggers, a)
				interlockActs = append(interlockActs, act)
			}
			switch s.Condition {
			case HighHigh, High, Low, LowLow:
				p.nLimits++
			case Rate:
				p.ext().rate = a
			case Deviation:
				p.ext().dev = a
			case Bad:
				p.bad = a
			case Comm:
				p.comm = a
			case Frozen:
				p.ext().frozen = a
			case TWA:
				p.ext().twa = a
			case STEL:
				p.ext().stel = a
			}
		}
		if x := p.x; x != nil && (x.twa != nil || x.stel != nil) {
			x.exp = &exposure{}
		}
		// Fail-safe: a bad or lost safety-critical sensor trips every
		// interlock its alarms drive.
		if rp.SafetyCritical {
			for _, fa := range []*alarm{p.bad, p.comm} {
				if fa == nil {
					continue
				}
				for _, act := range interlockActs {
					if !containsAction(fa.actions(), act) {
						l := fa.link()
						l.actions = append(l.actions, act)
						act.triggers = append(act.triggers, fa)
					}
				}
			}
		}
		e.points[id] = p
		e.plist = append(e.plist, p)
	}
	for _, p := range e.plist {
		if p.x == nil || p.x.dev == nil {
			continue
		}
		dev := p.x.dev
		peer, ok := e.points[dev.spec.With]
		if !ok || peer == p {
			errs.Add(pointPath(cfg, int(p.cfgIdx))+".alarms.deviation.with", "unknown or same sensor %q (want another \"device.sensor\")", dev.spec.With)
			continue
		}
		p.x.devPeer = peer
		peer.ext().devWatchers = append(peer.ext().devWatchers, dev)
	}
	for i, gc := range cfg.Groups {
		e.addGroup(&errs, fmt.Sprintf("groups[%d]", i), gc)
	}
	// Points that feed an interlock get a standing "bypassed" alarm for
	// out-of-service inputs.
	for _, p := range e.plist {
		feeds := len(p.groups()) > 0
		for _, a := range p.all {
			if len(a.actions()) > 0 {
				feeds = true
			}
		}
		if feeds {
			p.bypassed = e.addAlarm(p.id+"."+string(Bypassed), &p.origin, e.bypassedSpec, p)
			p.bypassed.limit = math.NaN()
		}
	}
	for _, a := range e.alist {
		s := a.spec.SuppressBy
		if s == "" {
			continue
		}
		name, not := strings.CutPrefix(s, notPrefix)
		p, isPoint := e.points[name]
		switch {
		case isPoint && p == a.point:
			errs.Add(suppressPath(cfg, a), "%q is the alarm's own sensor: the alarm would be hidden whenever it is active", s)
			continue
		case !isPoint && cfg.PointFlagsOnly:
			errs.Add(suppressPath(cfg, a), "%q is not a sensor of the site (want \"device.sensor\", suppressed while it reads non-zero, or \"not device.sensor\", while it reads zero)", s)
			continue
		case isPoint && cfg.PointFlagsOnly && !cfg.Points[p.cfgIdx].Discrete:
			errs.Add(suppressPath(cfg, a), "%q is not a discrete sensor (type bool): an analog value is non-zero nearly always and would hide the alarm for good", name)
			continue
		case isPoint && p.comm == nil:
			errs.Add(suppressPath(cfg, a), "%q has no comm alarm: a contact no longer read would go on suppressing (enable its comm alarm)", name)
			continue
		case (a.spec.Priority == 1 || len(a.actions()) > 0) && !a.spec.Shelvable:
			// As shelving: a priority-1 or interlock alarm is hidden
			// only where the config says it may be.
			errs.Add(suppressPath(cfg, a), "a priority-1 or interlock alarm is suppressed by design only with shelvable: true")
			continue
		}
		if _, had := e.bySupp[s]; !had && isPoint {
			if len(p.ext().flags) == 0 {
				e.nFlagPoints++
			}
			p.x.flags = append(p.x.flags, pointFlag{key: s, not: not})
		}
		e.bySupp[s] = append(e.bySupp[s], a)
	}
	if configerr.HasErrors(errs.Err()) {
		return nil, errs.Err()
	}
	e.shareLinks()
	e.timers.init(len(e.alist), len(e.plist))
	return e, errs.Err()
}

// shareLinks lets alarms that only drive the same interlock actions (the
// limits and fault alarms of every sensor feeding one shutdown) share one
// alarmLinks: links never change once New is done.
func (e *Engine) shareLinks() {
	byActions := map[string]*alarmLinks{}
	var key []byte
	for _, a := range e.alist {
		l := a.links
		if l == nil || l.group != nil || len(l.memberOf) > 0 {
			continue
		}
		key = key[:0]
		for _, act := range l.actions {
			key = append(key, act.cfg.ID...)
			key = append(key, 0)
		}
		if s, ok := byActions[string(key)]; ok {
			a.links = s
			continue
		}
		byActions[string(key)] = l
	}
}

// pointPath is the config path of cfg.Points[i], the prefix of its errors.
// suppressPath is where an alarm's suppress_by is configured.
func suppressPath(cfg Config, a *alarm) string {
	if a.point != nil {
		return pointPath(cfg, int(a.point.cfgIdx)) + ".alarms." + string(a.spec.Condition) + ".suppress_by"
	}
	return a.id + ".suppress_by"
}

func pointPath(cfg Config, i int) string {
	if p := cfg.Points[i].Path; p != "" {
		return p
	}
	return fmt.Sprintf("points[%d]", i)
}

// shareResolved returns an equal resolved config already held by the
// engine, or a copy of res (whose conditions are scratch space) that
// later points can share. Points of one preset with the same overrides
// thus share one Resolved: per-point memory stays small. The comparison
// is reflect.DeepEqual so that a field added to CondSpec can never make
// two different configs look equal.
func shareResolved(shared map[resolvedKey][]*Resolved, res *Resolved) *Resolved {
	k := resolvedKey{res.Kind, res.Profile, res.Unit}
	cands := shared[k]
	for _, c := range cands {
		if reflect.DeepEqual(c, res) {
			return c
		}
	}
	r := *res
	r.Conditions = append([]CondSpec(nil), res.Conditions...)
	if len(cands) < maxShared {
		shared[k] = append(cands, &r)
	}
	return &r
}

// conditionIDs builds the alarm ids "<point>.<condition>" of a point from
// one allocation.
func conditionIDs(pointID string, conds []CondSpec) []string {
	n := 0
	for i := range conds {
		n += len(pointID) + 1 + len(conds[i].Condition)
	}
	var b strings.Builder
	b.Grow(n)
	for i := range conds {
		b.WriteString(pointID)
		b.WriteByte('.')
		b.WriteString(string(conds[i].Condition))
	}
	all := b.String()
	ids := make([]string, len(conds))
	off := 0
	for i := range conds {
		l := len(pointID) + 1 + len(conds[i].Condition)
		ids[i] = all[off : off+l]
		off += l
	}
	return ids
}

func containsAction(l []*action, a *action) bool {
	for _, x := range l {
		if x == a {
			return true
		}
	}
	return false
}

func (e *Engine) addAlarm(id string, org *origin, s *CondSpec, p *point) *alarm {
	a := &alarm{id: id, org: org, spec: s, point: p, acked: true, value: math.NaN(), limit: s.Limit,
		idx: int32(len(e.alist))}
	switch s.Condition {
	case Bad, Frozen:
		a.limit = math.NaN()
	case Comm:
		a.limit = s.Timeout.Seconds()
	}
	site := org.site
	if _, ok := e.sites[site]; !ok {
		e.sites[site] = &siteState{}
		i := sort.SearchStrings(e.siteIDs, site)
		e.siteIDs = append(e.siteIDs, "")
		copy(e.siteIDs[i+1:], e.siteIDs[i:])
		e.siteIDs[i] = site
	}
	if p == nil {
		e.extra[id] = a
	}
	e.alist = append(e.alist, a)
	if p != nil {
		p.all = append(p.all, a)
	}
	return a
}

// Latching reports whether the alarm id latches (stays latched after it
// returns, until a reset): its activation is state a restart cannot get
// back from live readings once the value has fallen.
func (e *Engine) Latching(id string) bool {
	a, ok := e.alarm(id)
	return ok && a.spec.Latch
}

// alarm finds an alarm by id: a group or action alarm by name, a point's
// as "<point>.<condition>" (condition names hold no dot).
func (e *Engine) alarm(id string) (*alarm, bool) {
	if a, ok := e.extra[id]; ok {
		return a, true
	}
	i := strings.LastIndexByte(id, '.')
	if i < 0 {
		return nil, false
	}
	p, ok := e.points[id[:i]]
	if !ok {
		return nil, false
	}
	c := id[i+1:]
	for _, a := range p.all {
		if string(a.spec.Condition) == c {
			return a, true
		}
	}
	return nil, false
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

// alarmEvent records a transition of a; every change of an alarm's state
// goes through here, so it is also where the alarm's timers and the
// voting groups it feeds are brought up to date.
func (e *Engine) alarmEvent(a *alarm, now time.Time, t EventType, from State, user, comment string) {
	e.emit(a.org.site, Event{TS: now, Type: t, Alarm: a.id, From: from, To: a.state(), Active: a.active,
		Value: e.valueOf(a), Limit: a.limit, User: user, Comment: comment})
	e.changed(a)
}

// take ends a call: the actions whose triggers changed are decided (at
// the call's time, e.last), and its events are handed over.
func (e *Engine) take() []Event {
	e.flushActions(e.last)
	out := e.out
	e.out = nil
	return out
}

// valueOf is an alarm's value. A comm alarm's value is the age of its
// point's last valid sample as of the latest Tick, unless a sample or a
// restore set it since: computed here instead of written by every Tick.
func (e *Engine) valueOf(a *alarm) float64 {
	if p := a.point; p != nil && p.comm == a && e.ticks > p.commStamp {
		return e.lastTick.Sub(p.lastValid).Seconds()
	}
	return a.value
}

// setCommValue sets a comm alarm's value explicitly (see valueOf).
func (e *Engine) setCommValue(p *point, v float64) {
	p.comm.value = v
	p.commStamp = e.ticks
}

// setCond drives an alarm's condition through its on/off delay. cond is
// the condition including hysteresis (deadband / restore on the return).
func (e *Engine) setCond(a *alarm, now time.Time, cond bool) {
	if cond && a.held {
		// Lost, or bad, again while held: what its return and a new
		// activation would have been, through the on-delay as ever.
		if e.waiting(a, now, a.spec.OnDelay) {
			return
		}
		a.pending = false
		e.lostAgain(a, now)
		return
	}
	if cond == a.active {
		a.pending = false
		return
	}
	if a.held {
		a.pending = false // back, and its return already due: held
		return
	}
	delay := a.spec.OffDelay
	if cond {
		delay = a.spec.OnDelay
	}
	if e.waiting(a, now, delay) {
		return
	}
	a.pending = false
	switch {
	case cond:
		e.activate(a, now)
	case e.faultHeld && a.point != nil && (a.point.comm == a || a.point.bad == a):
		e.keepHeld(a, now)
	default:
		e.deactivate(a, now)
	}
}

// waiting starts a's pending delay d at now unless it is running, and
// reports whether it still runs (d <= 0: no delay).
func (e *Engine) waiting(a *alarm, now time.Time, d time.Duration) bool {
	if d <= 0 {
		return false
	}
	if !a.pending {
		a.pending = true
		a.ext().pendingSince = now
		e.arm(a)
	}
	return now.Sub(a.x.pendingSince) < d
}

// keepHeld keeps a comm or bad alarm whose return fell due active, for
// the fault hold (SetFaultHold). Nothing is published: its state is
// unchanged. The groups and interlocks it feeds see it returned (a held
// input votes by its value; a latching one is latched for them).
func (e *Engine) keepHeld(a *alarm, now time.Time) {
	e.markHeld(a)
	e.unsaved = true
	e.changed(a)
	e.updateActions(a, now)
}

// lostAgain: a held alarm's condition is back (its point lost, or bad,
// again). It is no longer held, and if it was acknowledged it
// annunciates again, as the return and new activation the hold stood in
// for would have made it.
func (e *Engine) lostAgain(a *alarm, now time.Time) {
	e.unhold(a)
	e.unsaved = true
	// For its groups a new activation, first out as any other.
	for _, g := range a.memberOf() {
		e.markFirstOut(g, a, now)
	}
	if a.acked {
		from := a.state()
		x := a.ext()
		a.acked, x.ackedAt, x.updated = false, time.Time{}, now
		what := "bad again"
		if a.spec.Condition == Comm {
			what = "communication lost again"
		}
		e.alarmEvent(a, now, EvReAlarm, from, "", what+" while held (fault hold)")
	} else {
		e.changed(a)
	}
	e.updateActions(a, now)
	if p := a.point; p != nil && p.comm == a {
		e.holdReturns(p)
	}
}

// markHeld marks a held (keepHeld, or restored so) and lists it for
// ReleaseHeld, once however often it is held.
func (e *Engine) markHeld(a *alarm) {
	if a.held {
		return
	}
	a.held = true
	e.nHeld++
	e.noteHeld(a)
	if !a.inHeldList {
		a.inHeldList = true
		e.heldList = append(e.heldList, a)
	}
}

// unhold: a is no longer held. It stays in heldList, which ReleaseHeld
// skips it in (or finds it held again), until none is held.
func (e *Engine) unhold(a *alarm) {
	a.held = false
	e.nHeld--
	e.noteHeld(a)
	if e.nHeld == 0 {
		// Every entry left is stale: let them go, so that the list
		// does not keep their places (or grow with them) for the next
		// hold.
		for _, x := range e.heldList[e.heldHead:] {
			x.inHeldList = false
		}
		clear(e.heldList)
		e.heldList, e.heldHead = e.heldList[:0], 0
	}
}

// noteHeld lists a for HeldChanged, once.
func (e *Engine) noteHeld(a *alarm) {
	if !a.heldNoted {
		a.heldNoted = true
		e.heldChanged = append(e.heldChanged, a)
	}
}

// HeldChanged returns the state of each alarm the fault hold began or
// stopped holding since the last call, once each; not one that is back
// as the last call gave it (held, lost again and held again: a flapping
// device). Holding makes no event (keepHeld), so a view of the alarms
// that shows which are held learns it here.
func (e *Engine) HeldChanged() []AlarmState {
	if len(e.heldChanged) == 0 {
		return nil
	}
	var out []AlarmState
	for _, a := range e.heldChanged {
		a.heldNoted = false
		if a.held != a.heldShown {
			a.heldShown = a.held
			out = append(out, e.snapshotState(a))
		}
	}
	clear(e.heldChanged)
	e.heldChanged = e.heldChanged[:0]
	return out
}

// hold freezes an alarm's condition (its input is not usable): pending
// delays restart from the next usable sample.
func (a *alarm) hold() { a.pending = false }

func (e *Engine) activate(a *alarm, now time.Time) {
	from := a.state()
	x := a.ext()
	a.active, a.latched, a.acked = true, false, false
	x.unseen = a.suppressed
	x.since, x.updated = now, now
	x.ackedBy, x.comment, x.ackedAt = "", "", time.Time{}
	a.stale = false
	e.alarmEvent(a, now, EvActivate, from, "", "")
	// chattering: N activations within the window
	w := e.opts.ChatterWindow
	x.chatter.add(now, e.opts.ChatterCount)
	if n := x.chatter.within(now, w); !a.chattering && n >= e.opts.ChatterCount {
		a.chattering = true
		e.alarmEvent(a, now, EvChattering, a.state(), "", strconv.Itoa(n)+" activations within "+w.String())
	}
	e.arm(a)
	if a.annunciated() {
		e.countFlood(a.org.site, now)
	}
	for _, g := range a.memberOf() {
		e.markFirstOut(g, a, now)
	}
	e.updateActions(a, now)
	if p := a.point; p != nil && p.comm == a {
		e.holdReturns(p)
	}
}

func (e *Engine) deactivate(a *alarm, now time.Time) {
	from := a.state()
	a.active = false
	a.latched = a.spec.Latch
	a.ext().updated = now
	// A negative time active is a restored since judged after a step of
	// the wall clock back (restoredclock.go), not a fleeting activation.
	if d := e.elapsed(now, a.since()); d >= 0 && d < e.opts.FleetingBelow {
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
	if g := a.group(); g != nil && a.baseState() == Normal {
		e.clearFirstOut(g, now)
	}
}

// Observe evaluates one sample taken at now (the edge timestamp). It
// returns the resulting events in order; an unknown point is an error.
func (e *Engine) Observe(now time.Time, s Sample) ([]Event, error) {
	now = e.monotonic(now)
	p, ok := e.pointOf(&s)
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
	// The points that set suppression flags first: a pump that stops
	// suppresses its low-pressure alarm in the poll that reads both, not
	// after annunciating it. A flag that clears does so after the batch:
	// the alarms it suppressed are judged on this poll's readings first,
	// and one whose condition went with the suppression does not
	// annunciate (and return) at once.
	if e.nFlagPoints > 0 {
		e.inStep = true
		for i := range samples {
			if p, ok := e.pointOf(&samples[i]); ok && p.x != nil && len(p.x.flags) > 0 {
				e.observe(p, now, samples[i])
			}
		}
	}
	for i := range samples {
		s := &samples[i]
		p, ok := e.pointOf(s)
		if !ok {
			unknown = append(unknown, s.Point)
			continue
		}
		if e.nFlagPoints > 0 && p.x != nil && len(p.x.flags) > 0 {
			continue // observed above
		}
		e.observe(p, now, *s)
	}
	if e.inStep {
		e.inStep = false
		for _, k := range e.clears {
			e.setFlag(now, k, false)
		}
		clear(e.clears)
		e.clears = e.clears[:0]
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
		e.start(p, now)
	}
	v := s.Value
	q := s.Quality
	over := false
	res := p.res
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		q = BadQuality
	case res.NE43:
		switch {
		case v <= 3.6 || v >= 21.0:
			q = BadQuality
		case v < 3.8 || v > 20.5:
			if q == Good {
				q = Uncertain
			}
			over = v > 20.5
		}
	case res.Max > res.Min && q != BadQuality:
		// Zero drift of a few percent of span below the range is normal.
		// Further below is a reading no gas can give (negative oxygen, a
		// transmitter driven below its zero): a sensor fault, as NAMUR
		// NE 43's fault-low band is for a raw loop, so it is bad and
		// raises the sensor's bad alarm instead of holding its limits in
		// silence. Above the range the sensor is saturated but readable,
		// also when the driver already marked it uncertain (over-range
		// reported as such): it still counts for the high-side limits.
		if v > res.Max {
			q, over = Uncertain, true
		} else if q == Good && v < faultFloor(res.Min, res.Max) {
			q = BadQuality
		}
	case res.HasFaultBelow && q == Good && v < res.FaultBelow:
		q = BadQuality
	}
	// A sensor that stays uncertain (a detector's warm-up or calibration
	// bit, a loop in NE 43's under-range band) holds its limit alarms: it
	// watches nothing. Past the bad condition's timeout its readings are
	// bad, so the bad alarm speaks for it (and, for a safety-critical
	// sensor, the fail-safe trips). Only a good reading ends the spell (bad
	// ones in between, a timeout or a fault-band sample, do not restart
	// it), and over range, which counts for the high limits. And while the
	// bad alarm is active, uncertain readings are bad: only a good one
	// ends a sensor fault (a fault, then a warm-up; a bad sample within a
	// spell; a bad alarm restored by a restart, which does not keep the
	// spell).
	switch {
	case q == Uncertain && !over:
		limit := DefaultUncertainLimit // the bad alarm disabled: the quality is still judged
		if p.bad != nil {
			limit = p.bad.spec.Timeout
		}
		if p.uncertainSince.IsZero() {
			p.uncertainSince = now
		}
		if now.Sub(p.uncertainSince) >= limit || (p.bad != nil && p.bad.active) {
			q = BadQuality
		}
	case q == Good || over:
		p.uncertainSince = time.Time{}
	}
	p.quality, p.overRange, p.value, p.seen = q, over, v, true
	// Communication is judged on the quality the gateway delivered: a value
	// that was read but is in a NE 43 fault band is a sensor fault (the
	// bad alarm), not a communication loss.
	if s.Quality != BadQuality || s.Fault {
		p.lastValid = now
		if p.comm != nil {
			e.watchComm(p)
			e.setCommValue(p, 0)
			e.setCond(p.comm, now, false)
		}
	}
	if p.bad != nil {
		p.bad.value = v
		e.setCond(p.bad, now, q == BadQuality)
	}
	for _, a := range p.limits() {
		usable := q == Good || (over && a.spec.Condition.isHighSide())
		if !usable {
			a.hold()
			continue
		}
		a.value = v
		e.setCond(a, now, limitCond(a, v))
	}
	x := p.x
	if x == nil {
		return
	}
	if x.rate != nil {
		if q == Good {
			e.evalRate(p, now, v)
		} else {
			x.rate.hold()
		}
	}
	if x.dev != nil {
		e.evalDeviation(x.dev, p, x.devPeer, now)
	}
	for _, a := range x.devWatchers {
		e.evalDeviation(a, a.point, p, now)
	}
	if x.frozen != nil {
		e.evalFrozen(p, now, v, q)
	}
	if x.exp != nil {
		e.closeMinute(p, now)
		if q == Good {
			if x.exp.add(now, v) {
				e.armPoint(p)
			}
		}
	}
	for _, g := range x.groups {
		if !g.dirty {
			g.dirty = true
			e.dirty = append(e.dirty, g)
		}
	}
	for _, f := range x.flags {
		set := q == Good && (v != 0) != f.not
		if !set && e.inStep {
			e.clears = append(e.clears, f.key)
			continue
		}
		e.setFlag(now, f.key, set)
	}
}

// flagsInDoubt clears the flags a point sets once it is not read within
// its comm timeout: its state is not known, and the alarms it suppressed
// annunciate (pointFlag).
func (e *Engine) flagsInDoubt(p *point, now time.Time) {
	if p.x == nil {
		return
	}
	for _, f := range p.x.flags {
		e.setFlag(now, f.key, false)
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
	s := a.spec
	if !a.active {
		if s.Condition.isHighSide() {
			return v >= s.Limit
		}
		return v <= s.Limit
	}
	return !limitReturned(s, v)
}

// limitReturned reports whether v is on the normal side of a limit's
// return threshold: the restore level where the profile has one (strict),
// else the limit less the deadband.
func limitReturned(s *CondSpec, v float64) bool {
	if s.Condition.isHighSide() {
		if s.HasRestore {
			return v < s.Restore
		}
		return v < s.Limit-s.Deadband
	}
	if s.HasRestore {
		return v > s.Restore
	}
	return v > s.Limit+s.Deadband
}

// highCond is a generic "value >= limit" with deadband on the return.
func highCond(a *alarm, v float64) bool {
	if !a.active {
		return v >= a.spec.Limit
	}
	return !highReturned(a.spec, v)
}

func highReturned(s *CondSpec, v float64) bool { return v < s.Limit-s.Deadband }

// lost reports whether the point's communication is lost: its comm alarm
// is active (and not merely kept so by the fault hold after its return).
// Table (b): a lost point's quality is bad ("comm-loss"), whatever its
// last sample said.
func (p *point) lost() bool { return p.comm != nil && p.comm.active && !p.comm.held }

func (e *Engine) evalDeviation(a *alarm, p, peer *point, now time.Time) {
	if peer == nil || p.quality != Good || peer.quality != Good || p.lost() || peer.lost() {
		a.hold()
		return
	}
	d := math.Abs(p.value - peer.value)
	a.value = d
	e.setCond(a, now, highCond(a, d))
}

func (e *Engine) evalFrozen(p *point, now time.Time, v float64, q Quality) {
	x := p.x
	a := x.frozen
	if q != Good {
		a.hold()
		return
	}
	switch {
	case math.Abs(v) <= a.spec.ZeroBand:
		x.frzN = 0
	case x.frzN == 0 || math.Abs(v-x.frzRef) > a.spec.Limit:
		x.frzRef, x.frzN = v, 1
	default:
		x.frzN++
	}
	a.value = float64(x.frzN)
	e.setCond(a, now, x.frzN >= a.spec.Samples)
}

// floodKeep is how many activations a site keeps: enough to tell both
// "more than FloodStart" and "fewer than FloodEnd" within the window.
func (e *Engine) floodKeep() int { return max(e.opts.FloodStart+1, e.opts.FloodEnd) }

func (e *Engine) countFlood(site string, now time.Time) {
	st := e.sites[site]
	st.acts.add(now, e.floodKeep())
	if n := st.acts.within(now, e.opts.FloodWindow); !st.flood && n > e.opts.FloodStart {
		st.flood = true
		e.emit(site, Event{TS: now, Type: EvFloodStart, Value: float64(n), Limit: float64(e.opts.FloodStart),
			Comment: fmt.Sprintf("more than %d alarms within %s", e.opts.FloodStart, e.opts.FloodWindow)})
	}
}

// Unsaved reports, and forgets, a change of the alarms' state that made
// no event (an alarm the fault hold began or stopped holding): the
// snapshot marks held alarms, so the caller should save it again.
func (e *Engine) Unsaved() bool {
	u := e.unsaved
	e.unsaved = false
	return u
}

// SetFaultHold holds the points' active comm and bad alarms (on) or lets
// the holds go (off), and returns the site events saying so (fault_hold,
// fault_hold_end, with reason as their comment); nothing when the hold
// is already as asked.
//
// The gateway holds them while it is itself overloaded. An overloaded
// gateway leaves devices unread past their comm timeout and reads them
// again a moment later, and its requests time out now and then (a device
// answering late, or the gateway reading late): each of their sensors'
// comm or bad alarms would be raised and returned, again and again, a
// flood whose commits take the CPU the pollers lack (the gateway's own
// alarm floods, docs/performance.md). Held, such an alarm raises as
// ever, and when its return falls due (valid samples again, through its
// off-delay) it stays active: it returns when released (ReleaseHeld)
// after the hold, or annunciates again if the point is lost again
// meanwhile after an ack. Only what the alarm shows is held: the groups
// and interlocks it feeds, and a reset, see it returned (keepHeld).
//
// The hold's end releases nothing by itself: the alarms it kept active
// return as the caller releases them, a few at a time, so that their
// returns (all of a site's comm and bad alarms, for an overload that
// left every device unread) do not overload the gateway again at once.
func (e *Engine) SetFaultHold(now time.Time, on bool, reason string) []Event {
	now = e.monotonic(now)
	if on == e.faultHeld {
		return nil
	}
	e.faultHeld = on
	t := EvFaultHoldEnd
	if on {
		t = EvFaultHold
	}
	for _, site := range e.siteIDs {
		e.emit(site, Event{TS: now, Type: t, Value: math.NaN(), Limit: math.NaN(), Comment: reason})
	}
	return e.take()
}

// Held returns how many alarms the fault hold keeps active: during a
// hold, and after it until they are released (ReleaseHeld).
func (e *Engine) Held() int { return e.nHeld }

// ReleaseHeld returns at most n of the alarms the fault hold kept
// active, those held first first (n < 0: all), and returns their events;
// nothing while the hold is on. A held alarm returns as it would have
// when its return fell due: its return event, the end of a one-shot
// shelve, its latch. One whose point has had no sample since this engine
// started (restored held, its device not read since the restart) waits,
// at the end of the list: its return fell due before the restart, and
// the device may have died with it (then its comm timeout finds it lost
// again, and it stays active).
func (e *Engine) ReleaseHeld(now time.Time, n int) []Event {
	now = e.monotonic(now)
	if e.faultHeld {
		return nil
	}
	// Each entry is looked at once at most: those that wait go to the
	// end.
	for todo := len(e.heldList) - e.heldHead; n != 0 && todo > 0 && e.heldHead < len(e.heldList); todo-- {
		a := e.heldList[e.heldHead]
		e.heldList[e.heldHead] = nil
		e.heldHead++
		if a.held && a.point != nil && !a.point.seen {
			e.heldList = append(e.heldList, a)
			continue
		}
		a.inHeldList = false
		if a.held {
			e.unhold(a) // the last: the list is emptied
			e.deactivate(a, now)
			n--
		}
	}
	switch {
	case e.heldHead == len(e.heldList):
		e.heldList, e.heldHead = e.heldList[:0], 0
	case e.heldHead > len(e.heldList)/2:
		// Released in part, then held again by a new hold, and again:
		// the places released are reused, not kept.
		k := copy(e.heldList, e.heldList[e.heldHead:])
		clear(e.heldList[k:])
		e.heldList, e.heldHead = e.heldList[:k], 0
	}
	return e.take()
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
	e.setFlag(now, name, v)
	return e.take()
}

func (e *Engine) setFlag(now time.Time, name string, v bool) {
	if e.flags[name] == v {
		return
	}
	e.flags[name] = v
	for _, a := range e.bySupp[name] {
		from := a.state()
		a.suppressed = v
		a.ext().updated = now
		if v {
			e.alarmEvent(a, now, EvSuppress, from, "", "suppressed by design: "+name)
			continue
		}
		if a.active {
			x := a.ext()
			a.acked = false
			x.since, x.ackedBy, x.comment = now, "", ""
			if a.annunciated() {
				e.countFlood(a.org.site, now)
			}
		} else if x := a.ext(); x.unseen && !a.latched {
			// Came and went under the suppression, never shown: nothing
			// to acknowledge (the events keep it). One latched meanwhile
			// stays to be seen and reset.
			a.acked = true
		}
		a.ext().unseen = false
		e.alarmEvent(a, now, EvUnsuppress, from, "", "suppression ended: "+name)
	}
}

// Alarm returns the state of one alarm.
func (e *Engine) Alarm(id string) (AlarmState, bool) {
	a, ok := e.alarm(id)
	if !ok {
		return AlarmState{}, false
	}
	return e.snapshotState(a), true
}

// Alarms returns the state of every configured alarm, in config order.
func (e *Engine) Alarms() []AlarmState {
	out := make([]AlarmState, len(e.alist))
	for i, a := range e.alist {
		out[i] = e.snapshotState(a)
	}
	return out
}

func (e *Engine) snapshotState(a *alarm) AlarmState {
	s := AlarmState{ID: a.id, Site: a.org.site, Device: a.org.device, Sensor: a.org.sensor, Condition: a.spec.Condition,
		Priority: a.spec.Priority, State: a.state(), Active: a.active, Latched: a.latched,
		Value: e.valueOf(a), Limit: a.limit, Since: a.since(), Updated: a.updated(), AckedBy: a.ackedBy(),
		Comment: a.comment(), Acked: a.acked, OneShot: a.shelve == oneShotShelve, Suppressed: a.suppressed,
		FirstOut: a.firstOut, Chattering: a.chattering, Stale: a.stale, Held: a.held, Quality: Good}
	if a.shelve == timedShelve {
		s.ShelvedUntil = a.shelveUntil()
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

// Ref returns the handle of point id (device.sensor) for Sample.Ref and
// PointAt; the zero Ref when there is no such point.
func (e *Engine) Ref(id string) Ref {
	if p, ok := e.points[id]; ok {
		return Ref{e: e, p: p}
	}
	return Ref{}
}

// PointAt is Point for the point of r (from Ref); a Ref of another engine
// or the zero Ref finds nothing.
func (e *Engine) PointAt(r Ref) (value float64, q Quality, ok bool) {
	if r.e != e || r.p == nil {
		return math.NaN(), BadQuality, false
	}
	return r.p.value, r.p.quality, true
}

// pointOf finds a sample's point: through its Ref when that is this
// engine's and names the same point, else by its id.
func (e *Engine) pointOf(s *Sample) (*point, bool) {
	if r := s.Ref; r.e == e && r.p != nil && r.p.id == s.Point {
		return r.p, true
	}
	p, ok := e.points[s.Point]
	return p, ok
}

// PointSpec returns the compiled configuration of a point. Its Conditions
// are shared with the engine (and with other points of the same config):
// read them, do not modify them.
func (e *Engine) PointSpec(id string) (Resolved, bool) {
	p, ok := e.points[id]
	if !ok {
		return Resolved{}, false
	}
	// A copy: the resolved spec is shared by every point with the same
	// config, and a caller editing its conditions must not move another
	// sensor's live limits.
	r := *p.res
	r.Conditions = append([]CondSpec(nil), r.Conditions...)
	return r, true
}

// CommTimeout returns a point's communication-loss timeout, if it has a
// comm alarm: without the copy PointSpec makes.
func (e *Engine) CommTimeout(id string) (time.Duration, bool) {
	p, ok := e.points[id]
	if !ok {
		return 0, false
	}
	c, ok := p.res.Cond(Comm)
	return c.Timeout, ok && c.Timeout > 0
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
