package testenv

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMosquittoPlainKillRestart(t *testing.T) {
	m := StartMosquitto(t, MosquittoOptions{})
	require.True(t, strings.HasPrefix(m.URL, "tcp://127.0.0.1:"))
	pubsub(t, m, nil)
	m.Kill()
	_, err := net.DialTimeout("tcp", m.Addr, time.Second)
	require.Error(t, err, "broker still listening after Kill")
	m.Restart()
	pubsub(t, m, nil)
}

func TestMosquittoTLSAndPassword(t *testing.T) {
	m := StartMosquitto(t, MosquittoOptions{TLS: true, RequireClientCert: true, Users: map[string]string{"gw": "s3cret"}})
	pubsub(t, m, []string{"--cafile", m.Certs.CAFile, "--cert", m.Certs.ClientCertFile, "--key", m.Certs.ClientKeyFile, "-u", "gw", "-P", "s3cret"})
	out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port), "-t", "x", "-m", "y",
		"--cafile", m.Certs.CAFile, "--cert", m.Certs.ClientCertFile, "--key", m.Certs.ClientKeyFile, "-u", "gw", "-P", "wrong").CombinedOutput()
	require.Error(t, err, "a wrong password must be refused: %s", out)
}

func TestProxyCutRestore(t *testing.T) {
	m := StartMosquitto(t, MosquittoOptions{})
	p := StartProxy(t, m.Addr)
	c, err := net.Dial("tcp", p.Addr)
	require.NoError(t, err)
	p.Cut()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.Error(t, err, "a cut link must end the connection")
	_, err = net.DialTimeout("tcp", p.Addr, time.Second)
	require.Error(t, err)
	p.Restore()
	c2, err := net.Dial("tcp", p.Addr)
	require.NoError(t, err)
	require.NoError(t, c2.Close())
}

func TestInfluxWriteQueryKillRestart(t *testing.T) {
	in := StartInflux(t)
	require.NoError(t, in.WriteLines([]byte("m,k=a v=1 1000000000\n")))
	in.Kill()
	in.Restart()
	r, err := in.Query("SELECT count(v) FROM m")
	require.NoError(t, err)
	require.Len(t, r.Results, 1)
	require.Len(t, r.Results[0].Series, 1)
	require.EqualValues(t, 1, r.Results[0].Series[0].Values[0][1])
}

// pubsub publishes a retained message with mosquitto_pub and reads it back
// with mosquitto_sub: both independent clients, so no subscribe race.
func pubsub(t *testing.T, m *Mosquitto, extra []string) {
	t.Helper()
	base := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(m.Port), "-t", "t/1", "-q", "1"}
	o, err := exec.Command("mosquitto_pub", append(append(base, "-r", "-m", "hello"), extra...)...).CombinedOutput()
	require.NoError(t, err, "%s", o)
	o, err = exec.Command("mosquitto_sub", append(append(base, "-C", "1", "-W", "10"), extra...)...).CombinedOutput()
	require.NoError(t, err, "%s", o)
	require.Equal(t, "hello\n", string(o))
}
