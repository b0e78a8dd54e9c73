package gateway

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A wake timer moved does not wake the process at a time it no longer has.
// Each second the core moves its timer from the next second to the
// deadline of a burst's waiting readings (half a second on) and back once
// the burst is committed; reset in place, the Go runtime woke the process
// at the deadline for nothing (docs/performance-history.md, item 45). A child
// process (this test binary, GOMAXPROCS=1 as `canary run`) does that in
// rounds, and this process watches from outside whether any of its threads
// ran around the deadline (the run counts in /proc/PID/task/*/schedstat):
// with move, against the same with Reset in place, which shows that the
// watch sees such a wake-up (if a later Go runtime no longer wakes there,
// this fails, and wakeTimer.move may go back to Reset).
func TestWakeTimerMovedDoesNotWakeAtAnOldTime(t *testing.T) {
	if os.Getenv(wakeChildEnv) != "" {
		wakeChild()
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("watches the child's threads in /proc")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWakeTimerMovedDoesNotWakeAtAnOldTime$")
	cmd.Env = append(os.Environ(), wakeChildEnv+"=1", "GOMAXPROCS=1", "GOGC=off")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	woke := map[string]int{}
	rounds := map[string]int{}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		// "round HOW START", then "moved AT" once the timer is back on the
		// next second: unix ns of the child's wall clock.
		f := strings.Fields(lines.Text())
		if len(f) != 3 || f[0] != "round" || !lines.Scan() {
			continue
		}
		how := f[1]
		start := time.Unix(0, atoi(t, f[2]))
		g := strings.Fields(lines.Text())
		require.Len(t, g, 2, lines.Text())
		moved := time.Unix(0, atoi(t, g[1]))
		time.Sleep(time.Until(start.Add(wakeWatchFrom)))
		before := threadRuns(t, cmd.Process.Pid)
		late := time.Since(start.Add(wakeWatchFrom)) > 30*time.Millisecond
		time.Sleep(time.Until(start.Add(wakeWatchTo)))
		after := threadRuns(t, cmd.Process.Pid)
		if late || time.Since(start) > wakeNext-10*time.Millisecond || !moved.Before(start.Add(wakeWatchFrom-5*time.Millisecond)) {
			continue // either process was held up: no verdict on this round
		}
		rounds[how]++
		if after != before {
			woke[how]++
		}
	}
	require.NoError(t, cmd.Wait())
	t.Logf("rounds in which the child ran between %v and %v: move %d of %d, reset in place %d of %d",
		wakeWatchFrom, wakeWatchTo, woke["move"], rounds["move"], woke["reset"], rounds["reset"])
	require.GreaterOrEqual(t, rounds["move"], wakeRounds/2, "too few rounds watched in time")
	require.GreaterOrEqual(t, rounds["reset"], wakeRounds/2, "too few rounds watched in time")
	require.Greater(t, woke["reset"], rounds["reset"]/2,
		"the child reset in place did not wake at the old deadline: the watch cannot tell, or the runtime changed")
	require.LessOrEqual(t, woke["move"], 1, "the child woke at the deadline it had moved away from")
}

const (
	wakeChildEnv = "CANARY_TEST_WAKE_CHILD"
	wakeRounds   = 8
	// Each round's times from its start: the deadline the timer is moved
	// to and away from, the window watched around it, the next second.
	wakeDeadline  = 200 * time.Millisecond
	wakeWatchFrom = 60 * time.Millisecond
	wakeWatchTo   = 340 * time.Millisecond
	wakeNext      = 450 * time.Millisecond
)

// wakeChild runs the rounds, each as the core's second: its timer armed
// for the next second, moved to the deadline of the readings waiting when
// a poll comes (1 ms on), and back to the next second when the burst is
// committed (10 ms later); then it waits for it to fire.
func wakeChild() {
	for i := range 2 * wakeRounds {
		how := "move"
		if i%2 == 1 {
			how = "reset"
		}
		now := time.Now()
		fmt.Printf("round %s %d\n", how, now.UnixNano())
		w := newWakeTimer(now, wakeNext)
		// The core waits on its timer when a poll comes (the runtime
		// puts a timer in its heap only while someone waits on it).
		select {
		case <-w.t.C:
			panic("the timer fired early")
		case <-time.After(time.Millisecond):
		}
		if how == "move" {
			w.move(now, wakeDeadline)
		} else {
			w.t.Reset(time.Until(now.Add(wakeDeadline)))
		}
		select {
		case <-w.t.C:
			panic("the timer fired early")
		case <-time.After(10 * time.Millisecond):
		}
		if how == "move" {
			w.move(now, wakeNext)
		} else {
			w.t.Reset(time.Until(now.Add(wakeNext)))
		}
		fmt.Printf("moved %d\n", time.Now().UnixNano())
		<-w.t.C
	}
}

// threadRuns sums how many times the threads of process pid have run on a
// CPU (the third field of schedstat).
func threadRuns(t *testing.T, pid int) int64 {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	require.NoError(t, err)
	var n int64
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a thread gone
		}
		f := strings.Fields(string(b))
		require.Len(t, f, 3, p)
		k, err := strconv.ParseInt(f[2], 10, 64)
		require.NoError(t, err)
		n += k
	}
	return n
}

func atoi(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return n
}
