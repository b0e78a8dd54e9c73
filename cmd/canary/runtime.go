package main

import (
	"os"
	"runtime"
	"runtime/debug"
)

// runtimeDefaults tunes the Go runtime of a long-running process (canary
// run, canary ingest) for a small edge box, unless the environment says
// otherwise. Both were measured with scripts/load.sh (docs/performance.md):
//
//   - GOGC=50: garbage is collected when the heap has grown by half since
//     the last cycle instead of doubling. Edge boxes are sized by resident
//     memory: at 10 000 sensors the gateway's peak RSS went from 79 to
//     64 MB, at 1 000 from 28 to 24 MB, for CPU within run-to-run noise.
//   - GOMAXPROCS=1: one scheduler thread. At these loads the process is
//     woken far more often than it works, and with two threads every
//     wake-up also wakes the other to look for work: the reference load
//     cost 26 % less CPU on one (gateway 6.8 → 5.1 ms per 1000 readings;
//     ingest 5.1 → 3.8). One thread carries the gateway to about 240 000
//     readings/s and the ingest well past one InfluxDB. The alarm path
//     stays fast: at 10 000 sensors the alarm latency p99 was 4.5 ms with
//     simulator, broker and gateway all on one thread. Set GOMAXPROCS for
//     larger sites, or where the HTTP API serves many clients at once.
func runtimeDefaults() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(50)
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
}
