package modbus

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/drivers/modbus/modbustest"
)

// TestIntegrationRTU runs a serial line over a socat pty pair: pymodbus is
// the RTU slave on one end (units 1 and 2; unit 3 is dead), mbpoll and then
// our poller are the master on the other end.
func TestIntegrationRTU(t *testing.T) {
	modbustest.Require(t, "mbpoll", "socat")
	slaveEnd, masterEnd := modbustest.PtyPair(t)
	modbustest.StartRTU(t, slaveEnd, 19200, modbustest.Spec{Units: map[int]modbustest.Unit{
		1: imageUnit(), 2: {Holding: []uint16{0x0FDB, 0x4049}},
	}})

	// An independent master first: mbpoll's reading is the reference.
	ref := mbpollValues(t, "-m", "rtu", "-b", "19200", "-P", "none", "-s", "1", "-a", "2", "-r", "0", "-c", "1", "-t", "4:float", masterEnd)
	refSpec := mbpollValues(t, "-m", "rtu", "-b", "19200", "-P", "none", "-s", "1", "-a", "1", "-r", "108", "-c", "3", "-t", "4", masterEnd)

	url := "rtu://" + masterEnd
	const poll = 500 * time.Millisecond
	devs := []Device{
		device("one", url, 1, poll, imageSensors()),
		device("two", url, 2, poll, []SensorConfig{sensor("pi", "holding", 0, "float32", "CDAB")}),
		device("dead", url, 3, poll, []SensorConfig{sensor("x", "holding", 0, "uint16", "")}),
	}
	for i := range devs {
		devs[i].Config.Timeout = 150 * time.Millisecond
		devs[i].Config.MaxBackoff = 3 * time.Second
	}
	var got batches
	g, stop := runGroup(t, devs, got.sink)
	require.Len(t, g.Pollers(), 1, "one owner per serial line")
	require.Eventually(t, func() bool { return len(got.get("one")) >= 15 && len(got.get("two")) >= 15 }, 60*time.Second, 10*time.Millisecond)
	stop()

	stats := map[string]DeviceStats{}
	for _, s := range g.Stats() {
		stats[s.Device] = s
	}
	for _, b := range got.get("one") {
		requireImage(t, b)
		require.Equal(t, refSpec, []float64{b.Readings[5].Value, b.Readings[6].Value, b.Readings[7].Value})
	}
	for _, b := range got.get("two") {
		require.NoError(t, b.Err)
		require.InDelta(t, ref[0], b.Readings[0].Value, 1e-5)
	}
	for _, id := range []string{"one", "two"} {
		require.Zero(t, stats[id].Skipped, "%s lost ticks to the dead unit: %+v", id, stats[id])
		require.True(t, stats[id].Online)
	}
	dead := got.get("dead")
	require.NotEmpty(t, dead)
	require.Less(t, len(dead), len(got.get("one")), "the dead unit backs off")
	for _, b := range dead {
		require.Equal(t, "timeout", b.Readings[0].Reason)
	}
	require.Zero(t, stats["dead"].Reconnects, "one silent unit does not reopen the serial line")
	require.NotZero(t, stats["dead"].Backoff)
}

func TestNewPollersSharedLine(t *testing.T) {
	a := device("a", "rtu:///dev/ttyX", 1, time.Second, []SensorConfig{sensor("x", "holding", 0, "uint16", "")})
	b := device("b", "rtu:///dev/ttyX", 2, time.Second, []SensorConfig{sensor("x", "holding", 0, "uint16", "")})
	b.Config.Baud = 9600
	_, err := NewPollers([]Device{a, b}, Options{})
	require.EqualError(t, err, "device b: shares serial line rtu:///dev/ttyX with device a but its serial settings differ (baud, parity, data_bits, stop_bits must match)")

	c := device("c", "tcp://127.0.0.1:1502", 1, time.Second, []SensorConfig{sensor("x", "holding", 0, "float32", "ABDC")})
	_, err = NewPollers([]Device{c}, Options{})
	require.EqualError(t, err, `device c: sensors[0].order: unknown byte order "ABDC" for float32 (want ABCD, CDAB, BADC, DCBA)`)
}

func TestValidateLinks(t *testing.T) {
	mk := func(id, url string, baud int) DeviceConfig {
		d := DeviceConfig{ID: id, URL: url, Baud: baud}
		d.SetDefaults()
		return d
	}
	err := ValidateLinks([]DeviceConfig{
		mk("a", "rtu:///dev/ttyS0", 9600),
		mk("b", "rtu:///dev/ttyS0", 9600),
		mk("c", "rtu:///dev/ttyS0", 19200),
		mk("a", "tcp://h:502", 0),
		mk("d", "rtu:///dev/ttyS1", 19200),
	})
	require.Equal(t, []string{
		`[2].baud: shares serial line rtu:///dev/ttyS0 with device a but its serial settings differ (baud, parity, data_bits, stop_bits must match)`,
		`[3].id: duplicate device id "a" (also [0])`,
	}, messages(err))
}

// TestSerialLinkFollowsSymlinks: a by-id symlink and the port it names are
// one half-duplex line, so one poller, and their settings must agree. No
// port is opened, so plain files stand in for the devices.
func TestSerialLinkFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	port := filepath.Join(dir, "ttyUSB0")
	require.NoError(t, os.WriteFile(port, nil, 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "by-id"), 0o700))
	alias := filepath.Join(dir, "by-id", "usb-FTDI_FT232R_A1B2-if00-port0")
	require.NoError(t, os.Symlink("../ttyUSB0", alias))

	a := device("a", "rtu://"+port, 1, time.Second, []SensorConfig{sensor("x", "holding", 0, "uint16", "")})
	b := device("b", "rtu://"+alias, 2, time.Second, []SensorConfig{sensor("x", "holding", 0, "uint16", "")})
	ps, err := NewPollers([]Device{a, b}, Options{})
	require.NoError(t, err)
	require.Len(t, ps, 1, "one owner per serial line, whatever its spelling")
	require.Equal(t, []string{"a", "b"}, ps[0].Devices())

	b.Config.Baud = 9600
	_, err = NewPollers([]Device{a, b}, Options{})
	require.EqualError(t, err, "device b: shares serial line rtu://"+alias+" (as rtu://"+port+") with device a but its serial settings differ (baud, parity, data_bits, stop_bits must match)")

	mk := func(id, url string, baud int) DeviceConfig {
		d := DeviceConfig{ID: id, URL: url, Baud: baud}
		d.SetDefaults()
		return d
	}
	// A device not plugged in yet cannot be resolved: its cleaned path is
	// the key.
	missing := "/nonexistent-canary-test/ttyQ"
	err = ValidateLinks([]DeviceConfig{
		mk("a", "rtu://"+port, 9600),
		mk("b", "rtu://"+alias, 19200),
		mk("c", "rtu://"+dir+"/by-id/../ttyUSB0", 9600),
		mk("d", "rtu://"+missing, 9600),
		mk("e", "rtu:///nonexistent-canary-test/x/../ttyQ", 19200),
	})
	require.Equal(t, []string{
		"[1].baud: shares serial line rtu://" + alias + " (as rtu://" + port + ") with device a but its serial settings differ (baud, parity, data_bits, stop_bits must match)",
		"[4].baud: shares serial line rtu:///nonexistent-canary-test/x/../ttyQ (as rtu://" + missing + ") with device d but its serial settings differ (baud, parity, data_bits, stop_bits must match)",
	}, messages(err))
}
