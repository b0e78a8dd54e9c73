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
}

// LimitConfig configures one alarm condition. Unset fields come from the
// preset.
type LimitConfig struct {
	Limit    *float64       `yaml:"limit"`
	Deadband *float64       `yaml:"deadband"`
	Restore  *float64       `yaml:"restore"`
	OnDelay  *time.Duration `yaml:"on_delay"`
	OffDelay *time.Duration `yaml:"off_delay"`
	Priority *int           `yaml:"priority"`
	Latch    *bool          `yaml:"latch"`
	Action   string         `yaml:"action"`
}
