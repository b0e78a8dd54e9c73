package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway"
	"github.com/canary-gw/canary/gateway/control"
	"github.com/canary-gw/canary/internal/testenv"
	"github.com/canary-gw/canary/simulator"
)

// The multi-site rig: per site a simulator serving Modbus TCP on loopback
// and a real gateway publishing to one real Mosquitto; one control room
// fed from that broker.

// siteText is one coal face: a methane detector whose high_high trips the
// face's power cut. Both sites use the same device ids on purpose.
const siteText = `
site: SITE
mqtt:
  url: BROKER
  client_id: gw-SITE
outbox:
  dir: OUTBOX
http:
  listen: 127.0.0.1:0
  users:
    - name: olga
      role: operator
      password_hash: 'HASH'
    - name: erik
      role: engineer
      password_hash: 'HASH'
# poll 250ms: the comm timeout (3 × poll) must outlast a busy test box's
# stalls; at 100ms south once went 300 ms without a reading, and its
# priority-1 comm alarm headed the alarm list the browser test checks.
devices:
  - id: face-gas
    url: tcp://127.0.0.1:PORT
    unit: 1
    poll: 250ms
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
    url: tcp://127.0.0.1:PORT
    unit: 2
    poll: 250ms
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

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	require.NoError(t, err)
	return string(h)
}

func logger(t *testing.T) zerolog.Logger { return zerolog.New(zerolog.NewTestWriter(t)) }

// runUntilCleanup runs fn in a goroutine until the test ends (or stop is
// called) and requires it to return nil.
func runUntilCleanup(t *testing.T, name string, fn func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, name)
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop within 20s", name)
		}
	}
	t.Cleanup(stop)
	return stop
}

type site struct {
	id   string
	sim  *simulator.Simulator
	api  string // the gateway's own HTTP API
	stop func()
}

func startSite(t *testing.T, id, brokerURL, userHash string) *site {
	t.Helper()
	text := strings.NewReplacer("SITE", id, "BROKER", brokerURL, "OUTBOX", t.TempDir(), "HASH", userHash,
		"PORT", fmt.Sprint(testenv.FreePort(t))).Replace(siteText)
	path := filepath.Join(t.TempDir(), id+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	cfg, _, err := configs.LoadSite(path)
	require.NoError(t, err)

	sim, err := simulator.New(simulator.Options{Site: cfg, Logger: logger(t)})
	require.NoError(t, err)
	runUntilCleanup(t, "simulator "+id, sim.Run)
	select {
	case <-sim.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("simulator not ready")
	}
	require.NoError(t, sim.Hold("face-gas", "ch4", 0.2))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gw, err := gateway.New(gateway.Options{Site: cfg, Log: logger(t).With().Str("site", id).Logger(), HTTPListener: ln})
	require.NoError(t, err)
	stop := runUntilCleanup(t, "gateway "+id, func(ctx context.Context) error {
		err := gw.Run(ctx)
		if cerr := gw.Close(); err == nil {
			err = cerr
		}
		return err
	})
	return &site{id: id, sim: sim, api: "http://" + ln.Addr().String(), stop: stop}
}

// startRoom runs a control room from YAML text (through the config loader)
// and returns its base URL.
func startRoom(t *testing.T, yamlText string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yamlText), 0o600))
	cfg, _, err := configs.LoadControl(path)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	room, err := control.New(control.Options{Config: cfg, Log: logger(t), HTTPListener: ln})
	require.NoError(t, err)
	runUntilCleanup(t, "control room", room.Run)
	return "http://" + ln.Addr().String()
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

type reading struct {
	Site, Device, Sensor, Quality string
	Value                         *float64
}

type alarm struct {
	ID, Site, Device, Sensor, State string
	Active                          bool
	AckedBy                         string `json:"acked_by"`
	Comment                         string
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

func readings(t *testing.T, api string) map[string]reading {
	var rs []reading
	getJSON(t, api+"/api/v1/readings", &rs)
	out := map[string]reading{}
	for _, r := range rs {
		out[r.Device+"/"+r.Sensor] = r
	}
	return out
}

func alarms(t *testing.T, api string) map[string]alarm {
	var as []alarm
	getJSON(t, api+"/api/v1/alarms", &as)
	out := map[string]alarm{}
	for _, a := range as {
		out[a.ID] = a
	}
	return out
}

func post(t *testing.T, url, user, pass, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
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
