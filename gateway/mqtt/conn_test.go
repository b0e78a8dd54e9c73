package mqtt

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Write after Close must fail (as on a net.Conn), not report success for
// bytes that will never be sent.
func TestBufferedConnWriteAfterClose(t *testing.T) {
	a, _ := tcpPair(t)
	c := newBufferedConn(a, time.Second)
	require.NoError(t, c.Close())
	_, err := c.Write([]byte{0xe0, 0x00})
	require.Error(t, err, "Write after Close reported success")
}

// A link that moves 100 KiB/s: paho's per-packet write timeout (here 200 ms)
// is easily met by 1 KiB packets; a coalesced burst must not get one
// deadline for everything pending, or a slow link draining a backlog is
// dropped while it keeps moving.
func TestBufferedConnSlowLinkBurst(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	var got atomic.Int64
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := b.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // 100 KiB/s
		}
	}()
	c := newBufferedConn(a, 200*time.Millisecond)
	defer c.Close()
	var err error
	for i := 0; i < 64 && err == nil; i++ {
		_, err = c.Write(make([]byte, 1024))
	}
	require.NoError(t, err)
	time.Sleep(time.Second)
	_, err = c.Write([]byte{1})
	require.NoError(t, err, "a link that keeps moving was dropped after %d of 65536 bytes", got.Load())
}

// Closing a connection whose peer stopped reading (the case paho closes it
// for: keep-alive lost) must not wait for the whole flush timeout: paho's
// connection-lost handling, and so the reconnect, waits on it.
func TestBufferedConnCloseStuck(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := newBufferedConn(a, 2*time.Second)
	_, err := c.Write([]byte{0x30, 0x01, 0x00})
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	_ = c.Close()
	t.Logf("Close took %v", time.Since(start))
	require.Less(t, time.Since(start), 1500*time.Millisecond)
}
