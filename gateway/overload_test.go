package gateway

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/loadtest"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
)

func TestLateWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    lateness
		late bool
	}{
		{"calm", lateness{polls: 3340}, false},
		{"nothing polled", lateness{}, false},
		{"a poll abandoned", lateness{polls: 3340, late: 1}, true},
		{"a catch-up", lateness{polls: 3340, catchups: 1}, true},
		{"late starts under 5 %", lateness{polls: 3340, lateStarts: 166}, false},
		{"late starts at 5 %", lateness{polls: 3340, lateStarts: 167}, true},
		{"the one poll of a small site started late", lateness{polls: 1, lateStarts: 1}, true},
		// A late start counted in the window its poll started in, the
		// poll in the one before: the share is still judged.
		{"late starts, no poll", lateness{lateStarts: 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.late, tc.d.lateWindow())
		})
	}
}

// judgeSteps drives an overloadJudge second by second: each step is the
// lateness of one window, and the verdicts are collected by second.
func judgeSteps(j *overloadJudge, t0 time.Time, from int, windows []lateness, c *lateness) map[int]verdict {
	out := map[int]verdict{}
	for i, d := range windows {
		c.polls += d.polls
		c.lateStarts += d.lateStarts
		c.late += d.late
		c.catchups += d.catchups
		if v, ok := j.judge(t0.Add(time.Duration(from+i)*time.Second), *c); ok {
			out[from+i] = v
		}
	}
	return out
}

