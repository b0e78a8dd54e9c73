package alerting

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"

	"github.com/canary-gw/canary/internal/configerr"
)

// group is a MooN voting group.
type group struct {
	cfg      GroupConfig
	members  []*point
	inputs   []*alarm // the members' alarms of cfg.Condition
	trip     *alarm
	degraded *alarm

	firstOut    *alarm
	firstOutAt  time.Time
	firstOutIdx int
	dirty       bool // to count at the end of the current Observe/Step

	idx       int32 // in Engine.groups
	tickDirty bool  // to count at the next Tick (in Engine.gdirty)
	batched   bool  // queued in the current Tick's group pass
}

// action is an interlock action's engine-side state.
type action struct {
	cfg      ActionConfig
	triggers []*alarm
	tripped  bool
	// restoredTrip: tripped in the snapshot being restored (Restore).
	restoredTrip bool
	trigger      string
	awaiting     bool
	deadline     time.Time
	failed       *alarm
	// dirty: one of its triggers changed during the current call (in
	// Engine.actDirty); cause is the latest such trigger.
	dirty bool
	cause *alarm
}

// ActionState is an interlock action as the gateway must hold it.
type ActionState struct {
	ID      string
	Tripped bool
	// Trigger is the alarm that tripped it.
	Trigger string
	// Awaiting is true while a trip or release waits for ActionResult.
	Awaiting bool
}

var voteRe = regexp.MustCompile(`^([1-9][0-9]*)oo([1-9][0-9]*)$`)

// ParseVote reads "2oo3" into M=2, N=3.
func ParseVote(s string) (m, n int, err error) {
	sub := voteRe.FindStringSubmatch(s)
	if sub == nil {
		return 0, 0, fmt.Errorf("invalid vote %q (want MooN, e.g. 1oo2, 2oo3)", s)
	}
	m, _ = strconv.Atoi(sub[1])
	n, _ = strconv.Atoi(sub[2])
	if m > n {
		return 0, 0, fmt.Errorf("invalid vote %q: M must not exceed N", s)
	}
	return m, n, nil
}

func (e *Engine) addGroup(errs *configerr.List, path string, gc GroupConfig) {
	if gc.ID == "" {
		errs.Add(path+".id", "required")
		return
	}
	if gc.FaultVote == "" {
		gc.FaultVote = "trip"
	}
	if gc.FaultVote != "trip" && gc.FaultVote != "bypass" {
		errs.Add(path+".fault_vote", "unknown fault vote %q (want trip or bypass)", gc.FaultVote)
	}
	if gc.Condition == "" {
		gc.Condition = HighHigh
	}
	if gc.Priority == 0 {
		gc.Priority = 1
	}
	if gc.Priority < 1 || gc.Priority > 4 {
		errs.Add(path+".priority", "must be 1 to 4, got %d", gc.Priority)
	}
	if gc.N != len(gc.Points) {
		errs.Add(path+".vote", "%doo%d needs %d sensors, got %d", gc.M, gc.N, gc.N, len(gc.Points))
	}
	if gc.M < 1 || gc.M > gc.N {
		errs.Add(path+".vote", "invalid %doo%d", gc.M, gc.N)
	}
	g := &group{cfg: gc, idx: int32(len(e.groups))}
	for i, pid := range gc.Points {
		p, ok := e.points[pid]
		if !ok {
			errs.Add(fmt.Sprintf("%s.sensors[%d]", path, i), "unknown sensor %q (want \"device.sensor\")", pid)
			continue
		}
		in, ok := e.alarm(pid + "." + string(gc.Condition))
		if !ok {
			errs.Add(fmt.Sprintf("%s.sensors[%d]", path, i), "sensor %q has no %s condition to vote with", pid, gc.Condition)
			continue
		}
		g.members = append(g.members, p)
		g.inputs = append(g.inputs, in)
		p.ext().groups = append(p.ext().groups, g)
		in.link().memberOf = append(in.link().memberOf, g)
	}
	if gc.FaultVote == "bypass" {
		// A bypassed input is removed from the vote: on a safety-critical
		// sensor (coal methane) that turns off the fail-safe its preset
		// requires (a bad or lost sensor trips), a loosening.
		for _, p := range g.members {
			if p.res.SafetyCritical {
				loosen(errs, path+".fault_vote", gc.OverrideRegulatory, "fault_vote bypass removes the bad or lost safety-critical sensor %s from the vote instead of tripping: it turns off the fail-safe of the %s/%s preset (%s)",
					p.id, p.res.Kind, p.res.Profile, p.res.Source)
				break
			}
		}
	}
	if _, dup := e.alarm(gc.ID + "." + string(gc.Condition)); dup {
		errs.Add(path+".id", "alarm id %s.%s is already used", gc.ID, gc.Condition)
		return
	}
	org := &origin{site: gc.Site}
	g.trip = e.addAlarm(gc.ID+"."+string(gc.Condition), org,
		&CondSpec{Condition: gc.Condition, Priority: gc.Priority, Latch: gc.Latch, Limit: float64(gc.M),
			ResetNeedsAck: true, CommentRequired: gc.Priority == 1, Source: "MooN voting (SAFETY §5.1)"}, nil)
	g.trip.link().group = g
	g.degraded = e.addAlarm(gc.ID+"."+string(Degraded), org, e.degradedSpec, nil)
	g.degraded.limit = math.NaN()
	if gc.Action != "" {
		act, ok := e.actions[gc.Action]
		if !ok {
			errs.Add(path+".action", "unknown action %q", gc.Action)
		} else {
			l := g.trip.link()
			l.actions = append(l.actions, act)
			act.triggers = append(act.triggers, g.trip)
		}
	}
	e.groups = append(e.groups, g)
	// The first Tick counts every group (and sets its alarms' values).
	e.markGroup(g)
}

