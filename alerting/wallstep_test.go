package alerting

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/clocktest"
)

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

// newTwin is a twin of two fresh engines on cfg, the reference scanning
// every alarm at every call.
func newTwin(t *testing.T, cfg Config) twin {
	w := twin{t: t, e: newEngine(t, cfg), ref: newEngine(t, cfg)}
	w.ref.scanAll = true
	return w
}

func restoredTwin(t *testing.T, cfg Config, at time.Time, snap []byte) twin {
	w := newTwin(t, cfg)
	w.do(func(e *Engine) ([]Event, error) { return e.Restore(at, snap) })
	return w
}

// highAt is a fresh engine of cfg in which l.p reads 7 (above its high
// limit of 6) from at on.
func highAt(t *testing.T, cfg Config, at time.Time) *Engine {
	e := newEngine(t, cfg)
	e.Tick(at)
	_, err := e.Observe(at, Sample{Point: "l.p", Value: 7})
	require.NoError(t, err)
	return e
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
	e1 := highAt(t, cfg, t0)
	e1.Tick(t0.Add(15 * time.Second))
	st, _ := e1.Alarm("l.p.high")
	require.True(t, st.Active)
	_, err := e1.Shelve(t0.Add(15*time.Second), "l.p.high", "u", "maintenance", 30*time.Minute)
	require.NoError(t, err)
	snap, err := e1.Snapshot(t0.Add(15 * time.Second))
	require.NoError(t, err)

	w := restoredTwin(t, cfg, t0.Add(16*time.Second), snap)
	// the value falls back: off-delay (20 min) starts, monotonic
	w.do(func(e *Engine) ([]Event, error) {
		return e.Observe(t0.Add(17*time.Second), Sample{Point: "l.p", Value: 5})
	})
	// the system clock is stepped forward by one hour: the shelve (until
	// t0+30m15s by the wall clock) has expired
	now := clocktest.WallStep(t0.Add(18*time.Second), time.Hour)
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
	e1 := highAt(t, cfg, t0)
	st, _ := e1.Alarm("l.p.high")
	require.True(t, st.Active)
	t1 := t0.Add(24*time.Hour - 5*time.Minute)
	snap, err := e1.Snapshot(t0)
	require.NoError(t, err)

	w := restoredTwin(t, cfg, t1, snap)
	w.do(func(e *Engine) ([]Event, error) { return e.Observe(t1, Sample{Point: "l.p", Value: 7}) })
	w.do(func(e *Engine) ([]Event, error) { return e.Ack(t1, "l.p.high", "u", "seen") })
	var all []Event
	for s := 1; s <= 11*60; s++ {
		now := t1.Add(time.Duration(s) * time.Second)
		if s >= 60 {
			now = clocktest.WallStep(now, -time.Hour) // stepped back at t1+1m
		}
		all = append(all, w.do(func(e *Engine) ([]Event, error) { return e.Step(now, []Sample{{Point: "l.p", Value: 7}}) })...)
		all = append(all, w.do(func(e *Engine) ([]Event, error) { return e.Tick(now), nil })...)
	}
	t.Log(renderEvents(all))
}

// stelCfg: an H2S point with a 5-minute STEL of 10 ppm.
func stelCfg() Config {
	return Config{Points: []PointConfig{{Site: "s", Device: "w", Sensor: "h", Kind: "h2s", Poll: time.Second,
		Alarms: SensorAlarms{STEL: &LimitConfig{Limit: f(10), Period: d(5 * time.Minute)}}}}}
}

