package alerting

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
			{ID: "h", Site: "s1", Points: []string{"f.b", "f.c"}, M: 1, N: 2, FaultVote: "bypass", Condition: High, Priority: 2},
		},
		Actions: []ActionConfig{{ID: "cut", Site: "s1", ConfirmTimeout: 2 * time.Second}, {ID: "valve", Site: "s1"}},
		Options: Options{MaxShelve: time.Hour},
	}
}

// opRunner drives an engine from a byte string and checks the invariants
// after every operation.
type opRunner struct {
	t       testing.TB
	cfg     Config
	e       *Engine
	now     time.Time
	lastSeq uint64
	// mustStay: latched alarms that went active since their last reset.
	mustStay map[string]bool
}

func (r *opRunner) check(evs []Event) {
	for _, ev := range evs {
		if ev.Seq <= r.lastSeq {
			r.t.Fatalf("event seq not increasing: %d after %d", ev.Seq, r.lastSeq)
		}
		r.lastSeq = ev.Seq
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
			evs, err = r.e.Observe(r.now, Sample{Point: p.id, Value: v, Quality: q})
			require.NoError(r.t, err)
		case op == 7:
			evs = r.e.Tick(r.now)
		case op == 8:
			a := pick()
			before := make([]bool, len(r.e.alist))
			for i, x := range r.e.alist {
				before[i] = x.active
			}
			evs, _ = r.e.Ack(r.now, a.id, "u", "c")
			for i, x := range r.e.alist {
				if x.active != before[i] {
					r.t.Fatalf("ack of %s changed active of %s", a.id, x.id)
				}
			}
		case op == 9:
			a := pick()
			wasActive := a.active
			evs, err = r.e.Reset(r.now, a.id, "u", "c")
			if wasActive && !errors.Is(err, ErrConditionPresent) {
				r.t.Fatalf("reset of active %s: got %v, want ErrConditionPresent", a.id, err)
			}
		case op == 10:
			evs, _ = r.e.Shelve(r.now, pick().id, "u", "c", time.Duration(next())*time.Second)
		case op == 11:
			evs, _ = r.e.ShelveOneShot(r.now, pick().id, "u", "c")
		case op == 12:
			evs, _ = r.e.Unshelve(r.now, pick().id, "u", "c")
		case op == 13:
			a := pick()
			if next()%2 == 0 {
				evs, _ = r.e.OutOfService(r.now, a.id, "u", "c", time.Duration(next())*time.Second)
			} else {
				evs, _ = r.e.ReturnToService(r.now, a.id, "u", "c")
			}
		case op == 14:
			switch next() % 3 {
			case 0:
				evs, _ = r.e.ActionResult(r.now, "cut", next()%2 == 0, "")
			case 1:
				evs = r.e.SetFlag(r.now, "idle", next()%2 == 0)
			default:
				evs, _ = r.e.ActionResult(r.now, "valve", next()%2 == 0, "")
			}
		case op == 15:
			r.restart()
			continue
		}
		r.check(evs)
	}
}

// restart round-trips the engine through Snapshot/Restore and checks that
// every alarm that needs attention keeps its state and since.
func (r *opRunner) restart() {
	before := r.e.Alarms()
	snap, err := r.e.Snapshot()
	require.NoError(r.t, err)
	e2, err := New(r.cfg)
	require.NoError(r.t, err)
	evs, err := e2.Restore(r.now, snap)
	require.NoError(r.t, err)
	for _, ev := range evs {
		require.Equal(r.t, EvActionTrip, ev.Type)
	}
	after := e2.Alarms()
	for i := range before {
		b, a := before[i], after[i]
		require.Equal(r.t, b.Active, a.Active, b.ID)
		require.Equal(r.t, b.Latched, a.Latched, b.ID)
		require.Equal(r.t, b.Acked, a.Acked, b.ID)
		if b.State != Normal || b.Active || b.Latched {
			require.True(r.t, b.Since.Equal(a.Since), b.ID)
		}
		if b.Suppressed {
			continue // flags are the gateway's, re-set after a restart
		}
		require.Equal(r.t, b.State, a.State, b.ID)
	}
	r.e = e2
	// sequence numbers continue across the restart
	r.check(evs)
}

func newRunner(t testing.TB) *opRunner {
	cfg := propertyConfig()
	e, err := New(cfg)
	require.NoError(t, err)
	return &opRunner{t: t, cfg: cfg, e: e, now: scriptStart, mustStay: map[string]bool{}}
}

func TestPropertiesRandom(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		data := make([]byte, 3000)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
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
