package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// A short real run: simulator, gateway, embedded broker and subscriber in
// this process. Figures are checked for presence and consistency, never
// against a time.
func TestBenchJSONReportsTheContractFigures(t *testing.T) {
	code, out, stderr := canary(t, "bench", "--devices", "3", "--sensors", "4", "--poll", "100ms",
		"--warmup", "1s", "--duration", "2s", "--dir", t.TempDir(), "--json")
	require.Equal(t, 0, code, stderr)
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &raw), out)
	for _, k := range []string{"readings_per_s", "cpu_s_per_1000", "alarm_latency_p50_ms", "alarm_latency_p99_ms", "peak_rss_bytes"} {
		require.Contains(t, raw, k)
	}
	var r struct {
		Readings    uint64  `json:"readings"`
		Messages    uint64  `json:"messages"`
		PerS        float64 `json:"readings_per_s"`
		CPU         float64 `json:"cpu_s_per_1000"`
		RSS         int64   `json:"peak_rss_bytes"`
		AlarmEvents int     `json:"alarm_events"`
		P50         float64 `json:"alarm_latency_p50_ms"`
		P99         float64 `json:"alarm_latency_p99_ms"`
		Dropped     uint64  `json:"outbox_dropped"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Positive(t, r.Readings, "readings came back from the broker")
	require.Zero(t, r.Readings%4, "every message carries the device's 4 readings")
	require.Positive(t, r.PerS)
	require.Positive(t, r.CPU)
	require.Positive(t, r.RSS)
	require.Zero(t, r.Dropped)
	require.GreaterOrEqual(t, r.P99, r.P50, "percentiles are ordered")
}

func TestBenchRejectsABadScenario(t *testing.T) {
	code, _, stderr := canary(t, "bench", "--sensors", "63", "--duration", "1s", "--dir", t.TempDir())
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "sensors 63")
}
