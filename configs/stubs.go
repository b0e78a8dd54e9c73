package configs

// The component sections below are placeholders filled in by the components'
// owners; each moves to its own file with its Validate.

// MQTT is the broker connection.
type MQTT struct {
	URL          string `yaml:"url"`
	ClientID     string `yaml:"client_id"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	TopicPrefix  string `yaml:"topic_prefix"`
	CAFile       string `yaml:"ca_file"`
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
}

// Outbox is the durable store-and-forward queue.
type Outbox struct {
	Dir      string   `yaml:"dir"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	Release  string   `yaml:"release"`
}

// HTTP is the gateway's API and UI listener.
type HTTP struct {
	Listen string `yaml:"listen"`
}

// InfluxDB is an optional direct write from the edge.
type InfluxDB struct {
	URL       string `yaml:"url"`
	Org       string `yaml:"org"`
	Bucket    string `yaml:"bucket"`
	TokenFile string `yaml:"token_file"`
}

// Group is a voting group of redundant sensors.
type Group struct {
	ID string `yaml:"id"`
}

// Action is a named interlock action: a Modbus write to a configured
// register, verified by read-back.
type Action struct {
	ID string `yaml:"id"`
}

// Simulation holds the simulator's per-sensor physics overrides and scenarios.
type Simulation struct {
	Seed int64 `yaml:"seed"`
}
