package modbus

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// TestDeadDeviceSlowDialIsNotLate: a dead unit behind a TLS endpoint whose
// handshake takes 400 ms (a WAN link). Every poll dials again (the link is
// closed after each timeout); the dial must not count as the gateway
// running late, or the device's polls would be abandoned and it would never
// report bad quality.
func TestDeadDeviceSlowDialIsNotLate(t *testing.T) {
	certs := testenv.GenerateCerts(t, t.TempDir())
	serverCert, pool := serverTLS(t, certs)
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
	defer stop()
	require.Eventually(t, func() bool { return len(c.get("dead")) > 0 }, 10*time.Second, 20*time.Millisecond,
		"a dead device produced no batch (all polls classified late): %+v", g.Stats())
}
