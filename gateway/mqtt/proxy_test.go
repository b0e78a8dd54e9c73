package mqtt

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/testenv"
)

// tlsEcho is a TLS server on loopback, with a certificate for
// 127.0.0.1/localhost signed by a throw-away CA, that echoes what it reads.
// It returns the listener's port and a client TLS config trusting the CA
// (as ClientOptions builds it: no ServerName).
func tlsEcho(t *testing.T) (port string, client *tls.Config) {
	t.Helper()
	certs := testenv.GenerateCerts(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certs.ServerCertFile, certs.ServerKeyFile)
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	client, err = TLSConfig(configs.MQTT{CAFile: certs.CAFile})
	require.NoError(t, err)
	require.Empty(t, client.ServerName)
	_, port, err = net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	return port, client
}

// socks5 is a minimal SOCKS5 proxy (no authentication, CONNECT only) on
// loopback; it counts the connections it relays.
func socks5(t *testing.T) (addr string, relayed *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	relayed = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				hdr := make([]byte, 2) // VER NMETHODS
				if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 5 {
					return
				}
				if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
					return
				}
				if _, err := c.Write([]byte{5, 0}); err != nil {
					return
				}
				req := make([]byte, 4) // VER CMD RSV ATYP
				if _, err := io.ReadFull(c, req); err != nil || req[1] != 1 {
					return
				}
				var host string
				switch req[3] {
				case 1:
					ip := make([]byte, 4)
					if _, err := io.ReadFull(c, ip); err != nil {
						return
					}
					host = net.IP(ip).String()
				case 3:
					n := make([]byte, 1)
					if _, err := io.ReadFull(c, n); err != nil {
						return
					}
					name := make([]byte, n[0])
					if _, err := io.ReadFull(c, name); err != nil {
						return
					}
					host = string(name)
				default:
					return
				}
				p := make([]byte, 2)
				if _, err := io.ReadFull(c, p); err != nil {
					return
				}
				up, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(p)))))
				if err != nil {
					_, _ = c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
					return
				}
				defer up.Close()
				relayed.Add(1)
				if _, err := c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}); err != nil {
					return
				}
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), relayed
}

// dialBroker opens a connection as paho would with ClientOptions' opener
// and checks it works both ways.
func dialBroker(t *testing.T, rawURL string, tc *tls.Config) {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	o := paho.NewClientOptions()
	o.SetTLSConfig(tc)
	o.SetDialer(&net.Dialer{Timeout: 5 * time.Second})
	conn, err := OpenBuffered(u.Scheme)(u, *o)
	require.NoError(t, err, rawURL)
	defer conn.Close()
	_, err = conn.Write([]byte("ping"))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, 4)
	_, err = io.ReadFull(conn, got)
	require.NoError(t, err)
	require.Equal(t, "ping", string(got))
}

// clearProxyEnv unsets every proxy variable for the test, so that the
// machine's own (a NO_PROXY that exempts loopback, say) does not decide
// which path is taken.
func clearProxyEnv(t *testing.T) {
	for _, k := range []string{"ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"} {
		t.Setenv(k, "")
	}
}

// TestTLSWithAllProxy: a TLS broker is reached whatever all_proxy says.
// golang.org/x/net/proxy speaks only SOCKS5: an http:// proxy is ignored
// and the connection made directly, a socks5:// one is used; either way the
// handshake names the broker's host (paho's own opener handshook a
// proxied connection without one: "tls: either ServerName or
// InsecureSkipVerify must be specified"). Both spellings of the variable
// count, as they do for golang.org/x/net/proxy and tcp:// brokers.
func TestTLSWithAllProxy(t *testing.T) {
	port, tc := tlsEcho(t)
	for _, scheme := range []string{"ssl", "tls", "mqtts"} {
		for _, host := range []string{"127.0.0.1", "localhost"} {
			broker := scheme + "://" + net.JoinHostPort(host, port)
			for _, env := range []string{"all_proxy", "ALL_PROXY"} {
				t.Run(broker+" "+env+" http", func(t *testing.T) {
					clearProxyEnv(t)
					t.Setenv(env, "http://proxy.invalid:3128")
					dialBroker(t, broker, tc)
				})
				t.Run(broker+" "+env+" socks5", func(t *testing.T) {
					clearProxyEnv(t)
					addr, relayed := socks5(t)
					t.Setenv(env, "socks5://"+addr)
					dialBroker(t, broker, tc)
					require.EqualValues(t, 1, relayed.Load(), "the connection goes through the proxy")
				})
			}
			t.Run(broker+" no proxy", func(t *testing.T) {
				clearProxyEnv(t)
				dialBroker(t, broker, tc)
			})
		}
	}

	t.Run("NO_PROXY exempts the broker", func(t *testing.T) {
		clearProxyEnv(t)
		addr, relayed := socks5(t)
		t.Setenv("all_proxy", "socks5://"+addr)
		t.Setenv("NO_PROXY", "127.0.0.1")
		dialBroker(t, "ssl://127.0.0.1:"+port, tc)
		require.Zero(t, relayed.Load())
	})
	t.Run("ServerName from the config wins", func(t *testing.T) {
		clearProxyEnv(t)
		named := tc.Clone()
		named.ServerName = "localhost"
		dialBroker(t, "ssl://127.0.0.1:"+port, named)
		require.Empty(t, tc.ServerName, "the caller's config is not changed")
		named.ServerName = "broker.example"
		u, _ := url.Parse("ssl://127.0.0.1:" + port)
		o := paho.NewClientOptions().SetTLSConfig(named)
		_, err := OpenBuffered("ssl")(u, *o)
		require.ErrorContains(t, err, "broker.example")
	})
}

// TestTCPWithAllProxy: a tcp:// broker follows ALL_PROXY too.
func TestTCPWithAllProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	clearProxyEnv(t)
	addr, relayed := socks5(t)
	t.Setenv("ALL_PROXY", "socks5://"+addr)
	dialBroker(t, "tcp://"+ln.Addr().String(), nil)
	require.EqualValues(t, 1, relayed.Load())
}
