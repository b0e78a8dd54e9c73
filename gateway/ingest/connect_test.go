package ingest

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/testenv"
)

// lockedBuffer is a log sink the ingest's goroutines can share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runIngest runs an ingest on cfg (no InfluxDB is reached) until the test
// ends, logging into the returned buffer.
func runIngest(t *testing.T, cfg configs.MQTT) (*Ingest, *lockedBuffer) {
	var logs lockedBuffer
	w, err := NewWriter(WriterOptions{Config: configs.InfluxDB{URL: "http://127.0.0.1:1", Bucket: "canary/autogen"}, Log: zerolog.Nop()})
	require.NoError(t, err)
	t.Cleanup(w.Close)
	in, err := New(Options{MQTT: cfg, Writer: w, Log: zerolog.New(&logs)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return in, &logs
}

// An ingest that cannot connect says why, at error level, on every attempt:
// paho's own retries report it only on its debug logger, and an ingest
// with a wrong password said nothing while InfluxDB got no data.
func TestIngestLogsWhyItCannotConnect(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{Users: map[string]string{"ingest": "right"}})
	t.Setenv(configs.MQTTPasswordEnv, "wrong")
	in, logs := runIngest(t, configs.MQTT{URL: m.URL, ClientID: "ingest-pw", Username: "ingest"})
	require.Eventually(t, func() bool { return strings.Count(logs.String(), `"mqtt connect failed"`) >= 2 }, 15*time.Second, 20*time.Millisecond,
		"logs: %s", logs.String())
	require.Contains(t, logs.String(), `"level":"error"`)
	require.Contains(t, logs.String(), "not Authorized")
	require.False(t, in.Subscribed())
}

// An ingest started before its broker (a box's boot order) connects when
// the broker comes up, having said meanwhile that it could not.
func TestIngestConnectsToABrokerThatStartsLater(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	m.Stop()
	in, logs := runIngest(t, configs.MQTT{URL: m.URL, ClientID: "ingest-late"})
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"mqtt connect failed"`) }, 15*time.Second, 20*time.Millisecond)
	require.False(t, in.Subscribed())
	m.Restart()
	require.Eventually(t, in.Subscribed, 30*time.Second, 20*time.Millisecond, "logs: %s", logs.String())
}
