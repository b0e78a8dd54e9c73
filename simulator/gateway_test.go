package simulator

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	mb "github.com/simonvetter/modbus"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
)

// gatewaySim loads a site as `canary check` and `canary run` do
// (configs.LoadSite: strict, defaults, the whole validation), requires that
// the gateway accepts it, and serves it on loopback with the clock paused.
func gatewaySim(t *testing.T, text string) (*Simulator, *configs.Site) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "site.yaml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	site, _, err := configs.LoadSite(p)
	require.NoError(t, err, "the gateway accepts the site")
	s := startSim(t, Options{Site: site, Localize: true})
	require.NoError(t, s.SetClock(time.Hour, 0))
	return s, site
}

// driverGroup is the gateway's Modbus driver for one device of the site,
// pointed at the simulator.
func driverGroup(t *testing.T, s *Simulator, site *configs.Site, device string) *modbus.Group {
	t.Helper()
	for _, d := range site.Devices {
		if d.ID != device {
			continue
		}
		cfg := d.DeviceConfig
		u, err := s.DeviceURL(device)
		require.NoError(t, err)
		cfg.URL = u
		log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
		g, err := modbus.NewGroup([]modbus.Device{{Config: cfg, Sensors: d.ModbusSensors()}}, modbus.Options{Logger: &log, Sink: func(modbus.Batch) {}})
		require.NoError(t, err)
		return g
	}
	t.Fatalf("no device %s", device)
	return nil
}

// gatewayReads polls a device once with the gateway's driver.
func gatewayReads(t *testing.T, s *Simulator, site *configs.Site, device string) map[string]modbus.Reading {
	t.Helper()
	batches := driverGroup(t, s, site, device).Pollers()[0].PollOnce(t.Context())
	require.Len(t, batches, 1)
	require.NoError(t, batches[0].Err)
	out := map[string]modbus.Reading{}
	for _, r := range batches[0].Readings {
		out[r.Sensor] = r
	}
	return out
}

type hold struct {
	sensor string
	value  float64
}

