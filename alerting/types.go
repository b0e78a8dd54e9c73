package alerting

import (
	"errors"
	"strconv"
	"time"

	"github.com/canary-gw/canary/internal/jsonenc"
)

// Quality is the OPC-style validity of a sample.
type Quality uint8

// Qualities, best first.
const (
	Good Quality = iota
	Uncertain
	BadQuality
)

func (q Quality) String() string {
	switch q {
	case Good:
		return "good"
	case Uncertain:
		return "uncertain"
	default:
		return "bad"
	}
}

// ParseQuality reads "good", "uncertain" or "bad".
func ParseQuality(s string) (Quality, error) {
	switch s {
	case "good":
		return Good, nil
	case "uncertain":
		return Uncertain, nil
	case "bad":
		return BadQuality, nil
	}
	return BadQuality, errors.New("unknown quality " + strconv.Quote(s) + " (want good, uncertain or bad)")
}

// Sample is one reading handed to the engine.
type Sample struct {
	// Point is "device.sensor".
	Point string
	// Ref, when set (Engine.Ref of Point), finds the point without
	// looking its id up: a caller that keeps each sensor's Ref saves a
	// map lookup per reading. A Ref of another engine or of another point
	// is ignored and Point is looked up.
	Ref     Ref
	Value   float64
	Quality Quality
	// Fault marks a bad sample the device answered with (its status word
	// reports the sensor faulty): a sensor fault, the bad alarm, but no
	// loss of communication.
	Fault bool
}

// Ref is a point's handle (Engine.Ref). The zero Ref names no point.
type Ref struct {
	e *Engine
	p *point
}

// State is an alarm's presentation state (the MQTT `state` field).
type State string

// States as in DESIGN.md.
const (
	Normal         State = "normal"
	Unacknowledged State = "unacknowledged"
	Acknowledged   State = "acknowledged"
	ReturnedUnack  State = "returned_unacknowledged"
	Shelved        State = "shelved"
	OutOfService   State = "out_of_service"
)

// EventType names what an Event records.
type EventType string

// Event types: alarm transitions, operator actions, nuisance flags,
// site flood state and interlock actions.
const (
	EvActivate        EventType = "activate"
	EvReturn          EventType = "return"
	EvAck             EventType = "ack"
	EvReset           EventType = "reset"
	EvShelve          EventType = "shelve"
	EvUnshelve        EventType = "unshelve"
	EvSuppress        EventType = "suppress"
	EvUnsuppress      EventType = "unsuppress"
	EvOutOfService    EventType = "out_of_service"
	EvReturnToService EventType = "return_to_service"
	EvReAlarm         EventType = "realarm"
	EvChattering      EventType = "chattering"
	EvChatteringEnd   EventType = "chattering_end"
	EvFleeting        EventType = "fleeting"
	EvStale           EventType = "stale"
	EvFirstOut        EventType = "first_out"
	EvFloodStart      EventType = "flood_start"
	EvFloodEnd        EventType = "flood_end"
	EvActionTrip      EventType = "action_trip"
	EvActionRelease   EventType = "action_release"
	EvActionConfirmed EventType = "action_confirmed"
	// EvFaultHold and EvFaultHoldEnd are site events: the gateway, overloaded,
	// holds its points' comm and bad alarms active (Engine.SetFaultHold),
	// and lets them go.
	EvFaultHold    EventType = "fault_hold"
	EvFaultHoldEnd EventType = "fault_hold_end"
)

// Event is one entry of the audit trail, published on
// canary/v1/<site>/events. For action events Alarm is the action id and
// Comment names the trigger; for flood events Alarm is empty and Value is
// the count of annunciated alarms in the window; for fault_hold events
// Alarm is empty, Value and Limit are NaN and Comment gives the reason.
type Event struct {
	Seq     uint64
	Site    string
	TS      time.Time
	Type    EventType
	Alarm   string
	From    State
	To      State
	Active  bool
	Value   float64 // NaN when there is no value
	Limit   float64 // NaN when there is no limit
	User    string
	Comment string
	// Action is set on action_* events (also in Alarm); not in the JSON.
	Action string
}

// AlarmState is an alarm's current state, published retained on
// canary/v1/<site>/alarms/<id>. The fields after Comment are not in the
// JSON payload.
type AlarmState struct {
	ID        string
	Site      string
	Device    string
	Sensor    string
	Condition Condition
	Priority  int
	State     State
	Active    bool
	Latched   bool
	Value     float64 // NaN when unknown
	Limit     float64 // NaN when the condition has no limit
	Since     time.Time
	Updated   time.Time
	AckedBy   string
	Comment   string

	Acked        bool
	ShelvedUntil time.Time // zero: not shelved or one-shot
	OneShot      bool
	Suppressed   bool
	FirstOut     bool
	Chattering   bool
	Stale        bool
	// Held: the fault hold keeps it active after its return fell due
	// (Engine.SetFaultHold); the gateway's own view shows it.
	Held    bool
	Quality Quality
}

// Annunciated reports whether the alarm belongs on the main alarm list.
func (s AlarmState) Annunciated() bool {
	switch s.State {
	case Unacknowledged, Acknowledged, ReturnedUnack:
		return true
	}
	return false
}

