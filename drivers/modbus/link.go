package modbus

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	mb "github.com/simonvetter/modbus"
)

// ErrTimeout is a request that got no answer within the timeout: a dead
// device, a cut cable or a wrong unit id on a serial line.
var ErrTimeout = errors.New("no response within timeout")

// ExceptionError is a Modbus exception response: the device answered, so
// the link is fine (no reconnect), but it refused the request.
type ExceptionError struct {
	Code uint8
	Err  error // the library's sentinel, e.g. mb.ErrIllegalDataAddress
}

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("modbus exception %d (%s)", e.Code, e.Err)
}

func (e *ExceptionError) Unwrap() error { return e.Err }

var exceptionCodes = []struct {
	code uint8
	err  mb.Error
}{
	{1, mb.ErrIllegalFunction}, {2, mb.ErrIllegalDataAddress}, {3, mb.ErrIllegalDataValue},
	{4, mb.ErrServerDeviceFailure}, {5, mb.ErrAcknowledge}, {6, mb.ErrServerDeviceBusy},
	{8, mb.ErrMemoryParityError}, {10, mb.ErrGWPathUnavailable}, {11, mb.ErrGWTargetFailedToRespond},
}

// classify maps the library's errors onto ours: exceptions become
// *ExceptionError, timeouts wrap ErrTimeout, the rest are link errors.
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, ex := range exceptionCodes {
		if errors.Is(err, ex.err) {
			return &ExceptionError{Code: ex.code, Err: ex.err}
		}
	}
	if errors.Is(err, mb.ErrRequestTimedOut) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	// The library has a sentinel only for the codes above; any other
	// (7, a vendor's own) comes as text. It is still an answer: the device
	// is there, and a link error would reconnect and back off from it.
	if m := unknownException.FindStringSubmatch(err.Error()); m != nil {
		if code, perr := strconv.ParseUint(m[1], 10, 8); perr == nil {
			return &ExceptionError{Code: uint8(code), Err: errUnknownException}
		}
	}
	return err
}

// unknownException is the library's error for an exception code it has no
// sentinel for (mapExceptionCodeToError in simonvetter/modbus).
var (
	unknownException    = regexp.MustCompile(`unknown exception code \((\d+)\)`)
	errUnknownException = errors.New("not a code the Modbus library knows")
)

// IsException reports whether err is a Modbus exception response.
func IsException(err error) bool {
	var ex *ExceptionError
	return errors.As(err, &ex)
}

// Link is one connection to a TCP endpoint or one serial line, shared by
// the devices (unit ids) behind it. It is not safe for concurrent use: one
// goroutine owns it (the Poller), because the unit id is link-wide state.
type Link struct {
	url     string
	client  *mb.ModbusClient
	open    bool
	rtu     bool
	timeout time.Duration
	sentAt  time.Time // when the last request started, after any dial
	sat     saturation
	// sock is the library's TCP connection (libSocket): nil on serial
	// lines, before Open, or when the library's layout is unknown. On
	// plain TCP the kernel stamps what it receives (stamped), and txn is
	// the library's transaction id, for takeLate.
	sock    *headerConn
	plain   bool // sock is the connection the library reads (tcp://)
	stamped bool
	txn     reflect.Value
	want    answer // the answer the last request waits for, but its txn
	// lateAt: when the last request's answer arrived, if it was read
	// after its timeout (takeLate); zero otherwise.
	lateAt time.Time
	// framed: RTU framing (rtu://, rtuovertcp://), whose answers carry no
	// transaction id. staleUntil: after a timeout on it, until when a late
	// answer may still come (discardStale); staleDropped counts its bytes.
	framed       bool
	staleUntil   time.Time
	staleDropped uint64
	idleCloses   uint64 // see request
	log          zerolog.Logger
}

// NewLink prepares a link from a device config (defaults set, validated).
// It reads TLS files but never dials: Open does.
func NewLink(d *DeviceConfig, logger zerolog.Logger) (*Link, error) {
	conf := &mb.ClientConfiguration{
		// Schemes are case-insensitive (RFC 3986), and validation,
		// linkKey and the simulator treat them so; the library does not.
		URL:     scheme(d.URL) + "://" + linkAddress(d.URL),
		Timeout: d.Timeout,
		Logger:  log.New(libWriter{logger}, "", 0),
	}
	if scheme(d.URL) == schemeRTU {
		conf.Speed = uint(d.Baud)
		conf.DataBits = uint(d.DataBits)
		conf.StopBits = uint(d.StopBits)
		conf.Parity = map[string]uint{"none": mb.PARITY_NONE, "even": mb.PARITY_EVEN, "odd": mb.PARITY_ODD}[d.Parity]
	}
	if scheme(d.URL) == schemeTLS {
		cert, err := tls.LoadX509KeyPair(d.CertFile, d.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s: %w", d.CertFile, err)
		}
		pem, err := os.ReadFile(d.CAFile)
		if err != nil {
			return nil, fmt.Errorf("load ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("load ca_file %s: no PEM certificate in it", d.CAFile)
		}
		conf.TLSClientCert = &cert
		conf.TLSRootCAs = pool
	}
	c, err := mb.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("modbus client for %s: %w", d.URL, err)
	}
	sch := scheme(d.URL)
	return &Link{url: d.URL, client: c, rtu: sch == schemeRTU, timeout: d.Timeout,
		framed: sch == schemeRTU || sch == schemeRTUOverTCP, log: logger}, nil
}

