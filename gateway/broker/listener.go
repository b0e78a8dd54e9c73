package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// gatedListener is mochi's listener for a net.Listener, with a close that
// waits for every accepted connection's establish call to return.
//
// mochi-mqtt v2.7.9's own (listeners.Net) starts each accepted connection
// in a goroutine that counts itself into Listeners.ClientsWg only when it
// runs: one accepted just before the close can count itself in while
// CloseAll already waits on ClientsWg ("sync: WaitGroup is reused before
// previous Wait has returned", a panic seen on a loaded CI machine), or
// after CloseAll disconnected the clients it listed, when it connects and
// keeps the close waiting for as long as it stays. Here the close stops
// accepting, disconnects the listed clients, closes every connection still
// open (the ones still establishing are not listed yet) and waits for
// their establish calls; only then does mochi wait on ClientsWg, which
// nothing can join any more.
type gatedListener struct {
	id  string
	ln  net.Listener
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

var _ listeners.Listener = (*gatedListener)(nil)

func newGatedListener(id string, ln net.Listener) *gatedListener {
	return &gatedListener{id: id, ln: ln, conns: map[net.Conn]struct{}{}}
}

func (l *gatedListener) ID() string       { return l.id }
func (l *gatedListener) Address() string  { return l.ln.Addr().String() }
func (l *gatedListener) Protocol() string { return "tcp" }
func (l *gatedListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until the listener is closed and hands each
// to establish in a goroutine of its own, counted before it starts.
func (l *gatedListener) Serve(establish listeners.EstablishFn) {
	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: wait and accept again, as
			// net/http does, instead of accepting nothing any more.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if l.log != nil {
				l.log.Warn("accept failed; retrying", "error", err, "retry", delay)
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = conn.Close()
			return
		}
		l.conns[conn] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			// mochi logs why a client's session ended itself.
			_ = establish(l.id, conn)
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
			_ = conn.Close()
		}()
	}
}

// Close stops accepting, disconnects the clients (closeClients, on the
// first call only), closes what is still connected and waits for every
// establish call to return.
func (l *gatedListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	first := !l.closed
	l.closed = true
	l.mu.Unlock()
	if first {
		_ = l.ln.Close()
		closeClients(l.id)
		l.mu.Lock()
		for c := range l.conns {
			_ = c.Close()
		}
		l.mu.Unlock()
	}
	l.wg.Wait()
}
