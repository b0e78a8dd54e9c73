package alerting

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

func (e *Engine) lookup(op, id, user string) (*alarm, error) {
	a, ok := e.alarm(id)
	if !ok {
		return nil, fmt.Errorf("%s %q: %w", op, id, ErrUnknownAlarm)
	}
	if strings.TrimSpace(user) == "" {
		return nil, fmt.Errorf("%s %s: %w", op, id, ErrUserRequired)
	}
	return a, nil
}

// Ack acknowledges an alarm: unacknowledged → acknowledged (active or
// latched), returned-unacknowledged → normal. It never changes whether the
// alarm is active. A comment is required for priority-1 alarms (unless
// comment_required: false).
func (e *Engine) Ack(now time.Time, id, user, comment string) ([]Event, error) {
	now = e.monotonic(now)
	a, err := e.lookup("ack", id, user)
	if err != nil {
		return nil, err
	}
	if a.acked {
		if a.baseState() == Normal {
			return nil, fmt.Errorf("ack %s: %w", id, ErrNothingToAck)
		}
		return nil, fmt.Errorf("ack %s: %w", id, ErrAlreadyAcked)
	}
	if a.spec.CommentRequired && strings.TrimSpace(comment) == "" {
		return nil, fmt.Errorf("ack %s: %w for a priority-%d alarm", id, ErrCommentRequired, a.spec.Priority)
	}
	from := a.state()
	x := a.ext()
	a.acked, x.ackedBy, x.comment, x.ackedAt, x.updated = true, user, comment, now, now
	e.alarmEvent(a, now, EvAck, from, user, comment)
	e.afterNormal(a, now)
	return e.take(), nil
}

// Reset clears a latched alarm. It is refused while the condition is
// present: the alarm active, its on-delay running, or the sensor's latest
// value not on the normal side of the return threshold (the restore level
// or the limit less the deadband: a power cut at 1.5 % with restore
// < 1.0 % is not released by a reset at 1.2 %); while the sensor's quality
// is not good (a bad reading, communication lost, or no reading since the
// engine started); and — unless reset_needs_ack: false — while the alarm
// is unacknowledged. A voting group's alarm, which has no reading of its
// own, is judged on its members (groupResettable): every member in service
// must be usable and its voting condition over on its latest value. A successful reset releases the interlock actions the
// alarm held (to "permitted"; nothing is restarted).
func (e *Engine) Reset(now time.Time, id, user, comment string) ([]Event, error) {
	now = e.monotonic(now)
	a, err := e.lookup("reset", id, user)
	if err != nil {
		return nil, err
	}
	// An alarm the fault hold keeps active (keepHeld) is back: it is
	// reset as the latched alarm its return would have left.
	switch {
	case a.active && !a.held:
		return nil, fmt.Errorf("reset %s: %w", id, ErrConditionPresent)
	case !a.latched && !(a.held && a.spec.Latch):
		return nil, fmt.Errorf("reset %s: %w", id, ErrNotLatched)
	case a.point != nil && !a.point.seen:
		return nil, fmt.Errorf("reset %s: %w (no reading since the engine started)", id, ErrQualityNotGood)
	case a.point != nil && a.point.lost():
		return nil, fmt.Errorf("reset %s: %w (communication lost)", id, ErrQualityNotGood)
	case a.point != nil && a.point.quality != Good:
		return nil, fmt.Errorf("reset %s: %w (%s)", id, ErrQualityNotGood, a.point.quality)
	case a.point != nil && a.point.x != nil && a.point.x.dev == a && !usable(a.point.x.devPeer):
		// A deviation is judged on both sensors: its value stopped when
		// the other one went bad or lost.
		return nil, fmt.Errorf("reset %s: %w (the compared sensor %s)", id, ErrQualityNotGood, peerID(a.point.x.devPeer))
	case a.group() != nil:
		if err := groupResettable(a.group()); err != nil {
			return nil, fmt.Errorf("reset %s: %w", id, err)
		}
	}
	switch {
	case !a.held && a.pending:
		return nil, fmt.Errorf("reset %s: %w (its on-delay is running)", id, ErrConditionPresent)
	case !a.held && !returned(a):
		return nil, fmt.Errorf("reset %s: %w (%s)", id, ErrConditionPresent, returnThreshold(a))
	case a.spec.ResetNeedsAck && !a.acked:
		return nil, fmt.Errorf("reset %s: %w", id, ErrResetNeedsAck)
	}
	if a.held {
		// Its return first (its event, the end of a one-shot shelve,
		// the latch), as it would have come without the hold.
		e.unhold(a)
		e.deactivate(a, now)
	}
	from := a.state()
	x := a.ext()
	a.latched, x.updated = false, now
	if !a.acked {
		a.acked, x.ackedBy, x.ackedAt = true, user, now
	}
	e.alarmEvent(a, now, EvReset, from, user, comment)
	e.afterNormal(a, now)
	e.updateActions(a, now)
	return e.take(), nil
}

