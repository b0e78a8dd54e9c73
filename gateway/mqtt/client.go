package mqtt

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"

	"github.com/canary-gw/canary/configs"
)

// ClientOptions builds paho options for cfg: broker URL, client id, TLS
// (CA, client certificate) and username with the password from
// password_file or the CANARY_MQTT_PASSWORD environment variable. It reads
// the files now, so a bad path is reported before any connection attempt.
func ClientOptions(cfg configs.MQTT, clientID string) (*paho.ClientOptions, error) {
	o := paho.NewClientOptions()
	o.AddBroker(cfg.URL)
	o.SetClientID(clientID)
	if cfg.Username != "" {
		o.SetUsername(cfg.Username)
		pw, err := password(cfg)
		if err != nil {
			return nil, err
		}
		o.SetPassword(pw)
	}
	if cfg.TLS() {
		tc, err := TLSConfig(cfg)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	if u, err := url.Parse(cfg.URL); err == nil && (u.Scheme == "tcp" || u.Scheme == "mqtt") {
		o.SetCustomOpenConnectionFn(openBuffered)
	}
	return o, nil
}

// openBuffered dials a plain TCP broker as paho does (a SOCKS proxy from
// ALL_PROXY included) and reads the connection through a buffer. paho
// reads every packet in at least three reads (type byte, length, body); on
// a bare TCP connection each is a system call, so a burst of 50 PUBACKs or
// PUBLISHes cost 150 calls where a buffer takes one or two. (A TLS
// connection already reads whole records into its own buffer.)
func openBuffered(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
	conn, err := proxy.FromEnvironmentUsing(o.Dialer).Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: conn, r: newReader(conn)}, nil
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 16<<10) }

// bufferedConn is a net.Conn whose reads go through r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func password(cfg configs.MQTT) (string, error) {
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("mqtt password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if pw, ok := os.LookupEnv(configs.MQTTPasswordEnv); ok {
		return pw, nil
	}
	return "", fmt.Errorf("mqtt username %q set but neither password_file nor %s", cfg.Username, configs.MQTTPasswordEnv)
}

// TLSConfig loads the CA and the client certificate of cfg.
func TLSConfig(cfg configs.MQTT) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Backoff is a jittered exponential backoff.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next wait: doubling from Min up to Max, each drawn
// uniformly from [d/2, d] so that many gateways do not reconnect in step.
func (b *Backoff) Next() time.Duration {
	d := b.Min << min(b.n, 30)
	if d <= 0 || d > b.Max {
		d = b.Max
	} else {
		b.n++
	}
	half := d / 2
	return half + rand.N(half+1)
}

// Reset starts again from Min after a success.
func (b *Backoff) Reset() { b.n = 0 }

// errTimeout is returned when a paho token did not complete in time.
var errTimeout = errors.New("timed out")

// wait waits for a token with a bound (paho tokens can hang, issue #613).
func wait(t paho.Token, d time.Duration) error {
	if !t.WaitTimeout(d) {
		return errTimeout
	}
	return t.Error()
}
