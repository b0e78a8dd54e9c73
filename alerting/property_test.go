package alerting

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/clocktest"
)

func propertyConfig() Config {
	pt := func(dev, sen, kind, profile string, a SensorAlarms) PointConfig {
		return PointConfig{Site: "s1", Device: dev, Sensor: sen, Kind: kind, Profile: profile, Poll: time.Second, Alarms: a}
	}
	return Config{
		Points: []PointConfig{
			pt("f", "a", "methane", "", SensorAlarms{HighHigh: &LimitConfig{Action: "cut"}}),
			pt("f", "b", "methane", "", SensorAlarms{Deviation: &LimitConfig{Limit: f(0.3), With: "f.a"}}),
			pt("f", "c", "methane", "return_airway", SensorAlarms{}),
			pt("t", "o2", "oxygen", "", SensorAlarms{Low: &LimitConfig{SuppressBy: "idle", OverrideRegulatory: true, ReAlarm: d(time.Minute)}}),
			pt("l", "p", "pressure", "", SensorAlarms{Range: []float64{0, 10}, High: &LimitConfig{Limit: f(6), OnDelay: d(3 * time.Second)},
				HighHigh: &LimitConfig{Limit: f(8), Action: "valve"}, Low: &LimitConfig{Limit: f(1)},
				Rate:   &LimitConfig{Limit: f(-10), Percent: b(true), Period: d(time.Minute)},
				Frozen: &LimitConfig{Limit: f(0.01), Samples: i(4)}}),
			pt("w", "h", "h2s", "", SensorAlarms{TWA: &LimitConfig{Mode: "moving8h"}, STEL: &LimitConfig{Period: d(5 * time.Minute)}}),
			pt("x", "i", "current", "", SensorAlarms{High: &LimitConfig{Limit: f(18), Latch: b(true)}}),
		},
		Groups: []GroupConfig{
			{ID: "g", Site: "s1", Points: []string{"f.a", "f.b", "f.c"}, M: 2, N: 3, Condition: HighHigh, Latch: true, Action: "cut"},
			{ID: "h", Site: "s1", Points: []string{"f.b", "f.c"}, M: 1, N: 2, FaultVote: "bypass", Condition: High, Priority: 2,
				OverrideRegulatory: true}, // bypass on coal methane: a loosening, accepted
		},
		Actions: []ActionConfig{{ID: "cut", Site: "s1", ConfirmTimeout: 2 * time.Second}, {ID: "valve", Site: "s1"}},
		Options: Options{MaxShelve: time.Hour},
	}
}

// opRunner drives an engine from a byte string and checks the invariants
// after every operation.
type opRunner struct {
	t   testing.TB
	cfg Config
	e   *Engine
	// ref runs every operation too, with Tick as a scan of everything
	// (timers.scanAll): events and states must match e's after each one.
	ref     *Engine
	now     time.Time
	lastSeq uint64
	// mustStay: latched alarms that went active since their last reset.
	mustStay map[string]bool
	// seen counts the events by type and comment (what was exercised).
	seen map[string]int
	// skipIdle: e skips every Tick that NextDue says has nothing to do
	// (ref still ticks them all); skipped counts them.
	skipIdle bool
	skipped  int
	// behindRestarts: every restart restores on a clock a year behind the
	// snapshot's (a box without a real-time clock), which stays behind.
	behindRestarts bool
	restarts       int
	// refs: samples carry a Ref (Engine.Ref): the engine's own, another
	// engine's, another point's or none, picked by the data; results must
	// be the same as by id.
	refs bool
}

func (r *opRunner) check(evs []Event) {
	for _, ev := range evs {
		if ev.Seq <= r.lastSeq {
			r.t.Fatalf("event seq not increasing: %d after %d", ev.Seq, r.lastSeq)
		}
		r.lastSeq = ev.Seq
		if r.seen != nil {
			r.seen[string(ev.Type)]++
			if strings.Contains(ev.Comment, "expired") {
				r.seen[string(ev.Type)+": "+ev.Comment]++
			}
		}
		raw, err := json.Marshal(ev)
		require.NoError(r.t, err)
		require.True(r.t, json.Valid(raw), string(raw))
		if ev.Type == EvReset {
			delete(r.mustStay, ev.Alarm)
		}
	}
	for _, a := range r.e.alist {
		if a.spec.Latch && a.active {
			r.mustStay[a.id] = true
		}
		if r.mustStay[a.id] && !a.active && !a.latched {
			r.t.Fatalf("latched alarm %s reached normal without a reset", a.id)
		}
		if a.latched && a.active {
			r.t.Fatalf("alarm %s both active and latched", a.id)
		}
	}
}

