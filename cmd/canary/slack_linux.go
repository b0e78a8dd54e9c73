//go:build linux

package main

import (
	"fmt"
	"os"
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
// Only a process started by main (mayReexec) execs: tests that run
// commands in-process must not replace the test binary.
func applyTimerSlack(want time.Duration) (string, error) {
	if want <= 0 {
		return "kernel's default kept", nil
	}
	again := os.Getenv(reexecEnv) != ""
	if again {
		// Not for whatever this process starts.
		os.Unsetenv(reexecEnv)
	}
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
	if !mayReexec {
		return "", fmt.Errorf("timer slack %s, want %s: not started by main, no exec", got, want)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(want.Nanoseconds()), 0, 0, 0); err != nil {
		return "", fmt.Errorf("set timer slack %s: %w", want, err)
	}
	// The slack is this thread's: exec from it, and the new image's every
	// thread descends from it.
	err = syscall.Exec(runningExecutable(), os.Args, append(os.Environ(), reexecEnv+"=timer-slack"))
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

// runningExecutable is the path to exec the running executable by: its own
// path while that is still the file running, so that the process keeps its
// name (the kernel names it after the path exec is given); else
// /proc/self/exe, which is the running file even once replaced on disk.
func runningExecutable() string {
	const self = "/proc/self/exe"
	p, err := os.Executable()
	if err != nil {
		return self
	}
	a, err := os.Stat(p)
	if err != nil {
		return self
	}
	b, err := os.Stat(self)
	if err != nil || !os.SameFile(a, b) {
		return self
	}
	return p
}
