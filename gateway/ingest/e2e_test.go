package ingest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/testenv"
)

func TestDeliveryUplinkCut(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	r.openOutbox(0, nil)
	r.startIngest("ingest-a")
	r.startPublisher(configs.ReleasePuback)
	r.produce(4, 50)
	eventually(t, 20*time.Second, func() bool { return r.pub.Stats().Released >= 100 }, "some records released")
	r.proxy.Cut()
	r.produce(4, 100) // queued on disk while the uplink is down
	r.proxy.Restore()
	r.produce(4, 50)
	r.waitStored(60 * time.Second)
	require.GreaterOrEqual(t, r.pub.Stats().Sessions, uint64(2), "the publisher reconnected")
	eventually(t, 10*time.Second, func() bool { return r.ob.Stats().Records[1] == 0 }, "outbox drained")
}
