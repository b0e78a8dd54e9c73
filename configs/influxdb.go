package configs

import (
	"net/url"
	"strings"
	"time"

	"github.com/canary-gw/canary/internal/configerr"
)

// InfluxDB is where readings and alarms are stored: the target of canary
// ingest, and an optional direct write from the edge.
type InfluxDB struct {
	// URL of the server, e.g. http://127.0.0.1:8086.
	URL string `yaml:"url"`
	// Org is required by InfluxDB 2.x and ignored by 1.8.
	Org string `yaml:"org"`
	// Bucket; for InfluxDB 1.8 it is "db/rp" (e.g. canary/autogen).
	Bucket string `yaml:"bucket"`
	// TokenFile holds the API token (for 1.8 with auth: "user:password").
	// When empty the CANARY_INFLUXDB_TOKEN environment variable is used, if set.
	TokenFile string `yaml:"token_file"`
	// BatchPoints is how many points go into one write (default 5000).
	BatchPoints int `yaml:"batch_points"`
	// BatchWait is how long a partial batch waits for more in canary
	// ingest; a site's direct writer writes a commit's records at once
	// and spaces its writes by it (default 200ms; docs/config.md).
	BatchWait time.Duration `yaml:"batch_wait"`
	// Timeout bounds one write request (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// InfluxTokenEnv is read for the token when no token_file is configured.
const InfluxTokenEnv = "CANARY_INFLUXDB_TOKEN"

// Defaults of the influxdb section (the ingest has its own batch_wait).
const (
	defaultBatchWait     = 200 * time.Millisecond
	defaultInfluxTimeout = 10 * time.Second
)

// SetDefaults fills batching and the timeout.
func (c *InfluxDB) SetDefaults() {
	if c.BatchPoints == 0 {
		c.BatchPoints = 5000
	}
	if c.BatchWait == 0 {
		c.BatchWait = defaultBatchWait
	}
	if c.Timeout == 0 {
		c.Timeout = defaultInfluxTimeout
	}
}

// Validate checks the settings; paths are relative to the influxdb section.
func (c *InfluxDB) Validate() error {
	var l configerr.List
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		l.Add("url", "required")
	case err != nil:
		l.Add("url", "invalid URL %q: %v", c.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		l.Add("url", "unsupported scheme %q (want http or https)", u.Scheme)
	case u.Host == "":
		l.Add("url", "%q has no host", c.URL)
	}
	if c.Bucket == "" {
		l.Add("bucket", "required (for InfluxDB 1.8: db/rp, e.g. canary/autogen)")
	} else if strings.Count(c.Bucket, "/") > 1 || strings.HasPrefix(c.Bucket, "/") || strings.HasSuffix(c.Bucket, "/") {
		l.Add("bucket", "%q: want a bucket name or db/rp", c.Bucket)
	}
	if c.BatchPoints < 1 || c.BatchPoints > 100000 {
		l.Add("batch_points", "%d out of range 1..100000", c.BatchPoints)
	}
	if c.BatchWait < 0 || c.BatchWait > time.Minute {
		l.Add("batch_wait", "%s out of range 0..1m", c.BatchWait)
	}
	if c.Timeout <= 0 {
		l.Add("timeout", "must be positive")
	}
	return l.Err()
}
