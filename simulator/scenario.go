package simulator

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/canary-gw/canary/configs"
)

// ScenarioStatus is a defined scenario and whether it runs.
type ScenarioStatus struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Speed       float64 `json:"speed,omitempty"`
	Running     bool    `json:"running"`
	// StartedAt is the simulated time it started at, in seconds.
	StartedAt *float64 `json:"started_at,omitempty"`
	// Finished is true once every one of its effects has ended.
	Finished bool `json:"finished,omitempty"`
}

func valueEffect(e string) bool {
	switch e {
	case "add", "approach", "drift", "freeze":
		return true
	}
	return false
}

func (s *Simulator) checkScenario(sc configs.Scenario) error {
	if sc.Name == "" {
		return fmt.Errorf("name is required")
	}
	if err := checkSpeed(sc.Speed); err != nil {
		return err
	}
	if len(sc.Events) == 0 {
		return fmt.Errorf("no events")
	}
	for i, ev := range sc.Events {
		if err := s.checkEvent(ev); err != nil {
			return fmt.Errorf("events[%d]: %w", i, err)
		}
	}
	return nil
}

func (s *Simulator) checkEvent(ev configs.ScenarioEvent) error {
	switch ev.Effect {
	case "add", "approach", "drift", "freeze", "flap":
	case "state":
		if err := checkState(ev.State); err != nil {
			return err
		}
	case "faults":
		if ev.Faults == nil {
			return fmt.Errorf("effect faults needs faults")
		}
		if err := checkFaults(*ev.Faults); err != nil {
			return err
		}
	default:
		return fmt.Errorf("effect %q: want add, approach, drift, freeze, state, faults or flap", ev.Effect)
	}
	if len(ev.Targets) == 0 {
		return fmt.Errorf("no targets")
	}
	for _, d := range []time.Duration{ev.At, ev.Delay, ev.Rise, ev.Hold, ev.Fall, ev.Period} {
		if d < 0 {
			return fmt.Errorf("durations must not be negative")
		}
	}
	if ev.Factor != nil && (*ev.Factor <= 0 || math.IsNaN(*ev.Factor)) {
		return fmt.Errorf("factor %v: want a positive number", *ev.Factor)
	}
	if ev.Duty < 0 || ev.Duty > 1 {
		return fmt.Errorf("duty %v: want a share between 0 and 1", ev.Duty)
	}
	for _, tg := range ev.Targets {
		dev, sen := splitTarget(tg)
		d := s.byID[dev]
		if d == nil {
			return fmt.Errorf("target %q: no device %s", tg, dev)
		}
		if valueEffect(ev.Effect) {
			if d.byID[sen] == nil {
				return fmt.Errorf("target %q: effect %s needs device/sensor, and %s has no sensor %q", tg, ev.Effect, dev, sen)
			}
		} else if sen != "" {
			return fmt.Errorf("target %q: effect %s acts on a device, not a sensor", tg, ev.Effect)
		}
	}
	return nil
}

// StartScenario starts a defined scenario now (restarting it if it runs).
func (s *Simulator) StartScenario(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scenarios[name]
	if !ok {
		return fmt.Errorf("scenario %s: %w", name, ErrNotFound)
	}
	s.stopLocked(name)
	t := s.clock.now()
	if sc.Speed > 0 {
		s.clock.set(t, sc.Speed)
	}
	rs := &runningScenario{name: name, start: t}
	for i := range sc.Events {
		ev := &sc.Events[i]
		factor := 1.0
		if ev.Factor != nil {
			factor = *ev.Factor
		}
		amp := ev.Value
		if ev.Effect == "drift" {
			amp = ev.Rate
		}
		for j, tg := range ev.Targets {
			e := &effect{scenario: name, ev: ev, start: t + ev.At + time.Duration(j)*ev.Delay, amp: amp * math.Pow(factor, float64(j))}
			if ev.Effect == "approach" {
				e.amp = ev.Value // a target value does not weaken along a chain
			}
			dev, sen := splitTarget(tg)
			d := s.byID[dev]
			if valueEffect(ev.Effect) {
				sn := d.byID[sen]
				sn.effects = append(sn.effects, e)
			} else {
				d.effects = append(d.effects, e)
			}
			rs.effects = append(rs.effects, e)
		}
	}
	s.running[name] = rs
	s.log.Info().Str("scenario", name).Dur("at", t).Float64("speed", s.clock.speed).Msg("scenario started")
	return nil
}

// StopScenario ends a running scenario: its effects stop at once.
func (s *Simulator) StopScenario(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.scenarios[name]; !ok {
		return fmt.Errorf("scenario %s: %w", name, ErrNotFound)
	}
	s.stopLocked(name)
	return nil
}

func (s *Simulator) stopLocked(name string) {
	rs := s.running[name]
	if rs == nil {
		return
	}
	drop := func(list []*effect) []*effect {
		return slices.DeleteFunc(list, func(e *effect) bool { return e.scenario == name })
	}
	for _, d := range s.devices {
		d.effects = drop(d.effects)
		for _, sn := range d.sensors {
			sn.effects = drop(sn.effects)
		}
	}
	delete(s.running, name)
	s.log.Info().Str("scenario", name).Msg("scenario stopped")
}

