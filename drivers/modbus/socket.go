package modbus

import (
	"crypto/tls"
	"net"
	"reflect"
	"sync"
	"syscall"
	"time"
	"unsafe"

	mb "github.com/simonvetter/modbus"
	"golang.org/x/sys/unix"
)

// The Modbus library dials its own TCP connection and keeps it unexported,
// with no hook to reach it. The driver needs it for two things the library
// does not do:
//
//   - It sets a deadline before every request and never clears it, so
//     every request arms a runtime timer that fires a timeout after it,
//     long after the answer: at a 1 s poll and a 500 ms timeout, a burst
//     of wake-ups half a second after every burst of polls
//     (docs/performance-history.md, item 44). The driver clears it after each
//     request (tcp:// and tcp+tls://).
//   - A request can time out with its whole answer already in the socket:
//     Go's scheduler runs due timers (the deadline) at every switch but
//     looks at the network only when it has nothing else to run, so on a
//     busy gateway the library's read fails at once, answer or not. That
//     says nothing about the device. The kernel stamps what it receives
//     (SO_TIMESTAMPNS); after a timeout the driver peeks at what waits,
//     and the complete, well-formed answer to that very request (its
//     transaction id, unit, function code and byte count), or its rest
//     after exactly its header, received within the timeout, is the
//     device's answer: the driver reads it then (takeAnswer, Link.takeLate;
//     item 48; until then the poll was abandoned as late). Item 44: bursts
//     of such polls, judged bad, started the alarm floods past the
//     one-core ceiling. Plain tcp://
//     only: on tcp+tls:// the records are opaque (a TLS 1.3 session ticket
//     after the handshake looks like an answer). Linux only
//     (socket_linux.go): elsewhere the link runs without stamps
//     (socket_other.go).
//
// libSocket reads the connection with reflect from the library's
// ModbusClient (transport, a *tcpTransport whose socket is the
// *net.TCPConn, or for tcp+tls a *tlsSockWrapper around a *tls.Conn), and
// txn the transport's last transaction id; on tcp:// it puts a headerConn
// in the connection's place, through which the library then reads. On
// any other layout (a library upgrade) they come back empty and the
// driver works as without them: the timers fire, and timeouts are judged
// by the other rules (late, saturation). TestLibSocket fails then, so an
// upgrade is noticed.
func libSocket(c *mb.ModbusClient) (s *headerConn, plain bool, txn reflect.Value) {
	defer func() {
		if recover() != nil { // a layout we do not know
			s, plain, txn = nil, false, reflect.Value{}
		}
	}()
	tr := field(reflect.ValueOf(c).Elem(), "transport")
	if !tr.IsValid() || tr.Kind() != reflect.Interface || tr.IsNil() {
		return nil, false, reflect.Value{}
	}
	tt := tr.Elem() // *tcpTransport (or *rtuTransport: no "socket")
	if tt.Kind() != reflect.Pointer || tt.IsNil() || tt.Elem().Kind() != reflect.Struct {
		return nil, false, reflect.Value{}
	}
	if f := field(tt.Elem(), "lastTxnId"); f.IsValid() && f.Kind() == reflect.Uint16 && f.CanAddr() {
		txn = f
	}
	sock := field(tt.Elem(), "socket")
	conn, _ := value(sock).(net.Conn)
	switch c := conn.(type) {
	case *net.TCPConn:
		// The library reads and writes through a headerConn from now on.
		hc := &headerConn{TCPConn: c}
		reflect.NewAt(sock.Type(), unsafe.Pointer(sock.UnsafeAddr())).Elem().Set(reflect.ValueOf(net.Conn(hc)))
		return hc, true, txn
	case *headerConn: // already installed
		return c, true, txn
	case nil:
		return nil, false, reflect.Value{}
	default: // tcp+tls: the library's wrapper around the *tls.Conn
		v := reflect.ValueOf(c)
		if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
			return nil, false, reflect.Value{}
		}
		if tc, ok := value(field(v.Elem(), "sock")).(*tls.Conn); ok {
			if s, ok := tc.NetConn().(*net.TCPConn); ok {
				return &headerConn{TCPConn: s}, false, reflect.Value{} // for its deadline only
			}
		}
		return nil, false, reflect.Value{}
	}
}

