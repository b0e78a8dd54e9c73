package modbus

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/drivers/modbus/modbustest"
)

// The register image served by pymodbus in these tests.
var (
	// holding 0-1: float32 pi ABCD; 2-3: float32 pi CDAB; 4: int16 -5;
	// 5: bits 0 and 15 set; 6-9: float64 pi; 108-110: the spec's FC03
	// example (0x022B, 0x0000, 0x0064).
	holdingImage = func() []uint16 {
		h := make([]uint16, 111)
		copy(h, []uint16{0x4049, 0x0FDB, 0x0FDB, 0x4049, 0xFFFB, 0x8001, 0x4009, 0x21FB, 0x5444, 0x2D18})
		h[108], h[109], h[110] = 0x022B, 0x0000, 0x0064
		return h
	}()
	inputImage = []uint16{0x0190, 0x3C00} // 400 (4.00 mA ×100), float16 1.0
)

func imageSensors() []SensorConfig {
	bit15 := sensor("bit15", "holding", 5, "bool", "")
	bit15.Bit = ptr(15)
	scaled := sensor("ma", "input", 0, "uint16", "")
	scaled.Scale = ptr(0.01)
	return []SensorConfig{
		sensor("pi-abcd", "holding", 0, "float32", "ABCD"),
		sensor("pi-cdab", "holding", 2, "float32", "CDAB"),
		sensor("neg", "holding", 4, "int16", ""),
		bit15,
		sensor("pi64", "holding", 6, "float64", ""),
		sensor("r108", "holding", 108, "uint16", ""),
		sensor("r109", "holding", 109, "uint16", ""),
		sensor("r110", "holding", 110, "uint16", ""),
		scaled,
		sensor("half", "input", 1, "float16", ""),
		sensor("relay", "coil", 2, "bool", ""),
		sensor("door", "discrete", 1, "bool", ""),
	}
}

func imageUnit() modbustest.Unit {
	return modbustest.Unit{Holding: holdingImage, Input: inputImage, Coils: []int{0, 0, 1}, Discrete: []int{0, 1}}
}

var imageWant = map[string]float64{
	"pi-abcd": float64(float32(math.Pi)), "pi-cdab": float64(float32(math.Pi)), "neg": -5, "bit15": 1,
	"pi64": math.Pi, "r108": 555, "r109": 0, "r110": 100, "ma": 4, "half": 1, "relay": 1, "door": 1,
}

func device(id, url string, unit int, poll time.Duration, sensors []SensorConfig) Device {
	d := DeviceConfig{ID: id, URL: url, Unit: ptr(unit), Poll: poll}
	d.SetDefaults()
	for i := range sensors {
		sensors[i].SetDefaults()
	}
	return Device{Config: d, Sensors: sensors}
}

func testLogger(t *testing.T) *zerolog.Logger {
	l := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	return &l
}

func requireImage(t *testing.T, b Batch) {
	t.Helper()
	require.NoError(t, b.Err)
	require.Len(t, b.Readings, len(imageWant))
	for _, r := range b.Readings {
		require.Equal(t, QualityGood, r.Quality, "%s: %s", r.Sensor, r.Reason)
		require.InDelta(t, imageWant[r.Sensor], r.Value, 1e-12, r.Sensor)
	}
}

func TestIntegrationPollTCP(t *testing.T) {
	url := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: imageUnit()}}).URL
	ps, err := NewPollers([]Device{device("dev", url, 1, time.Second, imageSensors())}, Options{Logger: testLogger(t)})
	require.NoError(t, err)
	require.Len(t, ps, 1)
	bs := ps[0].PollOnce(t.Context())
	require.Len(t, bs, 1)
	requireImage(t, bs[0])
	st := ps[0].Stats()[0]
	require.Equal(t, uint64(1), st.Polls)
	require.Zero(t, st.Errors)
}

