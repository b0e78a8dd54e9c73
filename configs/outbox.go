package configs

// Outbox is the durable store-and-forward queue.
type Outbox struct {
	Dir      string   `yaml:"dir"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	Release  string   `yaml:"release"`
}
