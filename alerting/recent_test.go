package alerting

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRecentDecidesAsTheWholeList: for random event series, every
// threshold question the engine asks ("at least n within w", n ≤ k) gets
// the same answer from the latest k times as from all of them, and the
// latest time is the latest event's.
func TestRecentDecidesAsTheWholeList(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(7, 11))
	for run := range 300 {
		k := 1 + rng.IntN(12)
		w := time.Duration(1+rng.IntN(60)) * time.Second
		var r recent
		var all []time.Time
		now := t0
		for step := range 200 {
			// Bursts and lulls: gaps from 1 ms to twice the window.
			now = now.Add(time.Duration(rng.Int64N(int64(2*w/time.Millisecond))+1) * time.Millisecond / time.Duration(1+rng.IntN(40)))
			if rng.IntN(4) > 0 {
				r.add(now, k)
				all = append(all, now)
			}
			if rng.IntN(50) == 0 {
				r.reset()
				all = all[:0]
			}
			whole := 0
			for _, at := range all {
				if now.Sub(at) < w {
					whole++
				}
			}
			got := r.within(now, w)
			require.Equal(t, min(whole, k), got, "run %d step %d: k=%d w=%s", run, step, k, w)
			for n := 1; n <= k; n++ {
				require.Equal(t, whole >= n, got >= n, "run %d step %d: at least %d within %s", run, step, n, w)
			}
			last, ok := r.last()
			require.Equal(t, len(all) > 0, ok)
			if ok {
				require.Equal(t, all[len(all)-1], last, "run %d step %d", run, step)
			}
			require.LessOrEqual(t, len(r.buf), k, "memory stays at k times")
		}
	}
}

// TestRecentCases pins the ring's edges by hand.
func TestRecentCases(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	s := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	for _, tc := range []struct {
		name   string
		k      int
		events []int
		now    int
		w      time.Duration
		within int
		last   int
	}{
		{"empty", 3, nil, 10, time.Minute, 0, -1},
		{"one", 3, []int{5}, 10, time.Minute, 1, 5},
		{"full, not wrapped", 3, []int{1, 2, 3}, 10, time.Minute, 3, 3},
		{"wrapped once", 3, []int{1, 2, 3, 4}, 10, time.Minute, 3, 4},
		{"wrapped to the start", 3, []int{1, 2, 3, 4, 5, 6}, 10, time.Minute, 3, 6},
		{"window edge is outside", 3, []int{0, 30, 60}, 60, time.Minute, 2, 60},
		{"all expired", 3, []int{1, 2, 3}, 100, time.Minute, 0, 3},
		{"k of 1", 1, []int{1, 2, 9}, 10, 2 * time.Second, 1, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r recent
			for _, e := range tc.events {
				r.add(s(e), tc.k)
			}
			require.Equal(t, tc.within, r.within(s(tc.now), tc.w))
			last, ok := r.last()
			require.Equal(t, tc.last >= 0, ok)
			if ok {
				require.Equal(t, s(tc.last), last)
			}
		})
	}
}
