// Package jsonenc writes JSON strings and numbers for the hand-written
// encoders (readings, alarm states, events, the alarm-state snapshot),
// which do not go through encoding/json's reflection, and Marshal for the
// payloads that do (command results, receipts, dead letters), so that
// every MQTT payload writes its strings the same way.
//
// strconv.Quote is not a JSON encoder: it writes \a, \v, \x00 and \U0001xxxx
// escapes that JSON does not have, and passes invalid UTF-8 through as \xff.
// An operator's comment holding such a character made the alarm event's
// payload invalid JSON, which a consumer rejects whole.
package jsonenc

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimeLayout is the contract's timestamp: RFC 3339 with all nine fraction
// digits, written in UTC (time.RFC3339Nano would drop trailing zeros).
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// AppendTime appends t as a JSON value: the contract's timestamp in
// quotes, or null for the zero time.
func AppendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, TimeLayout)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s to dst as a JSON string, the bytes encoding/json
// writes with HTML escaping off, except that U+2028 and U+2029 are left as
// they are (encoding/json escapes them for JavaScript; JSON does not need
// it): '"' and '\' escaped, \b \f \n \r \t, other control characters as
// \u00XX, each byte of invalid UTF-8 as \ufffd. The result always decodes
// to s with its invalid bytes replaced by U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	// Bytes written as they are go out in runs, one append each: nearly
	// every string the payloads carry (ids, kinds, units, qualities) is
	// one run, and appending byte by byte was most of what encoding a
	// reading cost (docs/performance-history.md, item 67).
	run := 0 // where the run of bytes written as they are began
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || n != 1 {
				i += n // valid UTF-8 is written as it is
				continue
			}
		}
		dst = append(dst, s[run:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				dst = append(dst, `\ufffd`...) // a byte of invalid UTF-8
			}
		}
		i++
		run = i
	}
	dst = append(dst, s[run:]...)
	return append(dst, '"')
}

// AppendFloat appends f as encoding/json writes a float64: plain decimals,
// an exponent only below 1e-6 or from 1e21 on (e-7, not e-07). f must be
// finite: JSON has no NaN or infinity, and each caller says what stands
// for them (null, or the member left out).
func AppendFloat(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	if abs == 0 || (abs >= 1e-6 && abs < 1e21) {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
	if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1]
		dst = dst[:n-1]
	}
	return dst
}

// AppendNumber is AppendFloat, with null for NaN and the infinities, which
// JSON cannot carry: the payloads' "no value".
func AppendNumber(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return AppendFloat(dst, f)
}

// Marshal is json.Marshal writing strings as AppendString does: without
// encoding/json's HTML escaping (a comment "a<b&c" stays a<b&c, not
// a\u003cb\u0026c) or its escaping of U+2028 and U+2029, and without the
// newline a json.Encoder ends with.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !bytes.Contains(b, []byte(`\u202`)) {
		return b, nil
	}
	// In encoding/json's output a backslash only ever starts an escape
	// inside a string: skipping each escape whole, \u2028 is never taken
	// for the tail of an escaped backslash.
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		switch string(b[i:min(i+6, len(b))]) {
		case `\u2028`:
			out = append(out, "\u2028"...)
			i += 5
			continue
		case `\u2029`:
			out = append(out, "\u2029"...)
			i += 5
			continue
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out, nil
}
