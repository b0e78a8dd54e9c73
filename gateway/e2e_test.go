package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway"
	"github.com/canary-gw/canary/internal/testenv"
	"github.com/canary-gw/canary/simulator"
)

// The end-to-end tests run the real pieces: the simulator serving Modbus
// TCP on loopback, a real Mosquitto, the gateway with its outbox on disk,
// and the HTTP API on a loopback port.

// simSite is the simulated site: a methane detector on a coal face
// (coal_face preset: high >= 1.0, high_high >= 1.5 latched) whose
// high_high trips the power-cut relay, confirmed by reading the coil back.
const simSite = `
site: e2e
devices:
  - id: face-gas
    url: tcp://127.0.0.1:0
    unit: 1
    poll: 100ms
    timeout: 80ms
    sensors:
      - id: ch4
        kind: methane
        table: holding
        address: 0
        type: float32
        alarms:
          high_high: {action: power-cut}
  - id: face-relay
    url: tcp://127.0.0.1:0
    unit: 2
    poll: 100ms
    timeout: 80ms
    sensors:
      - id: power_cut
        kind: generic
        table: coil
        address: 0
        type: bool
actions:
  - id: power-cut
    device: face-relay
    table: coil
    address: 0
    trip: 1
    release: 0
simulation:
  seed: 7
`

func loadYAML(t *testing.T, name, text string) *configs.Site {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	s, _, err := configs.LoadSite(path)
	require.NoError(t, err)
	return s
}

