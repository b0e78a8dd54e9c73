package httpapi

import (
	"encoding/binary"
	"math"
	"strconv"
	"sync"
	"time"
	"unsafe"
)

// TrendPoint is one sample of a sensor's trend.
type TrendPoint struct {
	TS      time.Time `json:"ts"`
	Value   *float64  `json:"value"`
	Quality string    `json:"quality"`
}

// trends keeps the recent past of every sensor, so a chart opened now shows
// the last window and not an empty axis. It is a display aid; InfluxDB is
// the history.
//
// Memory is fixed up front, not grown with uptime: each sensor has a ring
// of at most `points` 9-byte, pointer-free points (allocated at its first
// reading), and readings closer together than window/points share one
// point. The shared point keeps the sample that moved furthest from the
// point before it (a spike stays on the chart), a missing value over a
// present one, and the worst quality of the bucket.
type trends struct {
	mu      sync.Mutex
	window  int64 // deciseconds
	points  int
	spacing int64 // deciseconds; samples in the same bucket share a point
	// ids numbers the sensors in the order they were first seen; list is
	// indexed by those numbers, so the gateway, which keeps each
	// sensor's number, finds its series without hashing two strings.
	ids map[trendKey]int32
	// list holds the series themselves, not pointers: a poll's 20
	// sensors are one run of memory, not 20 objects scattered over the
	// heap (a cache miss each, at one poll a second per device).
	list   []series
	slab   []trendPt // not yet handed out as rings
	quals  []string  // starts with the contract's good, uncertain, bad
	qualIx map[string]uint8
}

type trendKey struct{ device, sensor string }

// trendPt is 9 bytes, packed: the time in deciseconds since its series'
// epoch (uint32: 13 years before the series restarts), the value
// as float32 (seven significant digits are far more than a chart can
// show; NaN is no value, null) and an index into trends.quals. A struct
// of the three would be padded to 12 bytes: a quarter of the trends'
// memory, the largest part of the gateway's heap at 1 000 sensors.
type trendPt [TrendPointBytes]byte

// TrendPointBytes is the memory of one trend point, for budgeting them.
const TrendPointBytes = 9

func mkTrendPt(t uint32, v float32, q uint8) (p trendPt) {
	binary.LittleEndian.PutUint32(p[0:4], t)
	binary.LittleEndian.PutUint32(p[4:8], math.Float32bits(v))
	p[8] = q
	return p
}

func (p *trendPt) t() uint32  { return binary.LittleEndian.Uint32(p[0:4]) }
func (p *trendPt) v() float32 { return math.Float32frombits(binary.LittleEndian.Uint32(p[4:8])) }
func (p *trendPt) q() uint8   { return p[8] }

func (p *trendPt) setQ(q uint8) { p[8] = q }

type series struct {
	pts  []trendPt // ring; nil until the sensor's first reading
	head int       // oldest
	n    int
	// epoch is the unix ns of the series' tick 0, a window before its
	// first point. Each series has its own: the sensors of one control
	// room come from gateways with clocks of their own, and a series
	// restarts on its own clock's step (addLocked).
	epoch int64
}

// at is the series' i-th point, oldest first (0 <= i < len(pts)).
func (s *series) at(i int) *trendPt {
	i += s.head
	if i >= len(s.pts) { // no division: head and i are both within the ring
		i -= len(s.pts)
	}
	return &s.pts[i]
}

// advance drops the oldest point.
func (s *series) advance() {
	s.head++
	if s.head == len(s.pts) {
		s.head = 0
	}
	s.n--
}

const decisecond = int64(100 * time.Millisecond)

func newTrends(window time.Duration, points int) *trends {
	w := max(int64(window)/decisecond, 1)
	points = max(points, 1)
	return &trends{
		window: w, points: points, spacing: max(w/int64(points), 1),
		ids:   map[trendKey]int32{},
		quals: []string{"good", "uncertain", "bad"}, qualIx: map[string]uint8{},
	}
}

// id returns the sensor's number, registering it (without memory for
// points yet) if it is new.
func (t *trends) id(device, sensor string) int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.idLocked(device, sensor)
}

