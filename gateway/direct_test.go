package gateway_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/gateway"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
)

// With an influxdb: section the gateway writes readings and alarms to
// InfluxDB itself, from its outbox (as its second consumer), while it also
// publishes over MQTT.
func TestGatewayWritesInfluxDBDirectly(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	influx := testenv.StartInflux(t)
	sim, text := startSim(t, simSite)
	text = gatewaySite(text, broker.URL, t.TempDir(), "olga", bcryptHash(t, "pw"))
	text = strings.Replace(text, "outbox:\n", fmt.Sprintf("influxdb:\n  url: %s\n  bucket: %s\noutbox:\n", influx.URL, influx.Bucket), 1)
	site := loadYAML(t, "site.yaml", text)
	require.NotNil(t, site.InfluxDB)
	w := watch(t, broker.URL, "e2e")
	gw := startGateway(t, site)

	require.NoError(t, sim.Hold("face-gas", "ch4", 1.2))
	eventually(t, "high on MQTT", 10*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.high")) == "unacknowledged" })

	count := func(q string) int { return influxRows(influx, q) }
	eventually(t, "readings in InfluxDB", 20*time.Second, func() bool {
		return count(`SELECT value, seq FROM reading WHERE site='e2e' AND device='face-gas' AND sensor='ch4'`) >= 3
	})
	eventually(t, "the high alarm in InfluxDB, with the seq of its transition", 20*time.Second, func() bool {
		return count(`SELECT state, seq FROM alarm WHERE alarm='face-gas.ch4.high' AND seq > 0`) >= 1
	})
	// The return to normal is a row of the alarm measurement too.
	require.NoError(t, sim.Hold("face-gas", "ch4", 0.2))
	eventually(t, "high returned", 10*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.high")) == "returned_unacknowledged" })
	w.publish(t, "canary/v1/e2e/cmd", `{"id":"a1","action":"ack","alarm":"face-gas.ch4.high","user":"olga"}`)
	eventually(t, "high cleared on MQTT", 10*time.Second, func() bool { return w.cleared("face-gas.ch4.high") })
	eventually(t, "the normal state in InfluxDB", 20*time.Second, func() bool {
		return count(`SELECT state FROM alarm WHERE alarm='face-gas.ch4.high' AND state='normal'`) >= 1
	})

	// Written from the lines built at commit (ingest.Fresh), not decoded
	// again from the outbox.
	fresh, ok := gateway.FreshStats(gw.gw)
	require.True(t, ok)
	require.Positive(t, fresh.Taken, "readings written from their fresh lines")

	// Every stored reading of the device has a distinct seq from 1 without a hole.
	r, err := influx.Query(`SELECT seq FROM reading WHERE device='face-gas' AND sensor='ch4'`)
	require.NoError(t, err)
	vals := r.Results[0].Series[0].Values
	seen := map[int]bool{}
	maxSeq := 0
	for _, v := range vals {
		s := int(v[1].(float64))
		seen[s] = true
		maxSeq = max(maxSeq, s)
	}
	for s := 1; s <= maxSeq; s++ {
		require.True(t, seen[s], "seq %d missing in InfluxDB (max %d)", s, maxSeq)
	}
}

// A gateway of before 2026-12-01 kept a second queue for InfluxDB
// (outbox/influxdb). What it left there reaches InfluxDB after the
// upgrade, and the queue is removed.
func TestOlderInfluxDBQueueIsWrittenOut(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	influx := testenv.StartInflux(t)
	_, text := startSim(t, simSite)
	dir := t.TempDir()
	legacy := filepath.Join(dir, "influxdb")
	old, err := outbox.Open(outbox.Options{Dir: legacy, Log: zerolog.Nop()})
	require.NoError(t, err)
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	const left = 25
	for i := range left {
		_, err := old.Append(context.Background(), mqtt.ReadingsItem(mqtt.Readings{Site: "e2e", Device: "old-dev", TS: at.Add(time.Duration(i) * time.Second),
			Readings: []mqtt.Reading{{Sensor: "ch4", Kind: "methane", Unit: "%vol", Value: float64(i) / 100, Valid: true, Quality: mqtt.QualityGood}}}))
		require.NoError(t, err)
	}
	require.NoError(t, old.Close())

	text = gatewaySite(text, broker.URL, dir, "olga", bcryptHash(t, "pw"))
	text = strings.Replace(text, "outbox:\n", fmt.Sprintf("influxdb:\n  url: %s\n  bucket: %s\noutbox:\n", influx.URL, influx.Bucket), 1)
	site := loadYAML(t, "site.yaml", text)
	startGateway(t, site)

	count := func(q string) int { return influxRows(influx, q) }
	eventually(t, "the older queue's readings in InfluxDB", 20*time.Second, func() bool {
		return count(`SELECT value, seq FROM reading WHERE site='e2e' AND device='old-dev'`) == left
	})
	eventually(t, "the older queue removed", 10*time.Second, func() bool {
		_, err := os.Stat(legacy)
		return os.IsNotExist(err)
	})
	// The site's own readings go on.
	eventually(t, "live readings in InfluxDB", 20*time.Second, func() bool {
		return count(`SELECT value FROM reading WHERE site='e2e' AND device='face-gas'`) >= 2
	})
}

// influxRows is how many rows q returns (0 on an error or none).
func influxRows(influx *testenv.Influx, q string) int {
	r, err := influx.Query(q)
	if err != nil || len(r.Results) == 0 || len(r.Results[0].Series) == 0 {
		return 0
	}
	return len(r.Results[0].Series[0].Values)
}
