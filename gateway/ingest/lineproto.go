package ingest

import (
	"math"
	"strconv"
	"strings"

	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/internal/jsonenc"
)

// Measurements.
const (
	MeasurementReading    = "reading"
	MeasurementAlarm      = "alarm"
	MeasurementAlarmEvent = "alarm_event"
)

// AppendReadingLines appends one `reading` line per reading:
// tags site, device, sensor, kind, unit; fields value (float, absent when
// null), quality (string), seq (integer); timestamp = the batch ts.
func AppendReadingLines(dst []byte, m *mqtt.Readings) []byte { return appendReadingLines(dst, m, nil) }

// appendReadingLines is AppendReadingLines with, when texts is not nil,
// each valid value written as texts[i], its JSON text in the payload
// (mqtt.ReadingsDecoder.ValueTexts): a JSON number is a line-protocol
// float as it is, which InfluxDB parses to the value strconv.ParseFloat
// gave the reading, so the stored point is the same without formatting
// the value again.
func appendReadingLines(dst []byte, m *mqtt.Readings, texts [][]byte) []byte {
	if len(texts) != len(m.Readings) {
		texts = nil
	}
	// What every line of the message shares, built once: the device and
	// site tags, and the seq and timestamp that end each line.
	var devBuf, siteBuf, tailBuf [64]byte
	dev := appendTag(devBuf[:0], "device", m.Device)
	site := appendTag(siteBuf[:0], "site", m.Site)
	tail := append(tailBuf[:0], ",seq="...)
	tail = strconv.AppendUint(tail, m.Seq, 10)
	tail = append(tail, "i "...)
	tail = strconv.AppendInt(tail, m.TS.UnixNano(), 10)
	tail = append(tail, '\n')
	for i := range m.Readings {
		r := &m.Readings[i]
		dst = append(dst, MeasurementReading...)
		dst = append(dst, dev...)
		dst = appendTag(dst, "kind", r.Kind)
		dst = appendTag(dst, "sensor", r.Sensor)
		dst = append(dst, site...)
		dst = appendTag(dst, "unit", r.Unit)
		dst = append(dst, ' ')
		if r.Valid && !math.IsNaN(r.Value) && !math.IsInf(r.Value, 0) {
			dst = append(dst, "value="...)
			if texts != nil && texts[i] != nil {
				dst = append(dst, texts[i]...)
			} else {
				// As the payload's encoder writes it (mqtt.AppendReadings):
				// the same text whether the value came as a text or not
				// (the decoder's slow path gives none), so ingest.Fresh's
				// lines are the decoded ones byte for byte.
				dst = jsonenc.AppendFloat(dst, r.Value)
			}
			dst = append(dst, ',')
		}
		dst = append(dst, "quality="...)
		dst = appendFieldString(dst, r.Quality)
		dst = append(dst, tail...)
	}
	return dst
}

// AppendAlarmLine appends the `alarm` point of an alarm state message:
// tags site, device, sensor, alarm, condition, priority; fields state,
// value, limit, user (who acknowledged), comment, active, and seq (the
// site's event seq of the transition, when the payload carries it);
// timestamp = updated (the transition time).
func AppendAlarmLine(dst []byte, site string, a *mqtt.AlarmState) []byte {
	dst = append(dst, MeasurementAlarm...)
	dst = appendTag(dst, "alarm", a.ID)
	dst = appendTag(dst, "condition", a.Condition)
	dst = appendTag(dst, "device", a.Device)
	dst = appendTag(dst, "priority", strconv.Itoa(a.Priority))
	dst = appendTag(dst, "sensor", a.Sensor)
	dst = appendTag(dst, "site", site)
	dst = append(dst, " state="...)
	dst = appendFieldString(dst, a.State)
	dst = appendOptFloat(dst, "value", a.Value)
	dst = appendOptFloat(dst, "limit", a.Limit)
	dst = append(dst, ",user="...)
	dst = appendFieldString(dst, a.AckedBy)
	dst = append(dst, ",comment="...)
	dst = appendFieldString(dst, a.Comment)
	dst = append(dst, ",active="...)
	dst = strconv.AppendBool(dst, a.Active)
	if a.Seq > 0 {
		dst = append(dst, ",seq="...)
		dst = strconv.AppendUint(dst, a.Seq, 10)
		dst = append(dst, 'i')
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, a.Updated.UnixNano(), 10)
	return append(dst, '\n')
}

// AppendEventLine appends the `alarm_event` point of an event: tags site,
// alarm, type; fields from, to, active, value, limit, user, comment, seq;
// timestamp = ts.
func AppendEventLine(dst []byte, site string, e *mqtt.Event) []byte {
	dst = append(dst, MeasurementAlarmEvent...)
	dst = appendTag(dst, "alarm", e.Alarm)
	dst = appendTag(dst, "site", site)
	dst = appendTag(dst, "type", e.Type)
	dst = append(dst, " from="...)
	dst = appendFieldString(dst, e.From)
	dst = append(dst, ",to="...)
	dst = appendFieldString(dst, e.To)
	dst = append(dst, ",active="...)
	dst = strconv.AppendBool(dst, e.Active)
	dst = appendOptFloat(dst, "value", e.Value)
	dst = appendOptFloat(dst, "limit", e.Limit)
	dst = append(dst, ",user="...)
	dst = appendFieldString(dst, e.User)
	dst = append(dst, ",comment="...)
	dst = appendFieldString(dst, e.Comment)
	dst = append(dst, ",seq="...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	dst = append(dst, "i "...)
	dst = strconv.AppendInt(dst, e.TS.UnixNano(), 10)
	return append(dst, '\n')
}

func appendOptFloat(dst []byte, key string, v *float64) []byte {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return dst
	}
	dst = append(dst, ',')
	dst = append(dst, key...)
	dst = append(dst, '=')
	return strconv.AppendFloat(dst, *v, 'g', -1, 64)
}

// appendTag appends ,key=value; an empty value is left out (line protocol
// has no empty tags). Tags are appended in key order, as InfluxDB prefers.
// A tab, CR or LF is stored as a space, a trailing backslash as '/'.
func appendTag(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, ',')
	dst = append(dst, key...)
	dst = append(dst, '=')
	// Written in runs between the bytes to escape, one append each (as
	// jsonenc.AppendString: a tag is nearly always one run).
	run := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case ',', '=', ' ':
		case '\n', '\r', '\t':
			// As a space, escaped: a bare one ended the tag set, and
			// InfluxDB refused the whole batch (every poll of the
			// device dead-lettered, or dropped by the direct writer).
			c = ' '
		default:
			continue
		}
		dst = append(dst, v[run:i]...)
		dst = append(dst, '\\', c)
		run = i + 1
	}
	dst = append(dst, v[run:]...)
	if strings.HasSuffix(v, "\\") {
		// A trailing backslash would escape the separator after it.
		dst[len(dst)-1] = '/'
	}
	return dst
}

func appendFieldString(dst []byte, v string) []byte {
	dst = append(dst, '"')
	run := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case '"', '\\':
			dst = append(dst, v[run:i]...)
			dst = append(dst, '\\', c)
		case '\n', '\r':
			dst = append(dst, v[run:i]...)
			dst = append(dst, ' ')
		default:
			continue
		}
		run = i + 1
	}
	dst = append(dst, v[run:]...)
	return append(dst, '"')
}
