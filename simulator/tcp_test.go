package simulator

import (
	"encoding/binary"
	"errors"
	"io"
	"log"
	"math"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
	"github.com/stretchr/testify/require"
)

func newClient(t testing.TB, url string, unit uint8) *modbus.ModbusClient {
	t.Helper()
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: url, Timeout: 300 * time.Millisecond, StopBits: 1,
		Logger: log.New(io.Discard, "", 0)})
	require.NoError(t, err)
	require.NoError(t, c.Open())
	require.NoError(t, c.SetUnitId(unit))
	t.Cleanup(func() { c.Close() })
	return c
}

// pausedSim runs the test site with the clock stopped, so that every read
// sees the same values as the simulator's own Value.
func pausedSim(t testing.TB) *Simulator {
	t.Helper()
	s := startSim(t, Options{Site: siteFromYAML(t, testSite)})
	require.NoError(t, s.SetClock(90*time.Minute, 0))
	return s
}

func value(t testing.TB, s *Simulator, dev, sen string) float64 {
	t.Helper()
	v, _, err := s.Value(dev, sen)
	require.NoError(t, err)
	return v
}

func TestTCPReadsEveryEncoding(t *testing.T) {
	s := pausedSim(t)
	c := newClient(t, "tcp://"+hostPort(t, s, "gas1"), 1)

	require.NoError(t, c.SetEncoding(modbus.BIG_ENDIAN, modbus.HIGH_WORD_FIRST))
	f, err := c.ReadFloat32s(0, 1, modbus.HOLDING_REGISTER)
	require.NoError(t, err)
	want := value(t, s, "gas1", "ch4")
	require.InDelta(t, want, float64(f[0]), 1e-6)
	require.Greater(t, want, 0.0)
	require.Less(t, want, 0.5, "methane background")

	require.NoError(t, c.SetEncoding(modbus.BIG_ENDIAN, modbus.LOW_WORD_FIRST))
	f, err = c.ReadFloat32s(2, 1, modbus.HOLDING_REGISTER)
	require.NoError(t, err)
	require.InDelta(t, value(t, s, "gas1", "ch4_cdab"), float64(f[0]), 1e-6)

	in, err := c.ReadRegisters(0, 2, modbus.INPUT_REGISTER)
	require.NoError(t, err)
	require.InDelta(t, value(t, s, "gas1", "co"), float64(in[0])*0.1, 0.051)
	o2 := float64(int16(in[1])) * 0.01
	require.InDelta(t, value(t, s, "gas1", "o2"), o2, 0.0051)
	require.InDelta(t, 20.9, o2, 0.5)

	// float64 HGFEDCBA = little endian bytes, low word first.
	require.NoError(t, c.SetUnitId(2))
	require.NoError(t, c.SetEncoding(modbus.LITTLE_ENDIAN, modbus.LOW_WORD_FIRST))
	d, err := c.ReadFloat64s(10, 1, modbus.HOLDING_REGISTER)
	require.NoError(t, err)
	require.InDelta(t, value(t, s, "gas2", "ch4"), d[0], 1e-12)

	require.NoError(t, c.SetEncoding(modbus.BIG_ENDIAN, modbus.HIGH_WORD_FIRST))
	loop, err := c.ReadRegister(0, modbus.INPUT_REGISTER)
	require.NoError(t, err)
	mA := float64(loop) * 0.001
	require.GreaterOrEqual(t, mA, 3.8)
	require.LessOrEqual(t, mA, 20.5)
}

func TestTCPUnmappedAndUnknownUnit(t *testing.T) {
	s := pausedSim(t)
	c := newClient(t, "tcp://"+hostPort(t, s, "gas1"), 1)
	_, err := c.ReadRegisters(3, 2, modbus.HOLDING_REGISTER) // runs past the block 0..3
	require.ErrorIs(t, err, modbus.ErrIllegalDataAddress)
	_, err = c.ReadCoils(0, 1) // gas1 has no coils
	require.ErrorIs(t, err, modbus.ErrIllegalDataAddress)

	require.NoError(t, c.SetUnitId(77)) // nobody home: no answer at all
	_, err = c.ReadRegisters(0, 1, modbus.HOLDING_REGISTER)
	require.ErrorIs(t, err, modbus.ErrRequestTimedOut)
}

