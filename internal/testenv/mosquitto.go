package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MosquittoOptions picks the broker variant.
type MosquittoOptions struct {
	// TLS serves MQTT over TLS only (ssl://), with a generated CA. Clients
	// must present a certificate signed by it when RequireClientCert is set.
	TLS               bool
	RequireClientCert bool
	// Users, when not empty, turns anonymous access off and writes a
	// password file (with mosquitto_passwd) holding these user → password pairs.
	Users map[string]string
	// MaxInflight is max_inflight_messages (0 keeps the default of 1000 here,
	// far above Mosquitto's own 20, so a manual-ack consumer can batch).
	MaxInflight int
	// Extra is appended verbatim to the generated mosquitto.conf.
	Extra string
}

// Mosquitto is a running broker. Kill and Restart keep its port and its
// persistence file, as a real broker restart would.
type Mosquitto struct {
	// URL is the client URL: tcp://127.0.0.1:PORT or ssl://127.0.0.1:PORT.
	URL string
	// Addr is host:port.
	Addr string
	Port int
	// Dir holds mosquitto.conf, the persistence file and the certificates.
	Dir string
	// Certs is set when TLS is on.
	Certs Certs
	// PasswordFile is set when Users is not empty.
	PasswordFile string

	proc *process
}

// StartMosquitto starts /usr/sbin/mosquitto with a private config:
// a loopback listener on a free port, persistence in t.TempDir(),
// max_queued_messages 0 (never drop queued QoS 1 messages).
func StartMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	bin := lookBinary(t, "/usr/sbin/mosquitto", "apt-get install -y mosquitto mosquitto-clients")
	dir := t.TempDir()
	port := FreePort(t)
	m := &Mosquitto{Dir: dir, Port: port, Addr: hostPort(port)}
	inflight := opts.MaxInflight
	if inflight == 0 {
		inflight = 1000
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "user root\npersistence true\npersistence_location %s/\nautosave_interval 1\n", dir)
	fmt.Fprintf(&conf, "max_queued_messages 0\nmax_inflight_messages %d\nlog_dest stderr\nlog_type error\nlog_type warning\n", inflight)
	fmt.Fprintf(&conf, "listener %d 127.0.0.1\n", port)
	if len(opts.Users) > 0 {
		m.PasswordFile = filepath.Join(dir, "passwd")
		writePasswordFile(t, m.PasswordFile, opts.Users)
		fmt.Fprintf(&conf, "allow_anonymous false\npassword_file %s\n", m.PasswordFile)
	} else {
		conf.WriteString("allow_anonymous true\n")
	}
	if opts.TLS {
		m.Certs = GenerateCerts(t, dir)
		fmt.Fprintf(&conf, "cafile %s\ncertfile %s\nkeyfile %s\n", m.Certs.CAFile, m.Certs.ServerCertFile, m.Certs.ServerKeyFile)
		if opts.RequireClientCert {
			conf.WriteString("require_certificate true\n")
		}
		m.URL = "ssl://" + m.Addr
	} else {
		m.URL = "tcp://" + m.Addr
	}
	conf.WriteString(opts.Extra)
	confPath := filepath.Join(dir, "mosquitto.conf")
	writeFile(t, confPath, []byte(conf.String()), 0o600)
	m.proc = &process{t: t, name: "mosquitto", bin: bin, args: []string{"-c", confPath}}
	m.proc.start()
	m.proc.waitTCP(m.Addr, 10*time.Second)
	t.Cleanup(func() { m.proc.signal(syscall.SIGTERM) })
	return m
}

func writePasswordFile(t testing.TB, path string, users map[string]string) {
	t.Helper()
	bin := lookBinary(t, "mosquitto_passwd", "apt-get install -y mosquitto")
	writeFile(t, path, nil, 0o600)
	for u, p := range users {
		out, err := exec.Command(bin, "-b", path, u, p).CombinedOutput()
		if err != nil {
			errorf(t, "mosquitto_passwd %s: %v: %s", u, err, out)
		}
	}
}

// Kill stops the broker with SIGKILL: whatever it had not saved is gone.
func (m *Mosquitto) Kill() { m.proc.signal(syscall.SIGKILL) }

// Stop stops the broker with SIGTERM, so it saves its persistence file.
func (m *Mosquitto) Stop() { m.proc.signal(syscall.SIGTERM) }

// Restart starts the broker again on the same port with the same files.
func (m *Mosquitto) Restart() {
	m.proc.t.Helper()
	m.proc.start()
	m.proc.waitTCP(m.Addr, 10*time.Second)
}

// Output is what the broker logged (errors and warnings).
func (m *Mosquitto) Output() string { return m.proc.output() }
