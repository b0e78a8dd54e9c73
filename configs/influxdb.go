package configs

// InfluxDB is an optional direct write from the edge.
type InfluxDB struct {
	URL       string `yaml:"url"`
	Org       string `yaml:"org"`
	Bucket    string `yaml:"bucket"`
	TokenFile string `yaml:"token_file"`
}
