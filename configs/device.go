package configs

import (
	"fmt"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/internal/configerr"
)

func (d *Device) setDefaults() {
	d.DeviceConfig.SetDefaults()
	for i := range d.Sensors {
		d.Sensors[i].SensorConfig.SetDefaults()
	}
}

// ModbusSensors returns the register map of the device's sensors, in order.
func (d *Device) ModbusSensors() []modbus.SensorConfig {
	out := make([]modbus.SensorConfig, len(d.Sensors))
	for i := range d.Sensors {
		out[i] = d.Sensors[i].SensorConfig
	}
	return out
}

// validate checks one device and its sensors; paths are relative to the
// device. The driver checks links, unit ids and register maps; the alarm
// engine checks kinds, profiles and alarm overrides (and warns when an
// override loosens a regulatory limit).
func (d *Device) validate() error {
	var l configerr.List
	l.Merge("", d.DeviceConfig.Validate())
	// The driver checks the id pattern only.
	checkIDLen(&l, "id", d.ID)
	for i := range d.Sensors {
		checkIDLen(&l, fmt.Sprintf("sensors[%d].id", i), d.Sensors[i].ID)
	}
	if len(d.Sensors) == 0 {
		l.Add("sensors", "no sensors: a device must have at least one sensor")
	}
	l.Merge("", modbus.ValidateSensors(&d.DeviceConfig, d.ModbusSensors()))
	overlaps(&l, d.Sensors)
	for i := range d.Sensors {
		s := &d.Sensors[i]
		p := fmt.Sprintf("sensors[%d]", i)
		if s.Kind == "" {
			l.Add(p+".kind", "required (one of %s)", kindNames())
			continue
		}
		_, err := alerting.Resolve(s.Kind, s.Profile, s.Unit, d.Poll, s.Alarms)
		l.Merge(p, err)
	}
	return l.Err()
}

func kindNames() string {
	names := alerting.KindNames()
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}

// overlaps warns about register spans that partly overlap: a float32 at 0
// and another at 1 read the same register into two values, which is almost
// always a typo in an address. Identical spans (one register read as two
// types) and bits of a register are fine.
func overlaps(l *configerr.List, sensors []Sensor) {
	type span struct{ lo, hi int }
	spans := make([]span, len(sensors))
	for i, s := range sensors {
		spans[i] = span{-1, -1}
		if s.Address == nil || s.Bit != nil || (s.Table != "holding" && s.Table != "input") {
			continue
		}
		t, err := modbus.ParseType(s.Type)
		if err != nil || t.Words() < 1 {
			continue
		}
		spans[i] = span{*s.Address, *s.Address + t.Words() - 1}
	}
	for i := range sensors {
		for j := 0; j < i; j++ {
			a, b := spans[i], spans[j]
			if a.lo < 0 || b.lo < 0 || sensors[i].Table != sensors[j].Table || a == b {
				continue
			}
			if a.lo <= b.hi && b.lo <= a.hi {
				l.Warn(fmt.Sprintf("sensors[%d].address", i), "registers %d-%d overlap sensors[%d] (%s, registers %d-%d): check the address",
					a.lo, a.hi, j, sensors[j].ID, b.lo, b.hi)
			}
		}
	}
}
