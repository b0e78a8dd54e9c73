package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

// mochi's packets package builds TPacketData, the packet cases of its own
// tests (0.36 MB of heap), at init in every binary that links it: every
// canary process, since the one binary holds the demo broker. Nothing
// outside mochi's tests reads it (the broker tests here run without it),
// so it is dropped at init and the next collection frees it
// (docs/performance-history.md, item 50).
func init() { packets.TPacketData = nil }

// DefaultListen is the listen address when none is given: loopback, and a
// free port chosen by the kernel (see Broker.URL).
const DefaultListen = "127.0.0.1:0"

// Options configure a Broker.
type Options struct {
	// Listen is host:port; default DefaultListen. A host that is not
	// loopback needs Ledger.
	Listen string
	// Listener, when set, is served instead of listening on Listen (its
	// address must be loopback unless Ledger is set).
	Listener net.Listener
	// Authenticate decides whether a client may connect with a user name
	// and password; ACL whether a user may publish (write) or subscribe to a
	// topic. Nil Authenticate lets every client connect and use every topic,
	// which is allowed on loopback only; nil ACL allows every topic to an
	// authenticated client.
	Authenticate func(user, password string) bool
	ACL          func(user, topic string, write bool) bool
	// MaxWritesPending bounds one client's outbound queue; past it mochi
	// drops messages for that client even at QoS 1. Default 65536.
	MaxWritesPending int32
	// MaxInflight bounds the unacknowledged QoS 1 messages per client;
	// past it mochi drops them. Default 65535 (the protocol maximum).
	MaxInflight uint16
	// Log receives the broker's own log lines (at warn level and above
	// unless the logger allows less).
	Log zerolog.Logger
}

// Broker is an embedded MQTT broker. Build with New, then Run.
type Broker struct {
	o     Options
	srv   *mochi.Server
	ready chan struct{}
	addr  atomic.Pointer[string]
}

// New checks the options and builds the broker; it does not listen.
func New(o Options) (*Broker, error) {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.MaxWritesPending <= 0 {
		o.MaxWritesPending = 1 << 16
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = 65535
	}
	addr := o.Listen
	if o.Listener != nil {
		addr = o.Listener.Addr().String()
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %q is not host:port", addr)
	}
	if o.Authenticate == nil && !loopback(host) {
		return nil, fmt.Errorf("broker: listen %q is reachable from the network: set Authenticate (and ACL) or listen on 127.0.0.1", addr)
	}

	// mochi narrates its life cycle at info; a healthy system is quiet.
	mochiLog := o.Log.With().Str("component", "broker").Logger()
	if mochiLog.GetLevel() < zerolog.WarnLevel {
		mochiLog = mochiLog.Level(zerolog.WarnLevel)
	}
	caps := mochi.NewDefaultServerCapabilities()
	// Retained alarm states must stay until the gateway clears them, and a
	// queued reading must wait for its subscriber however long it takes.
	caps.MaximumMessageExpiryInterval = 0
	caps.MaximumClientWritesPending = o.MaxWritesPending
	caps.MaximumInflight = o.MaxInflight
	caps.ReceiveMaximum = o.MaxInflight
	srv := mochi.New(&mochi.Options{
		Capabilities: caps,
		Logger:       slog.New(zerolog.NewSlogHandler(mochiLog)),
		// $SYS is of no use to canary; a long interval keeps it quiet.
		SysTopicResendInterval: 3600,
		// The paho interoperability flags: v3 clients get v3 behaviour.
		InlineClient: false,
	})
	srv.Options.Capabilities.Compatibilities.ObscureNotAuthorized = true
	srv.Options.Capabilities.Compatibilities.PassiveClientDisconnect = true
	srv.Options.Capabilities.Compatibilities.NoInheritedPropertiesOnAck = true
	// mochi denies everything without an auth hook.
	if err := srv.AddHook(&authHook{authenticate: o.Authenticate, acl: o.ACL}, nil); err != nil {
		return nil, fmt.Errorf("broker: auth: %w", err)
	}
	return &Broker{o: o, srv: srv, ready: make(chan struct{})}, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run listens and serves until ctx is done, then disconnects every client
// and stops. It returns nil after a clean stop.
func (b *Broker) Run(ctx context.Context) error {
	ln := b.o.Listener
	if ln == nil {
		var lc net.ListenConfig
		var err error
		ln, err = lc.Listen(ctx, "tcp", b.o.Listen)
		if err != nil {
			return fmt.Errorf("broker listen %s: %w", b.o.Listen, err)
		}
	}
	a := ln.Addr().String()
	b.addr.Store(&a)
	if err := b.srv.AddListener(newGatedListener("tcp", ln)); err != nil {
		_ = ln.Close()
		return fmt.Errorf("broker: %w", err)
	}
	if err := b.srv.Serve(); err != nil {
		_ = ln.Close()
		return fmt.Errorf("broker serve: %w", err)
	}
	b.o.Log.Info().Str("component", "broker").Str("addr", a).Msg("mqtt broker listening")
	close(b.ready)
	<-ctx.Done()
	// mochi-mqtt v2.7.9's Close can deadlock (mochi-mqtt/server#488, the
	// fix unreleased): it lists each listener's clients with
	// GetByListener, which read-locks the client map twice, and a client
	// that connects or leaves between the two locks waits for the write
	// lock while the second read lock waits for it. It hung a test run
	// here. So the listener is closed first, its clients disconnected as
	// Close would, listed with one read lock (GetAll); Close then finds it
	// closed (a gatedListener lists its clients only once), and waits for
	// the clients' goroutines.
	b.srv.Listeners.CloseAll(func(listener string) {
		for _, cl := range b.srv.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	if err := b.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("broker close: %w", err)
	}
	b.o.Log.Info().Str("component", "broker").Msg("mqtt broker stopped")
	return nil
}

// Ready is closed once the broker accepts connections.
func (b *Broker) Ready() <-chan struct{} { return b.ready }

// Addr is the listening host:port (after Ready).
func (b *Broker) Addr() string {
	if p := b.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// URL is the broker's address as an MQTT url, tcp://host:port (after Ready).
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Dropped is how many messages the broker dropped for slow subscribers
// (a full write queue or inflight window); it should stay 0.
func (b *Broker) Dropped() int64 { return atomic.LoadInt64(&b.srv.Info.MessagesDropped) }

// Clients is the number of connected clients.
func (b *Broker) Clients() int64 { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) }

// authHook applies Options.Authenticate and Options.ACL. (mochi's own
// ledger hook would pull in a second YAML module for nothing.)
type authHook struct {
	mochi.HookBase
	authenticate func(user, password string) bool
	acl          func(user, topic string, write bool) bool
}

func (h *authHook) ID() string { return "canary-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if h.authenticate == nil {
		return true
	}
	return h.authenticate(string(pk.Connect.Username), string(pk.Connect.Password))
}

func (h *authHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if h.acl == nil {
		return true
	}
	return h.acl(string(cl.Properties.Username), topic, write)
}
