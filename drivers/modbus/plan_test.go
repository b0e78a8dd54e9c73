package modbus

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// span is a request as "table addr+count [sensor@offset ...]".
func spans(p *Plan) []string {
	var out []string
	for _, r := range p.Requests {
		s := fmt.Sprintf("%s %d+%d", r.Table, r.Addr, r.Count)
		for _, f := range r.Fields {
			s += fmt.Sprintf(" %s@%d", p.Sensors[f.Sensor], f.Offset)
		}
		out = append(out, s)
	}
	return out
}

func TestPlan(t *testing.T) {
	bitSensor := func(id string, addr, bit int) SensorConfig {
		s := sensor(id, "holding", addr, "bool", "")
		s.Bit = ptr(bit)
		return s
	}
	tests := []struct {
		name    string
		edit    func(d *DeviceConfig)
		sensors []SensorConfig
		want    []string
	}{
		{"contiguous merge", nil, []SensorConfig{
			sensor("a", "holding", 0, "float32", ""), sensor("b", "holding", 2, "float32", ""), sensor("c", "holding", 4, "uint16", ""),
		}, []string{"holding 0+5 a@0 b@2 c@4"}},
		{"config order kept in sensors, sorted in requests", nil, []SensorConfig{
			sensor("c", "holding", 4, "uint16", ""), sensor("a", "holding", 0, "float32", ""),
		}, []string{"holding 0+5 a@0 c@4"}},
		{"gap bridged up to max_gap", nil, []SensorConfig{
			sensor("a", "input", 0, "uint16", ""), sensor("b", "input", 9, "uint16", ""),
		}, []string{"input 0+10 a@0 b@9"}},
		{"gap over max_gap splits", nil, []SensorConfig{
			sensor("a", "input", 0, "uint16", ""), sensor("b", "input", 10, "uint16", ""),
		}, []string{"input 0+1 a@0", "input 10+1 b@0"}},
		{"max_gap 0 reads only what is asked", func(d *DeviceConfig) { d.MaxGap = ptr(0) }, []SensorConfig{
			sensor("a", "input", 0, "uint16", ""), sensor("b", "input", 1, "uint16", ""), sensor("c", "input", 3, "uint16", ""),
		}, []string{"input 0+2 a@0 b@1", "input 3+1 c@0"}},
		{"tables never mix", nil, []SensorConfig{
			sensor("a", "holding", 0, "uint16", ""), sensor("b", "input", 0, "uint16", ""),
			sensor("c", "coil", 0, "bool", ""), sensor("d", "discrete", 0, "bool", ""),
		}, []string{"holding 0+1 a@0", "input 0+1 b@0", "coil 0+1 c@0", "discrete 0+1 d@0"}},
		{"125 register cap", func(d *DeviceConfig) { d.MaxGap = ptr(125) }, []SensorConfig{
			sensor("a", "holding", 0, "uint16", ""), sensor("b", "holding", 124, "uint16", ""), sensor("c", "holding", 125, "uint16", ""),
		}, []string{"holding 0+125 a@0 b@124", "holding 125+1 c@0"}},
		{"a value never straddles requests", nil, []SensorConfig{
			sensor("a", "holding", 0, "uint16", ""), sensor("b", "holding", 124, "float32", ""),
		}, []string{"holding 0+1 a@0", "holding 124+2 b@0"}},
		{"device max_registers", func(d *DeviceConfig) { d.MaxRegisters = 4 }, []SensorConfig{
			sensor("a", "holding", 0, "float32", ""), sensor("b", "holding", 2, "float32", ""), sensor("c", "holding", 4, "float32", ""),
		}, []string{"holding 0+4 a@0 b@2", "holding 4+2 c@0"}},
		{"2000 bit cap", func(d *DeviceConfig) { d.MaxGap = ptr(125) }, []SensorConfig{
			sensor("a", "coil", 0, "bool", ""), sensor("b", "coil", 1999, "bool", ""), sensor("c", "coil", 2000, "bool", ""),
		}, []string{"coil 0+2000 a@0 b@1999", "coil 2000+1 c@0"}},
		{"bit gap is max_gap*16", nil, []SensorConfig{
			sensor("a", "discrete", 0, "bool", ""), sensor("b", "discrete", 129, "bool", ""), sensor("c", "discrete", 300, "bool", ""),
		}, []string{"discrete 0+130 a@0 b@129", "discrete 300+1 c@0"}},
		{"device max_bits", func(d *DeviceConfig) { d.MaxBits = 8 }, []SensorConfig{
			sensor("a", "coil", 0, "bool", ""), sensor("b", "coil", 8, "bool", ""),
		}, []string{"coil 0+1 a@0", "coil 8+1 b@0"}},
		{"overlapping sensors share registers", nil, []SensorConfig{
			sensor("f", "holding", 10, "float32", ""), sensor("hi", "holding", 10, "uint16", ""), bitSensor("b3", 11, 3),
		}, []string{"holding 10+2 f@0 hi@0 b3@1"}},
		{"end of address space", nil, []SensorConfig{sensor("z", "input", 65532, "float64", "")}, []string{"input 65532+4 z@0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := validDevice()
			if tc.edit != nil {
				tc.edit(&d)
			}
			p, err := NewPlan(&d, tc.sensors)
			require.NoError(t, err)
			require.Equal(t, tc.want, spans(p))
			for _, r := range p.Requests {
				limit := d.MaxRegisters
				if r.Table.IsBits() {
					limit = d.MaxBits
				}
				require.LessOrEqual(t, int(r.Count), limit)
			}
		})
	}
}

func TestPlanRejectsInvalid(t *testing.T) {
	d := validDevice()
	_, err := NewPlan(&d, []SensorConfig{sensor("a", "holding", 0, "float32", "ABDC")})
	require.EqualError(t, err, `sensors[0].order: unknown byte order "ABDC" for float32 (want ABCD, CDAB, BADC, DCBA)`)
	raw := DeviceConfig{ID: "x", URL: "tcp://h:1"}
	_, err = NewPlan(&raw, nil)
	require.ErrorContains(t, err, "call SetDefaults")
}

func TestSplitAtGaps(t *testing.T) {
	d := validDevice()
	p, err := NewPlan(&d, []SensorConfig{
		sensor("a", "holding", 10, "float32", ""), sensor("b", "holding", 12, "uint16", ""),
		sensor("c", "holding", 15, "uint16", ""), sensor("d", "holding", 11, "uint16", ""),
	})
	require.NoError(t, err)
	require.Equal(t, []string{"holding 10+6 a@0 d@1 b@2 c@5"}, spans(p))
	p.Requests = splitAtGaps(p.Requests[0])
	require.Equal(t, []string{"holding 10+3 a@0 d@1 b@2", "holding 15+1 c@0"}, spans(p))
	require.Len(t, splitAtGaps(p.Requests[0]), 1, "nothing to split without a gap")
}
