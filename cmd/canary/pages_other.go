//go:build !linux

package main

import (
	"errors"
	"time"
)

// releaseStartupPages is Linux-only (docs/performance-history.md, item 47):
// elsewhere it releases nothing.
func releaseStartupPages() (int64, error) { return 0, nil }

// faultAroundOff is Linux-only (docs/performance-history.md, item 52).
func faultAroundOff() error { return errors.New("fault-around off: Linux only") }

// applyTimerSlack is Linux-only (docs/performance-history.md, item 55).
func applyTimerSlack(time.Duration) (string, error) {
	return "timer slack: the system's (Linux only)", nil
}

// timerSlack is Linux-only: elsewhere there is none to speak of.
func timerSlack() (time.Duration, error) { return 0, nil }
