package mqtt

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireSameDecode checks that DecodeReadings and a (reused)
// ReadingsDecoder agree with the encoding/json reference on b: the same
// result, bit for bit, or the same error.
func requireSameDecode(t testing.TB, d *ReadingsDecoder, reuse *Readings, b []byte) {
	t.Helper()
	want, wantErr := decodeReadingsJSON(b)
	got, err := DecodeReadings(b)
	// SkipValues accepts and rejects the same, and its texts carry the
	// values it left unparsed.
	skip := ReadingsDecoder{SkipValues: true}
	var skipped Readings
	skipErr := skip.Decode(b, &skipped)
	if wantErr != nil {
		require.EqualError(t, err, wantErr.Error(), "payload %q", b)
		require.EqualError(t, d.Decode(b, reuse), wantErr.Error(), "payload %q (decoder)", b)
		require.EqualError(t, skipErr, wantErr.Error(), "payload %q (decoder skipping values)", b)
		// A later payload must not see what the failed one left behind.
		*reuse = Readings{Readings: reuse.Readings[:0]}
		return
	}
	require.NoError(t, skipErr, "payload %q (decoder skipping values)", b)
	require.Len(t, skipped.Readings, len(want.Readings), "payload %q (decoder skipping values)", b)
	if texts := skip.ValueTexts(); texts != nil {
		for i := range skipped.Readings {
			if texts[i] != nil {
				f, err := strconv.ParseFloat(string(texts[i]), 64)
				require.NoError(t, err, "payload %q reading %d text %q", b, i, texts[i])
				require.Equal(t, math.Float64bits(want.Readings[i].Value), math.Float64bits(f), "payload %q reading %d text %q (skipping values)", b, i, texts[i])
				skipped.Readings[i].Value = want.Readings[i].Value // the only field it may leave out
			}
		}
	}
	requireSameReadings(t, want, skipped, b)
	require.NoError(t, err, "payload %q", b)
	requireSameReadings(t, want, got, b)
	require.NoError(t, d.Decode(b, reuse), "payload %q (decoder)", b)
	requireSameReadings(t, want, *reuse, b)
	// The values' texts, where the fast parser gives them, are each
	// reading's value exactly.
	if texts := d.ValueTexts(); texts != nil {
		require.Len(t, texts, len(reuse.Readings), "payload %q", b)
		for i, r := range reuse.Readings {
			if !r.Valid {
				require.Nil(t, texts[i], "payload %q reading %d: null has no text", b, i)
				continue
			}
			f, err := strconv.ParseFloat(string(texts[i]), 64)
			require.NoError(t, err, "payload %q reading %d text %q", b, i, texts[i])
			require.Equal(t, math.Float64bits(r.Value), math.Float64bits(f), "payload %q reading %d text %q", b, i, texts[i])
			require.True(t, bytes.Contains(b, texts[i]), "payload %q reading %d: text from the payload", b, i)
		}
	}
}

func requireSameReadings(t testing.TB, want, got Readings, b []byte) {
	t.Helper()
	require.Equal(t, want.Site, got.Site, "payload %q", b)
	require.Equal(t, want.Device, got.Device, "payload %q", b)
	require.Equal(t, want.Seq, got.Seq, "payload %q", b)
	require.Equal(t, want.TS, got.TS, "payload %q", b)
	require.NotNil(t, got.Readings, "payload %q", b)
	require.Len(t, got.Readings, len(want.Readings), "payload %q", b)
	for i := range want.Readings {
		w, g := want.Readings[i], got.Readings[i]
		require.Equal(t, math.Float64bits(w.Value), math.Float64bits(g.Value), "payload %q reading %d value", b, i)
		w.Value, g.Value = 0, 0
		require.Equal(t, w, g, "payload %q reading %d", b, i)
	}
}

const okHead = `{"site":"s","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z","readings":[`