func TestTCPWritesAreVisible(t *testing.T) {
	s := pausedSim(t)
	c := newClient(t, "tcp://"+hostPort(t, s, "relay"), 9)

	on, err := c.ReadCoil(0)
	require.NoError(t, err)
	require.False(t, on)
	require.NoError(t, c.WriteCoil(0, true)) // the power cut
	on, err = c.ReadCoil(0)
	require.NoError(t, err)
	require.True(t, on)
	v, src, err := s.Value("relay", "power_cut")
	require.NoError(t, err)
	require.Equal(t, 1.0, v)
	require.Equal(t, "written", src)

	require.NoError(t, c.SetEncoding(modbus.BIG_ENDIAN, modbus.LOW_WORD_FIRST))
	require.NoError(t, c.WriteUint32(0, uint32(0xfffffff6))) // int32 -10, CDAB
	require.Equal(t, -10.0, value(t, s, "relay", "setpoint"))

	require.NoError(t, c.WriteRegister(2, 1<<5))
	require.Equal(t, 1.0, value(t, s, "relay", "bit5"))
	require.Equal(t, 0.0, value(t, s, "relay", "bit2"))
	require.NoError(t, s.Hold("relay", "bit2", 1))
	r, err := c.ReadRegister(2, modbus.HOLDING_REGISTER)
	require.NoError(t, err)
	require.Equal(t, uint16(1<<5|1<<2), r)

	_, err = c.ReadDiscreteInputs(0, 1)
	require.NoError(t, err)
	require.ErrorIs(t, c.WriteRegister(40, 1), modbus.ErrIllegalDataAddress)

	// Handing the relay back to the physics releases the written value.
	require.NoError(t, s.Release("relay", "power_cut"))
	on, err = c.ReadCoil(0)
	require.NoError(t, err)
	require.False(t, on)
}

func TestTCPDeviceStatesAndFaults(t *testing.T) {
	s := pausedSim(t)
	c := newClient(t, "tcp://"+hostPort(t, s, "gas1"), 1)

	require.NoError(t, s.SetState("gas1", StateOffline))
	_, err := c.ReadRegisters(0, 2, modbus.HOLDING_REGISTER)
	require.ErrorIs(t, err, modbus.ErrRequestTimedOut)
	// Another unit behind the same address still answers.
	require.NoError(t, c.SetUnitId(2))
	_, err = c.ReadRegisters(0, 1, modbus.INPUT_REGISTER)
	require.NoError(t, err)

	require.NoError(t, s.SetState("gas1", StateFault)) // gas detector: exception 04
	require.NoError(t, c.SetUnitId(1))
	_, err = c.ReadRegisters(0, 2, modbus.HOLDING_REGISTER)
	require.ErrorIs(t, err, modbus.ErrServerDeviceFailure)

	// A 4–20 mA device shows its fault band.
	c4 := newClient(t, "tcp://"+hostPort(t, s, "loop4"), 4)
	require.NoError(t, s.SetState("loop4", StateFault))
	r, err := c4.ReadRegister(0, modbus.INPUT_REGISTER)
	require.NoError(t, err)
	require.Less(t, float64(r)*0.001, 3.6)
	require.NoError(t, s.SetState("loop4", StateOnline))

	require.NoError(t, s.SetState("gas1", StateOnline))
	require.NoError(t, s.SetFaults("gas1", faults(0, 0, 1, 0)))
	_, err = c.ReadRegisters(0, 2, modbus.HOLDING_REGISTER)
	require.ErrorIs(t, err, modbus.ErrServerDeviceBusy)

	require.NoError(t, s.SetFaults("gas1", faults(time.Second, 0, 0, 0))) // slower than the client's 300 ms
	_, err = c.ReadRegisters(0, 2, modbus.HOLDING_REGISTER)
	require.ErrorIs(t, err, modbus.ErrRequestTimedOut)

	require.NoError(t, s.SetFaults("gas1", faults(0, 0.5, 0, 0)))
	c.Close()
	require.NoError(t, c.Open())
	var ok, lost int
	for range 16 {
		if _, err := c.ReadRegisters(0, 2, modbus.HOLDING_REGISTER); err == nil {
			ok++
		} else {
			require.ErrorIs(t, err, modbus.ErrRequestTimedOut)
			lost++
		}
	}
	require.Positive(t, ok, "an intermittent link answers some requests")
	require.Positive(t, lost, "an intermittent link drops some requests")
}