// `canary sim` serves every site that the gateway accepts, and the gateway
// reads from it what it holds: 8-bit types (both bytes of one register
// shared by two sensors), float16, lower-case byte orders, a status word
// with its bits as sensors of their own, and overlapping registers that
// `canary check` only warns about.
func TestSimulatorServesWhatTheGatewayAccepts(t *testing.T) {
	for _, c := range []struct {
		name    string
		sensors string
		holds   []hold
		want    map[string]float64 // what the gateway reads
		bad     []string           // readings the gateway marks bad
		warns   bool               // canary check warns (and the simulator logs it)
	}{{
		name: "int8 and uint8, both bytes of a register",
		sensors: `
      - {id: hi, kind: generic, table: holding, address: 0, type: int8, order: A}
      - {id: lo, kind: generic, table: holding, address: 0, type: uint8, order: B}
      - {id: u, kind: generic, table: holding, address: 1, type: uint8, order: b}
      - {id: i, kind: generic, table: input, address: 0, type: int8, order: a, scale: 0.5, offset: 10}`,
		holds: []hold{{"hi", -5}, {"lo", 200}, {"u", 7}, {"i", 3.5}},
		want:  map[string]float64{"hi": -5, "lo": 200, "u": 7, "i": 3.5},
	}, {
		name: "float16",
		sensors: `
      - {id: t, kind: temperature, table: input, address: 0, type: float16}
      - {id: t2, kind: temperature, table: input, address: 1, type: float16, order: ba, scale: 0.5, offset: 1}`,
		holds: []hold{{"t", 22.5}, {"t2", -3.25}},
		want:  map[string]float64{"t": 22.5, "t2": -3.25},
	}, {
		name: "lower-case orders",
		sensors: `
      - {id: a, kind: methane, table: holding, address: 0, type: float32, order: cdab}
      - {id: b, kind: generic, table: holding, address: 2, type: int32, order: dcba, scale: 0.001}
      - {id: c, kind: generic, table: holding, address: 4, type: uint16, order: ba}
      - {id: d, kind: methane, table: holding, address: 5, type: float64, order: ghefcdab}`,
		holds: []hold{{"a", 1.25}, {"b", -4.5}, {"c", 0x1234}, {"d", 0.75}},
		want:  map[string]float64{"a": 1.25, "b": -4.5, "c": 0x1234, "d": 0.75},
	}, {
		name: "a status word and its bits",
		sensors: `
      - {id: ch4, kind: methane, table: holding, address: 0, type: float32, status: {sensor: st, bad_bits: [0]}}
      - {id: st, kind: generic, table: holding, address: 40, type: uint16}
      - {id: st-fault, kind: generic, table: holding, address: 40, type: bool, bit: 0}
      - {id: st-cal, kind: generic, table: holding, address: 40, type: bool, bit: 2}`,
		holds: []hold{{"ch4", 0.4}, {"st-fault", 1}},
		want:  map[string]float64{"st": 1, "st-fault": 1, "st-cal": 0},
		bad:   []string{"ch4"},
	}, {
		name: "the most recent hold wins on a shared register",
		sensors: `
      - {id: st, kind: generic, table: holding, address: 40, type: uint16}
      - {id: st-fault, kind: generic, table: holding, address: 40, type: bool, bit: 0}
      - {id: st-cal, kind: generic, table: holding, address: 40, type: bool, bit: 2}`,
		holds: []hold{{"st-fault", 1}, {"st", 4}},
		want:  map[string]float64{"st": 4, "st-fault": 0, "st-cal": 1},
	}, {
		name: "registers that overlap in part (a warning of canary check)",
		sensors: `
      - {id: a, kind: generic, table: holding, address: 0, type: float32}
      - {id: b, kind: generic, table: holding, address: 1, type: float32}`,
		holds: []hold{{"b", 2.5}},
		want:  map[string]float64{"b": 2.5},
		warns: true,
	}} {
		t.Run(c.name, func(t *testing.T) {
			text := "site: agree\ndevices:\n  - id: dev\n    url: tcp://127.0.0.1:5020\n    sensors:" + c.sensors + "\n"
			// The simulator's own loader (no defaults) is served too.
			own, err := New(Options{Site: siteFromYAML(t, text)})
			require.NoError(t, err)
			require.Equal(t, c.warns, len(own.byID["dev"].warnings) > 0, "%v", own.byID["dev"].warnings)

			s, site := gatewaySim(t, text)
			for _, h := range c.holds {
				require.NoError(t, s.Hold("dev", h.sensor, h.value))
			}
			got := gatewayReads(t, s, site, "dev")
			for id, want := range c.want {
				r := got[id]
				require.Equal(t, modbus.QualityGood, r.Quality, "%s: %s", id, r.Reason)
				require.InDelta(t, want, r.Value, 1e-9, id)
			}
			for _, id := range c.bad {
				require.Equal(t, modbus.QualityBad, got[id].Quality, id)
			}
		})
	}
}