// evalGroup counts the votes. A bad, lost or out-of-service input votes
// trip (fault_vote trip) or is removed (bypass: N shrinks, M is capped at
// the new N). With no healthy input left the group trips: nothing watches.
func (e *Engine) evalGroup(g *group, now time.Time) {
	if g.trip == nil {
		return
	}
	votes, removed, faulty := 0, 0, 0
	for i, p := range g.members {
		in := g.inputs[i]
		// A comm alarm the fault hold keeps active is back: its input
		// votes by its value (keepHeld). (A bad input is judged by its
		// quality, which the hold does not touch.)
		bad := (p.seen && p.quality == BadQuality) || (p.comm != nil && p.comm.active && !p.comm.held) || in.oos
		switch {
		case bad:
			faulty++
			if g.cfg.FaultVote == "bypass" || in.oos {
				removed++
			} else {
				votes++
			}
		case in.active && !in.held: // a held input (a comm or bad group) is back
			votes++
		}
	}
	n := len(g.members) - removed
	m := g.cfg.M
	if m > n {
		m = n
	}
	g.trip.value, g.trip.limit = float64(votes), float64(m)
	e.setCond(g.trip, now, n == 0 || votes >= m)
	g.degraded.value = float64(faulty)
	e.setCond(g.degraded, now, faulty > 0)
	// An incident that never tripped the group ends when every input is
	// back to normal: the next incident gets its own first-out.
	if g.firstOut != nil && g.trip.baseState() == Normal {
		quiet := true
		for _, in := range g.inputs {
			if in.demands() {
				quiet = false
			}
		}
		if quiet {
			e.clearFirstOut(g, now)
		}
	}
}

func (e *Engine) markFirstOut(g *group, a *alarm, now time.Time) {
	idx := -1
	for i, in := range g.inputs {
		if in == a {
			idx = i
		}
	}
	if idx < 0 {
		return
	}
	if g.firstOut != nil && !(now.Equal(g.firstOutAt) && idx < g.firstOutIdx) {
		return
	}
	if g.firstOut != nil {
		g.firstOut.firstOut = false
	}
	g.firstOut, g.firstOutAt, g.firstOutIdx = a, now, idx
	a.firstOut = true
	e.emit(g.trip.org.site, Event{TS: now, Type: EvFirstOut, Alarm: a.id, From: a.state(), To: a.state(), Active: a.active,
		Value: e.valueOf(a), Limit: a.limit, Comment: "first out in group " + g.cfg.ID})
}

func (e *Engine) clearFirstOut(g *group, now time.Time) {
	if g.firstOut != nil {
		g.firstOut.firstOut = false
		g.firstOut = nil
	}
}

