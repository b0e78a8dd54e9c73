package modbus

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func mustCodec(t testing.TB, typ Type, order string, bit int, scale, offset float64) Codec {
	t.Helper()
	c, err := NewCodec(typ, order, bit, scale, offset)
	require.NoError(t, err)
	return c
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name  string
		regs  []uint16
		typ   Type
		order string
		bit   int
		scale float64
		want  float64
		err   error
	}{
		// Modbus Application Protocol v1.1b3 §6.3 (FC03): registers 108-110
		// answer 0x022B, 0x0000, 0x0064 = 555, 0, 100.
		{name: "spec fc03 reg 108", regs: []uint16{0x022B}, typ: TypeUint16, want: 555},
		{name: "spec fc03 reg 109", regs: []uint16{0x0000}, typ: TypeUint16, want: 0},
		{name: "spec fc03 reg 110", regs: []uint16{0x0064}, typ: TypeInt16, want: 100},
		{name: "spec fc03 108 as int32 ABCD", regs: []uint16{0x022B, 0x0000}, typ: TypeInt32, want: 0x022B0000},
		{name: "spec fc03 108 as uint32 CDAB", regs: []uint16{0x022B, 0x0000}, typ: TypeUint32, order: "CDAB", want: 0x0000022B},
		{name: "spec fc03 108 uint16 BA", regs: []uint16{0x022B}, typ: TypeUint16, order: "BA", want: 0x2B02},
		{name: "spec fc03 108 uint16 DCBA alias", regs: []uint16{0x022B}, typ: TypeUint16, order: "DCBA", want: 0x2B02},
		{name: "spec fc03 108 uint16 CDAB alias", regs: []uint16{0x022B}, typ: TypeUint16, order: "CDAB", want: 555},

		// float32 pi = 0x40490FDB under each order.
		{name: "float32 ABCD pi", regs: []uint16{0x4049, 0x0FDB}, typ: TypeFloat32, order: "ABCD", want: float64(float32(math.Pi))},
		{name: "float32 CDAB pi", regs: []uint16{0x0FDB, 0x4049}, typ: TypeFloat32, order: "CDAB", want: float64(float32(math.Pi))},
		{name: "float32 BADC pi", regs: []uint16{0x4940, 0xDB0F}, typ: TypeFloat32, order: "BADC", want: float64(float32(math.Pi))},
		{name: "float32 DCBA pi", regs: []uint16{0xDB0F, 0x4940}, typ: TypeFloat32, order: "DCBA", want: float64(float32(math.Pi))},
		{name: "float32 1.0", regs: []uint16{0x3F80, 0x0000}, typ: TypeFloat32, want: 1},
		{name: "float32 -2.5", regs: []uint16{0xC020, 0x0000}, typ: TypeFloat32, want: -2.5},
		{name: "float32 max", regs: []uint16{0x7F7F, 0xFFFF}, typ: TypeFloat32, want: math.MaxFloat32},
		{name: "float32 smallest subnormal", regs: []uint16{0x0000, 0x0001}, typ: TypeFloat32, want: math.SmallestNonzeroFloat32},
		{name: "float32 NaN", regs: []uint16{0x7FC0, 0x0000}, typ: TypeFloat32, err: ErrNaN},
		{name: "float32 +Inf", regs: []uint16{0x7F80, 0x0000}, typ: TypeFloat32, err: ErrPosInf},
		{name: "float32 -Inf CDAB", regs: []uint16{0x0000, 0xFF80}, typ: TypeFloat32, order: "CDAB", err: ErrNegInf},
		{name: "float32 max scaled to +Inf", regs: []uint16{0x7F7F, 0xFFFF}, typ: TypeFloat32, scale: math.MaxFloat64, err: ErrPosInf},

		// float64 pi = 0x400921FB54442D18.
		{name: "float64 ABCDEFGH pi", regs: []uint16{0x4009, 0x21FB, 0x5444, 0x2D18}, typ: TypeFloat64, order: "ABCDEFGH", want: math.Pi},
		{name: "float64 GHEFCDAB pi", regs: []uint16{0x2D18, 0x5444, 0x21FB, 0x4009}, typ: TypeFloat64, order: "GHEFCDAB", want: math.Pi},
		{name: "float64 BADCFEHG pi", regs: []uint16{0x0940, 0xFB21, 0x4454, 0x182D}, typ: TypeFloat64, order: "BADCFEHG", want: math.Pi},
		{name: "float64 HGFEDCBA pi", regs: []uint16{0x182D, 0x4454, 0xFB21, 0x0940}, typ: TypeFloat64, order: "HGFEDCBA", want: math.Pi},
		{name: "float64 CDAB alias", regs: []uint16{0x2D18, 0x5444, 0x21FB, 0x4009}, typ: TypeFloat64, order: "CDAB", want: math.Pi},
		{name: "float64 NaN", regs: []uint16{0x7FF8, 0, 0, 1}, typ: TypeFloat64, err: ErrNaN},
		{name: "float64 -Inf", regs: []uint16{0xFFF0, 0, 0, 0}, typ: TypeFloat64, err: ErrNegInf},

		// float16 (IEEE binary16).
		{name: "float16 1.0", regs: []uint16{0x3C00}, typ: TypeFloat16, want: 1},
		{name: "float16 max", regs: []uint16{0x7BFF}, typ: TypeFloat16, want: 65504},
		{name: "float16 -2", regs: []uint16{0xC000}, typ: TypeFloat16, want: -2},
		{name: "float16 smallest subnormal", regs: []uint16{0x0001}, typ: TypeFloat16, want: math.Ldexp(1, -24)},
		{name: "float16 BA 1.0", regs: []uint16{0x003C}, typ: TypeFloat16, order: "BA", want: 1},
		{name: "float16 NaN", regs: []uint16{0x7E00}, typ: TypeFloat16, err: ErrNaN},
		{name: "float16 +Inf", regs: []uint16{0x7C00}, typ: TypeFloat16, err: ErrPosInf},

		// Integer edges.
		{name: "int16 min", regs: []uint16{0x8000}, typ: TypeInt16, want: math.MinInt16},
		{name: "int16 -1", regs: []uint16{0xFFFF}, typ: TypeInt16, want: -1},
		{name: "uint16 max", regs: []uint16{0xFFFF}, typ: TypeUint16, want: math.MaxUint16},
		{name: "int32 min", regs: []uint16{0x8000, 0x0000}, typ: TypeInt32, want: math.MinInt32},
		{name: "int32 max DCBA", regs: []uint16{0xFFFF, 0xFF7F}, typ: TypeInt32, order: "DCBA", want: math.MaxInt32},
		{name: "uint32 max", regs: []uint16{0xFFFF, 0xFFFF}, typ: TypeUint32, want: math.MaxUint32},
		{name: "uint32 BADC", regs: []uint16{0x3412, 0x7856}, typ: TypeUint32, order: "BADC", want: 0x12345678},
		{name: "int64 min", regs: []uint16{0x8000, 0, 0, 0}, typ: TypeInt64, want: math.MinInt64},
		{name: "int64 -2 HGFEDCBA", regs: []uint16{0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF}, typ: TypeInt64, order: "HGFEDCBA", want: -2},
		{name: "uint64 GHEFCDAB", regs: []uint16{0x6677, 0x4455, 0x2233, 0x0011}, typ: TypeUint64, order: "GHEFCDAB", want: 0x0011223344556677},
		{name: "uint64 2^53", regs: []uint16{0x0020, 0, 0, 0}, typ: TypeUint64, want: 1 << 53},

		// 8-bit halves of a register (Telegraf INT8H/INT8L, UINT8H/UINT8L).
		{name: "int8 A high byte", regs: []uint16{0xFF7F}, typ: TypeInt8, order: "A", want: -1},
		{name: "int8 B low byte", regs: []uint16{0xFF7F}, typ: TypeInt8, order: "B", want: 127},
		{name: "uint8 A high byte", regs: []uint16{0xFF7F}, typ: TypeUint8, order: "A", want: 255},
		{name: "uint8 B low byte", regs: []uint16{0x0180}, typ: TypeUint8, order: "B", want: 128},

		// A bit of a register (0 = least significant).
		{name: "bit 0 set", regs: []uint16{0x8001}, typ: TypeBool, bit: 0, want: 1},
		{name: "bit 1 clear", regs: []uint16{0x8001}, typ: TypeBool, bit: 1, want: 0},
		{name: "bit 15 set", regs: []uint16{0x8001}, typ: TypeBool, bit: 15, want: 1},
		{name: "bit 15 BA", regs: []uint16{0x0180}, typ: TypeBool, bit: 15, order: "BA", want: 1},

		// Scale and offset: value = raw*scale + offset.
		{name: "4-20mA scaled", regs: []uint16{0x022B}, typ: TypeUint16, scale: 0.1, want: 55.5},
		{name: "short input", regs: []uint16{0x4049}, typ: TypeFloat32, err: ErrShort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bit := -1
			if tc.typ == TypeBool {
				bit = tc.bit
			}
			scale := tc.scale
			if scale == 0 {
				scale = 1
			}
			c := mustCodec(t, tc.typ, tc.order, bit, scale, 0)
			got, err := c.Decode(tc.regs)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.Zero(t, got, "a failed decode must not yield a number")
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.want, got, math.Abs(tc.want)*1e-15)
			if tc.scale == 0 {
				// Encode is the inverse: the same registers come back.
				enc := make([]uint16, len(tc.regs))
				if tc.typ == TypeInt8 || tc.typ == TypeUint8 || tc.typ == TypeBool {
					copy(enc, tc.regs) // only part of the register is the value
				}
				require.NoError(t, c.EncodeInto(enc, got))
				require.Equal(t, tc.regs, enc)
			}
		})
	}
}

