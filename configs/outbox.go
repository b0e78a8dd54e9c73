package configs

import "github.com/canary-gw/canary/internal/configerr"

// Outbox is the durable store-and-forward queue.
type Outbox struct {
	// Dir holds the outbox file (outbox.db).
	Dir string `yaml:"dir"`
	// MaxBytes bounds the stored records; past it the oldest readings are
	// dropped (counted, logged, alarmed). Alarms are never dropped.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Release says when a published record leaves the outbox: "puback" (the
	// broker acknowledged it) or "receipt" (canary ingest reported it stored
	// in InfluxDB, which also survives a broker that loses what it acknowledged).
	Release string `yaml:"release"`
}

// Release modes.
const (
	ReleasePuback  = "puback"
	ReleaseReceipt = "receipt"
)

// defaultMaxBytes is outbox.max_bytes when left out.
const defaultMaxBytes ByteSize = 512 << 20

// SetDefaults fills dir, max_bytes and release.
func (c *Outbox) SetDefaults() {
	if c.Dir == "" {
		c.Dir = "./var/outbox"
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = defaultMaxBytes
	}
	if c.Release == "" {
		c.Release = ReleasePuback
	}
}

// Validate checks the outbox settings; paths are relative to the outbox section.
func (c *Outbox) Validate() error {
	var l configerr.List
	if c.Dir == "" {
		l.Add("dir", "required")
	}
	if c.MaxBytes < 1<<20 {
		l.Add("max_bytes", "%d bytes is too small (want at least 1MiB)", int64(c.MaxBytes))
	}
	if c.Release != ReleasePuback && c.Release != ReleaseReceipt {
		l.Add("release", "unknown release mode %q (want puback or receipt)", c.Release)
	}
	return l.Err()
}
