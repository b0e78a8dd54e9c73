package modbus

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/drivers/modbus/modbustest"
)

// TestIntegrationWriteByte: an 8-bit sensor owns one byte of its register,
// so writing it must keep the other byte, as a bit write keeps the other
// bits. The register is checked over a link of its own, not through the
// writer's read-back, which compares with what it sent.
func TestIntegrationWriteByte(t *testing.T) {
	h := make([]uint16, 8)
	h[7] = 0x5A01
	srv := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: {Holding: h}}})
	lo := sensor("lo", "holding", 7, "uint8", "B")
	hi := sensor("hi", "holding", 7, "int8", "A")
	g, _ := runGroup(t, []Device{device("dev", srv.URL, 1, 100*time.Millisecond, []SensorConfig{lo, hi})}, nil)

	cfg := DeviceConfig{ID: "check", URL: srv.URL}
	cfg.SetDefaults()
	check, err := NewLink(&cfg, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = check.Close() })
	reg7 := func() uint16 {
		t.Helper()
		r, err := check.ReadRegisters(1, TableHolding, 7, 1)
		require.NoError(t, err)
		return r[0]
	}

	v, err := g.Write(t.Context(), "dev", "lo", 2)
	require.NoError(t, err)
	require.Equal(t, 2.0, v)
	require.Equal(t, uint16(0x5A02), reg7(), "writing the low byte kept the high byte")

	v, err = g.Write(t.Context(), "dev", "hi", -1)
	require.NoError(t, err)
	require.Equal(t, -1.0, v)
	require.Equal(t, uint16(0xFF02), reg7(), "writing the high byte kept the low byte")

	_, err = g.Write(t.Context(), "dev", "lo", 256)
	require.ErrorIs(t, err, ErrOutOfRange)
	require.Equal(t, uint16(0xFF02), reg7(), "a refused value writes nothing")
}
