package modbus

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Requests that start within sampleFresh of the process's last CPU
// reading share it, with the time it was read at; later ones, or one at a
// time before it (a clock read apart), read the CPU again. The times are
// an hour on, so that the pollers of other tests do not share them.
func TestSaturationSharesARecentSample(t *testing.T) {
	t0 := time.Now().Add(time.Hour)
	var a, b, c, d saturation
	a.startAt(at(t0))
	require.True(t, a.ok)
	require.Equal(t, t0, a.wall)
	b.startAt(at(t0.Add(sampleFresh / 2)))
	require.Equal(t, a, b, "a request within sampleFresh did not share the reading")
	c.startAt(at(t0.Add(2 * sampleFresh)))
	require.Equal(t, t0.Add(2*sampleFresh), c.wall, "a request past sampleFresh shared an old reading")
	require.GreaterOrEqual(t, c.cpu, a.cpu)
	d.startAt(at(t0.Add(sampleFresh)))
	require.Equal(t, t0.Add(sampleFresh), d.wall, "a request before the reading shared it")
}

// at is a clock stopped at t.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }

// BenchmarkSaturationStart: a request's start, with the shared reading
// (the pollers of one wake-up) and with a reading of its own each.
func BenchmarkSaturationStart(b *testing.B) {
	b.Run("shared", func(b *testing.B) {
		var s saturation
		now := time.Now()
		clock := at(now)
		for b.Loop() {
			s.startAt(clock)
		}
	})
	b.Run("own", func(b *testing.B) {
		var s saturation
		now := time.Now()
		clock := func() time.Time { now = now.Add(2 * sampleFresh); return now }
		for b.Loop() {
			s.startAt(clock)
		}
	})
}