// decodeCases are payloads the fast parser takes and payloads it must
// leave to encoding/json, valid and not.
var decodeCases = []string{
	okHead + `]}`,
	okHead + `{"sensor":"a","kind":"methane","value":1.25,"unit":"%vol","quality":"good"}]}`,
	` {"readings":[{"quality":"bad","unit":"u","value":null,"kind":"k","sensor":"a"}],"ts":"2026-01-01T00:00:00.123456789+02:00","seq":18446744073709551615,"device":"d-1","site":"s_2"} ` + "\n",
	"{\n\t\"site\" : \"s\" ,\r\n \"device\":\"d\",\"seq\":7,\"ts\":\"2026-01-01T00:00:00Z\"}",
	okHead + `{"sensor":"a","value":-0,"quality":"uncertain"},{"sensor":"b","value":1e-7,"quality":"good"},{"sensor":"c","value":-12.5E+3,"quality":"good"},{"sensor":"d","value":0.1e1,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":1,"unit":"°C","kind":"温度","quality":"good"}]}`,
	okHead + `{"sensor":"a","value":1,"unit":"\u00b0C","quality":"good"}]}`,        // escape
	okHead + `{"sensor":"a","value":1,"unit":"a\"b\\c\n","quality":"good"}]}`,      // escapes
	okHead + `{"sensor":"a","value":1,"unit":"` + "\xff" + `","quality":"good"}]}`, // invalid UTF-8
	okHead + `{"sensor":"a","value":1,"unit":"` + "\x01" + `","quality":"good"}]}`, // control character
	okHead + `{"sensor":"a","value":1,"unit":null,"kind":null,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":1,"quality":"good","quality":"bad"}]}`, // repeated key: last wins
	okHead + `{"sensor":"a","value":1,"quality":"good","extra":{"x":[1,2]}}]}`,
	okHead + `{"Sensor":"a","VALUE":1,"Quality":"good"}]}`, // encoding/json matches keys case-insensitively
	okHead + `{"sensor":"a","value":1e400,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":01,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":1.,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":.5,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":+1,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":1e,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":NaN,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":"1","quality":"good"}]}`,
	okHead + `{"sensor":"a","value":true,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":nul,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":null,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":1,"quality":"ok"}]}`,
	okHead + `{"sensor":"a","value":1}]}`,
	okHead + `{"value":1,"quality":"good"}]}`,
	okHead + `{"sensor":"A","value":1,"quality":"good"}]}`,
	okHead + `{"sensor":"-a","value":1,"quality":"good"}]}`,
	okHead + `{"sensor":"` + strings.Repeat("a", 129) + `","value":1,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":1,"quality":"good"},]}`,
	okHead + `{"sensor":"a","value":1,"quality":"good"}`,
	okHead + `{}]}`,
	okHead + `null]}`,
	okHead + `[]]}`,
	okHead + `{"sensor":"a","value":1,"quality":"good",}]}`,
	okHead + `]} {}`,
	okHead + `]}]`, // encoding/json's Decoder.More takes a closing bracket as the end
	okHead + `]}}`,
	okHead + `]}x`,
	okHead + `]`,
	`{"site":"s","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z","readings":null}`,
	`{"site":"s","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z","readings":{}}`,
	`{"site":"s","device":"d","seq":0,"ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":01,"ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":-1,"ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":1.0,"ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":1e3,"ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":18446744073709551616,"ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":"1","ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":1,"ts":"yesterday"}`,
	`{"site":"s","device":"d","seq":1,"ts":"2300-01-01T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":1,"ts":"2026-02-30T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":1,"ts":null}`,
	`{"site":"s","device":"d","seq":1}`,
	`{"site":"s","device":"D","seq":1,"ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z"}`,
	`{"device":"d","seq":1,"ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"s","site":"t","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z"}`,
	`{"site":"s","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z","other":1}`,
	`{}`, `[]`, `null`, `""`, `1`, ``, ` `, `{`, `{"site"`, `{"site":`, `{"site":"s"`, `{"site":"s",}`,
	"\xef\xbb\xbf" + okHead + `]}`, // a byte order mark
	okHead + `{"sensor":"a","value":1` + strings.Repeat("0", 320) + `,"quality":"good"}]}`, // out of range without an exponent
	okHead + `{"sensor":"a","value":1` + strings.Repeat("0", 299) + `,"quality":"good"}]}`, // 1e299 written out
	okHead + `{"sensor":"a","value":1e999,"quality":"good"}]}`,
	okHead + `{"sensor":"a","value":-0.000000000000000000000000000000000000000000000000001,"quality":"good"}]}`,
}

func TestReadingsDecoderMatchesEncodingJSON(t *testing.T) {
	var d ReadingsDecoder
	var reuse Readings
	for _, c := range decodeCases {
		requireSameDecode(t, &d, &reuse, []byte(c))
	}
	// Real payloads, of every shape AppendReadings writes.
	m := sample()
	for i := 0; i < 50; i++ {
		m.Seq = uint64(i + 1)
		m.Readings = append(m.Readings, Reading{Sensor: "s" + strconv.Itoa(i), Kind: "k", Value: float64(i) * -1.37e-5, Valid: i%3 != 0, Unit: "u", Quality: QualityUncertain})
		requireSameDecode(t, &d, &reuse, AppendReadings(nil, &m))
	}
}

// The fast parser must really take what gateways send (or the whole
// exercise is for nothing), and without allocating once warmed up.
func TestReadingsDecoderFastPathTakesGatewayPayloads(t *testing.T) {
	m := Readings{Site: "load", Device: "d001", Seq: 99, TS: time.Date(2026, 11, 29, 4, 0, 0, 123, time.UTC)}
	for i := 0; i < 20; i++ {
		m.Readings = append(m.Readings, Reading{Sensor: "s" + strconv.Itoa(i), Kind: "methane", Value: 0.1 * float64(i), Valid: i != 3, Unit: "%vol", Quality: QualityGood})
	}
	m.Readings[3].Quality = QualityBad
	p := AppendReadings(nil, &m)
	var got Readings
	require.True(t, fastDecodeReadings(p, &got, nil))
	var d ReadingsDecoder
	var reuse Readings
	require.NoError(t, d.Decode(p, &reuse))
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.Decode(p, &reuse); err != nil {
			panic(err)
		}
	})
	require.LessOrEqual(t, allocs, 1.0, "the timestamp string is the only allocation")
	require.Equal(t, m.Readings[0], reuse.Readings[0])
	require.Equal(t, m.TS, reuse.TS)
}