// groupResettable reports why a voting group's latched trip cannot be
// reset, if it cannot: the group's alarm has no value of its own, so it is
// judged on its members, as a point's alarm on its sensor. Every member
// that is not out of service must be usable (a reading since the engine
// started, communication up, quality good) and its voting condition over
// on its latest value (no on-delay running, the value on the normal side
// of the return threshold). A member out of service is bypassed: it is
// not judged (its point's bypassed alarm stands).
func groupResettable(g *group) error {
	for i, p := range g.members {
		in := g.inputs[i]
		switch {
		case in.oos:
		case !p.seen:
			return fmt.Errorf("%w (%s: no reading since the engine started)", ErrQualityNotGood, p.id)
		case p.lost():
			return fmt.Errorf("%w (%s: communication lost)", ErrQualityNotGood, p.id)
		case p.quality != Good:
			return fmt.Errorf("%w (%s: %s)", ErrQualityNotGood, p.id, p.quality)
		case in.active && !in.held && !in.pending:
			return fmt.Errorf("%w (%s is active)", ErrConditionPresent, in.id)
		case !in.active && in.pending:
			return fmt.Errorf("%w (%s: its on-delay is running)", ErrConditionPresent, in.id)
		case !returned(in):
			return fmt.Errorf("%w (%s: %s)", ErrConditionPresent, in.id, returnThreshold(in))
		}
	}
	return nil
}

func peerID(p *point) string {
	if p == nil {
		return "(none)"
	}
	return p.id
}

// usable reports whether p has a good latest reading with communication up.
func usable(p *point) bool {
	return p != nil && p.seen && !p.lost() && p.quality == Good
}

// returned reports whether a latched alarm's condition is over on its
// latest value, judged as for an active alarm: the value on the normal
// side of the return threshold. Alarms without a threshold on a value
// (comm, bad, frozen, groups, actions) are over once inactive.
func returned(a *alarm) bool {
	s := a.spec
	switch {
	case a.point == nil:
		return true
	case s.Condition.isHighSide() || s.Condition.isLowSide():
		return limitReturned(s, a.value)
	case s.Condition == Rate && s.Limit < 0:
		return fallReturned(s, a.value)
	case s.Condition == Rate || s.Condition == Deviation || s.Condition == STEL || s.Condition == TWA:
		return highReturned(s, a.value)
	}
	return true
}

// returnThreshold says, for a refused reset, where the value is and
// where it must go.
func returnThreshold(a *alarm) string {
	s := a.spec
	v := strconv.FormatFloat(a.value, 'g', -1, 64)
	switch {
	case s.Condition.isHighSide() && s.HasRestore:
		return "value " + v + " is not below the restore level " + strconv.FormatFloat(s.Restore, 'g', -1, 64)
	case s.Condition.isLowSide() && s.HasRestore:
		return "value " + v + " is not above the restore level " + strconv.FormatFloat(s.Restore, 'g', -1, 64)
	case s.Condition.isLowSide() || (s.Condition == Rate && s.Limit < 0):
		return "value " + v + " is not above the return threshold " + strconv.FormatFloat(s.Limit+s.Deadband, 'g', -1, 64)
	}
	return "value " + v + " is not below the return threshold " + strconv.FormatFloat(s.Limit-s.Deadband, 'g', -1, 64)
}

