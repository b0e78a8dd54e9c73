package simulator

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/canary-gw/canary/configs"
)

// physics is the undisturbed behaviour of one sensor: a pure function of
// simulated time, so that a value does not depend on when or how often it
// is read.
type physics struct {
	base, noise, drift   float64
	ripple               float64
	ripplePeriod         time.Duration
	excursion            float64
	min, max             float64
	seedA, seedB         uint64     // the sensor's own PCG stream
	driftPeriod          [3]float64 // seconds
	driftPhase           [3]float64
	excursionWindow      time.Duration
	excursionProbability float64
}

// preset is the physics of a sensor kind, in the kind's default unit.
func preset(kind, unit string) physics {
	p := physics{min: math.Inf(-1), max: math.Inf(1), excursionWindow: 30 * time.Minute, excursionProbability: 0.3}
	switch kind {
	case "methane": // %vol: mine background, well below the 1 %vol warning
		p.base, p.noise, p.drift, p.min, p.max = 0.05, 0.003, 0.02, 0, 100
	case "combustible": // %LEL
		p.base, p.noise, p.drift, p.min, p.max = 0.5, 0.2, 0.5, 0, 100
	case "oxygen": // %vol
		p.base, p.noise, p.drift, p.min, p.max = 20.9, 0.02, 0.05, 0, 25
	case "co": // ppm
		p.base, p.noise, p.drift, p.excursion, p.min, p.max = 1, 0.3, 0.5, 8, 0, 1000
	case "h2s": // ppm
		p.base, p.noise, p.drift, p.excursion, p.min, p.max = 0.2, 0.05, 0.1, 3, 0, 200
	case "toxic": // ppm
		p.base, p.noise, p.drift, p.excursion, p.min, p.max = 0.2, 0.05, 0.1, 2, 0, 1000
	case "pressure": // MPa: a transmission line with a reciprocating pump
		p.base, p.noise, p.drift, p.ripple, p.ripplePeriod, p.min = 4.0, 0.004, 0.05, 0.03, 2700*time.Millisecond, 0
		f := pressureUnitFactor(unit)
		p.base, p.noise, p.drift, p.ripple = p.base*f, p.noise*f, p.drift*f, p.ripple*f
	case "temperature": // °C
		p.base, p.noise, p.drift = 22, 0.05, 1.5
	case "current": // mA: a 4–20 mA loop in its live band (NAMUR NE43 3.8–20.5)
		p.base, p.noise, p.drift, p.min, p.max = 8, 0.01, 1, 3.8, 20.5
	default: // generic: a steady point (a relay, a status word)
		p.base = 0
	}
	return p
}

func pressureUnitFactor(unit string) float64 {
	switch strings.ToLower(unit) {
	case "bar":
		return 10
	case "kpa":
		return 1000
	case "psi":
		return 145.0377
	}
	return 1
}

// newPhysics builds a sensor's physics from its kind, the overrides and the
// seed. The sensor's random stream is keyed by seed, device and sensor id.
func newPhysics(seed int64, device string, s configs.Sensor, o *configs.SimSensor) physics {
	p := preset(s.Kind, s.Unit)
	if o != nil {
		set := func(dst *float64, v *float64) {
			if v != nil {
				*dst = *v
			}
		}
		set(&p.base, o.Base)
		set(&p.noise, o.Noise)
		set(&p.drift, o.Drift)
		set(&p.ripple, o.Ripple)
		set(&p.excursion, o.Excursion)
		set(&p.min, o.Min)
		set(&p.max, o.Max)
		if o.RipplePeriod != nil && *o.RipplePeriod > 0 {
			p.ripplePeriod = *o.RipplePeriod
		}
	}
	if p.ripple != 0 && p.ripplePeriod <= 0 {
		p.ripplePeriod = 2 * time.Second
	}
	h := fnv.New64a()
	h.Write([]byte(device))
	h.Write([]byte{0})
	h.Write([]byte(s.ID))
	p.seedA, p.seedB = uint64(seed), h.Sum64()
	r := rand.New(rand.NewPCG(p.seedA, p.seedB))
	for i := range p.driftPeriod {
		// Slow wander: three incommensurate sinusoids, 20 min to 3 h.
		p.driftPeriod[i] = (20 + r.Float64()*160) * 60
		p.driftPhase[i] = r.Float64() * 2 * math.Pi
	}
	return p
}

// at is the physics value at simulated time t.
func (p *physics) at(t time.Duration) float64 {
	sec := t.Seconds()
	v := p.base
	if p.drift != 0 {
		var d float64
		for i := range p.driftPeriod {
			d += math.Sin(2*math.Pi*sec/p.driftPeriod[i] + p.driftPhase[i])
		}
		v += p.drift * d / 3
	}
	if p.noise != 0 {
		// One noise draw per simulated second, from a stream keyed by the
		// second: reproducible whatever the read pattern.
		step := uint64(t / time.Second)
		r := rand.New(rand.NewPCG(p.seedA^0x9e3779b97f4a7c15, p.seedB+step))
		v += p.noise * r.NormFloat64()
	}
	if p.ripple != 0 {
		ph := 2 * math.Pi * sec / p.ripplePeriod.Seconds()
		v += p.ripple * (math.Sin(ph) + 0.3*math.Sin(2*ph+1))
	}
	if p.excursion != 0 && t >= 0 {
		w := t / p.excursionWindow
		v += p.excursionIn(int64(w), t) + p.excursionIn(int64(w)-1, t)
	}
	return clamp(v, p.min, p.max)
}

// excursionIn is the contribution of the excursion (if any) that starts in
// window k: a smooth bump of 1–4 minutes.
func (p *physics) excursionIn(k int64, t time.Duration) float64 {
	if k < 0 {
		return 0
	}
	r := rand.New(rand.NewPCG(p.seedA^0x5851f42d4c957f2d, p.seedB+uint64(k)))
	if r.Float64() >= p.excursionProbability {
		return 0
	}
	start := time.Duration(k)*p.excursionWindow + time.Duration(r.Float64()*float64(p.excursionWindow))
	dur := time.Minute + time.Duration(r.Float64()*float64(3*time.Minute))
	amp := p.excursion * (0.5 + 0.5*r.Float64())
	if t < start || t > start+dur {
		return 0
	}
	s := math.Sin(math.Pi * float64(t-start) / float64(dur))
	return amp * s * s
}

func clamp(v, lo, hi float64) float64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}