// headerConn is the library's TCP connection, seen through by the driver:
// it keeps what the library read of an answer since its last request was
// written (the first 7 bytes: the MBAP header), so that after a timeout
// the driver knows whose answer the rest waiting in the socket is.
type headerConn struct {
	*net.TCPConn
	read int     // bytes read since the last write
	hdr  [7]byte // the first of them
}

func (c *headerConn) Write(p []byte) (int, error) {
	c.read = 0
	return c.TCPConn.Write(p)
}

// stallRead, set by tests, puts the library's reads off as a busy
// scheduler does; it gets the bytes read since the request was written.
var stallRead func(read int)

func (c *headerConn) Read(p []byte) (int, error) {
	if stallRead != nil {
		stallRead(c.read)
	}
	n, err := c.TCPConn.Read(p)
	if c.read < len(c.hdr) {
		copy(c.hdr[c.read:], p[:n])
	}
	c.read += n
	return n, err
}

// tookHeader reports whether the library has read exactly one MBAP header
// since the request was written, and it is h.
func (c *headerConn) tookHeader(h [7]byte) bool { return c.read == len(c.hdr) && c.hdr == h }

// field is the struct field name of v, or the zero Value.
func field(v reflect.Value, name string) reflect.Value {
	if v.Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return v.FieldByName(name)
}

// value returns an unexported field's content (the field must be
// addressable: one reached through a pointer).
func value(f reflect.Value) any {
	if !f.IsValid() || !f.CanAddr() {
		return nil
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface()
}

// stampHolder is a socket that asks for stamps for the life of the
// process. The kernel switches its stamping on for the whole host a moment
// after the first socket asks (a deferred switch) and off again when the
// last one closes, and a link reconnects after every timeout: without it,
// most answers after a reconnect came unstamped.
var stampHolder struct {
	once sync.Once
	conn net.PacketConn
}

// stampArrivals asks the kernel to stamp each packet s receives with the
// time it arrived (read back by answerWaiting).
func stampArrivals(s *net.TCPConn) error {
	stampHolder.once.Do(func() {
		if c, err := net.ListenPacket("udp", "127.0.0.1:0"); err == nil {
			if setStamps(c.(*net.UDPConn)) == nil {
				stampHolder.conn = c
			} else {
				_ = c.Close()
			}
		}
	})
	return setStamps(s)
}

// setSockOpt sets an integer socket option on c.
func setSockOpt(c syscall.Conn, level, opt, v int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), level, opt, v)
	}); err != nil {
		return err
	}
	return serr
}

// answer is the Modbus TCP answer a request waits for.
type answer struct {
	txn   uint16 // MBAP transaction id
	unit  uint8
	fc    uint8 // function code (an exception sets its top bit)
	bytes uint8 // the data's byte count for the quantity asked
}

// maxFrame is the longest Modbus TCP frame (MBAP header and PDU).
const maxFrame = 260

// answerWaiting reports whether the complete, well-formed read answer
// want (transaction, unit, function code, byte count) waits unread in s,
// alone (stampArrivals must have been called), its last byte received
// between notBefore and by. The library may have taken the answer's MBAP
// header already: it reads the header, then the rest, and a deadline
// that fired meanwhile fails the second read at once (the usual case on
// a busy gateway). Then the library must have read exactly that header
// since the request was written (headerConn), and exactly the rest of
// the answer (function code, byte count, data) must wait. It reads
// nothing: it peeks without blocking. False when anything else waits (part of a frame, another
// transaction, an exception, a malformed answer, stale or further bytes),
// when the stamp is missing or outside the window. Peeking the whole
// frame, Linux (5.7 and later) reports the stamp of the segment that
// completed it; with nothing after the frame, earlier kernels do too. The
// stamp, on the wall clock, is turned into an age at the peek, so a clock
// step only matters while the answer waits.
func answerWaiting(s *headerConn, want answer, notBefore, by time.Time) bool {
	_, _, ok := waitingAnswer(s, want, notBefore, by, false)
	return ok
}

// takeAnswer is answerWaiting that, when the answer waits, reads it from
// the socket and returns its data (the registers' or bits' bytes, want.bytes
// of them) and when it arrived (on the monotonic clock): the stream is
// then in step for the next request, as if the library had read the
// answer itself.
func takeAnswer(s *headerConn, want answer, notBefore, by time.Time) ([]byte, time.Time, bool) {
	return waitingAnswer(s, want, notBefore, by, true)
}
