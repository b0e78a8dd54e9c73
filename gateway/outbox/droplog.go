package outbox

import (
	"time"

	"github.com/rs/zerolog"
)

// dropLogEvery is the longest a full outbox goes without a log line about
// its drops. A full outbox drops at nearly every commit: about 150 lines a
// second at 600 000 readings/s when each drop had its own line.
const dropLogEvery = 10 * time.Second

// dropLog reports dropped readings in the log without a line per commit:
// the first drop at once, then one line per period with the sum of the
// drops in it, and a last line once a period passes without drops (or the
// outbox closes). Every dropped record is in exactly one line, and each
// line carries the outbox's running total, which Stats also gives. The
// ending is seen at a commit: the first one 10 s or more after the last
// drop (a gateway commits readings several times a second), or Close.
type dropLog struct {
	every time.Duration // dropLogEvery; shorter in tests

	since   time.Time // start of the period being summed; zero: not dropping
	lastAt  time.Time // last commit that dropped
	records int
	bytes   int64
	commits int
	total   uint64
}

func (l *dropLog) note(log zerolog.Logger, now time.Time, d Drop) {
	every := l.every
	if every == 0 {
		every = dropLogEvery
	}
	if !l.since.IsZero() && now.Sub(l.lastAt) >= every {
		l.flush(log) // the spell ended: no drop for a period (no commit either)
	}
	if d.Records == 0 {
		return
	}
	l.records += d.Records
	l.bytes += d.Bytes
	l.commits++
	l.total = d.Total
	l.lastAt = now
	switch {
	case l.since.IsZero():
		l.line(log, "outbox full: oldest readings dropped (alarms are never dropped)")
		l.since = now
	case now.Sub(l.since) >= every:
		l.line(log, "outbox still full: oldest readings dropped (alarms are never dropped)")
		l.since = now
	}
}

// flush writes the drops not yet in a line and ends the dropping spell.
func (l *dropLog) flush(log zerolog.Logger) {
	if l.since.IsZero() {
		return
	}
	l.line(log, "outbox no longer dropping readings")
	l.since = time.Time{}
}

func (l *dropLog) line(log zerolog.Logger, msg string) {
	log.Error().Int("records", l.records).Int64("bytes", l.bytes).Int("commits", l.commits).
		Uint64("total", l.total).Msg(msg)
	l.records, l.bytes, l.commits = 0, 0, 0
}
