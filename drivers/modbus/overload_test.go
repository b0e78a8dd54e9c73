package modbus

import (
	"context"
	"math"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/drivers/modbus/modbustest"
	"github.com/canary-gw/canary/internal/cputime"
)

// The saturation of TestSaturatedGatewayTimeoutsAreLate: goroutines busy
// for hogBusy, then asleep for hogRest, on one scheduler thread.
const (
	hogCount = 3
	hogBusy  = 30 * time.Millisecond
	hogRest  = 2 * time.Millisecond
)

// TestSaturatedGatewayTimeoutsAreLate: devices that answer at once, served
// by another process (pymodbus), polled by a gateway whose one scheduler
// thread is saturated (busy goroutines, like a core and a GC behind a
// flood). A request that times out there says nothing about the device,
// so it should not become a bad reading (a bad alarm for every sensor of
// the device) but be abandoned as late (no readings; a device left unread
// raises its comm alarm in the engine). The same 3 s of saturation run
// with the saturation check off and on: off, 12–19 of 24–25 polls came
// out bad; on, 0 of 25–33. The check also asks for the gateway's own CPU
// share, which other processes on the box lower (so that a dead device on
// a loaded box stays bad), so the test asserts the reduction, not zero.
func TestSaturatedGatewayTimeoutsAreLate(t *testing.T) {
	srv := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: imageUnit()}})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	share := saturatedShare
	// The answers' arrival stamps (TestAnsweredInTimeIsRead) would have
	// these answers read without the check: this test is about the check.
	trustStamps = false
	defer func() { saturatedShare, trustStamps = share, true }()

	// The experiment needs the gateway saturated by its own goroutines.
	// Other processes on a loaded box take the CPU from it, and then its
	// timeouts are rightly bad: the pair of runs is repeated, at most
	// six times (about 40 s), until both had the process on the CPU at
	// least 95 % of the time and the check-off run had at least five bad
	// polls. (Three attempts once all met other tests' processes on the
	// box, at 64-96 % of the CPU.)
	for attempt := range saturatedAttempts {
		saturatedShare = math.Inf(1) // never saturated: the check is off
		off := saturatedPolls(t, srv.URL)
		saturatedShare = share
		on := saturatedPolls(t, srv.URL)
		t.Logf("attempt %d: check off: %d of %d polls bad (process on the CPU %.0f %%); on: %d of %d bad, %d late (%.0f %%)",
			attempt, off.bad, off.polls, 100*off.cpu, on.bad, on.polls, on.late, 100*on.cpu)
		if off.cpu < 0.95 || on.cpu < 0.95 || off.bad < 5 {
			continue // the box took the CPU from the test, or the saturation made too few timeouts to judge
		}
		require.Positive(t, on.late, "no poll was abandoned as late")
		require.LessOrEqual(t, on.bad*4, off.bad, "the check kept at most a quarter of the bad polls")
		return
	}
	t.Fatalf("in %d attempts the test's own scheduler thread was never saturated enough to make five requests time out, with the process on the CPU 95 %% of the time (a box busy with other work)", saturatedAttempts)
}

// saturatedAttempts bounds TestSaturatedGatewayTimeoutsAreLate's pairs of runs.
const saturatedAttempts = 6

// saturatedRun is what saturatedPolls saw.
type saturatedRun struct {
	bad, polls int
	late       uint64
	// lateAnswers: requests whose answer was read after their timeout;
	// wrong: good readings whose value is not imageWant's.
	lateAnswers uint64
	wrong       int
	cpu         float64 // the process's CPU time over wall time
}

// saturatedPolls polls four devices of url every 100 ms (25 ms timeout)
// for 3 s while hogCount goroutines keep the one scheduler thread busy,
// and counts the polls with bad readings, all polls and the late ones.
func saturatedPolls(t *testing.T, url string) (r saturatedRun) {
	ids := []string{"a", "b", "c", "d"}
	var devs []Device
	for _, id := range ids {
		d := device(id, url, 1, 100*time.Millisecond, imageSensors())
		d.Config.Timeout = 25 * time.Millisecond
		require.NoError(t, d.Config.Validate())
		devs = append(devs, d)
	}
	var c batches
	g, stop := runGroup(t, devs, c.sink)

	ctx, cancel := context.WithCancel(t.Context())
	cpu0, _ := cputime.Process()
	wall0 := time.Now()
	var hogs sync.WaitGroup
	var sink [hogCount]uint64
	for i := range sink {
		hogs.Go(func() {
			for ctx.Err() == nil {
				// Busy for hogBusy, then a short sleep: the run queue is
				// long but not endless, as behind a flood.
				start := time.Now()
				for time.Since(start) < hogBusy {
					for range 1 << 10 {
						sink[i]++
					}
					_ = make([]byte, 256) // garbage, so the GC runs too
				}
				time.Sleep(hogRest)
			}
		})
	}
	time.Sleep(3 * time.Second)
	cpu1, _ := cputime.Process()
	r.cpu = float64(cpu1-cpu0) / float64(time.Since(wall0))
	cancel()
	hogs.Wait()
	stop()
	n := countPolls(&c, g, ids)
	r.bad, r.polls, r.late = n.bad, n.polls, n.late
	return r
}

