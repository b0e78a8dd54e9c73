package configs

import (
	"regexp"
	"strconv"
	"time"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/internal/configerr"
)

// pointPattern is a "device.sensor" reference.
var pointPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*\.[a-z0-9][a-z0-9_-]*$`)

// Group is a MooN voting group of redundant sensors. Its alarm
// "<id>.<condition>" is active while at least M of the N sensors have
// their `condition` alarm active; a faulted input raises "<id>.degraded".
//
//	groups:
//	  - id: face3-ch4
//	    sensors: [face3-gas.ch4, face3-gas2.ch4, face3-gas3.ch4]
//	    vote: 2oo3
//	    fault_vote: trip      # a bad/lost sensor votes trip (default) | bypass: it is removed
//	    condition: high_high  # the member alarm that votes (default high_high)
//	    priority: 1           # default 1
//	    latch: true           # default true: needs an operator reset
//	    action: power-cut     # an entry of actions:
//	    override_regulatory: false # accept fault_vote bypass on safety-critical sensors (a loosening)
type Group struct {
	ID        string   `yaml:"id"`
	Sensors   []string `yaml:"sensors"`
	Vote      string   `yaml:"vote"`
	FaultVote string   `yaml:"fault_vote"`
	Condition string   `yaml:"condition"`
	Priority  int      `yaml:"priority"`
	Latch     *bool    `yaml:"latch"`
	Action    string   `yaml:"action"`
	// OverrideRegulatory accepts fault_vote bypass on a group with a
	// safety-critical sensor (checked by the alarm engine), with a warning.
	OverrideRegulatory bool `yaml:"override_regulatory"`
}

// SetDefaults fills the documented defaults.
func (g *Group) SetDefaults() {
	if g.FaultVote == "" {
		g.FaultVote = "trip"
	}
	if g.Condition == "" {
		g.Condition = string(alerting.HighHigh)
	}
	if g.Priority == 0 {
		g.Priority = 1
	}
	if g.Latch == nil {
		t := true
		g.Latch = &t
	}
}

var votingConditions = map[string]bool{"high_high": true, "high": true, "low": true, "low_low": true,
	"rate": true, "deviation": true, "twa": true, "stel": true}

// Validate checks the group on its own; paths are relative to the group.
// That sensors and the action exist is checked when the engine is built
// (alerting.New reports "groups[i].sensors[j]" and "groups[i].action").
func (g *Group) Validate() error {
	var errs configerr.List
	if !idPattern.MatchString(g.ID) {
		errs.Add("id", "invalid id %q (want [a-z0-9][a-z0-9_-]*)", g.ID)
	}
	checkIDLen(&errs, "id", g.ID)
	if _, n, err := alerting.ParseVote(g.Vote); err != nil {
		errs.Add("vote", "%v", err)
	} else if n != len(g.Sensors) {
		errs.Add("vote", "%s needs %d sensors, got %d", g.Vote, n, len(g.Sensors))
	}
	seen := map[string]bool{}
	for i, s := range g.Sensors {
		switch {
		case !pointPattern.MatchString(s):
			errs.Add(sensorsPath(i), "invalid sensor reference %q (want \"device.sensor\")", s)
		case seen[s]:
			errs.Add(sensorsPath(i), "sensor %q listed twice", s)
		}
		seen[s] = true
	}
	if g.FaultVote != "trip" && g.FaultVote != "bypass" {
		errs.Add("fault_vote", "unknown fault vote %q (want trip or bypass)", g.FaultVote)
	}
	if !votingConditions[g.Condition] {
		errs.Add("condition", "condition %q cannot vote (want high_high, high, low, low_low, rate, deviation, twa or stel)", g.Condition)
	}
	if g.Priority < 1 || g.Priority > 4 {
		errs.Add("priority", "must be 1 (emergency) to 4 (low), got %d", g.Priority)
	}
	if g.Action != "" && !idPattern.MatchString(g.Action) {
		errs.Add("action", "invalid action id %q", g.Action)
	}
	return errs.Err()
}

func sensorsPath(i int) string { return "sensors[" + strconv.Itoa(i) + "]" }

// Alerting converts the group for the alarm engine (after SetDefaults).
func (g *Group) Alerting(site string) alerting.GroupConfig {
	m, n, _ := alerting.ParseVote(g.Vote)
	latch := g.Latch == nil || *g.Latch
	return alerting.GroupConfig{ID: g.ID, Site: site, Points: append([]string(nil), g.Sensors...), M: m, N: n,
		FaultVote: g.FaultVote, Condition: alerting.Condition(g.Condition), Priority: g.Priority, Latch: latch, Action: g.Action,
		OverrideRegulatory: g.OverrideRegulatory}
}

// Action is a named interlock action: the alarm engine trips and releases
// it, the gateway writes `trip` or `release` to a register of a device and
// confirms it by reading back (the same register unless `readback` names
// a feedback point, e.g. a feed sensor or a valve limit switch). Not
// confirmed within confirm_timeout → priority-1 alarm "<id>.failed".
//
//	actions:
//	  - id: power-cut
//	    device: face3-relay
//	    table: coil            # coil | holding
//	    address: 0
//	    trip: 1                # value written on trip (coil: 0 or 1)
//	    release: 0             # value written on release ("permitted"; never restarts equipment)
//	    confirm_timeout: 2s    # default 2s (coal: methane power cut ≤ 2 s)
//	    readback: {table: discrete, address: 4, trip: 0, release: 1}   # feed sensor
type Action struct {
	ID             string        `yaml:"id"`
	Device         string        `yaml:"device"`
	Table          string        `yaml:"table"`
	Address        int           `yaml:"address"`
	Trip           *float64      `yaml:"trip"`
	Release        *float64      `yaml:"release"`
	ConfirmTimeout time.Duration `yaml:"confirm_timeout"`
	Readback       *Readback     `yaml:"readback"`
}

// Readback is where the gateway confirms an action. Unset fields default
// to the action's device, table, address and values.
type Readback struct {
	Device  string   `yaml:"device"`
	Table   string   `yaml:"table"`
	Address *int     `yaml:"address"`
	Trip    *float64 `yaml:"trip"`
	Release *float64 `yaml:"release"`
}

// defaultConfirmTimeout is an action's confirm_timeout when left out.
const defaultConfirmTimeout = 2 * time.Second

// SetDefaults fills the documented defaults.
func (a *Action) SetDefaults() {
	if a.ConfirmTimeout == 0 {
		a.ConfirmTimeout = defaultConfirmTimeout
	}
	if a.Readback == nil {
		a.Readback = &Readback{}
	}
	rb := a.Readback
	if rb.Device == "" {
		rb.Device = a.Device
	}
	if rb.Table == "" {
		rb.Table = a.Table
	}
	if rb.Address == nil {
		addr := a.Address
		rb.Address = &addr
	}
	if rb.Trip == nil {
		rb.Trip = a.Trip
	}
	if rb.Release == nil {
		rb.Release = a.Release
	}
}

// Validate checks the action on its own; paths are relative to the action.
// That the device exists is the site config's check.
func (a *Action) Validate() error {
	var errs configerr.List
	if !idPattern.MatchString(a.ID) {
		errs.Add("id", "invalid id %q (want [a-z0-9][a-z0-9_-]*)", a.ID)
	}
	checkIDLen(&errs, "id", a.ID)
	if !idPattern.MatchString(a.Device) {
		errs.Add("device", "required: the device id to write to")
	}
	if a.Table != "coil" && a.Table != "holding" {
		errs.Add("table", "unknown table %q (want coil or holding: only those are writable)", a.Table)
	}
	if a.Address < 0 || a.Address > 65535 {
		errs.Add("address", "must be 0..65535, got %d", a.Address)
	}
	checkValue(&errs, "trip", a.Trip, a.Table)
	checkValue(&errs, "release", a.Release, a.Table)
	if a.Trip != nil && a.Release != nil && *a.Trip == *a.Release {
		errs.Add("release", "equals trip (%v): the action could not be confirmed", *a.Trip)
	}
	if a.ConfirmTimeout < 0 {
		errs.Add("confirm_timeout", "must not be negative")
	}
	if rb := a.Readback; rb != nil {
		if rb.Table != "" && rb.Table != "coil" && rb.Table != "discrete" && rb.Table != "holding" && rb.Table != "input" {
			errs.Add("readback.table", "unknown table %q (want holding, input, coil or discrete)", rb.Table)
		}
		if rb.Address != nil && (*rb.Address < 0 || *rb.Address > 65535) {
			errs.Add("readback.address", "must be 0..65535, got %d", *rb.Address)
		}
		if rb.Device != "" && !idPattern.MatchString(rb.Device) {
			errs.Add("readback.device", "invalid device id %q", rb.Device)
		}
	}
	return errs.Err()
}

func checkValue(errs *configerr.List, path string, v *float64, table string) {
	switch {
	case v == nil:
		errs.Add(path, "required: the value written on %s", path)
	case table == "coil" && *v != 0 && *v != 1:
		errs.Add(path, "a coil takes 0 or 1, got %v", *v)
	case table == "holding" && (*v < 0 || *v > 65535 || *v != float64(int(*v))):
		errs.Add(path, "a holding register takes an integer 0..65535, got %v", *v)
	}
}

// Alerting converts the action for the alarm engine (after SetDefaults).
func (a *Action) Alerting(site string) alerting.ActionConfig {
	return alerting.ActionConfig{ID: a.ID, Site: site, ConfirmTimeout: a.ConfirmTimeout}
}
