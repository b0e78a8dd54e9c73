package modbus

import (
	"errors"
	"net"
	"reflect"
	"time"

	mb "github.com/simonvetter/modbus"
)

// An RTU answer carries no transaction id: an answer that comes after its
// request timed out waits in the line's input and is read by the next
// request as its own whenever the unit, function code and byte count fit
// (another register range of the same device: its values, with good
// quality, under the wrong sensors). simonvetter/modbus flushes the line
// only after a CRC or framing error, never after a timeout. So after a
// timeout on a framed line (rtu://, rtuovertcp://) the link gives the late
// answer as long again as the timeout to arrive — a unit still sending
// must not be talked over on a half-duplex bus either — and discards what
// the line holds before the next request. The wait overlaps the line's
// idle time: a request that comes later than that only discards. A unit
// answering later than twice its timeout can still be misread; its next
// request then most likely times out in turn, and its comm alarm stands.

// staleQuiet is how long the line must be silent, once bytes of a late
// answer came, before the next request: a frame's inter-character gaps are
// under 2 ms down to 9600 bit/s.
const staleQuiet = 20 * time.Millisecond

// framedLine is what the library reads an RTU frame from (its rtuLink):
// the serial port's wrapper or the RTU-over-TCP connection.
type framedLine interface {
	Read(p []byte) (int, error)
	SetDeadline(t time.Time) error
}

// libLine returns the library's RTU link, or nil when its layout is not
// the one we know (then discardStale falls back to reopening).
func libLine(c *mb.ModbusClient) (line framedLine) {
	defer func() {
		if recover() != nil {
			line = nil
		}
	}()
	tr := field(reflect.ValueOf(c).Elem(), "transport")
	if !tr.IsValid() || tr.Kind() != reflect.Interface || tr.IsNil() {
		return nil
	}
	tt := tr.Elem() // *rtuTransport
	if tt.Kind() != reflect.Pointer || tt.IsNil() || tt.Elem().Kind() != reflect.Struct {
		return nil
	}
	line, _ = value(field(tt.Elem(), "link")).(framedLine)
	return line
}

// noteTimeout marks the line as possibly carrying a late answer after a
// request on a framed link timed out.
func (l *Link) noteTimeout(err error) {
	if l.framed && errors.Is(err, mb.ErrRequestTimedOut) {
		l.staleUntil = l.sentAt.Add(2 * l.timeout)
	}
}

// discardStale waits until staleUntil, dropping whatever the line
// delivers meanwhile and until it has been quiet for staleQuiet. Call it
// with the link open, before a request.
func (l *Link) discardStale() {
	until := l.staleUntil
	l.staleUntil = time.Time{}
	line := libLine(l.client)
	if line == nil {
		// Unknown layout: reopening discards what waits (the library
		// reads the input empty at Open), once the late answer is in.
		time.Sleep(time.Until(until))
		_ = l.Close()
		if err := l.Open(); err != nil {
			l.log.Debug().Err(err).Msg("reopen after a timeout")
		}
		return
	}
	buf := make([]byte, 256)
	// Past until, the line is still read empty: the late answer may have
	// come while the link was idle.
	quietUntil := until
	if q := time.Now().Add(staleQuiet); q.After(until) {
		quietUntil = q
	}
	// A line that never falls quiet (noise, a unit streaming) is not
	// waited out for ever: at most a timeout past until.
	hard := quietUntil.Add(l.timeout)
	dropped := 0
	for now := time.Now(); now.Before(quietUntil) && now.Before(hard); now = time.Now() {
		if quietUntil.After(hard) {
			quietUntil = hard
		}
		_ = line.SetDeadline(quietUntil)
		n, err := line.Read(buf)
		if n > 0 {
			dropped += n
			if q := time.Now().Add(staleQuiet); q.After(until) {
				quietUntil = q
			}
			continue
		}
		var ne net.Error
		if err != nil && !errors.Is(err, mb.ErrRequestTimedOut) && !(errors.As(err, &ne) && ne.Timeout()) {
			break // a broken line: the request will fail and reopen it
		}
	}
	_ = line.SetDeadline(time.Time{})
	if dropped > 0 {
		l.log.Debug().Int("bytes", dropped).Msg("discarded a late answer on the line")
		l.staleDropped += uint64(dropped)
	}
}

// StaleBytes is how many bytes of late answers the link discarded.
func (l *Link) StaleBytes() uint64 { return l.staleDropped }