// Scenarios lists the defined scenarios, sorted by name.
func (s *Simulator) Scenarios() []ScenarioStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.clock.now()
	var out []ScenarioStatus
	for _, n := range s.sortedScenarioNames() {
		sc := s.scenarios[n]
		st := ScenarioStatus{Name: n, Description: sc.Description, Speed: sc.Speed}
		if rs := s.running[n]; rs != nil {
			st.Running = true
			at := rs.start.Seconds()
			st.StartedAt = &at
			st.Finished = true
			for _, e := range rs.effects {
				if end := e.end(); end == 0 || t < end {
					st.Finished = false
				}
			}
		}
		out = append(out, st)
	}
	return out
}

// AddScenario defines (or replaces) a scenario at run time.
func (s *Simulator) AddScenario(sc configs.Scenario) error {
	if err := s.checkScenario(sc); err != nil {
		return fmt.Errorf("scenario %s: %w: %w", sc.Name, ErrInvalid, err)
	}
	s.mu.Lock()
	s.scenarios[sc.Name] = sc
	s.mu.Unlock()
	return nil
}

// builtinScenarios are generated from the site's sensors so that any site
// file has the standard incidents: methane-leak (or gas-leak on
// combustible detectors), pressure-surge, pipeline-rupture,
// drifting-sensor, frozen-sensor, sensor-fault and flapping-link.
func builtinScenarios(site *configs.Site) []configs.Scenario {
	byKind := map[string][]string{}
	var first string
	var firstBase, firstDrift float64
	for _, d := range site.Devices {
		for _, sn := range d.Sensors {
			tg := d.ID + "/" + sn.ID
			byKind[sn.Kind] = append(byKind[sn.Kind], tg)
			if first == "" && sn.Kind != "generic" && sn.Kind != "" {
				first = tg
				p := preset(sn.Kind, sn.Unit)
				firstBase, firstDrift = p.base, p.drift
			}
		}
	}
	f := func(v float64) *float64 { return &v }
	var out []configs.Scenario
	if ch4 := byKind["methane"]; len(ch4) > 0 {
		out = append(out, configs.Scenario{
			Name:        "methane-leak",
			Description: "methane rises to about 2 %vol at the first detector, holds, and reaches the next detectors one after another, weaker",
			Events: []configs.ScenarioEvent{{Effect: "add", Targets: ch4, Value: 1.9, Rise: 3 * time.Minute, Hold: 10 * time.Minute,
				Fall: 5 * time.Minute, Delay: time.Minute, Factor: f(0.85)}},
		})
	} else if lel := byKind["combustible"]; len(lel) > 0 {
		out = append(out, configs.Scenario{
			Name:        "gas-leak",
			Description: "combustible gas rises to about 45 %LEL at the first detector and spreads to the next ones",
			Events: []configs.ScenarioEvent{{Effect: "add", Targets: lel, Value: 45, Rise: 2 * time.Minute, Hold: 10 * time.Minute,
				Fall: 5 * time.Minute, Delay: 30 * time.Second, Factor: f(0.8)}},
		})
	}
	if pt := byKind["pressure"]; len(pt) > 0 {
		base := preset("pressure", "").base
		for _, d := range site.Devices {
			for _, sn := range d.Sensors {
				if d.ID+"/"+sn.ID == pt[0] {
					base = preset("pressure", sn.Unit).base
				}
			}
		}
		out = append(out,
			configs.Scenario{Name: "pressure-surge", Description: "line pressure surges by 30 % and settles",
				Events: []configs.ScenarioEvent{{Effect: "add", Targets: pt, Value: 0.3 * base, Rise: 20 * time.Second,
					Hold: time.Minute, Fall: 2 * time.Minute, Delay: 5 * time.Second}}},
			configs.Scenario{Name: "pipeline-rupture", Description: "line pressure collapses to a tenth within 30 s, transmitter after transmitter",
				Events: []configs.ScenarioEvent{{Effect: "approach", Targets: pt, Value: 0.1 * base, Rise: 30 * time.Second, Delay: 10 * time.Second}}},
		)
	}
	if first != "" {
		rate := max(5*firstDrift, 0.1*math.Abs(firstBase))
		out = append(out,
			configs.Scenario{Name: "drifting-sensor", Description: "the first sensor drifts away from the truth",
				Events: []configs.ScenarioEvent{{Effect: "drift", Targets: []string{first}, Rate: rate}}},
			configs.Scenario{Name: "frozen-sensor", Description: "the first sensor freezes at its value",
				Events: []configs.ScenarioEvent{{Effect: "freeze", Targets: []string{first}}}},
		)
	}
	if len(site.Devices) > 0 {
		d := site.Devices[0].ID
		out = append(out,
			configs.Scenario{Name: "sensor-fault", Description: "the first device signals a fault for 5 minutes",
				Events: []configs.ScenarioEvent{{Effect: "state", State: StateFault, Targets: []string{d}, Hold: 5 * time.Minute}}},
			configs.Scenario{Name: "flapping-link", Description: "the first device's link drops half of every 20 s, for 10 minutes",
				Events: []configs.ScenarioEvent{{Effect: "flap", Targets: []string{d}, Period: 20 * time.Second, Duty: 0.5, Hold: 10 * time.Minute}}},
		)
	}
	return out
}