// TestSTELAfterWallStepBackward: the system clock is stepped back an hour
// while a TWA/STEL minute is open, and the gas then reads 50 ppm. The
// minute closes a minute (monotonic) after it opened, and the STEL alarm
// comes within two minutes; on the wall clock the minute stayed open for
// the hour, and no STEL was judged until then.
func TestSTELAfterWallStepBackward(t *testing.T) {
	// On the wall clock's minute (keeping the monotonic reading), so that
	// the first minute is open when the clock is stepped, 20 s in.
	t0 := time.Now()
	t0 = t0.Add(-t0.Round(0).Sub(t0.Truncate(time.Minute)))
	w := newTwin(t, stelCfg())
	w.do(func(e *Engine) ([]Event, error) { return e.Tick(t0), nil })
	w.do(func(e *Engine) ([]Event, error) { return e.Observe(t0, Sample{Point: "w.h", Value: 0}) })
	raised := time.Duration(-1)
	for s := 1; s <= 5*60 && raised < 0; s++ {
		at := t0.Add(time.Duration(s) * time.Second)
		if s >= 20 {
			at = clocktest.WallStep(at, -time.Hour) // stepped back 20 s in
		}
		for _, op := range []func(*Engine) ([]Event, error){
			func(e *Engine) ([]Event, error) { return e.Observe(at, Sample{Point: "w.h", Value: 50}) },
			func(e *Engine) ([]Event, error) { return e.Tick(at), nil },
		} {
			for _, ev := range w.do(op) {
				if ev.Alarm == "w.h.stel" && ev.Type == EvActivate {
					raised = time.Duration(s) * time.Second
				}
			}
		}
	}
	require.GreaterOrEqual(t, raised, time.Duration(0), "no STEL alarm within 5 minutes of 50 ppm")
	require.LessOrEqual(t, raised, 2*time.Minute, "STEL raised %s after the gas came", raised)
}

// TestSTELWindowAfterWallStepForward: three minutes of 50 ppm, then the
// system clock is stepped forward an hour and the gas reads 0. The STEL
// window is five minutes of monotonic time: the minutes of gas stay in it,
// and the alarm stays active; on the wall clock they fell out of the
// window at once and the alarm cleared.
func TestSTELWindowAfterWallStepForward(t *testing.T) {
	t0 := time.Now()
	w := newTwin(t, stelCfg())
	w.do(func(e *Engine) ([]Event, error) { return e.Tick(t0), nil })
	active := func() bool {
		st, ok := w.e.Alarm("w.h.stel")
		require.True(t, ok)
		return st.Active
	}
	for s := 0; s <= 4*60; s++ {
		at := t0.Add(time.Duration(s) * time.Second)
		v := 50.0
		if s >= 3*60 {
			at, v = clocktest.WallStep(at, time.Hour), 0
		}
		w.do(func(e *Engine) ([]Event, error) { return e.Observe(at, Sample{Point: "w.h", Value: v}) })
		w.do(func(e *Engine) ([]Event, error) { return e.Tick(at), nil })
	}
	require.True(t, active(), "the gas minutes left the 5-minute STEL window 1 minute after the step")
}

// TestTWAShiftAfterWallStepBackward: an accumulating TWA whose shift began
// two to three minutes ago; gas throughout, and 3.5 minutes in the system
// clock is stepped back an hour, into the shift before. The shift's
// exposure is kept (the shift number only moves on): the TWA equals that
// of an engine whose clock was not stepped. It was wiped when the shift
// number went back.
func TestTWAShiftAfterWallStepBackward(t *testing.T) {
	t0 := time.Now()
	shift := t0.UTC().Add(-2 * time.Minute).Format("15:04")
	cfg := Config{Points: []PointConfig{{Site: "s", Device: "w", Sensor: "h", Kind: "h2s", Poll: time.Second,
		Alarms: SensorAlarms{TWA: &LimitConfig{Limit: f(1), ShiftStart: shift}}}}}
	w := newTwin(t, cfg)
	plain := newEngine(t, cfg) // the same samples, the clock not stepped
	w.do(func(e *Engine) ([]Event, error) { return e.Tick(t0), nil })
	plain.Tick(t0)
	twa := func(e *Engine) float64 {
		st, ok := e.Alarm("w.h.twa")
		require.True(t, ok)
		return st.Value
	}
	for s := 0; s <= 6*60; s++ {
		at := t0.Add(time.Duration(s) * time.Second)
		_, err := plain.Observe(at, Sample{Point: "w.h", Value: 50})
		require.NoError(t, err)
		plain.Tick(at)
		if s >= 3*60+30 {
			at = clocktest.WallStep(at, -time.Hour)
		}
		w.do(func(e *Engine) ([]Event, error) { return e.Observe(at, Sample{Point: "w.h", Value: 50}) })
		w.do(func(e *Engine) ([]Event, error) { return e.Tick(at), nil })
	}
	require.GreaterOrEqual(t, twa(plain), 5*50.0/480, "five minutes closed")
	require.InDelta(t, twa(plain), twa(w.e), 1e-9, "the shift's exposure changed by the step back")
}

