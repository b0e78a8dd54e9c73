package ingest

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loopbackPair is a real TCP connection on 127.0.0.1: the client side
// wrapped, the server side raw.
func loopbackPair(t *testing.T) (*bufferedConn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	srv, ok := <-accepted
	require.True(t, ok, "accept")
	t.Cleanup(func() { _ = srv.Close() })
	return newBufferedConn(raw), srv
}

func TestBufferedConnSendsSmallWritesTogetherInOrder(t *testing.T) {
	c, srv := loopbackPair(t)
	defer c.Close()
	var want []byte
	for i := 0; i < 100; i++ {
		p := []byte{0x40, 0x02, 0, byte(i)} // a PUBACK
		n, err := c.Write(p)
		require.NoError(t, err)
		require.Equal(t, 4, n)
		want = append(want, p...)
	}
	got := make([]byte, len(want))
	require.NoError(t, srv.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := io.ReadFull(srv, got)
	require.NoError(t, err, "the timer flushes without another write")
	require.Equal(t, want, got)

	// A write of flushSize or more goes out at once.
	big := bytes.Repeat([]byte{7}, flushSize)
	_, err = c.Write(big)
	require.NoError(t, err)
	got = make([]byte, len(big))
	_, err = io.ReadFull(srv, got)
	require.NoError(t, err)
	require.Equal(t, big, got)
}

func TestBufferedConnCloseSendsWhatIsBuffered(t *testing.T) {
	c, srv := loopbackPair(t)
	_, err := c.Write([]byte("last acks"))
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, srv.SetReadDeadline(time.Now().Add(5*time.Second)))
	got, err := io.ReadAll(srv)
	require.NoError(t, err)
	require.Equal(t, "last acks", string(got))
	_, err = c.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed)
}

func TestBufferedConnReadsThroughBuffer(t *testing.T) {
	c, srv := loopbackPair(t)
	defer c.Close()
	msg := bytes.Repeat([]byte("0123456789"), 5000) // larger than the read buffer
	go func() { _, _ = srv.Write(msg) }()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, len(msg))
	// paho's way: the header a byte at a time, then the rest.
	_, err := io.ReadFull(c, got[:1])
	require.NoError(t, err)
	_, err = io.ReadFull(c, got[1:])
	require.NoError(t, err)
	require.Equal(t, msg, got)
}

// A write that fails (the peer is gone) is reported by every later Write,
// and the connection is closed so the reader fails too.
func TestBufferedConnFailedFlushClosesTheConnection(t *testing.T) {
	c, srv := loopbackPair(t)
	require.NoError(t, srv.(*net.TCPConn).SetLinger(0))
	require.NoError(t, srv.Close()) // RST
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Write([]byte("ack!"))
		if err == nil {
			time.Sleep(flushDelay)
		}
	}
	require.Error(t, err, "a write after the failed flush fails")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second)) // fails once closed, as it should
	_, rerr := c.Read(make([]byte, 1))
	require.Error(t, rerr)
}
