package configs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/canary-gw/canary/internal/configerr"
)

// MaxSimSpeed bounds the simulator's time compression (simulated seconds
// per real second): about 11.6 simulated days a second, far beyond any use.
// A speed such as 1e300 overflowed the simulated time at once and wedged
// the clock.
const MaxSimSpeed = 1e6

// Simulation is the optional `simulation:` section of a site config. Only
// `canary sim` (and the demo) read it; the gateway ignores it. Everything in
// it is optional: without it every sensor gets the physics preset of its
// kind and the built-in scenarios.
type Simulation struct {
	// Seed makes noise, drift and excursions reproducible: the same seed
	// and scenario give the same values at the same simulated time.
	Seed int64 `yaml:"seed"`
	// Speed is simulated seconds per real second (time compression);
	// default 1. A scenario may set its own.
	Speed float64 `yaml:"speed"`
	// Sensors overrides the physics preset of single sensors.
	Sensors []SimSensor `yaml:"sensors"`
	// Devices sets a device's initial state and its link faults.
	Devices []SimDevice `yaml:"devices"`
	// Scenarios are scripted incidents, started by name through the
	// control API. A scenario named like a built-in one replaces it.
	Scenarios []Scenario `yaml:"scenarios"`
}

// SimSensor overrides the physics of one sensor. Unset fields keep the
// preset of the sensor's kind.
type SimSensor struct {
	Device string `yaml:"device"`
	Sensor string `yaml:"sensor"`
	// Base is the steady value the physics wanders around.
	Base *float64 `yaml:"base"`
	// Noise is the standard deviation of the per-second noise.
	Noise *float64 `yaml:"noise"`
	// Drift is the amplitude of the slow wander (periods of tens of
	// minutes to hours).
	Drift *float64 `yaml:"drift"`
	// Ripple is the amplitude of a periodic ripple (a pump's strokes)
	// with period RipplePeriod.
	Ripple       *float64       `yaml:"ripple"`
	RipplePeriod *time.Duration `yaml:"ripple_period"`
	// Excursion is the peak of occasional short excursions (a whiff of
	// CO or H2S); zero turns them off.
	Excursion *float64 `yaml:"excursion"`
	// Min and Max clamp the physical value.
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
}

// SimDevice sets a device's initial state and link faults.
type SimDevice struct {
	Device string `yaml:"device"`
	// State is online (default), offline or fault.
	State  string    `yaml:"state"`
	Faults SimFaults `yaml:"faults"`
}

// SimFaults are link and protocol faults of one device. Shares are
// probabilities per request, drawn from the seeded generator.
type SimFaults struct {
	// Latency delays every answer (a slow device or a long RTU turnaround).
	// In JSON it is a duration string ("200ms"), see MarshalJSON.
	Latency time.Duration `yaml:"latency" json:"latency"`
	// Drop is the share of requests not answered at all (an intermittent link).
	Drop float64 `yaml:"drop" json:"drop"`
	// Busy is the share of requests answered with exception 06 (server busy).
	Busy float64 `yaml:"busy" json:"busy"`
	// Garbage is the share of requests answered with a broken frame: on
	// TCP a wrong transaction id or a truncated frame, on RTU a bad CRC or a
	// truncated frame.
	Garbage float64 `yaml:"garbage" json:"garbage"`
	// Signal is what the fault state answers: band (a 4–20 mA sensor's
	// sub-3.6 mA fault band), exception (exception 04), or auto (default:
	// band for devices whose sensors are all of kind current, else exception).
	Signal string `yaml:"signal" json:"signal,omitempty"`
}

// Scenario is a scripted incident: events on sensors and devices, timed in
// simulated time from the moment the scenario starts.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Speed, when set, changes the simulator's time compression when the
	// scenario starts (60 runs an hour in a minute).
	Speed  float64         `yaml:"speed"`
	Events []ScenarioEvent `yaml:"events"`
}