// TestTWAShiftAfterWallStepForwardUndone: the clock is stepped forward two
// days (a new shift: the accumulation restarts) and back again. The shift
// number is then two days ahead of the clock; the accumulation still
// restarts 24 h (monotonic) after the shift began, not two days later.
func TestTWAShiftAfterWallStepForwardUndone(t *testing.T) {
	t0 := time.Now()
	cfg := Config{Points: []PointConfig{{Site: "s", Device: "w", Sensor: "h", Kind: "h2s", Poll: time.Minute,
		Alarms: SensorAlarms{TWA: &LimitConfig{Limit: f(1), ShiftStart: "00:00"}}}}}
	e := newEngine(t, cfg)
	e.Tick(t0)
	twa := func() float64 {
		st, ok := e.Alarm("w.h.twa")
		require.True(t, ok)
		return st.Value
	}
	step := time.Duration(0)
	for m := 0; m <= 30*60; m++ { // 30 h, a sample a minute
		if m == 10 {
			step = 48 * time.Hour // forward two days
		}
		if m == 20 {
			step = 0 // and back
		}
		at := clocktest.WallStep(t0.Add(time.Duration(m)*time.Minute), step)
		_, err := e.Observe(at, Sample{Point: "w.h", Value: 48})
		require.NoError(t, err)
		e.Tick(at)
	}
	// Each closed minute adds 48/480 = 0.1. The shift that began at the
	// step forward (minute 10) ended 24 h later; at most the minutes since
	// then (about 6 h) and since the shift the wall clock is in are counted.
	require.Less(t, twa(), 0.1*(7*60), "the accumulation held for the step's two days")
}

// TestMinuteOver: a minute is over by the monotonic clock, or by the wall
// clock when the monotonic clock is within minuteSlack of its end (the two
// clocks are read apart: nanoseconds), never by a wall clock stepped
// forward alone.
func TestMinuteOver(t *testing.T) {
	end := time.Now().Add(time.Minute)
	for _, tc := range []struct {
		name string
		now  time.Time
		want bool
	}{
		{"at the end", end, true},
		{"after it", end.Add(time.Second), true},
		{"before it", end.Add(-time.Second), false},
		{"the wall clock stepped back, the minute over", clocktest.WallStep(end.Add(time.Second), -time.Hour), true},
		{"the wall clock past the end, the monotonic 0.5 ms short", clocktest.WallStep(end.Add(-500*time.Microsecond), time.Second), true},
		{"the wall clock stepped past the end, the monotonic 2 ms short", clocktest.WallStep(end.Add(-2*time.Millisecond), time.Second), false},
		{"the wall clock stepped an hour on, the minute just begun", clocktest.WallStep(end.Add(-59*time.Second), time.Hour), false},
	} {
		require.Equal(t, tc.want, minuteOver(tc.now, end), tc.name)
	}
}

