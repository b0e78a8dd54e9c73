package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"

	"github.com/canary-gw/canary/configs"
)

// ClientOptions builds paho options for cfg: broker URL, client id, TLS
// (CA, client certificate) and username with the password from
// password_file or the CANARY_MQTT_PASSWORD environment variable. It reads
// the files now, so a bad path is reported before any connection attempt.
func ClientOptions(cfg configs.MQTT, clientID string) (*paho.ClientOptions, error) {
	o := paho.NewClientOptions()
	o.AddBroker(cfg.URL)
	o.SetClientID(clientID)
	if cfg.Username != "" {
		o.SetUsername(cfg.Username)
		pw, err := password(cfg)
		if err != nil {
			return nil, err
		}
		o.SetPassword(pw)
	}
	if cfg.TLS() {
		tc, err := TLSConfig(cfg)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	if u, err := url.Parse(cfg.URL); err == nil {
		if open := OpenBuffered(u.Scheme); open != nil {
			o.SetCustomOpenConnectionFn(open)
		}
	}
	return o, nil
}

// OpenBuffered returns a paho connection opener for URLs of the given
// scheme that dials as paho does (a proxy from ALL_PROXY included, see
// proxyDialer) and buffers the connection both ways; nil for schemes it
// does not handle (websockets keep paho's own opener). paho reads every
// packet in at least three reads (type byte, length, body) and writes
// every packet on its own; on a bare TCP connection each is a system call,
// and on a VM every one also costs a wake-up of the other side. A burst of
// 50 publishes and their PUBACKs took some 200 calls; buffered, a handful.
// Written packets are sent as soon as the writer yields: an alarm is not
// held back, and a consumer's acknowledgements of a batch, handed over
// without yielding in between, still leave together. (The ingest gathered
// them for 2 ms: two timer wake-ups a second for nothing,
// docs/performance-history.md item 28.)
func OpenBuffered(scheme string) paho.OpenConnectionFunc {
	switch scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
	default:
		return nil
	}
	return func(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
		dialer := o.Dialer
		if dialer == nil {
			dialer = &net.Dialer{Timeout: 30 * time.Second}
		}
		var conn net.Conn
		var err error
		switch u.Scheme {
		case "tcp", "mqtt":
			conn, err = proxyDialer(dialer).Dial("tcp", u.Host)
		default:
			conn, err = dialTLS(dialer, u.Host, o.TLSConfig)
		}
		if err != nil {
			return nil, err
		}
		return newBufferedConn(conn, max(o.WriteTimeout, minFlushTimeout)), nil
	}
}

// proxyDialer is proxy.FromEnvironmentUsing(forward), reading the
// environment on every call rather than once per process: the proxy named
// by ALL_PROXY (or all_proxy) unless NO_PROXY (or no_proxy) exempts the
// host; forward itself when none is set, or when its scheme is one
// golang.org/x/net/proxy cannot speak (only socks5:// and socks5h://, an
// http:// proxy is ignored).
func proxyDialer(forward *net.Dialer) proxy.Dialer {
	all := firstEnv("ALL_PROXY", "all_proxy")
	if all == "" {
		return forward
	}
	u, err := url.Parse(all)
	if err != nil {
		return forward
	}
	p, err := proxy.FromURL(u, forward)
	if err != nil {
		return forward
	}
	no := firstEnv("NO_PROXY", "no_proxy")
	if no == "" {
		return p
	}
	ph := proxy.NewPerHost(p, forward)
	ph.AddFromString(no)
	return ph
}

// firstEnv is the first of the variables that is set and not empty.
func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// dialTLS dials host directly or through the proxy (proxyDialer) and
// completes the TLS handshake within the dialer's timeout, as
// tls.DialWithDialer does: the server name is the URL's host unless the
// config names one. (paho's own opener checks only all_proxy and handshakes
// a proxied connection without a server name, so every TLS connection
// failed with "either ServerName or InsecureSkipVerify must be specified"
// once all_proxy was set, even to an http:// proxy it then ignores.)
func dialTLS(dialer *net.Dialer, host string, tc *tls.Config) (net.Conn, error) {
	ctx := context.Background()
	if dialer.Timeout != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dialer.Timeout)
		defer cancel()
	}
	if !dialer.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dialer.Deadline)
		defer cancel()
	}
	if tc == nil {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		name, _, err := net.SplitHostPort(host)
		if err != nil {
			name = host
		}
		tc = tc.Clone()
		tc.ServerName = name
	}
	var raw net.Conn
	var err error
	pd := proxyDialer(dialer)
	if cd, ok := pd.(proxy.ContextDialer); ok {
		raw, err = cd.DialContext(ctx, "tcp", host)
	} else {
		raw, err = pd.Dial("tcp", host)
	}
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, tc)
	if err := c.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return c, nil
}

const (
	// maxPending bounds the bytes written but not yet sent: past it a
	// Write waits, so a stuck broker holds the writer up instead of
	// growing memory.
	maxPending = 256 << 10
	// minFlushTimeout bounds one flush when paho has no write timeout.
	minFlushTimeout = 10 * time.Second
	// closeGrace bounds the final flush in Close.
	closeGrace = time.Second
	// flushSize is the most one write sends (each under its own deadline).
	flushSize = 16 << 10
)

