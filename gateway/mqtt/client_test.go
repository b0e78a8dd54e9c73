package mqtt

import (
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
)

// TestBufferedOpenerOnlyForPlainTCP: plain TCP brokers are read through a
// buffer; TLS and websocket connections keep paho's own dialer.
func TestBufferedOpenerOnlyForPlainTCP(t *testing.T) {
	for url, want := range map[string]bool{
		"tcp://127.0.0.1:1883":  true,
		"mqtt://127.0.0.1:1883": true,
		"ssl://127.0.0.1:8883":  false,
		"ws://127.0.0.1:9001":   false,
	} {
		o, err := ClientOptions(configs.MQTT{URL: url}, "c")
		require.NoError(t, err, url)
		require.Equal(t, want, o.CustomOpenConnectionFn != nil, url)
	}
}

// TestBufferedConnReads: small reads of packets written in one burst are
// served whole and in order, and a closed peer ends the stream with EOF.
func TestBufferedConnReads(t *testing.T) {
	a, b := net.Pipe()
	c := &bufferedConn{Conn: a, r: newReader(a)}
	burst := []byte{0x40, 0x02, 0x00, 0x01, 0x40, 0x02, 0x00, 0x02} // two PUBACKs
	go func() {
		_, _ = b.Write(burst)
		_ = b.Close()
	}()
	var got []byte
	one := make([]byte, 1)
	for {
		n, err := c.Read(one)
		got = append(got, one[:n]...)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	require.Equal(t, burst, got)
}
