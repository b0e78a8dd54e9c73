package configs

import (
	"fmt"
	"os"
	"time"

	"github.com/canary-gw/canary/internal/configerr"
)

// Control is the config of `canary control -c control.yaml`: a central
// control room that shows many sites from the broker (retained alarm and
// status topics, readings, events) and sends operator actions on each
// site's cmd topic.
type Control struct {
	// MQTT is the broker connection. ClientID defaults to canary-control;
	// give each control-room instance its own.
	MQTT MQTT `yaml:"mqtt"`
	// HTTP is the control room's API and UI listener and its users
	// (default 127.0.0.1:8080). The users named here are the ones named in
	// the commands sent to the sites, so each site's http.users must know
	// them too (with role operator or engineer) when it lists users.
	HTTP HTTP `yaml:"http"`
	// Sites limits the control room to these site ids; empty means every
	// site on the broker.
	Sites []string `yaml:"sites"`
	// CommandTimeout is how long an operator action waits for the site's
	// answer on cmd/result before the HTTP call fails with 504. Default 10s.
	CommandTimeout time.Duration `yaml:"command_timeout"`
}

// defaultCommandTimeout is command_timeout when left out.
const defaultCommandTimeout = 10 * time.Second

// DefaultControlClientID is the control room's MQTT client id unless set.
const DefaultControlClientID = "canary-control"

// SetDefaults fills every section.
func (c *Control) SetDefaults() {
	c.MQTT.SetDefaults()
	if c.MQTT.ClientID == "" {
		c.MQTT.ClientID = DefaultControlClientID
	}
	c.HTTP.SetDefaults()
	if c.CommandTimeout == 0 {
		c.CommandTimeout = defaultCommandTimeout
	}
}

// Validate checks the whole control-room config.
func (c *Control) Validate() error {
	var l configerr.List
	l.Merge("mqtt", c.MQTT.Validate())
	l.Merge("http", c.HTTP.Validate())
	seen := map[string]bool{}
	for i, s := range c.Sites {
		p := fmt.Sprintf("sites[%d]", i)
		switch {
		case CheckID(s) != nil:
			l.Add(p, "%q is not a site id ([a-z0-9][a-z0-9_-]*)", s)
		case seen[s]:
			l.Add(p, "site %q is listed twice", s)
		}
		seen[s] = true
	}
	if c.CommandTimeout < 0 {
		l.Add("command_timeout", "must not be negative")
	}
	return l.Err()
}

// LoadControl reads and validates a control-room config with the same
// loader as a site config: unknown keys rejected, every problem located by
// line.
func LoadControl(path string) (*Control, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read control config: %w", err)
	}
	var c Control
	warnings, err := Parse(path, data, &c)
	if err != nil {
		return nil, warnings, err
	}
	return &c, warnings, nil
}