// countPolls counts the polls of devices ids that c got with a bad
// reading, all their polls, and the late ones (which yield no batch).
func countPolls(c *batches, g *Group, ids []string) (r saturatedRun) {
	for _, id := range ids {
		for _, b := range c.get(id) {
			r.polls++
			bad := false
			for _, rd := range b.Readings {
				bad = bad || rd.Quality == QualityBad
				if want, ok := imageWant[rd.Sensor]; ok && rd.Quality == QualityGood && math.Abs(rd.Value-want) > 1e-12 {
					r.wrong++
				}
			}
			if bad {
				r.bad++
			}
		}
	}
	for _, s := range g.Stats() {
		r.late += s.Late
		r.lateAnswers += s.LateAnswers
		r.polls += int(s.Late)
	}
	return r
}

// TestDeadDeviceOnABusyBoxIsBad is the other side: other processes keep
// both cores busy (the box is loaded, the gateway is not), and a unit that
// never answers must still give bad readings at every poll, never late
// ones, so that its sensors' bad alarms come at once.
func TestDeadDeviceOnABusyBoxIsBad(t *testing.T) {
	srv := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: imageUnit()}})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for range runtime.NumCPU() + 1 {
		// Spins while the test binary lives, even if it dies without
		// running its cleanups.
		hog := exec.Command("sh", "-c", "while kill -0 $PPID 2>/dev/null; do :; done")
		require.NoError(t, hog.Start())
		t.Cleanup(func() { _ = hog.Process.Kill(); _ = hog.Wait() })
	}
	requireDeadUnitBad(t, srv.URL)
}

// TestDeadDeviceOnABusyGatewayIsBad: the gateway itself is busy (one
// goroutine working 60 % of the time, as a core at 400 000 readings/s)
// but keeps up, and a unit that never answers must still give bad
// readings at every poll.
func TestDeadDeviceOnABusyGatewayIsBad(t *testing.T) {
	srv := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: imageUnit()}})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ctx, cancel := context.WithCancel(t.Context())
	var busy sync.WaitGroup
	busy.Go(func() {
		var n uint64
		for ctx.Err() == nil {
			start := time.Now()
			for time.Since(start) < 6*time.Millisecond {
				for range 1 << 10 {
					n++
				}
				_ = make([]byte, 256)
			}
			time.Sleep(4 * time.Millisecond)
		}
		_ = n
	})
	defer func() { cancel(); busy.Wait() }()
	requireDeadUnitBad(t, srv.URL)
}

// requireDeadUnitBad polls a unit of url that is not served (40 ms
// timeout, every 100 ms) five times and requires bad readings at every
// poll and no late poll.
//
// A poll whose timeout the process noticed more than 40 ms late is rightly
// abandoned as late: the gateway itself ran late. A test box running other
// packages' tests (InfluxDB, Chromium) can stall the whole process that
// long now and then (one CI run: one late poll of five, under the busy
// goroutine of TestDeadDeviceOnABusyGatewayIsBad). The bug this guards
// against takes every timeout of a dead unit for lateness, so an attempt
// with a late poll is run again, at most three times in all, while a good
// reading fails at once.
func requireDeadUnitBad(t *testing.T, url string) {
	var late uint64
	for attempt := range deadUnitAttempts {
		d := device("dead", url, 2, 100*time.Millisecond, imageSensors()) // unit 2 is not served
		d.Config.Timeout = 40 * time.Millisecond
		require.NoError(t, d.Config.Validate())
		var c batches
		g, stop := runGroup(t, []Device{d}, c.sink)
		require.Eventually(t, func() bool { return len(c.get("dead")) >= 5 }, 20*time.Second, 20*time.Millisecond,
			"five polls of the dead unit")
		stop()
		for _, b := range c.get("dead") {
			for _, r := range b.Readings {
				require.Equal(t, QualityBad, r.Quality, "%s: %s", r.Sensor, r.Reason)
			}
		}
		if late = g.Stats()[0].Late; late == 0 {
			return
		}
		t.Logf("attempt %d: %d of %d polls late (the process stalled past the timeout?): once more", attempt, late, len(c.get("dead")))
	}
	require.Zero(t, late, "a dead unit's timeouts were taken for the gateway's own lateness, in %d attempts", deadUnitAttempts)
}

// deadUnitAttempts bounds requireDeadUnitBad's runs.
const deadUnitAttempts = 3
