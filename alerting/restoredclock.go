package alerting

import "time"

// Times restored from a snapshot have no monotonic reading: they are
// judged by the wall clock, which is right once the clock is, however
// wrong it was at the restore. A box that boots without a real-time clock
// (or with a drifted one) and has not reached NTP yet can restore with its
// clock behind the snapshot's saved_at, which it cannot be if both are
// right. Judged by that clock alone, a restored shelve or out-of-service
// period would last, and a re-alarm or stale mark wait, for as long as the
// clock is wrong (decades for a clock that starts at 1970). Those times
// are then judged by the later of the wall clock and saved_at moved on by
// the monotonic time since the restore: a restored period lasts at most
// what was left of it when the snapshot was written, and ends at its saved
// time if NTP sets the clock right first. Judging by the later of the two
// clocks can only bring an end or a reminder earlier, never later.

// wallOnly reports whether t has no monotonic reading: a time restored
// from a snapshot (or a test's fixed time).
func wallOnly(t time.Time) bool { return t == t.Round(0) }

// behindClock is what a Restore with the clock behind saved_at keeps.
type behindClock struct {
	saved time.Time // the snapshot's saved_at (wall clock)
	at    time.Time // the restore's time, with its monotonic reading
}

// ClockBehindSnapshot reports, after a Restore whose wall clock was behind
// the snapshot's saved_at, that saved_at and how far behind the clock was.
func (e *Engine) ClockBehindSnapshot() (savedAt time.Time, behind time.Duration, ok bool) {
	if b := e.behind; b != nil {
		return b.saved, b.saved.Sub(b.at.Round(0)), true
	}
	return time.Time{}, 0, false
}

// ShortenedShelves lists, after a Restore, the alarms whose restored timed
// shelve ended more than MaxShelve after the restore, judged as restored
// times are, and was cut to MaxShelve from then: a clock wrong in a way the
// snapshot's saved_at does not show (see Restore). The operator should
// know that a shelve ends sooner than it was set to.
func (e *Engine) ShortenedShelves() []string { return e.shortened }

// judgeNow is the time to judge t by at now: now, unless t is a restored
// time (no monotonic reading) and the restore's clock was behind, when it
// is the later of now and saved_at moved on by the time since the restore.
func (e *Engine) judgeNow(now, t time.Time) time.Time {
	b := e.behind
	if b == nil || !wallOnly(t) {
		return now
	}
	if v := b.saved.Add(now.Sub(b.at)); v.After(now.Round(0)) {
		return v
	}
	return now
}

// reached reports whether the time t has come at now.
func (e *Engine) reached(now, t time.Time) bool { return !e.judgeNow(now, t).Before(t) }

// elapsed is how long ago t was at now.
func (e *Engine) elapsed(now, t time.Time) time.Duration { return e.judgeNow(now, t).Sub(t) }

// atRestored arms a timer for t and, for a restored time after a restore
// with the clock behind, for the monotonic moment judgeNow reaches it.
func (e *Engine) atRestored(at func(time.Time), t time.Time) {
	at(t)
	if b := e.behind; b != nil && wallOnly(t) {
		at(b.at.Add(t.Sub(b.saved)))
	}
}
