package configs

import (
	"fmt"

	"github.com/canary-gw/canary/internal/configerr"
)

func (d *Device) setDefaults() {
	if v, ok := any(&d.DeviceConfig).(defaulter); ok {
		v.SetDefaults()
	}
}

// validate checks one device and its sensors; paths are relative to the
// device.
func (d *Device) validate() error {
	var l configerr.List
	if err := CheckID(d.ID); err != nil {
		l.Add("id", "%v", err)
	}
	if v, ok := any(&d.DeviceConfig).(validator); ok {
		l.Merge("", v.Validate())
	}
	if len(d.Sensors) == 0 {
		l.Add("sensors", "no sensors: a device must have at least one sensor")
	}
	seen := map[string]int{}
	for i := range d.Sensors {
		s := &d.Sensors[i]
		p := fmt.Sprintf("sensors[%d]", i)
		if err := CheckID(s.ID); err != nil {
			l.Add(p+".id", "%v", err)
		}
		if j, dup := seen[s.ID]; dup && s.ID != "" {
			l.Add(p+".id", "duplicate sensor id %q (also sensors[%d])", s.ID, j)
		}
		seen[s.ID] = i
		if s.Kind == "" {
			l.Add(p+".kind", "required (one of %s)", kindList)
		} else if !knownKind(s.Kind) {
			l.Add(p+".kind", "unknown sensor kind %q (want one of %s)", s.Kind, kindList)
		}
	}
	return l.Err()
}

const kindList = "methane, combustible, h2s, co, oxygen, toxic, pressure, temperature, current, generic"

func knownKind(k string) bool {
	switch k {
	case "methane", "combustible", "h2s", "co", "oxygen", "toxic", "pressure", "temperature", "current", "generic":
		return true
	}
	return false
}
