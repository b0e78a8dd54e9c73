package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
)

type received struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func (r *received) add(m paho.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *received) snapshot() []paho.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]paho.Message(nil), r.msgs...)
}

// subscribe connects an independent paho client and records every message.
func subscribe(t *testing.T, cfg configs.MQTT, filter string) *received {
	t.Helper()
	opts, err := ClientOptions(cfg, "test-sub-"+strings.ReplaceAll(filter, "/", "_"))
	require.NoError(t, err)
	opts.SetOrderMatters(true)
	c := paho.NewClient(opts)
	require.NoError(t, wait(c.Connect(), 10*time.Second))
	t.Cleanup(func() { c.Disconnect(0) })
	r := &received{}
	require.NoError(t, wait(c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { r.add(m) }), 10*time.Second))
	return r
}

func openOutbox(t *testing.T) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.Open(outbox.Options{Dir: t.TempDir(), Log: zerolog.New(zerolog.NewTestWriter(t))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ob.Close() })
	return ob
}

func runPublisher(t *testing.T, o Options) *Publisher {
	t.Helper()
	p, stop := startPublisher(t, o)
	t.Cleanup(stop)
	return p
}

// startPublisher runs a publisher until stop, which returns once Run has.
func startPublisher(t *testing.T, o Options) (*Publisher, func()) {
	t.Helper()
	o.Log = zerolog.New(zerolog.NewTestWriter(t))
	if o.KeepAlive == 0 {
		o.KeepAlive = 2 * time.Second
	}
	o.BackoffMin, o.BackoffMax = 50*time.Millisecond, 500*time.Millisecond
	p, err := NewPublisher(o)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return p, func() {
		cancel()
		require.NoError(t, <-done)
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out: %s", msg)
		time.Sleep(20 * time.Millisecond)
	}
}

func appendReadings(t *testing.T, ob *outbox.Outbox, dev string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		_, err := ob.Append(context.Background(), ReadingsItem(Readings{Site: "s1", Device: dev, TS: time.Unix(int64(i), 0),
			Readings: []Reading{{Sensor: "ch4", Kind: "methane", Value: 0.1, Valid: true, Unit: "%vol", Quality: QualityGood}}}))
		require.NoError(t, err)
	}
}

func TestPublisherOverTLSWithPasswordFile(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{TLS: true, RequireClientCert: true, Users: map[string]string{"gw": "s3cret", "reader": "r"}})
	pwFile := filepath.Join(t.TempDir(), "mqtt.pass")
	require.NoError(t, os.WriteFile(pwFile, []byte("s3cret\n"), 0o600))
	cfg := configs.MQTT{URL: m.URL, Username: "gw", PasswordFile: pwFile, CAFile: m.Certs.CAFile, CertFile: m.Certs.ClientCertFile, KeyFile: m.Certs.ClientKeyFile}
	cfg.SetDefaults()
	t.Setenv(configs.MQTTPasswordEnv, "r")
	readerCfg := cfg
	readerCfg.Username, readerCfg.PasswordFile = "reader", "" // password from the environment
	got := subscribe(t, readerCfg, "canary/v1/s1/readings/#")

	ob := openOutbox(t)
	appendReadings(t, ob, "d1", 20)
	runPublisher(t, Options{Config: cfg, Site: "s1", Outbox: ob})
	waitFor(t, 20*time.Second, func() bool { return len(got.snapshot()) == 20 }, "20 readings over TLS")
	for i, msg := range got.snapshot() {
		r, err := DecodeReadings(msg.Payload())
		require.NoError(t, err)
		require.Equal(t, uint64(i+1), r.Seq, "in order")
		require.Equal(t, "canary/v1/s1/readings/d1", msg.Topic())
	}
	waitFor(t, 10*time.Second, func() bool { return ob.Stats().Records[outbox.Readings] == 0 }, "released on PUBACK")

	// A wrong password is refused: the publisher keeps retrying, nothing is released.
	bad := cfg
	badFile := filepath.Join(t.TempDir(), "bad.pass")
	require.NoError(t, os.WriteFile(badFile, []byte("nope"), 0o600))
	bad.PasswordFile, bad.ClientID = badFile, "canary-bad"
	ob2 := openOutbox(t)
	appendReadings(t, ob2, "d1", 1)
	p := runPublisher(t, Options{Config: bad, Site: "s2", Outbox: ob2})
	waitFor(t, 10*time.Second, func() bool { return p.Stats().Attempts >= 3 }, "connect attempts")
	require.Zero(t, p.Stats().Sessions)
	require.Equal(t, 1, ob2.Stats().Records[outbox.Readings])
}

