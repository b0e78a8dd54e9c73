package simulator

import (
	"math"
	"testing"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/stretchr/testify/require"
)

func sensorCfg(typ, order string, scale, offset float64) configs.Sensor {
	a := 0
	s := configs.Sensor{SensorConfig: modbus.SensorConfig{ID: "x", Table: "holding", Address: &a, Type: typ, Order: order, Offset: offset}}
	if scale != 0 {
		s.Scale = &scale
	}
	return s
}

func TestEncodeValue(t *testing.T) {
	cases := []struct {
		name          string
		typ, order    string
		scale, offset float64
		v             float64
		want          []uint16
	}{
		{"float32 ABCD pi", "float32", "ABCD", 0, 0, math.Float64frombits(0x400921fb60000000), []uint16{0x4049, 0x0fdb}},
		{"float32 CDAB pi", "float32", "CDAB", 0, 0, float64(float32(math.Pi)), []uint16{0x0fdb, 0x4049}},             // low word first
		{"float32 BADC pi", "float32", "BADC", 0, 0, float64(float32(math.Pi)), []uint16{0x4940, 0xdb0f}},             // bytes swapped in words
		{"float32 DCBA pi", "float32", "DCBA", 0, 0, float64(float32(math.Pi)), []uint16{0xdb0f, 0x4940}},             // little endian
		{"float64 ABCDEFGH 1.5", "float64", "ABCDEFGH", 0, 0, 1.5, []uint16{0x3ff8, 0, 0, 0}},                         // 0x3FF8000000000000
		{"float64 GHEFCDAB 1.5", "float64", "GHEFCDAB", 0, 0, 1.5, []uint16{0, 0, 0, 0x3ff8}},                         // words reversed
		{"float64 BADCFEHG 1.5", "float64", "BADCFEHG", 0, 0, 1.5, []uint16{0xf83f, 0, 0, 0}},                         // bytes swapped
		{"float64 HGFEDCBA 1.5", "float64", "HGFEDCBA", 0, 0, 1.5, []uint16{0, 0, 0, 0xf83f}},                         // little endian
		{"int16 negative scaled", "int16", "", 0.01, 0, -1.23, []uint16{0xff85}},                                      // -123
		{"int16 saturates", "int16", "", 1, 0, 40000, []uint16{0x7fff}},                                               // clamps at max
		{"uint16 offset", "uint16", "", 0.1, -40, 21.5, []uint16{615}},                                                // (21.5+40)/0.1
		{"uint16 negative saturates to 0", "uint16", "", 1, 0, -5, []uint16{0}},                                       // no wrap
		{"int32 CDAB", "int32", "CDAB", 1, 0, -2, []uint16{0xfffe, 0xffff}},                                           // 0xFFFFFFFE low word first
		{"uint32 ABCD", "uint32", "ABCD", 1, 0, 0x12345678, []uint16{0x1234, 0x5678}},                                 // big endian
		{"uint32 BADC", "uint32", "BADC", 1, 0, 0x12345678, []uint16{0x3412, 0x7856}},                                 // byte swapped
		{"int64 ABCDEFGH", "int64", "ABCDEFGH", 1, 0, -1, []uint16{0xffff, 0xffff, 0xffff, 0xffff}},                   // all ones
		{"uint64 HGFEDCBA", "uint64", "HGFEDCBA", 1, 0, 0x0102030405068000, []uint16{0x0080, 0x0605, 0x0403, 0x0201}}, // little endian
		{"uint16 BADC byte swap", "uint16", "BADC", 1, 0, 0x1234, []uint16{0x3412}},                                   // 16-bit swapped
		{"bool", "bool", "", 0, 0, 1, []uint16{1}},                                                                    // set
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := sensorCfg(c.typ, c.order, c.scale, c.offset)
			got, err := encodeValue(s, c.v)
			require.NoError(t, err)
			require.Equal(t, c.want, got)
			back, err := decodeValue(s, got)
			require.NoError(t, err)
			if c.name != "int16 saturates" && c.name != "uint16 negative saturates to 0" {
				require.InDelta(t, c.v, back, math.Max(math.Abs(c.v)*1e-6, 1e-9))
			}
		})
	}
}

func TestEncodeValueRejectsBadShape(t *testing.T) {
	for _, c := range []struct {
		s    configs.Sensor
		want string
	}{
		{sensorCfg("float33", "", 0, 0), "unknown type"},
		{sensorCfg("int8", "", 0, 0), "needs order A (high byte) or B (low byte)"},
		{sensorCfg("uint8", "ABCD", 0, 0), "unknown byte order"},
		{sensorCfg("float32", "ABDC", 0, 0), "unknown byte order"},
		{sensorCfg("float64", "CDAB1", 0, 0), "unknown byte order"},
	} {
		_, err := encodeValue(c.s, 1)
		require.ErrorContains(t, err, c.want)
	}
	s := sensorCfg("bool", "", 0, 0)
	s.Table = "coil"
	s.Type = "float32"
	_, err := shapeOf(s)
	require.ErrorContains(t, err, "type must be bool")
}

// The CRC of the Modbus spec's example request (read 1 holding register at
// 0x006B... from unit 0x11): 11 03 00 6B 00 03 -> CRC 0x8776, sent 76 87.
func TestCRC16SpecExample(t *testing.T) {
	f := rtuFrame(0x11, []byte{0x03, 0x00, 0x6b, 0x00, 0x03})
	require.Equal(t, []byte{0x11, 0x03, 0x00, 0x6b, 0x00, 0x03, 0x76, 0x87}, f)
	unit, pdu, err := parseRTUFrame(f)
	require.NoError(t, err)
	require.Equal(t, uint8(0x11), unit)
	require.Equal(t, []byte{0x03, 0x00, 0x6b, 0x00, 0x03}, pdu)
	f[7] ^= 1
	_, _, err = parseRTUFrame(f)
	require.ErrorContains(t, err, "rtu crc")
}

func FuzzRTUFrame(f *testing.F) {
	site := siteFromYAML(f, testSite)
	s, err := New(Options{Site: site})
	require.NoError(f, err)
	f.Add(rtuFrame(1, []byte{0x03, 0, 0, 0, 4}))
	f.Add(rtuFrame(9, []byte{0x0f, 0, 0, 0, 1, 1, 1}))
	f.Add(rtuFrame(9, []byte{0x10, 0, 0, 0, 2, 4, 0, 1, 0, 2}))
	f.Add(rtuFrame(1, []byte{0x2b, 0x0e}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, frame []byte) {
		unit, pdu, err := parseRTUFrame(frame)
		if err != nil {
			return
		}
		ep := s.endpoints[0]
		r := s.handle(ep, unit, pdu)
		if r.fate == fateSilent {
			return
		}
		require.NotEmpty(t, r.pdu)
		require.True(t, r.pdu[0] == pdu[0] || r.pdu[0] == pdu[0]|0x80, "answer %#x to function %#x", r.pdu[0], pdu[0])
		out := rtuFrame(unit, r.pdu)
		_, back, err := parseRTUFrame(out)
		if len(out) <= rtuMaxFrame {
			require.NoError(t, err)
			require.Equal(t, r.pdu, back)
		}
	})
}
