package httpapi

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// fakeBackend is an in-memory gateway: the seam the HTTP API talks to, not
// the thing under test. Its Command follows the ISA-18.2 rules closely
// enough to drive the UI through an alarm's life cycle, and it pushes every
// change into the server like the gateway does.
type fakeBackend struct {
	mu       sync.Mutex
	readings []Reading
	alarms   map[string]Alarm
	devices  []Device
	history  []Transition
	seq      uint64
	ready    bool
	commands []Command
	failWith error
	srv      *Server
	now      func() time.Time
	hold     *Transition
	holdGen  uint64
	// afterAlarms, when set, runs once after the first Alarms that follows
	// a command has read the alarms (outside the lock): the alarm can
	// change between the read and the command's answer built from it.
	afterAlarms func()
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{alarms: map[string]Alarm{}, ready: true, now: time.Now}
}

func fp(v float64) *float64 { return &v }

func (f *fakeBackend) Readings() []Reading {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Reading(nil), f.readings...)
}

func (f *fakeBackend) Alarms() []Alarm {
	f.mu.Lock()
	out := make([]Alarm, 0, len(f.alarms))
	for _, a := range f.alarms {
		out = append(out, a)
	}
	var after func()
	if len(f.commands) > 0 {
		after, f.afterAlarms = f.afterAlarms, nil
	}
	f.mu.Unlock()
	if after != nil {
		after()
	}
	return out
}

func (f *fakeBackend) Devices() []Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Device(nil), f.devices...)
}

func (f *fakeBackend) History(limit int) []Transition {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.history
	if len(h) > limit {
		h = h[len(h)-limit:]
	}
	return append([]Transition(nil), h...)
}

func (f *fakeBackend) FaultHolds() Holds {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.holdsLocked()
}

func (f *fakeBackend) holdsLocked() Holds {
	h := Holds{Gen: f.holdGen, Holds: []Transition{}}
	if f.hold != nil && f.hold.Type == "fault_hold" {
		h.Holds = append(h.Holds, *f.hold)
	}
	return h
}

// setFaultHold records a fault_hold (on) or fault_hold_end transition as
// the latest hold, and publishes it.
func (f *fakeBackend) setFaultHold(on bool, comment string) {
	f.mu.Lock()
	f.seq++
	typ := "fault_hold"
	if !on {
		typ = "fault_hold_end"
	}
	t := Transition{Seq: f.seq, TS: f.now(), Type: typ, User: "", Comment: comment}
	f.history = append(f.history, t)
	f.hold = &t
	f.holdGen++
	h := f.holdsLocked()
	f.mu.Unlock()
	f.publish(Event{Transition: &t})
	f.publish(Event{Holds: &h})
}

// setHolds replaces the list of holds, as a control room learning them
// from its sites' status does, and publishes it.
func (f *fakeBackend) setHolds(holds ...Transition) {
	f.mu.Lock()
	f.holdGen++
	h := Holds{Gen: f.holdGen, Holds: holds}
	f.mu.Unlock()
	f.publish(Event{Holds: &h})
}

func (f *fakeBackend) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

func (f *fakeBackend) publish(ev Event) {
	if f.srv != nil {
		f.srv.Publish(ev)
	}
}

// setReading stores a reading as the gateway's latest and publishes it.
func (f *fakeBackend) setReading(r Reading) {
	f.mu.Lock()
	replaced := false
	for i, old := range f.readings {
		if old.Device == r.Device && old.Sensor == r.Sensor {
			if r.Limits == nil {
				r.Limits = old.Limits
			}
			f.readings[i] = r
			replaced = true
		}
	}
	if !replaced {
		f.readings = append(f.readings, r)
	}
	f.mu.Unlock()
	f.publish(Event{Reading: &r})
}

// setAlarm stores an alarm state, records the transition and publishes both.
func (f *fakeBackend) setAlarm(a Alarm, typ, user, comment string) {
	f.mu.Lock()
	from := StateNormal
	if old, ok := f.alarms[a.ID]; ok {
		from = old.State
	}
	if a.Updated.IsZero() {
		a.Updated = f.now()
	}
	if a.State == StateNormal {
		delete(f.alarms, a.ID)
	} else {
		f.alarms[a.ID] = a
	}
	f.seq++
	t := Transition{Seq: f.seq, TS: a.Updated, Type: typ, Alarm: a.ID, From: from, To: a.State,
		Active: a.Active, Value: a.Value, Limit: a.Limit, User: user, Comment: comment}
	f.history = append(f.history, t)
	f.mu.Unlock()
	f.publish(Event{Alarm: &a})
	f.publish(Event{Transition: &t})
}

func (f *fakeBackend) Command(_ context.Context, cmd Command) error {
	f.mu.Lock()
	f.commands = append(f.commands, cmd)
	if f.failWith != nil {
		err := f.failWith
		f.mu.Unlock()
		return err
	}
	a, ok := f.alarms[cmd.Alarm]
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s %s: %w", cmd.Action, cmd.Alarm, ErrUnknownAlarm)
	}
	a.Updated = f.now()
	switch cmd.Action {
	case "ack":
		switch {
		case a.State == StateUnacknowledged:
			a.State = StateAcknowledged
		case a.State == StateReturnedUnacknowledged && !a.Latched:
			a.State = StateNormal
		case a.State == StateReturnedUnacknowledged:
			a.State = StateAcknowledged
		default:
			return fmt.Errorf("ack %s in state %s: %w", a.ID, a.State, ErrNotAllowed)
		}
		a.AckedBy, a.Comment = cmd.User, cmd.Comment
	case "shelve":
		if a.Priority == 1 {
			return fmt.Errorf("shelve %s: P1 alarms cannot be shelved: %w", a.ID, ErrNotAllowed)
		}
		if cmd.Duration > 8*time.Hour {
			return fmt.Errorf("shelve %s for %s: longer than the maximum 8h: %w", a.ID, cmd.Duration, ErrBadCommand)
		}
		a.State, a.Comment = StateShelved, cmd.Comment
	case "out_of_service":
		a.State, a.Comment = StateOutOfService, cmd.Comment
	case "return_to_service":
		if a.State != StateOutOfService {
			return fmt.Errorf("return_to_service %s: not out of service: %w", a.ID, ErrNotAllowed)
		}
		a.State = StateNormal
		if a.Active {
			a.State = StateUnacknowledged // annunciated again, as the engine does
		}
	case "unshelve":
		if a.State != StateShelved {
			return fmt.Errorf("unshelve %s: not shelved: %w", a.ID, ErrNotAllowed)
		}
		a.State = StateUnacknowledged
	case "reset":
		if !a.Latched || a.Active {
			return fmt.Errorf("reset %s: condition still active: %w", a.ID, ErrNotAllowed)
		}
		a.State = StateNormal
	}
	f.setAlarm(a, cmd.Action, cmd.User, cmd.Comment)
	return nil
}

func (f *fakeBackend) commandCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.commands)
}

func (f *fakeBackend) lastCommand() (Command, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.commands) == 0 {
		return Command{}, false
	}
	return f.commands[len(f.commands)-1], true
}