// ScenarioEvent is one effect on one or more targets. Targets are
// "device/sensor" for value effects and "device" for link effects. With
// several targets the effect reaches them one after another, Delay apart,
// its size multiplied by Factor at each step (a leak spreading along a
// chain of detectors, weaker as it goes).
type ScenarioEvent struct {
	// At is when the effect starts on the first target.
	At      time.Duration `yaml:"at"`
	Targets []string      `yaml:"targets"`
	Delay   time.Duration `yaml:"delay"`
	Factor  *float64      `yaml:"factor"`
	// Effect is one of:
	//   add       adds Value, ramping up over Rise, holding for Hold, ramping down over Fall
	//             (a leak, a surge); without Hold and Fall it stays
	//   approach  pulls the value to Value over Rise, holds, lets go over Fall (a rupture's pressure drop)
	//   drift     adds Rate per hour for Hold (0: until stopped) — a drifting sensor
	//   freeze    freezes the value for Hold (0: until stopped) — a stuck sensor
	//   state     sets the device State (offline, fault) for Hold
	//   faults    sets the device Faults for Hold
	//   flap      takes the link down for Duty of every Period, for Hold (an intermittent link)
	Effect string        `yaml:"effect"`
	Value  float64       `yaml:"value"`
	Rate   float64       `yaml:"rate"`
	Rise   time.Duration `yaml:"rise"`
	Hold   time.Duration `yaml:"hold"`
	Fall   time.Duration `yaml:"fall"`
	State  string        `yaml:"state"`
	Faults *SimFaults    `yaml:"faults"`
	Period time.Duration `yaml:"period"`
	Duty   float64       `yaml:"duty"`
}

// Validate checks the simulation section on its own (paths relative to
// `simulation`). Whether the devices and sensors it names exist is checked
// by the simulator, which has the whole site.
func (s *Simulation) Validate() error {
	var l configerr.List
	checkSpeed(&l, "speed", s.Speed)
	for i, o := range s.Sensors {
		p := fmt.Sprintf("sensors[%d]", i)
		if o.Device == "" {
			l.Add(p+".device", "is required")
		}
		if o.Sensor == "" {
			l.Add(p+".sensor", "is required")
		}
		if o.Noise != nil && *o.Noise < 0 {
			l.Add(p+".noise", "must not be negative, got %v", *o.Noise)
		}
		if o.RipplePeriod != nil && *o.RipplePeriod <= 0 {
			l.Add(p+".ripple_period", "must be positive, got %v", *o.RipplePeriod)
		}
		if o.Min != nil && o.Max != nil && *o.Min > *o.Max {
			l.Add(p+".min", "%v is above max %v", *o.Min, *o.Max)
		}
	}
	for i, d := range s.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		if d.Device == "" {
			l.Add(p+".device", "is required")
		}
		switch d.State {
		case "", "online", "offline", "fault":
		default:
			l.Add(p+".state", "%q: want online, offline or fault", d.State)
		}
		d.Faults.validate(&l, p+".faults")
	}
	names := map[string]bool{}
	for i, sc := range s.Scenarios {
		p := fmt.Sprintf("scenarios[%d]", i)
		switch {
		case sc.Name == "":
			l.Add(p+".name", "is required")
		case names[sc.Name]:
			l.Add(p+".name", "scenario %q defined twice", sc.Name)
		}
		names[sc.Name] = true
		checkSpeed(&l, p+".speed", sc.Speed)
		if len(sc.Events) == 0 {
			l.Add(p+".events", "a scenario needs at least one event")
		}
		for j, ev := range sc.Events {
			ev.validate(&l, fmt.Sprintf("%s.events[%d]", p, j))
		}
	}
	return l.Err()
}

func checkSpeed(l *configerr.List, p string, speed float64) {
	switch {
	case speed < 0:
		l.Add(p, "must not be negative, got %v", speed)
	case !(speed <= MaxSimSpeed):
		l.Add(p, "%v: want at most %.0f simulated seconds per real second", speed, MaxSimSpeed)
	}
}

// simFaultsJSON is SimFaults as JSON: latency as a duration string.
type simFaultsJSON struct {
	Latency json.RawMessage `json:"latency"`
	Drop    float64         `json:"drop"`
	Busy    float64         `json:"busy"`
	Garbage float64         `json:"garbage"`
	Signal  string          `json:"signal,omitempty"`
}

