package ingest

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// The ingest's broker connection buffers both ways. paho reads a packet's
// fixed header a byte at a time straight from the socket (three or four
// read system calls per message) and writes every packet, each 4-byte
// PUBACK included, with its own system call; acknowledging a batch of N
// messages was N writes. Reads go through a bufio.Reader; writes are
// collected for at most flushDelay (or flushSize bytes) and sent together,
// as Nagle's algorithm would: the broker sees the PUBACKs of a batch in one
// segment, a little later than each would have gone out on its own.
//
// Reads are not held back to gather a slow stream's messages: that was
// measured and costs more, since Go's netpoller wakes the process for
// every segment that arrives whether or not a goroutine waits to read it.
const (
	readBuffer = 16 << 10
	flushDelay = 2 * time.Millisecond
	flushSize  = 16 << 10
	// closeFlushTimeout bounds the last flush on Close (the DISCONNECT and
	// the last acknowledgements) when the broker no longer reads.
	closeFlushTimeout = time.Second
)

// openBufferedFunc returns the paho connection opener for URLs with the
// given scheme: paho's own dialing for tcp and TLS (proxy from the
// environment included), wrapped in a bufferedConn. Other schemes
// (websockets) return nil and keep paho's opener.
func openBufferedFunc(scheme string) paho.OpenConnectionFunc {
	switch scheme {
	case "mqtt", "tcp", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
	default:
		return nil
	}
	return func(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
		dialer := o.Dialer
		if dialer == nil {
			dialer = &net.Dialer{Timeout: 30 * time.Second}
		}
		var c net.Conn
		var err error
		switch uri.Scheme {
		case "mqtt", "tcp":
			c, err = proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
		default:
			if os.Getenv("all_proxy") == "" {
				c, err = tls.DialWithDialer(dialer, "tcp", uri.Host, o.TLSConfig)
				break
			}
			var raw net.Conn
			raw, err = proxy.FromEnvironment().Dial("tcp", uri.Host)
			if err != nil {
				break
			}
			tc := tls.Client(raw, o.TLSConfig)
			if err = tc.Handshake(); err != nil {
				_ = raw.Close()
				break
			}
			c = tc
		}
		if err != nil {
			return nil, err
		}
		return newBufferedConn(c), nil
	}
}

// bufferedConn is a net.Conn with buffered reads (one reader: paho's) and
// writes that are sent together after flushDelay.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu    sync.Mutex
	buf   []byte
	armed bool
	timer *time.Timer
	err   error // the first failed write; every later Write returns it
}

func newBufferedConn(c net.Conn) *bufferedConn {
	bc := &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readBuffer)}
	bc.timer = time.AfterFunc(time.Hour, bc.flushLater)
	bc.timer.Stop()
	return bc
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= flushSize {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if !c.armed {
		c.armed = true
		c.timer.Reset(flushDelay)
	}
	return len(p), nil
}

// flushLater runs on the timer. A failed write closes the connection, so
// that paho's reader fails too and paho reconnects: nothing written after
// the failure counts, and the broker delivers what was not acknowledged
// again.
func (c *bufferedConn) flushLater() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	if err := c.flushLocked(); err != nil {
		_ = c.Conn.Close()
	}
}

func (c *bufferedConn) flushLocked() error {
	if c.err != nil || len(c.buf) == 0 {
		return c.err
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if cap(c.buf) > 4*flushSize {
		c.buf = nil
	}
	if err != nil {
		c.err = err
	}
	return err
}

// Close sends what is buffered (bounded by closeFlushTimeout) and closes.
// When a flush is under way (the broker is not reading), it closes at
// once: that is what unblocks the flush.
func (c *bufferedConn) Close() error {
	c.timer.Stop()
	if c.mu.TryLock() {
		if len(c.buf) > 0 && c.err == nil {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
			_ = c.flushLocked()
		}
		c.err = net.ErrClosed
		c.mu.Unlock()
	}
	return c.Conn.Close()
}
