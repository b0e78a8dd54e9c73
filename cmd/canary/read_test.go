package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/drivers/modbus/modbustest"
)

func runCanary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func readUnit() modbustest.Unit {
	h := make([]uint16, 111)
	copy(h, []uint16{0x4049, 0x0FDB, 0xFFFB, 0x7FC0, 0x0000})
	h[108], h[109], h[110] = 0x022B, 0x0000, 0x0064 // the spec's FC03 example
	return modbustest.Unit{Holding: h, Input: []uint16{0x0190}, Coils: []int{1, 0, 1}}
}

func TestReadTCP(t *testing.T) {
	srv := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: readUnit()}})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"float32 json", []string{"--addr", "0", "--type", "float32", "--order", "ABCD", "--json"}, "[3.1415927]\n"},
		{"spec fc03 example", []string{"--addr", "108", "--count", "3", "--json"}, "[555,0,100]\n"},
		{"int16 scaled", []string{"--addr", "2", "--type", "int16", "--scale", "0.5", "--offset", "1", "--json"}, "[-1.5]\n"},
		{"input scaled", []string{"--table", "input", "--addr", "0", "--scale", "0.01", "--json"}, "[4]\n"},
		{"coils are booleans", []string{"--table", "coil", "--addr", "0", "--count", "3", "--json"}, "[true,false,true]\n"},
		{"bit of a register", []string{"--addr", "2", "--type", "bool", "--bit", "15", "--json"}, "[true]\n"},
		{"probe json", []string{"--addr", "0", "--type", "float32", "--probe", "--json"},
			`{"ABCD":[3.1415927],"BADC":[789936.94],"CDAB":[2.1619829e-29],"DCBA":[-4.033146e+16]}` + "\n"},
		{"table", []string{"--addr", "0", "--type", "float32"},
			"TABLE    ADDR  TYPE          VALUE\nholding  0     float32 ABCD  3.1415927\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCanary(t, append([]string{"read", srv.URL}, tc.args...)...)
			require.Equal(t, 0, code, errOut)
			require.Equal(t, tc.want, out)
		})
	}

	t.Run("probe table", func(t *testing.T) {
		code, out, errOut := runCanary(t, "read", srv.URL, "--addr", "0", "--type", "float32", "--probe")
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, "ADDR  RAW        ABCD       CDAB           BADC       DCBA\n0     4049 0FDB  3.1415927  2.1619829e-29  789936.94  -4.033146e+16\n")
	})
}

func TestReadErrors(t *testing.T) {
	srv := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{1: readUnit()}})
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no url", []string{"read", "--addr", "0"}, 2, "read: want exactly one URL, got 0 arguments"},
		{"no addr", []string{"read", srv.URL}, 2, "read: --addr is required"},
		{"bad order", []string{"read", srv.URL, "--addr", "0", "--type", "float32", "--order", "ABDC"}, 2,
			`read: --order: unknown byte order "ABDC" for float32 (want ABCD, CDAB, BADC, DCBA)`},
		{"bad type", []string{"read", srv.URL, "--addr", "0", "--type", "float"}, 2, `read: --type: unknown type "float"`},
		{"bad scheme", []string{"read", "udp://h:1", "--addr", "0"}, 2, `read: URL: unknown scheme "udp"`},
		{"rtu unit 0", []string{"read", "rtu:///dev/null", "--unit", "0", "--addr", "0"}, 2, "read: --unit: 0 out of range (want 1-247 for rtu://)"},
		{"bad parity", []string{"read", "rtu:///dev/null", "--parity", "mark", "--addr", "0"}, 2, `read: --parity: unknown parity "mark" (want none, even, odd)`},
		{"unknown flag", []string{"read", srv.URL, "--adr", "0"}, 2, "unknown flag: --adr"},
		{"zero timeout", []string{"read", srv.URL, "--addr", "0", "--timeout", "0"}, 2, "read: --timeout 0s must be positive"},
		{"negative timeout", []string{"read", srv.URL, "--addr", "0", "--timeout", "-1s"}, 2, "read: --timeout -1s must be positive"},
		{"exception", []string{"read", srv.URL, "--addr", "200"}, 1, "modbus exception 2 (illegal data address)"},
		{"dead unit", []string{"read", srv.URL, "--unit", "9", "--addr", "0", "--timeout", "100ms"}, 1, "no response within timeout"},
		{"nan", []string{"read", srv.URL, "--addr", "3", "--type", "float32", "--json"}, 1, "bad values: holding 3: nan"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCanary(t, append(tc.args, "--log-level", "error")...)
			require.Equal(t, tc.code, code, errOut)
			require.Contains(t, errOut, tc.msg)
		})
	}
	t.Run("nan is null in json", func(t *testing.T) {
		code, out, _ := runCanary(t, "read", srv.URL, "--addr", "0", "--count", "2", "--type", "float32", "--json")
		require.Equal(t, 1, code)
		var vals []any
		require.NoError(t, json.Unmarshal([]byte(out), &vals))
		require.Equal(t, []any{3.1415927, nil}, vals)
	})
}

func TestReadRTU(t *testing.T) {
	slaveEnd, masterEnd := modbustest.PtyPair(t)
	modbustest.StartRTU(t, slaveEnd, 9600, modbustest.Spec{Units: map[int]modbustest.Unit{5: readUnit()}})
	code, out, errOut := runCanary(t, "read", "rtu://"+masterEnd, "--baud", "9600", "--parity", "none", "--stop-bits", "1",
		"--unit", "5", "--addr", "108", "--count", "3", "--json")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "[555,0,100]\n", out)
}

// TestReadLatePoll: a poll abandoned as late (the process stalled past the
// request's timeout) has readings of unknown quality, no reason and no
// error; read says what happened instead of "bad values: holding 0: ".
func TestReadLatePoll(t *testing.T) {
	f := &readFlags{unit: 1, table: "holding", scale: 1}
	sensors := []modbus.SensorConfig{{ID: "v0", Table: "holding", Address: new(int), Type: "uint16"}}
	late := modbus.Batch{Device: "read", Unit: 1, Late: true, Readings: []modbus.Reading{{Sensor: "v0", Quality: modbus.QualityUnknown}}}
	for _, asJSON := range []bool{false, true} {
		f.asJSON = asJSON
		var out strings.Builder
		err := printRead(&out, late, sensors, f, modbus.TypeUint16, "tcp://127.0.0.1:5020")
		require.EqualError(t, err, "read tcp://127.0.0.1:5020 unit 1: timed out (the process was stalled past the timeout; nothing is known about the device, run read again)")
		require.Empty(t, out.String(), "no values from an abandoned poll")
	}

	// A reading that is not good never prints an empty reason.
	f.asJSON = false
	unread := modbus.Batch{Readings: []modbus.Reading{{Sensor: "v0", Quality: modbus.QualityUnknown}}}
	var out strings.Builder
	err := printRead(&out, unread, sensors, f, modbus.TypeUint16, "tcp://127.0.0.1:5020")
	require.EqualError(t, err, "read tcp://127.0.0.1:5020 unit 1: bad values: holding 0: unknown")
	require.Contains(t, out.String(), "holding  0     uint16  unknown\n")
}
