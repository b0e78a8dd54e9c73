package simulator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// endpoint is one served address: a TCP listener (Modbus TCP or RTU over
// TCP) or a pseudo-terminal (RTU), with the devices behind it by unit id.
type endpoint struct {
	link    link
	units   map[uint8]*device
	devices []*device
	baud    int

	listen  string // where a TCP endpoint listens (the url's host:port, or 127.0.0.1:0 with Localize)
	addr    string // resolved listening address or pty path
	ln      net.Listener
	ptmx    *os.File
	tty     *os.File
	symlink string

	mu     sync.Mutex
	conns  map[io.Closer]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (ep *endpoint) url() string {
	if ep.link.scheme == "rtu" {
		return "rtu://" + ep.addr
	}
	return ep.link.scheme + "://" + ep.addr
}

// t35 is the RTU inter-frame silence: 3.5 character times of 11 bits, and
// the spec's fixed 1.75 ms above 19200 baud.
func (ep *endpoint) t35() time.Duration {
	baud := ep.baud
	if baud <= 0 {
		baud = 19200
	}
	if baud > 19200 {
		return 1750 * time.Microsecond
	}
	return time.Duration(3.5 * 11 * float64(time.Second) / float64(baud))
}

func (ep *endpoint) open(s *Simulator) error {
	ep.conns = map[io.Closer]struct{}{}
	switch ep.link.scheme {
	case "tcp", "rtuovertcp":
		listen := ep.listen
		if listen == "" {
			listen = ep.link.target
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		ep.ln, ep.addr = ln, ln.Addr().String()
		return nil
	}
	ptmx, tty, err := openPTY()
	if err != nil {
		return fmt.Errorf("open pseudo-terminal: %w", err)
	}
	if err := makeRaw(tty); err != nil {
		ptmx.Close()
		tty.Close()
		return fmt.Errorf("raw mode on %s: %w", tty.Name(), err)
	}
	ep.ptmx, ep.tty, ep.addr = ptmx, tty, tty.Name()
	// The config names a serial device. Where that path is free and not
	// under /dev, link it to the pty, so the same site file works for the
	// gateway; otherwise the pty path is printed and shown in the API.
	target := ep.link.target
	if !strings.HasPrefix(filepath.Clean(target), "/dev/") {
		// A link left behind by a killed run still points into /dev/pts.
		if old, err := os.Readlink(target); err == nil && strings.HasPrefix(old, "/dev/pts/") {
			_ = os.Remove(target)
		}
		if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(tty.Name(), target); err == nil {
				ep.symlink, ep.addr = target, target
			} else {
				s.log.Warn().Err(err).Str("path", target).Msg("cannot link serial path to pty")
			}
		}
	}
	return nil
}

// serve runs until the endpoint is closed; it joins every connection.
func (ep *endpoint) serve(ctx context.Context, s *Simulator) error {
	defer ep.wg.Wait()
	if ep.ptmx != nil {
		err := s.serveRTU(ctx, ep, ep.ptmx, 0)
		if ep.isClosed() {
			return nil
		}
		return err
	}
	for {
		c, err := ep.ln.Accept()
		if err != nil {
			if ep.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		if !ep.track(c, s.opts.MaxConns) {
			s.log.Warn().Str("addr", ep.addr).Int("max_conns", s.opts.MaxConns).Msg("connection refused: too many clients")
			c.Close()
			continue
		}
		ep.wg.Add(1)
		go func() {
			defer ep.wg.Done()
			defer ep.untrack(c)
			if ep.link.scheme == "rtuovertcp" {
				_ = s.serveRTU(ctx, ep, c.(*net.TCPConn), s.opts.IdleTimeout)
			} else {
				s.serveMBAP(ctx, ep, c)
			}
		}()
	}
}

func (ep *endpoint) track(c io.Closer, max int) bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.closed || len(ep.conns) >= max {
		return false
	}
	ep.conns[c] = struct{}{}
	return true
}

func (ep *endpoint) untrack(c io.Closer) {
	ep.mu.Lock()
	delete(ep.conns, c)
	ep.mu.Unlock()
	c.Close()
}

func (ep *endpoint) isClosed() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.closed
}

