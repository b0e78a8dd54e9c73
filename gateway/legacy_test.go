package gateway

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/ingest"
)

// An older InfluxDB queue that cannot be opened does not keep the gateway
// from starting: it is moved aside, with its file, for someone to look at.
func TestUnreadableOlderQueueIsMovedAside(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "influxdb")
	require.NoError(t, os.MkdirAll(dir, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "outbox.db"), []byte("not a bbolt file, and long enough to be read as one's header"), 0o600))
	w, err := ingest.NewWriter(ingest.WriterOptions{Config: configs.InfluxDB{URL: "http://127.0.0.1:1", Bucket: "canary/autogen"}, Log: zerolog.Nop()})
	require.NoError(t, err)
	t.Cleanup(w.Close)

	require.Nil(t, openLegacyQueue(dir, w, "site", zerolog.New(zerolog.NewTestWriter(t))))
	_, err = os.Stat(dir)
	require.True(t, os.IsNotExist(err), "moved away")
	aside, err := filepath.Glob(dir + ".unread-*")
	require.NoError(t, err)
	require.Len(t, aside, 1)
	_, err = os.Stat(filepath.Join(aside[0], "outbox.db"))
	require.NoError(t, err, "the file is kept")

	// None at all: nothing to do.
	require.Nil(t, openLegacyQueue(dir, w, "site", zerolog.Nop()))
}
