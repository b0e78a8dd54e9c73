//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reexecEnv marks the process image applyTimerSlack started, so that it
// execs at most once whatever the kernel does with the slack.
const reexecEnv = "CANARY_REEXEC"

// applyTimerSlack gives every thread of the process the timer slack want
// (docs/performance-history.md, item 55). The thread that matters most is
// the Go runtime's monitor (sysmon): the first system call after an idle
// spell wakes it, and it then sleeps 20 µs at a time until the process is
// idle again; each of those sleeps is a wake-up and a context switch, and
// the kernel lets a sleep run late by the thread's slack, 50 µs by default.
// With a slack of milliseconds the monitor looks once or twice per burst of
// work instead of dozens of times. A thread can set only its own slack
// without privileges; new threads and exec inherit it, and the runtime
// starts its monitor before any of canary's code runs. So the process sets
// the slack of the thread it runs on and execs itself, once: it returns
// only when the slack is already in place, or when it could not be.
//
// Only main calls it (earlyTimerSlack), before it has set anything up: an
// exec would lose a signal handled, a profile started, a pipe read.
func applyTimerSlack(want time.Duration) (string, error) {
	again := os.Getenv(reexecEnv) != ""
	if again {
		// Not for whatever this process starts.
		os.Unsetenv(reexecEnv)
	}
	if want <= 0 {
		return "timer slack: the one the process was started with", nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	got, err := timerSlack()
	if err != nil {
		return "", err
	}
	if got >= want {
		return fmt.Sprintf("timer slack %s", got), nil
	}
	if again {
		return "", fmt.Errorf("timer slack %s after exec, want %s", got, want)
	}
	if err := setTimerSlack(want); err != nil {
		return "", err
	}
	// The kernel ignores the slack of a real-time thread: no exec for
	// nothing then.
	now, err := timerSlack()
	if err != nil {
		_ = setTimerSlack(got)
		return "", err
	}
	if now < want {
		_ = setTimerSlack(got)
		return "", fmt.Errorf("timer slack %s, want %s: not taken (a real-time thread?)", now, want)
	}
	// The slack is this thread's: exec from it, and the new image's every
	// thread descends from it.
	err = syscall.Exec(runningExecutable(), os.Args, append(os.Environ(), reexecEnv+"=timer-slack"))
	_ = setTimerSlack(got)
	return "", fmt.Errorf("exec to apply timer slack %s: %w", want, err)
}

// timerSlack is the calling thread's timer slack.
func timerSlack() (time.Duration, error) {
	// PR_GET_TIMERSLACK returns the slack as the call's result.
	ns, _, errno := syscall.Syscall6(syscall.SYS_PRCTL, unix.PR_GET_TIMERSLACK, 0, 0, 0, 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("get timer slack: %w", errno)
	}
	return time.Duration(ns), nil
}

// setTimerSlack sets the calling thread's timer slack.
func setTimerSlack(d time.Duration) error {
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(d.Nanoseconds()), 0, 0, 0); err != nil {
		return fmt.Errorf("set timer slack %s: %w", d, err)
	}
	return nil
}

// runningExecutable is the path to exec the running executable by. The
// kernel names a process after the path exec is given, so the path it was
// started by comes first (a symlink's name, say), then the executable's
// own path, as long as either is still the file running; else
// /proc/self/exe, which is the running file even once replaced on disk.
func runningExecutable() string {
	const self = "/proc/self/exe"
	running, err := os.Stat(self)
	if err != nil {
		return self
	}
	var paths []string
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		paths = append(paths, p)
	}
	if p, err := os.Executable(); err == nil {
		paths = append(paths, p)
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && os.SameFile(fi, running) {
			return p
		}
	}
	return self
}
