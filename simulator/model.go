package simulator

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
)

// Device states, as the control API names them.
const (
	StateOnline  = "online"
	StateOffline = "offline"
	StateFault   = "fault"
)

// faultBandMA is what a 4–20 mA transmitter reports in its fault state:
// inside NAMUR NE43's sub-3.6 mA failure band (below faultBandLimitMA).
const (
	faultBandMA      = 3.0
	faultBandLimitMA = 3.6
)

// device is one simulated Modbus device (one unit id behind an endpoint).
type device struct {
	cfg      configs.Device
	id       string
	unit     uint8
	endpoint *endpoint
	sensors  []*sensor
	byID     map[string]*sensor
	tables   map[string]*table

	// Guarded by Simulator.mu.
	state      string
	faults     configs.SimFaults
	rng        *rand.Rand // fault draws: deterministic in request order
	effects    []*effect
	allCurrent bool
	// warnings are register overlaps the gateway's check warns about too.
	warnings []string
}

// sensor is one simulated point.
type sensor struct {
	cfg   configs.Sensor
	dev   *device
	shape pointShape
	phys  physics

	// band is the sensor's registers in the 4–20 mA fault band, and
	// bandValue what they decode to; bandOK is false when the encoding
	// cannot carry a fault-band value (a uint16 with offset 4 saturates at
	// 4.0 mA, a healthy reading), and the fault then answers exception 04.
	band      [4]uint16
	bandValue float64
	bandOK    bool

	// Guarded by Simulator.mu.
	held    *float64 // held through the control API
	written []uint16 // registers (the whole register for a bit or byte; a coil's {0|1}) written by a Modbus client
	// stamp orders holds and writes (0: neither): where sensors share a
	// register, the most recent one wins on the bits they share.
	stamp   uint64
	effects []*effect
}

// table is the sensors of one Modbus table of a device, in config order,
// with the register block they span: requests outside it answer
// exception 02 (illegal data address).
type table struct {
	points []*sensor
	lo, hi int // inclusive block; lo > hi when empty
	// shared is true when sensors share registers (bits or bytes of one
	// register, a word and its bits, one register read as two types):
	// what is served then depends on the order they are laid out in.
	shared bool
}

func (t *table) covers(addr, qty int) bool {
	return len(t.points) > 0 && addr >= t.lo && addr+qty-1 <= t.hi
}

func newDevice(cfg configs.Device, sim *configs.Simulation, seed int64) (*device, error) {
	d := &device{cfg: cfg, id: cfg.ID, byID: map[string]*sensor{}, tables: map[string]*table{}, state: StateOnline}
	unit := 1
	if cfg.Unit != nil {
		unit = *cfg.Unit
	}
	if unit < 0 || unit > 255 {
		return nil, fmt.Errorf("device %s: unit %d out of range 0..255", cfg.ID, unit)
	}
	d.unit = uint8(unit)
	overrides := map[string]*configs.SimSensor{}
	if sim != nil {
		for i := range sim.Sensors {
			if sim.Sensors[i].Device == cfg.ID {
				overrides[sim.Sensors[i].Sensor] = &sim.Sensors[i]
			}
		}
		for _, sd := range sim.Devices {
			if sd.Device != cfg.ID {
				continue
			}
			if sd.State != "" {
				if err := checkState(sd.State); err != nil {
					return nil, fmt.Errorf("simulation device %s: %w", cfg.ID, err)
				}
				d.state = sd.State
			}
			if err := checkFaults(sd.Faults); err != nil {
				return nil, fmt.Errorf("simulation device %s: %w", cfg.ID, err)
			}
			d.faults = sd.Faults
		}
	}
	d.allCurrent = len(cfg.Sensors) > 0
	for _, sc := range cfg.Sensors {
		if _, dup := d.byID[sc.ID]; dup {
			return nil, fmt.Errorf("device %s: sensor %s defined twice", cfg.ID, sc.ID)
		}
		shape, err := shapeOf(sc)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", cfg.ID, err)
		}
		sn := &sensor{cfg: sc, dev: d, shape: shape, phys: newPhysics(seed, cfg.ID, sc, overrides[sc.ID])}
		if sc.Kind == "current" {
			sn.setBand()
		}
		d.sensors = append(d.sensors, sn)
		d.byID[sc.ID] = sn
		if sc.Kind != "current" {
			d.allCurrent = false
		}
		t := d.tables[shape.table]
		if t == nil {
			t = &table{lo: 1 << 20, hi: -1}
			d.tables[shape.table] = t
		}
		t.points = append(t.points, sn)
		t.lo = min(t.lo, int(shape.addr))
		t.hi = max(t.hi, int(shape.addr)+shape.width-1)
	}
	for _, t := range d.tables {
		t.shared = sharesRegisters(t.points)
	}
	d.warnings = overlapWarnings(d.sensors)
	for _, o := range overrides {
		if d.byID[o.Sensor] == nil {
			return nil, fmt.Errorf("simulation sensor %s/%s: no such sensor", o.Device, o.Sensor)
		}
	}
	d.rng = rand.New(rand.NewPCG(uint64(seed), deviceKey(d.id)))
	return d, nil
}

