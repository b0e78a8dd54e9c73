package modbus

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/drivers/modbus/modbustest"
)

// The saturation of TestSaturatedGatewayTimeoutsAreLate: goroutines busy
// for hogBusy, then asleep for hogRest, on one scheduler thread.
const (
	hogCount = 2
	hogBusy  = 20 * time.Millisecond
	hogRest  = 5 * time.Millisecond
)

// TestSaturatedGatewayTimeoutsAreLate: devices that answer at once, served
// by another process (pymodbus), polled by a gateway whose one scheduler
// thread is saturated (busy goroutines, like a core and a GC behind a
// flood). A request that times out there says nothing about the device,
// so it must not become a bad reading (a bad alarm for every sensor of
// the device): every batch is good, or the poll is abandoned as late (no
// readings; a device left unread raises its comm alarm in the engine).
// Before the starvation check, 16–20 of 34 polls here came out bad.
func TestSaturatedGatewayTimeoutsAreLate(t *testing.T) {
	srv := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: imageUnit()}})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))

	var devs []Device
	for _, id := range []string{"a", "b", "c", "d"} {
		d := device(id, srv.URL, 1, 100*time.Millisecond, imageSensors())
		d.Config.Timeout = 40 * time.Millisecond
		require.NoError(t, d.Config.Validate())
		devs = append(devs, d)
	}
	var c batches
	g, stop := runGroup(t, devs, c.sink)

	ctx, cancel := context.WithCancel(t.Context())
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
	cancel()
	hogs.Wait()
	stop()

	var good, bad int
	for _, id := range []string{"a", "b", "c", "d"} {
		for _, b := range c.get(id) {
			for _, r := range b.Readings {
				if r.Quality == QualityBad {
					bad++
					t.Logf("%s: bad reading %s: %s (poll latency %s)", id, r.Sensor, r.Reason, b.Latency)
					break
				}
			}
			if b.Err == nil {
				good++
			}
		}
	}
	var late uint64
	for _, s := range g.Stats() {
		late += s.Late
	}
	t.Logf("good polls %d, bad polls %d, late polls %d", good, bad, late)
	require.Zero(t, bad, "timeouts of the gateway's own making became bad readings")
	require.Positive(t, good, "no poll got through at all")
}
