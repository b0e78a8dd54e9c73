package configs

// HTTP is the gateway's API and UI listener.
type HTTP struct {
	Listen string `yaml:"listen"`
}
