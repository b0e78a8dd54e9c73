package configs

import (
	"net/url"
	"strings"

	"github.com/canary-gw/canary/internal/configerr"
)

// MQTT is the broker connection.
type MQTT struct {
	// URL is the broker: tcp://host:port, or ssl://host:port for TLS
	// (also tls://, mqtts://); ws:// and wss:// work too.
	URL string `yaml:"url"`
	// ClientID must be stable: the broker keys sessions and wills on it.
	// The gateway defaults it to canary-<site>; canary ingest requires it
	// (one per replica).
	ClientID string `yaml:"client_id"`
	// Username, with the password read from PasswordFile or, when that is
	// empty, from the CANARY_MQTT_PASSWORD environment variable.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// TopicPrefix is the first topic level; the default is "canary".
	TopicPrefix string `yaml:"topic_prefix"`
	// CAFile verifies the broker's certificate (system roots when empty);
	// CertFile and KeyFile are the client certificate for mutual TLS.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// MQTTPasswordEnv is the environment variable read for the MQTT password
// when no password_file is configured.
const MQTTPasswordEnv = "CANARY_MQTT_PASSWORD"

// SetDefaults fills the broker URL and topic prefix.
func (c *MQTT) SetDefaults() {
	if c.URL == "" {
		c.URL = "tcp://127.0.0.1:1883"
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = "canary"
	}
}

// TLS reports whether the URL asks for TLS.
func (c *MQTT) TLS() bool {
	u, err := url.Parse(c.URL)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "wss":
		return true
	}
	return false
}

// Validate checks the connection settings; paths are relative to the mqtt section.
func (c *MQTT) Validate() error {
	var l configerr.List
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		l.Add("url", "required")
	case err != nil:
		l.Add("url", "invalid URL %q: %v", c.URL, err)
	default:
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "ws", "wss":
		default:
			l.Add("url", "unsupported scheme %q (want tcp:// or ssl://, also ws:// or wss://)", u.Scheme)
		}
		if u.Host == "" || u.Port() == "" {
			l.Add("url", "%q needs host:port", c.URL)
		}
		if u.User != nil {
			// A secret in the URL ends up in every log line that names the
			// broker.
			l.Add("url", "credentials in the URL are not allowed: use username and password_file (or %s)", MQTTPasswordEnv)
		}
	}
	if !validTopicLevel(c.TopicPrefix) {
		l.Add("topic_prefix", "%q is not one topic level (no '/', '+', '#', not empty)", c.TopicPrefix)
	}
	if c.PasswordFile != "" && c.Username == "" {
		l.Add("password_file", "set without username")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		if c.CertFile == "" {
			l.Add("cert_file", "required with key_file")
		} else {
			l.Add("key_file", "required with cert_file")
		}
	}
	if !c.TLS() {
		for _, f := range []struct{ path, v string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
			if f.v != "" {
				l.Add(f.path, "needs a TLS url (ssl://host:port), got %q", c.URL)
			}
		}
	}
	if strings.ContainsAny(c.ClientID, "+#/") {
		l.Add("client_id", "%q must not contain '/', '+' or '#'", c.ClientID)
	}
	return l.Err()
}

func validTopicLevel(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/+#\x00")
}
