package simulator

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/canary-gw/canary/configs"
)

// encoder turns an engineering value into the registers (or one bit, as
// []uint16{0|1}) that a sensor occupies. It is a seam: the register codec of
// drivers/modbus can replace it without touching the rest of the simulator.
type encoder func(s configs.Sensor, v float64) ([]uint16, error)

// pointShape is where a sensor lives and how wide it is, resolved once.
type pointShape struct {
	table string // holding | input | coil | discrete
	addr  uint16
	width int  // registers (1 for bits)
	bit   int  // bit of a 16-bit register, -1 if none
	isBit bool // a coil, a discrete input, or a bit of a register
}

func sensorTable(s configs.Sensor) string {
	if s.Table == "" {
		return "holding"
	}
	return s.Table
}

func sensorType(s configs.Sensor) string {
	if s.Type != "" {
		return s.Type
	}
	switch sensorTable(s) {
	case "coil", "discrete":
		return "bool"
	}
	return "uint16"
}

func sensorScale(s configs.Sensor) float64 {
	if s.Scale == nil || *s.Scale == 0 {
		return 1
	}
	return *s.Scale
}

// typeWidth is the number of 16-bit registers a type occupies.
func typeWidth(typ string) (int, error) {
	switch typ {
	case "int16", "uint16", "bool":
		return 1, nil
	case "int32", "uint32", "float32":
		return 2, nil
	case "int64", "uint64", "float64":
		return 4, nil
	}
	return 0, fmt.Errorf("unknown type %q (want int16 uint16 int32 uint32 int64 uint64 float32 float64 bool)", typ)
}

// shapeOf resolves and checks a sensor's place in its device.
func shapeOf(s configs.Sensor) (pointShape, error) {
	p := pointShape{table: sensorTable(s), bit: -1}
	if s.Address == nil {
		return p, fmt.Errorf("sensor %s: address is required", s.ID)
	}
	if *s.Address < 0 || *s.Address > 0xffff {
		return p, fmt.Errorf("sensor %s: address %d out of range 0..65535", s.ID, *s.Address)
	}
	p.addr = uint16(*s.Address)
	typ := sensorType(s)
	switch p.table {
	case "coil", "discrete":
		if typ != "bool" {
			return p, fmt.Errorf("sensor %s: table %s holds bits, type must be bool, not %q", s.ID, p.table, typ)
		}
		p.width, p.isBit = 1, true
		return p, nil
	case "holding", "input":
	default:
		return p, fmt.Errorf("sensor %s: unknown table %q (want holding, input, coil or discrete)", s.ID, p.table)
	}
	w, err := typeWidth(typ)
	if err != nil {
		return p, fmt.Errorf("sensor %s: %w", s.ID, err)
	}
	if s.Bit != nil {
		if *s.Bit < 0 || *s.Bit > 15 {
			return p, fmt.Errorf("sensor %s: bit %d out of range 0..15", s.ID, *s.Bit)
		}
		p.bit, p.isBit, w = *s.Bit, true, 1
	}
	if int(p.addr)+w-1 > 0xffff {
		return p, fmt.Errorf("sensor %s: %s at %d runs past address 65535", s.ID, typ, p.addr)
	}
	if _, err := permutation(typ, s.Order); err != nil {
		return p, fmt.Errorf("sensor %s: %w", s.ID, err)
	}
	p.width = w
	return p, nil
}

// permutation maps output byte i to big-endian source byte perm[i].
func permutation(typ, order string) ([]int, error) {
	w, err := typeWidth(typ)
	if err != nil {
		return nil, err
	}
	switch w {
	case 1:
		switch order {
		case "", "ABCD", "CDAB", "AB":
			return []int{0, 1}, nil
		case "BADC", "DCBA", "BA":
			return []int{1, 0}, nil
		}
	case 2:
		switch order {
		case "", "ABCD":
			return []int{0, 1, 2, 3}, nil
		case "CDAB":
			return []int{2, 3, 0, 1}, nil
		case "BADC":
			return []int{1, 0, 3, 2}, nil
		case "DCBA":
			return []int{3, 2, 1, 0}, nil
		}
	case 4:
		switch order {
		case "", "ABCDEFGH", "ABCD":
			return []int{0, 1, 2, 3, 4, 5, 6, 7}, nil
		case "GHEFCDAB", "CDAB":
			return []int{6, 7, 4, 5, 2, 3, 0, 1}, nil
		case "BADCFEHG", "BADC":
			return []int{1, 0, 3, 2, 5, 4, 7, 6}, nil
		case "HGFEDCBA", "DCBA":
			return []int{7, 6, 5, 4, 3, 2, 1, 0}, nil
		}
	}
	return nil, fmt.Errorf("unknown byte order %q for %s (want ABCD CDAB BADC DCBA, or ABCDEFGH GHEFCDAB BADCFEHG HGFEDCBA for 64-bit types)", order, typ)
}

