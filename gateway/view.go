package gateway

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/gateway/httpapi"
	"github.com/canary-gw/canary/gateway/mqtt"
)

// historyLen bounds the in-memory audit trail served to the UI; the full
// trail is the events topic and InfluxDB's alarm measurement.
const historyLen = 2000

type sensorMeta struct {
	id, device, sensor, kind, unit string
	limits                         []httpapi.Limit
	idx                            int          // into view.live; -1: not configured
	trend                          int32        // httpapi.Server.TrendSeries; -1: none yet
	ref                            alerting.Ref // the engine's handle; zero: not an engine point
}

// liveReading is a sensor's latest reading, without pointers to the heap:
// the HTTP API's reading is built from it and the sensor's metadata only
// when a client asks.
type liveReading struct {
	ns int64 // unix ns; 0: never read
	// mono is when the poll's answer arrived, in ns after view.epoch on
	// the monotonic clock: its age in the API and whether it can confirm
	// an interlock's write stay right across a step of the wall clock
	// (NTP at an edge box's boot), which ns alone would get wrong for the
	// step's length.
	mono    int64
	value   float64
	valid   bool
	quality string // one of the contract's constants
}

// view is the gateway state that the HTTP API reads: written by the core
// goroutine, read by request goroutines.
type view struct {
	site  string
	epoch time.Time // liveReading.mono's origin, with its monotonic reading

	// Set once by init, read-only after. metas holds every sensor once,
	// in config order; byDevice's lists are windows onto it (a device's
	// sensors in the order of its poll batches' readings, so the hot path
	// neither builds point ids nor looks each one up), meta indexes it.
	metas    []sensorMeta
	meta     map[string]int
	byDevice map[string][]sensorMeta
	devOrder []string
	users    []httpapi.User

	mu      sync.RWMutex
	live    []liveReading // by sensorMeta.idx
	devices map[string]httpapi.Device
	alarms  map[string]httpapi.Alarm
	// classes counts the alarms in alarms by state and priority (the
	// canary_alarms gauge), kept up to date by setAlarm: O(1) per
	// transition, where counting at every commit was O(alarms not
	// normal), which an alarm flood made the largest cost of each commit.
	classes map[alarmClass]int
	history []httpapi.Transition
	// hold is the latest fault_hold or fault_hold_end transition (the
	// control room's banner), nil before the first; holdGen counts them.
	hold    *httpapi.Transition
	holdGen uint64
}

// alarmClass is one series of the canary_alarms gauge.
type alarmClass struct {
	state    string
	priority int
}

func (v *view) init(s *configs.Site, eng *alerting.Engine) {
	v.site = s.Site
	v.epoch = time.Now()
	v.meta = map[string]int{}
	v.byDevice = map[string][]sensorMeta{}
	v.devices = map[string]httpapi.Device{}
	v.alarms = map[string]httpapi.Alarm{}
	v.classes = map[alarmClass]int{}
	n := 0
	for _, d := range s.Devices {
		n += len(d.Sensors)
	}
	v.metas = make([]sensorMeta, 0, n)
	// Sensors of one kind mostly share their limits: one slice for each
	// distinct set, not one per sensor (10 000 sensors, 2 MB).
	shared := map[string][]httpapi.Limit{}
	for _, d := range s.Devices {
		v.devOrder = append(v.devOrder, d.ID)
		v.devices[d.ID] = httpapi.Device{Site: s.Site, ID: d.ID, State: "unknown"}
		first := len(v.metas)
		for _, sn := range d.Sensors {
			id := d.ID + "." + sn.ID
			m := sensorMeta{id: id, device: d.ID, sensor: sn.ID, kind: sn.Kind, unit: sn.Unit, idx: len(v.metas), ref: eng.Ref(id)}
			if r, ok := eng.PointSpec(id); ok {
				m.unit = r.Unit
				for _, c := range r.Conditions {
					switch c.Condition {
					case alerting.HighHigh, alerting.High, alerting.Low, alerting.LowLow:
						m.limits = append(m.limits, httpapi.Limit{Condition: string(c.Condition), Limit: c.Limit, Priority: c.Priority})
					}
				}
				key := fmt.Sprint(m.limits)
				if l, ok := shared[key]; ok {
					m.limits = l
				} else {
					shared[key] = m.limits
				}
			}
			v.meta[id] = len(v.metas)
			v.metas = append(v.metas, m)
		}
		v.byDevice[d.ID] = v.metas[first:len(v.metas):len(v.metas)]
	}
	v.live = make([]liveReading, len(v.metas))
	for i := range v.metas {
		v.metas[i].trend = -1
	}
}

