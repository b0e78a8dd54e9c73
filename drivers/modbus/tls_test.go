package modbus

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// serverTLS loads the test server's certificate and the CA its clients
// must be signed by.
func serverTLS(t *testing.T, certs testenv.Certs) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certs.ServerCertFile, certs.ServerKeyFile)
	require.NoError(t, err)
	caPEM, err := os.ReadFile(certs.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	return cert, pool
}

// startTLSServer starts a tcp+tls:// Modbus server (the library's, with
// mutual authentication) for the test, and returns its URL and the
// certificates its clients use.
func startTLSServer(t *testing.T) (string, testenv.Certs) {
	t.Helper()
	certs := testenv.GenerateCerts(t, t.TempDir())
	serverCert, pool := serverTLS(t, certs)
	url := fmt.Sprintf("tcp+tls://127.0.0.1:%d", testenv.FreePort(t))
	srv, err := mb.NewServer(&mb.ServerConfiguration{URL: url, TLSServerCert: &serverCert, TLSClientCAs: pool,
		MaxClients: 4, Timeout: 10 * time.Second}, benchHandler{})
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() { _ = srv.Stop() })
	return url, certs
}

// TestIntegrationPollTCPTLS polls over tcp+tls:// (MBAP over TLS with
// mutual authentication, as the Modbus/TCP Security spec requires) against
// a TLS server, with the CA, client certificate and key taken from the
// device config's files; and checks that a client without the server's CA
// gets bad readings, not values.
func TestIntegrationPollTCPTLS(t *testing.T) {
	url, certs := startTLSServer(t)

	sensors := []SensorConfig{sensor("a", "holding", 0, "float32", "ABCD"), sensor("b", "input", 2, "float32", "ABCD")}
	d := device("tls-dev", url, 1, 200*time.Millisecond, sensors)
	d.Config.CAFile, d.Config.CertFile, d.Config.KeyFile = certs.CAFile, certs.ClientCertFile, certs.ClientKeyFile
	d.Config.Timeout = 2 * time.Second
	d.Config.Poll = 3 * time.Second
	require.NoError(t, d.Config.Validate())

	var mu sync.Mutex
	var got []Batch
	g, stop := runGroup(t, []Device{d}, func(b Batch) { mu.Lock(); got = append(got, b); mu.Unlock() })
	_ = g
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	mu.Lock()
	first := append([]Batch(nil), got...)
	mu.Unlock()
	require.NotEmpty(t, first, "no poll over TLS")
	b := first[0]
	require.NoError(t, b.Err)
	for _, r := range b.Readings {
		require.Equal(t, QualityGood, r.Quality, r.Reason)
		require.Equal(t, 1.5, r.Value)
	}

	// A client that trusts another CA must not get values.
	other := testenv.GenerateCerts(t, t.TempDir())
	d2 := device("tls-wrong-ca", url, 1, 3*time.Second, []SensorConfig{sensor("a", "holding", 0, "float32", "ABCD")})
	d2.Config.CAFile, d2.Config.CertFile, d2.Config.KeyFile = other.CAFile, other.ClientCertFile, other.ClientKeyFile
	d2.Config.Timeout = 2 * time.Second
	var bad []Batch
	_, stop2 := runGroup(t, []Device{d2}, func(b Batch) { mu.Lock(); bad = append(bad, b); mu.Unlock() })
	deadline = time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(bad)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop2()
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, bad)
	require.Error(t, bad[0].Err)
	require.Equal(t, QualityBad, bad[0].Readings[0].Quality)
}
