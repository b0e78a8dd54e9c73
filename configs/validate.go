package configs

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/canary-gw/canary/drivers/modbus"

	"github.com/canary-gw/canary/internal/configerr"
)

// idPattern is the syntax of site, device, sensor, group and action ids:
// they appear in MQTT topics and InfluxDB tags, so no separators or case.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// maxIDLen is the documented bound on every id, kept well under the
// ingest's 128: past that it dead-letters every batch carrying the id.
const maxIDLen = 64

// checkIDLen reports an id longer than maxIDLen at path. Ids that break the
// pattern are left to the pattern check, so that one id gets one error.
func checkIDLen(l *configerr.List, path, id string) {
	if len(id) > maxIDLen && idPattern.MatchString(id) {
		l.Add(path, "%q is longer than %d characters", id, maxIDLen)
	}
}

// CheckID reports whether id is a valid config id, with a message naming
// the rule when it is not.
func CheckID(id string) error {
	if id == "" {
		return fmt.Errorf("required")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%q is longer than %d characters", id, maxIDLen)
	}
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%q is not a valid id (want lower-case letters, digits, '_' and '-', starting with a letter or digit)", id)
	}
	return nil
}

// section lets SetDefaults and Validate reach each component section
// without the site knowing their contents.
func sections(s *Site) []struct {
	path string
	v    any
} {
	out := []struct {
		path string
		v    any
	}{
		{"mqtt", &s.MQTT}, {"outbox", &s.Outbox}, {"http", &s.HTTP},
	}
	if s.InfluxDB != nil {
		out = append(out, struct {
			path string
			v    any
		}{"influxdb", s.InfluxDB})
	}
	if s.Simulation != nil {
		out = append(out, struct {
			path string
			v    any
		}{"simulation", s.Simulation})
	}
	return out
}

// SetDefaults fills in every default of the site and its sections.
func (s *Site) SetDefaults() {
	for _, sec := range sections(s) {
		if d, ok := sec.v.(defaulter); ok {
			d.SetDefaults()
		}
	}
	for i := range s.Devices {
		s.Devices[i].setDefaults()
	}
	for i := range s.Groups {
		s.Groups[i].SetDefaults()
	}
	for i := range s.Actions {
		s.Actions[i].SetDefaults()
	}
}

// Validate returns every problem of the site config as field errors.
func (s *Site) Validate() error {
	var l configerr.List
	if err := CheckID(s.Site); err != nil {
		l.Add("site", "%v", err)
	}
	for _, sec := range sections(s) {
		if v, ok := sec.v.(validator); ok {
			l.Merge(sec.path, v.Validate())
		}
	}
	if len(s.Devices) == 0 {
		l.Add("devices", "no devices: a site must monitor at least one device")
	}
	seen := map[string]int{}
	for i := range s.Devices {
		d := &s.Devices[i]
		p := fmt.Sprintf("devices[%d]", i)
		if j, dup := seen[d.ID]; dup && d.ID != "" {
			l.Add(p+".id", "duplicate device id %q (also devices[%d])", d.ID, j)
		}
		seen[d.ID] = i
		l.Merge(p, d.validate())
	}
	links := make([]modbus.DeviceConfig, len(s.Devices))
	for i := range s.Devices {
		links[i] = s.Devices[i].DeviceConfig
	}
	for _, fe := range configerr.Flatten(modbus.ValidateLinks(links)) {
		// Duplicate ids are reported above, with both positions.
		if !strings.HasSuffix(fe.Path, ".id") {
			l = append(l, &configerr.FieldError{Path: "devices" + fe.Path, Msg: fe.Msg, Severity: fe.Severity})
		}
	}
	for i := range s.Groups {
		l.Merge(fmt.Sprintf("groups[%d]", i), s.Groups[i].Validate())
	}
	for i := range s.Actions {
		l.Merge(fmt.Sprintf("actions[%d]", i), s.Actions[i].Validate())
	}
	// Cross references are checked once everything else holds, so that a
	// typo is reported once, where it is.
	if !configerr.HasErrors(l.Err()) {
		l.Merge("", s.engineCheck())
	}
	for i, a := range s.Actions {
		if _, ok := seen[a.Device]; a.Device != "" && !ok {
			l.Add(fmt.Sprintf("actions[%d].device", i), "unknown device %q (want one of the ids under devices)", a.Device)
		}
		if _, ok := seen[a.Device]; ok {
			if _, ok := s.SensorAt(a.Device, a.Table, a.Address); !ok {
				l.Add(fmt.Sprintf("actions[%d].address", i), "%s %d of device %s is not a configured sensor: interlock actions write only to registers declared under the device's sensors", a.Table, a.Address, a.Device)
			}
		}
		if rb := a.Readback; rb != nil && rb.Device != "" && rb.Address != nil {
			if _, ok := seen[rb.Device]; ok {
				if _, ok := s.SensorAt(rb.Device, rb.Table, *rb.Address); !ok {
					l.Add(fmt.Sprintf("actions[%d].readback", i), "%s %d of device %s is not a configured sensor: the read-back point must be declared under the device's sensors", rb.Table, *rb.Address, rb.Device)
				}
			}
		}
		if rb := a.Readback; rb != nil && rb.Device != "" && rb.Device != a.Device {
			if _, ok := seen[rb.Device]; !ok {
				l.Add(fmt.Sprintf("actions[%d].readback.device", i), "unknown device %q (want one of the ids under devices)", rb.Device)
			}
		}
	}
	return l.Err()
}