func TestPublisherRejectsMissingSecrets(t *testing.T) {
	ob := openOutbox(t)
	_, err := NewPublisher(Options{Config: configs.MQTT{URL: "tcp://127.0.0.1:1", Username: "u", PasswordFile: "/nonexistent/pass"}, Site: "s1", Outbox: ob})
	require.ErrorContains(t, err, "password_file")
	_, err = NewPublisher(Options{Config: configs.MQTT{URL: "ssl://127.0.0.1:1", CAFile: "/nonexistent/ca.pem"}, Site: "s1", Outbox: ob})
	require.ErrorContains(t, err, "ca_file")
	_, err = NewPublisher(Options{Config: configs.MQTT{URL: "tcp://127.0.0.1:1"}, Site: "Bad Site", Outbox: ob})
	require.ErrorContains(t, err, "site")
}

func TestAlarmsGoAheadOfReadingBacklog(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	got := subscribe(t, cfg, "canary/v1/s1/#")
	ob := openOutbox(t)
	appendReadings(t, ob, "d1", 2000) // a backlog, as after an outage
	_, err := ob.Append(context.Background(),
		AlarmItem("d1.ch4.high", []byte(`{"id":"d1.ch4.high","state":"unacknowledged"}`)),
		EventItem(func(dst []byte, seq uint64) []byte { return fmt.Appendf(dst, `{"seq":%d,"type":"activate"}`, seq) }),
		AlarmItem("d1.ch4.high", nil))
	require.NoError(t, err)
	runPublisher(t, Options{Config: cfg, Site: "s1", Outbox: ob, MaxInflight: 32})
	waitFor(t, 30*time.Second, func() bool { return ob.Stats().Records[0]+ob.Stats().Records[1] == 0 }, "all published")
	var alarmAt, eventAt, clearAt, firstReading = -1, -1, -1, -1
	for i, msg := range got.snapshot() {
		switch {
		case msg.Topic() == "canary/v1/s1/alarms/d1.ch4.high" && len(msg.Payload()) > 0:
			alarmAt = i
		case msg.Topic() == "canary/v1/s1/alarms/d1.ch4.high":
			clearAt = i
		case msg.Topic() == "canary/v1/s1/events":
			eventAt = i
			require.JSONEq(t, `{"seq":1,"type":"activate"}`, string(msg.Payload()))
		case strings.Contains(msg.Topic(), "/readings/") && firstReading < 0:
			firstReading = i
		}
	}
	require.True(t, alarmAt >= 0 && eventAt > alarmAt && clearAt > eventAt, "alarm lane in order: %d %d %d", alarmAt, eventAt, clearAt)
	require.Less(t, clearAt, firstReading+64, "alarms published ahead of the reading backlog")

	// The broker holds no retained state for the cleared alarm.
	// A marker retained alarm shows the late subscriber has had every
	// retained message the broker holds.
	opts, err := ClientOptions(cfg, "marker")
	require.NoError(t, err)
	c := paho.NewClient(opts)
	require.NoError(t, wait(c.Connect(), 10*time.Second))
	defer c.Disconnect(0)
	require.NoError(t, wait(c.Publish("canary/v1/s1/alarms/zz.marker.high", 1, true, "x"), 10*time.Second))
	late := subscribe(t, cfg, "canary/v1/s1/alarms/#")
	waitFor(t, 10*time.Second, func() bool { return len(late.snapshot()) >= 1 }, "marker")
	for _, msg := range late.snapshot() {
		require.Equal(t, "canary/v1/s1/alarms/zz.marker.high", msg.Topic(), "cleared alarm leaves no retained message")
	}
}

