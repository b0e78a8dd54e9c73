package modbus

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// A dead unit behind a TLS endpoint whose handshake takes 400 ms (a WAN
// link): every poll dials (the link is closed after each timeout), the dial
// counts into the request's elapsed time, and the timeout is classified as
// "the gateway ran late". No batch ever reaches the sink: no bad quality, no
// offline device state.
func TestDeadDeviceSlowDialIsNotLate(t *testing.T) {
	certs := testenv.GenerateCerts(t, t.TempDir())
	serverCert, err := tls.LoadX509KeyPair(certs.ServerCertFile, certs.ServerKeyFile)
	require.NoError(t, err)
	caPEM, err := os.ReadFile(certs.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				time.Sleep(400 * time.Millisecond) // slow link
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
				if tc.Handshake() != nil {
					return
				}
				_, _ = io.Copy(io.Discard, tc) // the unit behind it is dead: no answer
			}()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })

	url := fmt.Sprintf("tcp+tls://%s", l.Addr())
	d := device("dead", url, 1, time.Second, []SensorConfig{sensor("a", "holding", 0, "float32", "ABCD")})
	d.Config.CAFile, d.Config.CertFile, d.Config.KeyFile = certs.CAFile, certs.ClientCertFile, certs.ClientKeyFile
	d.Config.Timeout = 500 * time.Millisecond
	require.NoError(t, d.Config.Validate())
	var c batches
	g, stop := runGroup(t, []Device{d}, c.sink)
	time.Sleep(4500 * time.Millisecond)
	st := g.Stats()
	stop()
	t.Logf("stats: %+v", st)
	require.NotEmpty(t, c.get("dead"), "a dead device produced no batch (all polls classified late)")
}
