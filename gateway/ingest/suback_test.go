package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	const plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
	if _, err := os.Stat(plugin); err != nil {
		t.Fatalf("%s: %v (Debian's mosquitto package ships it; scripts/install-deps.sh installs it)", plugin, err)
	}
	dynsec := filepath.Join(t.TempDir(), "dynsec.json")
	policy := func(subscribe bool) {
		require.NoError(t, os.WriteFile(dynsec, fmt.Appendf(nil, `{"defaultACLAccess": {"publishClientSend": true,
 "publishClientReceive": true, "subscribe": %t, "unsubscribe": true},
 "clients": [], "groups": [{"groupname": "anon", "roles": []}], "roles": [], "anonymousGroup": "anon"}`, subscribe), 0o600))
	}
	policy(false)
	r := newRig(t, testenv.MosquittoOptions{Extra: "plugin " + plugin + "\nplugin_opt_config_file " + dynsec + "\n"})

	in, err := New(Options{MQTT: configs.MQTT{URL: r.mosq.URL, ClientID: "ingest-acl", TopicPrefix: "canary"},
		ShareGroup: "ingest", Writer: r.writer(), BatchPoints: 500, BatchWait: 50 * time.Millisecond, Log: r.log})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.Never(t, in.Subscribed, 3*time.Second, 20*time.Millisecond, "subscribed though the broker refused every filter")

	r.mosq.Stop()
	policy(true)
	r.mosq.Restart()
	eventually(t, 30*time.Second, in.Subscribed, "subscribed once the broker allows it")
	r.openOutbox(0, nil)
	r.startPublisher(configs.ReleasePuback)
	r.produce(2, 20)
	r.waitStored(30 * time.Second)
}