// mbpollValues runs mbpoll (an independent Modbus master and decoder) once
// and returns the values it prints.
func mbpollValues(t *testing.T, args ...string) []float64 {
	t.Helper()
	out, err := exec.Command("mbpoll", append([]string{"-1", "-0", "-q"}, args...)...).CombinedOutput()
	require.NoError(t, err, "mbpoll %v: %s", args, out)
	var vals []float64
	// "[4]: 65531 (-5)": the signed reading is in parentheses.
	for _, m := range regexp.MustCompile(`(?m)^\[\d+\]:\s+(\S+)(?:\s+\((\S+)\))?`).FindAllStringSubmatch(string(out), -1) {
		num := m[1]
		if m[2] != "" {
			num = m[2]
		}
		v, err := strconv.ParseFloat(num, 64)
		require.NoError(t, err)
		vals = append(vals, v)
	}
	require.NotEmpty(t, vals, "mbpoll printed no values: %s", out)
	return vals
}

func TestIntegrationAgainstMbpollTCP(t *testing.T) {
	modbustest.Require(t, "mbpoll")
	url := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: imageUnit()}}).URL
	port := url[strings.LastIndex(url, ":")+1:]
	ps, err := NewPollers([]Device{device("dev", url, 1, time.Second, imageSensors())}, Options{})
	require.NoError(t, err)
	got := map[string]float64{}
	for _, r := range ps[0].PollOnce(t.Context())[0].Readings {
		got[r.Sensor] = r.Value
	}
	// mbpoll: -B is big-endian (ABCD) floats, its default is CDAB.
	require.InDelta(t, mbpollValues(t, "-m", "tcp", "-p", port, "-a", "1", "-r", "0", "-c", "1", "-t", "4:float", "-B", "127.0.0.1")[0], got["pi-abcd"], 1e-5)
	require.InDelta(t, mbpollValues(t, "-m", "tcp", "-p", port, "-a", "1", "-r", "2", "-c", "1", "-t", "4:float", "127.0.0.1")[0], got["pi-cdab"], 1e-5)
	require.Equal(t, mbpollValues(t, "-m", "tcp", "-p", port, "-a", "1", "-r", "4", "-c", "1", "-t", "4", "127.0.0.1")[0], got["neg"])
	require.Equal(t, mbpollValues(t, "-m", "tcp", "-p", port, "-a", "1", "-r", "108", "-c", "3", "-t", "4", "127.0.0.1"), []float64{got["r108"], got["r109"], got["r110"]})
	require.Equal(t, mbpollValues(t, "-m", "tcp", "-p", port, "-a", "1", "-r", "2", "-c", "1", "-t", "0", "127.0.0.1")[0], got["relay"])
}

// batches collects what a sink receives.
type batches struct {
	mu sync.Mutex
	by map[string][]Batch
}

func (c *batches) sink(b Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string][]Batch{}
	}
	c.by[b.Device] = append(c.by[b.Device], b)
}

func (c *batches) get(dev string) []Batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Batch(nil), c.by[dev]...)
}

// closingServer accepts TCP connections and closes them at once, like a
// device that drops the link.
func closingServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	return "tcp://" + l.Addr().String()
}