func (r *opRunner) run(data []byte) {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		c := data[0]
		data = data[1:]
		return c
	}
	points := r.e.plist
	for len(data) > 0 {
		op := next() % 16
		r.now = r.now.Add(time.Duration(next()) * 50 * time.Millisecond)
		var evs []Event
		var err error
		pick := func() *alarm { return r.e.alist[int(next())%len(r.e.alist)] }
		switch {
		case op <= 6:
			p := points[int(next())%len(points)]
			span := p.res.Max - p.res.Min
			if span <= 0 {
				span = 10
			}
			v := p.res.Min - 0.1*span + float64(next())/255*1.3*span
			q := Quality(next() % 8)
			if q > BadQuality {
				q = Good
			}
			// Only with refs does this op read more of the data: the
			// other tests' seeded runs stay as they were.
			kind, other, step := 0, "", false
			if r.refs {
				kind = int(next() % 4)
				other = points[int(next())%len(points)].id
				step = next()%2 == 0
			}
			evs, err = r.both(func(e *Engine) ([]Event, error) {
				s := Sample{Point: p.id, Value: v, Quality: q}
				if e == r.e { // the reference finds every point by id
					switch kind {
					case 1:
						s.Ref = e.Ref(p.id)
					case 2: // another engine's handle of the same point
						s.Ref = r.ref.Ref(p.id)
					case 3: // this engine's handle of another point
						s.Ref = e.Ref(other)
					}
				}
				if step {
					return e.Step(r.now, []Sample{s})
				}
				return e.Observe(r.now, s)
			})
			require.NoError(r.t, err)
		case op == 7 && r.skipIdle && r.e.NextDue(r.now) > 0:
			// A skipped Tick must be one the full scan finds nothing
			// to do at.
			refEvs := r.ref.Tick(r.now)
			if len(refEvs) > 0 {
				r.t.Fatalf("NextDue %v at %v, but the full scan's Tick has events:\n%s",
					r.e.NextDue(r.now), r.now, renderEvents(refEvs))
			}
			r.skipped++
		case op == 7:
			evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.Tick(r.now), nil })
		case op == 8:
			a := pick()
			before := make([]bool, len(r.e.alist))
			for i, x := range r.e.alist {
				before[i] = x.active
			}
			evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.Ack(r.now, a.id, "u", "c") })
			for i, x := range r.e.alist {
				if x.active != before[i] {
					r.t.Fatalf("ack of %s changed active of %s", a.id, x.id)
				}
			}
		case op == 9:
			a := pick()
			// A held alarm (SetFaultHold) is back: it resets as
			// the latched alarm its return would have left.
			wasActive := a.active && !a.held
			evs, err = r.both(func(e *Engine) ([]Event, error) { return e.Reset(r.now, a.id, "u", "c") })
			if wasActive && !errors.Is(err, ErrConditionPresent) {
				r.t.Fatalf("reset of active %s: got %v, want ErrConditionPresent", a.id, err)
			}
		case op == 10:
			id, d := pick().id, time.Duration(next())*time.Second
			evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.Shelve(r.now, id, "u", "c", d) })
		case op == 11:
			id := pick().id
			evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.ShelveOneShot(r.now, id, "u", "c") })
		case op == 12:
			id := pick().id
			evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.Unshelve(r.now, id, "u", "c") })
		case op == 13:
			a := pick()
			if next()%2 == 0 {
				d := time.Duration(next()) * time.Second
				evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.OutOfService(r.now, a.id, "u", "c", d) })
			} else {
				evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.ReturnToService(r.now, a.id, "u", "c") })
			}
		case op == 14:
			switch next() % 5 {
			case 0:
				ok := next()%2 == 0
				evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.ActionResult(r.now, "cut", ok, "") })
			case 1:
				v := next()%2 == 0
				evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.SetFlag(r.now, "idle", v), nil })
			case 2:
				on := !r.e.faultHeld
				evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.SetFaultHold(r.now, on, "overload"), nil })
			case 3:
				n := int(next()%3) - 1 // all, none or one
				held := r.e.Held()
				// Those of points not sampled since a restart wait.
				ready := 0
				for _, a := range r.e.alist {
					if a.held && (a.point == nil || a.point.seen) {
						ready++
					}
				}
				evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.ReleaseHeld(r.now, n), nil })
				switch {
				case r.e.faultHeld:
					require.Equal(r.t, held, r.e.Held(), "released during a hold")
				case n < 0:
					require.Equal(r.t, held-ready, r.e.Held(), "release all")
				default:
					require.Equal(r.t, held-min(n, ready), r.e.Held(), "release %d of %d (%d ready)", n, held, ready)
				}
			default:
				ok := next()%2 == 0
				evs, _ = r.both(func(e *Engine) ([]Event, error) { return e.ActionResult(r.now, "valve", ok, "") })
			}
		case op == 15:
			r.restart()
			continue
		}
		r.check(evs)
	}
}