// deviceKey is FNV-1a of a device id: the device's own fault stream.
func deviceKey(id string) uint64 {
	var h uint64 = 14695981039346656037
	for _, c := range []byte(id) {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func checkState(s string) error {
	switch s {
	case StateOnline, StateOffline, StateFault:
		return nil
	}
	return fmt.Errorf("state %q: want online, offline or fault", s)
}

func checkFaults(f configs.SimFaults) error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"drop", f.Drop}, {"busy", f.Busy}, {"garbage", f.Garbage}} {
		if p.v < 0 || p.v > 1 {
			return fmt.Errorf("faults.%s %v: want a share between 0 and 1", p.name, p.v)
		}
	}
	if f.Latency < 0 {
		return fmt.Errorf("faults.latency %v: must not be negative", f.Latency)
	}
	switch f.Signal {
	case "", "auto", "band", "exception":
	default:
		return fmt.Errorf("faults.signal %q: want auto, band or exception", f.Signal)
	}
	return nil
}

// link is where an endpoint is served, parsed from a device url.
type link struct {
	scheme string // tcp | rtu | rtuovertcp
	target string // host:port, or a serial device path
}

func parseLink(raw string) (link, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return link{}, fmt.Errorf("url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "tcp", "rtuovertcp":
		if u.Host == "" {
			return link{}, fmt.Errorf("url %q: want %s://host:port", raw, u.Scheme)
		}
		return link{scheme: u.Scheme, target: u.Host}, nil
	case "rtu":
		p := u.Host + u.Path
		if p == "" {
			return link{}, fmt.Errorf("url %q: want rtu:///dev/ttyX or rtu://path", raw)
		}
		return link{scheme: "rtu", target: p}, nil
	case "":
		return link{}, fmt.Errorf("url %q: missing scheme (want tcp://, rtu:// or rtuovertcp://)", raw)
	}
	return link{}, fmt.Errorf("url %q: scheme %s is not simulated (want tcp://, rtu:// or rtuovertcp://)", raw, u.Scheme)
}

// effect is one scenario event applied to one target.
type effect struct {
	scenario string
	ev       *configs.ScenarioEvent
	start    time.Duration // absolute simulated time
	amp      float64       // Value (or Rate) scaled by the spread factor
}

// end is when the effect stops acting; 0 means never (until stopped).
func (e *effect) end() time.Duration {
	switch e.ev.Effect {
	case "add", "approach":
		if e.ev.Hold > 0 || e.ev.Fall > 0 {
			return e.start + e.ev.Rise + e.ev.Hold + e.ev.Fall
		}
		return 0
	}
	if e.ev.Hold > 0 {
		return e.start + e.ev.Hold
	}
	return 0
}

func (e *effect) active(t time.Duration) bool {
	end := e.end()
	return t >= e.start && (end == 0 || t < end)
}

// shape is the trapezoid 0→1→0 of add and approach effects.
func (e *effect) shape(t time.Duration) float64 {
	dt := t - e.start
	switch {
	case dt < 0:
		return 0
	case dt < e.ev.Rise:
		return float64(dt) / float64(e.ev.Rise)
	case e.end() == 0 || dt < e.ev.Rise+e.ev.Hold:
		return 1
	case dt < e.ev.Rise+e.ev.Hold+e.ev.Fall:
		return 1 - float64(dt-e.ev.Rise-e.ev.Hold)/float64(e.ev.Fall)
	}
	return 0
}

