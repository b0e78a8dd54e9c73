package alerting

import (
	"math"
	"time"
)

// Tick's cost follows what is due, not what is configured. Each rule that
// fires on time alone has its own index:
//
//   - communication loss: a point's comm alarm fires once its last valid
//     sample is older than the timeout. Points of one timeout form a list
//     in the order of their last valid sample (a sample moves its point to
//     the end in O(1)), so only the heads of the lists are looked at.
//   - a lost point whose comm alarm is not yet steadily active, and the
//     closing of TWA/STEL minute averages, are point timers (pointDue).
//   - on/off delays, timed shelves, out-of-service periods, re-alarm,
//     stale and the end of chattering are alarm timers (alarmDue), each
//     alarm keyed by the earliest of its own.
//   - a voting group is re-counted when one of its inputs changed.
//
// A timer may fire early (its state changed since it was set): the rule
// it stands for is then checked as before and finds nothing to do, and
// the timer is set again from the alarm's state. What must never happen
// is a timer firing late, so every change that can bring a rule's time
// closer re-arms the timer: setCond starting a delay, and every alarm
// event (Engine.changed). The work due at one Tick runs in the order the
// full scan used (points, then alarms, then sites, groups and actions,
// each in config order), so events come out in the same order.

// timers is the Engine's index of time-driven work.
type timers struct {
	// ticks counts Tick calls; lastTick is the latest one's time.
	ticks    uint64
	lastTick time.Time
	// allStarted: every point has been started (by a sample or a Tick).
	allStarted bool
	// scanAll makes Tick visit every point, alarm and group as the engine
	// did before the timers existed. Tests compare the two.
	scanAll bool

	alarmDue  dueSet // by alist index
	pointDue  dueSet // by plist index
	commLists []commList
	gdirty    []*group // groups to re-count at the next Tick
	batch     idxHeap
	deferred  []int32
}

// commList is the list of watched points with one comm timeout, oldest
// last valid sample first (linked through point.prev / point.next).
type commList struct {
	timeout    time.Duration
	head, tail int32
}

func (t *timers) init(alarms, points int) {
	t.alarmDue.init(alarms)
	t.pointDue.init(points)
}

// start begins watching a point: its comm timeout runs from now.
func (e *Engine) start(p *point, now time.Time) {
	p.started, p.lastValid = true, now
	if p.comm != nil {
		e.watchComm(p)
	}
}

// watchComm moves p to the end of its comm list (it just had a valid
// sample); a lost point is listed again.
func (e *Engine) watchComm(p *point) {
	if p.commList < 0 {
		p.commList = int32(e.commListFor(p.comm.spec.Timeout))
	}
	l := &e.commLists[p.commList]
	if p.listed {
		if l.tail == p.idx {
			return
		}
		e.unlink(l, p)
	}
	p.prev, p.next = l.tail, -1
	if l.tail >= 0 {
		e.plist[l.tail].next = p.idx
	} else {
		l.head = p.idx
	}
	l.tail = p.idx
	p.listed = true
}

func (e *Engine) unlink(l *commList, p *point) {
	if p.prev >= 0 {
		e.plist[p.prev].next = p.next
	} else {
		l.head = p.next
	}
	if p.next >= 0 {
		e.plist[p.next].prev = p.prev
	} else {
		l.tail = p.prev
	}
	p.prev, p.next, p.listed = -1, -1, false
}

func (e *Engine) commListFor(timeout time.Duration) int {
	for i, l := range e.commLists {
		if l.timeout == timeout {
			return i
		}
	}
	e.commLists = append(e.commLists, commList{timeout: timeout, head: -1, tail: -1})
	return len(e.commLists) - 1
}

// Tick runs the time-driven transitions at now: communication loss,
// expiring on/off delays, shelve and out-of-service expiry, re-alarm,
// stale and chattering flags, flood end, action confirmation timeouts and
// closing of TWA/STEL minute averages. Call it at least once per second.
func (e *Engine) Tick(now time.Time) []Event {
	now = e.monotonic(now)
	e.ticks++
	e.lastTick = now
	if e.scanAll {
		e.tickAll(now)
		return e.take()
	}
	e.tickPoints(now)
	e.tickAlarms(now)
	e.tickSites(now)
	e.tickGroups(now)
	// The actions' net changes before their confirm deadlines: a trip
	// or release made now waits for its own result.
	e.flushActions(now)
	e.tickActions(now)
	return e.take()
}

