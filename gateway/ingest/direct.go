package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
)

// DirectOptions configure a Direct writer.
type DirectOptions struct {
	// Outbox is drained; Direct must be its only consumer (it releases what
	// it stored), so a site uses either the MQTT publisher or Direct.
	Outbox *outbox.Outbox
	Writer *Writer
	// Site tags alarm points (alarm payloads carry it too).
	Site string
	// BatchRecords bounds the records per write (default 500).
	BatchRecords int
	Log          zerolog.Logger
}

// Direct drains a gateway's outbox straight into InfluxDB, with the same
// guarantee as the MQTT path: a record leaves the outbox only after
// InfluxDB accepted it. Alarms go first.
type Direct struct {
	o                    DirectOptions
	log                  zerolog.Logger
	stored, points, dead atomic.Uint64
	// after is, by lane, the last record written: its release rides on the
	// outbox's next commit (ReleaseLater), so the next batch starts after
	// it instead of reading it again. A restart reads from the start: what
	// was written and not yet released is written again (same points).
	after [2]uint64
}

// DirectStats are counters since start.
type DirectStats struct {
	Records uint64 // records stored and released
	Points  uint64
	Dropped uint64 // records InfluxDB refused or that could not be decoded (logged)
}

// NewDirect checks the options.
func NewDirect(o DirectOptions) (*Direct, error) {
	if o.Outbox == nil || o.Writer == nil {
		return nil, errors.New("new direct writer: outbox and writer are required")
	}
	if o.BatchRecords <= 0 {
		o.BatchRecords = 500
	}
	return &Direct{o: o, log: o.Log.With().Str("component", "influxdb_direct").Str("site", o.Site).Logger()}, nil
}

// Stats returns the counters.
func (d *Direct) Stats() DirectStats {
	return DirectStats{Records: d.stored.Load(), Points: d.points.Load(), Dropped: d.dead.Load()}
}

// Run writes until ctx ends. Unwritten records stay in the outbox.
func (d *Direct) Run(ctx context.Context) error {
	for {
		n, err := d.once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.o.Outbox.Appended():
		}
	}
}

// recordLines appends the points of one record.
func (d *Direct) recordLines(dst []byte, r *outbox.Record) ([]byte, int, error) {
	switch r.Kind {
	case outbox.KindReadings:
		m, err := mqtt.DecodeReadings(r.Payload)
		if err != nil {
			return dst, 0, err
		}
		return AppendReadingLines(dst, &m), len(m.Readings), nil
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

// once writes one batch and returns how many records it handled.
func (d *Direct) once(ctx context.Context) (int, error) {
	recs, err := d.o.Outbox.Drain(outbox.Alarms, d.after[outbox.Alarms], d.o.BatchRecords)
	if err != nil {
		return 0, err
	}
	if room := d.o.BatchRecords - len(recs); room > 0 {
		more, err := d.o.Outbox.Drain(outbox.Readings, d.after[outbox.Readings], room)
		if err != nil {
			return 0, err
		}
		recs = append(recs, more...)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	var body []byte
	spans := make([]span, len(recs))
	points := 0
	var bad []int
	for i := range recs {
		from := len(body)
		var n int
		body, n, err = d.recordLines(body, &recs[i])
		if err != nil {
			body = body[:from]
			bad = append(bad, i)
			d.log.Error().Err(err).Str("stream", recs[i].Stream).Uint64("seq", recs[i].Seq).Msg("outbox record cannot be stored, dropped")
		}
		points += n
		spans[i] = span{from, len(body)}
	}
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
				return 0, werr
			}
		}
	} else if err != nil {
		return 0, err
	}
	keys := make([]outbox.Key, len(recs))
	for i := range recs {
		keys[i] = recs[i].Key
		d.after[recs[i].Key.Lane] = recs[i].Key.ID
	}
	// Not a commit of its own: the releases ride on the next append's
	// (within a few seconds when none comes). Until then a crash only
	// writes these points again.
	d.o.Outbox.ReleaseLater(keys...)
	d.stored.Add(uint64(len(recs) - len(bad)))
	d.dead.Add(uint64(len(bad)))
	d.points.Add(uint64(points))
	return len(recs), nil
}
