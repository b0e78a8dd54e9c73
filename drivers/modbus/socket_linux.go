package modbus

import (
	"encoding/binary"
	"errors"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's arrival stamps (SO_TIMESTAMPNS) and the bytes waiting in a
// socket (SIOCINQ), which the late-answer rules read (socket.go), are
// Linux's. Elsewhere (socket_other.go) links run without them: a request
// that times out is judged by the other rules (late, saturation).

func setStamps(c syscall.Conn) error { return setSockOpt(c, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }

func waitingAnswer(s *headerConn, want answer, notBefore, by time.Time, take bool) ([]byte, time.Time, bool) {
	rc, err := s.SyscallConn()
	if err != nil {
		return nil, time.Time{}, false
	}
	var buf [maxFrame]byte
	var oob [64]byte
	var data []byte
	var arrived time.Time
	ok := false
	_ = rc.Control(func(fd uintptr) {
		queued, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil || queued > maxFrame {
			return
		}
		pdu := 2 + int(want.bytes) // function code, byte count, data
		var hdr [7]byte            // the answer's MBAP header
		binary.BigEndian.PutUint16(hdr[0:2], want.txn)
		binary.BigEndian.PutUint16(hdr[4:6], uint16(1+pdu))
		hdr[6] = want.unit
		whole := queued == 7+pdu && s.read == 0              // the whole frame, none of it read
		if !whole && (queued != pdu || !s.tookHeader(hdr)) { // else the rest, after its header
			return
		}
		// All of it, peeked at once: the stamp is that of the segment that
		// completed it.
		n, oobn, _, _, err := unix.Recvmsg(int(fd), buf[:queued], oob[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err != nil || n != queued || (whole && [7]byte(buf[:7]) != hdr) ||
			buf[queued-pdu] != want.fc || buf[queued-pdu+1] != want.bytes {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return
		}
		var stamp time.Time
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS &&
				len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
				ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
				stamp = time.Unix(ts.Unix())
			}
		}
		if stamp.IsZero() {
			return
		}
		now := time.Now()
		at := now.Add(-now.Sub(stamp)) // now's monotonic reading, less the answer's age
		if at.Before(notBefore) || at.After(by) {
			return
		}
		if !take {
			ok = true
			return
		}
		arrived = at
		// What was peeked is all that waited, and only this goroutine
		// reads the socket: the read takes exactly those bytes.
		var got [maxFrame]byte
		if n, err := unix.Read(int(fd), got[:queued]); err != nil || n != queued || got != buf {
			return
		}
		data, ok = append([]byte(nil), buf[queued-pdu+2:queued]...), true
	})
	if !ok || !take {
		return nil, time.Time{}, ok
	}
	return data, arrived, true
}

// peerClosed reports whether the peer has closed c (a FIN or a reset
// waiting, nothing else to read), without reading: a peek that does not
// block. Data waiting, or nothing at all, is not a close.
func peerClosed(c syscall.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	_ = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = (n == 0 && err == nil) || errors.Is(err, unix.ECONNRESET)
		return true // never wait for the socket to become readable
	})
	return closed
}
