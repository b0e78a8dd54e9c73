package alerting

import (
	"math"
	"time"
)

type tv struct {
	t time.Time
	v float64
}

// rocWindow keeps the minimum and maximum of the samples within the rate
// period with two monotonic queues (amortised O(1) per sample).
type rocWindow struct {
	minQ, maxQ []tv
}

func (w *rocWindow) push(now time.Time, v float64, period time.Duration) {
	for len(w.minQ) > 0 && w.minQ[len(w.minQ)-1].v >= v {
		w.minQ = w.minQ[:len(w.minQ)-1]
	}
	w.minQ = append(w.minQ, tv{now, v})
	for len(w.maxQ) > 0 && w.maxQ[len(w.maxQ)-1].v <= v {
		w.maxQ = w.maxQ[:len(w.maxQ)-1]
	}
	w.maxQ = append(w.maxQ, tv{now, v})
	w.minQ = evict(w.minQ, now, period)
	w.maxQ = evict(w.maxQ, now, period)
}

func evict(q []tv, now time.Time, period time.Duration) []tv {
	i := 0
	for i < len(q)-1 && now.Sub(q[i].t) > period {
		i++
	}
	if i == 0 {
		return q
	}
	return append(q[:0], q[i:]...)
}

// evalRate: a positive limit alarms on a rise of at least limit within
// the period (value minus the window's minimum), a negative limit on a
// fall (value minus the window's maximum). With percent the change is in
// percent of that reference value; a change from a reference of 0 is
// ±Inf percent.
func (e *Engine) evalRate(p *point, now time.Time, v float64) {
	x := p.x
	a := x.rate
	x.roc.push(now, v, a.spec.Period)
	ref := x.roc.minQ[0].v
	if a.spec.Limit < 0 {
		ref = x.roc.maxQ[0].v
	}
	change := v - ref
	if a.spec.Percent {
		switch {
		case ref != 0:
			change = change / math.Abs(ref) * 100
		case change != 0:
			// Any change from 0 is an infinite percentage: from a dead
			// line (no pressure) to a rising one alarms, as a fall to 0
			// does (its reference is not 0).
			change = math.Inf(int(math.Copysign(1, change)))
		}
	}
	a.value = change
	var cond bool
	if a.spec.Limit > 0 {
		cond = highCond(a, change)
	} else if !a.active {
		cond = change <= a.spec.Limit
	} else {
		cond = !fallReturned(a.spec, change)
	}
	e.setCond(a, now, cond)
}

// fallReturned: a falling rate's change is back above its limit plus
// the deadband.
func fallReturned(s *CondSpec, change float64) bool { return change > s.Limit+s.Deadband }

// exposure accumulates 1-minute averages for TWA and STEL. Negative
// readings (zero drift) are clamped to 0.
type exposure struct {
	// minute is the start of the open minute (zero: none open), with the
	// sample's monotonic clock reading: the minute closes a minute of
	// monotonic time later, so that a step of the wall clock (NTP at boot)
	// neither holds a minute open for the step's length (a step back: no
	// STEL or TWA judged for it, then the whole span averaged as one
	// minute) nor drops the minutes before it from the STEL window (a step
	// forward).
	minute time.Time
	sum    float64
	n      int
	// mins[head:] holds closed minute averages of the last 8 h, oldest
	// first; the dead front is dropped only when it is half the slice, so
	// closing a minute does not copy 8 h of averages.
	mins    []tv
	head    int
	acc     float64   // accumulating TWA: Σ avg / 480
	day     dayHours  // accumulating TWA without a shift start
	shift   int64     // shift number of the accumulation
	shiftAt time.Time // the accumulation's first minute
	shiftN  bool
}

// add accumulates a sample into the open minute; it reports whether the
// sample opened a new minute (whose closing is then due).
func (x *exposure) add(now time.Time, v float64) (opened bool) {
	if x.minute.IsZero() {
		// On the wall clock's minute grid, keeping the monotonic
		// reading (Truncate drops it).
		x.minute = now.Add(-now.Round(0).Sub(now.Truncate(time.Minute)))
		opened = true
	}
	x.sum += math.Max(v, 0)
	x.n++
	return opened
}

// minuteEnd is when the open minute's timer is due: minuteSlack before
// its end, where closeMinute may close it already (see minuteOver). ok is
// false when no minute is open.
func (x *exposure) minuteEnd() (t time.Time, ok bool) {
	if x.minute.IsZero() {
		return time.Time{}, false
	}
	return x.minute.Add(time.Minute - minuteSlack), true
}

// minuteSlack: see minuteOver.
const minuteSlack = time.Millisecond

