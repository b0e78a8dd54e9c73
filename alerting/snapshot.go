package alerting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/canary-gw/canary/internal/jsonenc"
)

const snapshotVersion = 1

type snapAlarm struct {
	ID          string    `json:"id"`
	Active      bool      `json:"active,omitempty"`
	Acked       bool      `json:"acked"`
	Latched     bool      `json:"latched,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	Updated     time.Time `json:"updated,omitzero"`
	AckedAt     time.Time `json:"acked_at,omitzero"`
	AckedBy     string    `json:"acked_by,omitempty"`
	Comment     string    `json:"comment,omitempty"`
	Value       *float64  `json:"value,omitempty"`
	Shelve      string    `json:"shelve,omitempty"` // "timed" | "oneshot"
	ShelveUntil time.Time `json:"shelve_until,omitzero"`
	OOS         bool      `json:"oos,omitempty"`
	OOSUntil    time.Time `json:"oos_until,omitzero"`
	FirstOut    bool      `json:"first_out,omitempty"`
	Stale       bool      `json:"stale,omitempty"`
	// Held: the fault hold kept it active after its return fell due
	// (SetFaultHold). A restored engine has no hold, but keeps it held
	// until released (ReleaseHeld).
	Held bool `json:"held,omitempty"`
}

type snapAction struct {
	ID      string `json:"id"`
	Tripped bool   `json:"tripped"`
	Trigger string `json:"trigger,omitempty"`
}

type snapshot struct {
	Version int `json:"version"`
	// SavedAt is when the snapshot was written. Every time in it is on
	// the wall clock of that moment, whatever steps the clock took while
	// the engine ran, so that a restore can tell how far each was from
	// it (restoredclock.go).
	SavedAt time.Time         `json:"saved_at,omitzero"`
	Seq     map[string]uint64 `json:"seq"`
	Flood   map[string]bool   `json:"flood,omitempty"`
	Alarms  []snapAlarm       `json:"alarms"`
	Actions []snapAction      `json:"actions,omitempty"`
}

// Snapshot returns the state to persist across a gateway restart: every
// alarm that is not plainly normal (unacknowledged, latched, active,
// shelved, out of service, with their original since), the event
// sequence numbers per site, flood state and tripped actions. Evaluation
// state (delay timers, rate windows, exposure averages) is not kept. now
// is the time it is written (the gateway's clock, with its monotonic
// reading).
func (e *Engine) Snapshot(now time.Time) ([]byte, error) {
	var b bytes.Buffer
	err := e.WriteSnapshot(now, &b)
	return b.Bytes(), err
}

// snapChunk is how much of a snapshot WriteSnapshot holds before writing.
const snapChunk = 32 << 10

// WriteSnapshot writes Snapshot's JSON to w in chunks, without holding the
// whole snapshot or a copy of every alarm in memory: with thousands of
// alarms standing (a flood at a large site) the reflection encoder built
// both, plus its own growing buffer, tens of MB at every persist. The
// output is the JSON that encoding/json wrote for the snapshot struct
// (TestWriteSnapshotMatchesEncodingJSON).
func (e *Engine) WriteSnapshot(now time.Time, w io.Writer) error {
	b := make([]byte, 0, snapChunk+1024)
	flush := func(force bool) error {
		if len(b) == 0 || (!force && len(b) < snapChunk) {
			return nil
		}
		_, err := w.Write(b)
		b = b[:0]
		return err
	}
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, snapshotVersion, 10)
	b = appendSnapTime(b, `,"saved_at":`, now.Round(0))
	sites := make([]string, 0, len(e.sites))
	for site := range e.sites {
		sites = append(sites, site)
	}
	slices.Sort(sites) // encoding/json's order for map keys
	b = append(b, `,"seq":{`...)
	for i, site := range sites {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, site)
		b = append(b, ':')
		b = strconv.AppendUint(b, e.sites[site].seq, 10)
	}
	b = append(b, '}')
	flood := false
	for _, site := range sites {
		if !e.sites[site].flood {
			continue
		}
		if !flood {
			b = append(b, `,"flood":{`...)
			flood = true
		} else {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, site)
		b = append(b, `:true`...)
	}
	if flood {
		b = append(b, '}')
	}
	b = append(b, `,"alarms":`...)
	n := 0
	for _, a := range e.alist {
		if a.baseState() == Normal && a.shelve == notShelved && !a.oos {
			continue
		}
		if n == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		n++
		b = e.appendSnapAlarm(b, a, now)
		if err := flush(false); err != nil {
			return err
		}
	}
	if n == 0 {
		b = append(b, "null"...) // a nil slice, as encoding/json wrote it
	} else {
		b = append(b, ']')
	}
	n = 0
	for _, act := range e.aclist {
		if !act.tripped {
			continue
		}
		if n == 0 {
			b = append(b, `,"actions":[`...)
		} else {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"id":`...)
		b = jsonenc.AppendString(b, act.cfg.ID)
		b = append(b, `,"tripped":true`...)
		if act.trigger != "" {
			b = append(b, `,"trigger":`...)
			b = jsonenc.AppendString(b, act.trigger)
		}
		b = append(b, '}')
	}
	if n > 0 {
		b = append(b, ']')
	}
	b = append(b, '}')
	return flush(true)
}

// appendSnapAlarm writes one alarm as the snapAlarm struct's JSON (its tags
// say which members are left out when empty).
func (e *Engine) appendSnapAlarm(b []byte, a *alarm, now time.Time) []byte {
	b = append(b, `{"id":`...)
	b = jsonenc.AppendString(b, a.id)
	if a.active {
		b = append(b, `,"active":true`...)
	}
	b = append(b, `,"acked":`...)
	b = strconv.AppendBool(b, a.acked)
	if a.latched {
		b = append(b, `,"latched":true`...)
	}
	b = appendSnapTime(b, `,"since":`, e.onClockOf(now, a.since()))
	b = appendSnapTime(b, `,"updated":`, e.onClockOf(now, a.updated()))
	b = appendSnapTime(b, `,"acked_at":`, e.onClockOf(now, a.ackedAt()))
	if s := a.ackedBy(); s != "" {
		b = append(b, `,"acked_by":`...)
		b = jsonenc.AppendString(b, s)
	}
	if s := a.comment(); s != "" {
		b = append(b, `,"comment":`...)
		b = jsonenc.AppendString(b, s)
	}
	if v := e.valueOf(a); !math.IsNaN(v) && !math.IsInf(v, 0) {
		b = append(b, `,"value":`...)
		b = jsonenc.AppendFloat(b, v)
	}
	switch a.shelve {
	case timedShelve:
		b = append(b, `,"shelve":"timed"`...)
	case oneShotShelve:
		b = append(b, `,"shelve":"oneshot"`...)
	}
	b = appendSnapTime(b, `,"shelve_until":`, e.onClockOf(now, a.shelveUntil()))
	if a.oos {
		b = append(b, `,"oos":true`...)
	}
	b = appendSnapTime(b, `,"oos_until":`, e.onClockOf(now, a.oosUntil()))
	if a.firstOut {
		b = append(b, `,"first_out":true`...)
	}
	if a.stale {
		b = append(b, `,"stale":true`...)
	}
	if a.held {
		b = append(b, `,"held":true`...)
	}
	return append(b, '}')
}

// onClockOf returns t, a time of the engine at now, on now's wall clock,
// the snapshot's saved_at. A time taken before a step of the wall clock
// (NTP at boot) has the monotonic reading: it is moved by the monotonic
// difference, and so written as it relates to saved_at, not as the clock
// then said. Without a step between them it is as it was: Go reads the two
// clocks apart, so their differences disagree by nanoseconds, and a
// restart must not move an alarm's since. A restored time (no monotonic
// reading) is on the clock of the snapshot it came from; after a restore
// with the clock behind that snapshot's (restoredclock.go) it is moved by
// how far that clock, as judgeNow carries it on, is ahead of now's, so that
// a second restart before NTP keeps what the first one knew. Tests' fixed
// times have no monotonic reading either and no restore behind: as they
// were.
func (e *Engine) onClockOf(now, t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	base := now.Round(0)
	if wallOnly(t) {
		if ahead := e.judgeNow(now, t).Round(0).Sub(base); ahead > 0 {
			return t.Add(-ahead)
		}
		return t
	}
	d := t.Sub(now) // monotonic
	if step := t.Round(0).Sub(base) - d; step < clockStepMin && step > -clockStepMin {
		return t
	}
	return base.Add(d)
}

// clockStepMin is the smallest disagreement between the wall and monotonic
// clocks onClockOf takes for a step of the wall clock.
const clockStepMin = time.Millisecond

// appendSnapTime writes a time member as time.Time's MarshalJSON does (RFC
// 3339 with the fraction's trailing zeros dropped, in the time's own
// zone), left out for the zero time (omitzero).
func appendSnapTime(b []byte, member string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, member...)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// Restore loads a Snapshot into a freshly built engine at now. Alarms no
// longer configured are skipped and listed in the error, an
// *UnknownAlarmsError (the rest is restored). A shelve of unknown mode is dropped (unshelved, as OPC UA
// requires after a restart with unknown shelving state). Actions that
// were tripped are re-issued as action_trip events so the gateway writes
// them again; an active alarm stays active until a sample shows its
// condition gone.
func (e *Engine) Restore(now time.Time, data []byte) ([]Event, error) {
	now = e.monotonic(now)
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("restore alarm snapshot: %w", err)
	}
	if s.Version != snapshotVersion {
		return nil, fmt.Errorf("restore alarm snapshot: unsupported version %d (want %d)", s.Version, snapshotVersion)
	}
	for site, seq := range s.Seq {
		st := e.sites[site]
		if st == nil {
			st = &siteState{}
			e.sites[site] = st
		}
		if seq > st.seq {
			st.seq = seq
		}
		st.flood = s.Flood[site]
	}
	if !s.SavedAt.IsZero() && now.Round(0).Before(s.SavedAt) {
		e.behind = &behindClock{saved: s.SavedAt, at: now} // restoredclock.go
	}
	e.shortened = nil
	var unknown []string
	var held []*alarm
	for _, sa := range s.Alarms {
		a, ok := e.alarm(sa.ID)
		if !ok {
			unknown = append(unknown, sa.ID)
			continue
		}
		a.active, a.acked, a.latched = sa.Active, sa.Acked, sa.Latched && a.spec.Latch
		if sa.Latched && !a.spec.Latch {
			// The latch was configured away: keep the alarm visible as
			// returned-unacknowledged rather than dropping it silently.
			a.acked = false
		}
		x := a.ext()
		x.since, x.updated, x.ackedAt, x.ackedBy, x.comment = sa.Since, sa.Updated, sa.AckedAt, sa.AckedBy, sa.Comment
		if sa.Value != nil {
			a.value = *sa.Value
			if p := a.point; p != nil && p.comm == a {
				p.commStamp = e.ticks
			}
		}
		switch sa.Shelve {
		case "timed":
			until := sa.ShelveUntil
			if until.Sub(e.judgeNow(now, until)) > e.opts.MaxShelve {
				// No shelve is longer than MaxShelve, judged as the
				// restored times are (restoredclock.go). Only a clock
				// that is wrong in a way saved_at does not show gets
				// here: a snapshot from before it existed, or one
				// written with the clock ahead and restored with it
				// further ahead. At most MaxShelve from now instead,
				// on the monotonic clock.
				until = now.Add(e.opts.MaxShelve)
				e.shortened = append(e.shortened, sa.ID)
			}
			a.shelve, x.shelveUntil = timedShelve, until
		case "oneshot":
			a.shelve = oneShotShelve
		default:
			a.shelve = notShelved
		}
		a.oos, x.oosUntil, a.stale = sa.OOS, sa.OOSUntil, sa.Stale
		if a.standing() {
			// A bypassed or degraded alarm is never hidden: a shelve or
			// out of service saved by an engine that still allowed one
			// is not restored.
			a.shelve, x.shelveUntil = notShelved, time.Time{}
			a.oos, x.oosUntil = false, time.Time{}
		}
		if sa.Held && a.active && a.point != nil && (a.point.comm == a || a.point.bad == a) {
			held = append(held, a)
		}
		if sa.FirstOut {
			for _, g := range a.memberOf() {
				if g.firstOut == nil {
					g.firstOut, g.firstOutAt = a, x.since
					for i, in := range g.inputs {
						if in == a {
							g.firstOutIdx = i
						}
					}
					a.firstOut = true
				}
			}
		}
	}
	// Restored alarms have their timers set afresh, and every group is
	// counted again at the next Tick (its alarms' values came from the
	// snapshot).
	for _, sa := range s.Alarms {
		if a, ok := e.alarm(sa.ID); ok {
			e.changed(a)
		}
	}
	// Kept active by the last process's fault hold: their returns fell
	// due then. They stay held, for the caller to release (ReleaseHeld)
	// a few at a time, as after a hold: a restart during a hold, or
	// while its alarms were being released, does not return them all at
	// once. Held, they demand what their returns would have (demands).
	for _, a := range held {
		e.markHeld(a)
	}
	for _, g := range e.groups {
		e.markGroup(g)
	}
	for _, p := range e.plist {
		e.updateBypass(p, now)
	}
	// A trip held by an out-of-service trigger stays tripped, as it did
	// before the restart (updateAction counts such a trigger only for an
	// action already tripped).
	for _, sa := range s.Actions {
		if act, ok := e.actions[sa.ID]; ok && sa.Tripped {
			act.restoredTrip = true
		}
	}
	for _, act := range e.aclist {
		e.updateAction(act, now, nil)
		act.restoredTrip = false
	}
	var err error
	if len(unknown) > 0 {
		sort.Strings(unknown)
		err = &UnknownAlarmsError{IDs: unknown}
	}
	return e.take(), err
}

// UnknownAlarmsError is Restore's error for a snapshot that holds alarms
// the engine no longer has (a device, sensor or condition taken out of the
// config): everything else was restored. Their retained states are the
// gateway's to clear.
type UnknownAlarmsError struct {
	IDs []string // sorted
}

func (e *UnknownAlarmsError) Error() string {
	return fmt.Sprintf("restore alarm snapshot: %d alarms no longer configured: %v", len(e.IDs), e.IDs)
}
