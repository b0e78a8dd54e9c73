package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
)

// DirectOptions configure a Direct writer.
type DirectOptions struct {
	// Outbox is drained as consumer Consumer: a record leaves it when
	// every consumer released it (outbox.Options.Consumers).
	Outbox *outbox.Outbox
	// Consumer is Direct's consumer number in Outbox: 1 beside the MQTT
	// publisher (consumer 0) in the gateway's outbox, 0 when Direct is
	// the outbox's only consumer.
	Consumer int
	Writer   *Writer
	// Site tags alarm points (alarm payloads carry it too).
	Site string
	// BatchRecords bounds the records per write (default 500).
	BatchRecords int
	// BatchPoints bounds the points per write (the site's
	// influxdb.batch_points; 0: no bound but BatchRecords). A record is
	// never split: a write ends with the record that reaches it.
	BatchPoints int
	// BatchWait spaces the writes (the site's influxdb.batch_wait): what
	// a commit brings is written at once when the last write is at least
	// BatchWait old, else BatchWait after it, with whatever else came
	// meanwhile. Alarms reach the control room over MQTT, never waiting
	// for this.
	BatchWait time.Duration
	// Fresh, when the outbox's readings items are Fresh's (Fresh.Item),
	// has the lines of the readings committed lately: written from there
	// instead of decoded from the outbox.
	Fresh *Fresh
	Log   zerolog.Logger
}

// Direct drains a gateway's outbox straight into InfluxDB, with the same
// guarantee as the MQTT path: a record leaves the outbox only after
// InfluxDB accepted it. Alarms go first.
type Direct struct {
	o                            DirectOptions
	log                          zerolog.Logger
	stored, points, dead, writes atomic.Uint64
	// after is, by lane, the last record written: its release rides on the
	// outbox's next commit (ReleaseLater), so the next batch starts after
	// it instead of reading it again. A restart reads from the start: what
	// was written and not yet released is written again (same points).
	after [2]uint64

	// Reused from batch to batch (Run's goroutine only): at a steady load
	// a batch allocates nothing of its own (a new body, spans, keys and a
	// decoded copy of every payload each time were a fifth of the
	// gateway's CPU in garbage collection, docs/performance-history.md
	// item 60).
	recs  []outbox.Record
	arena []byte // the records' payloads, end to end
	body  []byte
	spans []span
	keys  []outbox.Key
	bad   []int
	dec   mqtt.ReadingsDecoder
	m     mqtt.Readings
}

// maxKeptArena bounds the payload and body buffers kept between batches.
const maxKeptArena = 1 << 20

// DirectStats are counters since start.
type DirectStats struct {
	Records uint64 // records stored and released
	Points  uint64
	Dropped uint64 // records InfluxDB refused or that could not be decoded (logged)
	Writes  uint64 // write requests that stored a batch
}

// NewDirect checks the options.
func NewDirect(o DirectOptions) (*Direct, error) {
	if o.Outbox == nil || o.Writer == nil {
		return nil, errors.New("new direct writer: outbox and writer are required")
	}
	if o.Outbox.AppendedTo(o.Consumer) == nil {
		return nil, fmt.Errorf("new direct writer: the outbox has no consumer %d", o.Consumer)
	}
	if o.BatchRecords <= 0 {
		o.BatchRecords = 500
	}
	d := &Direct{o: o, log: o.Log.With().Str("component", "influxdb_direct").Str("site", o.Site).Logger()}
	d.dec.SkipValues = true // values are written as texts (appendReadingLines)
	return d, nil
}

// Stats returns the counters.
func (d *Direct) Stats() DirectStats {
	return DirectStats{Records: d.stored.Load(), Points: d.points.Load(), Dropped: d.dead.Load(), Writes: d.writes.Load()}
}