// restart round-trips the engine through Snapshot/Restore and checks that
// every alarm that needs attention keeps its state and since; those the
// fault hold kept active stay held, for the restored engine to release.
func (r *opRunner) restart() {
	r.restarts++
	before := r.e.Alarms()
	held := map[string]bool{}
	for _, a := range r.e.alist {
		if a.held {
			held[a.id] = true
		}
	}
	snap, err := r.e.Snapshot(r.now)
	require.NoError(r.t, err)
	requireSnapshotMatchesEncodingJSON(r.t, r.e, r.now, snap)
	restoreAt := r.now
	if r.behindRestarts {
		restoreAt = clocktest.WallStep(r.now, -365*24*time.Hour)
	}
	e2 := newEngine(r.t, r.cfg)
	evs, err := e2.Restore(restoreAt, snap)
	require.NoError(r.t, err)
	if r.ref != nil {
		refSnap, err := r.ref.Snapshot(r.now)
		require.NoError(r.t, err)
		if r.skipIdle {
			refSnap, snap := maskCommSnapshot(r.t, refSnap), maskCommSnapshot(r.t, snap)
			require.JSONEq(r.t, string(refSnap), string(snap))
		} else {
			require.JSONEq(r.t, string(refSnap), string(snap))
		}
		ref2 := newEngine(r.t, r.cfg)
		ref2.scanAll = true
		refEvs, err := ref2.Restore(restoreAt, snap)
		require.NoError(r.t, err)
		require.Equal(r.t, renderEvents(refEvs), renderEvents(evs))
		r.ref = ref2
		defer func() { require.Equal(r.t, renderStates(r.ref), renderStates(r.e)) }()
	}
	for _, ev := range evs {
		require.Equal(r.t, EvActionTrip, ev.Type)
	}
	require.Equal(r.t, len(held), e2.Held())
	after := e2.Alarms()
	for i := range before {
		b, a := before[i], after[i]
		require.Equal(r.t, held[b.ID], e2.alist[i].held, "%s: held", b.ID)
		require.Equal(r.t, b.Active, a.Active, b.ID)
		require.Equal(r.t, b.Latched, a.Latched, b.ID)
		require.Equal(r.t, b.Acked, a.Acked, b.ID)
		if b.State != Normal || b.Active || b.Latched {
			// The same instant: the snapshot writes it on the clock of
			// its writing, which a step of the wall clock since moved.
			require.True(r.t, r.e.onClockOf(r.now, b.Since).Equal(a.Since), b.ID)
		}
		if b.Suppressed {
			continue // flags are the gateway's, re-set after a restart
		}
		require.Equal(r.t, b.State, a.State, b.ID)
	}
	r.e, r.now = e2, restoreAt
	// sequence numbers continue across the restart
	r.check(evs)
}

