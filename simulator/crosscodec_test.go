package simulator

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
)

// What the simulator puts on the wire must read back through the gateway's
// codec as the same value, for every type, byte order (in any case, as the
// driver upper-cases it), scale and offset the gateway accepts.
func TestSimulatorEncoderAgreesWithDriverCodec(t *testing.T) {
	w32 := []string{"", "ABCD", "CDAB", "BADC", "DCBA", "cdab", "Badc"}
	w64 := []string{"", "ABCDEFGH", "GHEFCDAB", "BADCFEHG", "HGFEDCBA", "ghefcdab", "ABCD", "CDAB", "BADC", "DCBA", "dcba"}
	w16 := []string{"", "AB", "BA", "ba", "ABCD", "CDAB", "BADC", "DCBA", "dcba"}
	types := map[string][]string{
		"int8": {"A", "B", "a", "b"}, "uint8": {"A", "B", "a", "b"},
		"int16": w16, "uint16": w16, "float16": w16,
		"int32": w32, "uint32": w32, "float32": w32,
		"int64": w64, "uint64": w64, "float64": w64,
	}
	values := []float64{0, 1, 42, 127, 200, 1234, 3.25, 20.9, -7.5, 65535}
	for typ, orders := range types {
		mt, err := modbus.ParseType(typ)
		require.NoError(t, err)
		for _, order := range orders {
			for _, scale := range []float64{1, 0.1} {
				for _, offset := range []float64{0, 4, -40} {
					for _, v := range values {
						raw := (v - offset) / scale
						if !encodable(mt, raw) {
							continue // outside the type's range (the simulator saturates; see TestEncodeValue)
						}
						name := fmt.Sprintf("%s/%s/scale%v/offset%v/%v", typ, order, scale, offset, v)
						t.Run(name, func(t *testing.T) {
							addr := 10
							sc := scale
							s := configs.Sensor{SensorConfig: modbus.SensorConfig{ID: "x", Table: "holding", Address: &addr,
								Type: typ, Order: order, Scale: &sc, Offset: offset}}
							regs, err := encodeValue(s, v)
							require.NoError(t, err)
							c, err := modbus.NewCodec(mt, order, -1, scale, offset)
							require.NoError(t, err)
							got, err := c.Decode(regs)
							require.NoError(t, err)
							require.InDelta(t, v, got, resolution(mt, v, scale, offset), "registers %04x", regs)
						})
					}
				}
			}
		}
	}
}

// encodable reports whether raw is inside the type's range.
func encodable(t modbus.Type, raw float64) bool {
	lim := map[modbus.Type][2]float64{
		modbus.TypeInt8: {-128, 127}, modbus.TypeUint8: {0, 255}, modbus.TypeInt16: {-32768, 32767},
		modbus.TypeUint16: {0, 65535}, modbus.TypeUint32: {0, math.MaxUint32}, modbus.TypeUint64: {0, 1e19},
		modbus.TypeFloat16: {-65504, 65504},
	}
	l, ok := lim[t]
	r := raw
	if t != modbus.TypeFloat16 {
		r = math.Round(raw)
	}
	return !ok || (r >= l[0] && r <= l[1])
}

// resolution is how far a value may move on its way through the encoding:
// half a step of an integer type, the rounding of a float type.
func resolution(t modbus.Type, v, scale, offset float64) float64 {
	tol := 1e-9 * (math.Abs(v) + math.Abs(offset) + 1)
	switch t {
	case modbus.TypeFloat16:
		return tol + math.Abs(v-offset)*0x1p-11
	case modbus.TypeFloat32:
		return tol + math.Abs(v-offset)*0x1p-24
	case modbus.TypeFloat64:
		return tol
	}
	return tol + math.Abs(scale)/2
}

// Bits of a register: the gateway applies the register's byte order before
// it picks the bit (docs/modbus.md), so with order BA bit 0 is the wire's
// bit 8. What the simulator serves for a bit sensor is the register the
// driver decodes that bit from, in every order and bit position.
func TestSimulatorBitsAgreeWithDriverCodec(t *testing.T) {
	for _, order := range []string{"", "AB", "BA", "ab", "ba", "ABCD", "CDAB", "BADC", "DCBA"} {
		for bit := 0; bit < 16; bit++ {
			t.Run(fmt.Sprintf("%s/bit%d", order, bit), func(t *testing.T) {
				addr := 3
				b := bit
				s := configs.Sensor{SensorConfig: modbus.SensorConfig{ID: "x", Table: "holding", Address: &addr, Type: "bool", Bit: &b, Order: order}}
				c, err := modbus.NewCodec(modbus.TypeBool, order, bit, 1, 0)
				require.NoError(t, err)
				for _, v := range []float64{0, 1} {
					regs, err := encodeValue(s, v)
					require.NoError(t, err)
					require.Len(t, regs, 1)
					got, err := c.Decode(regs)
					require.NoError(t, err)
					require.Equal(t, v, got, "register %04x", regs[0])
					if v == 1 {
						wire := bit
						if o := strings.ToUpper(order); o == "BA" || o == "BADC" || o == "DCBA" {
							wire = bit ^ 8
						}
						require.Equal(t, uint16(1)<<wire, regs[0], "only the bit's own wire bit is set")
					}
					back, err := decodeValue(s, regs)
					require.NoError(t, err)
					require.Equal(t, v, back)
				}
			})
		}
	}
}
