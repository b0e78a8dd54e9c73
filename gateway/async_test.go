package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/outbox"
)

const asyncSite = `
site: async
mqtt:
  url: tcp://127.0.0.1:1
  client_id: async
outbox:
  dir: %s
influxdb:
  url: http://127.0.0.1:1
  bucket: b
devices:
  - id: gas
    url: tcp://127.0.0.1:1
    unit: 1
    poll: 100ms
    timeout: 80ms
    sensors:
      - id: ch4
        kind: methane
        table: holding
        address: 0
        type: float32
`

// Readings committed asynchronously between synchronous alarm commits, then
// a drain and Close: the outbox (with the direct InfluxDB writer as a second
// consumer, not running) holds every poll, seq 1..n, in poll order.
func TestAsyncCommitsKeepSeqAndOrder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "site.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(asyncSite, filepath.Join(dir, "ob"))), 0o600))
	site, _, err := configs.LoadSite(path)
	require.NoError(t, err)
	g, err := New(Options{Site: site, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), NoHTTP: true})
	require.NoError(t, err)
	ctx := context.Background()
	at := time.Now()
	n := 0
	for i := 0; i < 600; i++ {
		v := 0.2
		if (i/37)%2 == 1 {
			v = 1.3 // high, then back: alarm commits in between
		}
		at = at.Add(100 * time.Millisecond)
		n++
		// the value carries the poll number so the order can be checked
		b := modbus.Batch{Device: "gas", Unit: 1, At: at, Readings: []modbus.Reading{{Sensor: "ch4", Value: v + float64(n)*1e-6, Quality: modbus.QualityGood}}}
		g.onBatches(ctx, []modbus.Batch{b})
		if i%5 == 4 {
			g.flush(ctx, g.eng.Tick(at)) // the engine tick
		}
	}
	require.NoError(t, g.drain(ctx))
	require.NoError(t, g.Close())

	for _, d := range []string{filepath.Join(dir, "ob")} {
		ob, err := outbox.Open(outbox.Options{Dir: d, Log: zerolog.Nop()})
		require.NoError(t, err)
		recs, err := ob.Drain(outbox.Readings, 0, 10000)
		require.NoError(t, err)
		al, _ := ob.Drain(outbox.Alarms, 0, 10000)
		t.Logf("%s: %d readings, %d alarm records, commits %d; first %s", d, len(recs), len(al), ob.Stats().Commits, recs[0].Payload)
		require.NoError(t, ob.Close())
		require.Len(t, recs, n, d)
		for i, r := range recs {
			require.Equal(t, uint64(i+1), r.Seq, "%s: record %d", d, i)
		}
	}
}