// NextDue returns how long after now the next Tick can have anything to
// do: a Tick called earlier only counts itself. 0 means at the next Tick.
// A caller that sleeps until then instead of ticking on a fixed grid wakes
// only when a rule can fire; it must still call Tick within a second of
// the last one (the age shown as a comm alarm's value is taken at Tick).
// The times are compared as the rules compare them (monotonic readings
// where both sides have one), so a caller that wakes at now+NextDue is
// never late for a timer.
func (e *Engine) NextDue(now time.Time) time.Duration {
	if e.scanAll || !e.allStarted || len(e.gdirty) > 0 {
		return 0
	}
	if now.Before(e.last) {
		now = e.last // as Tick will see it
	}
	for _, site := range e.siteIDs {
		if e.sites[site].flood {
			return 0 // a flood's end is checked every Tick
		}
	}
	next := time.Duration(math.MaxInt64)
	at := func(t time.Time) {
		next = min(next, t.Sub(now))
	}
	for i := range e.commLists {
		if l := &e.commLists[i]; l.head >= 0 {
			at(e.plist[l.head].lastValid.Add(l.timeout))
		}
	}
	for _, h := range []*timerHeap{&e.pointDue.mono, &e.pointDue.wall, &e.alarmDue.mono, &e.alarmDue.wall} {
		if h.len() > 0 {
			at(h.minAt())
		}
	}
	for _, act := range e.aclist {
		if act.awaiting {
			at(act.deadline)
		}
	}
	return max(next, 0)
}

// tickAll is Tick as a full scan: the reference the timers must match.
func (e *Engine) tickAll(now time.Time) {
	for _, p := range e.plist {
		if !p.started {
			e.start(p, now)
		}
		if p.comm != nil {
			age := now.Sub(p.lastValid)
			e.setCommValue(p, age.Seconds())
			if age >= p.comm.spec.Timeout {
				e.setCond(p.comm, now, true)
				e.flagsInDoubt(p, now)
			}
		}
		if p.x != nil && p.x.exp != nil {
			e.closeMinute(p, now)
		}
	}
	for _, a := range e.alist {
		e.tickAlarm(a, now)
	}
	e.tickSites(now)
	for _, g := range e.groups {
		e.evalGroup(g, now)
	}
	e.flushActions(now)
	e.tickActions(now)
}

func (e *Engine) tickPoints(now time.Time) {
	if !e.allStarted {
		for _, p := range e.plist {
			if !p.started {
				e.start(p, now)
			}
		}
		e.allStarted = true
	}
	b := &e.batch
	for i := range e.commLists {
		l := &e.commLists[i]
		for l.head >= 0 {
			p := e.plist[l.head]
			if now.Before(p.lastValid.Add(l.timeout)) {
				break
			}
			e.unlink(l, p) // lost: its comm alarm is handled by pointDue from now on
			b.push(p.idx)
		}
	}
	for {
		i, ok := e.pointDue.popDue(now)
		if !ok {
			break
		}
		b.push(i)
	}
	last := int32(-1)
	for b.len() > 0 {
		i := b.pop()
		if i == last {
			continue // both lost and due
		}
		last = i
		p := e.plist[i]
		if p.comm != nil {
			// The comm alarm's value (the age) is computed by valueOf.
			if now.Sub(p.lastValid) >= p.comm.spec.Timeout {
				e.setCond(p.comm, now, true)
				e.flagsInDoubt(p, now)
			}
		}
		if p.x != nil && p.x.exp != nil {
			e.closeMinute(p, now)
		}
		e.armPoint(p)
	}
}

// armPoint sets p's point timer: the end of its open TWA/STEL minute, and
// for a lost point the next Tick at which its comm alarm can change
// (every Tick re-asserts the condition, which only matters while the
// alarm is not steadily active).
func (e *Engine) armPoint(p *point) {
	var due dueAt
	at := due.at
	if p.x != nil && p.x.exp != nil {
		if t, ok := p.x.exp.minuteEnd(); ok {
			at(t)
		}
	}
	if c := p.comm; c != nil && p.started && !p.listed && !(c.active && !c.pending) {
		if c.pending && !c.active {
			at(c.x.pendingSince.Add(c.spec.OnDelay))
		} else {
			at(e.last)
		}
	}
	e.pointDue.setDue(p.idx, due)
}

