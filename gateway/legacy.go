package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

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
// empty one is removed at once, and none is nil. One that cannot be
// opened (damaged, or locked by another process) is moved aside; every
// failure here is logged and leaves the queue where it is: the gateway's
// own work never waits on an upgrade's leftovers.
func openLegacyQueue(dir string, w *ingest.Writer, site string, log zerolog.Logger) *legacyQueue {
	if _, err := os.Stat(filepath.Join(dir, "outbox.db")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	l := log.With().Str("site", site).Str("outbox", "influxdb (before 2026-12-01)").Logger()
	ob, err := outbox.Open(outbox.Options{Dir: dir, Log: l})
	if err != nil {
		aside := fmt.Sprintf("%s.unread-%s", dir, time.Now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(dir, aside); rerr != nil {
			l.Error().Err(err).AnErr("rename_error", rerr).Msg("the InfluxDB queue an older gateway left cannot be opened, nor moved aside; left where it is")
			return nil
		}
		l.Error().Err(err).Str("moved_to", aside).Msg("the InfluxDB queue an older gateway left cannot be opened; moved aside, its records not written")
		return nil
	}
	st := ob.Stats()
	if st.Records[outbox.Alarms]+st.Records[outbox.Readings] == 0 {
		if err := ob.Close(); err != nil {
			l.Error().Err(err).Msg("closing the empty InfluxDB queue an older gateway left")
			return nil
		}
		if err := os.RemoveAll(dir); err != nil {
			l.Error().Err(err).Msg("removing the empty InfluxDB queue an older gateway left")
		}
		return nil
	}
	d, err := ingest.NewDirect(ingest.DirectOptions{Outbox: ob, Writer: w, Site: site, Log: log})
	if err != nil {
		_ = ob.Close()
		l.Error().Err(err).Msg("the InfluxDB queue an older gateway left is not written; kept for the next start")
		return nil
	}
	l.Warn().Int("records", st.Records[outbox.Alarms]+st.Records[outbox.Readings]).
		Msg("writing what an older gateway left for InfluxDB, then removing its queue")
	return &legacyQueue{dir: dir, ob: ob, d: d, log: l}
}

// run writes the queue out and removes it; when ctx ends first, or when
// records are left that cannot be written, the queue stays for the next
// start (logged). Nothing here stops the gateway.
func (q *legacyQueue) run(ctx context.Context) error {
	if err := q.d.DrainAll(ctx); err != nil {
		if ctx.Err() == nil {
			q.log.Error().Err(err).Msg("influxdb outbox of an older gateway not written out; kept for the next start")
		}
		return nil
	}
	st := q.ob.Stats()
	if left := st.Records[outbox.Alarms] + st.Records[outbox.Readings]; left > 0 {
		q.log.Error().Int("records", left).Msg("influxdb outbox of an older gateway: records left that cannot be written; kept for the next start")
		return nil
	}
	if err := q.ob.Close(); err != nil {
		q.log.Error().Err(err).Msg("influxdb outbox of an older gateway written out, not closed")
		return nil
	}
	if err := os.RemoveAll(q.dir); err != nil {
		q.log.Error().Err(err).Msg("influxdb outbox of an older gateway written out, not removed")
		return nil
	}
	q.log.Info().Msg("influxdb outbox of an older gateway written out and removed")
	return nil
}
