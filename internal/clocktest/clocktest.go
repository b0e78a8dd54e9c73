// Package clocktest makes the times a process sees after its system clock
// was stepped (NTP at an edge box's boot, an operator's date command),
// which a test cannot do to the real clock: the wall reading moved, the
// monotonic reading not. Code that must stay right across such a step is
// tested with them.
//
// It imports nothing of the project.
package clocktest

import (
	"time"
	"unsafe"
)

// WallStep returns t (which must carry a monotonic reading) with its wall
// clock moved by s (whole seconds; a fraction is dropped) and its
// monotonic reading unchanged: what time.Now returns after the system
// clock was stepped by s. It relies on the
// layout of time.Time (a wall word holding whole seconds since 1885 in
// bits 30–62 when bit 63, "has monotonic", is set); TestWallStep checks
// the result against the time package's own arithmetic.
func WallStep(t time.Time, s time.Duration) time.Time {
	type tm struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	p := (*tm)(unsafe.Pointer(&t))
	if p.wall&(1<<63) == 0 {
		panic("clocktest: WallStep of a time without a monotonic reading")
	}
	p.wall += uint64(int64(s/time.Second) << 30)
	return t
}
