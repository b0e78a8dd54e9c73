package control

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/canary-gw/canary/gateway/httpapi"
	"github.com/canary-gw/canary/gateway/mqtt"
)

// historyLen bounds the in-memory audit trail served to the UI.
const historyLen = 5000

// state is what the control room knows of every site. Written from the
// MQTT callbacks, read by HTTP request goroutines.
type state struct {
	mu       sync.RWMutex
	readings map[string]httpapi.Reading // by site.device/sensor
	alarms   map[string]httpapi.Alarm   // by site.alarm-id
	devices  map[string]httpapi.Device  // by site.device
	sites    map[string]string          // site -> online | offline
	limits   map[string][]httpapi.Limit // by site.device/sensor, learnt from alarm payloads
	lastPoll map[string]pollMark        // by site.device: the newest readings message
	history  []httpapi.Transition
	// holds are the fault holds in force, by site, from the sites'
	// retained status (docs/alarms.md, "The fault hold").
	holds   map[string]httpapi.Transition
	holdGen uint64
}

func newState() *state {
	return &state{
		readings: map[string]httpapi.Reading{},
		alarms:   map[string]httpapi.Alarm{},
		devices:  map[string]httpapi.Device{},
		sites:    map[string]string{},
		limits:   map[string][]httpapi.Limit{},
		lastPoll: map[string]pollMark{},
		holds:    map[string]httpapi.Transition{},
	}
}

// pollMark is a readings message's place: its seq and its time.
type pollMark struct {
	seq uint64
	ts  time.Time
}

// qualify makes a device or alarm id unique across sites.
func qualify(site, id string) string { return site + "." + id }

// splitQualified splits "<site>.<id>" at its first dot (site ids have none).
func splitQualified(q string) (site, id string, ok bool) {
	site, id, ok = strings.Cut(q, ".")
	return site, id, ok && mqtt.ValidID(site) && id != ""
}

// setReadings stores a site's readings message, received at at. fresh is
// false, and nothing is stored, for a message older than the newest of its
// device by both seq and time: a poll the gateway republished (receipt
// mode republishes unconfirmed polls, in no order), which must not replace
// a newer value on the page. Either alone is not enough to drop it: seqs
// start again after a gateway's outbox is replaced, and times go back
// after a step of its wall clock. The marks are forgotten when the site
// comes online again or its status reports a device's seqs lower
// (setStatus). A poll republished from before a step of the clock back
// still shows, until the next poll.
func (s *state) setReadings(m mqtt.Readings, at time.Time) (out []httpapi.Reading, fresh bool) {
	dev := qualify(m.Site, m.Device)
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.lastPoll[dev]; ok && m.Seq <= last.seq && !m.TS.After(last.ts) {
		return nil, false
	}
	s.lastPoll[dev] = pollMark{seq: m.Seq, ts: m.TS}
	out = make([]httpapi.Reading, 0, len(m.Readings))
	for _, r := range m.Readings {
		k := dev + "/" + r.Sensor
		hr := httpapi.Reading{Site: m.Site, Device: dev, Sensor: r.Sensor, Kind: r.Kind, Unit: r.Unit,
			Quality: r.Quality, TS: m.TS, Received: at, Limits: s.limits[k]}
		if r.Valid {
			v := r.Value
			hr.Value = &v
		}
		s.readings[k] = hr
		out = append(out, hr)
	}
	return out, true
}

