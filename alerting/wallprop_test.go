package alerting

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/clocktest"
)

// TestTimersMatchFullScanMonotonic with the system clock stepped (±1 h)
// every few hundred operations.
func TestTimersMatchFullScanWallSteps(t *testing.T) {
	wallStepRuns(t, nil)
}

// TestTimersMatchFullScanBehindRestarts: the same, every restart on a
// clock a year behind the snapshot's (restoredclock.go: restored times
// judged by the later of two clocks, with a monotonic timer beside the
// wall one), and for every other seed the Ticks NextDue calls idle
// skipped.
func TestTimersMatchFullScanBehindRestarts(t *testing.T) {
	var runners []*opRunner
	wallStepRuns(t, func(r *opRunner, seed uint64) {
		r.behindRestarts = true
		r.skipIdle = seed%2 == 0
		runners = append(runners, r)
	})
	restarts := 0
	for _, r := range runners {
		restarts += r.restarts
	}
	t.Logf("%d restarts on a clock behind", restarts)
	require.Positive(t, restarts, "no restart: the property was not exercised")
}

// wallStepRuns runs 60 seeds of random operations, the wall clock stepped
// ±1 h every 400 bytes of them, with set (if not nil) setting the runner up.
func wallStepRuns(t *testing.T, set func(r *opRunner, seed uint64)) {
	fails := 0
	for seed := uint64(1); seed <= 60; seed++ {
		ok := t.Run("", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 17))
			r := newRunnerWith(t, timerConfig())
			r.now = time.Now()
			if set != nil {
				set(r, seed)
			}
			for chunk := 0; chunk < 10; chunk++ {
				data := make([]byte, 400)
				for i := range data {
					data[i] = byte(rng.UintN(256))
				}
				r.run(data)
				step := time.Duration(rng.IntN(7200)-3600) * time.Second
				r.now = clocktest.WallStep(r.now, step)
			}
		})
		if !ok {
			fails++
		}
	}
	t.Logf("%d of 60 seeds diverged", fails)
}
