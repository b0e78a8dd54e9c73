package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// syncBuffer is an io.Writer the test can read while the demo writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	uiLine   = regexp.MustCompile(`control room\s+(http://\S+)/`)
	passLine = regexp.MustCompile(`user "operator", password "([^"]+)"`)
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// banner waits for the demo's banner and returns the UI URL and password.
func banner(t *testing.T, out fmt.Stringer) (ui, password string) {
	t.Helper()
	waitFor(t, "the demo banner", 30*time.Second, func() bool {
		return uiLine.MatchString(out.String()) && passLine.MatchString(out.String())
	})
	return uiLine.FindStringSubmatch(out.String())[1], passLine.FindStringSubmatch(out.String())[1]
}

func getJSON(t *testing.T, url string, v any) bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(v) == nil
}

type apiReading struct {
	Device, Sensor, Quality string
	Value                   *float64
}

type apiAlarm struct {
	ID, State string
	Active    bool
	AckedBy   string `json:"acked_by"`
}

func reading(t *testing.T, ui, device, sensor string) (apiReading, bool) {
	var rs []apiReading
	if !getJSON(t, ui+"/api/v1/readings", &rs) {
		return apiReading{}, false
	}
	for _, r := range rs {
		if r.Device == device && r.Sensor == sensor && r.Value != nil {
			return r, true
		}
	}
	return apiReading{}, false
}

func alarms(t *testing.T, ui string) map[string]apiAlarm {
	var as []apiAlarm
	out := map[string]apiAlarm{}
	if getJSON(t, ui+"/api/v1/alarms", &as) {
		for _, a := range as {
			out[a.ID] = a
		}
	}
	return out
}

func post(t *testing.T, url, user, pass, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestDemoStagesTheIncident runs `canary demo` in-process on free ports and
// follows the staged incident: readings flow, the leak raises high then
// high_high at the intake-end detector, the power-cut relay trips (read back
// by the gateway's own poll), the operator acknowledges, and the demo stops
// cleanly when its context ends.
func TestDemoStagesTheIncident(t *testing.T) {
	data := t.TempDir()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--data", data, "--incident-after", "2s"}, out, &syncBuffer{})
	}()
	ui, pass := banner(t, out)
	require.Regexp(t, `^http://127\.0\.0\.1:\d+$`, ui)

	waitFor(t, "methane readings", 15*time.Second, func() bool {
		r, ok := reading(t, ui, "face3-ch4-1", "ch4")
		return ok && r.Quality == "good" && *r.Value < 1.0
	})
	start := time.Now()
	waitFor(t, "high at face3-ch4-1", 35*time.Second, func() bool { return alarms(t, ui)["face3-ch4-1.ch4.high"].Active })
	waitFor(t, "high_high at face3-ch4-1", 35*time.Second-time.Since(start), func() bool {
		return alarms(t, ui)["face3-ch4-1.ch4.high_high"].State == "unacknowledged"
	})
	waitFor(t, "the power-cut relay tripped", 10*time.Second, func() bool {
		r, ok := reading(t, ui, "face3-relay", "power_cut")
		return ok && *r.Value == 1
	})
	t.Logf("incident escalated to high_high %s after the readings were seen", time.Since(start).Round(time.Second))
	require.Contains(t, out.String(), "activate  face3-ch4-1.ch4.high_high")
	require.Contains(t, out.String(), "action_trip power-cut")

	// Only the printed password works.
	require.Equal(t, http.StatusUnauthorized, post(t, ui+"/api/v1/alarms/face3-ch4-1.ch4.high_high/ack", "operator", "wrong", `{"comment":"x"}`))
	require.Equal(t, http.StatusOK, post(t, ui+"/api/v1/alarms/face3-ch4-1.ch4.high_high/ack", "operator", pass, `{"comment":"evacuating face 3"}`))
	waitFor(t, "high_high acknowledged", 5*time.Second, func() bool {
		a := alarms(t, ui)["face3-ch4-1.ch4.high_high"]
		return a.State == "acknowledged" && a.AckedBy == "operator"
	})

	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, out.String())
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop within 20s of cancel")
	}
	require.Contains(t, out.String(), "canary demo stopped")
	// The outbox and the alarm state were kept in --data.
	_, err := os.Stat(filepath.Join(data, "alarm-state.json"))
	require.NoError(t, err)
}

// TestDemoBinarySIGINT builds the binary, runs `canary demo`, and stops it
// with SIGINT (Ctrl-C): exit code 0, everything joined.
func TestDemoBinarySIGINT(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "canary")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	out, errb := &syncBuffer{}, &syncBuffer{}
	cmd := exec.Command(bin, "demo", "--listen", "127.0.0.1:0", "--incident-after", "-1s")
	cmd.Stdout, cmd.Stderr = out, errb
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ui, _ := banner(t, out)
	waitFor(t, "readings", 15*time.Second, func() bool { _, ok := reading(t, ui, "station1-pt", "discharge"); return ok })
	require.NotContains(t, out.String(), "incident started", "--incident-after -1s stages nothing")

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-exited:
		require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out, errb)
	case <-time.After(20 * time.Second):
		t.Fatalf("demo did not exit within 20s of SIGINT\n%s", errb)
	}
	require.Contains(t, out.String(), "canary demo stopped")
}

// TestDemoIngestsIntoInfluxDB runs the demo with --influx-url against a real
// InfluxDB 1.8: readings and the incident's alarm transitions are stored.
func TestDemoIngestsIntoInfluxDB(t *testing.T) {
	influx := testenv.StartInflux(t)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--incident-after", "0s",
			"--influx-url", influx.URL, "--influx-bucket", influx.DB + "/autogen"}, out, &syncBuffer{})
	}()
	banner(t, out)
	count := func(q string) int {
		r, err := influx.Query(q)
		if err != nil || len(r.Results) == 0 || len(r.Results[0].Series) == 0 || len(r.Results[0].Series[0].Values) == 0 {
			return 0
		}
		n, _ := r.Results[0].Series[0].Values[0][1].(float64)
		return int(n)
	}
	waitFor(t, "methane readings in InfluxDB", 20*time.Second, func() bool {
		return count(`SELECT count(value) FROM reading WHERE device = 'face3-ch4-1' AND sensor = 'ch4'`) > 0
	})
	waitFor(t, "the incident's high_high in InfluxDB", 40*time.Second, func() bool {
		return count(`SELECT count(state) FROM alarm WHERE alarm = 'face3-ch4-1.ch4.high_high'`) > 0
	})
	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, out.String())
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
}
