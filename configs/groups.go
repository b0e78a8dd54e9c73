package configs

// Group is a voting group of redundant sensors.
type Group struct {
	ID string `yaml:"id"`
}

// Action is a named interlock action: a Modbus write to a configured
// register, verified by read-back.
type Action struct {
	ID string `yaml:"id"`
}