// Timeout is the link's request timeout.
func (l *Link) Timeout() time.Duration { return l.timeout }

// SentAt is when the last request started, after the link was (re)opened.
func (l *Link) SentAt() time.Time { return l.sentAt }

// Saturated reports whether the gateway's process was saturated during
// the last request (see saturation): call it after a timeout.
func (l *Link) Saturated() bool { return l.sat.saturated() }

// URL returns the link's URL.
func (l *Link) URL() string { return l.url }

// Open connects (TCP) or opens the serial device. It is a no-op when open.
func (l *Link) Open() error {
	if l.open {
		return nil
	}
	if err := l.client.Open(); err != nil {
		return fmt.Errorf("open %s: %w", l.url, err)
	}
	l.open = true
	l.sock, l.plain, l.stamped, l.txn = nil, false, false, reflect.Value{}
	if !l.rtu {
		s, plain, txn := libSocket(l.client)
		l.sock, l.plain = s, s != nil && plain
		if s != nil && plain && txn.IsValid() && stampArrivals(s.TCPConn) == nil {
			l.stamped, l.txn = true, txn
		}
	}
	return nil
}

// Close drops the connection; the next request reopens it.
func (l *Link) Close() error {
	if !l.open {
		return nil
	}
	l.open = false
	l.sock, l.plain, l.stamped, l.txn = nil, false, false, reflect.Value{}
	return l.client.Close()
}

// IsOpen reports whether the link is open.
func (l *Link) IsOpen() bool { return l.open }

// unit opens the link and starts a request to unit u with function code
// fc, whose answer carries data bytes (0 for a write).
func (l *Link) unit(u int, fc uint8, data int) error {
	if err := l.Open(); err != nil {
		return err
	}
	if !l.staleUntil.IsZero() {
		l.discardStale()
	}
	l.sentAt = time.Now()
	l.lateAt = time.Time{}
	l.sat.start()
	l.want = answer{unit: uint8(u), fc: fc, bytes: uint8(min(data, 255))}
	return l.client.SetUnitId(uint8(u))
}

// trustStamps turns takeLate on; a variable for the test that
// measures what it changes.
var trustStamps = true

// done ends a request: it clears the deadline the library set for it,
// whose timer would otherwise fire after every request (see libSocket).
// The library sets a new one before each request.
func (l *Link) done() {
	if l.sock != nil {
		_ = l.sock.SetDeadline(time.Time{})
	}
}

// takeLate reads, after a read request timed out, its answer if the
// whole of it waits in the connection, received within the timeout after
// the request was sent (answerWaiting, libSocket), and returns its data
// bytes; nothing on serial lines, on tcp+tls, or whenever it cannot be
// told, and then the connection is left as it was. The device
// answered in time and the gateway, running late, had not read it: the
// answer is the device's, as good as one read at once, and reading it
// keeps the stream in step, so the link need not be reopened
// (docs/performance-history.md, item 48). Before this, such a poll was abandoned
// as late and yielded no readings.
func (l *Link) takeLate(err error) ([]byte, bool) {
	if !errors.Is(err, mb.ErrRequestTimedOut) || !l.stamped || l.timeout <= 0 || !trustStamps {
		return nil, false
	}
	txn, ok := value(l.txn).(uint16)
	if !ok {
		return nil, false
	}
	want := l.want
	want.txn = txn
	data, at, ok := takeAnswer(l.sock, want, l.sentAt, l.sentAt.Add(l.timeout))
	l.lateAt = at
	return data, ok
}

// LateAnswer reports whether the last request's answer was read after its
// timeout had expired: it came within the timeout, and the gateway read
// it late (takeLate). at is when it arrived, by the kernel's stamp, on the
// monotonic clock: the time of the device's values.
func (l *Link) LateAnswer() (at time.Time, ok bool) { return l.lateAt, !l.lateAt.IsZero() }

