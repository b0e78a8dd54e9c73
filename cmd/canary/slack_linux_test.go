//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// threadSlacks is the timer slack of each thread of process pid, by thread id.
func threadSlacks(t *testing.T, pid int) map[string]time.Duration {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	require.NoError(t, err)
	out := map[string]time.Duration{}
	for _, task := range tasks {
		// Per thread: /proc/TID/ (task/TID/ has no timerslack_ns).
		b, err := os.ReadFile(fmt.Sprintf("/proc/%s/timerslack_ns", task.Name()))
		if os.IsNotExist(err) {
			continue // the thread ended
		}
		require.NoError(t, err)
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		require.NoError(t, err)
		out[task.Name()] = time.Duration(ns)
	}
	return out
}

// TestRunAppliesTimerSlack runs `canary run` as a process and checks that
// every one of its threads, the Go runtime's monitor among them, has the
// timer slack the environment asks for, in the process the test started
// (an exec keeps the process id), and that off leaves the slack it was
// started with. The site's broker and device are unreachable.
func TestRunAppliesTimerSlack(t *testing.T) {
	own := threadSlacks(t, os.Getpid())
	inherited := own[strconv.Itoa(os.Getpid())]
	require.NotZero(t, inherited)
	require.Less(t, inherited, timerSlackDefault, "the test must start with a smaller slack than canary's")
	ownComm, err := os.ReadFile("/proc/self/comm")
	require.NoError(t, err)

	for _, tc := range []struct {
		env  []string
		want time.Duration
		log  string
	}{
		{want: timerSlackDefault, log: `"timer slack 2ms"`},
		{env: []string{"CANARY_TIMER_SLACK=7ms"}, want: 7 * time.Millisecond, log: `"timer slack 7ms"`},
		{env: []string{"CANARY_TIMER_SLACK=off"}, want: inherited, log: `"kernel's default kept"`},
		{env: []string{"CANARY_TIMER_SLACK=fast"}, want: timerSlackDefault, log: `CANARY_TIMER_SLACK=\"fast\": want a duration`},
	} {
		t.Run(strings.Join(tc.env, ","), func(t *testing.T) {
			dir := t.TempDir()
			site := filepath.Join(dir, "site.yaml")
			require.NoError(t, os.WriteFile(site, []byte(fmt.Sprintf(restartSite,
				fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t)), filepath.Join(dir, "outbox"),
				testenv.FreePort(t), testenv.FreePort(t))), 0o600))
			cmd := canaryProcessEnv(t, tc.env, "run", "-c", site, "--log-level", "debug", "--log-format", "json")
			logFile := cmd.Stdout.(*os.File).Name()

			// The gateway is up once it has opened its outbox, after the
			// slack was applied.
			deadline := time.Now().Add(15 * time.Second)
			var logged []byte
			for !strings.Contains(string(logged), `"outbox opened"`) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				var err error
				logged, err = os.ReadFile(logFile)
				require.NoError(t, err)
			}
			require.Contains(t, string(logged), `"outbox opened"`)
			require.Contains(t, string(logged), tc.log)
			require.NotContains(t, string(logged), "timer slack stays as it was")

			// The process keeps its name: exec was given its path.
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
			require.NoError(t, err)
			require.Equal(t, string(ownComm), string(comm))

			slacks := threadSlacks(t, cmd.Process.Pid)
			require.GreaterOrEqual(t, len(slacks), 3, "the runtime's threads, its monitor among them")
			for tid, got := range slacks {
				require.Equal(t, tc.want, got, "thread %s of %d", tid, len(slacks))
			}
		})
	}
}
