package configs

import (
	"fmt"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/internal/configerr"
)

// AlertingConfig is the alarm engine's view of the site: one point per
// sensor (in config order), the voting groups and the interlock actions.
// Call it on a loaded (defaulted and validated) site.
func (s *Site) AlertingConfig() alerting.Config {
	// A gateway sets suppression flags from its sensors only.
	c := alerting.Config{PointFlagsOnly: true}
	for i, d := range s.Devices {
		for j, sn := range d.Sensors {
			c.Points = append(c.Points, alerting.PointConfig{
				Site: s.Site, Device: d.ID, Sensor: sn.ID,
				Kind: sn.Kind, Profile: sn.Profile, Unit: sn.Unit,
				Poll: d.Poll, Alarms: sn.Alarms,
				Path:     fmt.Sprintf("devices[%d].sensors[%d]", i, j),
				Discrete: sn.Type == "bool",
			})
		}
	}
	for i := range s.Groups {
		c.Groups = append(c.Groups, s.Groups[i].Alerting(s.Site))
	}
	for i := range s.Actions {
		c.Actions = append(c.Actions, s.Actions[i].Alerting(s.Site))
	}
	c.Systems = append(c.Systems, alerting.SystemConfig{ID: ReadingsDroppedAlarm, Site: s.Site,
		Condition: alerting.ReadingsDropped, Priority: 2,
		Source: "DESIGN outbox.max_bytes: past it the oldest readings go first (counted, logged, alarmed)"})
	c.Systems = append(c.Systems, alerting.SystemConfig{ID: WriteFailedAlarm, Site: s.Site,
		Condition: alerting.WriteFailed, Priority: 1,
		Source: "the outbox cannot commit (disk full or failing): nothing new reaches the broker until it can"})
	return c
}

// WriteFailedAlarm is the site's alarm while its outbox cannot commit (the
// disk full or failing): alarms and commands wait in memory, readings are
// lost, nothing new reaches the control room.
const WriteFailedAlarm = "outbox." + string(alerting.WriteFailed)

// ReadingsDroppedAlarm is the site's alarm while its outbox drops readings
// (full at max_bytes): "<subject>.<condition>" like a group's alarm; no
// group or action alarm can have this id, whose condition is the system's.
const ReadingsDroppedAlarm = "outbox." + string(alerting.ReadingsDropped)

// engineCheck builds the engine once, so that cross references (an alarm's
// action, a group's sensors, a deviation's peer) are checked by the code
// that will use them. Warnings were already reported by each sensor's own
// check.
func (s *Site) engineCheck() error {
	_, err := alerting.New(s.AlertingConfig())
	var l configerr.List
	for _, fe := range configerr.Flatten(err) {
		if fe.Severity == configerr.SeverityError {
			l = append(l, fe)
		}
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
