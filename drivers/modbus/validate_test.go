package modbus

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/configerr"
)

func validDevice() DeviceConfig {
	d := DeviceConfig{ID: "face3-gas", URL: "tcp://127.0.0.1:5020"}
	d.SetDefaults()
	return d
}

// messages renders an error as "path: msg" lines, sorted by path.
func messages(err error) []string {
	var out []string
	for _, fe := range configerr.Sorted(err) {
		out = append(out, fe.Error())
	}
	return out
}

func TestDeviceDefaults(t *testing.T) {
	d := DeviceConfig{ID: "x", URL: "rtu:///dev/ttyUSB0"}
	d.SetDefaults()
	require.Equal(t, 1, *d.Unit)
	require.Equal(t, time.Second, d.Poll)
	require.Equal(t, 500*time.Millisecond, d.Timeout)
	require.Equal(t, 1, *d.Retries)
	require.Equal(t, 19200, d.Baud)
	require.Equal(t, "none", d.Parity)
	require.Equal(t, 8, d.DataBits)
	require.Equal(t, 1, d.StopBits)
	require.Equal(t, 125, d.MaxRegisters)
	require.Equal(t, 2000, d.MaxBits)
	require.Equal(t, 8, *d.MaxGap)
	require.Equal(t, 10*time.Second, d.MaxBackoff)
	require.NoError(t, d.Validate())

	fast := DeviceConfig{ID: "x", URL: "tcp://h:502", Poll: 200 * time.Millisecond}
	fast.SetDefaults()
	require.Equal(t, 100*time.Millisecond, fast.Timeout, "the default timeout stays below a short poll")
	require.Zero(t, fast.Baud, "serial defaults only for rtu://")
	require.NoError(t, fast.Validate())
}

func TestDeviceValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(d *DeviceConfig)
		want []string
	}{
		{"valid tcp", func(*DeviceConfig) {}, nil},
		{"valid rtuovertcp", func(d *DeviceConfig) { d.URL = "rtuovertcp://gw.local:4001" }, nil},
		// Schemes are case-insensitive (RFC 3986), as in the simulator.
		{"upper-case rtu scheme", func(d *DeviceConfig) { d.URL = "RTU:///dev/ttyUSB0"; d.SetDefaults() }, nil},
		{"upper-case tcp scheme", func(d *DeviceConfig) { d.URL = "TCP://plc:502" }, nil},
		{"mixed-case rtuovertcp scheme", func(d *DeviceConfig) { d.URL = "RtuOverTcp://gw.local:4001" }, nil},
		{"bad id", func(d *DeviceConfig) { d.ID = "Face 3" }, []string{`id: "Face 3" is not a valid id (want [a-z0-9][a-z0-9_-]*)`}},
		{"no url", func(d *DeviceConfig) { d.URL = "" }, []string{"url: is required (want tcp://host:port, tcp+tls://host:port, rtu:///dev/ttyX, rtuovertcp://host:port)"}},
		{"unknown scheme", func(d *DeviceConfig) { d.URL = "udp://h:502" }, []string{`url: unknown scheme "udp" in "udp://h:502" (want tcp://host:port, tcp+tls://host:port, rtu:///dev/ttyX, rtuovertcp://host:port)`}},
		{"no port", func(d *DeviceConfig) { d.URL = "tcp://plc" }, []string{`url: "tcp://plc" needs host:port, e.g. tcp://192.0.2.10:502`}},
		{"bad port", func(d *DeviceConfig) { d.URL = "tcp://plc:70000" }, []string{`url: "tcp://plc:70000": port "70000" out of range (want 1-65535)`}},
		{"rtu no path", func(d *DeviceConfig) { d.URL = "rtu://"; d.SetDefaults() }, []string{`url: "rtu://" needs a serial device path, e.g. rtu:///dev/ttyUSB0`}},
		{"tcp unit 0 ok", func(d *DeviceConfig) { d.Unit = ptr(0) }, nil},
		{"tcp unit 255 ok", func(d *DeviceConfig) { d.Unit = ptr(255) }, nil},
		{"tcp unit 256", func(d *DeviceConfig) { d.Unit = ptr(256) }, []string{"unit: 256 out of range (want 0-255 for tcp://)"}},
		{"rtu unit 0", func(d *DeviceConfig) { d.URL = "rtu:///dev/ttyS0"; d.SetDefaults(); d.Unit = ptr(0) }, []string{"unit: 0 out of range (want 1-247 for rtu://)"}},
		{"rtu unit 248", func(d *DeviceConfig) { d.URL = "rtu:///dev/ttyS0"; d.SetDefaults(); d.Unit = ptr(248) }, []string{"unit: 248 out of range (want 1-247 for rtu://)"}},
		{"negative poll", func(d *DeviceConfig) { d.Poll = -time.Second }, []string{"poll: -1s must be positive"}},
		{"timeout not below poll", func(d *DeviceConfig) { d.Timeout = time.Second }, []string{"timeout: 1s must be shorter than poll (1s)"}},
		{"negative retries", func(d *DeviceConfig) { d.Retries = ptr(-1) }, []string{"retries: -1 out of range (want 0-10)"}},
		{"serial keys on tcp", func(d *DeviceConfig) { d.Baud = 9600 }, []string{"baud: is only for rtu:// links, not tcp://"}},
		{"bad serial", func(d *DeviceConfig) {
			d.URL = "rtu:///dev/ttyS0"
			d.Baud, d.Parity, d.DataBits, d.StopBits = -1, "mark", 6, 3
		}, []string{
			"baud: -1 must be positive (e.g. 9600, 19200)",
			"data_bits: 6 (want 8: RTU framing)",
			`parity: unknown parity "mark" (want none, even, odd)`,
			"stop_bits: 3 (want 1 or 2)",
		}},
		{"seven data bits", func(d *DeviceConfig) { d.URL = "rtu:///dev/ttyS0"; d.SetDefaults(); d.DataBits = 7 },
			[]string{"data_bits: 7 is Modbus ASCII framing, which canary does not speak: RTU uses 8 data bits"}},
		{"tls needs files", func(d *DeviceConfig) { d.URL = "tcp+tls://plc:802" }, []string{
			"ca_file: is required for tcp+tls:// (Modbus/TCP security is mutual TLS)",
			"cert_file: is required for tcp+tls:// (Modbus/TCP security is mutual TLS)",
			"key_file: is required for tcp+tls:// (Modbus/TCP security is mutual TLS)",
		}},
		{"tls files on tcp", func(d *DeviceConfig) { d.CAFile = "ca.pem" }, []string{"ca_file: is only for tcp+tls:// links, not tcp://"}},
		{"limits", func(d *DeviceConfig) { d.MaxRegisters, d.MaxBits, d.MaxGap = 126, 2001, ptr(-1) }, []string{
			"max_bits: 2001 out of range (want 1-2000)",
			"max_gap: -1 out of range (want 0-125)",
			"max_registers: 126 out of range (want 1-125)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := validDevice()
			tc.edit(&d)
			require.Equal(t, tc.want, messages(d.Validate()))
			if tc.want == nil {
				// What canary check accepts, canary run must start with.
				_, err := NewLink(&d, zerolog.Nop())
				require.NoError(t, err)
			}
		})
	}
}

func sensor(id, table string, addr int, typ, order string) SensorConfig {
	return SensorConfig{ID: id, Table: table, Address: ptr(addr), Type: typ, Order: order}
}

