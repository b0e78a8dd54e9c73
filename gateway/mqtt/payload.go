package mqtt

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/jsonenc"
)

// Reading qualities on the wire.
const (
	QualityGood      = "good"
	QualityUncertain = "uncertain"
	QualityBad       = "bad"
)

// Reading is one sensor value in a batch.
type Reading struct {
	Sensor string
	Kind   string
	// Value is ignored when Valid is false (sent as null).
	Value   float64
	Valid   bool
	Unit    string
	Quality string
}

// Readings is one device's poll batch: the payload of
// <prefix>/v1/<site>/readings/<device>.
type Readings struct {
	Site   string
	Device string
	Seq    uint64
	// TS is when the poll's response arrived.
	TS       time.Time
	Readings []Reading
}

// AppendTime appends t as the contract's timestamp (unquoted): RFC 3339,
// nanoseconds, UTC.
func AppendTime(dst []byte, t time.Time) []byte { return t.UTC().AppendFormat(dst, jsonenc.TimeLayout) }

// AppendReadings appends the JSON payload
// {"site","device","seq","ts","readings":[{"sensor","kind","value","unit","quality"}]}.
// A non-finite value is sent as null.
func AppendReadings(dst []byte, m *Readings) []byte {
	dst, _ = encodeReadings(dst, m, false, nil)
	return dst
}

// AppendReadingsValues is AppendReadings that also appends to values, for
// each reading, where its value's text lies in dst (from, to; "null" for
// no value): the direct InfluxDB writer's line protocol takes the value
// as the payload wrote it, as canary ingest does (ReadingsDecoder.ValueTexts).
func AppendReadingsValues(dst []byte, m *Readings, values [][2]int) ([]byte, [][2]int) {
	return encodeReadings(dst, m, true, values)
}

func encodeReadings(dst []byte, m *Readings, spans bool, values [][2]int) ([]byte, [][2]int) {
	dst = append(dst, `{"site":`...)
	dst = jsonenc.AppendString(dst, m.Site)
	dst = append(dst, `,"device":`...)
	dst = jsonenc.AppendString(dst, m.Device)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, m.Seq, 10)
	dst = append(dst, `,"ts":"`...)
	dst = AppendTime(dst, m.TS)
	dst = append(dst, `","readings":[`...)
	for i := range m.Readings {
		r := &m.Readings[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"sensor":`...)
		dst = jsonenc.AppendString(dst, r.Sensor)
		dst = append(dst, `,"kind":`...)
		dst = jsonenc.AppendString(dst, r.Kind)
		dst = append(dst, `,"value":`...)
		from := len(dst)
		if r.Valid {
			dst = jsonenc.AppendNumber(dst, r.Value)
		} else {
			dst = append(dst, "null"...)
		}
		if spans {
			values = append(values, [2]int{from, len(dst)})
		}
		dst = append(dst, `,"unit":`...)
		dst = jsonenc.AppendString(dst, r.Unit)
		dst = append(dst, `,"quality":`...)
		dst = jsonenc.AppendString(dst, r.Quality)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...), values
}

// Decodable reports whether the payload AppendReadings writes of m is
// one DecodeReadings accepts and decodes back to m: ids, a seq, a time
// InfluxDB can store, a quality of the contract and a value with quality
// good, and texts that are valid UTF-8 (AppendString writes U+FFFD for a
// bad byte). What a consumer builds from m itself, when it is, is what it
// would build from the payload it reads back.
func Decodable(m *Readings) bool {
	if !validID(m.Site) || !validID(m.Device) || m.Seq == 0 || m.TS.Before(minTime) || m.TS.After(maxTime) {
		return false
	}
	for i := range m.Readings {
		r := &m.Readings[i]
		switch r.Quality {
		case QualityGood:
			if !r.Valid || math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
				return false // null with quality good
			}
		case QualityUncertain, QualityBad:
		default:
			return false
		}
		if !validID(r.Sensor) || !utf8.ValidString(r.Kind) || !utf8.ValidString(r.Unit) {
			return false
		}
	}
	return true
}

// ReadingsItem is the outbox item of one poll batch: the payload is encoded
// at commit, with the device sequence number the outbox allocates.
func ReadingsItem(m Readings) outbox.Item {
	return outbox.Item{Kind: outbox.KindReadings, Stream: m.Device, Encode: func(dst []byte, seq uint64) []byte {
		m.Seq = seq
		return AppendReadings(dst, &m)
	}}
}

// Timestamps InfluxDB can store (nanoseconds since 1970 in an int64).
var (
	minTime = time.Unix(0, math.MinInt64+2).UTC()
	maxTime = time.Unix(0, math.MaxInt64-1).UTC()
)

// ParseTime reads an RFC 3339 timestamp in the range InfluxDB can store
// (1677-09-21 to 2262-04-11).
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339", s)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, fmt.Errorf("%q is outside 1677-09-21..2262-04-11", s)
	}
	return t.UTC(), nil
}

// ValidID reports whether s is a config id: [a-z0-9][a-z0-9_-]*.
func ValidID(s string) bool { return validID(s) }

// validID is ValidID for strings and byte slices (the decoder checks ids
// without making a string).
func validID[S ~string | ~[]byte](s S) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
