package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/testenv"
	"github.com/canary-gw/canary/simulator"
)

// TestMain lets the test binary stand in for the canary binary, so that
// tests can run `canary run` as a real process and kill it with SIGKILL.
func TestMain(m *testing.M) {
	if os.Getenv("CANARY_TEST_MAIN") == "1" {
		earlyTimerSlack(os.Args[1:])
		// As main: SIGTERM and SIGINT stop the command cleanly.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// canaryProcess starts the canary CLI as a child process.
func canaryProcess(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	return canaryProcessEnv(t, nil, nil, args...)
}

// canaryProcessEnv is canaryProcess with variables added to the
// environment and stdin (nil: none). The test's own timer slack and
// runtime settings are not passed on: the child's defaults are under test.
func canaryProcessEnv(t *testing.T, env []string, stdin io.Reader, args ...string) *exec.Cmd {
	t.Helper()
	return canaryProcessAt(t, os.Args[0], env, stdin, args...)
}

// canaryProcessAt is canaryProcessEnv started by the path exe (a symlink
// to the test binary, say).
func canaryProcessAt(t *testing.T, exe string, env []string, stdin io.Reader, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(exe, args...)
	for _, kv := range os.Environ() {
		if !hasAnyPrefix(kv, "CANARY_TIMER_SLACK=", "CANARY_REEXEC=", "GOGC=", "GOMAXPROCS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, "CANARY_TEST_MAIN=1"), env...)
	cmd.Stdin = stdin
	log, err := os.Create(filepath.Join(t.TempDir(), "canary.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("canary output:\n%s", b)
		}
	})
	return cmd
}

const restartSite = `
site: restart
mqtt:
  url: %s
  client_id: restart-gw
outbox:
  dir: %s
http:
  listen: 127.0.0.1:%d
devices:
  - id: face-gas
    url: tcp://127.0.0.1:%d
    unit: 1
    poll: 100ms
    timeout: 80ms
    sensors:
      - id: ch4
        kind: methane
        table: holding
        address: 0
        type: float32
`

// startSiteSim runs the simulator for the site file at path until the test
// ends.
func startSiteSim(t *testing.T, path string) *simulator.Simulator {
	t.Helper()
	site, _, err := configs.LoadSite(path)
	require.NoError(t, err)
	sim, err := simulator.New(simulator.Options{Site: site, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-simDone })
	select {
	case <-sim.Ready():
	case err := <-simDone:
		t.Fatalf("simulator stopped: %v", err)
	}
	return sim
}

type seqWatch struct {
	mu       sync.Mutex
	seqs     map[float64]bool
	retained map[string]map[string]any
}

func watchRestartSite(t *testing.T, broker string) *seqWatch {
	t.Helper()
	w := &seqWatch{seqs: map[float64]bool{}, retained: map[string]map[string]any{}}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("restart-watch").SetCleanSession(false))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	tok = c.Subscribe("canary/v1/restart/#", 1, func(_ paho.Client, m paho.Message) {
		var p map[string]any
		_ = json.Unmarshal(m.Payload(), &p)
		w.mu.Lock()
		defer w.mu.Unlock()
		if strings.Contains(m.Topic(), "/readings/") && p != nil {
			w.seqs[p["seq"].(float64)] = true
		}
		if strings.Contains(m.Topic(), "/alarms/") {
			w.retained[m.Topic()] = p
		}
	})
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })
	return w
}

func getAlarms(t *testing.T, url string) []map[string]any {
	resp, err := http.Get(url + "/api/v1/alarms")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func findAlarm(as []map[string]any, id string) map[string]any {
	for _, a := range as {
		if a["id"] == id {
			return a
		}
	}
	return nil
}

// TestGatewaySurvivesSIGKILL kills `canary run` with SIGKILL while an alarm
// is unacknowledged and readings stream, restarts it, and checks that the
// alarm comes back with its original since and that the readings' seq has
// no hole across the restart.
func TestGatewaySurvivesSIGKILL(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	modbusPort, httpPort := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "site.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(restartSite, broker.URL, filepath.Join(dir, "outbox"), httpPort, modbusPort)), 0o600))
	sim := startSiteSim(t, path)

	w := watchRestartSite(t, broker.URL)
	url := fmt.Sprintf("http://127.0.0.1:%d", httpPort)

	gw := canaryProcess(t, "run", "-c", path)
	require.NoError(t, sim.Hold("face-gas", "ch4", 1.8))
	var before map[string]any
	waitFor(t, "high_high raised", 15*time.Second, func() bool {
		before = findAlarm(getAlarms(t, url), "face-gas.ch4.high_high")
		return before != nil && before["state"] == "unacknowledged"
	})
	// Let readings stream for a while (ten polls, a second: the alarm-state
	// snapshot is written by the core's next tick after the alarm, within
	// half a second here; docs/alarms.md, "Restart"), then kill without
	// warning.
	w.mu.Lock()
	seqsAtAlarm := len(w.seqs)
	w.mu.Unlock()
	waitFor(t, "readings", 10*time.Second, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.seqs) > seqsAtAlarm+10 })
	require.NoError(t, gw.Process.Signal(syscall.SIGKILL))
	_, _ = gw.Process.Wait()
	w.mu.Lock()
	seqsBefore := len(w.seqs)
	w.mu.Unlock()

	gw2 := canaryProcess(t, "run", "-c", path)
	var after map[string]any
	waitFor(t, "gateway back with its alarm", 15*time.Second, func() bool {
		after = findAlarm(getAlarms(t, url), "face-gas.ch4.high_high")
		return after != nil
	})
	require.Equal(t, "unacknowledged", after["state"], "an unacknowledged alarm stays unacknowledged across SIGKILL")
	require.Equal(t, before["since"], after["since"], "since survives the restart")
	require.Equal(t, true, after["active"])

	// Readings keep flowing and their seq continues with no hole.
	waitFor(t, "readings after restart", 10*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.seqs) > seqsBefore+10
	})
	require.NoError(t, gw2.Process.Signal(syscall.SIGTERM))
	_, _ = gw2.Process.Wait()

	w.mu.Lock()
	defer w.mu.Unlock()
	seqs := make([]float64, 0, len(w.seqs))
	for s := range w.seqs {
		seqs = append(seqs, s)
	}
	sort.Float64s(seqs)
	for i := 1; i < len(seqs); i++ {
		require.Equal(t, seqs[i-1]+1, seqs[i], "hole in the device's seq between %v and %v", seqs[i-1], seqs[i])
	}
	require.Equal(t, 1.0, seqs[0], "seq starts at 1")
	require.NotNil(t, w.retained["canary/v1/restart/alarms/face-gas.ch4.high_high"])
}

// hasAnyPrefix reports whether s starts with one of prefixes.
func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