func TestValidateSensors(t *testing.T) {
	d := validDevice()
	withBit := sensor("alarm", "holding", 5, "bool", "")
	withBit.Bit = ptr(3)
	badBit := sensor("b", "holding", 5, "bool", "")
	badBit.Bit = ptr(16)
	bitOnFloat := sensor("b", "holding", 5, "float32", "")
	bitOnFloat.Bit = ptr(1)
	zeroScale := sensor("s", "input", 1, "int16", "")
	zeroScale.Scale = ptr(0.0)
	tests := []struct {
		name    string
		sensors []SensorConfig
		want    []string
	}{
		{"valid", []SensorConfig{
			sensor("ch4", "holding", 0, "float32", "ABCD"),
			sensor("o2", "input", 10, "uint16", ""),
			sensor("relay", "coil", 3, "bool", ""),
			sensor("door", "discrete", 3, "bool", ""),
			sensor("lo", "holding", 20, "int8", "B"),
			sensor("total", "holding", 30, "uint64", "GHEFCDAB"),
			sensor("last", "holding", 65532, "float64", ""),
			withBit,
		}, nil},
		{"word order typo", []SensorConfig{sensor("ch4", "holding", 0, "float32", "ABDC")}, []string{
			`sensors[0].order: unknown byte order "ABDC" for float32 (want ABCD, CDAB, BADC, DCBA)`,
		}},
		{"64-bit order on float32", []SensorConfig{sensor("ch4", "holding", 0, "float32", "GHEFCDAB")}, []string{
			`sensors[0].order: unknown byte order "GHEFCDAB" for float32 (want ABCD, CDAB, BADC, DCBA)`,
		}},
		{"int8 needs half", []SensorConfig{sensor("x", "holding", 0, "int8", "")}, []string{
			"sensors[0].order: type int8 needs order A (high byte) or B (low byte)",
		}},
		{"unknown type and table", []SensorConfig{sensor("x", "holdings", 0, "float", "")}, []string{
			`sensors[0].table: unknown table "holdings" (want holding, input, coil, discrete)`,
			`sensors[0].type: unknown type "float" (want int8, uint8, int16, uint16, float16, int32, uint32, float32, int64, uint64, float64, bool)`,
		}},
		{"missing fields", []SensorConfig{{}}, []string{
			"sensors[0].address: is required (zero-based protocol address 0-65535)",
			"sensors[0].id: is required",
			"sensors[0].table: is required (want holding, input, coil, discrete)",
			"sensors[0].type: is required (want int8, uint8, int16, uint16, float16, int32, uint32, float32, int64, uint64, float64, bool)",
		}},
		{"bad id and duplicate", []SensorConfig{
			sensor("ch4", "holding", 0, "uint16", ""), sensor("CH4", "holding", 1, "uint16", ""), sensor("ch4", "holding", 2, "uint16", ""),
		}, []string{
			`sensors[1].id: "CH4" is not a valid id (want [a-z0-9][a-z0-9_-]*)`,
			`sensors[2].id: duplicate sensor id "ch4" (also sensors[0])`,
		}},
		{"span past 65535", []SensorConfig{sensor("x", "input", 65535, "float32", "")}, []string{
			"sensors[0].address: float32 at 65535 spans registers 65535-65536, past the last address 65535",
		}},
		{"span float64", []SensorConfig{sensor("x", "input", 65533, "float64", "")}, []string{
			"sensors[0].address: float64 at 65533 spans registers 65533-65536, past the last address 65535",
		}},
		{"address out of range", []SensorConfig{sensor("x", "coil", 70000, "bool", "")}, []string{
			"sensors[0].address: 70000 out of range (want 0-65535, zero-based)",
		}},
		{"float in coil", []SensorConfig{sensor("x", "coil", 0, "float32", "")}, []string{
			"sensors[0].type: float32 cannot live in a coil (want bool: coils and discrete inputs are single bits)",
		}},
		{"order on coil", []SensorConfig{sensor("x", "discrete", 0, "bool", "ABCD")}, []string{
			"sensors[0].order: is only for registers, a discrete has no byte order",
		}},
		{"bool register without bit", []SensorConfig{sensor("x", "input", 0, "bool", "")}, []string{
			"sensors[0].bit: bool on a input register needs bit: 0-15 (or use table coil or discrete)",
		}},
		{"bit out of range", []SensorConfig{badBit}, []string{
			"sensors[0].bit: 16 out of range (want 0-15, 0 = least significant)",
		}},
		{"bit on float", []SensorConfig{bitOnFloat}, []string{"sensors[0].bit: is only for type bool, not float32"}},
		{"zero scale", []SensorConfig{zeroScale}, []string{"sensors[0].scale: 0: want a finite number other than 0"}},
		{"status", withStatus(&StatusConfig{Sensor: "st", BadBits: []int{0, 3}, UncertainBits: []int{1}}), nil},
		{"status unknown sensor", withStatus(&StatusConfig{Sensor: "nope", BadBits: []int{0}}), []string{
			`sensors[0].status.sensor: unknown sensor "nope" (want a sensor of the same device)`,
		}},
		{"status of itself", withStatus(&StatusConfig{Sensor: "ch4", BadBits: []int{0}}), []string{
			"sensors[0].status.sensor: a sensor cannot be its own status word",
		}},
		{"status without bits", withStatus(&StatusConfig{Sensor: "st"}), []string{
			"sensors[0].status: names no bits: want bad_bits and/or uncertain_bits",
		}},
		{"status bits out of range and twice", withStatus(&StatusConfig{Sensor: "st", BadBits: []int{16, 2}, UncertainBits: []int{2}}), []string{
			"sensors[0].status.bad_bits[0]: bit 16 out of range (want 0-15 for the uint16 status word, 0 = least significant)",
			"sensors[0].status.uncertain_bits[0]: bit 2 is also in bad_bits",
		}},
		{"status word a float", append(withStatus(&StatusConfig{Sensor: "f", BadBits: []int{0}}), sensor("f", "holding", 50, "float32", "")), []string{
			"sensors[0].status.sensor: f is a float32: a status word is an integer (or a bool)",
		}},
		{"status word a float16", append(withStatus(&StatusConfig{Sensor: "h", BadBits: []int{0}}), sensor("h", "holding", 50, "float16", "")), []string{
			"sensors[0].status.sensor: h is a float16: a status word is an integer (or a bool)",
		}},
		{"status word of 64 bits", append(withStatus(&StatusConfig{Sensor: "w", BadBits: []int{0}}), sensor("w", "holding", 50, "uint64", "")), []string{
			"sensors[0].status.sensor: w is a uint64: a status word has at most 32 bits",
		}},
		{"status word with a status", chained(), []string{
			"sensors[0].status.sensor: st has a status of its own: a status word is read as it is",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, messages(ValidateSensors(&d, tc.sensors)))
		})
	}
}

