package simulator

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
)

// pointShape is where a sensor lives, how wide it is and how its value is
// encoded, resolved once. The encoding is the gateway's own: the codec of
// drivers/modbus, so that whatever `canary check` and `canary run` accept
// the simulator serves, and a value it serves reads back through the
// gateway as the same value (types, byte orders, bits after byte order).
type pointShape struct {
	table   string // holding | input | coil | discrete
	addr    uint16
	width   int  // registers (1 for bits)
	isBit   bool // a coil or a discrete input
	partial bool // a bit or one byte of a register: it shares the register
	// mask is, per register, the wire bits the sensor owns: all of them,
	// one byte (int8, uint8) or one bit (bool with bit:, after byte order).
	mask   [4]uint16
	typ    modbus.Type
	codec  modbus.Codec // the sensor's scale and offset: decoding, strict encoding
	raw    modbus.Codec // the same layout with scale 1, offset 0: the saturating encoder
	scale  float64
	offset float64
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
	if s.Scale == nil {
		return 1
	}
	return *s.Scale
}

// shapeOf resolves and checks a sensor's place in its device and compiles
// its codec. It is as lenient as the simulator always was where the
// gateway has defaults (no table: holding; no type: uint16, or bool on bit
// tables; a bool register without bit: bit 0) and otherwise refuses what
// the driver's codec refuses, with its message.
func shapeOf(s configs.Sensor) (pointShape, error) {
	p := pointShape{table: sensorTable(s), scale: sensorScale(s), offset: s.Offset}
	if s.Address == nil {
		return p, fmt.Errorf("sensor %s: address is required", s.ID)
	}
	if *s.Address < 0 || *s.Address > 0xffff {
		return p, fmt.Errorf("sensor %s: address %d out of range 0..65535", s.ID, *s.Address)
	}
	p.addr = uint16(*s.Address)
	tbl, err := modbus.ParseTable(p.table)
	if err != nil {
		return p, fmt.Errorf("sensor %s: table: %w", s.ID, err)
	}
	typName := sensorType(s)
	p.typ, err = modbus.ParseType(typName)
	if err != nil {
		return p, fmt.Errorf("sensor %s: %w", s.ID, err)
	}
	if tbl.IsBits() {
		if p.typ != modbus.TypeBool {
			return p, fmt.Errorf("sensor %s: table %s holds bits, type must be bool, not %q", s.ID, p.table, typName)
		}
		if p.codec, err = modbus.NewCodec(modbus.TypeBool, "", -1, p.scale, p.offset); err != nil {
			return p, fmt.Errorf("sensor %s: %w", s.ID, err)
		}
		p.raw, _ = modbus.NewCodec(modbus.TypeBool, "", -1, 1, 0)
		p.width, p.isBit, p.mask[0] = 1, true, 1
		return p, nil
	}
	bit := -1
	if s.Bit != nil {
		if *s.Bit < 0 || *s.Bit > 15 {
			return p, fmt.Errorf("sensor %s: bit %d out of range 0..15", s.ID, *s.Bit)
		}
		bit = *s.Bit
	} else if p.typ == modbus.TypeBool {
		bit = 0 // a 0/1 register
	}
	if p.codec, err = modbus.NewCodec(p.typ, s.Order, bit, p.scale, p.offset); err != nil {
		return p, fmt.Errorf("sensor %s: %w", s.ID, err)
	}
	p.raw, _ = modbus.NewCodec(p.typ, s.Order, bit, 1, 0)
	p.width = p.typ.Words()
	if int(p.addr)+p.width-1 > 0xffff {
		return p, fmt.Errorf("sensor %s: %s at %d runs past address 65535", s.ID, typName, p.addr)
	}
	p.partial = p.codec.Partial()
	switch {
	case p.typ == modbus.TypeBool:
		_ = p.raw.EncodeInto(p.mask[:1], 1)
	case p.typ.Bytes() == 1:
		u8, _ := modbus.NewCodec(modbus.TypeUint8, s.Order, -1, 1, 0)
		_ = u8.EncodeInto(p.mask[:1], math.MaxUint8)
	default:
		for i := range p.width {
			p.mask[i] = 0xffff
		}
	}
	return p, nil
}

// encode is the simulator's encoding of an engineering value: raw =
// (value - offset) / scale, rounded and saturated at the type's limits for
// integer types (a uint16 never wraps below 0; NaN is 0), ±Inf beyond
// float32's range, and for bits on when raw is not 0; then laid out by the
// driver's codec. It returns the sensor's registers with only its own bits
// set (a coil or discrete input: {0} or {1}).
func (p *pointShape) encode(v float64) ([]uint16, error) {
	raw := (v - p.offset) / p.scale
	out := make([]uint16, p.width)
	if p.typ == modbus.TypeBool {
		on := raw != 0 && !math.IsNaN(raw)
		if p.isBit {
			if on {
				out[0] = 1
			}
			return out, nil
		}
		b := 0.0
		if on {
			b = 1
		}
		return out, p.raw.EncodeInto(out, b)
	}
	return out, p.raw.EncodeInto(out, saturate(p.typ, raw))
}

// saturate keeps a raw value inside what the type can be encoded with.
func saturate(t modbus.Type, raw float64) float64 {
	switch t {
	case modbus.TypeFloat64:
		return raw
	case modbus.TypeFloat16:
		if math.Abs(raw) >= 65520 && !math.IsInf(raw, 0) && !math.IsNaN(raw) { // past float16's max, 65504
			return math.Inf(int(math.Copysign(1, raw)))
		}
		return raw
	case modbus.TypeFloat32:
		if math.Abs(raw) > math.MaxFloat32 && !math.IsInf(raw, 0) && !math.IsNaN(raw) {
			return math.Inf(int(math.Copysign(1, raw)))
		}
		return raw
	}
	if math.IsNaN(raw) {
		return 0
	}
	lo, hi := intRange(t)
	return math.Min(math.Max(math.Round(raw), lo), hi)
}

