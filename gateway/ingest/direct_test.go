package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// A site writing straight into InfluxDB: InfluxDB dies by SIGKILL
// mid-stream, the outbox holds everything, nothing is lost.
func TestDirectWriterSurvivesInfluxKill(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	r.openOutbox(0, nil)
	d, err := NewDirect(DirectOptions{Outbox: r.ob, Writer: r.writer(), Site: r.site, Log: r.log})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	r.produce(3, 100)
	eventually(t, 20*time.Second, func() bool { return d.Stats().Records > 0 }, "first records stored")
	r.influx.Kill()
	r.produce(3, 200)
	r.influx.Restart()
	r.produce(3, 50)
	r.waitStored(60 * time.Second)
	eventually(t, 10*time.Second, func() bool { return r.ob.Stats().Records[1] == 0 }, "outbox emptied")
	require.Zero(t, d.Stats().Dropped)
	// Each record written once: a written record whose release waits for
	// the outbox's next commit is not read again meanwhile.
	require.Equal(t, uint64(3*350), d.Stats().Records)
}