func repeat(d lateness, n int) []lateness {
	out := make([]lateness, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// heldThenCalm is a judge that held at 3 s (three late windows) and, 30
// calm windows later, ended the hold at 33 s, and its counters.
func heldThenCalm(t *testing.T, t0 time.Time, calm, late lateness) (*overloadJudge, *lateness) {
	t.Helper()
	j, c := &overloadJudge{}, &lateness{}
	w := []lateness{{}, late, late, late}
	w = append(w, repeat(calm, 30)...)
	got := judgeSteps(j, t0, 0, w, c)
	require.True(t, got[3].on, "held at 3 s")
	require.False(t, got[33].on, "ended at 33 s")
	return j, c
}

func TestOverloadJudge(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	calm := lateness{polls: 100}
	late := lateness{polls: 100, late: 3}

	t.Run("one or two late windows are a stall, not an overload", func(t *testing.T) {
		var j overloadJudge
		var c lateness
		w := []lateness{{}, calm, late, late}
		w = append(w, repeat(calm, 60)...)
		require.Empty(t, judgeSteps(&j, t0, 0, w, &c))
	})

	t.Run("three late windows within 10 s hold; 30 s calm ends it", func(t *testing.T) {
		var j overloadJudge
		var c lateness
		w := []lateness{{}, late, calm, calm, calm, late, calm, calm, calm, calm, calm, {polls: 100, lateStarts: 5}}
		w = append(w, repeat(calm, 40)...)
		got := judgeSteps(&j, t0, 0, w, &c)
		require.Len(t, got, 2, "%v", got)
		require.True(t, got[11].on, "held at the third late window, 10 s after the first")
		require.Contains(t, got[11].reason, "in the last 1s: 0 polls abandoned as late, 5 of 100 polls started late, 0 core catch-ups")
		require.Contains(t, got[11].reason, "until it has run 30s without running late")
		require.False(t, got[41].on, "ended after 30 s without a late window")
	})

	t.Run("late windows spread over more than 10 s do not hold", func(t *testing.T) {
		var j overloadJudge
		var c lateness
		w := []lateness{{}, late, calm, calm, calm, calm, late}
		w = append(w, repeat(calm, 5)...)
		w = append(w, late) // at 12 s: 11 s after the first
		w = append(w, repeat(calm, 5)...)
		w = append(w, late) // at 18 s: 12 s after the second
		w = append(w, repeat(calm, 30)...)
		require.Empty(t, judgeSteps(&j, t0, 0, w, &c))
	})

	t.Run("each late window restarts the calm", func(t *testing.T) {
		var j overloadJudge
		var c lateness
		w := []lateness{{}, late, late, late}
		w = append(w, repeat(calm, 20)...)
		w = append(w, late)
		w = append(w, repeat(calm, 31)...)
		got := judgeSteps(&j, t0, 0, w, &c)
		require.Len(t, got, 2, "%v", got)
		require.True(t, got[3].on)
		require.False(t, got[54].on, "30 s after the late window at 24 s")
	})

	t.Run("a relapse within the calm holds at its first late window and doubles the calm, up to 10 minutes; one later keeps it; 10 minutes after a hold it is reset", func(t *testing.T) {
		j, c := heldThenCalm(t, t0, calm, late)
		var got map[int]verdict
		require.Equal(t, holdCalm, j.calm)
		at := 34
		for _, want := range []time.Duration{60 * time.Second, 120 * time.Second, 240 * time.Second, 480 * time.Second, 600 * time.Second, 600 * time.Second} {
			// Overloaded again at once: held again at the first late
			// window, with twice the calm.
			got = judgeSteps(j, t0, at, []lateness{late}, c)
			require.True(t, got[at].on, "held again at %d s", at)
			require.Equal(t, want, j.calm)
			require.Contains(t, got[at].reason, "gateway overloaded again (")
			require.Contains(t, got[at].reason, "until it has run "+want.String()+" without running late")
			n := int(want / time.Second)
			got = judgeSteps(j, t0, at+1, repeat(calm, n), c)
			require.False(t, got[at+n].on, "ended %s after the last late window", want)
			at += 1 + n
		}
		// 10 minutes after the last hold ended, a relapse starts over
		// at 30 s.
		got = judgeSteps(j, t0, at, repeat(calm, 600), c)
		require.Empty(t, got)
		at += 600
		got = judgeSteps(j, t0, at, []lateness{late, late, late}, c)
		require.True(t, got[at+2].on)
		require.Equal(t, holdCalm, j.calm, "back to 30 s 10 minutes after the last hold ended")
		got = judgeSteps(j, t0, at+3, repeat(calm, 30), c)
		require.False(t, got[at+32].on)
		at += 33
		// 40 s after that hold ended: later than its calm (30 s), within
		// 10 minutes: the calm stays 30 s.
		got = judgeSteps(j, t0, at, repeat(calm, 38), c)
		require.Empty(t, got)
		at += 38
		got = judgeSteps(j, t0, at, []lateness{late, late, late}, c)
		require.True(t, got[at+2].on)
		require.Equal(t, holdCalm, j.calm, "a relapse after the calm keeps it")
	})

	t.Run("after the calm, a late window holds at once while the alarms held still wait to return, not after", func(t *testing.T) {
		j, c := heldThenCalm(t, t0, calm, late)
		got := judgeSteps(j, t0, 34, repeat(calm, 30), c) // to 63 s: 30 s after the end
		require.Empty(t, got)
		j.waiting = true
		got = judgeSteps(j, t0, 64, []lateness{late}, c)
		require.True(t, got[64].on, "held again at the first late window")
		require.Contains(t, got[64].reason, "gateway overloaded again (")
		require.Equal(t, holdCalm, j.calm, "after the calm: not doubled")
		j.waiting = false
		got = judgeSteps(j, t0, 65, repeat(calm, 30), c)
		require.False(t, got[94].on)
		got = judgeSteps(j, t0, 95, repeat(calm, 30), c) // past this hold's calm
		require.Empty(t, got)
		got = judgeSteps(j, t0, 125, []lateness{late, late}, c)
		require.Empty(t, got, "two late windows, nothing waiting: a stall")
	})

	t.Run("the aftermath is holdCalm, not a doubled calm", func(t *testing.T) {
		var j overloadJudge
		var c lateness
		w := []lateness{{}, late, late, late} // held at 3 s
		w = append(w, repeat(calm, 30)...)
		w = append(w, late) // ended at 33 s, held again at 34 s: calm 60 s
		w = append(w, repeat(calm, 60)...)
		got := judgeSteps(&j, t0, 0, w, &c)
		require.True(t, got[34].on)
		require.False(t, got[94].on, "ended at 94 s")
		require.Equal(t, 60*time.Second, j.calm)
		// 40 s after the end: past holdCalm, within the doubled calm.
		got = judgeSteps(&j, t0, 95, repeat(calm, 39), &c)
		require.Empty(t, got)
		got = judgeSteps(&j, t0, 134, []lateness{late, calm, calm, late}, &c)
		require.Empty(t, got, "one late window, or two, 40 s after: a stall")
		got = judgeSteps(&j, t0, 138, []lateness{late}, &c)
		require.True(t, got[138].on, "the third within 10 s: an overload")
		require.Equal(t, 120*time.Second, j.calm, "within the last calm after its end: doubled")
	})

	t.Run("windows shorter than a second are not judged", func(t *testing.T) {
		var j overloadJudge
		c := lateness{}
		_, ok := j.judge(t0, c)
		require.False(t, ok)
		for i := 1; i <= 9; i++ {
			c.late++
			_, ok := j.judge(t0.Add(time.Duration(i)*100*time.Millisecond), c)
			require.False(t, ok, "judged %d00 ms in", i)
		}
		// The window's counts are not lost to the early calls: one
		// window of 10 abandoned polls, then two more late ones hold.
		c.late++
		_, ok = j.judge(t0.Add(time.Second), c)
		require.False(t, ok)
		c.late++
		_, ok = j.judge(t0.Add(2*time.Second), c)
		require.False(t, ok)
		c.late++
		v, ok := j.judge(t0.Add(3500*time.Millisecond), c)
		require.True(t, ok)
		require.True(t, v.on)
		require.Contains(t, v.reason, "in the last 1.5s: 1 polls abandoned as late")
	})
}

// siteEvent is an event of the alarm lane, as published.
type siteEvent struct {
	Type    string `json:"type"`
	Alarm   string `json:"alarm"`
	Comment string `json:"comment"`
}

// drainEvents commits what waits, drains and releases the alarm lane, and
// returns its events.
func drainEvents(t *testing.T, g *Gateway) []siteEvent {
	t.Helper()
	var evs []siteEvent
	for _, r := range drainAlarmLane(t, g) {
		if r.Kind != outbox.KindEvent {
			continue
		}
		var e siteEvent
		require.NoError(t, json.Unmarshal(r.Payload, &e))
		evs = append(evs, e)
	}
	return evs
}

// countEvents counts evs of type typ of dev's comm alarms, or with dev
// "" the site's own events (no alarm).
func countEvents(evs []siteEvent, typ, dev string) int {
	n := 0
	for _, e := range evs {
		comm := strings.HasPrefix(e.Alarm, dev+".") && strings.HasSuffix(e.Alarm, ".comm")
		if e.Type == typ && (comm || dev == "" && e.Alarm == "") {
			n++
		}
	}
	return n
}

// A gateway whose pollers run late holds its comm alarms: d000, unread
// past its comm timeout while the gateway is overloaded, raises its 20
// comm alarms once, and they stay active when it is read again, until
// the gateway has run 30 s without running late; then they return. The
// hold is published as site events and in the metrics. The pollers'
// lateness is what they count (modbus.Options.Lateness), added here by
// hand, and the judge's clock is the test's: what the test drives is the
// gateway's judgement and the engine's hold.
func TestFaultHoldWhileOverloaded(t *testing.T) {
	r := newHoldRig(t, 2)
	g, at, poll, second := r.g, r.at, r.poll, r.second
	d0, d1 := loadtest.DeviceID(0), loadtest.DeviceID(1)
	var total int
	drain := func() []siteEvent {
		evs := drainEvents(t, g)
		total += len(evs)
		return evs
	}

	poll(0, d0, d1)
	second(0, false)
	poll(1, d0, d1)
	second(1, true)
	poll(2, d0, d1)
	second(2, true) // two late windows: a stall
	require.Zero(t, metricValue(t, g.met.faultHold))
	poll(3, d1)
	second(3, true) // the third: held
	require.Equal(t, 1.0, metricValue(t, g.met.faultHold))
	require.Equal(t, 1.0, metricValue(t, g.met.faultHolds))
	evs := drain()
	require.Equal(t, 1, countEvents(evs, "fault_hold", ""), "%v", evs)
	require.Contains(t, evs[len(evs)-1].Comment, "gateway overloaded")
	// The control room's banner (the info) and the retained status.
	holds := g.view.faultHolds()
	require.Len(t, holds.Holds, 1)
	require.Equal(t, "fault_hold", holds.Holds[0].Type)
	hs := g.holdStatus.Load()
	require.NotNil(t, hs)
	require.Equal(t, string(mqtt.AppendTime(nil, at(3))), hs.Since)
	require.Contains(t, hs.Reason, "gateway overloaded")

	// d000 unread since 2 s: its comm alarms rise at the 5 s tick and
	// stay, read again, while the gateway keeps running late.
	poll(4, d1)
	second(4, true)
	poll(5, d1)
	second(5, true)
	for s := 5.5; s <= 20; s++ {
		poll(s, d0, d1)
		second(s+0.5, s <= 8)
	}
	evs = drain()
	require.Equal(t, 20, countEvents(evs, "activate", d0), "%v", evs)
	require.Zero(t, countEvents(evs, "return", d0), "returned while held")
	require.Zero(t, countEvents(evs, "activate", d1))
	require.Equal(t, 1.0, metricValue(t, g.met.faultHold))
	// The gateway's view marks them held (holding makes no event).
	heldRow := func() bool {
		g.view.mu.RLock()
		defer g.view.mu.RUnlock()
		return g.view.alarms[d0+"."+loadtest.SensorID(0)+".comm"].Held
	}
	require.True(t, heldRow())

	// 30 s after the last late window (at 8 s) the hold ends, and
	// d000's alarms, read all along, return with it.
	for s := 21.0; s <= 38; s++ {
		poll(s, d0, d1)
		second(s, false)
		if s < 38 {
			require.Equal(t, 1.0, metricValue(t, g.met.faultHold), "held at %v s", s)
		}
	}
	require.Zero(t, metricValue(t, g.met.faultHold), "the hold ended at 38 s")
	require.Empty(t, g.view.faultHolds().Holds)
	require.Equal(t, uint64(2), g.view.faultHolds().Gen)
	require.Nil(t, g.holdStatus.Load())
	evs = drain()
	require.Equal(t, 1, countEvents(evs, "fault_hold_end", ""), "%v", evs)
	require.Equal(t, 20, countEvents(evs, "return", d0), "%v", evs)
	require.False(t, heldRow(), "returned: no longer held")
	require.Equal(t, 1.0, metricValue(t, g.met.faultHolds))
	// Every event is counted, those of ticks (the comm alarms raised, the
	// hold's) as well as those of polls.
	require.Equal(t, float64(total), metricValue(t, g.met.events))
}

// countComm counts evs of type typ of any comm alarm.
func countComm(evs []siteEvent, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ && strings.HasSuffix(e.Alarm, ".comm") {
			n++
		}
	}
	return n
}

// holdRig drives a core gateway of n devices (newCoreGateway) through
// polls and seconds of the overload judge's clock.
type holdRig struct {
	t       *testing.T
	g       *Gateway
	devices int
	t0      time.Time
	clock   time.Time
}

func newHoldRig(t *testing.T, devices int) *holdRig {
	return newHoldRigOn(t, newCoreGateway(t, devices, Options{}), devices)
}

// newHoldRigOn drives g, a core gateway of n devices.
func newHoldRigOn(t *testing.T, g *Gateway, devices int) *holdRig {
	r := &holdRig{t: t, g: g, devices: devices, t0: time.Now().Add(-time.Hour).Truncate(time.Second)}
	r.g.judgeClock = func() time.Time { return r.clock }
	return r
}

// holdAll runs the rig into a hold that holds every comm alarm: three
// late seconds (0-3 s), every device unread until 4.5 s, then read.
func (r *holdRig) holdAll() {
	r.poll(0)
	r.second(0, false)
	for s := 1.0; s <= 3; s++ {
		r.second(s, true)
	}
	require.Equal(r.t, 1.0, metricValue(r.t, r.g.met.faultHold))
	r.second(4, false) // every device unread since 0 s: lost
	r.poll(4.5)        // read again: held
	r.second(5, false)
	require.Equal(r.t, r.devices*20, r.g.eng.Held())
}

// at is s seconds into the rig's time.
func (r *holdRig) at(s float64) time.Time { return r.t0.Add(time.Duration(s * float64(time.Second))) }

// poll hands the core a poll of each of devs, read at s, counted as the
// pollers count them.
func (r *holdRig) poll(s float64, devs ...string) {
	bs := benchBatches(r.devices)
	var polled []modbus.Batch
	for _, b := range bs {
		if len(devs) == 0 || slices.Contains(devs, b.Device) {
			b.At = r.at(s)
			polled = append(polled, b)
		}
	}
	r.g.lateness.Polls.Add(uint64(len(polled)))
	// As catchup_test's: the core's last tick is now, so that onBatches
	// does not tick by itself at the end of the burst.
	r.g.tickedAt = time.Now()
	r.g.onBatches(r.t.Context(), polled)
}

// second ticks the core at s, its judge's clock at s, with a poll
// abandoned as late since the last second if late.
func (r *holdRig) second(s float64, late bool) {
	if late {
		r.g.lateness.Late.Add(1)
	}
	r.clock = r.at(s)
	r.g.onTick(r.t.Context(), r.at(s))
}

// Once the hold has ended the alarms it kept active return at a pace,
// heldReleasePerSecond, not all at once, those held first first; a late
// window starts a hold again at once, which stops them and keeps the
// rest held; after it they return at half the pace.
func TestHeldAlarmsReleasedAtAPace(t *testing.T) {
	const devices = 150 // 3 000 comm alarms: twelve ticks' share of the pace
	r := newHoldRig(t, devices)
	g := r.g
	r.holdAll()
	comm := func(typ string) int { return countComm(drainEvents(t, g), typ) }
	require.Equal(t, devices*20, comm("activate"))
	require.Equal(t, float64(devices*20), metricValue(t, g.met.faultHeld))
	returns := func() int { return comm("return") }
	require.Zero(t, returns())
	tick := g.o.TickEvery
	share := int(tick * heldReleasePerSecond / time.Second)
	require.Less(t, share, devices*20, "the test needs more held alarms than a tick releases")

	// The hold ends 30 s after the last late window (3 s); each tick
	// after releases a tick's share.
	s := 5.0
	for ; metricValue(t, g.met.faultHold) == 1; s++ {
		r.poll(s)
		r.second(s, false)
		require.Less(t, s, 40.0)
	}
	require.Equal(t, share, returns(), "released at the hold's end")
	held := devices*20 - share
	require.Equal(t, float64(held), metricValue(t, g.met.faultHeld))
	end := s - 1
	require.Equal(t, tick, g.nextTick(r.at(end)), "the core wakes at the next grid time")
	step := tick.Seconds()
	// Every device is read all along: no alarm is lost again.
	second := func(s float64, late bool) {
		r.poll(s)
		r.second(s, late)
	}
	for i := 1; i < 4; i++ {
		second(end+float64(i)*step, false)
		require.Equal(t, share, returns(), "tick %d after the end", i)
		held -= share
	}
	now := end + 3*step

	// A core 2 s behind catches up: eight due ticks 250 ms apart within
	// one moment of the clock. They release by the clock, at most a
	// second's worth, not a share each.
	r.clock = r.at(now + 2)
	for i := 1; i <= 8; i++ {
		g.onTick(t.Context(), r.at(now+float64(i)*step))
	}
	require.Equal(t, heldReleasePerSecond, returns())
	held -= heldReleasePerSecond
	now += 2
	require.Greater(t, held, share)

	// While they return, the first late window starts a hold again (not
	// the third), which stops them; its end releases the rest.
	second(now+step, true)
	require.Equal(t, share, returns(), "released until the late window is judged")
	held -= share
	second(now+1, false)
	require.Equal(t, 1.0, metricValue(t, g.met.faultHold), "held again at the first late window")
	evs := drainEvents(t, g)
	require.Zero(t, countComm(evs, "return"), "none while held")
	require.Equal(t, 1, countEvents(evs, "fault_hold", ""))
	require.Contains(t, evs[0].Comment, "gateway overloaded again")
	require.Contains(t, evs[0].Comment, "until it has run 1m0s without running late", "within the calm after the last: doubled")
	require.Equal(t, float64(held), metricValue(t, g.met.faultHeld))
	// The hold came while they returned: after it, half the pace.
	s = now + 1 + step
	for ; metricValue(t, g.met.faultHold) == 1; s += step {
		second(s, false)
		require.Less(t, s, now+100)
		if metricValue(t, g.met.faultHold) == 1 {
			require.Zero(t, returns(), "none while held, at %v s", s)
		}
	}
	require.Equal(t, share/2, returns(), "half the pace after a hold that came while they returned")
	held -= share / 2
	for ; g.eng.Held() > 0; s += step {
		second(s, false)
		n := returns()
		require.LessOrEqual(t, n, share/2)
		held -= n
		require.Less(t, s, now+200)
	}
	require.Zero(t, held)
	require.Equal(t, heldReleasePerSecond/2, g.releaseRate)
	second(s, false)
	require.Equal(t, heldReleasePerSecond, g.releaseRate, "none left: the pace is back for the next hold")
}

// metricValue is a gauge's or a counter's value.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	require.NoError(t, m.Write(&d))
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

// The lateness is judged on the clock, not on the ticks' due times: a
// core catching up runs many due ticks within a moment, and they are not
// as many windows (they would make a single stall an overload, and let a
// hold's calm pass within a catch-up).
func TestOverloadJudgedOnTheClock(t *testing.T) {
	g := newCoreGateway(t, 1, Options{})
	ctx := t.Context()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	clock := t0
	g.judgeClock = func() time.Time { return clock }
	g.onTick(ctx, t0)
	clock = t0.Add(300 * time.Millisecond)
	for i := 1; i <= 10; i++ { // ten due ticks, one after the other
		g.lateness.Late.Add(1)
		g.onTick(ctx, t0.Add(time.Duration(i)*time.Second))
	}
	require.Zero(t, metricValue(t, g.met.faultHold), "ten due ticks within 300 ms held")
	for i := 1; i <= 3; i++ { // three windows of the clock
		clock = t0.Add(time.Duration(i) * 1100 * time.Millisecond)
		g.lateness.Late.Add(1)
		g.onTick(ctx, t0.Add(time.Duration(10+i)*time.Second))
	}
	require.Equal(t, 1.0, metricValue(t, g.met.faultHold))
}

// While held alarms wait to be released the core wakes at every grid
// time for them, however far its next timer is.
func TestCoreWakesToReleaseHeldAlarms(t *testing.T) {
	sc := loadtest.Scenario{Site: "bench", Devices: 1, Sensors: 2, Poll: time.Second, Ports: []int{20000},
		BrokerURL: "tcp://127.0.0.1:1", OutboxDir: t.TempDir(), MaxOutbox: "1GiB"}
	text, err := sc.SiteYAML()
	require.NoError(t, err)
	var site configs.Site
	_, err = configs.Parse("bench.yaml", []byte(text), &site)
	require.NoError(t, err)
	g, err := New(Options{Site: &site, Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })

	now := time.Now().Truncate(time.Second)
	good := func(at time.Time) {
		var ss []alerting.Sample
		for s := range 2 {
			ss = append(ss, alerting.Sample{Point: loadtest.DeviceID(0) + "." + loadtest.SensorID(s), Value: 0.2, Quality: alerting.Good})
		}
		_, err := g.eng.Step(at, ss)
		require.NoError(t, err)
	}
	good(now)
	g.eng.SetFaultHold(now, true, "overloaded")
	now = now.Add(3 * time.Second)
	g.eng.Tick(now) // lost
	now = now.Add(100 * time.Millisecond)
	good(now) // back: held
	g.eng.SetFaultHold(now, false, "calm")
	require.Equal(t, 2, g.eng.Held())
	g.tickedAt = now
	require.Greater(t, g.eng.NextDue(now), g.o.TickEvery, "the engine has nothing due soon")
	require.LessOrEqual(t, g.nextTick(now), g.o.TickEvery)
	g.eng.ReleaseHeld(now, -1)
	require.Greater(t, g.nextTick(now), g.o.TickEvery, "nothing to release")
}

// A gateway restarted during a hold keeps the alarms it held, held (its
// snapshot marks them), with no hold of its own, and returns them at the
// pace, as after a hold; still overloaded, it holds again at its first
// late second.
func TestRestartDuringAHoldReleasesAtAPace(t *testing.T) {
	const devices = 20 // 400 comm alarms: two ticks' share
	site := coreSite(t, devices)
	g1, err := New(Options{Site: site, Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	r1 := newHoldRigOn(t, g1, devices)
	r1.holdAll()
	drainEvents(t, g1)
	g1.persistNow(r1.at(5))
	require.NoError(t, g1.Close())

	g2, err := New(Options{Site: site, Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g2.Close() })
	require.NoError(t, g2.restore(t.Context()))
	require.Equal(t, devices*20, g2.eng.Held(), "held across the restart")
	require.Empty(t, drainEvents(t, g2), "nothing returned by the restore")
	r2 := newHoldRigOn(t, g2, devices)
	r2.t0 = time.Now().Truncate(time.Second)
	share := int(g2.o.TickEvery * heldReleasePerSecond / time.Second)
	r2.poll(0)
	r2.second(0, false)
	returned := countComm(drainEvents(t, g2), "return")
	require.Equal(t, share, returned, "a tick's share")
	// Still overloaded: with alarms waiting to return, the first late
	// second holds again.
	r2.poll(1)
	r2.second(1, true)
	require.Equal(t, 1.0, metricValue(t, g2.met.faultHold))
	require.Equal(t, devices*20-share, g2.eng.Held())
	for i := 0; g2.eng.Held() > 0; i++ {
		s := 1 + float64(i)*g2.o.TickEvery.Seconds()
		r2.poll(s)
		r2.second(s, false)
		n := countComm(drainEvents(t, g2), "return")
		returned += n
		if metricValue(t, g2.met.faultHold) == 1 {
			require.Zero(t, n, "none while held, at %v s", s)
		}
		require.LessOrEqual(t, n, share, "tick %d", i)
		require.Less(t, s, 60.0)
	}
	require.Equal(t, devices*20, returned)
}