// intRange is the inclusive range of an integer type as float64, as the
// driver's codec checks it (the 64-bit upper bounds are the largest float64
// below 2^63 and 2^64).
func intRange(t modbus.Type) (lo, hi float64) {
	switch t {
	case modbus.TypeInt8:
		return math.MinInt8, math.MaxInt8
	case modbus.TypeUint8:
		return 0, math.MaxUint8
	case modbus.TypeInt16:
		return math.MinInt16, math.MaxInt16
	case modbus.TypeUint16:
		return 0, math.MaxUint16
	case modbus.TypeInt32:
		return math.MinInt32, math.MaxInt32
	case modbus.TypeUint32:
		return 0, math.MaxUint32
	case modbus.TypeInt64:
		return math.MinInt64, math.Nextafter(1<<63, 0)
	case modbus.TypeUint64:
		return 0, math.Nextafter(1<<64, 0)
	}
	return 0, 0
}

// decode is the engineering value the gateway reads from the sensor's
// registers (the whole register for a bit or a byte; {0|1} for a coil).
// NaN and ±Inf, which the driver reports as bad readings, come back as
// themselves.
func (p *pointShape) decode(regs []uint16) (float64, error) {
	if p.isBit {
		return p.codec.DecodeBit(regs[0] != 0), nil
	}
	v, err := p.codec.Decode(regs)
	switch {
	case errors.Is(err, modbus.ErrNaN):
		return math.NaN(), nil
	case errors.Is(err, modbus.ErrPosInf):
		return math.Inf(1), nil
	case errors.Is(err, modbus.ErrNegInf):
		return math.Inf(-1), nil
	}
	return v, err
}

// carries reports whether the sensor's encoding carries v: encoded by the
// driver's codec without saturating, and decoded again, it comes back
// within the encoding's resolution. The error names what it can carry.
func (p *pointShape) carries(v float64) error {
	var regs []uint16
	var err error
	if p.isBit {
		var on bool
		if on, err = p.codec.EncodeBit(v); on {
			regs = []uint16{1}
		} else {
			regs = []uint16{0}
		}
	} else {
		regs, err = p.codec.Encode(v)
	}
	if err == nil {
		got, derr := p.decode(regs)
		if derr == nil && p.within(v, got) {
			return nil
		}
	}
	return fmt.Errorf("%v is outside what %s can carry (%s)", v, p.describe(), p.rangeText())
}

// within reports whether got, v encoded and decoded, is v up to the
// encoding's resolution: half a step of an integer type, the rounding of a
// float type.
func (p *pointShape) within(v, got float64) bool {
	switch {
	case math.IsNaN(v):
		return math.IsNaN(got)
	case math.IsInf(v, 0):
		return got == v
	case math.IsNaN(got) || math.IsInf(got, 0):
		return false
	}
	scale := math.Abs(p.scale)
	tol := 1e-9 * (math.Abs(v) + math.Abs(p.offset) + scale)
	rel := math.Abs(v - p.offset)
	switch p.typ {
	case modbus.TypeBool:
	case modbus.TypeFloat16:
		tol += rel*0x1p-11 + scale*0x1p-25
	case modbus.TypeFloat32:
		tol += rel*0x1p-24 + scale*0x1p-150
	case modbus.TypeFloat64:
		tol += rel * 0x1p-52
	default:
		tol += scale / 2
	}
	return math.Abs(got-v) <= tol
}

func (p *pointShape) describe() string {
	s := p.typ.String()
	if p.isBit {
		s = "a " + p.table
	}
	if p.scale != 1 {
		s += ", scale " + fmtNum(p.scale)
	}
	if p.offset != 0 {
		s += ", offset " + fmtNum(p.offset)
	}
	return s
}

// rangeText is the engineering values the encoding carries.
func (p *pointShape) rangeText() string {
	var lo, hi float64
	switch p.typ {
	case modbus.TypeBool:
		return fmt.Sprintf("%s for off or %s for on", fmtNum(p.offset), fmtNum(p.scale+p.offset))
	case modbus.TypeFloat16:
		lo, hi = -65504, 65504
	case modbus.TypeFloat32:
		lo, hi = -math.MaxFloat32, math.MaxFloat32
	case modbus.TypeFloat64:
		lo, hi = -math.MaxFloat64, math.MaxFloat64
	default:
		lo, hi = intRange(p.typ)
	}
	a, b := lo*p.scale+p.offset, hi*p.scale+p.offset
	if a > b {
		a, b = b, a
	}
	return fmt.Sprintf("%s to %s", fmtNum(a), fmtNum(b))
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// encodeValue encodes a sensor's value as the simulator serves it (see
// pointShape.encode).
func encodeValue(s configs.Sensor, v float64) ([]uint16, error) {
	p, err := shapeOf(s)
	if err != nil {
		return nil, err
	}
	return p.encode(v)
}

// decodeValue is the value the gateway reads from a sensor's registers.
func decodeValue(s configs.Sensor, regs []uint16) (float64, error) {
	p, err := shapeOf(s)
	if err != nil {
		return 0, err
	}
	if len(regs) != p.width {
		return 0, fmt.Errorf("sensor %s: %d registers, want %d", s.ID, len(regs), p.width)
	}
	return p.decode(regs)
}
