package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// DecodeReadings parses and checks a readings payload. Every problem is an
// error naming the field; it never panics.
func DecodeReadings(b []byte) (Readings, error) {
	var m Readings
	if err := decodeReadings(b, &m, nil); err != nil {
		return m, err
	}
	return m, nil
}

// ReadingsDecoder decodes readings payloads for a consumer that handles
// many of them (canary ingest): it reuses the Readings it decodes into and
// keeps one copy of each string that repeats between payloads (site,
// device, sensor ids, kinds, units), so a steady stream decodes without
// allocating. Not safe for concurrent use; the zero value is ready.
type ReadingsDecoder struct {
	strs map[string]string
	// recent holds, for each position in a payload's readings array, the
	// strings the reading there had last time. A device sends the same
	// sensors in the same order every poll, so comparing with them finds
	// the kept copy without hashing: three map lookups a reading were
	// about 3 % of the ingest's CPU under load.
	recent []recentStrs
	// texts are the readings' values as the payload writes them (see
	// ValueTexts).
	texts [][]byte

	// SkipValues leaves a reading's Value at 0 (Valid still true) when
	// its text alone shows it is a finite float64 (no exponent, at most
	// maxPlainNumber characters), for a consumer that writes ValueTexts
	// and never reads Value (canary ingest, the direct InfluxDB writer):
	// parsing every value was a fifth of the decode. Payloads are accepted
	// and rejected exactly as without it.
	SkipValues bool
}

// maxPlainNumber is the longest JSON number without an exponent that
// SkipValues leaves unparsed: such a number is finite as a float64 up to
// 309 integer digits (math.MaxFloat64 is about 1.8e308).
const maxPlainNumber = 300

// ValueTexts returns, for each reading of the payload the last Decode
// read, its value's JSON text (nil for null or no value), or nil when the
// payload was not decoded by the fast parser (empty for no readings).
// Each text is a number encoding/json accepts (so a finite float64,
// exactly the reading's Value when parsed with strconv.ParseFloat), and
// aliases the payload: valid while it is.
// canary ingest writes them as line protocol unchanged, instead of
// formatting the value again (line protocol's float syntax takes JSON's
// numbers; formatting was a seventh of the decode and line building).
func (d *ReadingsDecoder) ValueTexts() [][]byte { return d.texts }

// recentStrs are one position's last sensor, kind and unit.
type recentStrs struct{ sensor, kind, unit string }

// maxRecent bounds the positions remembered (payloads with more readings
// look the rest up in the table).
const maxRecent = 1024

// slot returns the remembered strings of position i, or nil.
func (d *ReadingsDecoder) slot(i int) *recentStrs {
	if d == nil || i >= maxRecent {
		return nil
	}
	if i >= len(d.recent) {
		d.recent = append(d.recent, make([]recentStrs, i+1-len(d.recent))...)
	}
	return &d.recent[i]
}

// strAt is str with a one-entry memory: last is the string this field had
// the previous time (nil: none kept).
func (d *ReadingsDecoder) strAt(last *string, b []byte) string {
	if last == nil {
		return d.str(b)
	}
	if *last != string(b) {
		*last = d.str(b)
	}
	return *last
}

// internLimit bounds the strings a ReadingsDecoder keeps: past it the
// table starts again, so ids that come and go cannot grow it without bound.
const internLimit = 8192

// Decode parses and checks b into m, reusing m.Readings' storage. It
// accepts and rejects exactly what DecodeReadings does, with the same
// results and errors.
func (d *ReadingsDecoder) Decode(b []byte, m *Readings) error {
	return decodeReadings(b, m, d)
}

func (d *ReadingsDecoder) str(b []byte) string {
	if d == nil {
		return string(b)
	}
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	if len(b) > 128 {
		return string(b) // not an id, kind or unit: not worth keeping
	}
	if d.strs == nil || len(d.strs) >= internLimit {
		d.strs = make(map[string]string, 256)
	}
	s := string(b)
	d.strs[s] = s
	return s
}

// decodeReadings tries the hand-written parser first. It understands the
// payloads gateways send (the contract's keys, strings without escapes,
// plain numbers) and gives up on anything else, valid or not: then
// encoding/json decodes the payload as it always did, so rarities (escapes,
// unknown or repeated keys, nulls, JSON oddities) and every error keep
// encoding/json's exact behaviour and messages.
func decodeReadings(b []byte, m *Readings, d *ReadingsDecoder) error {
	if d != nil {
		clear(d.texts) // the last payload is not kept alive
		d.texts = d.texts[:0]
	}
	if fastDecodeReadings(b, m, d) {
		return nil
	}
	if d != nil {
		d.texts = nil // none: the texts are the fast parser's
	}
	r, err := decodeReadingsJSON(b)
	rs := m.Readings
	*m = r
	if d != nil && err == nil && rs != nil && cap(rs) >= len(r.Readings) {
		// Keep the caller's storage for the next payload.
		m.Readings = append(rs[:0], r.Readings...)
	}
	return err
}