// setAlarm stores a retained alarm state; it returns the alarm as the API
// shows it.
func (s *state) setAlarm(a mqtt.AlarmState) httpapi.Alarm {
	ha := httpapi.Alarm{
		ID: qualify(a.Site, a.ID), Site: a.Site, Device: qualify(a.Site, a.Device), Sensor: a.Sensor,
		Condition: a.Condition, Priority: a.Priority, State: a.State, Active: a.Active, Latched: a.Latched,
		Value: a.Value, Limit: a.Limit, Since: a.Since, Updated: a.Updated, AckedBy: a.AckedBy, Comment: a.Comment,
	}
	if a.Device == "" {
		ha.Device = ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.State == httpapi.StateNormal {
		delete(s.alarms, ha.ID)
	} else {
		s.alarms[ha.ID] = ha
	}
	if a.Limit != nil && a.Device != "" && a.Sensor != "" {
		switch a.Condition {
		case "high_high", "high", "low", "low_low":
			s.learnLimit(ha.Device+"/"+a.Sensor, httpapi.Limit{Condition: a.Condition, Limit: *a.Limit, Priority: a.Priority})
		}
	}
	return ha
}

// learnLimit remembers a sensor's alarm limit so trends can draw it; the
// control room has no site configs, only what the alarms told it.
func (s *state) learnLimit(k string, l httpapi.Limit) {
	ls := s.limits[k]
	for i := range ls {
		if ls[i].Condition == l.Condition {
			ls[i] = l
			return
		}
	}
	s.limits[k] = append(ls, l)
	if r, ok := s.readings[k]; ok {
		r.Limits = s.limits[k]
		s.readings[k] = r
	}
}

// clearAlarm handles an empty retained payload: the alarm is normal.
func (s *state) clearAlarm(site, id string) (httpapi.Alarm, bool) {
	q := qualify(site, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.alarms[q]
	if !ok {
		return httpapi.Alarm{}, false
	}
	delete(s.alarms, q)
	a.State, a.Active, a.Latched = httpapi.StateNormal, false, false
	return a, true
}

// forgetAlarms drops every alarm of the given sites (all when nil), before
// the retained states are delivered again after a reconnect; it returns
// the dropped alarms so they can be reconciled.
func (s *state) forgetAlarms() map[string]httpapi.Alarm {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.alarms
	s.alarms = map[string]httpapi.Alarm{}
	return old
}

func (s *state) hasAlarm(q string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.alarms[q]
	return ok
}

func (s *state) addTransition(site string, ev mqtt.Event) httpapi.Transition {
	t := httpapi.Transition{Seq: ev.Seq, TS: ev.TS, Type: ev.Type, Alarm: qualify(site, ev.Alarm), From: ev.From,
		To: ev.To, Active: ev.Active, Value: ev.Value, Limit: ev.Limit, User: ev.User, Comment: ev.Comment}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history = append(s.history, t)
	if len(s.history) > historyLen {
		s.history = append(s.history[:0:0], s.history[len(s.history)-historyLen:]...)
	}
	return t
}

// siteStatus is the retained status payload.
type siteStatus struct {
	State     string `json:"state"`
	Site      string `json:"site"`
	FaultHold *struct {
		Since  time.Time `json:"since"`
		Reason string    `json:"reason"`
	} `json:"fault_hold"`
	Devices []struct {
		Device  string `json:"device"`
		Comm    string `json:"comm"`
		LastSeq uint64 `json:"last_seq"`
	} `json:"devices"`
}

// setStatus records a site's status; it returns the devices whose state
// it changed.
func (s *state) setStatus(site string, st siteStatus) (devices []httpapi.Device, holdsChanged bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.State == "online" && s.sites[site] != "online" {
		// A new session of the site's gateway: its seqs (a replaced
		// box, a new outbox) and its clock may have started again, so
		// the marks of the last one must not hold its readings back.
		for id := range s.lastPoll {
			if strings.HasPrefix(id, site+".") {
				delete(s.lastPoll, id)
			}
		}
	}
	s.sites[site] = st.State
	old, had := s.holds[site]
	if h := st.FaultHold; h != nil && st.State == "online" {
		t := httpapi.Transition{TS: h.Since, Type: "fault_hold", Alarm: qualify(site, ""), Comment: h.Reason}
		s.holds[site] = t
		holdsChanged = !had || !old.TS.Equal(t.TS) || old.Comment != t.Comment
	} else {
		// Ended, or the gateway is gone: what it held is its alarms'.
		delete(s.holds, site)
		holdsChanged = had
	}
	if holdsChanged {
		s.holdGen++
	}
	var out []httpapi.Device
	for _, d := range st.Devices {
		id := qualify(site, d.Device)
		if m, ok := s.lastPoll[id]; ok && d.LastSeq < m.seq {
			delete(s.lastPoll, id) // its seqs started again
		}
		hd := s.devices[id]
		hd.Site, hd.ID = site, id
		switch {
		case st.State != "online":
			// The gateway is gone: nothing it said about its devices holds.
			hd.State, hd.Error = "unknown", "site "+site+" is "+st.State
		case d.Comm == "ok":
			hd.State, hd.Error = "online", ""
		case d.Comm == "lost":
			hd.State, hd.Error = "offline", "communication lost"
		case d.Comm == "fault":
			hd.State, hd.Error = "fault", "device reports a fault"
		default:
			hd.State, hd.Error = "unknown", ""
		}
		s.devices[id] = hd
		out = append(out, hd)
	}
	if st.State != "online" {
		for id, hd := range s.devices {
			if hd.Site == site && hd.State != "unknown" {
				hd.State, hd.Error = "unknown", "site "+site+" is "+st.State
				s.devices[id] = hd
				out = append(out, hd)
			}
		}
	}
	return out, holdsChanged
}

// markDevice records that a device just delivered a poll.
func (s *state) markDevice(site, device string, m mqtt.Readings) (httpapi.Device, bool) {
	id := qualify(site, device)
	s.mu.Lock()
	defer s.mu.Unlock()
	hd, ok := s.devices[id]
	changed := !ok
	hd.Site, hd.ID = site, id
	if !ok {
		hd.State = "unknown"
	}
	allBad := len(m.Readings) > 0
	for _, r := range m.Readings {
		if r.Quality != mqtt.QualityBad {
			allBad = false
		}
	}
	if !allBad {
		hd.LastOK = m.TS
		if hd.State != "online" {
			hd.State, hd.Error, changed = "online", "", true
		}
	}
	s.devices[id] = hd
	return hd, changed
}

func (s *state) siteState(site string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.sites[site]
	return st, ok
}

func (s *state) readingsList() []httpapi.Reading {
	s.mu.RLock()
	out := make([]httpapi.Reading, 0, len(s.readings))
	for _, r := range s.readings {
		out = append(out, r)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Device != out[j].Device {
			return out[i].Device < out[j].Device
		}
		return out[i].Sensor < out[j].Sensor
	})
	return out
}

func (s *state) alarmList() []httpapi.Alarm {
	s.mu.RLock()
	out := make([]httpapi.Alarm, 0, len(s.alarms))
	for _, a := range s.alarms {
		out = append(out, a)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *state) deviceList() []httpapi.Device {
	s.mu.RLock()
	out := make([]httpapi.Device, 0, len(s.devices))
	for _, d := range s.devices {
		out = append(out, d)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *state) historyTail(limit int) []httpapi.Transition {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if limit <= 0 || limit > len(s.history) {
		limit = len(s.history)
	}
	return append([]httpapi.Transition(nil), s.history[len(s.history)-limit:]...)
}

// faultHolds lists the fault holds in force, by site.
func (s *state) faultHolds() httpapi.Holds {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]httpapi.Transition, 0, len(s.holds))
	for _, t := range s.holds {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b httpapi.Transition) int { return strings.Compare(a.Alarm, b.Alarm) })
	return httpapi.Holds{Gen: s.holdGen, Holds: out}
}