// TestRestoredExpiriesWhenTheClockIsWrong: an alarm shelved for an hour
// and another out of service for two, then a restart.
//   - On a box whose clock is a year behind at the restart (no real-time
//     clock, NTP not reached), by which both have a year and more to run:
//     each ends when what was left of it at the snapshot has passed; the
//     alarms' times are kept as they were.
//   - Down 40 minutes, restored with the clock 45 minutes behind (a drifted
//     real-time clock), NTP setting it right 2 minutes later: each ends at
//     its real end, not 40 minutes late.
//   - Set while the clock was a year ahead, written after NTP stepped it
//     back half an hour later, restored a minute after that with the right
//     clock: each ends at its real end.
//   - From a snapshot written before snapshots carried saved_at, with the
//     clock a year behind: the shelve ends MaxShelve (8 h) after the
//     restart, the out-of-service period (no bound of its own) only when
//     the clock reaches its end.
func TestRestoredExpiriesWhenTheClockIsWrong(t *testing.T) {
	cfg := pressureCfg(func(a *SensorAlarms) { a.HighHigh = &LimitConfig{Limit: f(9)} })
	const year = 365 * 24 * time.Hour
	t0 := time.Now()
	// snapshot: l.p.high active from start, both periods set a minute
	// later, the snapshot written at written; since is l.p.high's.
	snapshot := func(start time.Time, written time.Time) (snap []byte, since time.Time) {
		e1 := highAt(t, cfg, start)
		set := start.Add(time.Minute)
		e1.Tick(set)
		st, _ := e1.Alarm("l.p.high")
		require.True(t, st.Active)
		_, err := e1.Shelve(set, "l.p.high", "u", "maintenance", time.Hour)
		require.NoError(t, err)
		_, err = e1.OutOfService(set, "l.p.high_high", "u", "calibration", 2*time.Hour)
		require.NoError(t, err)
		snap, err = e1.Snapshot(written)
		require.NoError(t, err)
		return snap, st.Since
	}
	// ends restores snap at at(0) and ticks a minute at a time: when each
	// period ended after the restart (-1: not within 9 h), and the restored
	// since of l.p.high.
	ends := func(snap []byte, at func(time.Duration) time.Time) (shelve, oos time.Duration, since time.Time) {
		w := restoredTwin(t, cfg, at(0), snap)
		st, ok := w.e.Alarm("l.p.high")
		require.True(t, ok)
		shelve, oos = -1, -1
		for d := time.Duration(0); d <= 9*time.Hour && (shelve < 0 || oos < 0); d += time.Minute {
			for _, ev := range w.do(func(e *Engine) ([]Event, error) { return e.Tick(at(d)), nil }) {
				switch {
				case ev.Alarm == "l.p.high" && ev.Type == EvUnshelve:
					shelve = d
				case ev.Alarm == "l.p.high_high" && ev.Type == EvReturnToService:
					oos = d
				}
			}
		}
		return shelve, oos, st.Since
	}

	snap, since0 := snapshot(t0, t0.Add(time.Minute))
	require.Contains(t, string(snap), `"saved_at":`)
	yearBehind := func(d time.Duration) time.Time { return clocktest.WallStep(t0.Add(time.Minute+d), -year) }
	shelve, oos, since := ends(snap, yearBehind)
	e := newEngine(t, cfg)
	_, err := e.Restore(yearBehind(0), snap)
	require.NoError(t, err)
	saved, behind, ok := e.ClockBehindSnapshot()
	require.True(t, ok)
	require.Equal(t, year, behind)
	require.True(t, saved.Equal(t0.Add(time.Minute)))
	require.Equal(t, time.Hour, shelve, "clock behind: the shelve ends when what was left of it has passed")
	require.Equal(t, 2*time.Hour, oos, "clock behind: out of service ends when what was left of it has passed")
	require.False(t, since.IsZero())
	require.True(t, since.Equal(since0), "the restored since is the saved one")

	drifted := func(d time.Duration) time.Time {
		if d < 2*time.Minute {
			return clocktest.WallStep(t0.Add(41*time.Minute+d), -45*time.Minute)
		}
		return t0.Add(41*time.Minute + d) // NTP has set the clock right
	}
	shelve, oos, _ = ends(snap, drifted)
	require.Equal(t, 20*time.Minute, shelve, "clock set right after the restore: the shelve ends at its saved time")
	require.Equal(t, 80*time.Minute, oos, "clock set right after the restore: out of service ends at its saved time")

	stepped, _ := snapshot(clocktest.WallStep(t0, year), t0.Add(30*time.Minute))
	shelve, oos, _ = ends(stepped, func(d time.Duration) time.Time { return t0.Add(31*time.Minute + d) })
	require.Equal(t, 30*time.Minute, shelve, "set on a clock a year ahead: the shelve ends an hour after it was set")
	require.Equal(t, 90*time.Minute, oos, "set on a clock a year ahead: out of service ends two hours after it was set")

	// A second restart 20 minutes after the first, the clock still a year
	// behind and running on: the snapshot written meanwhile puts the
	// restored times on that clock, so each ends when what was left of it
	// has passed (the minute between the writing and the restart included).
	first := restoredTwin(t, cfg, yearBehind(0), snap)
	snap2, err := first.e.Snapshot(yearBehind(20 * time.Minute))
	require.NoError(t, err)
	shelve, oos, _ = ends(snap2, func(d time.Duration) time.Time { return yearBehind(21*time.Minute + d) })
	require.Equal(t, 39*time.Minute, shelve, "second restart, clock still behind: the shelve ends when what was left of it has passed")
	require.Equal(t, 99*time.Minute, oos, "second restart, clock still behind: out of service ends when what was left of it has passed")

	require.Empty(t, restoredTwin(t, cfg, yearBehind(0), snap).e.ShortenedShelves(), "saved_at shows the clock behind: nothing cut")
	old := regexp.MustCompile(`,"saved_at":"[^"]*"`).ReplaceAll(snap, nil)
	shelve, oos, _ = ends(old, yearBehind)
	require.Equal(t, 8*time.Hour, shelve, "without saved_at, the restored shelve ends MaxShelve after the restart")
	require.Equal(t, []string{"l.p.high"}, restoredTwin(t, cfg, yearBehind(0), old).e.ShortenedShelves(), "the cut shelve is named")
	require.Equal(t, time.Duration(-1), oos, "without saved_at, out of service ends by the wall clock, a year on")
}