func newRunner(t testing.TB) *opRunner {
	return newRunnerWith(t, propertyConfig())
}

func newRunnerWith(t testing.TB, cfg Config) *opRunner {
	e := newEngine(t, cfg)
	ref := newEngine(t, cfg)
	ref.scanAll = true
	return &opRunner{t: t, cfg: cfg, e: e, ref: ref, now: scriptStart, mustStay: map[string]bool{}}
}

// both runs op on the engine and on its full-scan twin and checks that
// they agree on the events, the error and every alarm's and action's state.
func (r *opRunner) both(op func(*Engine) ([]Event, error)) ([]Event, error) {
	evs, err := op(r.e)
	if r.ref == nil {
		return evs, err
	}
	refEvs, refErr := op(r.ref)
	if (err == nil) != (refErr == nil) || (err != nil && err.Error() != refErr.Error()) {
		r.t.Fatalf("errors differ: full scan %v, timers %v", refErr, err)
	}
	if r.skipIdle {
		// A comm alarm's value is the age at the latest Tick, which e
		// skipped; compare everything else.
		refEvs, cmp := r.maskComm(refEvs), r.maskComm(evs)
		if !sameEvents(refEvs, cmp) {
			require.Equal(r.t, renderEvents(refEvs), renderEvents(cmp))
		}
	} else if !sameEvents(refEvs, evs) {
		require.Equal(r.t, renderEvents(refEvs), renderEvents(evs))
	}
	if !sameStates(r.ref, r.e, r.skipIdle) {
		require.Equal(r.t, renderStates(r.ref), renderStates(r.e))
	}
	return evs, err
}

// maskCommSnapshot returns an engine snapshot with comm alarms' values
// left out (see skipIdle).
func maskCommSnapshot(t testing.TB, snap []byte) []byte {
	var m map[string]any
	require.NoError(t, json.Unmarshal(snap, &m))
	alarms, _ := m["alarms"].([]any)
	for _, a := range alarms {
		if st, ok := a.(map[string]any); ok && strings.HasSuffix(fmt.Sprint(st["id"]), ".comm") {
			delete(st, "value")
		}
	}
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

// maskComm returns evs with the values of comm alarms' events zeroed.
func (r *opRunner) maskComm(evs []Event) []Event {
	out := slices.Clone(evs)
	for i := range out {
		if a, ok := r.e.alarm(out[i].Alarm); ok && a.point != nil && a.point.comm == a {
			out[i].Value = 0
		}
	}
	return out
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func sameEvents(a, b []Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !sameFloat(x.Value, y.Value) || !sameFloat(x.Limit, y.Limit) {
			return false
		}
		x.Value, x.Limit, y.Value, y.Limit = 0, 0, 0, 0
		if x != y {
			return false
		}
	}
	return true
}

// sameStates compares the engines' alarms field by field (cheaper than
// rendering them after every operation); maskComm leaves comm alarms'
// values out.
func sameStates(a, b *Engine, maskComm bool) bool {
	for i, x := range a.alist {
		skipValue := maskComm && x.point != nil && x.point.comm == x
		if !sameAlarm(a, b, x, b.alist[i], skipValue) {
			return false
		}
	}
	return sameRest(a, b)
}

func sameAlarm(a, b *Engine, x, y *alarm, skipValue bool) bool {
	return !(x.active != y.active || x.acked != y.acked || x.latched != y.latched || x.pending != y.pending ||
		x.shelve != y.shelve || x.oos != y.oos || x.suppressed != y.suppressed || x.firstOut != y.firstOut ||
		x.chattering != y.chattering || x.stale != y.stale || (!skipValue && !sameFloat(a.valueOf(x), b.valueOf(y))) ||
		!sameFloat(x.limit, y.limit) || x.since() != y.since() || x.updated() != y.updated() ||
		x.ackedAt() != y.ackedAt() || x.shelveUntil() != y.shelveUntil() || x.oosUntil() != y.oosUntil() ||
		x.ackedBy() != y.ackedBy() || x.comment() != y.comment())
}

func sameRest(a, b *Engine) bool {
	for i, x := range a.aclist {
		y := b.aclist[i]
		if x.tripped != y.tripped || x.trigger != y.trigger || x.awaiting != y.awaiting || x.deadline != y.deadline {
			return false
		}
	}
	for site, st := range a.sites {
		if st.flood != b.sites[site].flood || st.seq != b.sites[site].seq {
			return false
		}
	}
	return true
}

func renderEvents(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%+v\n", ev)
	}
	return b.String()
}

