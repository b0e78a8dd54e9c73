//go:build !linux

package modbus

import (
	"errors"
	"syscall"
	"time"
)

// Without the kernel's arrival stamps (Linux's SO_TIMESTAMPNS, socket_linux.go)
// a link does not take late answers: a request that times out is judged by
// the other rules (late, saturation). Edge gateways run Linux; this lets
// canary build and its demo run on a developer's machine.

func setStamps(syscall.Conn) error {
	return errors.New("arrival stamps are only read on Linux")
}

func waitingAnswer(*headerConn, answer, time.Time, time.Time, bool) ([]byte, time.Time, bool) {
	return nil, time.Time{}, false
}

// peerClosed cannot tell without Linux's non-blocking peek: a write after
// an idle close then fails and is retried by its caller.
func peerClosed(syscall.Conn) bool { return false }