type wireReading struct {
	Sensor  *string  `json:"sensor"`
	Kind    string   `json:"kind"`
	Value   *float64 `json:"value"`
	Unit    string   `json:"unit"`
	Quality *string  `json:"quality"`
}

type wireReadings struct {
	Site     *string       `json:"site"`
	Device   *string       `json:"device"`
	Seq      *uint64       `json:"seq"`
	TS       *string       `json:"ts"`
	Readings []wireReading `json:"readings"`
}

// decodeReadingsJSON is the reference decoder (encoding/json and the
// contract's checks); the fast parser must agree with it.
func decodeReadingsJSON(b []byte) (Readings, error) {
	var w wireReadings
	var m Readings
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&w); err != nil {
		return m, fmt.Errorf("decode readings: %w", err)
	}
	if dec.More() {
		return m, errors.New("decode readings: data after the object")
	}
	switch {
	case w.Site == nil || !ValidID(*w.Site):
		return m, errors.New("decode readings: site: missing or not an id ([a-z0-9][a-z0-9_-]*)")
	case w.Device == nil || !ValidID(*w.Device):
		return m, errors.New("decode readings: device: missing or not an id ([a-z0-9][a-z0-9_-]*)")
	case w.Seq == nil || *w.Seq == 0:
		return m, errors.New("decode readings: seq: missing or 0")
	case w.TS == nil:
		return m, errors.New("decode readings: ts: missing")
	}
	ts, err := ParseTime(*w.TS)
	if err != nil {
		return m, fmt.Errorf("decode readings: ts: %w", err)
	}
	m = Readings{Site: *w.Site, Device: *w.Device, Seq: *w.Seq, TS: ts, Readings: make([]Reading, len(w.Readings))}
	for i, r := range w.Readings {
		if r.Sensor == nil || !ValidID(*r.Sensor) {
			return m, fmt.Errorf("decode readings: readings[%d].sensor: missing or not an id", i)
		}
		if r.Quality == nil {
			return m, fmt.Errorf("decode readings: readings[%d].quality: missing", i)
		}
		q := *r.Quality
		if q != QualityGood && q != QualityUncertain && q != QualityBad {
			return m, fmt.Errorf("decode readings: readings[%d].quality: %q (want good, uncertain or bad)", i, q)
		}
		if r.Value == nil && q == QualityGood {
			return m, fmt.Errorf("decode readings: readings[%d].value: null with quality good", i)
		}
		m.Readings[i] = Reading{Sensor: *r.Sensor, Kind: r.Kind, Unit: r.Unit, Quality: q}
		if r.Value != nil {
			m.Readings[i].Value, m.Readings[i].Valid = *r.Value, true
		}
	}
	return m, nil
}

// scanner walks a payload for the fast parser. Every method reports false
// on anything it does not handle; the caller then gives up.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return // what gateways send: no white space
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and consumes c.
func (s *scanner) next(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a string without escapes or control characters, valid UTF-8
// (what encoding/json returns unchanged), and returns its bytes.
func (s *scanner) str() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	start := s.i
	ascii := true
	for ; s.i < len(s.b); s.i++ {
		switch strClass[s.b[s.i]] {
		case strPlain:
		case strQuote:
			v := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			return v, true
		case strGiveUp:
			return nil, false
		default:
			ascii = false
		}
	}
	return nil, false
}

// strClass sorts a string's bytes for str in one look-up: a switch of
// comparisons per byte was a third of the decode.
var strClass = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c == '"':
			t[c] = strQuote
		case c == '\\' || c < 0x20:
			t[c] = strGiveUp
		case c >= utf8.RuneSelf:
			t[c] = strNonASCII
		}
	}
	return t
}()

const (
	strPlain = iota
	strQuote
	strGiveUp
	strNonASCII
)

// uint reads a JSON integer that fits a uint64.
func (s *scanner) uint() (uint64, bool) {
	s.ws()
	start := s.i
	var v uint64
	for ; s.i < len(s.b); s.i++ {
		c := s.b[s.i]
		if c < '0' || c > '9' {
			break
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	return v, true
}

// number reads a JSON number as encoding/json does (strconv.ParseFloat of
// its text), and returns its text too; null reports valid false (and no
// text). Without parse, a number that cannot be out of range is not
// parsed: v is 0 (ReadingsDecoder.SkipValues).
func (s *scanner) number(parse bool) (v float64, text []byte, valid, ok bool) {
	s.ws()
	b := s.b
	start := s.i
	if bytes.HasPrefix(b[s.i:], []byte("null")) {
		s.i += 4
		return 0, nil, false, true
	}
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, nil, false, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, nil, false, false
		}
	}
	exp := i < len(b) && (b[i] == 'e' || b[i] == 'E')
	if exp {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, nil, false, false
		}
	}
	if !parse && !exp && i-start <= maxPlainNumber {
		s.i = i
		return 0, b[start:i:i], true, true
	}
	f, err := strconv.ParseFloat(string(b[start:i]), 64)
	if err != nil {
		return 0, nil, false, false // out of range: encoding/json's error
	}
	s.i = i
	return f, b[start:i:i], true, true
}

