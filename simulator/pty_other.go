//go:build !linux

package simulator

import (
	"errors"
	"os"
)

// errNoPTY: the simulator's pseudo-terminal RTU endpoints use Linux's
// /dev/ptmx ioctls (pty_linux.go). Elsewhere serve RTU over TCP instead
// (an rtuovertcp:// url).
var errNoPTY = errors.New("a pseudo-terminal (rtu:// endpoint) needs Linux here; serve the devices over rtuovertcp:// instead")

func openPTY() (ptmx, tty *os.File, err error) { return nil, nil, errNoPTY }

func makeRaw(*os.File) error { return errNoPTY }
