package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/internal/testenv"
)

// gatewayAnswer answers a command as the gateway does when it runs well.
func gatewayAnswer(payload []byte) []byte {
	c, err := command.Parse(payload)
	return command.Answer(c.ID, err).JSON()
}

// operator connects a client that sends commands.
func operator(t *testing.T, cfg configs.MQTT) paho.Client {
	t.Helper()
	opts, err := ClientOptions(cfg, "operator")
	require.NoError(t, err)
	c := paho.NewClient(opts)
	require.NoError(t, wait(c.Connect(), 10*time.Second))
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// answersByID decodes the results received; each id must be answered once.
func answersByID(t *testing.T, r *received) map[string]command.Result {
	t.Helper()
	out := map[string]command.Result{}
	for _, m := range r.snapshot() {
		var res command.Result
		require.NoError(t, json.Unmarshal(m.Payload(), &res))
		_, dup := out[res.ID]
		require.False(t, dup, "id %q answered twice", res.ID)
		out[res.ID] = res
	}
	return out
}

// within waits for the handler to be entered.
func within(t *testing.T, entered <-chan struct{}) {
	t.Helper()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out: the command handler was not called")
	}
}

// heldHandler answers a command once release is closed (or the run
// ends), first telling entered, without blocking, that it runs.
func heldHandler(entered chan<- struct{}, release <-chan struct{}) CommandHandler {
	return func(ctx context.Context, payload []byte) []byte {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return gatewayAnswer(payload)
	}
}

func ackCmd(id string) string {
	return fmt.Sprintf(`{"id":%q,"action":"ack","alarm":"a.b.high","user":"u"}`, id)
}

// With the handler busy and the queue full, a command is refused at once
// with its id, while those queued are still run and answered.
func TestCommandQueueFullIsAnswered(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	results := subscribe(t, cfg, "canary/v1/s1/cmd/result")
	entered, release := make(chan struct{}, 1), make(chan struct{})
	p := runPublisher(t, Options{Config: cfg, Site: "s1", Outbox: openOutbox(t), Commands: heldHandler(entered, release)})
	waitFor(t, 10*time.Second, func() bool { return p.Stats().Connected }, "connected")
	c := operator(t, cfg)
	require.NoError(t, wait(c.Publish("canary/v1/s1/cmd", 1, false, ackCmd("q0")), 10*time.Second))
	within(t, entered) // q0 runs and holds the handler
	const extra = 5
	for i := 1; i <= cmdQueue+extra; i++ {
		require.NoError(t, wait(c.Publish("canary/v1/s1/cmd", 1, false, ackCmd(fmt.Sprintf("q%d", i))), 10*time.Second))
	}
	// The refusals come while the handler is still busy.
	waitFor(t, 10*time.Second, func() bool { return len(results.snapshot()) == extra }, "the refusals")
	got := answersByID(t, results)
	for i := cmdQueue + 1; i <= cmdQueue+extra; i++ {
		id := fmt.Sprintf("q%d", i)
		require.Equal(t, command.Result{ID: id, Error: rejectFull}, got[id])
	}
	close(release)
	waitFor(t, 10*time.Second, func() bool { return len(results.snapshot()) == 1+cmdQueue+extra }, "every command answered")
	got = answersByID(t, results)
	for i := 0; i <= cmdQueue; i++ {
		id := fmt.Sprintf("q%d", i)
		require.Equal(t, command.Result{ID: id, OK: true}, got[id])
	}
}

// A result due while the link is down is held and published on the next
// connection: the command ran, and the sender learns it.
func TestCommandResultHeldAcrossLinkLoss(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	proxy := testenv.StartProxy(t, m.Addr)
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	results := subscribe(t, cfg, "canary/v1/s1/cmd/result")
	entered, release := make(chan struct{}, 1), make(chan struct{})
	p := runPublisher(t, Options{Config: configs.MQTT{URL: "tcp://" + proxy.Addr}, Site: "s1", Outbox: openOutbox(t), KeepAlive: time.Second,
		Commands: heldHandler(entered, release)})
	waitFor(t, 10*time.Second, func() bool { return p.Stats().Connected }, "connected")
	c := operator(t, cfg)
	require.NoError(t, wait(c.Publish("canary/v1/s1/cmd", 1, false, ackCmd("h1")), 10*time.Second))
	within(t, entered)
	proxy.Cut()
	waitFor(t, 15*time.Second, func() bool { return !p.Stats().Connected }, "link down")
	close(release) // h1 finishes with no connection
	waitFor(t, 5*time.Second, func() bool {
		p.ansMu.Lock()
		defer p.ansMu.Unlock()
		return len(p.answers) == 1
	}, "result held")
	require.Empty(t, results.snapshot())
	proxy.Restore()
	waitFor(t, 15*time.Second, func() bool { return len(results.snapshot()) == 1 }, "held result published after reconnect")
	require.Equal(t, command.Result{ID: "h1", OK: true}, answersByID(t, results)["h1"])
}

// Stopping, the publisher answers the commands it received and will not
// run before it disconnects.
func TestShutdownAnswersQueuedCommands(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	results := subscribe(t, cfg, "canary/v1/s1/cmd/result")
	entered := make(chan struct{}, 1)
	p, stop := startPublisher(t, Options{Config: cfg, Site: "s1", Outbox: openOutbox(t), Commands: func(ctx context.Context, payload []byte) []byte {
		entered <- struct{}{}
		<-ctx.Done() // as the gateway's core does when it stops
		c, _ := command.Parse(payload)
		return command.Answer(c.ID, ctx.Err()).JSON()
	}})
	waitFor(t, 10*time.Second, func() bool { return p.Stats().Connected }, "connected")
	c := operator(t, cfg)
	for _, id := range []string{"s0", "s1", "s2"} {
		require.NoError(t, wait(c.Publish("canary/v1/s1/cmd", 1, false, ackCmd(id)), 10*time.Second))
	}
	within(t, entered)
	waitFor(t, 5*time.Second, func() bool { return len(p.cmds) == 2 }, "two commands queued")
	stop()
	waitFor(t, 5*time.Second, func() bool { return len(results.snapshot()) == 3 }, "three answers")
	got := answersByID(t, results)
	require.Equal(t, command.Result{ID: "s0", Error: "context canceled"}, got["s0"])
	require.Equal(t, command.Result{ID: "s1", Error: rejectStopping}, got["s1"])
	require.Equal(t, command.Result{ID: "s2", Error: rejectStopping}, got["s2"])
}