// Run writes until ctx ends. Unwritten records stay in the outbox.
//
// An outbox commit is a batch already (a gateway commits a second's polls
// together), so what it brings is written at once, in the wake-up that
// committed it, unless the last write was less than BatchWait ago: the
// writer waited BatchWait after every commit until item 66
// (docs/performance-history.md), which woke the process once more a
// second for that write alone. The writes are spaced as before: at most
// one a BatchWait, but for a backlog (a write cut at batch_points or
// BatchRecords), written back to back.
func (d *Direct) Run(ctx context.Context) error {
	var wrote time.Time // when the last write began
	appended := d.o.Outbox.AppendedTo(d.o.Consumer)
	for {
		// What was committed before the read below is in it: a signal
		// left by such a commit (one during the last wait) would wake
		// the writer for nothing, a spacing later.
		select {
		case <-appended:
		default:
		}
		began := time.Now()
		n, more, err := d.once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if n > 0 {
			wrote = began
		}
		if more {
			continue
		}
		// A commit during the write has left its signal: the spacing
		// below then applies to its records.
		select {
		case <-ctx.Done():
			return nil
		case <-appended:
		}
		if wait := d.o.BatchWait - time.Since(wrote); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
}

// recordLines appends the points of one record.
func (d *Direct) recordLines(dst []byte, r *outbox.Record) ([]byte, int, error) {
	switch r.Kind {
	case outbox.KindReadings:
		if out, n, ok := d.o.Fresh.take(dst, r.Stream, r.Seq); ok {
			return out, n, nil
		}
		// As canary ingest does: the decoder's reused storage, and each
		// value written as the payload wrote it.
		if err := d.dec.Decode(r.Payload, &d.m); err != nil {
			return dst, 0, err
		}
		return appendReadingLines(dst, &d.m, d.dec.ValueTexts()), len(d.m.Readings), nil
	case outbox.KindAlarm:
		if len(r.Payload) == 0 {
			return dst, 0, nil
		}
		a, err := mqtt.DecodeAlarmState(r.Payload)
		if err != nil {
			return dst, 0, err
		}
		return AppendAlarmLine(dst, d.o.Site, &a), 1, nil
	case outbox.KindEvent:
		e, err := mqtt.DecodeEvent(r.Payload)
		if err != nil {
			return dst, 0, err
		}
		return AppendEventLine(dst, d.o.Site, &e), 1, nil
	}
	return dst, 0, fmt.Errorf("unknown record kind %s", r.Kind)
}

// once writes one batch and returns how many records it handled, and
// whether more may wait (the batch was cut at its bound).
func (d *Direct) once(ctx context.Context) (int, bool, error) {
	defer d.keep()
	d.arena = d.arena[:0]
	recs, next, err := d.o.Outbox.DrainFor(d.o.Consumer, d.recs, outbox.Alarms, d.after[outbox.Alarms], d.o.BatchRecords, d.alloc)
	if err != nil {
		return 0, false, err
	}
	var nextReadings uint64
	if room := d.o.BatchRecords - len(recs); room > 0 {
		var more []outbox.Record
		more, nextReadings, err = d.o.Outbox.DrainFor(d.o.Consumer, recs[len(recs):], outbox.Readings, d.after[outbox.Readings], room, d.alloc)
		if err != nil {
			return 0, false, err
		}
		recs = append(recs, more...) // in place when more is in recs' array
	}
	d.recs = recs
	// Past what was skipped too (this consumer's released records waiting
	// for the other, corrupt ones), once what was read is written: not
	// read again.
	skipPast := func() {
		d.after[outbox.Alarms] = max(d.after[outbox.Alarms], next)
		d.after[outbox.Readings] = max(d.after[outbox.Readings], nextReadings)
	}
	if len(recs) == 0 {
		skipPast()
		return 0, false, nil
	}
	full := len(recs) >= d.o.BatchRecords
	body := d.body[:0]
	spans := d.spans[:0]
	points := 0
	bad := d.bad[:0]
	whole := true // every record read is in this write
	for i := range recs {
		if d.o.BatchPoints > 0 && points >= d.o.BatchPoints {
			// The rest waits for the next write, read again from
			// after the last record written.
			recs, whole = recs[:i], false
			break
		}
		from := len(body)
		var n int
		body, n, err = d.recordLines(body, &recs[i])
		if err != nil {
			body = body[:from]
			bad = append(bad, i)
			d.log.Error().Err(err).Str("stream", recs[i].Stream).Uint64("seq", recs[i].Seq).Msg("outbox record cannot be stored, dropped")
		}
		points += n
		spans = append(spans, span{from, len(body)})
	}
	d.body, d.spans, d.bad = body, spans, bad
	err = d.o.Writer.Write(ctx, body)
	var rej *RejectedError
	if errors.As(err, &rej) {
		for i := range recs {
			sp := spans[i]
			if sp.from == sp.to {
				continue
			}
			werr := d.o.Writer.Write(ctx, body[sp.from:sp.to])
			if errors.As(werr, &rej) {
				bad = append(bad, i)
				d.log.Error().Err(werr).Str("stream", recs[i].Stream).Uint64("seq", recs[i].Seq).Msg("influxdb refused an outbox record, dropped")
			} else if werr != nil {
				return 0, false, werr
			}
		}
	} else if err != nil {
		return 0, false, err
	}
	keys := d.keys[:0]
	for i := range recs {
		keys = append(keys, recs[i].Key)
		d.after[recs[i].Key.Lane] = recs[i].Key.ID
	}
	d.keys = keys
	if whole {
		skipPast()
	}
	// Not a commit of its own: the releases ride on the next append's
	// (within a few seconds when none comes). Until then a crash only
	// writes these points again.
	d.o.Outbox.ReleaseLaterBy(d.o.Consumer, keys...)
	d.writes.Add(1)
	d.stored.Add(uint64(len(recs) - len(bad)))
	d.dead.Add(uint64(len(bad)))
	d.points.Add(uint64(points))
	return len(recs), full || !whole, nil
}

// alloc hands DrainFor room for one payload in the batch's arena. A grown
// arena leaves the payloads before in the old one, alive while the batch
// uses them.
func (d *Direct) alloc(n int) []byte {
	if len(d.arena)+n > cap(d.arena) {
		d.arena = make([]byte, 0, max(2*cap(d.arena), n, 64<<10))
	}
	l := len(d.arena)
	d.arena = d.arena[:l+n]
	return d.arena[l : l+n : l+n]
}

// keep lets the batch's buffers go to the next batch, unless a backlog
// made them large; the records' payloads (in the arena) are dropped.
func (d *Direct) keep() {
	clear(d.recs)
	d.recs = d.recs[:0]
	if cap(d.arena) > maxKeptArena {
		d.arena = nil
	}
	if cap(d.body) > maxKeptArena {
		d.body = nil
	}
	if cap(d.recs) > 4096 {
		d.recs, d.spans, d.keys, d.bad = nil, nil, nil, nil
	}
}

// DrainAll writes every record it can read, until the outbox has none
// left to read, and commits their releases before it returns nil: for an
// outbox nothing appends to any more, of which Direct is the only
// consumer. Records it cannot write (refused, unreadable) are counted in
// Stats().Dropped as Run counts them; unwritten records stay when ctx
// ends.
func (d *Direct) DrainAll(ctx context.Context) error {
	if d.o.Consumer != 0 || d.o.Outbox.AppendedTo(1) != nil {
		return errors.New("drain all: the outbox has another consumer")
	}
	for {
		n, _, err := d.once(ctx)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n == 0 {
			// Commit the releases now rather than within laterMaxAge.
			return d.o.Outbox.Release(ctx)
		}
	}
}
