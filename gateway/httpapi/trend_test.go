package httpapi

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// A finite float64 reading beyond float32's range (a float64 register read
// with the wrong byte order) must not break the sensor's trend.
func TestTrendHugeValue(t *testing.T) {
	base := time.Now().Add(-time.Minute)
	e := startServer(t, func(o *Options) { o.TrendPoints, o.TrendWindow = 30, 30*time.Second })
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Value: fp(0.5), Unit: "%vol", Quality: "good", TS: base})
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Value: fp(1e200), Unit: "%vol", Quality: "uncertain", TS: base.Add(5 * time.Second)})
	r := e.do(t, req{path: "/api/v1/trends/face3-gas/ch4"})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	var tr struct{ Points []TrendPoint }
	require.NoError(t, json.Unmarshal(r.body, &tr))
	require.Len(t, tr.Points, 2)
	require.Greater(t, *tr.Points[1].Value, 1e38, "clamped to float32's largest, not lost")
}

// Clock stepped back (NTP correcting a clock that ran ahead): the series
// starts afresh at the new time, rather than freeze for as long as the step
// (it did: an RTC a year ahead froze the chart for a year) or draw two
// clocks' points as one line. A straggler up to stepBack older than the
// newest point is ignored, and the other series keep theirs.
func TestTrendClockStepBack(t *testing.T) {
	for _, step := range []time.Duration{time.Hour, 2 * time.Minute, 365 * 24 * time.Hour} {
		t.Run(step.String(), func(t *testing.T) {
			tr := newTrends(15*time.Minute, 100)
			base := time.Now().Truncate(time.Second)
			for i := range 10 {
				tr.addSample("d", "s", base.Add(time.Duration(i)*10*time.Second), float64(i), "good")
				tr.addSample("d", "other", base.Add(time.Duration(i)*10*time.Second), float64(i), "good")
			}
			tr.addSample("d", "s", base.Add(90*time.Second-time.Second), 50, "good") // stragglers
			tr.addSample("d", "s", base.Add(90*time.Second-stepBack), 51, "good")
			pts := tr.get("d", "s")
			require.Len(t, pts, 10)
			require.Equal(t, 9.0, *pts[9].Value, "a straggler up to stepBack older changes nothing")

			back := base.Add(90*time.Second - step)
			for i := range 10 {
				tr.addSample("d", "s", back.Add(time.Duration(i)*10*time.Second), 100+float64(i), "good")
			}
			pts = tr.get("d", "s")
			require.Len(t, pts, 10, "only the points of the new clock")
			for i, p := range pts {
				require.Equal(t, 100+float64(i), *p.Value)
				require.True(t, p.TS.Equal(back.Add(time.Duration(i)*10*time.Second)), "point %d at %v", i, p.TS)
			}
			require.Len(t, tr.get("d", "other"), 10, "another sensor's series is its own")
			require.Equal(t, 9.0, *tr.get("d", "other")[9].Value)
		})
	}
}

// Readings stamped before 1970 (a zero time, a garbled stamp) or past 2261
// are not drawn and do not touch the series: their nanoseconds would wrap
// the trend's arithmetic.
func TestTrendIgnoresImpossibleTimes(t *testing.T) {
	tr := newTrends(15*time.Minute, 100)
	now := time.Now().Truncate(time.Second)
	for i := range 3 {
		tr.addSample("d", "s", now.Add(time.Duration(i)*10*time.Second), float64(i), "good")
	}
	for _, ts := range []time.Time{{}, time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(2262, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)} {
		tr.addSample("d", "s", ts, 99, "good")
	}
	tr.addSample("d", "s", now.Add(30*time.Second), 3, "good")
	pts := tr.get("d", "s")
	require.Len(t, pts, 4)
	for i, p := range pts {
		require.Equal(t, float64(i), *p.Value)
		require.True(t, p.TS.Equal(now.Add(time.Duration(i)*10*time.Second)), "point %d at %v", i, p.TS)
	}
	// A box without a real-time clock, at 1970 until NTP: drawn.
	tr.addSample("d", "boot", time.Unix(42, 0), 1, "good")
	require.Len(t, tr.get("d", "boot"), 1)
}