// TestRestoredReAlarmWhenTheClockIsBehind: an alarm acknowledged a minute
// before the snapshot re-alarms 10 minutes after its acknowledgement; the
// restart is on a box whose clock is a year behind. Judged by that clock
// the re-alarm would wait a year: it comes 9 minutes after the restart.
func TestRestoredReAlarmWhenTheClockIsBehind(t *testing.T) {
	cfg := pressureCfg(func(a *SensorAlarms) { a.High.ReAlarm = d(10 * time.Minute); a.High.OnDelay = d(0) })
	t0 := time.Now()
	e1 := highAt(t, cfg, t0)
	_, err := e1.Ack(t0.Add(time.Minute), "l.p.high", "u", "seen")
	require.NoError(t, err)
	snap, err := e1.Snapshot(t0.Add(2 * time.Minute))
	require.NoError(t, err)

	reAlarm := untilHighEvent(t, cfg, snap, t0.Add(2*time.Minute), 30*time.Second, 20*time.Minute, EvReAlarm)
	require.Equal(t, 9*time.Minute, reAlarm)
}

// untilHighEvent restores snap at restart on a clock a year behind, then
// every step (up to limit) steps l.p at 7 and ticks: how long after the
// restart l.p.high had an event of type typ (-1: not within limit).
func untilHighEvent(t *testing.T, cfg Config, snap []byte, restart time.Time, step, limit time.Duration, typ EventType) time.Duration {
	at := func(d time.Duration) time.Time { return clocktest.WallStep(restart.Add(d), -365*24*time.Hour) }
	w := restoredTwin(t, cfg, at(0), snap)
	for d := time.Duration(0); d <= limit; d += step {
		evs := w.do(func(e *Engine) ([]Event, error) { return e.Step(at(d), []Sample{{Point: "l.p", Value: 7}}) })
		evs = append(evs, w.do(func(e *Engine) ([]Event, error) { return e.Tick(at(d)), nil })...)
		for _, ev := range evs {
			if ev.Alarm == "l.p.high" && ev.Type == typ {
				return d
			}
		}
	}
	return -1
}

// onClockOf moves a time onto the snapshot's clock only across a step of
// the wall clock, or, for a restored time, by how far the clock carried on
// from a restore with the clock behind is ahead; otherwise it is written as
// it was, to the nanosecond.
func TestOnClockOf(t *testing.T) {
	e := newEngine(t, pressureCfg(nil))
	now := time.Now()
	then := now.Add(-time.Minute)
	require.Equal(t, then, e.onClockOf(now, then), "no step: as it was")
	stepped := clocktest.WallStep(now, -time.Hour) // now, after a step back
	require.Equal(t, stepped.Round(0).Add(-time.Minute), e.onClockOf(stepped, then), "a minute before the snapshot, on its clock")
	require.Equal(t, then.Round(0), e.onClockOf(stepped, then.Round(0)), "restored, no restore behind: as it was")
	e.behind = &behindClock{saved: now.Round(0).Add(time.Hour), at: now}
	require.Equal(t, then.Round(0).Add(-time.Hour), e.onClockOf(now, then.Round(0)),
		"restored after a restore an hour behind: an hour earlier on now's clock")
	require.Equal(t, then, e.onClockOf(now, then), "not restored: as it was")
}

// TestRestoredStaleWhenTheClockIsBehind: an alarm active for 23 hours at
// the snapshot is marked stale (active for more than 24 h) an hour after a
// restart on a box whose clock is a year behind, not a year later.
func TestRestoredStaleWhenTheClockIsBehind(t *testing.T) {
	cfg := pressureCfg(func(a *SensorAlarms) { a.High.OnDelay = d(0) })
	t0 := time.Now()
	e1 := highAt(t, cfg, t0)
	snap, err := e1.Snapshot(t0.Add(23 * time.Hour))
	require.NoError(t, err)

	stale := untilHighEvent(t, cfg, snap, t0.Add(23*time.Hour), time.Minute, 2*time.Hour, EvStale)
	require.Equal(t, 61*time.Minute, stale, "stale is more than 24 h active: the first tick after the hour")
}