// startSim runs the simulator for the site and returns it with the site
// config rewritten to the simulator's real addresses.
func startSim(t *testing.T, text string) (*simulator.Simulator, string) {
	t.Helper()
	text = strings.ReplaceAll(text, "tcp://127.0.0.1:0", fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t)))
	site := loadYAML(t, "sim.yaml", text)
	sim, err := simulator.New(simulator.Options{Site: site, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-sim.Ready():
	case err := <-done:
		t.Fatalf("simulator stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("simulator not ready")
	}
	return sim, text
}

// gatewaySite adds the gateway's own sections to the site text.
func gatewaySite(text, brokerURL, dir, user, hash string) string {
	return strings.Replace(text, "site: e2e\n", fmt.Sprintf(`site: e2e
mqtt:
  url: %s
  client_id: e2e-gw
outbox:
  dir: %s
http:
  listen: 127.0.0.1:0
  users:
    - name: %s
      role: operator
      password_hash: '%s'
`, brokerURL, dir, user, hash), 1)
}

type runningGW struct {
	gw     *gateway.Gateway
	url    string
	cancel func()
	done   chan error
}

func startGateway(t *testing.T, site *configs.Site) *runningGW {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gw, err := gateway.New(gateway.Options{Site: site, Log: zerolog.New(zerolog.NewTestWriter(t)), HTTPListener: ln})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningGW{gw: gw, url: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := gw.Run(ctx)
		_ = gw.Close()
		r.done <- err
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *runningGW) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

// watcher records every message of a site's topics, as a control room sees them.
type watcher struct {
	mu       sync.Mutex
	retained map[string][]byte // latest payload per topic
	events   []map[string]any
	results  map[string]map[string]any
	client   paho.Client
}

func watch(t *testing.T, broker, site string) *watcher {
	t.Helper()
	w := &watcher{retained: map[string][]byte{}, results: map[string]map[string]any{}}
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID("e2e-watch-" + site).SetCleanSession(true)
	c := paho.NewClient(opts)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	tok = c.Subscribe("canary/v1/"+site+"/#", 1, func(_ paho.Client, m paho.Message) {
		w.mu.Lock()
		defer w.mu.Unlock()
		topic := m.Topic()
		w.retained[topic] = append([]byte(nil), m.Payload()...)
		switch {
		case strings.HasSuffix(topic, "/events"):
			var ev map[string]any
			if json.Unmarshal(m.Payload(), &ev) == nil {
				w.events = append(w.events, ev)
			}
		case strings.HasSuffix(topic, "/cmd/result"):
			var r map[string]any
			if json.Unmarshal(m.Payload(), &r) == nil {
				w.results[fmt.Sprint(r["id"])] = r
			}
		}
	})
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	w.client = c
	t.Cleanup(func() { c.Disconnect(100) })
	return w
}

// alarm returns the latest retained payload of an alarm (nil when cleared).
func (w *watcher) alarm(id string) map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.retained["canary/v1/e2e/alarms/"+id]
	if !ok || len(b) == 0 {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// hasReadings: a readings message of device has arrived.
func (w *watcher) hasReadings(device string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.retained["canary/v1/e2e/readings/"+device] != nil
}

func (w *watcher) cleared(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.retained["canary/v1/e2e/alarms/"+id]
	return ok && len(b) == 0
}

func (w *watcher) result(id string) map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.results[id]
}

func (w *watcher) publish(t *testing.T, topic string, payload string) {
	t.Helper()
	tok := w.client.Publish(topic, 1, false, payload)
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape is a GET of url's body, "" while it does not answer (the
// gateway's /metrics, polled until it shows something).
func scrape(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func stateOf(a map[string]any) string {
	if a == nil {
		return "<none>"
	}
	return fmt.Sprint(a["state"])
}

func httpPost(t *testing.T, url, user, pass, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestAlarmLifeCycleEndToEnd(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	sim, text := startSim(t, simSite)
	hash := bcryptHash(t, "s3cret")
	site := loadYAML(t, "site.yaml", gatewaySite(text, broker.URL, t.TempDir(), "olga", hash))
	w := watch(t, broker.URL, "e2e")
	gw := startGateway(t, site)

	// Background methane: readings flow with seq, no alarm.
	eventually(t, "readings on MQTT", 10*time.Second, func() bool { return w.hasReadings("face-gas") })

	// 1.2 %vol: high (alarm level) but not high_high.
	require.NoError(t, sim.Hold("face-gas", "ch4", 1.2))
	eventually(t, "high unacknowledged", 5*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.high")) == "unacknowledged" })
	require.Nil(t, w.alarm("face-gas.ch4.high_high"))

	// 1.8 %vol: both levels active, each its own alarm; the power cut trips.
	require.NoError(t, sim.Hold("face-gas", "ch4", 1.8))
	eventually(t, "high_high unacknowledged", 5*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.high_high")) == "unacknowledged" })
	require.Equal(t, "unacknowledged", stateOf(w.alarm("face-gas.ch4.high")))
	eventually(t, "power-cut relay tripped in the simulator", 5*time.Second, func() bool {
		v, _, err := sim.Value("face-relay", "power_cut")
		return err == nil && v == 1
	})
	hh := w.alarm("face-gas.ch4.high_high")
	require.Equal(t, true, hh["active"])
	require.EqualValues(t, 1.5, hh["limit"])
	since := hh["since"]

	// Acknowledge over MQTT, with user and comment.
	w.publish(t, "canary/v1/e2e/cmd", `{"id":"ack-1","action":"ack","alarm":"face-gas.ch4.high_high","user":"olga","comment":"evacuating face 3"}`)
	eventually(t, "ack result", 5*time.Second, func() bool { return w.result("ack-1") != nil })
	require.Equal(t, true, w.result("ack-1")["ok"], w.result("ack-1"))
	eventually(t, "high_high acknowledged", 5*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.high_high")) == "acknowledged" })
	require.Equal(t, "olga", w.alarm("face-gas.ch4.high_high")["acked_by"])

	// Malformed and unauthorised commands are answered, never crash.
	w.publish(t, "canary/v1/e2e/cmd", `{"id":"bad-1","action":"explode","alarm":"face-gas.ch4.high","user":"olga"}`)
	w.publish(t, "canary/v1/e2e/cmd", `{"id":"bad-2","action":"ack","alarm":"face-gas.ch4.high","user":"mallory"}`)
	w.publish(t, "canary/v1/e2e/cmd", `not json at all`)
	eventually(t, "rejections", 5*time.Second, func() bool { return w.result("bad-1") != nil && w.result("bad-2") != nil })
	require.Equal(t, false, w.result("bad-1")["ok"])
	require.Contains(t, w.result("bad-1")["error"], "unknown action")
	require.Equal(t, false, w.result("bad-2")["ok"])
	require.Contains(t, w.result("bad-2")["error"], "unknown user")

	// Reset is refused while the condition is still present.
	code, body := httpPost(t, gw.url+"/api/v1/alarms/face-gas.ch4.high_high/reset", "olga", "s3cret", `{"comment":"too early"}`)
	require.Equal(t, http.StatusConflict, code, body)

	// Gas clears: high returns; high_high stays latched and the power stays cut.
	require.NoError(t, sim.Hold("face-gas", "ch4", 0.3))
	eventually(t, "high returned", 5*time.Second, func() bool {
		s := stateOf(w.alarm("face-gas.ch4.high"))
		return s == "returned_unacknowledged"
	})
	eventually(t, "high_high latched inactive", 5*time.Second, func() bool {
		a := w.alarm("face-gas.ch4.high_high")
		return a != nil && a["active"] == false && a["latched"] == true
	})
	v, _, err := sim.Value("face-relay", "power_cut")
	require.NoError(t, err)
	require.Equal(t, 1.0, v, "a latched trip keeps the power cut until reset")
	require.Equal(t, since, w.alarm("face-gas.ch4.high_high")["since"])

	// Reset over HTTP as the operator: normal, retained state cleared, power released.
	code, body = httpPost(t, gw.url+"/api/v1/alarms/face-gas.ch4.high_high/reset", "olga", "s3cret", `{"comment":"gas cleared, checked"}`)
	require.Equal(t, http.StatusOK, code, body)
	eventually(t, "high_high cleared", 5*time.Second, func() bool { return w.cleared("face-gas.ch4.high_high") })
	eventually(t, "power released", 5*time.Second, func() bool {
		v, _, err := sim.Value("face-relay", "power_cut")
		return err == nil && v == 0
	})

	// The event stream carried every transition in order, with increasing seq.
	w.mu.Lock()
	var types []string
	last := -1.0
	for _, ev := range w.events {
		seq, _ := ev["seq"].(float64)
		require.Greater(t, seq, last, "events seq increases")
		last = seq
		if ev["alarm"] == "face-gas.ch4.high_high" {
			types = append(types, fmt.Sprint(ev["type"]))
		}
	}
	w.mu.Unlock()
	require.Subset(t, types, []string{"activate", "ack", "return", "reset"})

	// A device that stops answering is an alarm, never silence.
	require.NoError(t, sim.SetState("face-gas", "offline"))
	eventually(t, "communication-loss alarm", 10*time.Second, func() bool {
		return stateOf(w.alarm("face-gas.ch4.comm")) == "unacknowledged"
	})
}
