package ingest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
)

// The InfluxDB client takes whole seconds: a configured timeout is rounded
// up, never cut short.
func TestRequestTimeoutRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want uint
	}{
		{500 * time.Millisecond, 1}, {time.Second, 1}, {2500 * time.Millisecond, 3},
		{10 * time.Second, 10}, {10*time.Second + time.Nanosecond, 11}, {0, 1},
	} {
		require.Equal(t, tc.want, requestTimeout(tc.d), "%v", tc.d)
	}
}

// A token_file that holds nothing is refused at start, naming the file,
// instead of writing with an empty token.
func TestEmptyTokenFileIsAnError(t *testing.T) {
	f := filepath.Join(t.TempDir(), "influx.token")
	require.NoError(t, os.WriteFile(f, []byte(" \n"), 0o600))
	_, err := NewWriter(WriterOptions{Config: configs.InfluxDB{URL: "http://127.0.0.1:1", Bucket: "canary/autogen", TokenFile: f}})
	require.ErrorContains(t, err, "token_file "+f+" is empty")
	require.NoError(t, os.WriteFile(f, []byte("s3cret\n"), 0o600))
	w, err := NewWriter(WriterOptions{Config: configs.InfluxDB{URL: "http://127.0.0.1:1", Bucket: "canary/autogen", TokenFile: f}})
	require.NoError(t, err)
	w.Close()
}