// arm sets a's alarm timer to the earliest time one of its time-driven
// rules can fire (see tickAlarm), or clears it.
func (e *Engine) arm(a *alarm) {
	var due dueAt
	at := due.at
	x := a.x
	if x != nil {
		if a.pending {
			d := a.spec.OnDelay
			if a.active && !a.held {
				d = a.spec.OffDelay
			}
			at(x.pendingSince.Add(d))
		}
		if a.shelve == timedShelve {
			e.atRestored(at, x.shelveUntil)
		}
		if a.oos && !x.oosUntil.IsZero() {
			e.atRestored(at, x.oosUntil)
		}
		if a.active && a.acked && a.spec.ReAlarm > 0 {
			e.atRestored(at, x.ackedAt.Add(a.spec.ReAlarm))
		}
		if a.active && !a.stale {
			// stale is "longer than", hence the nanosecond
			e.atRestored(at, x.since.Add(e.opts.StaleAfter+time.Nanosecond))
		}
		if t, ok := x.chatter.last(); a.chattering && ok {
			at(t.Add(e.opts.ChatterWindow))
		}
	} else if a.active {
		// Active without history: restored from a snapshot without
		// times. Check at the next Tick; tickAlarm re-arms it.
		at(e.last)
	}
	e.alarmDue.setDue(a.idx, due)
	if p := a.point; p != nil && p.comm == a {
		e.armPoint(p)
	}
}

// changed runs after every event of a: its timers and the groups it
// feeds (or trips) may need attention at the next Tick.
func (e *Engine) changed(a *alarm) {
	e.arm(a)
	if l := a.links; l != nil {
		for _, g := range l.memberOf {
			e.markGroup(g)
		}
		if l.group != nil {
			e.markGroup(l.group)
		}
	}
	if a.point != nil {
		for _, g := range a.point.groups() {
			e.markGroup(g)
		}
	}
}

func (e *Engine) markGroup(g *group) {
	if !g.tickDirty && !g.batched {
		g.tickDirty = true
		e.gdirty = append(e.gdirty, g)
	}
}

// tickAlarms runs the due alarms in config order. An alarm made due by an
// earlier one in the same pass runs in it if it comes later in the order,
// at the next Tick otherwise: exactly as a scan of every alarm would.
func (e *Engine) tickAlarms(now time.Time) {
	b := &e.batch
	cur := int32(-1)
	e.deferred = e.deferred[:0]
	for {
		for {
			i, ok := e.alarmDue.popDue(now)
			if !ok {
				break
			}
			a := e.alist[i]
			switch {
			case a.batched:
			case i > cur:
				a.batched = true
				b.push(i)
			default:
				e.deferred = append(e.deferred, i)
			}
		}
		if b.len() == 0 {
			break
		}
		cur = b.pop()
		a := e.alist[cur]
		a.batched = false
		e.tickAlarm(a, now)
		e.arm(a)
	}
	for _, i := range e.deferred {
		e.arm(e.alist[i])
	}
}

// tickAlarm runs an alarm's time-driven rules at now.
func (e *Engine) tickAlarm(a *alarm, now time.Time) {
	switch {
	case a.pending && a.active && !a.held && heldByLoss(a):
		// An active alarm's return on a value its lost point no longer
		// confirms: held, as an uncertain or bad sample holds it. Its
		// off-delay starts again from the next usable sample.
		a.hold()
	case a.pending:
		// Pending: an activation (or, held by the fault hold, a new
		// one), or an active alarm's return.
		e.setCond(a, now, !a.active || a.held)
	}
	if a.shelve == timedShelve && e.reached(now, a.shelveUntil()) {
		e.unshelve(a, now, "", "shelve expired")
	}
	if a.oos && !a.oosUntil().IsZero() && e.reached(now, a.oosUntil()) {
		e.returnToService(a, now, "", "out-of-service period expired")
	}
	if a.active && a.acked && a.spec.ReAlarm > 0 && e.elapsed(now, a.ackedAt()) >= a.spec.ReAlarm {
		from := a.state()
		x := a.ext()
		a.acked, x.ackedAt, x.updated = false, time.Time{}, now
		e.alarmEvent(a, now, EvReAlarm, from, "", "active and acknowledged for "+a.spec.ReAlarm.String())
	}
	if a.active && !a.stale && e.elapsed(now, a.since()) > e.opts.StaleAfter {
		a.stale = true
		e.alarmEvent(a, now, EvStale, a.state(), "", "active for more than "+e.opts.StaleAfter.String())
	}
	if x := a.x; a.chattering && x != nil && chatterOver(x, now, e.opts.ChatterWindow) {
		a.chattering = false
		x.chatter.reset()
		e.alarmEvent(a, now, EvChatteringEnd, a.state(), "", "")
	}
}