// encodeValue is the simulator's own encoder: raw = (value - offset) / scale,
// rounded and saturated for integer types, then laid out in the sensor's
// byte order.
func encodeValue(s configs.Sensor, v float64) ([]uint16, error) {
	p, err := shapeOf(s)
	if err != nil {
		return nil, err
	}
	typ := sensorType(s)
	raw := (v - s.Offset) / sensorScale(s)
	if p.isBit || typ == "bool" {
		if raw != 0 && !math.IsNaN(raw) {
			return []uint16{1}, nil
		}
		return []uint16{0}, nil
	}
	var be [8]byte
	switch typ {
	case "int16":
		binary.BigEndian.PutUint16(be[:], uint16(int16(satInt(raw, math.MinInt16, math.MaxInt16))))
	case "uint16":
		binary.BigEndian.PutUint16(be[:], uint16(satInt(raw, 0, math.MaxUint16)))
	case "int32":
		binary.BigEndian.PutUint32(be[:], uint32(int32(satInt(raw, math.MinInt32, math.MaxInt32))))
	case "uint32":
		binary.BigEndian.PutUint32(be[:], uint32(satInt(raw, 0, math.MaxUint32)))
	case "int64":
		binary.BigEndian.PutUint64(be[:], uint64(satInt(raw, math.MinInt64, math.MaxInt64)))
	case "uint64":
		binary.BigEndian.PutUint64(be[:], satUint64(raw))
	case "float32":
		binary.BigEndian.PutUint32(be[:], math.Float32bits(float32(raw)))
	case "float64":
		binary.BigEndian.PutUint64(be[:], math.Float64bits(raw))
	}
	perm, _ := permutation(typ, s.Order)
	out := make([]uint16, p.width)
	for i := range out {
		out[i] = uint16(be[perm[2*i]])<<8 | uint16(be[perm[2*i+1]])
	}
	return out, nil
}

// decodeValue is the inverse of encodeValue.
func decodeValue(s configs.Sensor, regs []uint16) (float64, error) {
	p, err := shapeOf(s)
	if err != nil {
		return 0, err
	}
	if len(regs) != p.width {
		return 0, fmt.Errorf("sensor %s: %d registers, want %d", s.ID, len(regs), p.width)
	}
	typ := sensorType(s)
	var raw float64
	if p.isBit || typ == "bool" {
		if regs[0] != 0 {
			raw = 1
		}
		return raw*sensorScale(s) + s.Offset, nil
	}
	perm, _ := permutation(typ, s.Order)
	var be [8]byte
	for i, r := range regs {
		be[perm[2*i]] = byte(r >> 8)
		be[perm[2*i+1]] = byte(r)
	}
	switch typ {
	case "int16":
		raw = float64(int16(binary.BigEndian.Uint16(be[:])))
	case "uint16":
		raw = float64(binary.BigEndian.Uint16(be[:]))
	case "int32":
		raw = float64(int32(binary.BigEndian.Uint32(be[:])))
	case "uint32":
		raw = float64(binary.BigEndian.Uint32(be[:]))
	case "int64":
		raw = float64(int64(binary.BigEndian.Uint64(be[:])))
	case "uint64":
		raw = float64(binary.BigEndian.Uint64(be[:]))
	case "float32":
		raw = float64(math.Float32frombits(binary.BigEndian.Uint32(be[:])))
	case "float64":
		raw = math.Float64frombits(binary.BigEndian.Uint64(be[:]))
	}
	return raw*sensorScale(s) + s.Offset, nil
}

func satInt(raw, lo, hi float64) int64 {
	if math.IsNaN(raw) {
		return 0
	}
	r := math.Round(raw)
	if r <= lo {
		return int64(lo)
	}
	if r >= hi {
		if hi >= math.MaxInt64 {
			return math.MaxInt64
		}
		return int64(hi)
	}
	return int64(r)
}

func satUint64(raw float64) uint64 {
	if math.IsNaN(raw) || raw <= 0 {
		return 0
	}
	r := math.Round(raw)
	if r >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(r)
}
