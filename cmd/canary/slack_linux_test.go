//go:build linux

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

func TestTimerSlackFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env    string
		set    bool
		want   time.Duration
		errHas string
	}{
		{set: false, want: timerSlackDefault},
		{env: "", set: true, want: timerSlackDefault},
		{env: "5ms", set: true, want: 5 * time.Millisecond},
		{env: "off", set: true, want: 0},
		{env: "1s", set: true, want: time.Second},
		{env: "2s", set: true, want: timerSlackDefault, errHas: `CANARY_TIMER_SLACK="2s": want a duration from 1ns to 1s`},
		{env: "0", set: true, want: timerSlackDefault, errHas: `CANARY_TIMER_SLACK="0"`},
		{env: "-1ms", set: true, want: timerSlackDefault, errHas: `CANARY_TIMER_SLACK="-1ms"`},
		{env: "fast", set: true, want: timerSlackDefault, errHas: `CANARY_TIMER_SLACK="fast"`},
	} {
		t.Run(fmt.Sprintf("%v/%q", tc.set, tc.env), func(t *testing.T) {
			if tc.set {
				t.Setenv("CANARY_TIMER_SLACK", tc.env)
			} else {
				t.Setenv("CANARY_TIMER_SLACK", "")
				os.Unsetenv("CANARY_TIMER_SLACK")
			}
			got, err := timerSlackFromEnv()
			require.Equal(t, tc.want, got)
			if tc.errHas == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.errHas)
			}
		})
	}
}

func TestWantsTimerSlack(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"run", "-c", "site.yaml"}, true},
		{[]string{"--log-level", "debug", "run", "-c", "site.yaml"}, true},
		{[]string{"--log-format=console", "ingest", "-c", "ingest.yaml"}, true},
		{[]string{"bench", "--devices", "5"}, true},
		{[]string{"check", "-c", "site.yaml"}, false},
		{[]string{"sim", "-c", "site.yaml"}, false},
		{[]string{"read", "tcp://127.0.0.1:502"}, false},
		{[]string{"run", "--help"}, false}, // only its help: no exec
		{[]string{"ingest", "-h"}, false},
		{[]string{"run", "-c", "site.yaml", "--help=true"}, false},
		{[]string{"--help", "run"}, false},
		{[]string{"help", "run"}, false},
		{[]string{"__complete", "run"}, false},
		{[]string{"--version"}, false},
		{[]string{}, false},
		{[]string{"nosuch"}, false},
	} {
		require.Equal(t, tc.want, wantsTimerSlack(tc.args), "%q", tc.args)
	}
}

// threadSlacks is the timer slack of each thread of process pid, by thread
// id. Reading another thread's needs CAP_SYS_NICE, even within one process:
// without it, ok is false.
func threadSlacks(t *testing.T, pid int) (_ map[string]time.Duration, ok bool) {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	require.NoError(t, err)
	out := map[string]time.Duration{}
	for _, task := range tasks {
		// Per thread: /proc/TID/ (task/TID/ has no timerslack_ns).
		b, err := os.ReadFile(fmt.Sprintf("/proc/%s/timerslack_ns", task.Name()))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // the thread ended
		}
		if errors.Is(err, fs.ErrPermission) {
			return nil, false
		}
		require.NoError(t, err)
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		require.NoError(t, err)
		out[task.Name()] = time.Duration(ns)
	}
	return out, true
}

// waitForLog waits until the process's log holds want, and returns it.
func waitForLog(t *testing.T, cmd *exec.Cmd, want string) string {
	t.Helper()
	logFile := cmd.Stdout.(*os.File).Name()
	deadline := time.Now().Add(15 * time.Second)
	for {
		logged, err := os.ReadFile(logFile)
		require.NoError(t, err)
		if strings.Contains(string(logged), want) {
			return string(logged)
		}
		require.True(t, time.Now().Before(deadline), "no %s in the log:\n%s", want, logged)
		time.Sleep(50 * time.Millisecond)
	}
}