// Garbage frames are checked on the raw socket: the transaction id is
// wrong on every other answer, the others are cut short.
func TestTCPGarbageFrames(t *testing.T) {
	s := pausedSim(t)
	require.NoError(t, s.SetFaults("gas1", faults(0, 0, 0, 1)))
	conn, err := net.Dial("tcp", hostPort(t, s, "gas1"))
	require.NoError(t, err)
	defer conn.Close()
	req := []byte{0x12, 0x34, 0, 0, 0, 6, 1, 0x03, 0, 0, 0, 2}
	_, err = conn.Write(req)
	require.NoError(t, err)
	hdr := make([]byte, 13)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = io.ReadFull(conn, hdr)
	require.NoError(t, err)
	require.NotEqual(t, uint16(0x1234), binary.BigEndian.Uint16(hdr), "wrong transaction id")

	binary.BigEndian.PutUint16(req, 0x1235)
	_, err = conn.Write(req)
	require.NoError(t, err)
	got := make([]byte, 64)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
	n, err := io.ReadAtLeast(conn, got, 7)
	require.NoError(t, err)
	promised := int(binary.BigEndian.Uint16(got[4:])) + 6
	require.Less(t, n, promised, "a truncated frame is shorter than its header says")
	_, err = conn.Read(got[n:])
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "nothing more comes: %v", err)

	// The library's client reports it rather than returning a value.
	c := newClient(t, "tcp://"+hostPort(t, s, "gas1"), 1)
	for range 2 {
		_, err = c.ReadRegisters(0, 2, modbus.HOLDING_REGISTER)
		require.Error(t, err)
	}
}

func TestTCPBadMBAPClosesConnection(t *testing.T) {
	s := pausedSim(t)
	conn, err := net.Dial("tcp", hostPort(t, s, "gas1"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte{0, 1, 0, 7, 0, 6, 1, 3, 0, 0, 0, 1}) // protocol id 7
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = conn.Read(make([]byte, 16))
	var ne net.Error
	require.Error(t, err, "the connection is closed")
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "closed, not silent: %v", err)
}

var mbpollValue = regexp.MustCompile(`(?m)^\[(\d+)\]:\s+(\S+)`)

// mbpoll runs Debian's mbpoll once and returns the values it printed.
func mbpoll(t testing.TB, args ...string) []float64 {
	t.Helper()
	path, err := exec.LookPath("mbpoll")
	require.NoError(t, err, "mbpoll is needed (apt-get install mbpoll)")
	out, err := exec.Command(path, append([]string{"-1", "-o", "1"}, args...)...).CombinedOutput()
	require.NoError(t, err, "mbpoll %v: %s", args, out)
	var vals []float64
	for _, m := range mbpollValue.FindAllStringSubmatch(string(out), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		require.NoError(t, err, "mbpoll output %q", m[0])
		vals = append(vals, v)
	}
	require.NotEmpty(t, vals, "mbpoll printed no values: %s", out)
	return vals
}