// sensors returns the metadata of a batch's readings, in their order.
func (v *view) sensors(b *modbus.Batch) []sensorMeta {
	ms := v.byDevice[b.Device]
	if sameSensors(ms, b.Readings) {
		return ms
	}
	// Not the configured device (never from the pollers): look each up.
	ms = make([]sensorMeta, len(b.Readings))
	for i, r := range b.Readings {
		id := b.Device + "." + r.Sensor
		m := sensorMeta{device: b.Device, sensor: r.Sensor, idx: -1, trend: -1}
		if i, ok := v.meta[id]; ok {
			m = v.metas[i]
		}
		m.id = id
		ms[i] = m
	}
	return ms
}

func sameSensors(ms []sensorMeta, rs []modbus.Reading) bool {
	if len(ms) != len(rs) {
		return false
	}
	for i := range rs {
		if ms[i].sensor != rs[i].Sensor {
			return false
		}
	}
	return true
}

// setReadings records a poll's readings, whose answer arrived at at.
func (v *view) setReadings(metas []sensorMeta, p mqtt.Readings, at time.Time) {
	ns, mono := p.TS.UnixNano(), int64(at.Sub(v.epoch))
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, r := range p.Readings {
		if ix := metas[i].idx; ix >= 0 {
			v.live[ix] = liveReading{ns: ns, mono: mono, value: r.Value, valid: r.Valid, quality: r.Quality}
		}
	}
}

// reading builds the HTTP API's reading of a sensor; ok is false when it
// was never read.
func (v *view) reading(m *sensorMeta) (httpapi.Reading, bool) {
	r := httpapi.Reading{Site: v.site, Device: m.device, Sensor: m.sensor, Kind: m.kind, Unit: m.unit, Limits: m.limits}
	if m.idx < 0 || v.live[m.idx].ns == 0 {
		return r, false
	}
	l := v.live[m.idx]
	r.Quality, r.TS, r.Received = l.quality, time.Unix(0, l.ns).UTC(), v.epoch.Add(time.Duration(l.mono))
	if l.valid {
		val := l.value
		r.Value = &val
	}
	return r, true
}

// deviceState classifies a poll: no error is online; exceptions (the device
// answers, but with a fault) are fault; timeouts and link errors offline.
func deviceState(b modbus.Batch) (state, msg string) {
	if b.Err == nil {
		return "online", ""
	}
	if modbus.IsException(b.Err) {
		return "fault", b.Err.Error()
	}
	return "offline", b.Err.Error()
}

// trendPoll adds a poll's readings to the UI's trends, under one hold of
// their lock (released whatever happens: every chart waits on it).
func trendPoll(srv *httpapi.Server, metas []sensorMeta, p mqtt.Readings) {
	tp := srv.TrendPoll(p.TS)
	defer tp.Done()
	for i, r := range p.Readings {
		val := r.Value
		if !r.Valid {
			val = math.NaN()
		}
		if id := metas[i].trend; id >= 0 {
			tp.Add(id, val, r.Quality)
		} else {
			tp.AddNamed(p.Device, r.Sensor, val, r.Quality)
		}
	}
}

// setDevice records a poll's outcome and reports whether the device's
// communication state changed.
func (v *view) setDevice(b modbus.Batch) bool {
	state, msg := deviceState(b)
	v.mu.Lock()
	d := v.devices[b.Device]
	changed := d.State != state
	d.State, d.Error = state, msg
	if state == "online" {
		d.LastOK = b.At
	}
	v.devices[b.Device] = d
	v.mu.Unlock()
	return changed
}