// SetSystem raises or returns a system alarm (Config.Systems) with value
// (for its payload: e.g. the readings dropped so far). Through the on and
// off delays (none) as any condition; an unknown id is an error.
func (e *Engine) SetSystem(now time.Time, id string, active bool, value float64) ([]Event, error) {
	now = e.monotonic(now)
	for _, a := range e.systems {
		if a.id == id {
			a.value = value
			e.setCond(a, now, active)
			return e.take(), nil
		}
	}
	return nil, fmt.Errorf("system alarm %q: %w", id, ErrUnknownAlarm)
}

// Shelve shelves an alarm for d (at most Options.MaxShelve). A comment
// (the reason) is required. Priority-1 alarms and alarms driving an
// interlock are shelvable only with shelvable: true.
func (e *Engine) Shelve(now time.Time, id, user, comment string, d time.Duration) ([]Event, error) {
	now = e.monotonic(now)
	if d <= 0 {
		return nil, fmt.Errorf("shelve %s: %w", id, ErrBadDuration)
	}
	if d > e.opts.MaxShelve {
		return nil, fmt.Errorf("shelve %s for %s: %w (%s)", id, d, ErrShelveTooLong, e.opts.MaxShelve)
	}
	return e.shelveCmd(now, id, user, comment, timedShelve, now.Add(d))
}

// ShelveOneShot shelves an alarm until it next returns (its condition clears).
func (e *Engine) ShelveOneShot(now time.Time, id, user, comment string) ([]Event, error) {
	now = e.monotonic(now)
	return e.shelveCmd(now, id, user, comment, oneShotShelve, time.Time{})
}

func (e *Engine) shelveCmd(now time.Time, id, user, comment string, m shelveMode, until time.Time) ([]Event, error) {
	a, err := e.lookup("shelve", id, user)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.TrimSpace(comment) == "":
		return nil, fmt.Errorf("shelve %s: %w (the reason)", id, ErrCommentRequired)
	case a.standing():
		return nil, fmt.Errorf("shelve %s: %w: %w", id, ErrNotShelvable, ErrStandingAlarm)
	case !a.shelvable():
		return nil, fmt.Errorf("shelve %s: %w", id, ErrNotShelvable)
	case a.oos:
		return nil, fmt.Errorf("shelve %s: %w", id, ErrOutOfService)
	case a.shelve != notShelved:
		return nil, fmt.Errorf("shelve %s: %w", id, ErrAlreadyShelved)
	case m == oneShotShelve && !a.active:
		return nil, fmt.Errorf("shelve %s one-shot: %w", id, ErrNotActive)
	}
	from := a.state()
	x := a.ext()
	a.shelve, x.shelveUntil, x.updated = m, until, now
	c := comment
	if m == oneShotShelve {
		c = "one-shot: " + comment
	} else {
		c = "until " + until.UTC().Format(time.RFC3339) + ": " + comment
	}
	e.alarmEvent(a, now, EvShelve, from, user, c)
	return e.take(), nil
}

// Unshelve ends a shelve; an active alarm annunciates as unacknowledged.
func (e *Engine) Unshelve(now time.Time, id, user, comment string) ([]Event, error) {
	now = e.monotonic(now)
	a, err := e.lookup("unshelve", id, user)
	if err != nil {
		return nil, err
	}
	if a.shelve == notShelved {
		return nil, fmt.Errorf("unshelve %s: %w", id, ErrNotShelved)
	}
	e.unshelve(a, now, user, comment)
	return e.take(), nil
}

func (e *Engine) unshelve(a *alarm, now time.Time, user, comment string) {
	from := a.state()
	x := a.ext()
	a.shelve, x.shelveUntil, x.updated = notShelved, time.Time{}, now
	if a.active {
		a.acked, x.ackedBy, x.ackedAt = false, "", time.Time{}
	}
	e.alarmEvent(a, now, EvUnshelve, from, user, comment)
}