// close stops accepting and closes every connection; serve then returns.
func (ep *endpoint) close() {
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		return
	}
	ep.closed = true
	for c := range ep.conns {
		c.Close()
	}
	ep.mu.Unlock()
	if ep.ln != nil {
		ep.ln.Close()
	}
	if ep.ptmx != nil {
		ep.ptmx.Close()
		ep.tty.Close()
	}
	if ep.symlink != "" {
		os.Remove(ep.symlink)
	}
}

// sleepCtx waits d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// serveMBAP serves Modbus TCP on one connection. Our own framing (rather
// than simonvetter/modbus's server) lets a unit stay silent, answer late or
// send a broken frame on a connection shared with other units.
func (s *Simulator) serveMBAP(ctx context.Context, ep *endpoint, c net.Conn) {
	var hdr [7]byte
	buf := make([]byte, 260)
	garbage := 0
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		tid := binary.BigEndian.Uint16(hdr[0:])
		proto := binary.BigEndian.Uint16(hdr[2:])
		length := int(binary.BigEndian.Uint16(hdr[4:]))
		if proto != 0 || length < 2 || length > 254 {
			s.log.Debug().Str("addr", ep.addr).Uint16("proto", proto).Int("length", length).Msg("bad mbap header, closing")
			return
		}
		pdu := buf[:length-1]
		if _, err := io.ReadFull(c, pdu); err != nil {
			return
		}
		unit := hdr[6]
		r := s.handle(ep, unit, pdu)
		if r.fate == fateSilent {
			continue
		}
		if !sleepCtx(ctx, r.delay) {
			return
		}
		out := make([]byte, 7+len(r.pdu))
		binary.BigEndian.PutUint16(out[0:], tid)
		binary.BigEndian.PutUint16(out[4:], uint16(1+len(r.pdu)))
		out[6] = unit
		copy(out[7:], r.pdu)
		if r.fate == fateGarbage {
			garbage++
			if garbage%2 == 1 {
				binary.BigEndian.PutUint16(out[0:], tid^0x5a5a) // a stale or foreign transaction id
			} else {
				out = out[:7+len(r.pdu)/2] // truncated: the header promises more than comes
			}
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// deadlineRW is a pty master or a TCP connection.
type deadlineRW interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
}

// serveRTU serves RTU frames delimited by t3.5 silence. idle > 0 closes a
// connection that sent nothing for that long (RTU over TCP).
func (s *Simulator) serveRTU(ctx context.Context, ep *endpoint, rw deadlineRW, idle time.Duration) error {
	t35 := ep.t35()
	buf := make([]byte, 0, 512)
	tmp := make([]byte, 512)
	garbage := 0
	for {
		switch {
		case len(buf) > 0:
			_ = rw.SetReadDeadline(time.Now().Add(t35))
		case idle > 0:
			_ = rw.SetReadDeadline(time.Now().Add(idle))
		default:
			_ = rw.SetReadDeadline(time.Time{})
		}
		n, err := rw.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if len(buf) > rtuMaxFrame {
			buf = buf[:0] // longer than any RTU frame: line noise
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || len(buf) == 0 {
			return err
		}
		frame := buf
		buf = make([]byte, 0, 512)
		unit, pdu, perr := parseRTUFrame(frame)
		if perr != nil {
			s.log.Debug().Err(perr).Str("addr", ep.addr).Msg("rtu frame dropped")
			continue
		}
		if unit == 0 {
			s.broadcast(ep, pdu) // writes reach every unit on the line; nobody answers
			continue
		}
		r := s.handle(ep, unit, pdu)
		if r.fate == fateSilent {
			continue
		}
		if !sleepCtx(ctx, r.delay) {
			return nil
		}
		out := rtuFrame(unit, r.pdu)
		if r.fate == fateGarbage {
			garbage++
			if garbage%2 == 1 {
				out[len(out)-1] ^= 0xff // CRC error
			} else {
				out = out[:len(out)/2] // truncated
			}
		}
		if _, err := rw.Write(out); err != nil {
			return err
		}
	}
}