// MarshalJSON writes exactly the DESIGN.md alarm payload fields.
func (s AlarmState) MarshalJSON() ([]byte, error) {
	return s.AppendJSON(make([]byte, 0, 320)), nil
}

// AppendJSON appends MarshalJSON's payload to b: the gateway encodes
// straight into the outbox's record buffer, without a copy per alarm.
func (s *AlarmState) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = jsonenc.AppendString(b, s.ID)
	b = append(b, `,"site":`...)
	b = jsonenc.AppendString(b, s.Site)
	b = append(b, `,"device":`...)
	b = jsonenc.AppendString(b, s.Device)
	b = append(b, `,"sensor":`...)
	b = jsonenc.AppendString(b, s.Sensor)
	b = append(b, `,"condition":`...)
	b = jsonenc.AppendString(b, string(s.Condition))
	b = append(b, `,"priority":`...)
	b = strconv.AppendInt(b, int64(s.Priority), 10)
	b = append(b, `,"state":`...)
	b = jsonenc.AppendString(b, string(s.State))
	b = append(b, `,"active":`...)
	b = strconv.AppendBool(b, s.Active)
	b = append(b, `,"latched":`...)
	b = strconv.AppendBool(b, s.Latched)
	b = append(b, `,"value":`...)
	b = jsonenc.AppendNumber(b, s.Value)
	b = append(b, `,"limit":`...)
	b = jsonenc.AppendNumber(b, s.Limit)
	b = append(b, `,"since":`...)
	b = jsonenc.AppendTime(b, s.Since)
	b = append(b, `,"updated":`...)
	b = jsonenc.AppendTime(b, s.Updated)
	b = append(b, `,"acked_by":`...)
	b = jsonenc.AppendString(b, s.AckedBy)
	b = append(b, `,"comment":`...)
	b = jsonenc.AppendString(b, s.Comment)
	return append(b, '}')
}

// MarshalJSON writes exactly the DESIGN.md event payload fields.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 256)), nil
}

// AppendJSON appends MarshalJSON's payload to b (see AlarmState.AppendJSON).
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"ts":`...)
	b = jsonenc.AppendTime(b, e.TS)
	b = append(b, `,"type":`...)
	b = jsonenc.AppendString(b, string(e.Type))
	b = append(b, `,"alarm":`...)
	b = jsonenc.AppendString(b, e.Alarm)
	b = append(b, `,"from":`...)
	b = jsonenc.AppendString(b, string(e.From))
	b = append(b, `,"to":`...)
	b = jsonenc.AppendString(b, string(e.To))
	b = append(b, `,"active":`...)
	b = strconv.AppendBool(b, e.Active)
	b = append(b, `,"value":`...)
	b = jsonenc.AppendNumber(b, e.Value)
	b = append(b, `,"limit":`...)
	b = jsonenc.AppendNumber(b, e.Limit)
	b = append(b, `,"user":`...)
	b = jsonenc.AppendString(b, e.User)
	b = append(b, `,"comment":`...)
	b = jsonenc.AppendString(b, e.Comment)
	return append(b, '}')
}

// Command errors; match with errors.Is.
var (
	ErrUnknownAlarm      = errors.New("unknown alarm")
	ErrUnknownAction     = errors.New("unknown action")
	ErrUnknownPoint      = errors.New("unknown point")
	ErrUserRequired      = errors.New("user required")
	ErrCommentRequired   = errors.New("comment required")
	ErrAlreadyAcked      = errors.New("already acknowledged")
	ErrNothingToAck      = errors.New("nothing to acknowledge: alarm is normal")
	ErrConditionPresent  = errors.New("reset refused: the alarm condition is still present")
	ErrResetNeedsAck     = errors.New("reset refused: acknowledge the alarm first")
	ErrQualityNotGood    = errors.New("reset refused: the sensor's quality is not good")
	ErrNotLatched        = errors.New("nothing to reset: alarm is not latched")
	ErrShelveTooLong     = errors.New("shelve duration exceeds the maximum")
	ErrBadDuration       = errors.New("duration must be positive")
	ErrNotShelvable      = errors.New("alarm is not shelvable (priority 1 / interlock)")
	ErrNotShelved        = errors.New("alarm is not shelved")
	ErrNotActive         = errors.New("alarm is not active")
	ErrAlreadyShelved    = errors.New("alarm is already shelved")
	ErrOutOfService      = errors.New("alarm is out of service")
	ErrNotOutOfService   = errors.New("alarm is not out of service")
	ErrAlreadyOutService = errors.New("alarm is already out of service")
	// ErrStandingAlarm: a bypassed or degraded alarm stands while its
	// cause lasts (SAFETY §5.3: a bypass is never silent); it can be
	// neither shelved nor taken out of service.
	ErrStandingAlarm = errors.New("alarm is a standing bypass/degraded alarm: it cannot be shelved or taken out of service")
)

// ErrOutOfServiceTooLong: an out-of-service expiry beyond
// Options.MaxOutOfService (a bypass is time-limited, SAFETY.md §5.3).
var ErrOutOfServiceTooLong = errors.New("out-of-service expiry exceeds the maximum")