// Sensors of two gateways whose clocks differ by more than the window (a
// control room): each series is drawn on its own clock; before, the
// second's readings fell before the first's epoch and were all dropped.
func TestTrendSeriesOnTheirOwnClocks(t *testing.T) {
	tr := newTrends(15*time.Minute, 100)
	now := time.Now().Truncate(time.Second)
	behind := now.Add(-2 * time.Hour)
	for i := range 5 {
		tr.addSample("a", "s", now.Add(time.Duration(i)*10*time.Second), 1, "good")
		tr.addSample("b", "s", behind.Add(time.Duration(i)*10*time.Second), 2, "good")
	}
	require.Len(t, tr.get("a", "s"), 5)
	pts := tr.get("b", "s")
	require.Len(t, pts, 5)
	require.True(t, pts[4].TS.Equal(behind.Add(40*time.Second)), "%v", pts[4].TS)
}

// Rings carved from shared blocks: every sensor keeps its own points when
// all rings have wrapped around many times, and the rings of a 1 000-sensor
// site take the budget without the allocator's size-class rounding.
func TestTrendRingsCarvedApart(t *testing.T) {
	const sensors, points = 1000, 131
	tr := newTrends(15*time.Minute, points)
	base := time.Now().Add(-time.Hour)
	step := 15 * time.Minute / points
	for i := range 3 * points {
		for s := range sensors {
			tr.addSample("d", strconv.Itoa(s), base.Add(time.Duration(i)*step), float64(s), "good")
		}
	}
	for s := range sensors {
		pts := tr.get("d", strconv.Itoa(s))
		require.NotEmpty(t, pts)
		require.LessOrEqual(t, len(pts), points)
		for _, p := range pts {
			require.NotNil(t, p.Value)
			require.Equal(t, float64(s), *p.Value, "sensor %d shows another sensor's point", s)
		}
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	tr2 := newTrends(15*time.Minute, points)
	for s := range sensors {
		tr2.addSample("d", strconv.Itoa(s), base, 1, "good")
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	rings := sensors * points * TrendPointBytes
	t.Logf("trends of %d sensors × %d points: %d bytes", sensors, points, ms.HeapAlloc-before)
	// Rings one by one took 1 792 bytes each (1 792 000); carved, the rings
	// take their 1 179 000 bytes (9-byte points; 1 572 000 as padded
	// 12-byte structs) plus at most one unused block, and the map and
	// series headers about 150 KB more.
	require.Less(t, int(ms.HeapAlloc-before), rings+slabBytes+200_000, "trend memory for %d sensors", sensors)
	runtime.KeepAlive(tr2)
}

// A packed point gives back what was put in it: every bit of the time,
// the float32's bits (NaN, the signed zero, the extremes) and the quality.
func TestTrendPointPacking(t *testing.T) {
	require.Equal(t, uintptr(TrendPointBytes), unsafe.Sizeof(trendPt{}), "a slice of points is not padded")
	for _, c := range []struct {
		t uint32
		v float32
		q uint8
	}{
		{0, 0, 0}, {1, -1.5, 1}, {math.MaxUint32, math.MaxFloat32, 255},
		{0x01020304, -math.MaxFloat32, 2}, {7, math.SmallestNonzeroFloat32, 3},
		{9, float32(math.Copysign(0, -1)), 0}, {11, float32(math.NaN()), 2},
	} {
		p := mkTrendPt(c.t, c.v, c.q)
		require.Equal(t, c.t, p.t())
		require.Equal(t, math.Float32bits(c.v), math.Float32bits(p.v()), "value %v", c.v)
		require.Equal(t, c.q, p.q())
	}
}

// A sensor's number (TrendSeries) reaches the same trend as its names:
// readings added by number and by name interleave in one series, qualities
// other than the contract's three still merge as worst, an unknown number
// is ignored, and the numbers survive the trend's restart after 13 years.
func TestTrendByNumber(t *testing.T) {
	tr := newTrends(15*time.Minute, 100)
	a, b := tr.id("d", "s1"), tr.id("d", "s2")
	require.NotEqual(t, a, b)
	require.Equal(t, a, tr.id("d", "s1"), "a sensor keeps its number")
	base := time.Now()
	addAt(tr, a, base, 1, "good")
	tr.addSample("d", "s1", base.Add(10*time.Second), 2, "good")
	addAt(tr, a, base.Add(20*time.Second), 3, "uncertain")
	addAt(tr, b, base, 7, "good")
	addAt(tr, -1, base, 99, "good")
	addAt(tr, b+1, base, 99, "good")
	pts := tr.get("d", "s1")
	require.Len(t, pts, 3)
	for i, want := range []float64{1, 2, 3} {
		require.Equal(t, want, *pts[i].Value)
	}
	require.Equal(t, "uncertain", pts[2].Quality)
	require.Len(t, tr.get("d", "s2"), 1)
	require.Empty(t, tr.get("d", "s3"), "no sensor registered by an unknown number")

	// Two readings in one bucket (9 s apart, 100 points over 15 min): the
	// worse quality wins, an unknown one counting as worst.
	addAt(tr, b, base.Add(time.Second), 7, "stale")
	pts = tr.get("d", "s2")
	require.Len(t, pts, 1)
	require.Equal(t, "stale", pts[0].Quality)
	addAt(tr, b, base.Add(2*time.Second), 7, "uncertain")
	require.Equal(t, "stale", tr.get("d", "s2")[0].Quality)

	// More distinct qualities than the table holds: the rest show as bad,
	// never better.
	c := tr.id("d", "q")
	for i := range 300 {
		addAt(tr, c, base.Add(time.Duration(i)*10*time.Second), 1, "q"+strconv.Itoa(i))
	}
	pts = tr.get("d", "q")
	require.Equal(t, "bad", pts[len(pts)-1].Quality)

	// Thirteen years on: each series restarts at its next reading,
	// numbers and rings kept.
	later := base.Add(14 * 365 * 24 * time.Hour)
	addAt(tr, a, later, 5, "good")
	pts = tr.get("d", "s1")
	require.Len(t, pts, 1)
	require.Equal(t, 5.0, *pts[0].Value)
	require.True(t, pts[0].TS.Equal(later.Truncate(100*time.Millisecond)), "%v", pts[0].TS)
	require.Len(t, tr.get("d", "s2"), 1, "s2 keeps its last points until its next reading")
	addAt(tr, b, later, 8, "good")
	pts = tr.get("d", "s2")
	require.Len(t, pts, 1)
	require.Equal(t, 8.0, *pts[0].Value)
	require.Equal(t, a, tr.id("d", "s1"))
}

// addAt adds one reading to series id through a poll of its own.
func addAt(tr *trends, id int32, ts time.Time, value float64, quality string) {
	p := tr.poll(ts)
	p.Add(id, value, quality)
	p.Done()
}

// A poll's readings added under one lock (TrendPoll, as the gateway adds
// them) make the same trends as the same readings added one by one by
// name: numbered and named sensors, a sensor first seen in the poll, no
// value, an unknown number, and a poll stamped at a time no chart draws.
func TestTrendPollIsReadingByReading(t *testing.T) {
	byPoll, byOne := newTrends(15*time.Minute, 50), newTrends(15*time.Minute, 50)
	names := []string{"ch4", "o2", "h2s", "co"}
	for _, n := range names[:3] { // co is first seen in a poll
		require.Equal(t, byPoll.id("d", n), byOne.id("d", n))
	}
	rng := rand.New(rand.NewPCG(7, 7))
	base := time.Now()
	for i := range 400 {
		ts := base.Add(time.Duration(i) * 3 * time.Second)
		if i%97 == 50 {
			ts = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC) // no chart draws it
		}
		p := byPoll.poll(ts)
		for j, n := range names {
			v := float64(rng.IntN(1000)) / 10
			if rng.IntN(20) == 0 {
				v = math.NaN()
			}
			q := []string{"good", "good", "uncertain", "bad"}[rng.IntN(4)]
			byOne.addSample("d", n, ts, v, q)
			if j < 3 && i%2 == 0 {
				p.Add(int32(j), v, q)
			} else {
				p.AddNamed("d", n, v, q)
			}
		}
		p.Add(-1, 1, "good")
		p.Add(99, 1, "good")
		p.Done()
	}
	for _, n := range names {
		want := byOne.get("d", n)
		require.Greater(t, len(want), 10, n)
		require.Equal(t, want, byPoll.get("d", n), n)
	}
	require.Len(t, byPoll.list, len(names), "an unknown number registers nothing")
}