func renderStates(e *Engine) string {
	var b strings.Builder
	for _, st := range e.Alarms() {
		fmt.Fprintf(&b, "%+v\n", st)
	}
	for _, a := range e.Actions() {
		fmt.Fprintf(&b, "%+v\n", a)
	}
	for _, site := range e.siteIDs {
		fmt.Fprintf(&b, "%s flood=%t\n", site, e.Flood(site))
	}
	return b.String()
}

// timerConfig is propertyConfig with short nuisance windows and delays on
// the comm and return paths, so that every timer of the engine fires
// within a random run.
func timerConfig() Config {
	cfg := propertyConfig()
	cfg.Options.StaleAfter = 90 * time.Second
	cfg.Options.ChatterWindow = 45 * time.Second
	cfg.Options.FloodWindow = time.Minute
	cfg.Options.FloodStart, cfg.Options.FloodEnd = 4, 2
	for i := range cfg.Points {
		p := &cfg.Points[i]
		switch p.ID() {
		case "x.i":
			p.Alarms.Comm = &LimitConfig{OnDelay: d(2 * time.Second), OffDelay: d(time.Second), OverrideRegulatory: true}
		case "l.p":
			p.Alarms.Low.OffDelay = d(2 * time.Second)
			p.Alarms.Comm = &LimitConfig{Timeout: d(5 * time.Second), ReAlarm: d(30 * time.Second)}
		case "f.c":
			p.Alarms.High = &LimitConfig{OnDelay: d(time.Second), OverrideRegulatory: true}
		}
	}
	return cfg
}

// The timers (tick.go) must do exactly what a scan of every point, alarm
// and group did: same events in the same order, same states.
func TestTimersMatchFullScan(t *testing.T) {
	seen := map[string]int{}
	for seed := uint64(1); seed <= 100; seed++ {
		data := randomOps(seed, 11, 4000)
		r := newRunnerWith(t, timerConfig())
		r.seen = seen
		r.run(data)
	}
	t.Logf("events by type: %v", seen)
	// Every time-driven rule fired in these runs.
	for _, k := range []string{"realarm", "stale", "chattering_end", "flood_end", "unshelve: shelve expired",
		"return_to_service: out-of-service period expired", "activate", "return", "action_trip", "action_release"} {
		require.Positive(t, seen[k], "no %q event in the runs", k)
	}
}

func TestPropertiesRandom(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		data := randomOps(seed, 7, 3000)
		r := newRunner(t)
		r.run(data)
	}
}

func FuzzEngine(f *testing.F) {
	f.Add([]byte{0, 1, 0, 200, 0, 8, 0, 1, 9, 0, 1})
	f.Add([]byte{0, 10, 0, 250, 0, 7, 100, 8, 5, 3, 1, 0, 0, 0, 0, 9, 0, 3, 15, 0})
	f.Add([]byte{4, 1, 4, 255, 0, 13, 0, 5, 0, 10, 10, 3, 30, 7, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newRunner(t)
		r.run(data)
	})
}

// The gateway passes times with a monotonic clock reading (time.Now);
// restored snapshot times have none. The timers must agree with the full
// scan with both kinds mixed, too.
func TestTimersMatchFullScanMonotonic(t *testing.T) {
	start := time.Now()
	require.NotEqual(t, start, start.Round(0), "time.Now has no monotonic reading on this platform")
	for seed := uint64(1); seed <= 50; seed++ {
		data := randomOps(seed, 13, 4000)
		r := newRunnerWith(t, timerConfig())
		r.now = start
		r.run(data)
	}
}

// randomOps is n pseudo-random operation bytes for opRunner.run, the same
// for the same seed and stream.
func randomOps(seed, stream uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, stream))
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	return data
}

