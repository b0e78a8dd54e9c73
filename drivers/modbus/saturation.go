package modbus

import (
	"runtime"
	"sync"
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
// driver now looks in the socket (Link.takeLate: the answer, stamped
// within the timeout, is read); this check remains for the other links
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
// to the next or from one link to another, but for the CPU reading that
// requests starting within a millisecond share (procSample).
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

// start notes the process's CPU time before a request.
func (s *saturation) start() { s.startAt(time.Now) }

// startAt is start on clock: the process's CPU time read within
// sampleFresh before now serves, with the time it was read at, so that
// the request's window begins a little earlier. The clock is read under
// the lock, next to the CPU time: a wait between the two would count as
// wall time without CPU time.
func (s *saturation) startAt(clock func() time.Time) {
	procSample.mu.Lock()
	defer procSample.mu.Unlock()
	now := clock()
	if !procSample.ok || now.Sub(procSample.wall) > sampleFresh || now.Before(procSample.wall) {
		procSample.cpu, procSample.ok = cputime.Process()
		procSample.wall = now
	}
	s.cpu, s.wall, s.ok = procSample.cpu, procSample.wall, procSample.ok
}

// procSample is the last reading of the process's CPU time, shared by the
// requests that start within sampleFresh of it. The pollers woken by one
// timer start their requests within a few milliseconds, and each read its
// own: at the reference load 50 getrusage calls a second (about 6 now),
// 1-3 % of `canary run`'s CPU. A window begun up to sampleFresh sooner
// moves the share by at most sampleFresh over the timeout, times
// NumCPU/GOMAXPROCS (getrusage counts every thread): 0.4 % for the
// default 500 ms on two cores, 8 % for the 25 ms of the saturation test.
var procSample struct {
	mu   sync.Mutex
	cpu  time.Duration
	wall time.Time
	ok   bool
}

const sampleFresh = time.Millisecond

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
