package alerting

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
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
}

type snapAction struct {
	ID      string `json:"id"`
	Tripped bool   `json:"tripped"`
	Trigger string `json:"trigger,omitempty"`
}

type snapshot struct {
	Version int               `json:"version"`
	Seq     map[string]uint64 `json:"seq"`
	Flood   map[string]bool   `json:"flood,omitempty"`
	Alarms  []snapAlarm       `json:"alarms"`
	Actions []snapAction      `json:"actions,omitempty"`
}

// Snapshot returns the state to persist across a gateway restart: every
// alarm that is not plainly normal (unacknowledged, latched, active,
// shelved, out of service, with their original since), the event
// sequence numbers per site, flood state and tripped actions. Evaluation
// state (delay timers, rate windows, exposure averages) is not kept.
func (e *Engine) Snapshot() ([]byte, error) {
	s := snapshot{Version: snapshotVersion, Seq: map[string]uint64{}, Flood: map[string]bool{}}
	for site, st := range e.sites {
		s.Seq[site] = st.seq
		if st.flood {
			s.Flood[site] = true
		}
	}
	for _, a := range e.alist {
		if a.baseState() == Normal && a.shelve == notShelved && !a.oos {
			continue
		}
		sa := snapAlarm{ID: a.id, Active: a.active, Acked: a.acked, Latched: a.latched, Since: a.since(),
			Updated: a.updated(), AckedAt: a.ackedAt(), AckedBy: a.ackedBy(), Comment: a.comment(),
			ShelveUntil: a.shelveUntil(), OOS: a.oos, OOSUntil: a.oosUntil(), FirstOut: a.firstOut, Stale: a.stale}
		if v := e.valueOf(a); !math.IsNaN(v) && !math.IsInf(v, 0) {
			sa.Value = &v
		}
		switch a.shelve {
		case timedShelve:
			sa.Shelve = "timed"
		case oneShotShelve:
			sa.Shelve = "oneshot"
		}
		s.Alarms = append(s.Alarms, sa)
	}
	for _, act := range e.aclist {
		if act.tripped {
			s.Actions = append(s.Actions, snapAction{ID: act.cfg.ID, Tripped: true, Trigger: act.trigger})
		}
	}
	return json.Marshal(s)
}

// Restore loads a Snapshot into a freshly built engine at now. Alarms no
// longer configured are skipped and listed in the error (the rest is
// restored). A shelve of unknown mode is dropped (unshelved, as OPC UA
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
	var unknown []string
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
			a.shelve, x.shelveUntil = timedShelve, sa.ShelveUntil
		case "oneshot":
			a.shelve = oneShotShelve
		default:
			a.shelve = notShelved
		}
		a.oos, x.oosUntil, a.stale = sa.OOS, sa.OOSUntil, sa.Stale
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
	for _, g := range e.groups {
		e.markGroup(g)
	}
	for _, p := range e.plist {
		e.updateBypass(p, now)
	}
	for _, act := range e.aclist {
		e.updateAction(act, now, nil)
	}
	var err error
	if len(unknown) > 0 {
		sort.Strings(unknown)
		err = fmt.Errorf("restore alarm snapshot: %d alarms no longer configured: %v", len(unknown), unknown)
	}
	return e.take(), err
}
