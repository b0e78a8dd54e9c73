package ingest

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/gateway/mqtt"
)

// decodedLines is what the direct writer builds from a readings payload
// it reads back from the outbox, Fresh or not: the decoder as Direct
// configures it (values as texts), then appendReadingLines.
func decodedLines(t *testing.T, payload []byte) ([]byte, int, bool) {
	t.Helper()
	dec := mqtt.ReadingsDecoder{SkipValues: true}
	var m mqtt.Readings
	if err := dec.Decode(payload, &m); err != nil {
		return nil, 0, false
	}
	return appendReadingLines(nil, &m, dec.ValueTexts()), len(m.Readings), true
}

// checkFreshLines commits m through a Fresh item as the outbox does (after
// prefix, the record header and earlier records of the commit) and
// checks that the lines Fresh hands the writer are those it would
// decode from the payload, that Fresh holds none for a payload the
// decoder refuses, and lines for every payload that decodes back to m
// (mqtt.Decodable; one that decodes to other texts, with U+FFFD for a
// bad byte, is decoded by the writer).
func checkFreshLines(t *testing.T, m mqtt.Readings, seq uint64) {
	t.Helper()
	f := NewFresh()
	prefix := []byte("header and earlier records of the commit")
	buf := f.Item(m).Encode(append([]byte(nil), prefix...), seq)
	require.Equal(t, prefix, buf[:len(prefix)], "the encoder keeps what the commit wrote before")
	payload := buf[len(prefix):]
	want, wantN, decodes := decodedLines(t, payload)
	got, gotN, held := f.take([]byte("earlier lines\n"), m.Device, seq)
	m.Seq = seq
	require.Equal(t, mqtt.Decodable(&m), held, "lines held (or not) for %s", payload)
	if !decodes {
		require.False(t, held, "lines held for a payload the decoder refuses: %s", payload)
		return
	}
	if !held {
		return
	}
	require.Equal(t, "earlier lines\n"+string(want), string(got))
	require.Equal(t, wantN, gotN)
	_, _, again := f.take(nil, m.Device, seq)
	require.False(t, again, "lines taken twice")
}