// With `order: BA` on a bit of a register the gateway swaps the bytes
// before it picks the bit (docs/modbus.md): bit 0 is the wire's bit 8. The
// simulator serves it there, and an interlock write to such a bit (the
// driver's read-modify-write and read-back) is confirmed.
func TestBitOfAByteSwappedRegister(t *testing.T) {
	s, site := gatewaySim(t, `
site: swapped
devices:
  - id: relay
    url: tcp://127.0.0.1:5020
    sensors:
      - {id: trip, kind: generic, table: holding, address: 7, type: bool, bit: 0, order: BA}
      - {id: ready, kind: generic, table: holding, address: 7, type: bool, bit: 9, order: ba}
      - {id: word, kind: generic, table: holding, address: 7, type: uint16, order: BA}
`)
	require.NoError(t, s.Hold("relay", "ready", 1))
	c := newClient(t, "tcp://"+hostPort(t, s, "relay"), 1)
	r, err := c.ReadRegister(7, mb.HOLDING_REGISTER)
	require.NoError(t, err)
	require.Equal(t, uint16(1<<1), r, "bit 9 after the byte swap is the wire's bit 1")
	got := gatewayReads(t, s, site, "relay")
	require.Equal(t, 1.0, got["ready"].Value)
	require.Equal(t, 0.0, got["trip"].Value)
	require.Equal(t, 512.0, got["word"].Value)

	g := driverGroup(t, s, site, "relay")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	wctx, wcancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer wcancel()
	back, err := g.Write(wctx, "relay", "trip", 1)
	require.NoError(t, err, "the write's read-back")
	require.Equal(t, 1.0, back)
	v, src, err := s.Value("relay", "trip")
	require.NoError(t, err)
	require.Equal(t, 1.0, v)
	require.Equal(t, "written", src)
	r, err = c.ReadRegister(7, mb.HOLDING_REGISTER)
	require.NoError(t, err)
	require.Equal(t, uint16(1<<8|1<<1), r, "the trip bit is the wire's bit 8, ready kept")
	require.Equal(t, 1.0, value(t, s, "relay", "ready"))
}

// A 4–20 mA sensor in the fault band must read below 3.6 mA. Where its
// encoding cannot carry that (a uint16 with offset 4 saturates at 4.0 mA,
// a healthy live zero), the device answers exception 04 instead.
func TestFaultBandTheEncodingCannotCarry(t *testing.T) {
	s := startSim(t, Options{Site: siteFromYAML(t, `
site: band
devices:
  - id: loops
    url: tcp://127.0.0.1:0
    sensors:
      - {id: plain, kind: current, table: input, address: 0, type: uint16, scale: 0.001}
      - {id: signed, kind: current, table: input, address: 1, type: int16, scale: 0.00048828125, offset: 4}
      - {id: live-zero, kind: current, table: input, address: 2, type: uint16, scale: 0.00048828125, offset: 4}
simulation:
  devices: [{device: loops, state: fault, faults: {signal: band}}]
`)})
	c := newClient(t, "tcp://"+hostPort(t, s, "loops"), 1)
	st := map[string]SensorStatus{}
	for _, sn := range s.Devices()[0].Sensors {
		st[sn.ID] = sn
	}
	for _, tc := range []struct {
		sensor        string
		addr          uint16
		typ           modbus.Type
		scale, offset float64
		failure       bool // exception 04
	}{
		{"plain", 0, modbus.TypeUint16, 0.001, 0, false},
		{"signed", 1, modbus.TypeInt16, 0.00048828125, 4, false}, // -2048 counts
		{"live-zero", 2, modbus.TypeUint16, 0.00048828125, 4, true},
	} {
		t.Run(tc.sensor, func(t *testing.T) {
			r, err := c.ReadRegisters(tc.addr, 1, mb.INPUT_REGISTER)
			if tc.failure {
				require.ErrorIs(t, err, mb.ErrServerDeviceFailure)
				require.True(t, math.IsNaN(st[tc.sensor].Value), "the control API shows no value")
				require.Equal(t, "fault", st[tc.sensor].Source)
				return
			}
			require.NoError(t, err)
			codec, err := modbus.NewCodec(tc.typ, "", -1, tc.scale, tc.offset)
			require.NoError(t, err)
			v, err := codec.Decode(r)
			require.NoError(t, err)
			require.InDelta(t, 3.0, v, 1e-9)
			require.InDelta(t, 3.0, st[tc.sensor].Value, 1e-9)
			require.Equal(t, "fault", st[tc.sensor].Source)
		})
	}
	// A read that spans a sensor without the band fails as a whole.
	_, err := c.ReadRegisters(0, 3, mb.INPUT_REGISTER)
	require.ErrorIs(t, err, mb.ErrServerDeviceFailure)
}
