package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/gateway/ingest"
	"github.com/canary-gw/canary/gateway/outbox"
)

// legacyQueue is the second durable queue a gateway of before 2026-12-01
// kept for its direct InfluxDB writer (outbox/influxdb): since then the
// writer is the main outbox's second consumer. Records an older gateway
// left there (InfluxDB unreachable when it stopped) are written to
// InfluxDB once, then the queue is removed: an upgrade loses nothing.
type legacyQueue struct {
	dir string
	ob  *outbox.Outbox
	d   *ingest.Direct
	log zerolog.Logger
}

// openLegacyQueue opens dir's queue when it exists and holds records; an
// empty one is removed at once, and none is nil.
func openLegacyQueue(dir string, w *ingest.Writer, site string, log zerolog.Logger) (*legacyQueue, error) {
	if _, err := os.Stat(filepath.Join(dir, "outbox.db")); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	l := log.With().Str("site", site).Str("outbox", "influxdb (before 2026-12-01)").Logger()
	ob, err := outbox.Open(outbox.Options{Dir: dir, Log: l})
	if err != nil {
		return nil, fmt.Errorf("influxdb outbox of an older gateway: %w", err)
	}
	st := ob.Stats()
	if st.Records[outbox.Alarms]+st.Records[outbox.Readings] == 0 {
		if err := ob.Close(); err != nil {
			return nil, fmt.Errorf("influxdb outbox of an older gateway: %w", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("remove the empty influxdb outbox of an older gateway: %w", err)
		}
		return nil, nil
	}
	d, err := ingest.NewDirect(ingest.DirectOptions{Outbox: ob, Writer: w, Site: site, Log: log})
	if err != nil {
		_ = ob.Close()
		return nil, fmt.Errorf("influxdb outbox of an older gateway: %w", err)
	}
	l.Warn().Int("records", st.Records[outbox.Alarms]+st.Records[outbox.Readings]).
		Msg("writing what an older gateway left for InfluxDB, then removing its queue")
	return &legacyQueue{dir: dir, ob: ob, d: d, log: l}, nil
}

// run writes the queue out and removes it; when ctx ends first, what is
// left stays for the next start.
func (q *legacyQueue) run(ctx context.Context) error {
	if err := q.d.DrainAll(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("influxdb outbox of an older gateway: %w", err)
	}
	if err := q.ob.Close(); err != nil {
		return fmt.Errorf("influxdb outbox of an older gateway: %w", err)
	}
	if err := os.RemoveAll(q.dir); err != nil {
		q.log.Error().Err(err).Msg("influxdb outbox of an older gateway written out, not removed")
		return nil
	}
	q.log.Info().Msg("influxdb outbox of an older gateway written out and removed")
	return nil
}
