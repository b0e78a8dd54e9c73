package configs

// Simulation holds the simulator's per-sensor physics overrides and scenarios.
type Simulation struct {
	Seed int64 `yaml:"seed"`
}
