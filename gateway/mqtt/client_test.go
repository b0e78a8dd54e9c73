package mqtt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
)

// TestBufferedOpenerSchemes: TCP and TLS brokers are buffered; websocket
// connections keep paho's own opener.
func TestBufferedOpenerSchemes(t *testing.T) {
	for url, want := range map[string]bool{
		"tcp://127.0.0.1:1883":  true,
		"mqtt://127.0.0.1:1883": true,
		"ssl://127.0.0.1:8883":  true,
		"ws://127.0.0.1:9001":   false,
	} {
		o, err := ClientOptions(configs.MQTT{URL: url}, "c")
		require.NoError(t, err, url)
		require.Equal(t, want, o.CustomOpenConnectionFn != nil, url)
	}
}

// tcpPair is a real loopback TCP connection: client and server ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			acc <- c
		}
		close(acc)
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-acc
	require.NotNil(t, server)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestBufferedConnReads: small reads of packets sent in one burst are
// served whole and in order, and a closed peer ends the stream with EOF.
func TestBufferedConnReads(t *testing.T) {
	a, b := tcpPair(t)
	c := newBufferedConn(a, time.Second)
	burst := []byte{0x40, 0x02, 0x00, 0x01, 0x40, 0x02, 0x00, 0x02} // two PUBACKs
	_, err := b.Write(burst)
	require.NoError(t, err)
	require.NoError(t, b.Close())
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

// TestBufferedConnWritesInOrder: everything written, by several writers
// and in bursts larger than the pending bound, arrives whole and each
// writer's packets in its order; Close sends what was still pending.
func TestBufferedConnWritesInOrder(t *testing.T) {
	a, b := tcpPair(t)
	c := newBufferedConn(a, 5*time.Second)
	const writers, packets = 4, 3000
	pkt := func(w, i int) []byte {
		return bytes.Repeat([]byte{byte('a' + w)}, 1+(i*7)%200) // varying sizes
	}
	var want [writers][]byte
	var wg sync.WaitGroup
	for w := range writers {
		for i := range packets {
			want[w] = append(want[w], pkt(w, i)...)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range packets {
				_, err := c.Write(pkt(w, i))
				require.NoError(t, err)
			}
		}()
	}
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	wg.Wait()
	require.NoError(t, c.Close()) // flushes what is pending
	all := <-got
	var per [writers][]byte
	for _, ch := range all {
		per[ch-'a'] = append(per[ch-'a'], ch)
	}
	total := 0
	for w := range writers {
		require.Equal(t, want[w], per[w], "writer %d", w)
		total += len(want[w])
	}
	require.Len(t, all, total)
}

// TestBufferedConnWriteErrorIsSticky: once a send fails, every later Write
// fails and the connection is closed, so paho's reader sees the loss.
func TestBufferedConnWriteErrorIsSticky(t *testing.T) {
	a, b := tcpPair(t)
	c := newBufferedConn(a, time.Second)
	require.NoError(t, b.(*net.TCPConn).SetLinger(0))
	require.NoError(t, b.Close()) // the peer resets the connection
	var err error
	for i := 0; i < 10_000 && err == nil; i++ {
		_, err = c.Write(make([]byte, 1024))
		if err == nil && i%100 == 99 {
			// Give the flusher a chance to hit the reset.
			c.mu.Lock()
			for len(c.pending) > 0 && c.err == nil {
				c.drained.Wait()
			}
			c.mu.Unlock()
		}
	}
	require.Error(t, err, "writes to a reset connection must fail")
	_, err2 := c.Write([]byte{1})
	require.ErrorIs(t, err2, errors.Unwrap(err))
	_, rerr := c.Read(make([]byte, 1))
	require.Error(t, rerr, "the connection is closed after a failed send")
	_ = c.Close() // already closed by the failed send
}