// heldByLoss reports whether a is judged on its point's readings (not its
// comm or bad alarm, which communication loss itself drives, nor its
// bypassed alarm) and the point (or, for a deviation, the sensor it is
// compared with) is lost.
func heldByLoss(a *alarm) bool {
	p := a.point
	if p == nil || a == p.comm || a == p.bad || a == p.bypassed {
		return false
	}
	if p.lost() {
		return true
	}
	// A deviation is judged on both sensors (evalDeviation).
	return p.x != nil && p.x.dev == a && p.x.devPeer != nil && p.x.devPeer.lost()
}

// holdReturns holds the pending returns of a lost point's alarms, and of
// the deviations comparing with it (see heldByLoss), from the moment it is
// lost, so that a usable sample before their off-delay would have ended
// starts it again.
func (e *Engine) holdReturns(p *point) {
	if !p.lost() {
		return
	}
	hold := func(a *alarm) {
		if a.pending && a.active && !a.held && heldByLoss(a) {
			a.hold()
			e.arm(a)
		}
	}
	for _, a := range p.all {
		hold(a)
	}
	if p.x != nil {
		for _, a := range p.x.devWatchers {
			hold(a)
		}
	}
}

// chatterOver: a full window has passed since the latest activation.
func chatterOver(x *alarmExt, now time.Time, w time.Duration) bool {
	t, ok := x.chatter.last()
	return ok && now.Sub(t) >= w
}

func (e *Engine) tickSites(now time.Time) {
	for _, site := range e.siteIDs {
		st := e.sites[site]
		if st.flood {
			if n := st.acts.within(now, e.opts.FloodWindow); n < e.opts.FloodEnd {
				st.flood = false
				e.emit(site, Event{TS: now, Type: EvFloodEnd, Value: float64(n), Limit: float64(e.opts.FloodEnd)})
			}
		}
	}
}

// tickGroups re-counts the groups whose inputs changed, in config order;
// a group marked by an earlier one's count runs in the same pass if it
// comes later, at the next Tick otherwise.
func (e *Engine) tickGroups(now time.Time) {
	if len(e.gdirty) == 0 {
		return
	}
	b := &e.batch
	cur := int32(-1)
	for {
		keep := e.gdirty[:0]
		for _, g := range e.gdirty {
			if g.idx > cur {
				g.tickDirty, g.batched = false, true
				b.push(g.idx)
			} else {
				keep = append(keep, g)
			}
		}
		e.gdirty = keep
		if b.len() == 0 {
			return
		}
		cur = b.pop()
		g := e.groups[cur]
		g.batched = false
		e.evalGroup(g, now)
	}
}

func (e *Engine) tickActions(now time.Time) {
	for _, act := range e.aclist {
		if act.awaiting && !now.Before(act.deadline) {
			act.awaiting = false
			act.failed.value = 0
			e.setCond(act.failed, now, true)
		}
	}
}

// dueSet holds timers in two heaps: times that carry a monotonic clock
// reading (derived from the caller's time.Now) and times that do not
// (restored from a snapshot, minute boundaries). time.Time compares by the
// monotonic reading when both sides have one and by the wall clock
// otherwise, exactly as the rules' own checks do; keeping the two kinds
// apart keeps each heap totally ordered even when the wall clock is
// stepped, so no due timer can hide behind one that is not due.
type dueSet struct{ mono, wall timerHeap }

func (d *dueSet) init(n int) {
	d.mono.init(n)
	d.wall.init(n)
}