// valueAt is a sensor's engineering value at simulated time t and where it
// comes from: held, written, scenario or physics. Callers hold Simulator.mu.
func (sn *sensor) valueAt(t time.Duration) (float64, string) {
	if sn.held != nil {
		return *sn.held, "held"
	}
	if sn.written != nil {
		if v, err := sn.shape.decode(sn.written); err == nil {
			return v, "written" // NaN or ±Inf if a client wrote one
		}
	}
	return sn.effectValue(t, len(sn.effects))
}

func (sn *sensor) effectValue(t time.Duration, n int) (float64, string) {
	v := sn.phys.at(t)
	src := "physics"
	for i, e := range sn.effects[:n] {
		if !e.active(t) {
			continue
		}
		src = "scenario"
		switch e.ev.Effect {
		case "add":
			v += e.amp * e.shape(t)
		case "approach":
			k := e.shape(t)
			v = v*(1-k) + e.amp*k
		case "drift":
			v += e.amp * (t - e.start).Hours()
		case "freeze":
			v, _ = sn.effectValue(e.start, i)
		}
	}
	return clamp(v, sn.phys.min, sn.phys.max), src
}

// setBand encodes the fault band with the sensor's codec and checks that
// it reads back as a fault-band value.
func (sn *sensor) setBand() {
	regs, err := sn.shape.encode(faultBandMA)
	if err != nil {
		return
	}
	v, err := sn.shape.decode(regs)
	copy(sn.band[:], regs)
	sn.bandValue, sn.bandOK = v, err == nil && v < faultBandLimitMA
}

// sharesRegisters reports whether any two sensors of a table share a
// register (or a coil).
func sharesRegisters(points []*sensor) bool {
	for i, a := range points {
		for _, b := range points[:i] {
			if int(a.shape.addr) < int(b.shape.addr)+b.shape.width && int(b.shape.addr) < int(a.shape.addr)+a.shape.width {
				return true
			}
		}
	}
	return false
}

// overlapWarnings are the overlaps `canary check` warns about (and
// accepts): register spans that overlap only in part, usually a typo in an
// address. Identical spans (one register read as two types) and bits of a
// register are fine. The simulator serves them all; on a shared register
// the sensor laid out last wins (see Simulator.paintOrder).
func overlapWarnings(sensors []*sensor) []string {
	var out []string
	for i, a := range sensors {
		for _, b := range sensors[:i] {
			pa, pb := &a.shape, &b.shape
			if pa.isBit || pb.isBit || pa.typ == modbus.TypeBool || pb.typ == modbus.TypeBool || pa.table != pb.table ||
				(pa.addr == pb.addr && pa.width == pb.width) {
				continue
			}
			alo, ahi := int(pa.addr), int(pa.addr)+pa.width-1
			blo, bhi := int(pb.addr), int(pb.addr)+pb.width-1
			if alo <= bhi && blo <= ahi {
				out = append(out, fmt.Sprintf("sensor %s: registers %d-%d overlap sensor %s (registers %d-%d): check the address",
					a.cfg.ID, alo, ahi, b.cfg.ID, blo, bhi))
			}
		}
	}
	return out
}

// linkAt is a device's state and faults at simulated time t, scenario
// effects applied over the state set by config or control API.
func (d *device) linkAt(t time.Duration) (string, configs.SimFaults) {
	state, faults := d.state, d.faults
	for _, e := range d.effects {
		if !e.active(t) {
			continue
		}
		switch e.ev.Effect {
		case "state":
			state = e.ev.State
		case "faults":
			if e.ev.Faults != nil {
				faults = *e.ev.Faults
			}
		case "flap":
			period := e.ev.Period
			if period <= 0 {
				period = 10 * time.Second
			}
			phase := float64((t-e.start)%period) / float64(period)
			if phase >= 1-e.ev.Duty {
				state = StateOffline
			}
		}
	}
	return state, faults
}

// faultSignal decides how the fault state shows: the 4–20 mA fault band or
// exception 04.
func (d *device) faultBand(f configs.SimFaults) bool {
	switch f.Signal {
	case "band":
		return true
	case "exception":
		return false
	}
	return d.allCurrent
}

// target splits "device/sensor" (or "device").
func splitTarget(s string) (dev, sen string) {
	dev, sen, _ = strings.Cut(s, "/")
	return dev, sen
}