// rawServer is a Modbus TCP peer written from the specification's framing
// (MBAP header: transaction id, protocol 0, length, unit; then the PDU),
// independent of the library under test. answer gets each request's PDU
// and returns the answer's PDU, or nil to close the connection without
// one. A connection without a request for idle (0: never) is closed, as
// many devices do. It counts the connections it accepted.
func rawServer(t *testing.T, idle time.Duration, answer func(pdu []byte) []byte) (url string, conns *atomic.Int64) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	conns = new(atomic.Int64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for {
					if idle > 0 {
						_ = c.SetReadDeadline(time.Now().Add(idle))
					}
					var h [7]byte
					if _, err := io.ReadFull(c, h[:]); err != nil {
						return // idle, or the client closed it
					}
					pdu := make([]byte, int(binary.BigEndian.Uint16(h[4:]))-1)
					if _, err := io.ReadFull(c, pdu); err != nil || len(pdu) == 0 {
						return
					}
					out := answer(pdu)
					if out == nil {
						return
					}
					binary.BigEndian.PutUint16(h[4:], uint16(len(out)+1))
					if _, err := c.Write(append(h[:], out...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	return "tcp://" + l.Addr().String(), conns
}

// exceptionServer answers every request with exception code (function
// code | 0x80, code).
func exceptionServer(t *testing.T, code byte) (url string, conns *atomic.Int64) {
	return rawServer(t, 0, func(pdu []byte) []byte { return []byte{pdu[0] | 0x80, code} })
}

// An exception code the Modbus library has no name for (7, once "negative
// acknowledge"; vendors' own) is an answer like any other: the sensor is
// bad with the code as its reason, and the link stays up (no reconnect,
// no backoff, the device online). It was a link error: offline, two
// reconnects a poll, backing off.
func TestUnknownExceptionCodeIsAnAnswer(t *testing.T) {
	for _, code := range []byte{7, 0x0c} {
		url, conns := exceptionServer(t, code)
		dev := device("vendor", url, 1, 100*time.Millisecond, []SensorConfig{sensor("x", "holding", 0, "uint16", "")})
		var got batches
		g, stop := runGroup(t, []Device{dev}, got.sink)
		require.Eventually(t, func() bool { return len(got.get("vendor")) >= 5 }, 20*time.Second, 10*time.Millisecond)
		stop()
		for _, b := range got.get("vendor") {
			require.Equal(t, QualityBad, b.Readings[0].Quality)
			require.Equal(t, fmt.Sprintf("modbus exception %d (not a code the Modbus library knows)", code), b.Readings[0].Reason)
			require.True(t, IsException(b.Err))
		}
		st := g.Stats()[0]
		require.Zero(t, st.Reconnects, "code %d", code)
		require.Zero(t, st.Backoff, "code %d", code)
		require.Zero(t, st.LinkErrors, "code %d", code)
		require.True(t, st.Online, "code %d", code)
		require.EqualValues(t, 1, conns.Load(), "code %d: one connection for every poll", code)
	}
}

// idleClosingServer is a Modbus TCP device with ten holding registers
// (FC03 reads, FC06 writes) that closes a connection idle for idle.
func idleClosingServer(t *testing.T, idle time.Duration) (url string, conns *atomic.Int64) {
	var mu sync.Mutex
	var regs [10]uint16
	return rawServer(t, idle, func(pdu []byte) []byte {
		if len(pdu) != 5 {
			return nil
		}
		a, n := binary.BigEndian.Uint16(pdu[1:]), binary.BigEndian.Uint16(pdu[3:])
		mu.Lock()
		defer mu.Unlock()
		switch {
		case pdu[0] == 3 && int(a)+int(n) <= len(regs):
			out := []byte{3, byte(2 * n)}
			for _, r := range regs[a : a+n] {
				out = binary.BigEndian.AppendUint16(out, r)
			}
			return out
		case pdu[0] == 6 && int(a) < len(regs):
			regs[a] = n
			return pdu
		}
		return []byte{pdu[0] | 0x80, 2}
	})
}

// A device that may have done a write and dropped the connection without
// answering: the write is not sent again on a new connection (a command
// register would act twice); the caller gets the error (an action retries
// with its backoff, writing the same value).
func TestWriteNotSentTwiceAfterAClose(t *testing.T) {
	var writes atomic.Int64
	url, _ := rawServer(t, 0, func(pdu []byte) []byte {
		if pdu[0] == 6 {
			writes.Add(1)
			return nil // done, and gone without an answer
		}
		return []byte{3, 2, 0, 0}
	})
	dev := device("cmd", url, 1, 300*time.Millisecond, []SensorConfig{sensor("pulse", "holding", 0, "uint16", "")})
	var got batches
	g, stop := runGroup(t, []Device{dev}, got.sink)
	defer stop()
	require.Eventually(t, func() bool { return len(got.get("cmd")) >= 2 }, 10*time.Second, 10*time.Millisecond)
	_, err := g.Write(t.Context(), "cmd", "pulse", 1)
	require.Error(t, err)
	require.EqualValues(t, 1, writes.Load(), "the write was sent once")
}

// A device that closes idle connections: every poll (retries 0, so nothing
// hides a failure) and an interlock write after an idle spell meet a
// connection it has closed, and are sent again on a new one. They were a
// bad reading on every other poll ("link: EOF"), and a failed write that
// waited out the action's backoff.
func TestDeviceClosingIdleConnections(t *testing.T) {
	url, conns := idleClosingServer(t, 100*time.Millisecond)
	dev := device("idle", url, 1, 300*time.Millisecond, []SensorConfig{sensor("relay", "holding", 4, "uint16", "")})
	dev.Config.Retries = ptr(0)
	var got batches
	g, stop := runGroup(t, []Device{dev}, got.sink)
	require.Eventually(t, func() bool { return len(got.get("idle")) >= 6 }, 20*time.Second, 10*time.Millisecond)

	time.Sleep(200 * time.Millisecond) // idle past the device's limit
	v, err := g.Write(t.Context(), "idle", "relay", 1)
	require.NoError(t, err, "the write after an idle close")
	require.Equal(t, 1.0, v)
	stop()

	bs := got.get("idle")
	for i, b := range bs {
		require.NoError(t, b.Err, "poll %d", i)
		require.Equal(t, QualityGood, b.Readings[0].Quality, "poll %d: %s", i, b.Readings[0].Reason)
	}
	st := g.Stats()[0]
	require.Zero(t, st.Errors)
	require.Zero(t, st.LinkErrors)
	require.True(t, st.Online)
	require.GreaterOrEqual(t, st.Reconnects, uint64(len(bs)-2), "a new connection for (almost) every poll, counted")
	require.GreaterOrEqual(t, conns.Load(), int64(len(bs)))
}

func runGroup(t *testing.T, devs []Device, sink func(Batch)) (*Group, func()) {
	return runGroupWith(t, devs, Options{Sink: sink})
}

// runGroupWith is runGroup with opts (the logger is the test's).
func runGroupWith(t *testing.T, devs []Device, opts Options) (*Group, func()) {
	opts.Logger = testLogger(t)
	g, err := NewGroup(devs, opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	stop := func() {
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return g, stop
}

func TestIntegrationFaultsTCP(t *testing.T) {
	// One pymodbus endpoint with unit 1 alive, unit 2 answering exceptions
	// (its sensors lie past its tables) and unit 3 absent (never answers);
	// a second endpoint that closes every connection; a third, healthy one.
	shared := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{
		1: imageUnit(), 2: {Holding: []uint16{1}},
	}}).URL
	other := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{7: imageUnit()}}).URL
	closing := closingServer(t)
	const poll = 300 * time.Millisecond
	devs := []Device{
		device("live", shared, 1, poll, imageSensors()),
		device("exception", shared, 2, poll, []SensorConfig{sensor("x", "holding", 50, "uint16", "")}),
		device("dead", shared, 3, poll, []SensorConfig{sensor("x", "holding", 0, "uint16", "")}),
		device("other", other, 7, poll, imageSensors()),
		device("closing", closing, 1, poll, []SensorConfig{sensor("x", "holding", 0, "uint16", "")}),
	}
	for i := range devs {
		devs[i].Config.Timeout = 100 * time.Millisecond
		devs[i].Config.MaxBackoff = 2 * time.Second
	}
	var got batches
	g, stop := runGroup(t, devs, got.sink)
	require.Len(t, g.Pollers(), 3, "devices on one endpoint share one link owner")
	require.Eventually(t, func() bool { return len(got.get("live")) >= 25 && len(got.get("other")) >= 25 }, 60*time.Second, 10*time.Millisecond)
	stop()

	stats := map[string]DeviceStats{}
	for _, s := range g.Stats() {
		stats[s.Device] = s
	}
	for _, id := range []string{"live", "other"} {
		for _, b := range got.get(id) {
			requireImage(t, b)
		}
		// The faulty neighbours must not cost the live devices a tick.
		require.Zero(t, stats[id].Skipped, "%s skipped ticks: %+v", id, stats[id])
		require.Zero(t, stats[id].Errors)
		require.True(t, stats[id].Online)
	}
	for _, b := range got.get("exception") {
		require.Equal(t, QualityBad, b.Readings[0].Quality)
		require.Equal(t, "modbus exception 2 (illegal data address)", b.Readings[0].Reason)
		require.True(t, IsException(b.Err))
	}
	require.Zero(t, stats["exception"].Reconnects, "an exception is an answer, not a link failure")
	require.Zero(t, stats["exception"].Backoff)
	require.True(t, stats["exception"].Online)

	deadPolls := got.get("dead")
	require.NotEmpty(t, deadPolls)
	for _, b := range deadPolls {
		require.Equal(t, QualityBad, b.Readings[0].Quality)
		require.Equal(t, "timeout", b.Readings[0].Reason)
		require.ErrorIs(t, b.Err, ErrTimeout)
	}
	require.Less(t, len(deadPolls), len(got.get("live")), "the dead unit backs off")
	require.NotZero(t, stats["dead"].Backoff)
	require.False(t, stats["dead"].Online)
	// A silent unit is a device timeout, never mistaken for the gateway
	// running late: its readings are bad (an alarm), not withheld.
	require.Zero(t, stats["dead"].Late)

	closed := got.get("closing")
	require.NotEmpty(t, closed)
	for _, b := range closed {
		require.Equal(t, QualityBad, b.Readings[0].Quality)
		require.Error(t, b.Err)
		require.False(t, IsException(b.Err))
	}
	require.NotZero(t, stats["closing"].LinkErrors+stats["closing"].Timeouts)
	require.False(t, stats["closing"].Online)
}

func TestIntegrationReconnect(t *testing.T) {
	// The server dies (connection reset, then refused) and comes back on
	// the same port: the poller reopens the link by itself.
	spec := modbustest.Spec{Units: map[int]modbustest.Unit{1: imageUnit()}}
	srv := modbustest.StartTCP(t, spec)
	var got batches
	devs := []Device{device("dev", srv.URL, 1, 200*time.Millisecond, imageSensors())}
	devs[0].Config.Timeout = 80 * time.Millisecond
	devs[0].Config.MaxBackoff = 200 * time.Millisecond
	g, stop := runGroup(t, devs, got.sink)
	require.Eventually(t, func() bool { return len(got.get("dev")) >= 3 }, 30*time.Second, 10*time.Millisecond)
	srv.Stop()
	require.Eventually(t, func() bool { return !g.Stats()[0].Online }, 30*time.Second, 10*time.Millisecond)
	// The poll that finds the device offline marks it so before its batch
	// reaches the sink: wait for the batch, not the flag (CI once counted
	// the batches between the two and found none bad).
	require.Eventually(t, func() bool {
		for _, b := range got.get("dev")[3:] {
			if b.Readings[0].Quality == QualityBad {
				return true
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "the outage shows as bad readings, not silence")
	_, err := modbustest.StartTCPPort(t, srv.Port, spec)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return g.Stats()[0].Online }, 30*time.Second, 10*time.Millisecond)
	stop()
	bs := got.get("dev")
	requireImage(t, bs[len(bs)-1])
	require.NotZero(t, g.Stats()[0].Reconnects)
}

func TestIntegrationWrite(t *testing.T) {
	srv := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: imageUnit()}})
	relay := sensor("relay", "coil", 0, "bool", "")
	valve := sensor("valve", "holding", 20, "float32", "CDAB")
	flag := sensor("flag", "holding", 5, "bool", "")
	flag.Bit = ptr(4)
	ro := sensor("ro", "input", 0, "uint16", "")
	whole := sensor("r5", "holding", 5, "uint16", "")
	var got batches
	g, _ := runGroup(t, []Device{device("dev", srv.URL, 1, 100*time.Millisecond, []SensorConfig{relay, valve, flag, ro, whole})}, got.sink)
	v, err := g.Write(t.Context(), "dev", "relay", 1)
	require.NoError(t, err)
	require.Equal(t, 1.0, v)
	v, err = g.Write(t.Context(), "dev", "valve", 42.5)
	require.NoError(t, err)
	require.Equal(t, 42.5, v)
	v, err = g.Write(t.Context(), "dev", "flag", 1)
	require.NoError(t, err)
	require.Equal(t, 1.0, v)
	_, err = g.Write(t.Context(), "dev", "valve", math.NaN())
	require.NoError(t, err, "a float register may be sent NaN")
	_, err = g.Write(t.Context(), "dev", "r5", 70000)
	require.ErrorIs(t, err, ErrOutOfRange)
	_, err = g.Write(t.Context(), "dev", "ro", 1)
	require.EqualError(t, err, "write dev.ro: table input is read-only (want holding or coil)")
	_, err = g.Write(t.Context(), "dev", "nope", 1)
	require.EqualError(t, err, "write dev.nope: unknown sensor")
	_, err = g.Write(t.Context(), "nodev", "relay", 1)
	require.EqualError(t, err, "write nodev.relay: unknown device")
	v, err = g.Write(t.Context(), "dev", "valve", -1.25)
	require.NoError(t, err)
	require.Equal(t, -1.25, v)
	// The next polls see the written values, and setting bit 4 kept the
	// other bits of register 5 (0x8001 -> 0x8011).
	require.Eventually(t, func() bool {
		bs := got.get("dev")
		if len(bs) == 0 {
			return false
		}
		r := bs[len(bs)-1].Readings
		return r[0].Value == 1 && r[1].Value == -1.25 && r[2].Value == 1 && r[4].Value == 0x8011
	}, 30*time.Second, 10*time.Millisecond)
}