func (t *trends) idLocked(device, sensor string) int32 {
	k := trendKey{device, sensor}
	if i, ok := t.ids[k]; ok {
		return i
	}
	i := int32(len(t.list))
	t.ids[k] = i
	t.list = append(t.list, series{})
	return i
}

// slabBytes is the size of the blocks rings are carved from.
const slabBytes = 64 << 10

// ring returns a new sensor's ring of t.points points. Rings are carved
// from 64 KiB blocks: allocated one by one, each would be rounded up to
// the allocator's size class (at 1 000 sensors 131 points, 1 572 bytes, in
// a 1 792-byte class: 14 % of the budget for nothing); carved, at most
// part of one ring per block and the last block's unused rings are lost.
// Rings larger than half a block are allocated on their own.
func (t *trends) ring() []trendPt {
	n := slabBytes / (t.points * int(unsafe.Sizeof(trendPt{})))
	if n < 2 {
		return make([]trendPt, t.points)
	}
	if len(t.slab) < t.points {
		t.slab = make([]trendPt, n*t.points)
	}
	r := t.slab[:t.points:t.points]
	t.slab = t.slab[t.points:]
	return r
}

func (t *trends) qual(q string) uint8 {
	// The contract's three without hashing: nearly every reading.
	switch q {
	case "good":
		return 0
	case "uncertain":
		return 1
	case "bad":
		return 2
	}
	if i, ok := t.qualIx[q]; ok {
		return i
	}
	if len(t.quals) == 256 {
		// Far more distinct qualities than the contract has (good,
		// uncertain, bad): the table stays bounded and the point shows as
		// bad, never as better than it may be.
		return 2
	}
	i := uint8(len(t.quals))
	t.quals = append(t.quals, q)
	t.qualIx[q] = i
	return i
}

// severity orders qualities for merging: good < uncertain < anything else
// (quals starts with good, uncertain, bad).
func (t *trends) severity(q uint8) int {
	return int(min(q, 2))
}

func (t *trends) add(r Reading) {
	v := math.NaN()
	if r.Value != nil {
		v = *r.Value
	}
	t.addSample(r.Device, r.Sensor, r.TS, v, r.Quality)
}

// addSample records one reading; value NaN is "no value". It does not
// allocate after a sensor's first reading.
func (t *trends) addSample(device, sensor string, ts time.Time, value float64, quality string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ns, ok := trendTime(ts); ok {
		t.addLocked(t.idLocked(device, sensor), ns, value, quality)
	}
}

// TrendPoll records the readings of one poll, all stamped with the poll's
// time, under one hold of the trend buffer's lock (Server.TrendPoll): the
// gateway adds about 1 000 readings a second, and taking the lock and
// checking the time once per reading were most of what a trend point
// cost (docs/performance-history.md, item 65). Add each reading, then
// Done; nothing else may use the Server's trends in between.
type TrendPoll struct {
	t  *trends
	ns int64
	ok bool // ts is a time a trend can draw (trendTime)
}

// Add records a reading of the sensor numbered id (Server.TrendSeries);
// value NaN is no value. An unknown number is ignored.
func (p TrendPoll) Add(id int32, value float64, quality string) {
	if p.ok && id >= 0 && int(id) < len(p.t.list) {
		p.t.addLocked(id, p.ns, value, quality)
	}
}

// AddNamed is Add for a sensor without a number yet.
func (p TrendPoll) AddNamed(device, sensor string, value float64, quality string) {
	if p.ok {
		p.t.addLocked(p.t.idLocked(device, sensor), p.ns, value, quality)
	}
}

// Done ends the poll, releasing the lock.
func (p TrendPoll) Done() { p.t.mu.Unlock() }

func (t *trends) poll(ts time.Time) TrendPoll {
	t.mu.Lock()
	ns, ok := trendTime(ts)
	return TrendPoll{t: t, ns: ns, ok: ok}
}

// stepBack is how far a reading may be older than its series' newest point
// and still be an out-of-order straggler (ignored) rather than the sign that
// the clock stamping the readings was stepped back. A step back shorter than
// this freezes the series for less than a minute; a longer one restarts it.
// (The UI's page, app.js, uses the same minute.)
const stepBack = time.Minute

