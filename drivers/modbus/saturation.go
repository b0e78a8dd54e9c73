package modbus

import (
	"runtime"
	"time"

	"github.com/canary-gw/canary/internal/cputime"
)

// saturation tells whether a request that timed out ran while the
// gateway's process was saturated, so that the poller may not have run
// when the answer came. On a saturated scheduler thread a poller is put
// off between setting its deadline and reading (a preempted goroutine
// goes to the back of the global run queue), and the read then fails at
// once although the answer is in the socket buffer, without running a
// timeout and a half late: late alone misses it. On tcp:// links the
// driver now looks in the socket (Link.AnsweredInTime: the answer,
// stamped within the timeout); this check remains for the other links
// and for what the stamps cannot tell. In
// TestSaturatedGatewayTimeoutsAreLate, half or more of the polls of
// devices that answer at once came out bad without it, none with it.
//
// Saturated means that over the request (from after any dial to the
// timeout) the process used at least saturatedShare of the CPU time its
// scheduler threads could have used (getrusage: every thread): work that
// left no gap in which a ready poller would have run. Another process
// taking the CPU lowers the gateway's share, and a gateway that is busy
// but keeps up leaves gaps, so on either a dead device still gives bad
// readings at once (TestDeadDeviceOnABusyBoxIsBad,
// TestDeadDeviceOnABusyGatewayIsBad). Nothing is carried from one request
// to the next or from one link to another.
//
// Not used: the runtime's scheduling-latency histogram
// (/sched/latencies:seconds). It also counts waits caused by other
// processes, and it samples too few wake-ups to judge a request of tens of
// milliseconds (required together with the CPU share, it let 10–15 of
// 30–36 polls in the saturation test come out bad).
type saturation struct {
	cpu  time.Duration // process CPU time when the request started
	wall time.Time
	ok   bool // the start was measured
}

// saturatedShare is the share of its scheduler threads' time the process
// must have used over a request to count as saturated: nearly all of it.
// A variable for the test that measures what the check changes.
var saturatedShare = 0.9

// start notes the process's CPU time before a request (one getrusage,
// about a microsecond).
func (s *saturation) start() {
	s.cpu, s.ok = cputime.Process()
	s.wall = time.Now()
}

// saturated reports whether the process was saturated since start.
func (s *saturation) saturated() bool {
	if !s.ok {
		return false
	}
	wall := time.Since(s.wall)
	cpu, ok := cputime.Process()
	if !ok || wall <= 0 {
		return false
	}
	procs := min(runtime.GOMAXPROCS(0), runtime.NumCPU())
	return float64(cpu-s.cpu) >= saturatedShare*float64(procs)*float64(wall)
}