// publishReadings feeds a poll to the UI's trends and, when a client is on
// the event stream, to the stream. Without one it allocates nothing.
func (v *view) publishReadings(srv *httpapi.Server, metas []sensorMeta, p mqtt.Readings) {
	trendPoll(srv, metas, p)
	if !srv.Streaming() {
		return
	}
	v.mu.RLock()
	rs := make([]httpapi.Reading, len(metas))
	for i := range metas {
		rs[i], _ = v.reading(&metas[i])
	}
	d := v.devices[p.Device]
	v.mu.RUnlock()
	for i := range rs {
		srv.Stream(httpapi.Event{Reading: &rs[i]})
	}
	srv.Stream(httpapi.Event{Device: &d})
}

func optFloat(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func toAlarm(st alerting.AlarmState) httpapi.Alarm {
	return httpapi.Alarm{
		ID: st.ID, Site: st.Site, Device: st.Device, Sensor: st.Sensor, Condition: string(st.Condition),
		Priority: st.Priority, State: string(st.State), Active: st.Active, Latched: st.Latched,
		Value: optFloat(st.Value), Limit: optFloat(st.Limit), Since: st.Since, Updated: st.Updated,
		AckedBy: st.AckedBy, Comment: st.Comment, Held: st.Held,
	}
}

func (v *view) setAlarm(srv *httpapi.Server, st alerting.AlarmState) {
	a := toAlarm(st)
	v.mu.Lock()
	if old, ok := v.alarms[st.ID]; ok {
		c := alarmClass{old.State, old.Priority}
		if v.classes[c]--; v.classes[c] <= 0 {
			delete(v.classes, c)
		}
	}
	if st.State == alerting.Normal {
		delete(v.alarms, st.ID)
	} else {
		v.alarms[st.ID] = a
		v.classes[alarmClass{a.State, a.Priority}]++
	}
	v.mu.Unlock()
	if srv != nil {
		srv.Publish(httpapi.Event{Alarm: &a})
	}
}

// alarmClasses calls fn for each state and priority that has alarms not
// normal, with their count.
func (v *view) alarmClasses(fn func(state string, priority, n int)) {
	type count struct {
		alarmClass
		n int
	}
	v.mu.RLock()
	counts := make([]count, 0, len(v.classes))
	for c, n := range v.classes {
		counts = append(counts, count{c, n})
	}
	v.mu.RUnlock()
	// fn runs without the lock: the collector sends on a channel.
	for _, c := range counts {
		fn(c.state, c.priority, c.n)
	}
}

func (v *view) addTransition(srv *httpapi.Server, ev alerting.Event) {
	t := httpapi.Transition{Seq: ev.Seq, TS: ev.TS, Type: string(ev.Type), Alarm: ev.Alarm, From: string(ev.From),
		To: string(ev.To), Active: ev.Active, Value: optFloat(ev.Value), Limit: optFloat(ev.Limit), User: ev.User, Comment: ev.Comment}
	v.mu.Lock()
	// The slice grows to twice the bound before the newest historyLen
	// are copied down: O(1) amortised per transition, not a 2000-entry
	// copy for each one during an alarm flood.
	if len(v.history) >= 2*historyLen {
		n := copy(v.history, v.history[len(v.history)-historyLen:])
		clear(v.history[n:])
		v.history = v.history[:n]
	}
	v.history = append(v.history, t)
	isHold := ev.Type == alerting.EvFaultHold || ev.Type == alerting.EvFaultHoldEnd
	if isHold {
		hold := t
		v.hold = &hold
		v.holdGen++
	}
	v.mu.Unlock()
	if srv != nil {
		srv.Publish(httpapi.Event{Transition: &t})
		if isHold {
			h := v.faultHolds()
			srv.Publish(httpapi.Event{Holds: &h})
		}
	}
}

// faultHolds lists the hold in force, if any.
func (v *view) faultHolds() httpapi.Holds {
	v.mu.RLock()
	defer v.mu.RUnlock()
	h := httpapi.Holds{Gen: v.holdGen, Holds: []httpapi.Transition{}}
	if v.hold != nil && v.hold.Type == string(alerting.EvFaultHold) {
		h.Holds = append(h.Holds, *v.hold)
	}
	return h
}

// authorize checks the user named in an MQTT command. The broker's ACL
// decides who may publish on the cmd topic; when the site config lists
// users, the named user must also be one of them with the operator or
// engineer role, so that the audit trail names a real person; engineer
// for taking alarms out of service and back (command.NeedsEngineer), which
// a site without users refuses. The named user is not authenticated: who
// may publish on the cmd topic, and so name an engineer, is the ACL's.
func (v *view) authorize(user string, a command.Action) error {
	if len(v.users) == 0 {
		if command.NeedsEngineer(a) {
			// The broker's ACL was written for operators' commands: a
			// bypass must be authorised (SAFETY.md §5.3), and without
			// users nothing says the named user is an engineer.
			return fmt.Errorf("%s over MQTT needs the site's http.users to name the user as an engineer (this site lists no users)", a)
		}
		return nil
	}
	for _, u := range v.users {
		if u.Name != user {
			continue
		}
		switch {
		case command.NeedsEngineer(a) && u.Role != configs.RoleEngineer:
			return fmt.Errorf("user %q has role %s: %s needs engineer", user, u.Role, a)
		case u.Role == configs.RoleOperator || u.Role == configs.RoleEngineer:
			return nil
		}
		return fmt.Errorf("user %q has role %s: commands need operator or engineer", user, u.Role)
	}
	return fmt.Errorf("unknown user %q", user)
}

// snapshot accessors for the HTTP backend.

func (v *view) readingsList() []httpapi.Reading {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]httpapi.Reading, 0, len(v.metas))
	for i := range v.metas {
		r, ok := v.reading(&v.metas[i])
		if !ok {
			r.Quality, r.Stale = "bad", true
		}
		out = append(out, r)
	}
	return out
}