func TestDecodeOffset(t *testing.T) {
	c := mustCodec(t, TypeInt16, "", -1, 0.01, -40)
	v, err := c.Decode([]uint16{0x1388}) // 5000
	require.NoError(t, err)
	require.InDelta(t, 10.0, v, 1e-12)
	regs, err := c.Encode(10)
	require.NoError(t, err)
	require.Equal(t, []uint16{0x1388}, regs)
	require.Equal(t, 1.0, mustCodec(t, TypeBool, "", -1, 1, 0).DecodeBit(true))
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		typ  Type
		v    float64
		err  error
	}{
		{"int16 over", TypeInt16, 32768, ErrOutOfRange},
		{"int16 under", TypeInt16, -32769, ErrOutOfRange},
		{"uint16 negative", TypeUint16, -1, ErrOutOfRange},
		{"uint64 2^64", TypeUint64, 1 << 64, ErrOutOfRange},
		{"int64 2^63", TypeInt64, 1 << 63, ErrOutOfRange},
		{"int32 NaN", TypeInt32, math.NaN(), ErrNotWritable},
		{"float32 too big", TypeFloat32, 1e39, ErrOutOfRange},
		{"float16 too big", TypeFloat16, 65520, ErrOutOfRange}, // rounds past the max 65504: was written as +Inf
		{"float16 too small", TypeFloat16, -1e6, ErrOutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mustCodec(t, tc.typ, "", -1, 1, 0).Encode(tc.v)
			require.ErrorIs(t, err, tc.err)
		})
	}
	_, err := mustCodec(t, TypeBool, "", -1, 1, 0).EncodeBit(0.5)
	require.ErrorIs(t, err, ErrOutOfRange)
	// NaN and Inf may be sent by a simulator on float types.
	regs, err := mustCodec(t, TypeFloat32, "", -1, 1, 0).Encode(math.Inf(-1))
	require.NoError(t, err)
	require.Equal(t, []uint16{0xFF80, 0}, regs)
	regs, err = mustCodec(t, TypeFloat16, "", -1, 1, 0).Encode(65519) // rounds to the max
	require.NoError(t, err)
	require.Equal(t, []uint16{0x7BFF}, regs)
}

