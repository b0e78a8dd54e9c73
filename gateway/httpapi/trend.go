package httpapi

import (
	"math"
	"sync"
	"time"
)

// TrendPoint is one sample of a sensor's trend.
type TrendPoint struct {
	TS      time.Time `json:"ts"`
	Value   *float64  `json:"value"`
	Quality string    `json:"quality"`
}

// trends keeps the last window of published readings per sensor, so a
// chart opened now shows the recent past and not an empty axis. It is a
// display aid; InfluxDB is the history.
//
// Points are stored without pointers (24 bytes each): a gateway keeps
// hundreds of points for each of thousands of sensors, and pointers there
// would be millions of objects for the garbage collector to scan.
type trends struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	series map[trendKey]*series
	quals  []string
	qualIx map[string]uint8
}

type trendKey struct{ device, sensor string }

type trendPt struct {
	ns    int64   // unix nanoseconds
	value float64 // NaN: no value (null)
	qual  uint8   // index into trends.quals
}

type series struct {
	pts   []trendPt
	start int
}

func newTrends(window time.Duration, maxPoints int) *trends {
	return &trends{window: window, max: maxPoints, series: map[trendKey]*series{}, qualIx: map[string]uint8{}}
}

func (t *trends) qual(q string) uint8 {
	if i, ok := t.qualIx[q]; ok {
		return i
	}
	if len(t.quals) == 256 {
		// Far more distinct qualities than the contract has (good,
		// uncertain, bad): the table stays bounded and the point shows as
		// the first quality seen.
		return 0
	}
	i := uint8(len(t.quals))
	t.quals = append(t.quals, q)
	t.qualIx[q] = i
	return i
}

func (t *trends) add(r Reading) {
	k := trendKey{r.Device, r.Sensor}
	t.mu.Lock()
	defer t.mu.Unlock()
	sr := t.series[k]
	if sr == nil {
		sr = &series{}
		t.series[k] = sr
	}
	ns := r.TS.UnixNano()
	if n := len(sr.pts); n > sr.start && ns <= sr.pts[n-1].ns {
		return // a duplicate or out-of-order republish adds nothing to a chart
	}
	p := trendPt{ns: ns, value: math.NaN(), qual: t.qual(r.Quality)}
	if r.Value != nil {
		p.value = *r.Value
	}
	sr.pts = append(sr.pts, p)
	for sr.start < len(sr.pts) && (len(sr.pts)-sr.start > t.max || time.Duration(ns-sr.pts[sr.start].ns) > t.window) {
		sr.start++
	}
	// Compact only when half the slice is dead, so adding stays O(1)
	// amortised.
	if sr.start > len(sr.pts)/2 {
		sr.pts = append(sr.pts[:0:0], sr.pts[sr.start:]...)
		sr.start = 0
	}
}

func (t *trends) get(device, sensor string) []TrendPoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	sr := t.series[trendKey{device, sensor}]
	if sr == nil {
		return []TrendPoint{}
	}
	out := make([]TrendPoint, 0, len(sr.pts)-sr.start)
	for _, p := range sr.pts[sr.start:] {
		tp := TrendPoint{TS: time.Unix(0, p.ns).UTC(), Quality: t.quals[p.qual]}
		if !math.IsNaN(p.value) {
			v := p.value
			tp.Value = &v
		}
		out = append(out, tp)
	}
	return out
}
