package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/canary-gw/canary/internal/testenv"
)

// writeFailSite is restartSite as site wf, with an operator.
var writeFailSite = strings.NewReplacer("site: restart", "site: wf", "client_id: restart-gw", "client_id: wf-gw",
	"  listen: 127.0.0.1:%d\n", "  listen: 127.0.0.1:%d\n  users:\n    - {name: olga, role: operator, password_hash: '%s'}\n").Replace(restartSite)

// setFileLimit sets the soft RLIMIT_FSIZE of process pid: 0 makes every
// write to a regular file fail with EFBIG (a full or failing disk, for
// that process only), unix.RLIM_INFINITY gives the disk back.
func setFileLimit(t *testing.T, pid int, soft uint64) {
	t.Helper()
	var old unix.Rlimit
	require.NoError(t, unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &old))
	require.NoError(t, unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: soft, Max: old.Max}, nil))
}

// TestOutboxWriteFailureLosesNoAlarmOrCommand runs `canary run` and takes
// its disk away (every file write fails, as on a full or failing disk)
// while a methane alarm rises and an operator acknowledges it. The local
// API must show the alarm, the acknowledgement and the site's
// outbox.write_failed alarm at once; once the disk is back, the broker must
// get every event of the spell, in order (the alarm, the write-failed
// alarm, the acknowledgement with its user and comment), and the
// write-failed alarm returns.
func TestOutboxWriteFailureLosesNoAlarmOrCommand(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	modbusPort, httpPort := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("olga-pass"), bcrypt.MinCost)
	require.NoError(t, err)
	cfg := filepath.Join(dir, "site.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(writeFailSite, broker.URL, filepath.Join(dir, "outbox"), httpPort, hash, modbusPort)), 0o600))
	sim := startSiteSim(t, cfg)
	require.NoError(t, sim.Hold("face-gas", "ch4", 0.4))

	// Every event the broker delivers, in order, and the last message on
	// each alarm's retained topic.
	var mu sync.Mutex
	var events []map[string]any
	states := map[string]map[string]any{}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL).SetClientID("wf-watch").SetCleanSession(false))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	tok = c.Subscribe("canary/v1/wf/events", 1, func(_ paho.Client, m paho.Message) {
		var p map[string]any
		if err := json.Unmarshal(m.Payload(), &p); err != nil {
			t.Errorf("event %s: %v", m.Payload(), err)
		}
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	})
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	tok = c.Subscribe("canary/v1/wf/alarms/+", 1, func(_ paho.Client, m paho.Message) {
		var p map[string]any
		if len(m.Payload()) > 0 {
			if err := json.Unmarshal(m.Payload(), &p); err != nil {
				t.Errorf("alarm state %s: %v", m.Payload(), err)
			}
		}
		mu.Lock()
		states[path.Base(m.Topic())] = p
		mu.Unlock()
	})
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })

	url := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	gw := canaryProcess(t, "run", "-c", cfg)
	waitFor(t, "gateway ready", 15*time.Second, func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	ob := filepath.Join(dir, "outbox", "outbox.db")
	fileSize := func() int64 {
		fi, err := os.Stat(ob)
		require.NoError(t, err)
		return fi.Size()
	}
	sizeBefore := fileSize()

	// The disk goes.
	setFileLimit(t, gw.Process.Pid, 0)
	require.NoError(t, sim.Hold("face-gas", "ch4", 1.8))
	var hh, wf map[string]any
	waitFor(t, "high_high and outbox.write_failed raised on the local API", 15*time.Second, func() bool {
		as := getAlarms(t, url)
		hh, wf = findAlarm(as, "face-gas.ch4.high_high"), findAlarm(as, "outbox.write_failed")
		return hh != nil && hh["state"] == "unacknowledged" && wf != nil && wf["active"] == true
	})
	require.EqualValues(t, 1, wf["priority"], "%v", wf)
	require.Positive(t, wf["value"], "failed commits in the spell: %v", wf)

	// The operator acknowledges while the disk is still gone: applied.
	req, err := http.NewRequest(http.MethodPost, url+"/api/v1/alarms/face-gas.ch4.high_high/ack",
		bytes.NewReader([]byte(`{"comment":"evacuating face 3"}`)))
	require.NoError(t, err)
	req.SetBasicAuth("olga", "olga-pass")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)

	time.Sleep(time.Second) // a few ticks' retries that fail
	require.Equal(t, sizeBefore, fileSize(), "the outbox file grew while every write failed")
	mu.Lock()
	for _, e := range events {
		require.NotEqual(t, "face-gas.ch4.high_high", e["alarm"], "an event of the failed spell reached the broker: the disk took it")
	}
	mu.Unlock()

	// The disk is back: every event of the spell goes out, in order.
	setFileLimit(t, gw.Process.Pid, unix.RLIM_INFINITY)
	find := func(typ, alarm string) int {
		for i, e := range events {
			if e["type"] == typ && e["alarm"] == alarm {
				return i
			}
		}
		return -1
	}
	waitFor(t, "the spell's events at the broker", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return find("ack", "face-gas.ch4.high_high") >= 0
	})
	mu.Lock()
	activate, failed, ack := find("activate", "face-gas.ch4.high_high"), find("activate", "outbox.write_failed"), find("ack", "face-gas.ch4.high_high")
	require.True(t, activate >= 0 && failed >= 0, "activations of the spell: %v", events)
	require.Less(t, activate, ack, "the alarm before its acknowledgement: %v", events)
	require.Equal(t, "olga", events[ack]["user"])
	require.Equal(t, "evacuating face 3", events[ack]["comment"])
	var last float64
	for i, e := range events {
		seq, _ := e["seq"].(float64)
		if seq == last {
			continue // a QoS 1 redelivery
		}
		require.Greater(t, seq, last, "event %d out of order: %v", i, events)
		last = seq
	}
	ackSeq := events[ack]["seq"]
	mu.Unlock()
	// The alarm's state went out after its events, with the seq of the
	// latest (the acknowledgement), as a commit that had not failed sends it.
	waitFor(t, "the alarm's acknowledged state at the broker", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		st := states["face-gas.ch4.high_high"]
		return st != nil && st["state"] == "acknowledged" && st["seq"] == ackSeq
	})
	// The high alarm had no event after its activation: its state went out
	// on its own after the backlog, still with that event's seq.
	mu.Lock()
	high := find("activate", "face-gas.ch4.high")
	require.GreaterOrEqual(t, high, 0, "the high alarm's activation at the broker: %v", events)
	highSeq := events[high]["seq"]
	mu.Unlock()
	waitFor(t, "the high alarm's state at the broker with its event's seq", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		st := states["face-gas.ch4.high"]
		return st != nil && st["active"] == true && st["seq"] == highSeq
	})

	// The write-failed alarm returns once commits succeed again and the
	// calm (10 s) has passed; unacknowledged, it stays as returned.
	waitFor(t, "outbox.write_failed returned", 30*time.Second, func() bool {
		wf = findAlarm(getAlarms(t, url), "outbox.write_failed")
		return wf != nil && wf["active"] == false
	})
	waitFor(t, "outbox.write_failed's return at the broker", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return find("return", "outbox.write_failed") > failed
	})

	// The disk goes again, an alarm rises, and the disk comes back at the
	// moment the gateway is told to stop, most likely before its next
	// retry (one tick, 250 ms): the stop's last try commits what waited,
	// the events reach the broker, and the stop is clean.
	require.NoError(t, sim.Hold("face-gas", "ch4", 0.4))
	waitFor(t, "the high alarm's return at the broker", 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		st := states["face-gas.ch4.high"]
		return st == nil || st["active"] == false
	})
	setFileLimit(t, gw.Process.Pid, 0)
	require.NoError(t, sim.Hold("face-gas", "ch4", 1.2))
	waitFor(t, "high raised again on the local API", 15*time.Second, func() bool {
		st := findAlarm(getAlarms(t, url), "face-gas.ch4.high")
		return st != nil && st["active"] == true
	})
	mu.Lock()
	seen := len(events)
	if st := states["face-gas.ch4.high"]; st != nil {
		require.Equal(t, false, st["active"], "the disk took the high alarm's state")
	}
	mu.Unlock()
	setFileLimit(t, gw.Process.Pid, unix.RLIM_INFINITY)
	require.NoError(t, gw.Process.Signal(syscall.SIGTERM))
	_, err = gw.Process.Wait()
	require.NoError(t, err)
	waitFor(t, "the high alarm's activation at the broker after the stop", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events[seen:] {
			if e["type"] == "activate" && e["alarm"] == "face-gas.ch4.high" {
				return true
			}
		}
		return false
	})
	mu.Lock()
	require.Equal(t, true, states["face-gas.ch4.high"]["active"], "the high alarm's retained state")
	mu.Unlock()
	_, err = os.Stat(filepath.Join(dir, "outbox", "alarm-state.json.clean"))
	require.NoError(t, err, "a stop that sent everything is clean")
}