func TestStatusOnlineAndWillOffline(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	proxy := testenv.StartProxy(t, m.Addr)
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	got := subscribe(t, cfg, "canary/v1/s1/status")
	ob := openOutbox(t)
	appendReadings(t, ob, "d1", 3)
	pcfg := configs.MQTT{URL: "tcp://" + proxy.Addr}
	p := runPublisher(t, Options{Config: pcfg, Site: "s1", Outbox: ob, KeepAlive: time.Second,
		Status: func() []DeviceStatus { return []DeviceStatus{{Device: "d1", Comm: "ok"}, {Device: "d2", Comm: "lost"}} }})
	status := func(i int) map[string]any {
		var v map[string]any
		require.NoError(t, json.Unmarshal(got.snapshot()[i].Payload(), &v))
		return v
	}
	waitFor(t, 10*time.Second, func() bool { return len(got.snapshot()) >= 1 }, "online status")
	s := status(0)
	require.Equal(t, "online", s["state"])
	require.Equal(t, []any{map[string]any{"device": "d1", "comm": "ok", "last_seq": 3.0}, map[string]any{"device": "d2", "comm": "lost", "last_seq": 0.0}}, s["devices"])

	// The uplink dies without a goodbye: the broker publishes the will.
	proxy.Cut()
	waitFor(t, 15*time.Second, func() bool {
		for i := range got.snapshot() {
			if status(i)["state"] == "offline" {
				return true
			}
		}
		return false
	}, "will marks the site offline")
	proxy.Restore()
	waitFor(t, 15*time.Second, func() bool { return p.Stats().Sessions >= 2 && status(len(got.snapshot()) - 1)["state"] == "online" }, "online again")
}

func TestCommandsAreHandledAndAnswered(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	results := subscribe(t, cfg, "canary/v1/s1/cmd/result")
	// A retained command left on the broker is not run when the gateway
	// (re)subscribes: it would run again on every reconnect. It is answered.
	ropts, err := ClientOptions(cfg, "careless-tool")
	require.NoError(t, err)
	rc := paho.NewClient(ropts)
	require.NoError(t, wait(rc.Connect(), 10*time.Second))
	require.NoError(t, wait(rc.Publish("canary/v1/s1/cmd", 1, true, `{"id":"retained","action":"ack"}`), 10*time.Second))
	rc.Disconnect(0)
	ob := openOutbox(t)
	var ran atomic.Int32
	p := runPublisher(t, Options{Config: cfg, Site: "s1", Outbox: ob, Commands: func(_ context.Context, payload []byte) []byte {
		ran.Add(1)
		return gatewayAnswer(payload)
	}})
	waitFor(t, 10*time.Second, func() bool { return p.Stats().Connected }, "connected")
	c := operator(t, cfg)
	ok := `"action":"ack","alarm":"a.b.high","user":"u"`
	for _, cmd := range []string{`{"id":"r1",` + ok + `}`, `{not json`, `{"id":5,` + ok + `}`, `{"id":"r2",` + ok + `} {}`} {
		require.NoError(t, wait(c.Publish("canary/v1/s1/cmd", 1, false, cmd), 10*time.Second))
	}
	waitFor(t, 10*time.Second, func() bool { return len(results.snapshot()) == 5 }, "five answers")
	got := answersByID(t, results)
	require.Equal(t, command.Result{ID: "retained", Error: rejectRetained}, got["retained"])
	require.Equal(t, command.Result{ID: "r1", OK: true}, got["r1"])
	require.False(t, got[""].OK)
	require.Contains(t, got[""].Error, "not valid JSON")
	require.Contains(t, got[""].Error, "the answer's id is empty")
	require.Contains(t, got["5"].Error, `not the number 5 (answered as "5")`)
	require.Contains(t, got["r2"].Error, "trailing data")
	require.Equal(t, int32(4), ran.Load(), "the retained command is not run")
}

