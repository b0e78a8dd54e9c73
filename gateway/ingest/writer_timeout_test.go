package ingest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