// A caller may skip every Tick that NextDue says has nothing to do: the
// full scan, ticked every time, finds nothing at those ticks, and the two
// agree on every event and state after (comm alarms' values aside: they
// are the age at the latest Tick).
func TestNextDueSkipsOnlyIdleTicks(t *testing.T) {
	skipped, ticked := 0, 0
	for seed := uint64(1); seed <= 100; seed++ {
		data := randomOps(seed, 17, 4000)
		r := newRunnerWith(t, timerConfig())
		r.skipIdle = true
		if seed%2 == 0 {
			r.now = time.Now() // monotonic readings too
		}
		r.run(data)
		skipped += r.skipped
		ticked += int(r.e.ticks)
	}
	t.Logf("ticks skipped %d, run %d", skipped, ticked)
	require.Positive(t, skipped, "no Tick was ever skipped: the property was not exercised")
	require.Positive(t, ticked)
}

// A quiet site (every point sampled each second within its limits, Tick
// every 250 ms) skips most Ticks, and a point that falls silent still
// raises its comm alarm at the same Tick as the full scan: a skipped Tick
// never delays a timer.
func TestNextDueQuietSite(t *testing.T) {
	r := newRunnerWith(t, timerConfig())
	r.skipIdle = true
	normal := map[string]float64{"methane": 0.2, "oxygen": 20.9, "pressure": 5, "h2s": 1, "current": 10}
	kind := map[string]string{}
	for _, pc := range r.cfg.Points {
		kind[pc.ID()] = pc.Kind
	}
	ticks := 0
	var commAt time.Time
	for step := range 480 { // 2 minutes
		r.now = r.now.Add(250 * time.Millisecond)
		if step%4 == 0 {
			for _, p := range r.e.plist {
				if p.id == "l.p" && step >= 120 && step < 240 {
					continue // silent for 30 s: longer than its 5 s comm timeout
				}
				v := normal[kind[p.id]] * (1 + 0.02*math.Sin(float64(step+len(p.id)))) // moving: not frozen
				evs, err := r.both(func(e *Engine) ([]Event, error) {
					return e.Observe(r.now, Sample{Point: p.id, Value: v, Quality: Good})
				})
				require.NoError(t, err)
				r.check(evs)
			}
		}
		ticks++
		if r.e.NextDue(r.now) > 0 {
			require.Empty(t, r.ref.Tick(r.now), "a Tick NextDue skips has events in the full scan at %v", r.now)
			r.skipped++
			continue
		}
		evs, _ := r.both(func(e *Engine) ([]Event, error) { return e.Tick(r.now), nil })
		r.check(evs)
		for _, ev := range evs {
			if ev.Alarm == "l.p.comm" && ev.Type == EvActivate && commAt.IsZero() {
				commAt = ev.TS
			}
		}
	}
	t.Logf("ticks skipped %d of %d; l.p.comm activated at %v", r.skipped, ticks, commAt)
	require.False(t, commAt.IsZero(), "the silent point raised no comm alarm")
	require.Greater(t, r.skipped, ticks/2, "a quiet site should skip most ticks")
}

// Samples found through their Ref (Engine.Ref) behave exactly as samples
// found by id, and a Ref that does not fit (another engine's, another
// point's) is ignored: the engine with Refs runs the random operations in
// step with the reference engine, which finds every point by id.
func TestRefsActAsIDs(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		r := newRunnerWith(t, timerConfig())
		r.refs = true
		r.run(randomOps(seed, 23, 3000))
	}
	e := newRunnerWith(t, timerConfig()).e
	id := e.plist[0].id
	v, q, ok := e.PointAt(e.Ref(id))
	v2, q2, ok2 := e.Point(id)
	require.True(t, ok)
	require.Equal(t, ok2, ok)
	require.Equal(t, q2, q)
	require.Equal(t, math.IsNaN(v2), math.IsNaN(v))
	_, _, ok = e.PointAt(Ref{})
	require.False(t, ok, "the zero Ref names no point")
	_, _, ok = e.PointAt(newRunnerWith(t, timerConfig()).e.Ref(id))
	require.False(t, ok, "another engine's Ref names no point here")
	require.Equal(t, Ref{}, e.Ref("no.such"))
}