// dueAt is the earliest due time of each clock kind: times with and
// without a monotonic reading cannot be ordered against each other once
// the wall clock has been stepped, so each kind keeps its own minimum.
type dueAt struct {
	mono, wall       time.Time
	hasMono, hasWall bool
}

func (d *dueAt) at(t time.Time) {
	if !wallOnly(t) {
		if !d.hasMono || t.Before(d.mono) {
			d.mono, d.hasMono = t, true
		}
		return
	}
	if !d.hasWall || t.Before(d.wall) {
		d.wall, d.hasWall = t, true
	}
}

// setDue sets id's entry in each heap (an id may be in both).
func (d *dueSet) setDue(id int32, t dueAt) {
	if t.hasMono {
		d.mono.set(id, t.mono)
	} else {
		d.mono.remove(id)
	}
	if t.hasWall {
		d.wall.set(id, t.wall)
	} else {
		d.wall.remove(id)
	}
}

// popDue removes and returns a timer due at now, if there is one.
func (d *dueSet) popDue(now time.Time) (int32, bool) {
	if d.mono.len() > 0 && !now.Before(d.mono.minAt()) {
		return d.mono.pop(), true
	}
	if d.wall.len() > 0 && !now.Before(d.wall.minAt()) {
		return d.wall.pop(), true
	}
	return 0, false
}

// timerHeap is a binary min-heap of due times keyed by an index (of an
// alarm or a point), at most one entry per index.
type timerHeap struct {
	at  []time.Time
	id  []int32
	pos []int32 // pos[id]: place in the heap, -1 when absent
}

func (h *timerHeap) init(n int) {
	h.pos = make([]int32, n)
	for i := range h.pos {
		h.pos[i] = -1
	}
}

func (h *timerHeap) len() int { return len(h.id) }

func (h *timerHeap) minAt() time.Time { return h.at[0] }

// set inserts id at t or moves its entry to t.
func (h *timerHeap) set(id int32, t time.Time) {
	if i := h.pos[id]; i >= 0 {
		old := h.at[i]
		h.at[i] = t
		if t.Before(old) {
			h.up(int(i))
		} else {
			h.down(int(i))
		}
		return
	}
	h.at = append(h.at, t)
	h.id = append(h.id, id)
	h.pos[id] = int32(len(h.id) - 1)
	h.up(len(h.id) - 1)
}

func (h *timerHeap) remove(id int32) {
	i := h.pos[id]
	if i < 0 {
		return
	}
	h.removeAt(int(i))
}

// pop removes the earliest entry and returns its id.
func (h *timerHeap) pop() int32 {
	id := h.id[0]
	h.removeAt(0)
	return id
}

func (h *timerHeap) removeAt(i int) {
	last := len(h.id) - 1
	id := h.id[i]
	if i != last {
		h.swap(i, last)
	}
	h.at = h.at[:last]
	h.id = h.id[:last]
	h.pos[id] = -1
	if i != last {
		h.down(i)
		h.up(i)
	}
}

func (h *timerHeap) swap(i, j int) {
	h.at[i], h.at[j] = h.at[j], h.at[i]
	h.id[i], h.id[j] = h.id[j], h.id[i]
	h.pos[h.id[i]] = int32(i)
	h.pos[h.id[j]] = int32(j)
}

func (h *timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.at[i].Before(h.at[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *timerHeap) down(i int) {
	n := len(h.id)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.at[r].Before(h.at[l]) {
			m = r
		}
		if !h.at[m].Before(h.at[i]) {
			return
		}
		h.swap(i, m)
		i = m
	}
}

// idxHeap is a min-heap of indexes: the order in which due work runs.
type idxHeap []int32

func (h *idxHeap) len() int { return len(*h) }

func (h *idxHeap) push(i int32) {
	*h = append(*h, i)
	s := *h
	for j := len(s) - 1; j > 0; {
		p := (j - 1) / 2
		if s[p] <= s[j] {
			break
		}
		s[p], s[j] = s[j], s[p]
		j = p
	}
}

func (h *idxHeap) pop() int32 {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for j := 0; ; {
		l := 2*j + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s[r] < s[l] {
			m = r
		}
		if s[j] <= s[m] {
			break
		}
		s[j], s[m] = s[m], s[j]
		j = m
	}
	*h = s
	return top
}