// A reading stamped outside these years is not drawn: before 1970 no clock
// stamps a reading (a box without a real-time clock boots at 1970), and
// outside 1678-2262 a time has no int64 of nanoseconds, so the arithmetic
// below would wrap.
const minTrendYear, maxTrendYear = 1970, 2261

// trendTime is ts in unix ns, and whether a trend draws it (the years
// above).
func trendTime(ts time.Time) (int64, bool) {
	if y := ts.Year(); y < minTrendYear || y > maxTrendYear {
		return 0, false
	}
	return ts.UnixNano(), true
}

// addLocked adds a reading at ns (from trendTime) to series id.
func (t *trends) addLocked(id int32, ns int64, value float64, quality string) {
	sr := &t.list[id]
	if sr.pts == nil {
		sr.pts = t.ring()
	}
	if sr.n > 0 {
		last := sr.epoch + int64(sr.at(sr.n-1).t())*decisecond
		if ns < last && ns >= last-int64(stepBack) {
			return // an out-of-order republish adds nothing to a chart
		}
		if ns < last || (ns-sr.epoch)/decisecond > math.MaxUint32 {
			// The clock stamping the readings (the gateway's; in a
			// control room, the site's) was stepped back, e.g. by NTP
			// correcting a clock that ran ahead, or thirteen years: the
			// series starts afresh at the new time rather than freeze
			// until the clock passes its old points again.
			sr.head, sr.n = 0, 0
		}
	}
	if sr.n == 0 {
		// On a whole decisecond, so that points read as times rounded to
		// 0.1 s; a window before the first point, so that the chart's
		// window fits.
		sr.epoch = ns - t.window*decisecond
		sr.epoch -= sr.epoch % decisecond
	}
	d := (ns - sr.epoch) / decisecond
	v := float32(value)
	if math.IsInf(float64(v), 0) {
		// Beyond float32 (a float64 register read in the wrong order):
		// JSON has no Inf, and one such point would fail the whole trend.
		v = float32(math.Copysign(math.MaxFloat32, value))
	}
	p := mkTrendPt(uint32(d), v, t.qual(quality))
	if sr.n > 0 {
		last := sr.at(sr.n - 1)
		if int64(p.t())/t.spacing == int64(last.t())/t.spacing {
			t.merge(sr, last, p)
			return
		}
	}
	if sr.n == len(sr.pts) {
		sr.advance()
	}
	*sr.at(sr.n) = p
	sr.n++
	for sr.n > 1 && int64(p.t())-int64(sr.at(0).t()) > t.window {
		sr.advance()
	}
}

// merge folds p into last, the point of the same bucket.
func (t *trends) merge(sr *series, last *trendPt, p trendPt) {
	q := last.q()
	if t.severity(p.q()) > t.severity(q) {
		q = p.q()
	}
	lastV, pV := last.v(), p.v()
	lastNaN, pNaN := math.IsNaN(float64(lastV)), math.IsNaN(float64(pV))
	keep := false
	switch {
	case lastNaN:
		keep = true // a gap stays a gap
	case pNaN:
	case sr.n > 1 && !math.IsNaN(float64(sr.at(sr.n-2).v())):
		ref := sr.at(sr.n - 2).v()
		keep = abs32(lastV-ref) >= abs32(pV-ref)
	default:
		keep = true
	}
	if !keep {
		*last = p
	}
	last.setQ(q)
}

func abs32(f float32) float32 {
	if f < 0 {
		return -f
	}
	return f
}

func (t *trends) get(device, sensor string) []TrendPoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.ids[trendKey{device, sensor}]
	if !ok {
		return []TrendPoint{}
	}
	sr := &t.list[i]
	out := make([]TrendPoint, 0, sr.n)
	var buf [32]byte
	for i := range sr.n {
		p := sr.at(i)
		tp := TrendPoint{TS: time.Unix(0, sr.epoch+int64(p.t())*decisecond).UTC(), Quality: t.quals[p.q()]}
		if pv := p.v(); !math.IsNaN(float64(pv)) {
			// The float32's shortest decimal form (1.2, not
			// 1.2000000476837158), as the reading was published.
			v, _ := strconv.ParseFloat(string(strconv.AppendFloat(buf[:0], float64(pv), 'g', -1, 32)), 64)
			tp.Value = &v
		}
		out = append(out, tp)
	}
	return out
}