// requireSlacks checks that the process kept the name it was started by,
// that it exec'd itself or not (the marker in its initial environment), and
// that every thread has the timer slack want, where the test may read them.
func requireSlacks(t *testing.T, cmd *exec.Cmd, want time.Duration, execd bool) {
	t.Helper()
	// The process keeps its name (the kernel's, from the path it was
	// started by: at most 15 bytes): exec was given that path.
	name := filepath.Base(cmd.Path)
	if len(name) > 15 {
		name = name[:15]
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
	require.NoError(t, err)
	require.Equal(t, name+"\n", string(comm))

	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	require.NoError(t, err)
	marker := slices.Contains(strings.Split(string(environ), "\x00"), reexecEnv+"=timer-slack")
	require.Equal(t, execd, marker, "the exec's marker in the process's environment")

	slacks, ok := threadSlacks(t, cmd.Process.Pid)
	if !ok {
		t.Log("each thread's slack not checked: reading another thread's needs CAP_SYS_NICE")
		return
	}
	require.GreaterOrEqual(t, len(slacks), 3, "the runtime's threads, its monitor among them")
	for tid, got := range slacks {
		require.Equal(t, want, got, "thread %s of %d", tid, len(slacks))
	}
}

// TestRunAppliesTimerSlack runs `canary run` as a process and checks that
// every one of its threads, the Go runtime's monitor among them, has the
// timer slack the environment asks for, in the process the test started
// (an exec keeps the process id), and that off leaves the slack it was
// started with. The site's broker and device are unreachable.
func TestRunAppliesTimerSlack(t *testing.T) {
	// The children inherit the slack of the thread that starts them, and
	// the test's threads have the one it was started with.
	runtime.LockOSThread()
	inherited, err := timerSlack()
	runtime.UnlockOSThread()
	require.NoError(t, err)
	require.NotZero(t, inherited)
	require.Less(t, inherited, timerSlackDefault, "the test must start with a smaller slack than canary's")

	// Started by a symlink, it keeps the symlink's name.
	self, err := os.Executable()
	require.NoError(t, err)
	link := filepath.Join(t.TempDir(), "canary-link")
	require.NoError(t, os.Symlink(self, link))

	const fast = "polled faster than 20 times the timer slack"
	for _, tc := range []struct {
		env     []string
		exe     string // default: the test binary
		want    time.Duration
		log     string
		fastLog bool // the site's 100 ms poll is under 20 slacks
		execd   bool
	}{
		{want: timerSlackDefault, log: `"timer slack 2ms"`, execd: true},
		{env: []string{"BY=symlink"}, exe: link, want: timerSlackDefault, log: `"timer slack 2ms"`, execd: true},
		{env: []string{"CANARY_TIMER_SLACK=7ms"}, want: 7 * time.Millisecond, log: `"timer slack 7ms"`, fastLog: true, execd: true},
		{env: []string{"CANARY_TIMER_SLACK=off"}, want: inherited, log: `"timer slack: the one the process was started with"`},
		{env: []string{"CANARY_TIMER_SLACK=fast"}, want: timerSlackDefault, log: `CANARY_TIMER_SLACK=\"fast\": want a duration`, execd: true},
	} {
		t.Run(strings.Join(tc.env, ","), func(t *testing.T) {
			dir := t.TempDir()
			site := filepath.Join(dir, "site.yaml")
			require.NoError(t, os.WriteFile(site, []byte(fmt.Sprintf(restartSite,
				fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t)), filepath.Join(dir, "outbox"),
				testenv.FreePort(t), testenv.FreePort(t))), 0o600))
			exe := tc.exe
			if exe == "" {
				exe = os.Args[0]
			}
			cmd := canaryProcessAt(t, exe, tc.env, nil, "run", "-c", site, "--log-level", "debug", "--log-format", "json")

			// The gateway is up once it has opened its outbox, after the
			// slack was applied and logged.
			logged := waitForLog(t, cmd, `"outbox opened"`)
			require.Contains(t, logged, tc.log)
			require.NotContains(t, logged, "timer slack stays as it was")
			if tc.fastLog {
				require.Contains(t, logged, fast)
			} else {
				require.NotContains(t, logged, fast)
			}
			require.Contains(t, logged, `"gogc":"50","gomaxprocs":1,`, "the gateway's runtime settings")
			requireSlacks(t, cmd, tc.want, tc.execd)
		})
	}
}

// TestIngestAppliesTimerSlackBeforeItReadsItsConfig runs `canary ingest`
// with its config on a pipe: the exec must come before the config is read,
// or the new image finds the pipe empty.
func TestIngestAppliesTimerSlackBeforeItReadsItsConfig(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	metrics := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := fmt.Sprintf("mqtt:\n  url: %s\n  client_id: ingest-slack\ninfluxdb:\n  url: http://127.0.0.1:%d\n  bucket: canary/autogen\nmetrics: %s\n",
		m.URL, testenv.FreePort(t), metrics)
	cmd := canaryProcessEnv(t, nil, strings.NewReader(cfg), "ingest", "-c", "/dev/stdin", "--log-level", "debug")
	logged := waitForLog(t, cmd, `"timer slack 2ms"`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err == nil {
			resp.Body.Close()
			break
		}
		require.True(t, time.Now().Before(deadline), "ingest never served its metrics: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	// The ingest's runtime settings (item 56): Go's default GOGC.
	logged = waitForLog(t, cmd, `"runtime settings"`)
	require.Contains(t, logged, `"gogc":"100","gomaxprocs":1,`)
	requireSlacks(t, cmd, timerSlackDefault, true)
}
