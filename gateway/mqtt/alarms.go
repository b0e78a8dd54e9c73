package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/canary-gw/canary/gateway/outbox"
)

// AlarmState is the decoded payload of the retained
// <prefix>/v1/<site>/alarms/<alarm-id> topic.
type AlarmState struct {
	ID, Site, Device, Sensor, Condition string
	Priority                            int
	State                               string
	Active, Latched                     bool
	Value, Limit                        *float64
	Since, Updated                      time.Time
	AckedBy, Comment                    string
	// Seq is the site's event seq of the transition that produced this
	// state; 0 when the payload has none.
	Seq uint64
}

// Event is the decoded payload of <prefix>/v1/<site>/events.
type Event struct {
	Seq           uint64
	TS            time.Time
	Type, Alarm   string
	From, To      string
	Active        bool
	Value, Limit  *float64
	User, Comment string
}

type wireAlarm struct {
	Seq       *uint64  `json:"seq"`
	ID        *string  `json:"id"`
	Site      string   `json:"site"`
	Device    string   `json:"device"`
	Sensor    string   `json:"sensor"`
	Condition string   `json:"condition"`
	Priority  int      `json:"priority"`
	State     *string  `json:"state"`
	Active    bool     `json:"active"`
	Latched   bool     `json:"latched"`
	Value     *float64 `json:"value"`
	Limit     *float64 `json:"limit"`
	Since     *string  `json:"since"`
	Updated   *string  `json:"updated"`
	AckedBy   string   `json:"acked_by"`
	Comment   string   `json:"comment"`
}

type wireEvent struct {
	Seq     *uint64  `json:"seq"`
	TS      *string  `json:"ts"`
	Type    *string  `json:"type"`
	Alarm   string   `json:"alarm"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	Active  bool     `json:"active"`
	Value   *float64 `json:"value"`
	Limit   *float64 `json:"limit"`
	User    string   `json:"user"`
	Comment string   `json:"comment"`
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the object")
	}
	return nil
}

func optTime(s *string) (time.Time, error) {
	if s == nil || *s == "" {
		return time.Time{}, nil
	}
	return ParseTime(*s)
}

// DecodeAlarmState parses an alarm state payload. An empty payload (a
// cleared alarm) is not a state: callers check for it first.
func DecodeAlarmState(b []byte) (AlarmState, error) {
	var w wireAlarm
	var a AlarmState
	if err := decodeStrict(b, &w); err != nil {
		return a, fmt.Errorf("decode alarm state: %w", err)
	}
	if w.ID == nil || *w.ID == "" || strings.ContainsAny(*w.ID, "/+#") {
		return a, errors.New("decode alarm state: id: missing or not an alarm id")
	}
	if w.State == nil || *w.State == "" {
		return a, errors.New("decode alarm state: state: missing")
	}
	since, err := optTime(w.Since)
	if err != nil {
		return a, fmt.Errorf("decode alarm state: since: %w", err)
	}
	if w.Updated == nil {
		return a, errors.New("decode alarm state: updated: missing")
	}
	updated, err := ParseTime(*w.Updated)
	if err != nil {
		return a, fmt.Errorf("decode alarm state: updated: %w", err)
	}
	return AlarmState{ID: *w.ID, Site: w.Site, Device: w.Device, Sensor: w.Sensor, Condition: w.Condition,
		Priority: w.Priority, State: *w.State, Active: w.Active, Latched: w.Latched, Value: w.Value, Limit: w.Limit,
		Since: since, Updated: updated, AckedBy: w.AckedBy, Comment: w.Comment, Seq: seqOf(w.Seq)}, nil
}

func seqOf(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// DecodeEvent parses an event payload.
func DecodeEvent(b []byte) (Event, error) {
	var w wireEvent
	var e Event
	if err := decodeStrict(b, &w); err != nil {
		return e, fmt.Errorf("decode event: %w", err)
	}
	switch {
	case w.Seq == nil || *w.Seq == 0:
		return e, errors.New("decode event: seq: missing or 0")
	case w.TS == nil:
		return e, errors.New("decode event: ts: missing")
	case w.Type == nil || *w.Type == "":
		return e, errors.New("decode event: type: missing")
	}
	ts, err := ParseTime(*w.TS)
	if err != nil {
		return e, fmt.Errorf("decode event: ts: %w", err)
	}
	return Event{Seq: *w.Seq, TS: ts, Type: *w.Type, Alarm: w.Alarm, From: w.From, To: w.To, Active: w.Active,
		Value: w.Value, Limit: w.Limit, User: w.User, Comment: w.Comment}, nil
}

// EventItem is the outbox item of one alarm event. encode must write the
// payload with the given seq as its "seq": the outbox allocates it (per site,
// continuing across restarts), and receipts from canary ingest name it.
func EventItem(encode func(dst []byte, seq uint64) []byte) outbox.Item {
	return outbox.Item{Kind: outbox.KindEvent, Stream: EventsStream, Encode: encode}
}

// AlarmItem is the outbox item of an alarm's current state; payload nil
// (or empty) clears the retained state once the alarm is normal.
func AlarmItem(alarmID string, payload []byte) outbox.Item {
	return outbox.Item{Kind: outbox.KindAlarm, Stream: alarmID, Encode: func(dst []byte, _ uint64) []byte {
		return append(dst, payload...)
	}}
}

// AlarmStateItem is the outbox item of an alarm's (not normal) state,
// with the seq of the event that produced it, read when the item is
// encoded: the payload, which encode appends, gains a "seq" member (the
// one extension of the alarm payload; it is what gives InfluxDB's alarm
// measurement its seq).
func AlarmStateItem(alarmID string, encode func(dst []byte) []byte, eventSeq func() uint64) outbox.Item {
	return outbox.Item{Kind: outbox.KindAlarm, Stream: alarmID, Encode: func(dst []byte, _ uint64) []byte {
		start := len(dst)
		dst = encode(dst)
		seq := eventSeq()
		if seq == 0 || len(dst)-start < 2 || dst[len(dst)-1] != '}' {
			return dst
		}
		dst = append(dst[:len(dst)-1], `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
		return append(dst, '}')
	}}
}

// EventsStream is the outbox stream of a site's events.
const EventsStream = "events"
