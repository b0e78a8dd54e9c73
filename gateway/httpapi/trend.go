package httpapi

import (
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
type trends struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	series map[string]*series
}

type series struct {
	pts   []TrendPoint
	start int
}

func newTrends(window time.Duration, maxPoints int) *trends {
	return &trends{window: window, max: maxPoints, series: map[string]*series{}}
}

func trendKey(device, sensor string) string { return device + "\x00" + sensor }

func (t *trends) add(r Reading) {
	k := trendKey(r.Device, r.Sensor)
	t.mu.Lock()
	defer t.mu.Unlock()
	sr := t.series[k]
	if sr == nil {
		sr = &series{}
		t.series[k] = sr
	}
	if n := len(sr.pts); n > sr.start && !r.TS.After(sr.pts[n-1].TS) {
		return // a duplicate or out-of-order republish adds nothing to a chart
	}
	sr.pts = append(sr.pts, TrendPoint{TS: r.TS, Value: r.Value, Quality: r.Quality})
	for sr.start < len(sr.pts) && (len(sr.pts)-sr.start > t.max || r.TS.Sub(sr.pts[sr.start].TS) > t.window) {
		sr.pts[sr.start] = TrendPoint{}
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
	sr := t.series[trendKey(device, sensor)]
	if sr == nil {
		return []TrendPoint{}
	}
	out := make([]TrendPoint, len(sr.pts)-sr.start)
	copy(out, sr.pts[sr.start:])
	return out
}
