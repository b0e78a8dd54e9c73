package httpapi

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/canary-gw/canary/internal/jsonenc"
)

// Readings, alarm states, transitions and devices are encoded by hand, as
// the MQTT payloads are (alerting.AlarmState.AppendJSON): an alarm state
// here is the MQTT payload byte for byte. encoding/json wrote times in the
// zone they were stamped in (+08:00 where MQTT has Z), trimmed their
// fraction digits, and wrote "0001-01-01T00:00:00Z" where MQTT has null.

// appendOptNumber writes a missing or non-finite number as null.
func appendOptNumber(b []byte, f *float64) []byte {
	if f == nil {
		return append(b, "null"...)
	}
	return jsonenc.AppendNumber(b, *f)
}

// appendJSON appends the MQTT alarm payload, and "held" when set.
func (a *Alarm) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = jsonenc.AppendString(b, a.ID)
	b = append(b, `,"site":`...)
	b = jsonenc.AppendString(b, a.Site)
	b = append(b, `,"device":`...)
	b = jsonenc.AppendString(b, a.Device)
	b = append(b, `,"sensor":`...)
	b = jsonenc.AppendString(b, a.Sensor)
	b = append(b, `,"condition":`...)
	b = jsonenc.AppendString(b, a.Condition)
	b = append(b, `,"priority":`...)
	b = strconv.AppendInt(b, int64(a.Priority), 10)
	b = append(b, `,"state":`...)
	b = jsonenc.AppendString(b, a.State)
	b = append(b, `,"active":`...)
	b = strconv.AppendBool(b, a.Active)
	b = append(b, `,"latched":`...)
	b = strconv.AppendBool(b, a.Latched)
	b = append(b, `,"value":`...)
	b = appendOptNumber(b, a.Value)
	b = append(b, `,"limit":`...)
	b = appendOptNumber(b, a.Limit)
	b = append(b, `,"since":`...)
	b = jsonenc.AppendTime(b, a.Since)
	b = append(b, `,"updated":`...)
	b = jsonenc.AppendTime(b, a.Updated)
	b = append(b, `,"acked_by":`...)
	b = jsonenc.AppendString(b, a.AckedBy)
	b = append(b, `,"comment":`...)
	b = jsonenc.AppendString(b, a.Comment)
	if a.Held {
		b = append(b, `,"held":true`...)
	}
	return append(b, '}')
}

// MarshalJSON writes the MQTT alarm payload (see appendJSON).
func (a Alarm) MarshalJSON() ([]byte, error) { return a.appendJSON(make([]byte, 0, 320)), nil }

// appendJSON appends the MQTT event payload.
func (t *Transition) appendJSON(b []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, t.Seq, 10)
	b = append(b, `,"ts":`...)
	b = jsonenc.AppendTime(b, t.TS)
	b = append(b, `,"type":`...)
	b = jsonenc.AppendString(b, t.Type)
	b = append(b, `,"alarm":`...)
	b = jsonenc.AppendString(b, t.Alarm)
	b = append(b, `,"from":`...)
	b = jsonenc.AppendString(b, t.From)
	b = append(b, `,"to":`...)
	b = jsonenc.AppendString(b, t.To)
	b = append(b, `,"active":`...)
	b = strconv.AppendBool(b, t.Active)
	b = append(b, `,"value":`...)
	b = appendOptNumber(b, t.Value)
	b = append(b, `,"limit":`...)
	b = appendOptNumber(b, t.Limit)
	b = append(b, `,"user":`...)
	b = jsonenc.AppendString(b, t.User)
	b = append(b, `,"comment":`...)
	b = jsonenc.AppendString(b, t.Comment)
	return append(b, '}')
}

// MarshalJSON writes the MQTT event payload (see appendJSON).
func (t Transition) MarshalJSON() ([]byte, error) { return t.appendJSON(make([]byte, 0, 256)), nil }

func (r *Reading) appendJSON(b []byte) []byte {
	b = append(b, `{"site":`...)
	b = jsonenc.AppendString(b, r.Site)
	b = append(b, `,"device":`...)
	b = jsonenc.AppendString(b, r.Device)
	b = append(b, `,"sensor":`...)
	b = jsonenc.AppendString(b, r.Sensor)
	b = append(b, `,"kind":`...)
	b = jsonenc.AppendString(b, r.Kind)
	b = append(b, `,"value":`...)
	b = appendOptNumber(b, r.Value)
	b = append(b, `,"unit":`...)
	b = jsonenc.AppendString(b, r.Unit)
	b = append(b, `,"quality":`...)
	b = jsonenc.AppendString(b, r.Quality)
	b = append(b, `,"ts":`...)
	b = jsonenc.AppendTime(b, r.TS)
	b = append(b, `,"stale":`...)
	b = strconv.AppendBool(b, r.Stale)
	b = append(b, `,"age_s":`...)
	b = jsonenc.AppendNumber(b, r.AgeSeconds)
	if len(r.Limits) > 0 {
		b = append(b, `,"limits":[`...)
		for i, l := range r.Limits {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"condition":`...)
			b = jsonenc.AppendString(b, l.Condition)
			b = append(b, `,"limit":`...)
			b = jsonenc.AppendNumber(b, l.Limit)
			b = append(b, `,"priority":`...)
			b = strconv.AppendInt(b, int64(l.Priority), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// MarshalJSON writes ts as the MQTT readings payload does.
func (r Reading) MarshalJSON() ([]byte, error) { return r.appendJSON(make([]byte, 0, 256)), nil }

func (d *Device) appendJSON(b []byte) []byte {
	b = append(b, `{"site":`...)
	b = jsonenc.AppendString(b, d.Site)
	b = append(b, `,"id":`...)
	b = jsonenc.AppendString(b, d.ID)
	b = append(b, `,"state":`...)
	b = jsonenc.AppendString(b, d.State)
	b = append(b, `,"last_ok":`...)
	b = jsonenc.AppendTime(b, d.LastOK)
	if d.Error != "" {
		b = append(b, `,"error":`...)
		b = jsonenc.AppendString(b, d.Error)
	}
	return append(b, '}')
}

// MarshalJSON writes last_ok as the MQTT timestamps, null if never.
func (d Device) MarshalJSON() ([]byte, error) { return d.appendJSON(make([]byte, 0, 128)), nil }

// jsonAppender is a type encoded by hand: the event stream appends it
// straight into the message.
type jsonAppender interface{ appendJSON([]byte) []byte }

// marshal is json.Marshal without HTML escaping, which would rewrite the
// hand-encoded payloads' "<", ">" and "&" and so differ from MQTT's bytes.
// The result ends in a newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
