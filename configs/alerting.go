package configs

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/internal/configerr"
)

// AlertingConfig is the alarm engine's view of the site: one point per
// sensor (in config order), the voting groups and the interlock actions.
// Call it on a loaded (defaulted and validated) site.
func (s *Site) AlertingConfig() alerting.Config {
	var c alerting.Config
	for _, d := range s.Devices {
		for _, sn := range d.Sensors {
			c.Points = append(c.Points, alerting.PointConfig{
				Site: s.Site, Device: d.ID, Sensor: sn.ID,
				Kind: sn.Kind, Profile: sn.Profile, Unit: sn.Unit,
				Poll: d.Poll, Alarms: sn.Alarms,
			})
		}
	}
	for i := range s.Groups {
		c.Groups = append(c.Groups, s.Groups[i].Alerting(s.Site))
	}
	for i := range s.Actions {
		c.Actions = append(c.Actions, s.Actions[i].Alerting(s.Site))
	}
	return c
}

var pointPathRE = regexp.MustCompile(`^points\[(\d+)\](.*)$`)

// engineCheck builds the engine once, so that cross references (an alarm's
// action, a group's sensors, a deviation's peer) are checked by the code
// that will use them; engine paths are mapped back to site-config paths.
func (s *Site) engineCheck() error {
	_, err := alerting.New(s.AlertingConfig())
	if err == nil {
		return nil
	}
	var refs []string
	for i, d := range s.Devices {
		for j := range d.Sensors {
			refs = append(refs, fmt.Sprintf("devices[%d].sensors[%d]", i, j))
		}
	}
	var l configerr.List
	for _, fe := range configerr.Flatten(err) {
		if fe.Severity == configerr.SeverityWarning {
			continue // already reported by the sensor's own check
		}
		p := fe.Path
		if m := pointPathRE.FindStringSubmatch(p); m != nil {
			if k, _ := strconv.Atoi(m[1]); k < len(refs) {
				p = refs[k] + m[2]
			}
		}
		l = append(l, &configerr.FieldError{Path: p, Msg: fe.Msg, Severity: fe.Severity})
	}
	return l.Err()
}

// SensorAt finds the sensor of device whose register is table/address:
// interlock actions write only to registers the site config declares.
func (s *Site) SensorAt(device, table string, address int) (string, bool) {
	for _, d := range s.Devices {
		if d.ID != device {
			continue
		}
		for _, sn := range d.Sensors {
			if sn.Table == table && sn.Address != nil && *sn.Address == address {
				return sn.ID, true
			}
		}
	}
	return "", false
}