// Receipt mode with canary ingest down: no receipt ever comes, yet every
// alarm state and event reaches the broker (the control rooms read alarms
// there), while readings stop at the receipt bound and wait in the outbox.
func TestReceiptModeNeverHoldsAlarmsBack(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	got := subscribe(t, cfg, "canary/v1/s1/#")
	ob := openOutbox(t)
	appendReadings(t, ob, "d1", 300)
	for i := 0; i < 200; i++ {
		_, err := ob.Append(context.Background(),
			AlarmItem(fmt.Sprintf("d1.ch4.a%d", i), fmt.Appendf(nil, `{"id":"d1.ch4.a%d","state":"unacknowledged"}`, i)),
			EventItem(func(dst []byte, seq uint64) []byte { return fmt.Appendf(dst, `{"seq":%d}`, seq) }))
		require.NoError(t, err)
	}
	runPublisher(t, Options{Config: cfg, Site: "s1", Outbox: ob, Release: configs.ReleaseReceipt, MaxInflight: 16, MaxUnreceipted: 100})
	count := func(part string) int {
		n := 0
		for _, msg := range got.snapshot() {
			if strings.Contains(msg.Topic(), part) {
				n++
			}
		}
		return n
	}
	waitFor(t, 30*time.Second, func() bool { return count("/alarms/") == 200 && count("/events") == 200 }, "every alarm state and event published")
	waitFor(t, 30*time.Second, func() bool { return count("/readings/") == 100 }, "readings up to the receipt bound")
	waitFor(t, 10*time.Second, func() bool { return ob.Stats().Records[outbox.Alarms] == 200 }, "states released on PUBACK, events wait for receipts")
	require.Equal(t, 300, ob.Stats().Records[outbox.Readings], "no reading released without a receipt")
}

// The fault hold in force is in the retained status message, so that a
// control room or a SCADA that connects during a hold knows of it; it is
// published again when it changes (StatusChanged).
func TestStatusCarriesTheFaultHold(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	got := subscribe(t, cfg, "canary/v1/s1/status")
	var hold atomic.Pointer[FaultHoldStatus]
	p := runPublisher(t, Options{Config: cfg, Site: "s1", Outbox: openOutbox(t), FaultHold: hold.Load})
	last := func() map[string]any {
		msgs := got.snapshot()
		var v map[string]any
		require.NoError(t, json.Unmarshal(msgs[len(msgs)-1].Payload(), &v))
		return v
	}
	waitFor(t, 10*time.Second, func() bool { return len(got.snapshot()) >= 1 }, "online status")
	require.Equal(t, "online", last()["state"])
	require.NotContains(t, last(), "fault_hold")

	since := string(AppendTime(nil, time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)))
	hold.Store(&FaultHoldStatus{Since: since, Reason: "gateway overloaded"})
	p.StatusChanged()
	waitFor(t, 10*time.Second, func() bool { _, ok := last()["fault_hold"]; return ok }, "the hold in the status")
	require.Equal(t, map[string]any{"since": "2026-12-01T03:00:00.000000000Z", "reason": "gateway overloaded"}, last()["fault_hold"])

	n := len(got.snapshot())
	hold.Store(nil)
	p.StatusChanged()
	waitFor(t, 10*time.Second, func() bool { return len(got.snapshot()) > n }, "the status again")
	require.NotContains(t, last(), "fault_hold")
}