// bufferedConn reads through a buffer and coalesces writes: Write appends
// to a pending buffer and a flusher goroutine sends whatever accumulated
// once the writer yields, so the packets of one burst share a system call.
// A failed send is sticky: every later Write returns it and the connection
// is closed, so paho's reader notices the loss at once. Unsent packets are
// lost with the connection, exactly as if the kernel had lost them: QoS 1
// is completed by PUBACKs, never by a successful Write, and the publisher
// republishes everything unacknowledged on its next session.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	timeout time.Duration
	kick    chan struct{} // cap 1: something is pending
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the flusher has exited
	once    sync.Once

	mu      sync.Mutex
	drained *sync.Cond // the flusher took the pending bytes, or failed
	pending []byte
	spare   []byte // the flusher's previous buffer, reused
	err     error
	closed  bool      // Close was called: later Writes fail
	closeBy time.Time // set by Close: the last flush ends by then
}

// setDeadline sets the write deadline for a flush, no later than Close allows.
func (c *bufferedConn) setDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closeBy.IsZero() && c.closeBy.Before(t) {
		t = c.closeBy
	}
	_ = c.Conn.SetWriteDeadline(t)
}

func newBufferedConn(c net.Conn, timeout time.Duration) *bufferedConn {
	b := &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10), timeout: timeout,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	b.drained = sync.NewCond(&b.mu)
	go b.flushLoop()
	return b
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && !c.closed && len(c.pending) >= maxPending {
		c.drained.Wait()
	}
	if c.closed && c.err == nil {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.pending = append(c.pending, p...)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

// SetWriteDeadline is ignored: paho sets one around each packet, but the
// packet is sent later, by the flusher, under its own deadline.
func (c *bufferedConn) SetWriteDeadline(time.Time) error { return nil }

// Close sends what was written before it (a DISCONNECT, the last status),
// for at most the flush timeout, then closes the connection.
func (c *bufferedConn) Close() error {
	// Later Writes fail; a healthy link sends the last packets at once, a
	// stuck one (paho closes it because the keep-alive failed) must not
	// hold paho's connection-lost handling for the whole flush timeout.
	c.mu.Lock()
	c.closed = true
	c.closeBy = time.Now().Add(min(c.timeout, closeGrace))
	_ = c.Conn.SetWriteDeadline(c.closeBy)
	c.drained.Broadcast()
	c.mu.Unlock()
	c.once.Do(func() { close(c.stop) })
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
	return c.Conn.Close()
}

func (c *bufferedConn) flushLoop() {
	defer close(c.done)
	for {
		select {
		case <-c.kick:
			// Let the writer add the rest of its burst first.
			runtime.Gosched()
			if c.flush() != nil {
				return
			}
		case <-c.stop:
			_ = c.flush()
			return
		}
	}
}

func (c *bufferedConn) flush() error {
	c.mu.Lock()
	out := c.pending
	c.pending = c.spare[:0]
	err := c.err
	c.mu.Unlock()
	if err != nil || len(out) == 0 {
		c.spare = out
		return err
	}
	// The timeout bounds a stall, not a burst: each chunk gets its own
	// deadline, as paho gave each packet its own, so a slow link that keeps
	// moving is not dropped for the size of the backlog it drains.
	for b := out; len(b) > 0 && err == nil; {
		n := min(len(b), flushSize)
		c.setDeadline(time.Now().Add(c.timeout))
		_, err = c.Conn.Write(b[:n])
		b = b[n:]
	}
	c.mu.Lock()
	if err != nil {
		c.err = fmt.Errorf("mqtt send: %w", err)
	}
	c.drained.Broadcast()
	c.mu.Unlock()
	c.spare = out[:0]
	if err != nil {
		_ = c.Conn.Close()
	}
	return err
}

func password(cfg configs.MQTT) (string, error) {
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("mqtt password_file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			// A file not filled in yet: connecting with an empty password
			// would only be refused by the broker, later and less clearly.
			return "", fmt.Errorf("mqtt password_file %s is empty", cfg.PasswordFile)
		}
		return pw, nil
	}
	if pw, ok := os.LookupEnv(configs.MQTTPasswordEnv); ok {
		return pw, nil
	}
	return "", fmt.Errorf("mqtt username %q set but neither password_file nor %s", cfg.Username, configs.MQTTPasswordEnv)
}

// TLSConfig loads the CA and the client certificate of cfg.
func TLSConfig(cfg configs.MQTT) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Backoff is a jittered exponential backoff.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next wait: doubling from Min up to Max, each drawn
// uniformly from [d/2, d] so that many gateways do not reconnect in step.
func (b *Backoff) Next() time.Duration {
	d := b.Min << min(b.n, 30)
	if d <= 0 || d > b.Max {
		d = b.Max
	} else {
		b.n++
	}
	half := d / 2
	return half + rand.N(half+1)
}

// Reset starts again from Min after a success.
func (b *Backoff) Reset() { b.n = 0 }

// errTimeout is returned when a paho token did not complete in time.
var errTimeout = errors.New("timed out")

// wait waits for a token with a bound (paho tokens can hang, issue #613).
func wait(t paho.Token, d time.Duration) error {
	if !t.WaitTimeout(d) {
		return errTimeout
	}
	return SubscribeErr(t)
}

// ErrSubscriptionRefused is a SUBACK failure code (0x80): the broker's ACL
// or its dynamic-security role does not let this client subscribe.
var ErrSubscriptionRefused = errors.New("broker refused subscription")

// SubscribeErr is a completed token's error and, for a subscription, the
// first filter the broker refused: paho reports a SUBACK failure code
// (0x80, e.g. a topic its ACL denies) only in Result(), with Error() nil,
// so a refused subscription would otherwise look like a working one.
func SubscribeErr(t paho.Token) error {
	if err := t.Error(); err != nil {
		return err
	}
	st, ok := t.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	for filter, code := range st.Result() {
		if code == 0x80 {
			return fmt.Errorf("%w %s", ErrSubscriptionRefused, filter)
		}
	}
	return nil
}