// request runs one request to unit u (function code fc, data bytes in its
// answer) through call. Many devices and serial gateways close a
// connection after some seconds without traffic; without what follows,
// every poll after such a close was a bad reading, and an interlock write
// failed and waited out its backoff:
//   - A read that meets a connection the device had closed (no answer,
//     not one byte of it) is sent once more on a new one: the same request,
//     not a retry, and reading twice is harmless.
//   - A write is not sent twice (a device may have done it and closed
//     without answering, and a command register would act twice): before
//     it, a connection the device has closed (its FIN already here) is
//     reopened (a non-blocking peek, Linux).
func (l *Link) request(u int, fc uint8, data int, call func() error) error {
	write := fc == 5 || fc == 6 || fc == 15 || fc == 16
	if write && l.open && l.sock != nil && l.plain && peerClosed(l.sock.TCPConn) {
		l.log.Debug().Str("url", l.url).Msg("connection closed by the device while idle; the write goes on a new one")
		_ = l.Close()
		l.idleCloses++
	}
	reused := l.open
	if err := l.unit(u, fc, data); err != nil {
		return err
	}
	err := call()
	l.done()
	l.noteTimeout(err)
	if !write && reused && l.peerClosedIdle(err) {
		l.log.Debug().Err(err).Str("url", l.url).Msg("connection closed by the device while idle; request sent on a new one")
		_ = l.Close()
		l.idleCloses++
		if err := l.unit(u, fc, data); err != nil {
			return err
		}
		err = call()
		l.done()
		l.noteTimeout(err)
	}
	return err
}

// peerClosedIdle reports whether err is a plain TCP connection's end by
// the peer (EOF, a reset, a broken pipe) with not one byte of the answer
// read since the request was written.
func (l *Link) peerClosedIdle(err error) bool {
	if err == nil || l.sock == nil || !l.plain || l.sock.read != 0 {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// IdleCloses counts requests sent again because the device had closed
// the connection while idle (request).
func (l *Link) IdleCloses() uint64 { return l.idleCloses }

// ReadRegisters reads count holding or input registers of unit.
func (l *Link) ReadRegisters(unit int, t Table, addr, count uint16) ([]uint16, error) {
	rt, fc := mb.HOLDING_REGISTER, uint8(3)
	switch t {
	case TableHolding:
	case TableInput:
		rt, fc = mb.INPUT_REGISTER, 4
	default:
		return nil, fmt.Errorf("read registers: table %s holds bits", t)
	}
	var regs []uint16
	err := l.request(unit, fc, 2*int(count), func() (err error) {
		regs, err = l.client.ReadRegisters(addr, count, rt)
		return err
	})
	if data, ok := l.takeLate(err); ok && len(data) == 2*int(count) {
		regs = make([]uint16, count)
		for i := range regs {
			regs[i] = binary.BigEndian.Uint16(data[2*i:])
		}
		return regs, nil
	}
	return regs, classify(err)
}

// ReadBits reads count coils or discrete inputs of unit.
func (l *Link) ReadBits(unit int, t Table, addr, count uint16) ([]bool, error) {
	var fc uint8
	switch t {
	case TableCoil:
		fc = 1
	case TableDiscrete:
		fc = 2
	default:
		return nil, fmt.Errorf("read bits: table %s holds registers", t)
	}
	var bits []bool
	err := l.request(unit, fc, (int(count)+7)/8, func() (err error) {
		if t == TableCoil {
			bits, err = l.client.ReadCoils(addr, count)
		} else {
			bits, err = l.client.ReadDiscreteInputs(addr, count)
		}
		return err
	})
	if data, ok := l.takeLate(err); ok && len(data) == (int(count)+7)/8 {
		bits = make([]bool, count)
		for i := range bits {
			bits[i] = data[i/8]>>(i%8)&1 == 1 // the first bit is the lowest of the first byte
		}
		return bits, nil
	}
	return bits, classify(err)
}

// WriteRegisters writes holding registers (FC06 for one, FC16 for more).
func (l *Link) WriteRegisters(unit int, addr uint16, regs []uint16) error {
	fc := uint8(16)
	if len(regs) == 1 {
		fc = 6
	}
	return classify(l.request(unit, fc, 0, func() error {
		if len(regs) == 1 {
			return l.client.WriteRegister(addr, regs[0])
		}
		return l.client.WriteRegisters(addr, regs)
	}))
}

// WriteCoil writes one coil (FC05).
func (l *Link) WriteCoil(unit int, addr uint16, v bool) error {
	return classify(l.request(unit, 5, 0, func() error { return l.client.WriteCoil(addr, v) }))
}

// libWriter bridges the library's *log.Logger into zerolog, so nothing is
// printed on stdout; its lines are protocol detail, hence debug.
type libWriter struct{ l zerolog.Logger }

func (w libWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	ev := w.l.Debug()
	if bytes.Contains(p, []byte("[error]")) {
		ev = w.l.Warn()
	}
	ev.Str("detail", msg).Msg("modbus library")
	return len(p), nil
}
