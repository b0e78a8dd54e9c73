package alerting

import "time"

// recent keeps the times of the latest k events of a series (activations
// of one alarm for chattering, annunciated activations of a site for a
// flood). Every rule that reads them compares a count with a threshold no
// larger than k ("at least 3 within 60 s", "more than 10 / fewer than 5
// within 10 min"), and whether at least n ≤ k events fall within a window
// ending now is decided by the latest n alone. So the decisions are the
// same as with every time kept, while memory stays fixed however fast the
// events come: a whole list grew with the flood it was counting (a site
// whose devices all fell silent at a 100 ms poll added 60 000 times a
// second, 36 million in a 10-minute window).
type recent struct {
	buf  []time.Time // the latest len(buf) ≤ k times, a ring once full
	next int         // where the next time goes once buf is full
}

// add records an event at t; times come in order (the engine's clock is
// monotonic).
func (r *recent) add(t time.Time, k int) {
	if len(r.buf) < k {
		r.buf = append(r.buf, t)
		return
	}
	if k <= 0 {
		return
	}
	r.buf[r.next] = t
	r.next = (r.next + 1) % len(r.buf)
}

// within counts the kept events less than w before now: exact while it is
// below k, and k when k or more fell within w.
func (r *recent) within(now time.Time, w time.Duration) int {
	n := 0
	for _, t := range r.buf {
		if now.Sub(t) < w {
			n++
		}
	}
	return n
}

// last returns the latest event's time; ok is false when none is kept.
func (r *recent) last() (t time.Time, ok bool) {
	if len(r.buf) == 0 {
		return time.Time{}, false
	}
	// next moves only once the ring is full, and then points past the
	// latest; before that, and when it has wrapped to 0, the latest is last.
	i := len(r.buf) - 1
	if r.next > 0 {
		i = r.next - 1
	}
	return r.buf[i], true
}

// reset forgets every event, keeping the storage.
func (r *recent) reset() {
	r.buf, r.next = r.buf[:0], 0
}
