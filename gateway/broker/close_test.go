package broker_test

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/gateway/broker"
)

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session.
func connectPacket(id string) []byte {
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// TestCloseWhileClientsComeAndGo stops the broker while clients connect
// and leave as fast as they can, and each time it must stop within 10 s.
// mochi-mqtt v2.7.9's Server.Close can deadlock there
// (mochi-mqtt/server#488: it read-locks the client map twice, and a client
// that leaves between the two locks waits for the write lock while the
// second read lock waits for it), which Broker.Run works around. The
// window is nanoseconds wide: 120 rounds of this test did not hit it with
// the plain Close, so it guards the close under churn, not that race.
func TestCloseWhileClientsComeAndGo(t *testing.T) {
	deadline := time.Now().Add(10 * time.Second)
	rounds := 0
	for ; rounds < 15 && time.Now().Before(deadline); rounds++ {
		b, stopBroker := startStoppable(t, broker.Options{Listen: "127.0.0.1:0", Log: zerolog.Nop()})
		var stop atomic.Bool
		var wg sync.WaitGroup
		var sessions atomic.Int64
		for w := range 8 {
			wg.Go(func() {
				buf := make([]byte, 4)
				for i := 0; !stop.Load(); i++ {
					c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
					if err != nil {
						continue // closed: the round is ending
					}
					_ = c.SetDeadline(time.Now().Add(time.Second))
					if _, err := c.Write(connectPacket(fmt.Sprintf("churn-%d-%d", w, i))); err == nil {
						if _, err := c.Read(buf); err == nil {
							sessions.Add(1)
						}
					}
					_ = c.Close()
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		err := stopBroker(10 * time.Second)
		stop.Store(true)
		require.NoError(t, err, "round %d (%d sessions): deadlocked in Close?", rounds, sessions.Load())
		wg.Wait()
		require.Positive(t, sessions.Load(), "round %d: no client session before the close", rounds)
	}
	t.Logf("%d rounds", rounds)
}

// A connection accepted but not yet a client (its CONNECT not sent) is not
// in mochi's client list, so closing the listed clients leaves it: the
// broker's stop must still end it, at once, and not wait for the peer.
// (With mochi's own listener the stop waited for the peer to give up; and
// one counting itself in while the stop waited panicked.)
func TestStopEndsConnectionsNotYetClients(t *testing.T) {
	b, stopBroker := startStoppable(t, broker.Options{Listen: "127.0.0.1:0", Log: zerolog.Nop()})
	var conns []net.Conn
	for range 4 {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		require.NoError(t, err)
		defer c.Close()
		conns = append(conns, c)
	}
	// One real client too, which the stop disconnects as before.
	c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(connectPacket("listed"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	ack := make([]byte, 4)
	_, err = io.ReadFull(c, ack)
	require.NoError(t, err)
	require.Equal(t, byte(0x20), ack[0], "CONNACK")

	require.NoError(t, stopBroker(5*time.Second), "the stop waited for connections that never sent CONNECT")
	for i, c := range append(conns, c) {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err := io.ReadAll(c) // to EOF: the broker closed it
		require.NoError(t, err, "connection %d", i)
	}
}
