package clocktest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWallStep(t *testing.T) {
	t0 := time.Now()
	t1 := WallStep(t0, time.Hour)
	require.Equal(t, time.Duration(0), t1.Sub(t0), "the monotonic reading is unchanged")
	require.Equal(t, time.Hour, t1.Round(0).Sub(t0.Round(0)), "the wall reading moved")
	t2 := WallStep(t0, -90*time.Minute)
	require.Equal(t, -90*time.Minute, t2.Round(0).Sub(t0.Round(0)))
	require.Panics(t, func() { WallStep(t0.Round(0), time.Hour) })
}