// demands reports whether an alarm demands what it drives (its actions;
// a group's incident): active or latched. An alarm the fault hold keeps
// active (keepHeld) demands as the return it stands in for would: only
// if it latches.
func (a *alarm) demands() bool {
	if a.held {
		return a.spec.Latch
	}
	return a.active || a.latched
}

// updateActions notes that a, which may drive actions, changed: the
// demand of every action it drives is decided once, at the end of the
// call (flushActions), from the state of all their triggers then. An
// action whose triggers changed several times within one Step, Observe,
// Tick or command (a bad sample's return, then a limit's activation, of a
// fail-safe input; one sensor's return and another's activation) thus
// gets only its net change: never a release and a new trip the gateway
// would write to the relay one after the other.
func (e *Engine) updateActions(a *alarm, _ time.Time) {
	for _, act := range a.actions() {
		act.cause = a
		if !act.dirty {
			act.dirty = true
			e.actDirty = append(e.actDirty, act)
		}
	}
}

// flushActions decides the demand of the actions whose triggers changed
// since the last flush, in the order they were first changed.
func (e *Engine) flushActions(now time.Time) {
	for i := 0; i < len(e.actDirty); i++ {
		act := e.actDirty[i]
		act.dirty = false
		cause := act.cause
		act.cause = nil
		e.updateAction(act, now, cause)
	}
	clear(e.actDirty)
	e.actDirty = e.actDirty[:0]
}

func (e *Engine) updateAction(act *action, now time.Time, cause *alarm) {
	// An out-of-service trigger cannot trip an action (it is bypassed),
	// but neither does taking it out of service release a trip it holds:
	// that needs the condition to clear and, if latched, a reset.
	demand := false
	trigger := ""
	for _, t := range act.triggers {
		if t.demands() && (!t.oos || act.tripped || act.restoredTrip) {
			demand = true
			if trigger == "" {
				trigger = t.id
			}
		}
	}
	if demand == act.tripped {
		return
	}
	act.tripped = demand
	typ, to := EvActionRelease, State("permitted")
	comment := "released: no trigger active or latched"
	if demand {
		typ, to = EvActionTrip, State("tripped")
		act.trigger = trigger
		comment = "trigger: " + trigger
	} else {
		act.trigger = ""
	}
	from := State("permitted")
	if !demand {
		from = "tripped"
	}
	act.awaiting = act.cfg.ConfirmTimeout > 0
	act.deadline = now.Add(act.cfg.ConfirmTimeout)
	v := math.NaN()
	if cause != nil {
		v = e.valueOf(cause)
	}
	e.emit(act.cfg.Site, Event{TS: now, Type: typ, Alarm: act.cfg.ID, Action: act.cfg.ID, From: from, To: to,
		Active: demand, Value: v, Limit: math.NaN(), Comment: comment})
}

// ActionResult reports the gateway's write and read-back of an action:
// ok confirms it; !ok (or no report within confirm_timeout) raises the
// priority-1 latched alarm "<action>.failed".
func (e *Engine) ActionResult(now time.Time, id string, ok bool, detail string) ([]Event, error) {
	now = e.monotonic(now)
	act, found := e.actions[id]
	if !found {
		return nil, fmt.Errorf("action result %q: %w", id, ErrUnknownAction)
	}
	act.awaiting = false
	if ok {
		to := State("permitted")
		if act.tripped {
			to = "tripped"
		}
		e.emit(act.cfg.Site, Event{TS: now, Type: EvActionConfirmed, Alarm: id, Action: id, From: to, To: to,
			Active: act.tripped, Value: math.NaN(), Limit: math.NaN(), Comment: detail})
	}
	act.failed.value = 0
	if !ok {
		act.failed.value = 1
	}
	e.setCond(act.failed, now, !ok)
	return e.take(), nil
}

// Actions returns every interlock action's state, in config order.
func (e *Engine) Actions() []ActionState {
	out := make([]ActionState, len(e.aclist))
	for i, a := range e.aclist {
		out[i] = ActionState{ID: a.cfg.ID, Tripped: a.tripped, Trigger: a.trigger, Awaiting: a.awaiting}
	}
	return out
}