func TestTCPWithMbpoll(t *testing.T) {
	s := pausedSim(t)
	host, port, err := net.SplitHostPort(hostPort(t, s, "gas1"))
	require.NoError(t, err)
	// mbpoll numbers references from 1; -B is high word first.
	f := mbpoll(t, "-m", "tcp", "-p", port, "-a", "1", "-t", "4:float", "-B", "-r", "1", "-c", "1", host)
	require.InDelta(t, value(t, s, "gas1", "ch4"), f[0], 1e-5)
	f = mbpoll(t, "-m", "tcp", "-p", port, "-a", "1", "-t", "4:float", "-r", "3", "-c", "1", host) // CDAB
	require.InDelta(t, value(t, s, "gas1", "ch4_cdab"), f[0], 1e-5)
	r := mbpoll(t, "-m", "tcp", "-p", port, "-a", "1", "-t", "3", "-r", "1", "-c", "2", host)
	require.InDelta(t, value(t, s, "gas1", "co"), r[0]*0.1, 0.051)
	require.InDelta(t, value(t, s, "gas1", "o2"), r[1]*0.01, 0.0051)
	// A coil write, then read back.
	mbpollWrite(t, "-m", "tcp", "-p", port, "-a", "9", "-t", "0", "-r", "1", host, "1")
	require.Equal(t, 1.0, value(t, s, "relay", "power_cut"))
}

func mbpollWrite(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("mbpoll", append([]string{"-1", "-o", "1"}, args...)...).CombinedOutput()
	require.NoError(t, err, "mbpoll %v: %s", args, out)
	require.Contains(t, strings.ToLower(string(out)), "written")
}

// pymodbus is Debian's python3-pymodbus under /usr/bin/python3.
func pymodbus(t testing.TB, script string) string {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", script).CombinedOutput()
	require.NoError(t, err, "python3 pymodbus: %s", out)
	return strings.TrimSpace(string(out))
}

func TestTCPWithPymodbus(t *testing.T) {
	s := pausedSim(t)
	host, port, err := net.SplitHostPort(hostPort(t, s, "gas1"))
	require.NoError(t, err)
	out := pymodbus(t, `
import struct
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("`+host+`", port=`+port+`, timeout=2)
assert c.connect()
r = c.read_holding_registers(0, 4, slave=1)
assert not r.isError(), r
a = struct.unpack(">f", struct.pack(">HH", r.registers[0], r.registers[1]))[0]
b = struct.unpack(">f", struct.pack(">HH", r.registers[3], r.registers[2]))[0]
e = c.read_holding_registers(100, 1, slave=1)
print(a, b, e.isError() and e.exception_code)
c.close()
`)
	parts := strings.Fields(out)
	require.Len(t, parts, 3, out)
	a, _ := strconv.ParseFloat(parts[0], 64)
	b, _ := strconv.ParseFloat(parts[1], 64)
	require.InDelta(t, value(t, s, "gas1", "ch4"), a, 1e-6)
	require.InDelta(t, value(t, s, "gas1", "ch4_cdab"), b, 1e-6)
	require.Equal(t, "2", parts[2], "exception 02 for an unmapped register")
	require.False(t, math.IsNaN(a))
}

// FuzzMBAP feeds arbitrary bytes to a Modbus TCP connection: the server
// never panics, and it returns once the client goes away.
func FuzzMBAP(f *testing.F) {
	s, err := New(Options{Site: siteFromYAML(f, testSite)})
	require.NoError(f, err)
	ep := s.endpoints[0]
	f.Add([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2})
	f.Add([]byte{0, 1, 0, 0, 0, 8, 9, 0x0f, 0, 0, 0, 1, 1, 1})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 1})
	f.Add([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serveMBAP(t.Context(), ep, b)
			b.Close()
		}()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			_, _ = io.Copy(io.Discard, a)
		}()
		_, _ = a.Write(data)
		a.Close()
		<-done
		<-drained
	})
}