// TestRestoredReturnIsNotFleeting: an alarm active since a minute before
// the snapshot returns 10 s after the restart. It was active for 70 s,
// not a "fleeting" activation of minus a year or minus an hour:
//   - restored on a box whose clock is a year behind;
//   - restored with the right clock, the wall clock then stepped back an
//     hour (its restored since is then "in the future").
func TestRestoredReturnIsNotFleeting(t *testing.T) {
	cfg := pressureCfg(func(a *SensorAlarms) { a.High.OnDelay = d(0); a.High.OffDelay = d(0) })
	t0 := time.Now()
	snap, err := highAt(t, cfg, t0).Snapshot(t0.Add(time.Minute))
	require.NoError(t, err)
	for _, tc := range []struct {
		name             string
		restore, returns time.Time
	}{
		{"clock a year behind at the restart", clocktest.WallStep(t0.Add(time.Minute), -365*24*time.Hour),
			clocktest.WallStep(t0.Add(time.Minute+10*time.Second), -365*24*time.Hour)},
		{"clock stepped back an hour after the restart", t0.Add(time.Minute),
			clocktest.WallStep(t0.Add(time.Minute+10*time.Second), -time.Hour)},
	} {
		w := restoredTwin(t, cfg, tc.restore, snap)
		evs := w.do(func(e *Engine) ([]Event, error) { return e.Step(tc.returns, []Sample{{Point: "l.p", Value: 5}}) })
		require.Equal(t, []EventType{EvReturn}, highEventTypes(evs), tc.name)
	}
}

// highEventTypes is the types of l.p.high's events in evs, in order.
func highEventTypes(evs []Event) []EventType {
	var types []EventType
	for _, ev := range evs {
		if ev.Alarm == "l.p.high" {
			types = append(types, ev.Type)
		}
	}
	return types
}

// TestSnapshotFromAClockAheadIsNotCarriedOn: a shelve set and a snapshot
// written on a clock a year ahead; the restart is on the right clock
// (behind the snapshot's), and the next snapshot is written on the right
// clock with the restored times moved onto it. A second restart is then
// not behind any more, and the shelve ends an hour after it was set (and
// the minute of the first restart, which the restore could not measure).
func TestSnapshotFromAClockAheadIsNotCarriedOn(t *testing.T) {
	cfg := pressureCfg(nil)
	const year = 365 * 24 * time.Hour
	t0 := time.Now()
	e1 := newEngine(t, cfg)
	ahead := clocktest.WallStep(t0, year)
	e1.Tick(ahead)
	_, err := e1.Observe(ahead, Sample{Point: "l.p", Value: 7})
	require.NoError(t, err)
	_, err = e1.Shelve(ahead, "l.p.high", "u", "maintenance", time.Hour)
	require.NoError(t, err)
	snap, err := e1.Snapshot(clocktest.WallStep(t0.Add(time.Minute), year))
	require.NoError(t, err)

	e2 := newEngine(t, cfg)
	_, err = e2.Restore(t0.Add(2*time.Minute), snap)
	require.NoError(t, err)
	_, _, behind := e2.ClockBehindSnapshot()
	require.True(t, behind)
	snap2, err := e2.Snapshot(t0.Add(3 * time.Minute))
	require.NoError(t, err)

	w := restoredTwin(t, cfg, t0.Add(4*time.Minute), snap2)
	_, _, behind = w.e.ClockBehindSnapshot()
	require.False(t, behind, "the second snapshot is on the right clock")
	unshelved := time.Duration(-1)
	for d := time.Duration(0); d <= 2*time.Hour && unshelved < 0; d += time.Minute {
		for _, ev := range w.do(func(e *Engine) ([]Event, error) { return e.Tick(t0.Add(4*time.Minute + d)), nil }) {
			if ev.Alarm == "l.p.high" && ev.Type == EvUnshelve {
				unshelved = d
			}
		}
	}
	require.Equal(t, 57*time.Minute, unshelved,
		"an hour after it was set, plus the minute the gateway was down, which the clock ahead hid")
}
