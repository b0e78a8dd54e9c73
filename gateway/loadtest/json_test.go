package loadtest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResultJSON(t *testing.T) {
	r := Result{Devices: 2, Sensors: 5, PeakRSS: 1000, ReadingsPerS: 10, CPUPer1000: 0.002, AlarmP50ms: 1.5, AlarmP99ms: 3}
	var m map[string]any
	b, err := json.Marshal(r)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"readings_per_s", "cpu_s_per_1000", "alarm_latency_p50_ms", "alarm_latency_p99_ms", "peak_rss_bytes"} {
		require.Contains(t, m, k)
	}
	require.Nil(t, m["alarm_latency_p99_ms"], "no alarm measured: null, not a perfect 0")
	require.Equal(t, 100.0, m["memory_per_sensor_bytes"])

	r.AlarmEvents = 4
	b, err = json.Marshal(r)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, 3.0, m["alarm_latency_p99_ms"])
}