func (v *view) alarmList() []httpapi.Alarm {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]httpapi.Alarm, 0, len(v.alarms))
	for _, a := range v.alarms {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (v *view) deviceList() []httpapi.Device {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]httpapi.Device, 0, len(v.devOrder))
	for _, id := range v.devOrder {
		out = append(out, v.devices[id])
	}
	return out
}

func (v *view) historyTail(limit int) []httpapi.Transition {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if limit <= 0 || limit > historyLen {
		limit = historyLen
	}
	if limit > len(v.history) {
		limit = len(v.history)
	}
	return append([]httpapi.Transition(nil), v.history[len(v.history)-limit:]...)
}

// deviceStatus is the per-device part of the retained status message.
func (g *Gateway) deviceStatus() []mqtt.DeviceStatus {
	devs := g.view.deviceList()
	out := make([]mqtt.DeviceStatus, len(devs))
	for i, d := range devs {
		comm := "ok"
		switch d.State {
		case "offline":
			comm = "lost"
		case "fault":
			comm = "fault"
		case "unknown":
			comm = "unknown"
		}
		out[i] = mqtt.DeviceStatus{Device: d.ID, Comm: comm}
	}
	return out
}

type latestValue struct {
	value float64
	at    time.Time // when its answer arrived, with the monotonic reading
}

// after reports whether the value's answer arrived at or after t, on the
// monotonic clock when t has a reading of it (the interlock's request
// time does): a wall-clock step back between an interlock's write and its
// read-back poll must not fail the confirmation (a false latched P1
// "action failed"), and a step forward must not let an answer from
// before the request confirm it.
func (l latestValue) after(t time.Time) bool { return !l.at.Before(t) }

// latest returns the last good value of a sensor.
func (v *view) latest(id string) (latestValue, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	i, ok := v.meta[id]
	if !ok {
		return latestValue{}, false
	}
	l := v.live[v.metas[i].idx]
	if l.ns == 0 || !l.valid || l.quality != "good" {
		return latestValue{}, false
	}
	return latestValue{value: l.value, at: v.epoch.Add(time.Duration(l.mono))}, true
}

// numberTrends gives each configured sensor its number in srv's trends
// (before the pollers start), so that a reading reaches its trend without
// a lookup by name.
func (v *view) numberTrends(srv *httpapi.Server) {
	for i := range v.metas {
		v.metas[i].trend = srv.TrendSeries(v.metas[i].device, v.metas[i].sensor)
	}
}
