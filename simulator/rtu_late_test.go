package simulator

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
)

// An RTU answer has no transaction id: one that comes after its request
// timed out must not be read as the answer to the next request. Here the
// gateway's driver polls a simulated detector on a pty whose answers come
// 300 ms late against a 200 ms timeout. Its two sensors are far apart,
// so each poll is two requests of the same shape (FC03, 2 registers): a
// late answer to the first, read by the second, would show methane's
// value as oxygen's with good quality. Every request must time out
// instead (the device is lost, its comm alarm stands) and, once the
// device answers in time again, every value is its own.
func TestDriverDiscardsLateRTUAnswers(t *testing.T) {
	for _, over := range []string{"pty", "tcp"} {
		t.Run(over, func(t *testing.T) { lateRTUAnswers(t, over) })
	}
}

func lateRTUAnswers(t *testing.T, over string) {
	ip := func(i int) *int { return &i }
	url := "rtu://" + filepath.Join(t.TempDir(), "ttyLATE")
	if over == "tcp" {
		url = "rtuovertcp://127.0.0.1:0"
	}
	site := siteFromYAML(t, fmt.Sprintf(`
site: late
devices:
  - id: face
    url: %s
    unit: 1
    sensors:
      - {id: ch4, kind: methane, table: holding, address: 0, type: float32, order: ABCD}
      - {id: o2, kind: oxygen, table: holding, address: 100, type: float32, order: ABCD}
simulation:
  seed: 5
`, url))
	s := startSim(t, Options{Site: site})
	require.NoError(t, s.Hold("face", "ch4", 0.5))
	require.NoError(t, s.Hold("face", "o2", 20.9))
	require.NoError(t, s.SetFaults("face", configs.SimFaults{Latency: 300 * time.Millisecond}))
	url, err := s.DeviceURL("face")
	require.NoError(t, err)

	dev := modbus.DeviceConfig{ID: "face", URL: url, Unit: ip(1), Poll: time.Second,
		Timeout: 200 * time.Millisecond, MaxBackoff: time.Second}
	dev.SetDefaults()
	sensors := []modbus.SensorConfig{
		{ID: "ch4", Table: "holding", Address: ip(0), Type: "float32", Order: "ABCD"},
		{ID: "o2", Table: "holding", Address: ip(100), Type: "float32", Order: "ABCD"},
	}
	for i := range sensors {
		sensors[i].SetDefaults()
	}
	var mu sync.Mutex
	var got []modbus.Batch
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	g, err := modbus.NewGroup([]modbus.Device{{Config: dev, Sensors: sensors}}, modbus.Options{Logger: &log, Sink: func(b modbus.Batch) {
		mu.Lock()
		defer mu.Unlock()
		b.Readings = append([]modbus.Reading(nil), b.Readings...)
		got = append(got, b)
	}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	count := func(good bool) (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range got {
			if (b.Err == nil) == good {
				n++
			}
		}
		return n
	}
	defer func() {
		if t.Failed() {
			mu.Lock()
			for _, b := range got {
				t.Logf("poll %d at %s: err=%v readings=%+v", b.Polls, b.At.Format("15:04:05.000"), b.Err, b.Readings)
			}
			mu.Unlock()
		}
	}()
	require.Eventually(t, func() bool { return count(false) >= 4 }, 20*time.Second, 20*time.Millisecond, "polls of the slow device")
	require.Zero(t, count(true), "a poll of the slow device succeeded: %+v", got)

	require.NoError(t, s.SetFaults("face", configs.SimFaults{}))
	require.Eventually(t, func() bool { return count(true) >= 3 }, 20*time.Second, 20*time.Millisecond, "polls after the device recovered")

	mu.Lock()
	defer mu.Unlock()
	for _, b := range got {
		for _, r := range b.Readings {
			if r.Quality != modbus.QualityGood {
				continue
			}
			want := map[string]float64{"ch4": 0.5, "o2": 20.9}[r.Sensor]
			require.InDelta(t, want, r.Value, 1e-4, "%s read %v with good quality (poll %d)", r.Sensor, r.Value, b.Polls)
		}
	}
}
