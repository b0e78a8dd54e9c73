package mqtt

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sample() Readings {
	return Readings{Site: "demo", Device: "face3-gas", Seq: 42,
		TS: time.Date(2026, 3, 1, 12, 0, 0, 500, time.FixedZone("x", 3600)),
		Readings: []Reading{
			{Sensor: "ch4", Kind: "methane", Value: 0.45, Valid: true, Unit: "%vol", Quality: QualityGood},
			{Sensor: "t", Kind: "temperature", Value: 21, Valid: true, Unit: "°C \"inner\"\n", Quality: QualityUncertain},
			{Sensor: "co", Kind: "co", Unit: "ppm", Quality: QualityBad},
			{Sensor: "nan", Kind: "generic", Value: math.NaN(), Valid: true, Unit: "", Quality: QualityBad},
		}}
}

func TestAppendReadingsIsTheContract(t *testing.T) {
	m := sample()
	b := AppendReadings(nil, &m)
	require.JSONEq(t, `{"site":"demo","device":"face3-gas","seq":42,"ts":"2026-03-01T11:00:00.000000500Z","readings":[
		{"sensor":"ch4","kind":"methane","value":0.45,"unit":"%vol","quality":"good"},
		{"sensor":"t","kind":"temperature","value":21,"unit":"°C \"inner\"\n","quality":"uncertain"},
		{"sensor":"co","kind":"co","value":null,"unit":"ppm","quality":"bad"},
		{"sensor":"nan","kind":"generic","value":null,"unit":"","quality":"bad"}]}`, string(b))
	// Key order is part of what integrators see.
	require.Contains(t, string(b), `{"site":"demo","device":"face3-gas","seq":42,"ts":"2026-03-01T11:00:00.000000500Z","readings":[{"sensor":"ch4","kind":"methane","value":0.45,"unit":"%vol","quality":"good"}`)
	// Whole seconds still carry nine fraction digits.
	m.TS = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	require.Contains(t, string(AppendReadings(nil, &m)), `"ts":"2026-03-01T12:00:00.000000000Z"`)
}

func TestDecodeReadingsRoundTrip(t *testing.T) {
	m := sample()
	got, err := DecodeReadings(AppendReadings(nil, &m))
	require.NoError(t, err)
	require.Equal(t, m.TS.UTC(), got.TS)
	require.Equal(t, uint64(42), got.Seq)
	require.Len(t, got.Readings, 4)
	require.Equal(t, m.Readings[0], got.Readings[0])
	require.False(t, got.Readings[2].Valid)
	require.False(t, got.Readings[3].Valid)
}

func TestDecodeReadingsRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":      `{`,
		"no seq":        `{"site":"s","device":"d","ts":"2026-01-01T00:00:00Z","readings":[]}`,
		"seq zero":      `{"site":"s","device":"d","seq":0,"ts":"2026-01-01T00:00:00Z","readings":[]}`,
		"bad site":      `{"site":"S/x","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z","readings":[]}`,
		"bad ts":        `{"site":"s","device":"d","seq":1,"ts":"yesterday","readings":[]}`,
		"bad quality":   `{"site":"s","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z","readings":[{"sensor":"a","value":1,"quality":"ok"}]}`,
		"null but good": `{"site":"s","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z","readings":[{"sensor":"a","value":null,"quality":"good"}]}`,
		"trailing":      `{"site":"s","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z","readings":[]} {}`,
		"string value":  `{"site":"s","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z","readings":[{"sensor":"a","value":"1","quality":"good"}]}`,
	} {
		_, err := DecodeReadings([]byte(in))
		require.Error(t, err, name)
	}
}

func TestRanges(t *testing.T) {
	require.Equal(t, []SeqRange{{1, 3}, {5, 5}, {7, 8}}, Ranges([]uint64{3, 1, 2, 2, 5, 8, 7}))
	require.Nil(t, Ranges(nil))
	r, err := DecodeReceipt(MarshalReceipt(Receipt{Readings: map[string][]SeqRange{"d1": {{1, 4}}}, Events: []SeqRange{{2, 2}}}))
	require.NoError(t, err)
	require.Equal(t, []SeqRange{{1, 4}}, r.Readings["d1"])
	_, err = DecodeReceipt([]byte(`{"readings":{"d1":[[5,4]]}}`))
	require.Error(t, err)
	_, err = DecodeReceipt([]byte(`{"events":[[1,18446744073709551615]]}`))
	require.Error(t, err)
}

