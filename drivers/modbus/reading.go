package modbus

import (
	"fmt"
	"time"
)

// Quality says how far a reading can be trusted.
type Quality uint8

// Qualities. QualityUnknown is the zero value, so an unset quality never
// reads as good.
const (
	QualityUnknown Quality = iota
	QualityGood
	// QualityUncertain is readable but doubtful (e.g. over-range); the
	// driver itself emits good or bad, the gateway may downgrade.
	QualityUncertain
	QualityBad
)

func (q Quality) String() string {
	switch q {
	case QualityGood:
		return "good"
	case QualityUncertain:
		return "uncertain"
	case QualityBad:
		return "bad"
	}
	return "unknown"
}

// Reading is one sensor's value from one poll. With QualityBad, Value is 0
// and meaningless and Reason says why (timeout, exception, nan, ...). Its
// time is its Batch's At: a copy in every reading was a third of the
// memory of the polls a busy core holds (docs/performance-history.md, item 41).
type Reading struct {
	Sensor  string
	Value   float64
	Quality Quality
	// Fault: bad because the device's status word says the sensor is
	// faulty (StatusConfig), not because it could not be read: the
	// device answered.
	Fault  bool
	Reason string
}

// Batch is one poll of one device: a reading for every sensor of the
// device, in config order, good or bad.
type Batch struct {
	Device string
	Unit   int
	// Readings has one entry per sensor, in config order.
	Readings []Reading
	// At is when the poll's (last) response arrived, or when it failed.
	At time.Time
	// Latency is from the first request sent to the last response.
	Latency time.Duration
	// Err joins the errors of this poll (nil when all requests worked;
	// decode failures of single sensors are only in their Reason).
	Err error
	// Polls counts this device's polls so far, this one included.
	Polls uint64
	// Skipped counts schedule ticks skipped since the previous batch,
	// because the link was busy past them or the device was backing off.
	Skipped uint64
	// Late: the poll was abandoned because the poller ran late (see
	// DeviceStats.Late); a late batch is never handed to the sink.
	Late bool
}

// DeviceStats are a device's counters, for metrics.
type DeviceStats struct {
	Device string
	Link   string
	Unit   int
	// Polls counts attempted polls; Errors those with any failed request.
	Polls, Errors uint64
	// Timeouts, Exceptions and LinkErrors split Errors by cause, per request.
	Timeouts, Exceptions, LinkErrors uint64
	// Skipped counts ticks skipped because the link was still busy (an
	// overrun); Backoff those skipped while a dead device was backing off.
	Skipped, Backoff uint64
	// LateStarts counts polls that started more than a quarter period
	// after their tick (or after the link was free, if that was later):
	// the gateway getting its pollers the CPU late, or holding them while
	// it takes their batches, counted also where no poll is spoilt (Late).
	// A slow device or line makes the link free later, which is not a
	// late start.
	LateStarts uint64
	// Late counts polls abandoned because the gateway itself was late: a
	// request's timeout expired while the poller was not running (an
	// overloaded box), so nothing is known about the device. They yield
	// no readings, neither good nor bad (no false alarm flood from our
	// own overload); a device that stays unread raises its comm alarm.
	Late uint64
	// LateAnswers counts requests whose timeout expired with their whole
	// answer, received within the timeout, waiting unread: the gateway
	// ran late, and read the answer then (Link.LateAnswer). Their readings
	// are the device's, good, unless a later request of the same poll
	// makes it late; an answer read more than a poll period after it came
	// is not counted here: its poll is late.
	LateAnswers uint64
	// Reconnects counts Close+Open cycles of the device's link caused by it.
	Reconnects uint64
	// LastLatency is the latency of the last successful poll.
	LastLatency time.Duration
	// LastPoll is when the last poll finished.
	LastPoll time.Time
	// Online is false after a poll failed for a timeout or link error
	// until one succeeds.
	Online bool
}

// reason renders an error as a reading's short Reason.
func reason(err error) string {
	switch {
	case err == nil:
		return ""
	case err == ErrNaN:
		return "nan"
	case err == ErrPosInf:
		return "+inf"
	case err == ErrNegInf:
		return "-inf"
	}
	if IsException(err) {
		return err.Error()
	}
	if isTimeout(err) {
		return "timeout"
	}
	return fmt.Sprintf("link: %v", err)
}
