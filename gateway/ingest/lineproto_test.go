package ingest

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/internal/jsonenc"
	"github.com/canary-gw/canary/internal/testenv"
)

// valueTexts are JSON numbers as a gateway (or another producer) may write
// them: exponents either case, signed, integers, 17 significant digits,
// more digits than a float64 holds, the extremes of float64.
var valueTexts = []string{"0", "-0", "12", "0.45", "-1.5E+3", "1e3", "1E-7", "2.5e-5",
	"0.44999998807907104", "123456789012345678901234567890", "0.1000000000000000055511151231257827",
	"1.7976931348623157e308", "5e-324", "-2.2250738585072014E-308", "1e21", "9007199254740993"}

// The ingest writes each reading's value as its payload writes it. InfluxDB
// (an independent parser) must store exactly the float64 that formatting
// the decoded value as the payload's encoder does (jsonenc.AppendFloat)
// stores: device "text" goes through the
// ingest's path (the decoder's texts), device "fmt" through
// AppendReadingLines, and every value is compared bit for bit. The lines
// must be the same but for the value.
func TestValueTextsStoreTheSameFloats(t *testing.T) {
	inf := testenv.StartInflux(t)
	w, err := NewWriter(WriterOptions{Config: configs.InfluxDB{URL: inf.URL, Bucket: inf.Bucket}, Log: zerolog.Nop()})
	require.NoError(t, err)
	t.Cleanup(w.Close)
	in, err := New(Options{MQTT: configs.MQTT{URL: "tcp://127.0.0.1:1", ClientID: "lines"}, Writer: w, Log: zerolog.Nop()})
	require.NoError(t, err)

	var readings []string
	for i, v := range valueTexts {
		readings = append(readings, fmt.Sprintf(`{"sensor":"s%02d","kind":"methane","value":%s,"unit":"%%vol","quality":"good"}`, i, v))
	}
	readings = append(readings, `{"sensor":"null","kind":"methane","value":null,"unit":"%vol","quality":"bad"}`)
	payload := `{"site":"lp","device":"text","seq":3,"ts":"2026-01-01T00:00:00Z","readings":[` + strings.Join(readings, ",") + `]}`

	dec := mqtt.ReadingsDecoder{SkipValues: true} // as the batcher's
	var r mqtt.Readings
	bt := newBatch()
	in.add(bt, &dec, &r, &fakeMessage{topic: "canary/v1/lp/readings/text", payload: []byte(payload)})
	require.Empty(t, bt.dead)
	require.Len(t, dec.ValueTexts(), len(readings), "the fast parser read it")
	viaText := string(bt.body)

	m, err := mqtt.DecodeReadings([]byte(payload))
	require.NoError(t, err)
	m.Device = "fmt"
	viaFmt := string(AppendReadingLines(nil, &m))
	textLines, fmtLines := strings.Split(viaText, "\n"), strings.Split(viaFmt, "\n")
	require.Len(t, textLines, len(fmtLines))
	for i := range textLines {
		a := strings.Replace(textLines[i], "device=text", "device=fmt", 1)
		if i < len(valueTexts) {
			a = strings.Replace(a, "value="+valueTexts[i]+",", "value=X,", 1)
			b := strings.Replace(fmtLines[i], "value="+string(jsonenc.AppendFloat(nil, m.Readings[i].Value))+",", "value=X,", 1)
			require.Equal(t, b, a, "line %d", i)
			continue
		}
		require.Equal(t, fmtLines[i], a, "line %d", i)
	}
	require.NoError(t, w.Write(context.Background(), []byte(viaText+viaFmt)))

	values := func(dev string) map[string]float64 {
		res, err := inf.Query(`SELECT sensor, value FROM reading WHERE device='` + dev + `'`)
		require.NoError(t, err)
		require.Len(t, res.Results, 1)
		require.Len(t, res.Results[0].Series, 1, "device %s: %+v", dev, res)
		out := map[string]float64{}
		for _, row := range res.Results[0].Series[0].Values {
			if row[2] == nil {
				continue
			}
			out[row[1].(string)] = row[2].(float64)
		}
		return out
	}
	byText, byFmt := values("text"), values("fmt")
	require.Len(t, byText, len(valueTexts))
	for i, v := range valueTexts {
		s := fmt.Sprintf("s%02d", i)
		want, err := strconv.ParseFloat(v, 64)
		require.NoError(t, err)
		require.Equal(t, math.Float64bits(byFmt[s]), math.Float64bits(byText[s]), "%s: %s stored as %v, formatted as %v", s, v, byText[s], byFmt[s])
		require.Equal(t, want, byText[s], "%s: %s", s, v)
	}
}

