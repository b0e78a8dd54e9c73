// Package configs is the site config: its schema (composing the config types
// that drivers/modbus and alerting own), loading with line numbers, defaults
// and validation. The example YAML files beside it are loaded by a test.
//
// It imports drivers/modbus and alerting, and nothing above them.
package configs

import (
	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/drivers/modbus"
)

// Site is one edge box's configuration: one YAML file per site.
type Site struct {
	// Site is the site id used in topics and tags: [a-z0-9][a-z0-9_-]*.
	Site string `yaml:"site"`
	// Name is the display name.
	Name       string      `yaml:"name"`
	MQTT       MQTT        `yaml:"mqtt"`
	Outbox     Outbox      `yaml:"outbox"`
	HTTP       HTTP        `yaml:"http"`
	InfluxDB   *InfluxDB   `yaml:"influxdb"`
	Devices    []Device    `yaml:"devices"`
	Groups     []Group     `yaml:"groups"`
	Actions    []Action    `yaml:"actions"`
	Simulation *Simulation `yaml:"simulation"`
}

// Device is one Modbus device and its sensors.
type Device struct {
	modbus.DeviceConfig `yaml:",inline"`
	Sensors             []Sensor `yaml:"sensors"`
}

// Sensor is one measured point: where it lives in the device, what it
// measures and its alarms.
type Sensor struct {
	modbus.SensorConfig `yaml:",inline"`
	// Kind picks the preset: unit, valid range, alarm limits.
	Kind string `yaml:"kind"`
	// Profile picks a preset variant (e.g. coal-face methane vs return airway).
	Profile string `yaml:"profile"`
	// Unit overrides the kind's engineering unit.
	Unit string `yaml:"unit"`
	// Alarms overrides and adds to the preset.
	Alarms alerting.SensorAlarms `yaml:"alarms"`
}
