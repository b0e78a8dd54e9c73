package alerting

import "time"

// SensorAlarms is the `alarms:` block of one sensor: overrides of, and
// additions to, the preset of the sensor's kind and profile. A nil entry
// keeps the preset.
type SensorAlarms struct {
	HighHigh  *LimitConfig `yaml:"high_high"`
	High      *LimitConfig `yaml:"high"`
	Low       *LimitConfig `yaml:"low"`
	LowLow    *LimitConfig `yaml:"low_low"`
	Rate      *LimitConfig `yaml:"rate"`
	Deviation *LimitConfig `yaml:"deviation"`
	Bad       *LimitConfig `yaml:"bad"`
	Comm      *LimitConfig `yaml:"comm"`
	Frozen    *LimitConfig `yaml:"frozen"`
	TWA       *LimitConfig `yaml:"twa"`
	STEL      *LimitConfig `yaml:"stel"`

	// SafetyCritical marks a point whose bad quality or communication loss
	// must trip the interlock actions its alarms drive (fail-safe). Presets
	// of life-safety profiles (coal-mine methane) set it; clearing it there
	// needs OverrideRegulatory.
	SafetyCritical *bool `yaml:"safety_critical"`
	// Range overrides the kind's valid measuring range [min, max]; a value
	// outside it has quality uncertain. Pressure and temperature presets
	// derive their deadband (% of span) from it.
	Range []float64 `yaml:"range"`
	// OverrideRegulatory allows every condition of this sensor to loosen a
	// regulatory preset (see LimitConfig.OverrideRegulatory).
	OverrideRegulatory bool `yaml:"override_regulatory"`
}

// LimitConfig configures one alarm condition. Unset fields come from the
// preset; a condition absent from the preset is added when configured.
type LimitConfig struct {
	// Limit is the set point: high/high_high activate at value >= limit,
	// low/low_low at value <= limit; rate: change within Period; deviation:
	// absolute difference to With; twa/stel: the exposure value; frozen:
	// the tolerance.
	Limit *float64 `yaml:"limit"`
	// Deadband applies to the return only: a high alarm returns when the
	// value falls below limit - deadband.
	Deadband *float64 `yaml:"deadband"`
	// Restore is a regulatory restore level that replaces the deadband:
	// a high alarm returns only when value < restore (strict).
	Restore *float64 `yaml:"restore"`
	// OnDelay: the condition must hold continuously this long to activate.
	OnDelay *time.Duration `yaml:"on_delay"`
	// OffDelay: the condition must be absent continuously this long to return.
	OffDelay *time.Duration `yaml:"off_delay"`
	// Priority 1 (emergency) .. 4 (low / diagnostic).
	Priority *int `yaml:"priority"`
	// Latch keeps the alarm after the condition clears until an operator resets it.
	Latch *bool `yaml:"latch"`
	// Action names an interlock action (site `actions:`) tripped while this
	// alarm is active or latched.
	Action string `yaml:"action"`

	// Enabled false removes a preset condition (loosening when regulatory).
	Enabled *bool `yaml:"enabled"`
	// OverrideRegulatory allows this condition to loosen a regulatory preset
	// (higher high limit, lower low limit, no latch, longer on-delay, ...).
	// The override still produces a warning.
	OverrideRegulatory bool `yaml:"override_regulatory"`
	// ReAlarm: an alarm active and acknowledged this long re-annunciates.
	ReAlarm *time.Duration `yaml:"realarm"`
	// Shelvable allows shelving of a priority-1 alarm (others are always shelvable).
	Shelvable *bool `yaml:"shelvable"`
	// SuppressBy names a discrete sensor of the site, "device.sensor"
	// (suppressed while it reads non-zero) or "not device.sensor" (while
	// it reads zero), whose readings set the flag; without
	// Config.PointFlagsOnly any other name is a flag for Engine.SetFlag.
	// While the flag is
	// true the alarm is suppressed by design (evaluated, not annunciated).
	SuppressBy string `yaml:"suppress_by"`
	// ResetNeedsAck refuses a reset of an unacknowledged latched alarm (default true).
	ResetNeedsAck *bool `yaml:"reset_needs_ack"`
	// CommentRequired makes a comment mandatory on acknowledge (default: true for priority 1).
	CommentRequired *bool `yaml:"comment_required"`

	// Period is the rate-of-change window (rate) or the STEL window (stel, 5m..15m).
	Period *time.Duration `yaml:"period"`
	// Percent expresses a rate limit in percent of the reference value.
	Percent *bool `yaml:"percent"`
	// Timeout is the communication-loss timeout (comm).
	Timeout *time.Duration `yaml:"timeout"`
	// Samples is the number of consecutive unchanged samples (frozen).
	Samples *int `yaml:"samples"`
	// ZeroBand: samples with |value| <= zero_band never count as frozen
	// (gas detectors legitimately read a flat zero in clean air).
	ZeroBand *float64 `yaml:"zero_band"`
	// With is the redundant sensor ("device.sensor") compared by deviation.
	With string `yaml:"with"`
	// Mode is the TWA mode: accumulate (ACGIH/EH40, default) or moving8h (OSHA).
	Mode string `yaml:"mode"`
	// ShiftStart is the UTC time of day ("06:00") at which an accumulating TWA restarts.
	ShiftStart string `yaml:"shift_start"`
}