func TestNewCodecErrors(t *testing.T) {
	tests := []struct {
		name  string
		typ   Type
		order string
		bit   int
		scale float64
		msg   string
	}{
		{"word order typo", TypeFloat32, "ABDC", -1, 1, `unknown byte order "ABDC" for float32 (want ABCD, CDAB, BADC, DCBA)`},
		{"64-bit order on 32-bit", TypeInt32, "ABCDEFGH", -1, 1, `unknown byte order "ABCDEFGH" for int32`},
		{"int8 without half", TypeInt8, "", -1, 1, "type int8 needs order A (high byte) or B (low byte)"},
		{"bit on float", TypeFloat32, "", 3, 1, "bit is only for type bool"},
		{"bit too big", TypeBool, "", 16, 1, "bit 16 out of range (want 0-15)"},
		{"zero scale", TypeInt16, "", -1, 0, "scale 0: want a finite number other than 0"},
		{"unknown type", TypeUnknown, "", -1, 1, "unknown type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCodec(tc.typ, tc.order, tc.bit, tc.scale, 0)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func TestFloat16RoundTrip(t *testing.T) {
	// Every binary16 pattern decodes and re-encodes to itself (NaNs to the
	// canonical quiet NaN).
	for h := 0; h <= 0xFFFF; h++ {
		f := float16ToFloat64(uint16(h))
		got := float64ToFloat16(f)
		if math.IsNaN(f) {
			require.Equal(t, uint16(0x7e00), got, "h=%04x", h)
			continue
		}
		require.Equal(t, uint16(h), got, "h=%04x f=%v", h, f)
	}
	// Rounding: halfway between 1 and the next float16 rounds to even.
	require.Equal(t, uint16(0x3C00), float64ToFloat16(1+math.Ldexp(1, -11)))
	require.Equal(t, uint16(0x7C00), float64ToFloat16(65520))
	require.Equal(t, uint16(0x7BFF), float64ToFloat16(65519))
}

var allTypes = []Type{TypeInt8, TypeUint8, TypeInt16, TypeUint16, TypeFloat16, TypeInt32, TypeUint32, TypeFloat32, TypeInt64, TypeUint64, TypeFloat64, TypeBool}

func FuzzDecode(f *testing.F) {
	f.Add(uint8(9), uint8(0), uint16(0x4049), uint16(0x0FDB), uint16(0), uint16(0))
	f.Add(uint8(12), uint8(2), uint16(0x7FF8), uint16(0), uint16(0), uint16(1))
	f.Add(uint8(4), uint8(1), uint16(0x7C00), uint16(0), uint16(0), uint16(0))
	f.Add(uint8(1), uint8(1), uint16(0xFF7F), uint16(0), uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, ti, oi uint8, r0, r1, r2, r3 uint16) {
		typ := allTypes[int(ti)%len(allTypes)]
		orders := OrderChoices(typ)
		order := orders[int(oi)%len(orders)]
		bit := -1
		if typ == TypeBool {
			bit = int(oi) % 16
			order = "AB"
		}
		c, err := NewCodec(typ, order, bit, 1, 0)
		require.NoError(t, err)
		regs := []uint16{r0, r1, r2, r3}
		v, err := c.Decode(regs[:min(int(ti)/len(allTypes), 4)]) // short input must not panic
		if err == nil {
			require.False(t, math.IsNaN(v) || math.IsInf(v, 0))
		}
		v, err = c.Decode(regs)
		if err != nil {
			require.True(t, err == ErrNaN || err == ErrPosInf || err == ErrNegInf, "unexpected %v", err)
			require.Zero(t, v)
			return
		}
		require.False(t, math.IsNaN(v) || math.IsInf(v, 0))
		// decode(encode(x)) == x for every decodable value.
		enc := make([]uint16, 4)
		copy(enc, regs)
		if err := c.EncodeInto(enc, v); err != nil {
			// Only 64-bit integers at the very top of their range, which
			// float64 rounds to 2^63 or 2^64, may not encode.
			require.ErrorIs(t, err, ErrOutOfRange)
			require.True(t, typ == TypeInt64 || typ == TypeUint64, "%s %v: %v", typ, v, err)
			return
		}
		back, err := c.Decode(enc)
		require.NoError(t, err)
		require.Equal(t, v, back)
	})
}

func FuzzEncode(f *testing.F) {
	f.Add(uint8(9), uint8(1), 3.14, 1.0, 0.0)
	f.Add(uint8(2), uint8(0), -40.0, 0.1, -40.0)
	f.Fuzz(func(t *testing.T, ti, oi uint8, v, scale, offset float64) {
		typ := allTypes[int(ti)%len(allTypes)]
		orders := OrderChoices(typ)
		c, err := NewCodec(typ, orders[int(oi)%len(orders)], -1, scale, offset)
		if err != nil {
			return // bad scale or offset is refused, not a panic
		}
		regs, err := c.Encode(v)
		if err != nil {
			return
		}
		got, err := c.Decode(regs)
		if err != nil {
			return
		}
		if scale == 1 && offset == 0 && (typ == TypeFloat64 || (typ == TypeFloat32 && float64(float32(v)) == v)) {
			require.Equal(t, v, got)
		}
	})
}