// TestReceiptNotHTMLEscaped: a receipt is written as every payload is,
// without HTML escaping (docs/mqtt.md), and with no trailing newline.
func TestReceiptNotHTMLEscaped(t *testing.T) {
	b := MarshalReceipt(Receipt{Ingest: "ingest<1>&2", Readings: map[string][]SeqRange{"d1": {{1, 4}}}, Events: []SeqRange{{7, 8}}})
	require.Equal(t, `{"ingest":"ingest<1>&2","readings":{"d1":[[1,4]]},"events":[[7,8]]}`, string(b))
	r, err := DecodeReceipt(b)
	require.NoError(t, err)
	require.Equal(t, "ingest<1>&2", r.Ingest)
}

func TestParseTopic(t *testing.T) {
	site, k, name := ParseTopic("canary", "canary/v1/demo/readings/face3-gas")
	require.Equal(t, "demo", site)
	require.Equal(t, TopicReadings, k)
	require.Equal(t, "face3-gas", name)
	_, k, name = ParseTopic("canary", "canary/v1/demo/alarms/face3-gas.ch4.high")
	require.Equal(t, TopicAlarm, k)
	require.Equal(t, "face3-gas.ch4.high", name)
	_, k, _ = ParseTopic("canary", "canary/v1/demo/events")
	require.Equal(t, TopicEvents, k)
	_, k, _ = ParseTopic("canary", "other/v1/demo/events")
	require.Equal(t, TopicUnknown, k)
}

func FuzzDecodeReadings(f *testing.F) {
	m := sample()
	f.Add(AppendReadings(nil, &m))
	f.Add([]byte(`{"site":"s","device":"d","seq":1,"ts":"2026-01-01T00:00:00Z","readings":[{"sensor":"a","value":null,"quality":"bad"}]}`))
	f.Add([]byte(`{"seq":1e400}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeReadings(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to valid JSON that decodes the same.
		again := AppendReadings(nil, &got)
		require.True(t, json.Valid(again), "%s", again)
		back, err := DecodeReadings(again)
		require.NoError(t, err)
		require.Equal(t, got.Seq, back.Seq)
		require.Equal(t, got.TS, back.TS)
		require.Equal(t, len(got.Readings), len(back.Readings))
		for i := range got.Readings {
			require.Equal(t, got.Readings[i].Valid, back.Readings[i].Valid)
			if got.Readings[i].Valid {
				require.Equal(t, got.Readings[i].Value, back.Readings[i].Value)
			}
		}
	})
}

func FuzzDecodeReceipt(f *testing.F) {
	f.Add(MarshalReceipt(Receipt{Readings: map[string][]SeqRange{"d1": {{1, 4}}}, Events: []SeqRange{{2, 2}}}))
	f.Add([]byte(`{"readings":{"d1":[[0,4]]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeReceipt(b)
		_, _ = DecodeEvent(b)
		_, _ = DecodeAlarmState(b)
	})
}

// AlarmStateItem appends the state after whatever the record buffer already
// holds and gives it the seq of its event, leaving the earlier bytes alone;
// without an event seq the payload goes as encoded.
func TestAlarmStateItemAppendsTheSeq(t *testing.T) {
	state := func(dst []byte) []byte { return append(dst, `{"id":"d.s.high","state":"unacknowledged"}`...) }
	earlier := []byte(`{"seq":7,"type":"activate"}`)
	for _, tc := range []struct {
		seq  uint64
		want string
	}{
		{7, `{"id":"d.s.high","state":"unacknowledged","seq":7}`},
		{0, `{"id":"d.s.high","state":"unacknowledged"}`},
	} {
		it := AlarmStateItem("d.s.high", state, func() uint64 { return tc.seq })
		buf := make([]byte, len(earlier), len(earlier)+8) // the state must grow it
		copy(buf, earlier)
		out := it.Encode(buf, 99)
		require.Equal(t, string(earlier), string(out[:len(earlier)]), "earlier records untouched")
		require.Equal(t, tc.want, string(out[len(earlier):]))
		require.True(t, json.Valid(out[len(earlier):]))
	}
	empty := AlarmStateItem("d.s.high", func(dst []byte) []byte { return dst }, func() uint64 { return 7 })
	require.Equal(t, "x", string(empty.Encode([]byte("x"), 1)), "an empty payload stays empty")
}