// Keys seen, to give up on a repeated key (encoding/json: last one wins).
const (
	seenSite = 1 << iota
	seenDevice
	seenSeq
	seenTS
	seenReadings
)

const (
	seenSensor = 1 << iota
	seenKind
	seenValue
	seenUnit
	seenQuality
)

// fastDecodeReadings decodes a well-formed, valid payload into m and
// reports true, or reports false (m then holds garbage) for anything else.
func fastDecodeReadings(b []byte, m *Readings, d *ReadingsDecoder) bool {
	s := scanner{b: b}
	var site, device, ts []byte
	var seq uint64
	seen := 0
	rs := m.Readings[:0]
	if !s.next('{') {
		return false
	}
	if s.peek() == '}' {
		return false // no site: an error, encoding/json words it
	}
	for {
		key, ok := s.str()
		if !ok || !s.next(':') {
			return false
		}
		var bit int
		switch string(key) {
		case "site":
			bit = seenSite
			site, ok = s.str()
		case "device":
			bit = seenDevice
			device, ok = s.str()
		case "seq":
			bit = seenSeq
			seq, ok = s.uint()
		case "ts":
			bit = seenTS
			ts, ok = s.str()
		case "readings":
			bit = seenReadings
			rs, ok = fastReadingsArray(&s, rs, d)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if s.next(',') {
			continue
		}
		if !s.next('}') {
			return false
		}
		break
	}
	s.ws()
	if s.i != len(b) || seen&(seenSite|seenDevice|seenSeq|seenTS) != seenSite|seenDevice|seenSeq|seenTS {
		return false
	}
	if seq == 0 || !validID(site) || !validID(device) {
		return false
	}
	t, err := ParseTime(string(ts))
	if err != nil {
		return false
	}
	if rs == nil {
		rs = []Reading{} // what the reference decoder returns for no readings
	}
	*m = Readings{Site: d.str(site), Device: d.str(device), Seq: seq, TS: t, Readings: rs}
	return true
}

func fastReadingsArray(s *scanner, rs []Reading, d *ReadingsDecoder) ([]Reading, bool) {
	if !s.next('[') {
		return rs, false
	}
	if s.next(']') {
		return rs, true
	}
	for {
		r, text, ok := fastReading(s, d, d.slot(len(rs)))
		if !ok {
			return rs, false
		}
		rs = append(rs, r)
		if d != nil {
			d.texts = append(d.texts, text)
		}
		if s.next(',') {
			continue
		}
		return rs, s.next(']')
	}
}

// fastReading decodes one reading; last (nil: none) remembers the strings
// of the reading at the same position in the previous payload.
func fastReading(s *scanner, d *ReadingsDecoder, last *recentStrs) (r Reading, text []byte, ok bool) {
	var lastKind, lastUnit, lastSensor *string
	if last != nil {
		lastKind, lastUnit, lastSensor = &last.kind, &last.unit, &last.sensor
	}
	var sensor, quality []byte
	seen := 0
	if !s.next('{') || s.peek() == '}' {
		return r, nil, false
	}
	for {
		key, ok := s.str()
		if !ok || !s.next(':') {
			return r, nil, false
		}
		var bit int
		var v []byte
		switch string(key) {
		case "sensor":
			bit = seenSensor
			sensor, ok = s.str()
		case "kind":
			bit = seenKind
			v, ok = s.str()
			r.Kind = d.strAt(lastKind, v)
		case "value":
			bit = seenValue
			r.Value, text, r.Valid, ok = s.number(d == nil || !d.SkipValues)
		case "unit":
			bit = seenUnit
			v, ok = s.str()
			r.Unit = d.strAt(lastUnit, v)
		case "quality":
			bit = seenQuality
			quality, ok = s.str()
		default:
			return r, nil, false
		}
		if !ok || seen&bit != 0 {
			return r, nil, false
		}
		seen |= bit
		if s.next(',') {
			continue
		}
		if !s.next('}') {
			return r, nil, false
		}
		break
	}
	if seen&(seenSensor|seenQuality) != seenSensor|seenQuality || !validID(sensor) {
		return r, nil, false
	}
	switch string(quality) {
	case QualityGood:
		r.Quality = QualityGood
		if !r.Valid {
			return r, nil, false // null with quality good
		}
	case QualityUncertain:
		r.Quality = QualityUncertain
	case QualityBad:
		r.Quality = QualityBad
	default:
		return r, nil, false
	}
	r.Sensor = d.strAt(lastSensor, sensor)
	return r, text, true
}