func TestFreshLinesAreTheDecodedPayloads(t *testing.T) {
	at := time.Date(2026, 12, 1, 23, 40, 5, 123456789, time.FixedZone("x", 3600))
	good := func(s string, v float64) mqtt.Reading {
		return mqtt.Reading{Sensor: s, Kind: "methane", Unit: "%vol", Value: v, Valid: true, Quality: mqtt.QualityGood}
	}
	cases := []struct {
		name string
		rs   []mqtt.Reading
		edit func(m *mqtt.Readings)
	}{
		{name: "plain", rs: []mqtt.Reading{good("ch4", 1.25), good("co", 35), good("o2", 20.9)}},
		{name: "no readings"},
		{name: "values of every size", rs: []mqtt.Reading{good("a", 0), good("b", -0.0), good("c", 1e-300), good("d", 1e21),
			good("e", math.MaxFloat64), good("f", -123456.789e-5), good("g", math.SmallestNonzeroFloat64)}},
		{name: "no value, quality bad or uncertain", rs: []mqtt.Reading{
			{Sensor: "a", Kind: "k", Unit: "u", Quality: mqtt.QualityBad},
			{Sensor: "b", Kind: "k", Unit: "u", Value: 3, Quality: mqtt.QualityUncertain}}},
		{name: "a value not finite, quality bad", rs: []mqtt.Reading{
			{Sensor: "a", Kind: "k", Unit: "u", Value: math.NaN(), Valid: true, Quality: mqtt.QualityBad},
			{Sensor: "b", Kind: "k", Unit: "u", Value: math.Inf(-1), Valid: true, Quality: mqtt.QualityUncertain}}},
		{name: "tags and texts to escape", rs: []mqtt.Reading{{Sensor: "s-1_x", Kind: `a b,c=d"e\f`, Unit: "µg/m³ \t\n", Value: 2, Valid: true, Quality: mqtt.QualityGood}}},
		// An escape sends the decoder to its slow path, which gives no
		// value texts: the value is formatted again, as the payload did.
		{name: "escapes and values with exponents", rs: []mqtt.Reading{
			{Sensor: "a", Kind: `in"`, Unit: "u", Value: 1e6, Valid: true, Quality: mqtt.QualityGood},
			{Sensor: "b", Kind: `in"`, Unit: "u", Value: 1e-5, Valid: true, Quality: mqtt.QualityGood},
			{Sensor: "c", Kind: `in"`, Unit: "u", Value: 1e-7, Valid: true, Quality: mqtt.QualityGood},
			{Sensor: "d", Kind: `in"`, Unit: "u", Value: 123456789, Valid: true, Quality: mqtt.QualityGood},
			{Sensor: "e", Kind: `in"`, Unit: "u", Value: 1e21, Valid: true, Quality: mqtt.QualityGood}}},
		{name: "empty kind and unit", rs: []mqtt.Reading{{Sensor: "s", Value: 2, Valid: true, Quality: mqtt.QualityGood}}},
		// Refused by the decoder: no lines held, the writer decodes and
		// logs why.
		{name: "null with quality good", rs: []mqtt.Reading{{Sensor: "a", Kind: "k", Unit: "u", Quality: mqtt.QualityGood}}},
		{name: "NaN with quality good", rs: []mqtt.Reading{{Sensor: "a", Kind: "k", Unit: "u", Value: math.NaN(), Valid: true, Quality: mqtt.QualityGood}}},
		{name: "unknown quality", rs: []mqtt.Reading{{Sensor: "a", Value: 1, Valid: true, Quality: "fine"}}},
		{name: "sensor not an id", rs: []mqtt.Reading{good("CH4", 1)}},
		{name: "unit not UTF-8", rs: []mqtt.Reading{{Sensor: "a", Unit: "\xff", Value: 1, Valid: true, Quality: mqtt.QualityGood}}},
		{name: "site not an id", rs: []mqtt.Reading{good("a", 1)}, edit: func(m *mqtt.Readings) { m.Site = "Site 1" }},
		{name: "a time InfluxDB cannot store", rs: []mqtt.Reading{good("a", 1)}, edit: func(m *mqtt.Readings) { m.TS = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{name: "a time before 1677", rs: []mqtt.Reading{good("a", 1)}, edit: func(m *mqtt.Readings) { m.TS = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := mqtt.Readings{Site: "site1", Device: "dev-7", TS: at, Readings: c.rs}
			if c.edit != nil {
				c.edit(&m)
			}
			checkFreshLines(t, m, 42)
		})
	}
	t.Run("seq 0", func(t *testing.T) {
		checkFreshLines(t, mqtt.Readings{Site: "site1", Device: "d", TS: at, Readings: []mqtt.Reading{good("a", 1)}}, 0)
	})
}

func FuzzFreshLines(f *testing.F) {
	f.Add("site1", "dev1", "ch4", "methane", "%vol", "good", 1.25, true, int64(1764632405123456789), uint64(7))
	f.Add("s", "d", "a", "k,=\" \\", "\xff", "bad", math.NaN(), true, int64(-9e18), uint64(1))
	f.Add("s", "d", "A", "", "", "uncertain", 0.0, false, int64(0), uint64(0))
	f.Add("s", "d", "a", `in"`, "\\", "good", 1e-7, true, int64(1), uint64(2))
	f.Fuzz(func(t *testing.T, site, device, sensor, kind, unit, quality string, v float64, valid bool, ns int64, seq uint64) {
		r := mqtt.Reading{Sensor: sensor, Kind: kind, Unit: unit, Value: v, Valid: valid, Quality: quality}
		m := mqtt.Readings{Site: site, Device: device, TS: time.Unix(0, ns), Readings: []mqtt.Reading{r, r}}
		m.Readings[1].Sensor += "2"
		checkFreshLines(t, m, seq)
	})
}

// A commit that failed is tried again, or its seq given to the next
// commit's item: the lines held are the last encoding's, as the record
// committed is.
func TestFreshKeepsTheLastEncoding(t *testing.T) {
	f := NewFresh()
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	first := mqtt.Readings{Site: "s", Device: "d", TS: at, Readings: []mqtt.Reading{{Sensor: "a", Value: 1, Valid: true, Quality: mqtt.QualityGood}}}
	second := first
	second.Readings = []mqtt.Reading{{Sensor: "a", Value: 2, Valid: true, Quality: mqtt.QualityGood}}
	f.Item(first).Encode(nil, 5)
	payload := f.Item(second).Encode(nil, 5)
	want, _, ok := decodedLines(t, payload)
	require.True(t, ok)
	got, n, held := f.take(nil, "d", 5)
	require.True(t, held)
	require.Equal(t, string(want), string(got))
	require.Equal(t, 1, n)
	require.Equal(t, 0, f.Stats().Held)
}

// Fresh is bounded: a writer that falls behind finds the newest records'
// lines, and decodes the older ones.
func TestFreshIsBounded(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rs := make([]mqtt.Reading, 20)
	for i := range rs {
		rs[i] = mqtt.Reading{Sensor: "s" + strconv.Itoa(i), Kind: "methane", Unit: "%vol", Value: float64(i) / 7, Valid: true, Quality: mqtt.QualityGood}
	}
	t.Run("by records", func(t *testing.T) {
		f := NewFresh()
		small := []mqtt.Reading{rs[0]}
		const n = maxFreshRecords + 300
		for i := 1; i <= n; i++ {
			f.Item(mqtt.Readings{Site: "s", Device: "d", TS: at, Readings: small}).Encode(nil, uint64(i))
		}
		require.Equal(t, maxFreshRecords, f.Stats().Held)
		_, _, held := f.take(nil, "d", n-maxFreshRecords)
		require.False(t, held, "the oldest beyond the bound were let go")
		for i := n - maxFreshRecords + 1; i <= n; i++ {
			_, _, held := f.take(nil, "d", uint64(i))
			require.True(t, held, "seq %d", i)
		}
		require.Zero(t, f.Stats().Held)
		require.Zero(t, f.bytes)
	})
	t.Run("by bytes", func(t *testing.T) {
		f := NewFresh()
		for i := 1; i <= 1000; i++ {
			f.Item(mqtt.Readings{Site: "s", Device: "d", TS: at, Readings: rs}).Encode(nil, uint64(i))
			require.LessOrEqual(t, f.bytes, maxFreshBytes)
		}
		held := f.Stats().Held
		require.Less(t, held, 1000, "20-reading records past the bytes' bound before the records'")
		require.Greater(t, f.bytes, maxFreshBytes*3/4)
		_, _, ok := f.take(nil, "d", uint64(1000-held+1))
		require.True(t, ok, "the newest held")
		_, _, ok = f.take(nil, "d", uint64(1000-held))
		require.False(t, ok, "the older let go")
		// Taken and evicted lines' buffers are reused, within the bound.
		require.LessOrEqual(t, f.freeBytes, maxFreshBytes)
	})
	t.Run("buffers of mixed sizes", func(t *testing.T) {
		// A large device's buffers, reused for a small one's lines, are
		// counted at their size, not at the lines'.
		f := NewFresh()
		big := make([]mqtt.Reading, 200)
		for i := range big {
			big[i] = rs[i%len(rs)]
			big[i].Sensor = "b" + strconv.Itoa(i)
		}
		for i := 1; i <= 3000; i++ {
			m := mqtt.Readings{Site: "s", Device: "d", TS: at, Readings: rs[:1]}
			if i%2 == 0 {
				m.Readings = big
			}
			f.Item(m).Encode(nil, uint64(i))
			if i%3 == 0 {
				f.take(nil, "d", uint64(i-1)) // the writer takes some, and falls behind
			}
			held := 0
			for _, e := range f.entries {
				held += cap(e.lines)
			}
			require.Equal(t, f.bytes, held)
			require.LessOrEqual(t, held, maxFreshBytes, "after %d records", i)
		}
	})
}

// What Fresh costs the commit and saves the writer, per 20-reading poll:
// build the lines at commit and take them, against decoding the payload
// and building them from it (the writer without Fresh).
func BenchmarkFreshLines(b *testing.B) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rs := make([]mqtt.Reading, 20)
	for i := range rs {
		rs[i] = mqtt.Reading{Sensor: "s" + strconv.Itoa(i), Kind: "methane", Unit: "%vol", Value: 1 + float64(i)/7, Valid: true, Quality: mqtt.QualityGood}
	}
	m := mqtt.Readings{Site: "load", Device: "d001", TS: at, Readings: rs}
	b.Run("fresh", func(b *testing.B) {
		f := NewFresh()
		buf, body := []byte(nil), []byte(nil)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			buf = f.Item(m).Encode(buf[:0], uint64(i+1))
			body, _, _ = f.take(body[:0], "d001", uint64(i+1))
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/poll")
	})
	b.Run("decoded", func(b *testing.B) {
		dec := mqtt.ReadingsDecoder{SkipValues: true}
		var dm mqtt.Readings
		buf, body := []byte(nil), []byte(nil)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			buf = mqtt.ReadingsItem(m).Encode(buf[:0], uint64(i+1))
			if err := dec.Decode(buf, &dm); err != nil {
				b.Fatal(err)
			}
			body = appendReadingLines(body[:0], &dm, dec.ValueTexts())
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/poll")
	})
}
