package httpapi

import (
	"context"
	"errors"
	"time"
)

// Backend is what the gateway gives the HTTP API. Every method must be safe
// for concurrent use and return quickly (they run on request goroutines).
type Backend interface {
	// Readings returns the latest reading of every sensor.
	Readings() []Reading
	// Alarms returns every alarm that is not normal (the retained MQTT
	// alarm states), in any order; the API sorts them.
	Alarms() []Alarm
	// Devices returns the communication state of every device.
	Devices() []Device
	// History returns up to limit of the most recent alarm transitions and
	// operator actions (the audit trail), oldest first.
	History(limit int) []Transition
	// Command runs an operator command. The backend records it in the audit
	// trail. Errors wrapping ErrUnknownAlarm, ErrNotAllowed or ErrBadCommand
	// become 404, 409 and 400; any other error is a 500.
	Command(ctx context.Context, cmd Command) error
	// Ready reports whether the gateway is serving real state (config
	// loaded, engine restored, pollers started).
	Ready() bool
	// FaultHolds returns the fault holds in force (an overloaded gateway
	// holding its sensors' comm and bad alarms): at most one on a gateway,
	// one per site in a control room.
	FaultHolds() Holds
}

// Errors a Backend wraps so the API answers with the right status.
var (
	// ErrUnknownAlarm: no alarm with that id (404).
	ErrUnknownAlarm = errors.New("unknown alarm")
	// ErrNotAllowed: the command is not allowed in the alarm's current
	// state, e.g. reset while the condition is still true, ack of an
	// acknowledged alarm, shelving a P1 alarm (409).
	ErrNotAllowed = errors.New("not allowed")
	// ErrBadCommand: the command itself is malformed, e.g. a shelve
	// duration above the maximum (400).
	ErrBadCommand = errors.New("bad command")
)

// Reading is the latest value of one sensor, as on GET /api/v1/readings.
type Reading struct {
	Site   string `json:"site"`
	Device string `json:"device"`
	Sensor string `json:"sensor"`
	Kind   string `json:"kind"`
	// Value is null when the quality is bad and there is no usable value.
	Value   *float64  `json:"value"`
	Unit    string    `json:"unit"`
	Quality string    `json:"quality"` // good | uncertain | bad
	TS      time.Time `json:"ts"`
	// Stale is set by the gateway when no good reading arrived within the
	// sensor's communication timeout; the API also sets it when the reading
	// is older than Options.StaleAfter.
	Stale bool `json:"stale"`
	// AgeSeconds is filled in by the API at response time.
	AgeSeconds float64 `json:"age_s"`
	// Received is when the reading arrived (at the gateway from the
	// device, at the control room from MQTT), with the monotonic clock's
	// reading; zero when unknown. The age is then the older of the ages
	// by TS and by Received, so that neither a step of the wall clock
	// back nor a sender's clock ahead shows a value after which nothing
	// came as fresh. Not in the JSON.
	Received time.Time `json:"-"`
	// Limits are the configured alarm limits of the sensor, drawn on trends.
	Limits []Limit `json:"limits,omitempty"`
}

// Limit is one configured alarm limit of a sensor.
type Limit struct {
	Condition string  `json:"condition"`
	Limit     float64 `json:"limit"`
	Priority  int     `json:"priority"`
}

// Alarm is an alarm's current state, with exactly the fields of the MQTT
// alarm payload, encoded as MQTT encodes them (json.go).
type Alarm struct {
	ID        string `json:"id"`
	Site      string `json:"site"`
	Device    string `json:"device"`
	Sensor    string `json:"sensor"`
	Condition string `json:"condition"`
	// Priority is 1 (emergency) to 4 (low).
	Priority int `json:"priority"`
	// State is unacknowledged, acknowledged, returned_unacknowledged,
	// shelved, out_of_service or normal.
	State   string    `json:"state"`
	Active  bool      `json:"active"`
	Latched bool      `json:"latched"`
	Value   *float64  `json:"value"`
	Limit   *float64  `json:"limit"`
	Since   time.Time `json:"since"`
	Updated time.Time `json:"updated"`
	AckedBy string    `json:"acked_by"`
	Comment string    `json:"comment"`
	// Held: the fault hold keeps it active after its return fell due (an
	// overloaded gateway: docs/alarms.md). Only in the gateway's own API;
	// the MQTT state, and so a control room, does not carry it.
	Held bool `json:"held,omitempty"`
}

// Alarm states (the MQTT payload's `state`).
const (
	StateUnacknowledged         = "unacknowledged"
	StateAcknowledged           = "acknowledged"
	StateReturnedUnacknowledged = "returned_unacknowledged"
	StateShelved                = "shelved"
	StateOutOfService           = "out_of_service"
	StateNormal                 = "normal"
)

// Transition is one alarm transition or operator action, as on the MQTT
// events topic.
type Transition struct {
	Seq     uint64    `json:"seq"`
	TS      time.Time `json:"ts"`
	Type    string    `json:"type"`
	Alarm   string    `json:"alarm"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Active  bool      `json:"active"`
	Value   *float64  `json:"value"`
	Limit   *float64  `json:"limit"`
	User    string    `json:"user"`
	Comment string    `json:"comment"`
}

// Device is one device's communication state.
type Device struct {
	Site string `json:"site"`
	ID   string `json:"id"`
	// State is online, offline (no answer) or fault (answers with an
	// exception or fault signal).
	State string `json:"state"`
	// LastOK is when the device last answered a poll; zero (null) if never.
	LastOK time.Time `json:"last_ok"`
	// Error is the last poll error, empty when online.
	Error string `json:"error,omitempty"`
}

// Command is an operator command on one alarm.
type Command struct {
	// Action is ack, shelve, unshelve, reset, out_of_service or
	// return_to_service.
	Action string
	// Alarm is the alarm id.
	Alarm string
	// User is the authenticated user, never taken from the request body.
	User string
	// Role is the authenticated user's role.
	Role    string
	Comment string
	// Duration is how long to shelve (a timed shelve), or when an
	// out_of_service expires (0: until returned to service).
	Duration time.Duration
	// OneShot shelves until the alarm next returns (shelve only).
	OneShot bool
}

// Event is one change pushed into Server.Publish; exactly one field is set.
type Event struct {
	Reading    *Reading
	Alarm      *Alarm
	Transition *Transition
	Device     *Device
	// Holds is the whole list of fault holds, after a change.
	Holds *Holds
}

// Holds lists the fault holds in force, each as the fault_hold transition
// that began it (Alarm is "" on a gateway, "<site>." in a control room).
// Gen grows with every change, so that a client can tell an older list
// from a newer one.
type Holds struct {
	Gen   uint64       `json:"gen"`
	Holds []Transition `json:"holds"`
}