// OutOfService removes an alarm from service (maintenance) for d (0: until
// returned to service, refused for an interlock input: its bypass must be
// time-limited; at most Options.MaxOutOfService), with a mandatory reason.
// A bypassed or degraded alarm cannot be taken out of service
// (ErrStandingAlarm). The gateway checks the user's role (maintenance /
// engineer). An id "device.sensor" applies to every alarm of the point. An out-of-service alarm is still evaluated but
// no longer trips interlocks; a point feeding an interlock raises its
// "bypassed" alarm.
func (e *Engine) OutOfService(now time.Time, id, user, comment string, d time.Duration) ([]Event, error) {
	now = e.monotonic(now)
	if strings.TrimSpace(user) == "" {
		return nil, fmt.Errorf("out_of_service %s: %w", id, ErrUserRequired)
	}
	if strings.TrimSpace(comment) == "" {
		return nil, fmt.Errorf("out_of_service %s: %w (the reason)", id, ErrCommentRequired)
	}
	if d < 0 {
		return nil, fmt.Errorf("out_of_service %s: %w", id, ErrBadDuration)
	}
	if d > e.opts.MaxOutOfService {
		return nil, fmt.Errorf("out_of_service %s for %s: %w (%s)", id, d, ErrOutOfServiceTooLong, e.opts.MaxOutOfService)
	}
	targets, err := e.targets("out_of_service", id)
	if err != nil {
		return nil, err
	}
	for _, a := range targets {
		switch {
		case a.standing():
			return nil, fmt.Errorf("out_of_service %s: %w", id, ErrStandingAlarm)
		case d == 0 && a.feedsInterlock():
			// SAFETY §5.3: a bypass of an interlock input is
			// time-limited.
			return nil, fmt.Errorf("out_of_service %s: %w (an interlock input is taken out of service for a limited time: give an expiry)", id, ErrBadDuration)
		}
	}
	n := 0
	for _, a := range targets {
		if a.oos {
			continue
		}
		n++
		from := a.state()
		x := a.ext()
		a.oos, x.updated = true, now
		x.oosUntil = time.Time{}
		if d > 0 {
			x.oosUntil = now.Add(d)
		}
		c := comment
		if d > 0 {
			// As a shelve's: the audit trail says when the bypass ends.
			c = "until " + x.oosUntil.UTC().Format(time.RFC3339) + ": " + comment
		}
		e.alarmEvent(a, now, EvOutOfService, from, user, c)
		e.updateActions(a, now)
		e.updateBypass(a.point, now)
		for _, g := range a.memberOf() {
			e.evalGroup(g, now)
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("out_of_service %s: %w", id, ErrAlreadyOutService)
	}
	return e.take(), nil
}

// ReturnToService puts an out-of-service alarm (or every alarm of a point) back.
func (e *Engine) ReturnToService(now time.Time, id, user, comment string) ([]Event, error) {
	now = e.monotonic(now)
	if strings.TrimSpace(user) == "" {
		return nil, fmt.Errorf("return_to_service %s: %w", id, ErrUserRequired)
	}
	targets, err := e.targets("return_to_service", id)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, a := range targets {
		if a.oos {
			n++
			e.returnToService(a, now, user, comment)
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("return_to_service %s: %w", id, ErrNotOutOfService)
	}
	return e.take(), nil
}

func (e *Engine) returnToService(a *alarm, now time.Time, user, comment string) {
	from := a.state()
	x := a.ext()
	a.oos, x.oosUntil, x.updated = false, time.Time{}, now
	e.alarmEvent(a, now, EvReturnToService, from, user, comment)
	e.updateActions(a, now)
	e.updateBypass(a.point, now)
	for _, g := range a.memberOf() {
		e.evalGroup(g, now)
	}
}

func (e *Engine) targets(op, id string) ([]*alarm, error) {
	if a, ok := e.alarm(id); ok {
		return []*alarm{a}, nil
	}
	if p, ok := e.points[id]; ok {
		var out []*alarm
		for _, a := range p.all {
			if a != p.bypassed {
				out = append(out, a)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s %q: %w", op, id, ErrUnknownAlarm)
}

func (e *Engine) updateBypass(p *point, now time.Time) {
	if p == nil || p.bypassed == nil {
		return
	}
	n := 0
	for _, a := range p.all {
		if a != p.bypassed && a.oos {
			n++
		}
	}
	p.bypassed.value = float64(n)
	e.setCond(p.bypassed, now, n > 0)
}
