package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
)

// recycleValue is sensor s of device d's reading in round r: every value
// of the test is different, and d000's s00 crosses its 1.0 %vol limit every
// other round, so that its polls raise and clear alarms (committed at once,
// not asynchronously).
func recycleValue(d, r, s int) float64 {
	v := 0.2 + float64(s)/100 + float64(d)/1e4 + float64(r)/1e7
	if d == 0 && s == 0 && r%2 == 1 {
		v += 1
	}
	return v
}

// The readings of a poll's payload are reused for a later poll once their
// commit has encoded them. Rounds of polls go through the core one after
// another without waiting for their commits (a commit of readings only is
// asynchronous), so a payload reused too early would carry a later poll's
// values: every record must carry its own poll's (and those committed at
// once, with an alarm, too).
func TestPayloadsAreReusedOnlyOnceCommitted(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("influxdb_direct=%v", direct), func(t *testing.T) { testPayloadReuse(t, direct) })
	}
}

// testPayloadReuse: with direct, the site also writes to InfluxDB
// directly (the writer is not running: the outbox keeps the records for
// it, its second consumer).
func testPayloadReuse(t *testing.T, direct bool) {
	const devices, rounds = 40, 30
	site := coreSite(t, devices)
	if direct {
		site.InfluxDB = &configs.InfluxDB{URL: "http://127.0.0.1:1", Bucket: "canary/autogen"}
		site.InfluxDB.SetDefaults()
	}
	g, err := New(Options{Site: site, Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	ctx := t.Context()
	start := time.Now()
	for r := range rounds {
		bs := benchBatches(devices)
		for d := range bs {
			bs[d].At = start.Add(time.Duration(r) * time.Millisecond)
			for s := range bs[d].Readings {
				bs[d].Readings[s].Value = recycleValue(d, r, s)
			}
		}
		g.onBatches(ctx, bs)
		g.flush(ctx, nil)
	}
	// One outbox, with the direct writer as its second consumer when the
	// site writes InfluxDB itself.
	obs := []*outbox.Outbox{g.ob}
	if direct {
		require.NotNil(t, g.direct)
		require.NotNil(t, g.ob.AppendedTo(1), "the direct writer is the outbox's consumer 1")
	}
	devIndex := map[string]int{}
	for d, b := range benchBatches(devices) {
		devIndex[b.Device] = d
	}
	for i, ob := range obs {
		require.Eventually(t, func() bool { return ob.Stats().Records[outbox.Readings] == devices*rounds },
			30*time.Second, 10*time.Millisecond, "outbox %d: every poll committed", i)
		recs, err := ob.Drain(outbox.Readings, 0, devices*rounds)
		require.NoError(t, err)
		require.Len(t, recs, devices*rounds)
		for _, rec := range recs {
			m, err := mqtt.DecodeReadings(rec.Payload)
			require.NoError(t, err, "outbox %d", i)
			d, ok := devIndex[m.Device]
			require.True(t, ok, "device %s", m.Device)
			r := int(m.Seq) - 1
			require.Len(t, m.Readings, 20)
			for s, rd := range m.Readings {
				require.Equal(t, recycleValue(d, r, s), rd.Value, "outbox %d: %s seq %d sensor %d", i, m.Device, m.Seq, s)
			}
		}
	}
	events, err := g.ob.Drain(outbox.Alarms, 0, 1<<20)
	require.NoError(t, err)
	require.NotEmpty(t, events, "alarm transitions committed")
	_, reused := g.payloads.Stats()
	require.Positive(t, reused, "payload readings reused")
}