// TestSensorWiderThanMaxRegisters: a value is never split across reads, so
// a sensor wider than max_registers would make every poll read more than
// the device accepts; it is refused at validation, naming both.
func TestSensorWiderThanMaxRegisters(t *testing.T) {
	d := validDevice()
	d.MaxRegisters = 1
	relay := sensor("relay", "coil", 0, "bool", "")
	flag := sensor("flag", "holding", 9, "bool", "")
	flag.Bit = ptr(2)
	sensors := []SensorConfig{
		sensor("ch4", "holding", 0, "float32", ""),
		sensor("o2", "input", 4, "uint16", ""),
		sensor("total", "input", 10, "uint64", ""),
		relay, flag,
	}
	want := []string{
		"sensors[0].type: float32 spans 2 registers, more than the device's max_registers (1): raise max_registers or read a narrower type",
		"sensors[2].type: uint64 spans 4 registers, more than the device's max_registers (1): raise max_registers or read a narrower type",
	}
	require.Equal(t, want, messages(ValidateSensors(&d, sensors)))
	_, err := NewPlan(&d, sensors)
	require.Equal(t, want, messages(err), "NewPlan never builds a read wider than max_registers")

	d.MaxRegisters = 2
	require.Equal(t, []string{
		"sensors[2].type: uint64 spans 4 registers, more than the device's max_registers (2): raise max_registers or read a narrower type",
	}, messages(ValidateSensors(&d, sensors)))
	d.MaxRegisters = 4
	p, err := NewPlan(&d, sensors)
	require.NoError(t, err)
	for _, r := range p.Requests {
		if !r.Table.IsBits() {
			require.LessOrEqual(t, int(r.Count), d.MaxRegisters)
		}
	}
	// An out-of-range max_registers is the device's error, not every sensor's.
	d.MaxRegisters = 0
	require.NoError(t, ValidateSensors(&d, sensors))
}

// withStatus is a methane sensor with status st, and a uint16 status word "st".
func withStatus(st *StatusConfig) []SensorConfig {
	ch4 := sensor("ch4", "holding", 0, "float32", "ABCD")
	ch4.Status = st
	return []SensorConfig{ch4, sensor("st", "holding", 40, "uint16", "")}
}

// chained: ch4's status word st has a status word of its own.
func chained() []SensorConfig {
	ss := withStatus(&StatusConfig{Sensor: "st", BadBits: []int{0}})
	ss[1].Status = &StatusConfig{Sensor: "st2", BadBits: []int{0}}
	return append(ss, sensor("st2", "holding", 41, "uint16", ""))
}