// Tag values and string fields come from payloads any producer may write:
// every character line protocol gives a meaning (separators, quotes,
// backslashes, line ends) must reach InfluxDB as a value, never split the
// line. A tab, CR or LF in a tag is stored as a space (it once ended the
// tag set, and InfluxDB refused the batch), in a string field a CR or LF
// too; a trailing backslash in a tag as '/'.
func TestTagsAndStringsWithSeparatorsReachInfluxDB(t *testing.T) {
	inf := testenv.StartInflux(t)
	w, err := NewWriter(WriterOptions{Config: configs.InfluxDB{URL: inf.URL, Bucket: inf.Bucket}, Log: zerolog.Nop()})
	require.NoError(t, err)
	t.Cleanup(w.Close)

	units := map[string]string{ // as sent → as stored
		"mg/m3\tTWA":      "mg/m3 TWA",
		"line\nbreak":     "line break",
		"cr\r\nlf":        "cr  lf",
		"a,b=c d":         "a,b=c d",
		`back\slash`:      `back\slash`,
		`trailing\`:       `trailing/`,
		`quote"d`:         `quote"d`,
		"µg/m³ 甲烷":        "µg/m³ 甲烷",
		"=lead,ing space": "=lead,ing space",
	}
	m := mqtt.Readings{Site: "tags", Device: "dev ice,\t1", Seq: 7, TS: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	i := 0
	for sent := range units {
		m.Readings = append(m.Readings, mqtt.Reading{Sensor: fmt.Sprintf("s%02d", i), Kind: "toxic", Value: float64(i), Valid: true,
			Unit: sent, Quality: "good \"q\" \\ \n" + sent})
		i++
	}
	ev := mqtt.Event{Seq: 3, TS: m.TS, Type: "ack", Alarm: "dev.s00.high", From: "unacknowledged", To: "acknowledged",
		User: "olga", Comment: "line one\nline \"two\"\t\\end\\"}
	body := AppendReadingLines(nil, &m)
	body = AppendEventLine(body, "tags", &ev)
	require.NoError(t, w.Write(context.Background(), body))

	res, err := inf.Query(`SELECT device, sensor, unit, quality, value FROM reading WHERE site='tags'`)
	require.NoError(t, err)
	require.Len(t, res.Results, 1)
	require.Len(t, res.Results[0].Series, 1, "%+v", res)
	bySensor := map[any][]any{}
	for _, row := range res.Results[0].Series[0].Values {
		bySensor[row[2]] = row
	}
	require.Len(t, bySensor, len(units), "every reading stored")
	for _, r := range m.Readings {
		row := bySensor[r.Sensor]
		require.NotNil(t, row, r.Sensor)
		require.Equal(t, "dev ice, 1", row[1], "device tag")
		require.Equal(t, units[r.Unit], row[3], "unit %q", r.Unit)
		require.Equal(t, strings.NewReplacer("\n", " ", "\r", " ").Replace(r.Quality), row[4], "quality of %q", r.Unit)
		require.EqualValues(t, r.Value, row[5])
	}
	res, err = inf.Query(`SELECT "user", comment FROM alarm_event WHERE site='tags'`)
	require.NoError(t, err)
	require.Len(t, res.Results[0].Series, 1, "%+v", res)
	require.Equal(t, []any{"olga", "line one line \"two\"\t\\end\\"}, res.Results[0].Series[0].Values[0][1:])
}

// The escapes written in runs are the rules written out byte by byte
// (TestTagsAndStringsWithSeparatorsReachInfluxDB checks the rules against
// a real InfluxDB): ',' '=' ' ' escaped in a tag, a tab, CR or LF as an
// escaped space, a trailing backslash as '/'; '"' and '\' escaped in a
// string field, a CR or LF as a space.
func FuzzTagAndFieldEscapes(f *testing.F) {
	for _, s := range []string{"", "plain", "a,b=c d", "tab\tcr\rlf\n", `trailing\`, `q"uote\`, "µg/m³ 甲烷", "\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var tag []byte
		if v != "" {
			tag = []byte(",k=")
			for i := 0; i < len(v); i++ {
				switch c := v[i]; c {
				case ',', '=', ' ':
					tag = append(tag, '\\', c)
				case '\t', '\r', '\n':
					tag = append(tag, '\\', ' ')
				default:
					tag = append(tag, c)
				}
			}
			if v[len(v)-1] == '\\' {
				tag[len(tag)-1] = '/'
			}
		}
		if got := appendTag(nil, "k", v); string(got) != string(tag) {
			t.Fatalf("tag %q: got %q, want %q", v, got, tag)
		}
		field := []byte{'"'}
		for i := 0; i < len(v); i++ {
			switch c := v[i]; c {
			case '"', '\\':
				field = append(field, '\\', c)
			case '\r', '\n':
				field = append(field, ' ')
			default:
				field = append(field, c)
			}
		}
		field = append(field, '"')
		if got := appendFieldString(nil, v); string(got) != string(field) {
			t.Fatalf("field %q: got %q, want %q", v, got, field)
		}
	})
}
