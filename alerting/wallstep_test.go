package alerting

import (
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// wallStep returns t (which must carry a monotonic reading) with its wall
// clock moved by s and its monotonic reading unchanged: what time.Now
// returns after the system clock was stepped by s (NTP step, operator).
func wallStep(t time.Time, s time.Duration) time.Time {
	type tm struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	p := (*tm)(unsafe.Pointer(&t))
	if p.wall&(1<<63) == 0 {
		panic("no monotonic reading")
	}
	p.wall += uint64(int64(s/time.Second) << 30)
	return t
}

func TestWallStepHelper(t *testing.T) {
	t0 := time.Now()
	t1 := wallStep(t0, time.Hour)
	require.Equal(t, time.Duration(0), t1.Sub(t0))
	require.Equal(t, time.Hour, t1.Round(0).Sub(t0.Round(0)))
}

// twin runs the same calls on the timer engine and on a full-scan engine.
type twin struct {
	t      *testing.T
	e, ref *Engine
}

func (w twin) do(op func(*Engine) ([]Event, error)) []Event {
	evs, err := op(w.e)
	refEvs, refErr := op(w.ref)
	require.Equal(w.t, refErr == nil, err == nil)
	require.Equal(w.t, renderEvents(refEvs), renderEvents(evs), "full scan (expected) vs timers (actual)")
	return evs
}

func restoredTwin(t *testing.T, cfg Config, at time.Time, snap []byte) twin {
	w := twin{t: t, e: newEngine(t, cfg), ref: newEngine(t, cfg)}
	w.ref.scanAll = true
	w.do(func(e *Engine) ([]Event, error) { return e.Restore(at, snap) })
	return w
}

func pressureCfg(extra func(*SensorAlarms)) Config {
	a := SensorAlarms{Range: []float64{0, 10}, High: &LimitConfig{Limit: f(6)}}
	if extra != nil {
		extra(&a)
	}
	return Config{Points: []PointConfig{{Site: "s", Device: "l", Sensor: "p", Kind: "pressure", Poll: time.Second, Alarms: a}}}
}

// After a restart the shelve expiry comes from the snapshot (no monotonic
// reading); a delay started after the restart has one. The alarm timer
// keeps only the earlier of the two by wall clock; when the system clock
// is then stepped forward, the shelve expiry (judged by wall clock, as the
// full scan does) hides behind the monotonic timer and fires late.
func TestShelveExpiryLateAfterWallStepForward(t *testing.T) {
	cfg := pressureCfg(func(a *SensorAlarms) { a.High.OffDelay = d(20 * time.Minute) })
	t0 := time.Now()
	e1 := newEngine(t, cfg)
	e1.Tick(t0)
	_, err := e1.Observe(t0, Sample{Point: "l.p", Value: 7})
	require.NoError(t, err)
	_, err = e1.Tick(t0.Add(15*time.Second)), nil
	require.NoError(t, err)
	st, _ := e1.Alarm("l.p.high")
	require.True(t, st.Active)
	_, err = e1.Shelve(t0.Add(15*time.Second), "l.p.high", "u", "maintenance", 30*time.Minute)
	require.NoError(t, err)
	snap, err := e1.Snapshot()
	require.NoError(t, err)

	w := restoredTwin(t, cfg, t0.Add(16*time.Second), snap)
	// the value falls back: off-delay (20 min) starts, monotonic
	w.do(func(e *Engine) ([]Event, error) {
		return e.Observe(t0.Add(17*time.Second), Sample{Point: "l.p", Value: 5})
	})
	// the system clock is stepped forward by one hour: the shelve (until
	// t0+30m15s by the wall clock) has expired
	now := wallStep(t0.Add(18*time.Second), time.Hour)
	w.do(func(e *Engine) ([]Event, error) { return e.Tick(now), nil })
}

// After a restart an active alarm's since comes from the snapshot (wall
// clock only). The operator acknowledges it after the restart (monotonic
// ackedAt, re-alarm in 10 min). Its stale time (since + 24 h, in 5 min)
// is the earlier by wall clock, so the alarm's only timer is a wall one.
// The system clock is then stepped back one hour: the re-alarm, judged on
// the monotonic clock by the full scan, is 55 min late.
func TestReAlarmLateAfterWallStepBackward(t *testing.T) {
	cfg := pressureCfg(func(a *SensorAlarms) { a.High.ReAlarm = d(10 * time.Minute); a.High.OnDelay = d(0) })
	t0 := time.Now()
	e1 := newEngine(t, cfg)
	e1.Tick(t0)
	_, err := e1.Observe(t0, Sample{Point: "l.p", Value: 7})
	require.NoError(t, err)
	st, _ := e1.Alarm("l.p.high")
	require.True(t, st.Active)
	t1 := t0.Add(24*time.Hour - 5*time.Minute)
	snap, err := e1.Snapshot()
	require.NoError(t, err)

	w := restoredTwin(t, cfg, t1, snap)
	w.do(func(e *Engine) ([]Event, error) { return e.Observe(t1, Sample{Point: "l.p", Value: 7}) })
	w.do(func(e *Engine) ([]Event, error) { return e.Ack(t1, "l.p.high", "u", "seen") })
	var all []Event
	for s := 1; s <= 11*60; s++ {
		now := t1.Add(time.Duration(s) * time.Second)
		if s >= 60 {
			now = wallStep(now, -time.Hour) // stepped back at t1+1m
		}
		all = append(all, w.do(func(e *Engine) ([]Event, error) { return e.Step(now, []Sample{{Point: "l.p", Value: 7}}) })...)
		all = append(all, w.do(func(e *Engine) ([]Event, error) { return e.Tick(now), nil })...)
	}
	t.Log(renderEvents(all))
}