// minuteOver reports whether the minute that ends at end is over at now:
// by the monotonic clock, or by the wall clock when the monotonic clock is
// within minuteSlack of the end. Go reads the two clocks apart, so their
// offset moves by nanoseconds from one reading to the next: the core's
// tick on the wall clock's minute could otherwise find the minute a few
// nanoseconds short and leave it to the next tick. A step of the wall
// clock is far outside the slack.
func minuteOver(now, end time.Time) bool {
	return !now.Before(end) || (!now.Round(0).Before(end.Round(0)) && end.Sub(now) < minuteSlack)
}

// closeMinute closes the open minute once now is past it and evaluates
// the TWA and STEL alarms.
func (e *Engine) closeMinute(p *point, now time.Time) {
	px := p.x
	x := px.exp
	if x.minute.IsZero() || !minuteOver(now, x.minute.Add(time.Minute)) {
		return
	}
	m := x.minute
	avg := x.sum / float64(x.n)
	x.minute, x.sum, x.n = time.Time{}, 0, 0
	x.mins = append(x.mins, tv{m, avg})
	end := m.Add(time.Minute)
	for x.head < len(x.mins) && end.Sub(x.mins[x.head].t) > 8*time.Hour {
		x.head++
	}
	if x.head > 64 && x.head*2 > len(x.mins) {
		x.mins = append(x.mins[:0], x.mins[x.head:]...)
		x.head = 0
	}
	if a := px.stel; a != nil {
		sum, n := 0.0, 0
		for j := len(x.mins) - 1; j >= x.head && end.Sub(x.mins[j].t) <= a.spec.Period; j-- {
			sum += x.mins[j].v
			n++
		}
		stel := sum / float64(n)
		a.value = stel
		e.setCond(a, now, highCond(a, stel))
	}
	if a := px.twa; a != nil {
		var twa float64
		switch {
		case a.spec.Mode == "moving8h":
			for _, mv := range x.mins[x.head:] {
				twa += mv.v
			}
			twa /= 480
		case !a.spec.ShiftSet:
			// An accumulating TWA without a shift start accumulated
			// for ever: a background well under the limit (noise on
			// an H2S cell, the preset's accumulate TWA) raised an
			// alarm after days that never returned. Not knowing the
			// shifts, the engine accumulates over the last 24 to 25
			// hours (whole hours of monotonic time, and the current
			// one): never less than any shift's accumulation, of a
			// shift up to 24 h (the most an accumulation lasts with a
			// shift start too), so no shift is judged later, and an
			// exposure that ended leaves the sum a day later.
			twa = x.day.add(m, avg) / 480
		default:
			// The shift is the wall clock's. A step of it back into the
			// shift before does not wipe this shift's exposure (the
			// shift number only moves on), and a shift lasts at most
			// 24 h of monotonic time, so that a step forward by days,
			// undone, does not hold one shift's accumulation for those
			// days.
			s := int64(m.Round(0).Add(-a.spec.ShiftStart).Sub(time.Unix(0, 0)) / (24 * time.Hour))
			switch {
			case !x.shiftN:
				x.shift, x.shiftAt, x.shiftN = s, m, true
			case s > x.shift || m.Sub(x.shiftAt) >= 24*time.Hour:
				x.acc, x.shift, x.shiftAt = 0, s, m
			}
			x.acc += avg / 480
			twa = x.acc
		}
		a.value = twa
		e.setCond(a, now, highCond(a, twa))
	}
}

// dayHours sums minute averages by hour of monotonic time, for the last
// 25 hours: an accumulating TWA without a shift start (closeMinute).
// Constant memory per point, where keeping 24 h of minutes would be 23 KB.
type dayHours struct {
	base time.Time // the first minute's start: hours count from it
	hour [25]int64 // each bucket's hour number; sum[i] is valid while hour[i] is within 25 of now
	sum  [25]float64
	set  bool
}

// add adds a closed minute's average and returns the sum over the
// current hour and the 24 before it.
func (d *dayHours) add(m time.Time, avg float64) float64 {
	if !d.set {
		d.base, d.set = m, true
		for i := range d.hour {
			d.hour[i] = -1
		}
	}
	h := int64(m.Sub(d.base) / time.Hour)
	i := int(h % int64(len(d.hour)))
	if d.hour[i] != h {
		d.hour[i], d.sum[i] = h, 0
	}
	d.sum[i] += avg
	total := 0.0
	for j := range d.hour {
		if d.hour[j] > h-int64(len(d.hour)) && d.hour[j] <= h {
			total += d.sum[j]
		}
	}
	return total
}
