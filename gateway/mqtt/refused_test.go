package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/testenv"
)

// A broker whose ACL lets the gateway publish but refuses its cmd
// subscription (SUBACK 0x80) must not stop the alarms and readings: the
// session goes on without commands, and the refusal is counted and logged.
// Mosquitto's dynamic-security plugin refuses subscriptions (its plain
// acl_file grants them and only withholds messages).
func TestRefusedCommandSubscriptionKeepsPublishing(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{Extra: testenv.NewDynSec(t, false).Extra()})
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	ob := openOutbox(t)
	p := runPublisher(t, Options{Config: cfg, Site: "s1", Outbox: ob,
		Commands: func(context.Context, []byte) []byte { return nil }})
	appendReadings(t, ob, "d1", 20)
	waitFor(t, 20*time.Second, func() bool { return p.Stats().Released >= 20 }, "records delivered (PUBACKed) despite the refused subscription")
	require.Positive(t, p.Stats().Refused)
	require.EqualValues(t, 1, p.Stats().Sessions, "the session was not ended by the refusal")
}