func TestIntegrationSplitOnHoles(t *testing.T) {
	// Registers 0-1 and 6 exist, 2-5 are holes: the merged read 0..6 gets
	// exception 2, so the poller splits it and reads both parts.
	srv := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{
		1: {HoldingSparse: map[int]uint16{0: 0x4049, 1: 0x0FDB, 6: 555}},
	}})
	ps, err := NewPollers([]Device{device("dev", srv.URL, 1, time.Second, []SensorConfig{
		sensor("pi", "holding", 0, "float32", ""), sensor("n", "holding", 6, "uint16", ""),
	})}, Options{Logger: testLogger(t)})
	require.NoError(t, err)
	require.Len(t, ps[0].devs[0].plan.Requests, 1)
	for range 2 {
		b := ps[0].PollOnce(t.Context())[0]
		require.NoError(t, b.Err)
		require.InDelta(t, math.Pi, b.Readings[0].Value, 1e-6)
		require.Equal(t, 555.0, b.Readings[1].Value)
	}
	require.Len(t, ps[0].devs[0].plan.Requests, 2, "the split is kept")
	require.Zero(t, ps[0].Stats()[0].Exceptions)
}

// Options.Polling counts a poll from its first request until its batch was
// handed to the sink: a consumer that sees 0 and nothing queued knows the
// burst is over.
func TestPollingCountsPollsUnderWay(t *testing.T) {
	url := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: imageUnit()}}).URL
	var polling atomic.Int64
	during := make(chan int64, 16)
	g, err := NewGroup([]Device{device("dev", url, 1, 100*time.Millisecond, imageSensors())}, Options{
		Logger: testLogger(t), Polling: &polling,
		Sink: func(Batch) { during <- polling.Load() },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	for range 3 {
		select {
		case n := <-during:
			require.Equal(t, int64(1), n, "a poll handing its batch over is still under way")
		case <-time.After(10 * time.Second):
			t.Fatal("no batch")
		}
	}
	cancel()
	require.NoError(t, <-done)
	require.Zero(t, polling.Load(), "every poll was counted out")
}