// Receipt mode with no receipt coming (canary ingest or InfluxDB down):
// what waits is published again after ReceiptTimeout, then after twice,
// four times... as long (up to 16 times), not every ReceiptTimeout for the
// whole outage, which queued the whole window again each time for the
// ingest's persistent session.
func TestReceiptResendsBackOffWhileNoReceiptComes(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	got := subscribe(t, cfg, "canary/v1/s1/#")
	ob := openOutbox(t)
	const n = 100
	appendReadings(t, ob, "d1", n)
	for range n {
		_, err := ob.Append(context.Background(),
			EventItem(func(dst []byte, seq uint64) []byte { return fmt.Appendf(dst, `{"seq":%d}`, seq) }))
		require.NoError(t, err)
	}
	const timeout = 400 * time.Millisecond
	p := runPublisher(t, Options{Config: cfg, Site: "s1", Outbox: ob, Release: configs.ReleaseReceipt,
		MaxUnreceipted: n, ReceiptTimeout: timeout})
	count := func() (r, e int) {
		for _, msg := range got.snapshot() {
			switch {
			case strings.Contains(msg.Topic(), "/readings/"):
				r++
			case strings.HasSuffix(msg.Topic(), "/events"):
				e++
			}
		}
		return
	}
	waitFor(t, 10*time.Second, func() bool { r, e := count(); return r == n && e == n }, "every record published once")
	start := time.Now()
	waitFor(t, 10*time.Second, func() bool { r, e := count(); return r >= 2*n && e >= 2*n }, "published again after the timeout")
	time.Sleep(9*timeout - time.Since(start))
	// Sent at 0, then about 1, 3 and 7 timeouts later (a tick of 250 ms
	// late at most each): at most four times each by 9 timeouts, where
	// every timeout would be ten.
	r, e := count()
	require.LessOrEqual(t, r, 4*n, "readings published")
	require.LessOrEqual(t, e, 4*n, "events published")
	require.GreaterOrEqual(t, p.Stats().Republished, uint64(2*n))
}

// The status payload's strings are written as every payload's: without
// encoding/json's HTML escaping (docs/mqtt.md).
func TestStatusNotHTMLEscaped(t *testing.T) {
	cfg := configs.MQTT{URL: "tcp://127.0.0.1:1"}
	cfg.SetDefaults()
	p, err := NewPublisher(Options{Config: cfg, Site: "s1", Outbox: openOutbox(t),
		FaultHold: func() *FaultHoldStatus { return &FaultHoldStatus{Since: "x", Reason: "load <90%> & rising"} }})
	require.NoError(t, err)
	require.Contains(t, string(p.statusPayload("online")), `"reason":"load <90%> & rising"`)
}

// Two gateways configured with the same client_id take the session from
// each other at every connect. A session that the broker ends at once does
// not start the backoff afresh: they reconnected every backoff minimum,
// knocking each other off many times a second, for ever.
func TestSameClientIDTakeoversBackOff(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	cfg := configs.MQTT{URL: m.URL, ClientID: "copied-config"}
	cfg.SetDefaults()
	// A session taken over while it subscribes or publishes its status
	// waits for that up to ConnectTimeout: short here, so that the window
	// below sees takeovers whatever moment they fall on.
	a := runPublisher(t, Options{Config: cfg, Site: "s1", Outbox: openOutbox(t), ConnectTimeout: 500 * time.Millisecond})
	b := runPublisher(t, Options{Config: cfg, Site: "s2", Outbox: openOutbox(t), ConnectTimeout: 500 * time.Millisecond})
	waitFor(t, 10*time.Second, func() bool { return a.Stats().Sessions > 0 && b.Stats().Sessions > 0 }, "both connected once")
	start := a.Stats().Sessions + b.Stats().Sessions
	time.Sleep(4 * time.Second)
	// With the test's backoff (50 ms doubling to 500 ms) at most about 12
	// each in 4 s; starting afresh after every takeover, 60 or more each.
	n := a.Stats().Sessions + b.Stats().Sessions - start
	t.Logf("sessions in 4 s: %d", n)
	require.Positive(t, n, "the takeovers happen")
	require.LessOrEqual(t, n, uint64(30))
}
