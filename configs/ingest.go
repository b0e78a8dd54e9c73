package configs

import (
	"fmt"
	"os"
	"time"

	"github.com/canary-gw/canary/internal/configerr"
)

// Ingest is the config of `canary ingest -c ingest.yaml`: the MQTT → InfluxDB
// writer that runs centrally, as N replicas on one shared subscription.
type Ingest struct {
	MQTT     IngestMQTT `yaml:"mqtt"`
	InfluxDB InfluxDB   `yaml:"influxdb"`
	// Sites limits the subscription to these site ids; empty means every site (+).
	Sites []string `yaml:"sites"`
	// Metrics is the listen address of /metrics and /healthz; empty turns it off.
	Metrics string `yaml:"metrics"`
}

// IngestMQTT is the broker connection of the ingest plus its share group.
type IngestMQTT struct {
	MQTT `yaml:",inline"`
	// ShareGroup names the MQTT shared subscription ($share/<group>/...):
	// replicas in one group split the messages between them.
	ShareGroup string `yaml:"share_group"`
}

// SetDefaults fills every section.
func (c *Ingest) SetDefaults() {
	c.MQTT.SetDefaults()
	if c.MQTT.ShareGroup == "" {
		c.MQTT.ShareGroup = "canary-ingest"
	}
	if c.InfluxDB.BatchWait == 0 {
		c.InfluxDB.BatchWait = IngestBatchWait
	}
	c.InfluxDB.SetDefaults()
}

// IngestBatchWait is the ingest's default influxdb.batch_wait, longer than
// the edge's 200ms: every batch costs the ingest a write request, receipts
// and a round of acknowledgements, and on the reference load (1000
// readings/s) 1s instead of 200ms cut its CPU by a third. Points reach
// InfluxDB at most this much later; alarms do not wait for InfluxDB.
const IngestBatchWait = time.Second

// Validate checks the whole ingest config.
func (c *Ingest) Validate() error {
	var l configerr.List
	l.Merge("mqtt", c.MQTT.MQTT.Validate())
	if c.MQTT.ClientID == "" {
		l.Add("mqtt.client_id", "required: a fixed id per replica keeps its session (and unacknowledged messages) across restarts")
	}
	if !validTopicLevel(c.MQTT.ShareGroup) {
		l.Add("mqtt.share_group", "%q is not one topic level (no '/', '+', '#', not empty)", c.MQTT.ShareGroup)
	}
	l.Merge("influxdb", c.InfluxDB.Validate())
	for i, s := range c.Sites {
		if CheckID(s) != nil {
			l.Add(fmt.Sprintf("sites[%d]", i), "%q is not a site id ([a-z0-9][a-z0-9_-]*)", s)
		}
	}
	if c.Metrics != "" {
		// canary ingest listens on it at start; an address it cannot take
		// must fail here, not there.
		checkListen(&l, "metrics", c.Metrics, "127.0.0.1:9108")
	}
	return l.Err()
}

// LoadIngest reads and validates an ingest config with the same loader as a
// site config: unknown keys rejected, every problem located by line.
func LoadIngest(path string) (*Ingest, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read ingest config: %w", err)
	}
	var c Ingest
	warnings, err := Parse(path, data, &c)
	if err != nil {
		return nil, warnings, err
	}
	return &c, warnings, nil
}
