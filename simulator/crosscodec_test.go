package simulator

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
)

// The simulator's encoder and the driver's decoder were written apart, on
// purpose: a value the simulator puts on the wire must read back through the
// gateway's codec as the same value, for every type and byte order. Two
// implementations agreeing is a stronger check than one round-tripping
// through itself.
func TestSimulatorEncoderAgreesWithDriverCodec(t *testing.T) {
	types := map[string][]string{
		"int16": {"", "AB", "BA"}, "uint16": {"", "AB", "BA"},
		"int32": {"", "ABCD", "CDAB", "BADC", "DCBA"}, "uint32": {"", "ABCD", "CDAB", "BADC", "DCBA"},
		"float32": {"", "ABCD", "CDAB", "BADC", "DCBA"},
		"int64":   {"", "ABCDEFGH", "GHEFCDAB", "BADCFEHG", "HGFEDCBA"},
		"uint64":  {"", "ABCDEFGH", "GHEFCDAB", "BADCFEHG", "HGFEDCBA"},
		"float64": {"", "ABCDEFGH", "GHEFCDAB", "BADCFEHG", "HGFEDCBA"},
	}
	values := []float64{0, 1, 42, 1234, 3.25, 20.9, 65535}
	for typ, orders := range types {
		for _, order := range orders {
			for _, scale := range []float64{1, 0.1} {
				for _, v := range values {
					if (typ == "int16" && v/scale > math.MaxInt16) || (typ == "uint16" && v/scale > math.MaxUint16) {
						continue // outside the type's range at this scale (the simulator saturates)
					}
					name := fmt.Sprintf("%s/%s/scale%v/%v", typ, order, scale, v)
					t.Run(name, func(t *testing.T) {
						addr := 10
						sc := scale
						s := configs.Sensor{SensorConfig: modbus.SensorConfig{ID: "x", Table: "holding", Address: &addr, Type: typ, Order: order, Scale: &sc}}
						want := v
						regs, err := encodeValue(s, want)
						require.NoError(t, err)
						mt, err := modbus.ParseType(typ)
						require.NoError(t, err)
						c, err := modbus.NewCodec(mt, order, -1, scale, 0)
						require.NoError(t, err)
						got, err := c.Decode(regs)
						require.NoError(t, err)
						tol := 1e-9 * math.Max(1, math.Abs(want))
						if typ == "float32" {
							tol = 1e-6 * math.Max(1, math.Abs(want))
						}
						if typ != "float32" && typ != "float64" {
							tol = scale/2 + 1e-9 // integer types round to the nearest step
						}
						require.InDelta(t, want, got, tol, "registers %04x", regs)
					})
				}
			}
		}
	}
}

// Bits: coils, discrete inputs and single bits of a register.
func TestSimulatorBitsAgreeWithDriverCodec(t *testing.T) {
	for bit := 0; bit < 16; bit++ {
		addr := 3
		b := bit
		s := configs.Sensor{SensorConfig: modbus.SensorConfig{ID: "x", Table: "holding", Address: &addr, Type: "bool", Bit: &b}}
		regs, err := encodeValue(s, 1)
		require.NoError(t, err)
		// The simulator returns the bit's value; it places it into the
		// register when serving.
		require.Equal(t, []uint16{1}, regs)
		c, err := modbus.NewCodec(modbus.TypeBool, "", bit, 1, 0)
		require.NoError(t, err)
		got, err := c.Decode([]uint16{uint16(1) << bit})
		require.NoError(t, err)
		require.Equal(t, 1.0, got)
	}
}
