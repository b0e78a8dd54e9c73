package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/testenv"
)

// A broker that refuses the ingest's subscription answers SUBACK 0x80,
// which paho reports only in the token's result: the ingest must not say
// it is subscribed (its /healthz) while it consumes nothing. Mosquitto's
// acl_file grants every subscription (it filters deliveries); its dynamic
// security plugin refuses them, here for anonymous clients, until the
// broker restarts with subscriptions allowed.
func TestRefusedSubscriptionIsNotReady(t *testing.T) {
	policy := testenv.NewDynSec(t, false)
	r := newRig(t, testenv.MosquittoOptions{Extra: policy.Extra()})

	in, err := New(Options{MQTT: configs.MQTT{URL: r.mosq.URL, ClientID: "ingest-acl", TopicPrefix: "canary"},
		ShareGroup: "ingest", Writer: r.writer(), BatchPoints: 500, BatchWait: 50 * time.Millisecond, Log: r.log})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.Never(t, in.Subscribed, 3*time.Second, 20*time.Millisecond, "subscribed though the broker refused every filter")

	r.mosq.Stop()
	policy.Allow(true)
	r.mosq.Restart()
	eventually(t, 30*time.Second, in.Subscribed, "subscribed once the broker allows it")
	r.openOutbox(0, nil)
	r.startPublisher(configs.ReleasePuback)
	r.produce(2, 20)
	r.waitStored(30 * time.Second)
}