func TestReadingsDecoderInternTableIsBounded(t *testing.T) {
	var d ReadingsDecoder
	var m Readings
	for i := 0; i < internLimit+10; i++ {
		p := []byte(`{"site":"s","device":"d` + strconv.Itoa(i) + `","seq":1,"ts":"2026-01-01T00:00:00Z"}`)
		require.NoError(t, d.Decode(p, &m))
		require.Equal(t, "d"+strconv.Itoa(i), m.Device)
		require.LessOrEqual(t, len(d.strs), internLimit)
	}
}

// The decoder remembers each position's strings from the previous payload;
// payloads from devices with other sensors, kinds and units at the same
// positions (and more readings than it remembers) must still decode to
// exactly what the reference decoder gives, every time.
func TestReadingsDecoderRememberedStringsFollowEachPayload(t *testing.T) {
	var d ReadingsDecoder
	var reuse Readings
	payload := func(dev string, n int, kind, unit string) []byte {
		m := Readings{Site: "s", Device: dev, Seq: 1, TS: time.Date(2026, 11, 29, 4, 0, 0, 0, time.UTC)}
		for i := range n {
			m.Readings = append(m.Readings, Reading{Sensor: dev + "-" + strconv.Itoa(i), Kind: kind, Value: float64(i), Valid: true, Unit: unit, Quality: QualityGood})
		}
		return AppendReadings(nil, &m)
	}
	ps := [][]byte{
		payload("a", 20, "methane", "%vol"),
		payload("b", 20, "co", "ppm"),
		payload("a", 20, "methane", "%vol"),
		payload("c", maxRecent+5, "h2s", "ppm"),
		payload("b", 3, "", ""),
		payload("b", 20, "co", "ppm"),
	}
	for round := 0; round < 3; round++ {
		for _, p := range ps {
			requireSameDecode(t, &d, &reuse, p)
		}
	}
	require.LessOrEqual(t, len(d.recent), maxRecent)
}

// The decoder hands out each value as the payload writes it, for the
// ingest to copy into line protocol; none after a payload the fast parser
// leaves to encoding/json.
func TestReadingsDecoderValueTexts(t *testing.T) {
	var d ReadingsDecoder
	var m Readings
	p := []byte(`{"site":"s","device":"d","seq":1,"ts":"2026-12-01T00:00:00Z","readings":[` +
		`{"sensor":"a","value":0.45,"quality":"good"},{"sensor":"b","value":null,"quality":"bad"},` +
		`{"sensor":"c","value":-1.5E+3,"quality":"uncertain"},{"sensor":"d","value":12,"quality":"good"}]}`)
	require.NoError(t, d.Decode(p, &m))
	require.Equal(t, [][]byte{[]byte("0.45"), nil, []byte("-1.5E+3"), []byte("12")}, d.ValueTexts())
	require.Equal(t, -1500.0, m.Readings[2].Value)

	escaped := bytes.Replace(p, []byte(`"sensor":"a"`), []byte(`"sensor":"\u0061"`), 1)
	require.NoError(t, d.Decode(escaped, &m)) // encoding/json's path
	require.Nil(t, d.ValueTexts())
	require.Equal(t, "a", m.Readings[0].Sensor)
}

// FuzzReadingsDecoder decodes random and mutated payloads with the fast
// decoder and with encoding/json, and requires the same result or the
// same error.
func FuzzReadingsDecoder(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	m := sample()
	f.Add(AppendReadings(nil, &m))
	var d ReadingsDecoder
	var reuse Readings
	f.Fuzz(func(t *testing.T, b []byte) {
		requireSameDecode(t, &d, &reuse, b)
	})
}

func BenchmarkDecodeReadingsJSON(b *testing.B) {
	m := benchBatch()
	p := AppendReadings(nil, &m)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeReadingsJSON(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(m.Readings)*b.N)/b.Elapsed().Seconds(), "readings/s")
}

func BenchmarkReadingsDecoder(b *testing.B) { benchReadingsDecoder(b, false) }

// BenchmarkReadingsDecoderSkipValues is the ingest's decode: values as
// texts only.
func BenchmarkReadingsDecoderSkipValues(b *testing.B) { benchReadingsDecoder(b, true) }

func benchReadingsDecoder(b *testing.B, skip bool) {
	m := benchBatch()
	p := AppendReadings(nil, &m)
	d := ReadingsDecoder{SkipValues: skip}
	var got Readings
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(p, &got); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(m.Readings)*b.N)/b.Elapsed().Seconds(), "readings/s")
}
