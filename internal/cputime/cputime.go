// Package cputime reads the process's own CPU time: what the Modbus
// driver's saturation check and the benchmarks whose wall time is mostly
// waiting for the disk compare against wall time.
package cputime

import (
	"time"

	"golang.org/x/sys/unix"
)

// Process returns the user and system CPU time of every thread of the
// process so far (getrusage RUSAGE_SELF, about a microsecond); ok is false
// when it cannot be read.
func Process() (d time.Duration, ok bool) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
