package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Lane is a queue inside the outbox.
type Lane uint8

const (
	// Alarms holds alarm states and events: never dropped, drained first.
	Alarms Lane = iota
	// Readings holds reading batches: bounded by max_bytes.
	Readings
)

func (l Lane) String() string {
	switch l {
	case Alarms:
		return "alarms"
	case Readings:
		return "readings"
	}
	return fmt.Sprintf("lane(%d)", uint8(l))
}

// Kind says what a record is, and so where the publisher sends it.
type Kind uint8

const (
	// KindReadings is one device's poll batch; Stream is the device id.
	KindReadings Kind = 1
	// KindAlarm is an alarm's current state (retained); Stream is the alarm id.
	// An empty payload clears the retained state.
	KindAlarm Kind = 2
	// KindEvent is an alarm transition or operator action; Stream is "events"
	// (one sequence per site).
	KindEvent Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindReadings:
		return "readings"
	case KindAlarm:
		return "alarm"
	case KindEvent:
		return "event"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Lane is where records of this kind are queued.
func (k Kind) Lane() Lane {
	if k == KindReadings {
		return Readings
	}
	return Alarms
}

func (k Kind) valid() bool { return k >= KindReadings && k <= KindEvent }

// Key identifies a stored record: its lane and its commit order in that lane.
type Key struct {
	Lane Lane
	ID   uint64
}

// Record is one stored message.
type Record struct {
	Key    Key
	Kind   Kind
	Stream string
	// Seq is the stream's sequence number, allocated at commit.
	Seq uint64
	// At is the commit time, Unix nanoseconds.
	At int64
	// Payload is the message body as it goes on the wire.
	Payload []byte
}

const recordVersion = 1

// ErrCorrupt marks a stored record that cannot be decoded.
var ErrCorrupt = errors.New("corrupt outbox record")

// appendRecord encodes r (without its key) as:
// version, kind, uvarint seq, varint at, uvarint len(stream), stream,
// payload, crc32c of everything before it (4 bytes, big endian).
func appendRecord(dst []byte, r *Record) []byte {
	start := len(dst)
	dst = appendHeader(dst, r.Kind, r.Seq, r.At, r.Stream)
	dst = append(dst, r.Payload...)
	return appendSum(dst, start)
}

func appendHeader(dst []byte, k Kind, seq uint64, at int64, stream string) []byte {
	dst = append(dst, recordVersion, byte(k))
	dst = binary.AppendUvarint(dst, seq)
	dst = binary.AppendVarint(dst, at)
	dst = binary.AppendUvarint(dst, uint64(len(stream)))
	return append(dst, stream...)
}

func appendSum(dst []byte, start int) []byte {
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DecodeRecord decodes a stored value. The payload is copied, so the result
// stays valid after the bbolt transaction ends.
func DecodeRecord(b []byte) (Record, error) { return decodeRecord(b, nil) }

// decodeRecord is DecodeRecord with the payload copied into alloc(n), a
// slice of length n (a new one when alloc is nil).
func decodeRecord(b []byte, alloc func(n int) []byte) (Record, error) {
	var r Record
	if len(b) < 2+1+1+1+4 {
		return r, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return r, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if body[0] != recordVersion {
		return r, fmt.Errorf("%w: unknown version %d", ErrCorrupt, body[0])
	}
	r.Kind = Kind(body[1])
	if !r.Kind.valid() {
		return r, fmt.Errorf("%w: unknown kind %d", ErrCorrupt, body[1])
	}
	p := body[2:]
	seq, n := binary.Uvarint(p)
	if n <= 0 {
		return r, fmt.Errorf("%w: bad seq", ErrCorrupt)
	}
	p = p[n:]
	at, n := binary.Varint(p)
	if n <= 0 {
		return r, fmt.Errorf("%w: bad time", ErrCorrupt)
	}
	p = p[n:]
	sl, n := binary.Uvarint(p)
	if n <= 0 || sl > uint64(len(p)-n) {
		return r, fmt.Errorf("%w: bad stream length", ErrCorrupt)
	}
	p = p[n:]
	r.Seq, r.At = seq, at
	r.Stream = string(p[:sl])
	if alloc == nil {
		r.Payload = append([]byte(nil), p[sl:]...)
	} else {
		r.Payload = alloc(len(p) - int(sl))
		copy(r.Payload, p[sl:])
	}
	return r, nil
}

func keyBytes(id uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	return b[:]
}