// MarshalJSON writes latency as a duration string ("200ms"), the form
// UnmarshalJSON (and the simulator's control API) takes, so faults read
// from the API can be sent back.
func (f SimFaults) MarshalJSON() ([]byte, error) {
	lat, _ := json.Marshal(f.Latency.String())
	return json.Marshal(simFaultsJSON{Latency: lat, Drop: f.Drop, Busy: f.Busy, Garbage: f.Garbage, Signal: f.Signal})
}

// UnmarshalJSON reads faults strictly (unknown fields are errors), with
// latency as a duration string ("2s"); absent or "" is none.
func (f *SimFaults) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	var j simFaultsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	out := SimFaults{Drop: j.Drop, Busy: j.Busy, Garbage: j.Garbage, Signal: j.Signal}
	if len(j.Latency) > 0 && string(j.Latency) != "null" {
		var lat string
		if err := json.Unmarshal(j.Latency, &lat); err != nil {
			return fmt.Errorf("latency %s: want a duration string such as \"2s\"", j.Latency)
		}
		if lat != "" {
			d, err := time.ParseDuration(lat)
			if err != nil {
				return fmt.Errorf("latency %q: want a duration such as \"2s\"", lat)
			}
			out.Latency = d
		}
	}
	*f = out
	return nil
}

func (f SimFaults) validate(l *configerr.List, p string) {
	if f.Latency < 0 {
		l.Add(p+".latency", "must not be negative, got %v", f.Latency)
	}
	for _, s := range []struct {
		k string
		v float64
	}{{"drop", f.Drop}, {"busy", f.Busy}, {"garbage", f.Garbage}} {
		if s.v < 0 || s.v > 1 {
			l.Add(p+"."+s.k, "want a share between 0 and 1, got %v", s.v)
		}
	}
	switch f.Signal {
	case "", "auto", "band", "exception":
	default:
		l.Add(p+".signal", "%q: want auto, band or exception", f.Signal)
	}
}

func (ev ScenarioEvent) validate(l *configerr.List, p string) {
	sensorEffect := false
	switch ev.Effect {
	case "add", "approach", "drift", "freeze":
		sensorEffect = true
	case "flap":
	case "state":
		switch ev.State {
		case "online", "offline", "fault":
		default:
			l.Add(p+".state", "%q: want online, offline or fault", ev.State)
		}
	case "faults":
		if ev.Faults == nil {
			l.Add(p+".faults", "effect faults needs faults")
		} else {
			ev.Faults.validate(l, p+".faults")
		}
	default:
		l.Add(p+".effect", "%q: want add, approach, drift, freeze, state, faults or flap", ev.Effect)
	}
	if len(ev.Targets) == 0 {
		l.Add(p+".targets", "at least one target is required")
	}
	for k, tg := range ev.Targets {
		dev, sen, hasSensor := strings.Cut(tg, "/")
		switch {
		case dev == "":
			l.Add(fmt.Sprintf("%s.targets[%d]", p, k), "%q: no device", tg)
		case sensorEffect && (!hasSensor || sen == ""):
			l.Add(fmt.Sprintf("%s.targets[%d]", p, k), "%q: effect %s acts on a sensor, want device/sensor", tg, ev.Effect)
		case !sensorEffect && hasSensor:
			l.Add(fmt.Sprintf("%s.targets[%d]", p, k), "%q: effect %s acts on a device, want device", tg, ev.Effect)
		}
	}
	for _, d := range []struct {
		k string
		v time.Duration
	}{{"at", ev.At}, {"delay", ev.Delay}, {"rise", ev.Rise}, {"hold", ev.Hold}, {"fall", ev.Fall}, {"period", ev.Period}} {
		if d.v < 0 {
			l.Add(p+"."+d.k, "must not be negative, got %v", d.v)
		}
	}
	if ev.Factor != nil && !(*ev.Factor > 0) {
		l.Add(p+".factor", "want a positive number, got %v", *ev.Factor)
	}
	if ev.Duty < 0 || ev.Duty > 1 {
		l.Add(p+".duty", "want a share between 0 and 1, got %v", ev.Duty)
	}
}
