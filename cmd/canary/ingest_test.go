package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

func TestIngestCommandBadConfigExits2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.yaml")
	require.NoError(t, os.WriteFile(path, []byte("mqtt:\n  url: tcp://127.0.0.1:1883\ninfluxdb:\n  url: http://127.0.0.1:8086\n"), 0o600))
	var out bytes.Buffer
	code := run(context.Background(), []string{"ingest", "-c", path}, &out, &out)
	require.Equal(t, exitUsage, code, out.String())
	require.Contains(t, out.String(), path+":1: mqtt.client_id: required")
	require.Contains(t, out.String(), path+":3: influxdb.bucket: required")
}

func TestIngestCommandStoresReadings(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	path := filepath.Join(t.TempDir(), "ingest.yaml")
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, `mqtt:
  url: %s
  client_id: ingest-1
  share_group: g
influxdb:
  url: %s
  bucket: %s
  batch_wait: 20ms
metrics: %s
`, m.URL, in.URL, in.Bucket, metrics), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() { done <- run(ctx, []string{"ingest", "-c", path, "--log-level", "warn"}, io.Discard, &out) }()
	get := func(p string) (int, string) {
		resp, err := http.Get("http://" + metrics + p)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for code, _ := get("/healthz"); code != http.StatusOK; code, _ = get("/healthz") {
		require.True(t, time.Now().Before(deadline), "ingest never became healthy: %s", out.String())
		time.Sleep(20 * time.Millisecond)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL).SetClientID("site-gw"))
	require.True(t, c.Connect().WaitTimeout(10*time.Second))
	defer c.Disconnect(0)
	tok := c.Publish("canary/v1/s1/readings/d1", 1, false,
		`{"site":"s1","device":"d1","seq":7,"ts":"2026-02-03T04:05:06.000000007Z","readings":[{"sensor":"ch4","kind":"methane","value":0.42,"unit":"%vol","quality":"good"}]}`)
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	// Query once InfluxDB has acknowledged the write: it makes a point's
	// fields visible one at a time (tsm1's Cache.WriteMulti stores each
	// series+field key on its own), so a query racing the write can see the
	// value and seq with the quality still null.
	var body string
	for {
		_, body = get("/metrics")
		if strings.Contains(body, "canary_ingest_points_total 1\n") {
			break
		}
		require.True(t, time.Now().Before(deadline), "points counter: %s\n%s", body, out.String())
		time.Sleep(20 * time.Millisecond)
	}
	res, err := in.Query(`SELECT "value", "quality", "seq" FROM "reading" GROUP BY *`)
	require.NoError(t, err)
	require.Len(t, res.Results, 1)
	require.Len(t, res.Results[0].Series, 1, "reading not stored: %s", out.String())
	s := res.Results[0].Series[0]
	require.Equal(t, map[string]string{"site": "s1", "device": "d1", "sensor": "ch4", "kind": "methane", "unit": "%vol"}, s.Tags)
	require.Equal(t, [][]any{{"2026-02-03T04:05:06.000000007Z", 0.42, "good", 7.0}}, s.Values)
	cancel()
	require.Equal(t, exitOK, <-done, out.String())
}
