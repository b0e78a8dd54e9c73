package configs

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