// PointConfig is one sensor as the engine sees it.
type PointConfig struct {
	Site   string
	Device string
	Sensor string
	// Kind and Profile pick the preset; Unit overrides the kind's unit.
	Kind    string
	Profile string
	Unit    string
	// Poll is the device's poll interval; the comm timeout defaults to 3 × Poll.
	Poll   time.Duration
	Alarms SensorAlarms
	// Path is the config path of the sensor (e.g. "devices[0].sensors[1]")
	// used as the prefix of its errors in New; default "points[i]".
	Path string
	// Discrete: the sensor is a bit (a coil, a discrete input, a bool
	// register), the only kind an alarm's suppress_by may name when
	// Config.PointFlagsOnly is set (an analog value is non-zero nearly
	// always, and would hide the alarm for good).
	Discrete bool
}

// ID is "device.sensor".
func (p PointConfig) ID() string { return p.Device + "." + p.Sensor }

// GroupConfig is a MooN voting group of redundant sensors. Its alarm id is
// "<id>.<condition>"; a degraded group raises "<id>.degraded".
type GroupConfig struct {
	ID   string
	Site string
	// Points are "device.sensor" ids; ties of first-out are broken by this order.
	Points []string
	// M of N: the group trips when at least M inputs are in trip.
	M, N int
	// FaultVote is "trip" (a bad or lost input votes trip, default) or
	// "bypass" (it is removed and N shrinks, M is capped at the new N).
	FaultVote string
	// Condition is the member condition that votes (e.g. high_high).
	Condition Condition
	Priority  int
	Latch     bool
	Action    string
	// OverrideRegulatory accepts fault_vote "bypass" on a group with a
	// safety-critical member (whose fail-safe it turns off: a bad or lost
	// input no longer votes trip), with a warning; without it that is an
	// error, as any loosening of a regulatory preset.
	OverrideRegulatory bool
}

// ActionConfig is an interlock action as the engine sees it; the Modbus
// write and read-back are the gateway's.
type ActionConfig struct {
	ID   string
	Site string
	// ConfirmTimeout bounds the wait for ActionResult; past it the action
	// failed (P1 alarm "<id>.failed").
	ConfirmTimeout time.Duration
}

// Options are site-wide alarm-management settings. Zero values take the
// defaults documented on each field.
type Options struct {
	// MaxShelve is the longest timed shelve (default 8h).
	MaxShelve time.Duration
	// MaxOutOfService is the furthest expiry an out of service may be
	// given (default 72h): an interlock input's bypass must have one
	// (SAFETY.md §5.3), and a far one would only meet that on paper. An
	// alarm that drives nothing may instead stay out until returned.
	MaxOutOfService time.Duration
	// ChatterCount activations within ChatterWindow flag chattering (3 in 60s).
	ChatterCount  int
	ChatterWindow time.Duration
	// FleetingBelow: an activation shorter than this is fleeting (2s).
	FleetingBelow time.Duration
	// StaleAfter: active continuously longer is stale (24h).
	StaleAfter time.Duration
	// Flood: more than FloodStart annunciated activations within
	// FloodWindow start a flood, fewer than FloodEnd end it (10 / 5 in 10m).
	FloodWindow time.Duration
	FloodStart  int
	FloodEnd    int
}

func (o Options) withDefaults() Options {
	if o.MaxShelve <= 0 {
		o.MaxShelve = 8 * time.Hour
	}
	if o.MaxOutOfService <= 0 {
		o.MaxOutOfService = 72 * time.Hour
	}
	if o.ChatterCount <= 0 {
		o.ChatterCount = 3
	}
	if o.ChatterWindow <= 0 {
		o.ChatterWindow = time.Minute
	}
	if o.FleetingBelow <= 0 {
		o.FleetingBelow = 2 * time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 24 * time.Hour
	}
	if o.FloodWindow <= 0 {
		o.FloodWindow = 10 * time.Minute
	}
	if o.FloodStart <= 0 {
		o.FloodStart = 10
	}
	if o.FloodEnd <= 0 {
		o.FloodEnd = 5
	}
	return o
}

// Config is everything the engine needs: points, voting groups, actions.
type Config struct {
	Points  []PointConfig
	Groups  []GroupConfig
	Actions []ActionConfig
	// Systems are alarms about the gateway itself, which it raises and
	// returns (SetSystem).
	Systems []SystemConfig
	Options Options
	// PointFlagsOnly: an alarm's suppress_by must name a point of the
	// config ("device.sensor" or "not device.sensor"), whose readings set
	// the flag; a gateway sets no other flag, so any other name would
	// never suppress. Without it a name that is no point is a flag for
	// SetFlag alone.
	PointFlagsOnly bool
}

// SystemConfig is an alarm about the gateway itself: no sensor, its id
// "<subject>.<condition>" like a group's or an action's. Never latched.
type SystemConfig struct {
	ID        string
	Site      string
	Condition Condition
	Priority  int
	Source    string
}
