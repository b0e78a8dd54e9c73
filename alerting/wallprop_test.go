package alerting

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/canary-gw/canary/internal/clocktest"
)

// TestTimersMatchFullScanMonotonic with the system clock stepped (±1 h)
// every few hundred operations.
func TestTimersMatchFullScanWallSteps(t *testing.T) {
	fails := 0
	for seed := uint64(1); seed <= 60; seed++ {
		ok := t.Run("", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 17))
			r := newRunnerWith(t, timerConfig())
			r.now = time.Now()
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
