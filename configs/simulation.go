package configs

import "time"

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
