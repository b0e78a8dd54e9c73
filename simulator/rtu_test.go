package simulator

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
	"github.com/stretchr/testify/require"
)

// rtuSite puts two units on one serial line (a pty linked at a path in the
// test's temp dir, as the config names it) and one unit on RTU over TCP.
func rtuSite(t testing.TB) (*Simulator, string) {
	t.Helper()
	dir := t.TempDir()
	tty := filepath.Join(dir, "ttyGAS")
	site := siteFromYAML(t, fmt.Sprintf(`
site: rtu
devices:
  - id: face
    url: rtu://%s
    baud: 19200
    unit: 1
    sensors:
      - {id: ch4, kind: methane, table: input, address: 0, type: uint16, scale: 0.01}
      - {id: o2, kind: oxygen, table: input, address: 1, type: uint16, scale: 0.01}
  - id: ret
    url: rtu://%s
    unit: 2
    sensors:
      - {id: ch4, kind: methane, table: holding, address: 0, type: float32, order: CDAB}
      - {id: relay, kind: generic, table: coil, address: 0, type: bool}
  - id: remote
    url: rtuovertcp://127.0.0.1:0
    unit: 12
    sensors:
      - {id: pt, kind: pressure, table: input, address: 0, type: int32, scale: 0.001}
simulation:
  seed: 3
`, tty, tty))
	s := startSim(t, Options{Site: site})
	require.NoError(t, s.SetClock(time.Hour, 0))
	return s, tty
}

func TestRTUOverPTY(t *testing.T) {
	s, tty := rtuSite(t)
	u, err := s.DeviceURL("face")
	require.NoError(t, err)
	require.Equal(t, "rtu://"+tty, u)
	target, err := os.Readlink(tty)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(target, "/dev/pts/"), target)
	for _, d := range s.Devices() {
		if d.ID == "face" {
			require.Equal(t, target, d.PTY, "the pty is shown in the control API")
		}
	}

	c := newClient(t, "rtu://"+tty, 1)
	regs, err := c.ReadRegisters(0, 2, modbus.INPUT_REGISTER)
	require.NoError(t, err)
	require.InDelta(t, value(t, s, "face", "ch4"), float64(regs[0])*0.01, 0.0051)
	require.InDelta(t, value(t, s, "face", "o2"), float64(regs[1])*0.01, 0.0051)

	require.NoError(t, c.SetUnitId(2))
	require.NoError(t, c.SetEncoding(modbus.BIG_ENDIAN, modbus.LOW_WORD_FIRST))
	f, err := c.ReadFloat32s(0, 1, modbus.HOLDING_REGISTER)
	require.NoError(t, err)
	require.InDelta(t, value(t, s, "ret", "ch4"), float64(f[0]), 1e-6)
	require.NoError(t, c.WriteCoil(0, true))
	require.Equal(t, 1.0, value(t, s, "ret", "relay"))

	// A broadcast write (unit 0) reaches the line without an answer.
	require.NoError(t, c.SetUnitId(0))
	// simonvetter/modbus still waits for an answer to unit 0, and times out.
	require.ErrorIs(t, c.WriteCoil(0, false), modbus.ErrRequestTimedOut)
	eventually(t, "broadcast write applied", func() bool { return value(t, s, "ret", "relay") == 0 })
	require.NoError(t, c.SetUnitId(2))

	_, err = c.ReadRegisters(7, 1, modbus.HOLDING_REGISTER)
	require.ErrorIs(t, err, modbus.ErrIllegalDataAddress)

	// CRC errors and silence.
	require.NoError(t, s.SetFaults("ret", faults(0, 0, 0, 1)))
	_, err = c.ReadFloat32s(0, 1, modbus.HOLDING_REGISTER)
	require.ErrorIs(t, err, modbus.ErrBadCRC)
	require.NoError(t, s.SetFaults("ret", faults(0, 0, 0, 0)))
	require.NoError(t, s.SetState("ret", StateOffline))
	_, err = c.ReadFloat32s(0, 1, modbus.HOLDING_REGISTER)
	require.ErrorIs(t, err, modbus.ErrRequestTimedOut)
	require.NoError(t, s.SetState("ret", StateOnline))
	// After garbage and silence the line recovers.
	eventually(t, "line recovers", func() bool {
		_, err := c.ReadFloat32s(0, 1, modbus.HOLDING_REGISTER)
		return err == nil
	})
}

func TestRTUWithMbpoll(t *testing.T) {
	s, tty := rtuSite(t)
	r := mbpoll(t, "-m", "rtu", "-b", "19200", "-P", "none", "-s", "1", "-a", "1", "-t", "3", "-r", "1", "-c", "2", tty)
	require.InDelta(t, value(t, s, "face", "ch4"), r[0]*0.01, 0.0051)
	require.InDelta(t, value(t, s, "face", "o2"), r[1]*0.01, 0.0051)
	f := mbpoll(t, "-m", "rtu", "-b", "19200", "-P", "none", "-s", "1", "-a", "2", "-t", "4:float", "-r", "1", "-c", "1", tty)
	require.InDelta(t, value(t, s, "ret", "ch4"), f[0], 1e-5)
}

func TestRTUWithPymodbus(t *testing.T) {
	s, tty := rtuSite(t)
	out := pymodbus(t, `
from pymodbus.client import ModbusSerialClient
c = ModbusSerialClient(port="`+tty+`", baudrate=19200, timeout=1)
assert c.connect()
r = c.read_input_registers(0, 2, slave=1)
assert not r.isError(), r
print(r.registers[0], r.registers[1])
c.close()
`)
	parts := strings.Fields(out)
	require.Len(t, parts, 2, out)
	ch4, _ := strconv.Atoi(parts[0])
	o2, _ := strconv.Atoi(parts[1])
	require.InDelta(t, value(t, s, "face", "ch4"), float64(ch4)*0.01, 0.0051)
	require.InDelta(t, value(t, s, "face", "o2"), float64(o2)*0.01, 0.0051)
}

func TestRTUOverTCP(t *testing.T) {
	s, _ := rtuSite(t)
	u, err := s.DeviceURL("remote")
	require.NoError(t, err)
	c := newClient(t, u, 12)
	v, err := c.ReadUint32s(0, 1, modbus.INPUT_REGISTER)
	require.NoError(t, err)
	require.InDelta(t, value(t, s, "remote", "pt"), float64(int32(v[0]))*0.001, 0.00051)
	require.InDelta(t, 4.0, float64(int32(v[0]))*0.001, 0.5)
	require.NoError(t, s.SetFaults("remote", faults(0, 0, 0, 1)))
	_, err = c.ReadUint32s(0, 1, modbus.INPUT_REGISTER)
	require.ErrorIs(t, err, modbus.ErrBadCRC)
}
