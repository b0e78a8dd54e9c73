package modbus

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Type is a register value type.
type Type uint8

// Register value types. TypeUnknown is the zero value so that an unset type
// never decodes as something plausible.
const (
	TypeUnknown Type = iota
	TypeBool
	TypeInt8
	TypeUint8
	TypeInt16
	TypeUint16
	TypeFloat16
	TypeInt32
	TypeUint32
	TypeFloat32
	TypeInt64
	TypeUint64
	TypeFloat64
)

var typeNames = [...]string{
	TypeUnknown: "unknown", TypeBool: "bool", TypeInt8: "int8", TypeUint8: "uint8",
	TypeInt16: "int16", TypeUint16: "uint16", TypeFloat16: "float16",
	TypeInt32: "int32", TypeUint32: "uint32", TypeFloat32: "float32",
	TypeInt64: "int64", TypeUint64: "uint64", TypeFloat64: "float64",
}

// TypeNames lists the config spellings of every type, for messages and docs.
const TypeNames = "int8, uint8, int16, uint16, float16, int32, uint32, float32, int64, uint64, float64, bool"

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", t)
}

// ParseType reads a type's config spelling.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if i != 0 && n == s {
			return Type(i), nil
		}
	}
	return TypeUnknown, fmt.Errorf("unknown type %q (want %s)", s, TypeNames)
}

// Bytes is how many bytes of register data the type occupies (bool: 0,
// because it lives in one bit).
func (t Type) Bytes() int {
	switch t {
	case TypeInt8, TypeUint8:
		return 1
	case TypeInt16, TypeUint16, TypeFloat16:
		return 2
	case TypeInt32, TypeUint32, TypeFloat32:
		return 4
	case TypeInt64, TypeUint64, TypeFloat64:
		return 8
	}
	return 0
}

// Words is how many 16-bit registers the type spans.
func (t Type) Words() int {
	switch b := t.Bytes(); b {
	case 0:
		return 1 // a bit of one register (or one coil)
	case 1:
		return 1
	default:
		return b / 2
	}
}

// OrderChoices returns the byte orders valid for a type, default first.
func OrderChoices(t Type) []string {
	switch t.Bytes() {
	case 1:
		return []string{"A", "B"}
	case 2:
		return []string{"AB", "BA", "ABCD", "CDAB", "BADC", "DCBA"}
	case 4:
		return []string{"ABCD", "CDAB", "BADC", "DCBA"}
	case 8:
		return []string{"ABCDEFGH", "GHEFCDAB", "BADCFEHG", "HGFEDCBA", "ABCD", "CDAB", "BADC", "DCBA"}
	}
	return []string{"AB", "BA"} // bool with bit: the register's byte order
}

// orderHint is the short list shown in messages (aliases left out).
func orderHint(t Type) string {
	switch t.Bytes() {
	case 1:
		return "A (high byte) or B (low byte)"
	case 2:
		return "AB, BA (or ABCD, CDAB = AB; BADC, DCBA = BA)"
	case 4:
		return "ABCD, CDAB, BADC, DCBA"
	case 8:
		return "ABCDEFGH, GHEFCDAB, BADCFEHG, HGFEDCBA (or ABCD, CDAB, BADC, DCBA)"
	}
	return "AB, BA"
}

// Errors a decode reports; the reading's quality is then bad.
var (
	ErrNaN         = errors.New("value is NaN")
	ErrPosInf      = errors.New("value is +Inf")
	ErrNegInf      = errors.New("value is -Inf")
	ErrShort       = errors.New("too few registers for the type")
	ErrOutOfRange  = errors.New("value out of the type's range")
	ErrNotWritable = errors.New("value cannot be encoded")
)

// Codec converts between a sensor's registers (or bit) and its engineering
// value: value = raw * scale + offset. It is compiled once from config; the
// decode path makes no config decisions and does not allocate.
type Codec struct {
	typ    Type
	n      uint8    // bytes of the value
	pos    [8]uint8 // pos[k] = wire position of the k-th most significant byte
	bit    int8     // bit of a 16-bit register for bool, -1 for none
	scale  float64
	offset float64
}

// NewCodec compiles a codec. order "" picks the default (big endian,
// high word first); bit < 0 means no bit; for 8-bit types order is required.
func NewCodec(t Type, order string, bit int, scale, offset float64) (Codec, error) {
	c := Codec{typ: t, bit: -1, scale: scale, offset: offset}
	if t == TypeUnknown || int(t) >= len(typeNames) {
		return c, fmt.Errorf("unknown type (want %s)", TypeNames)
	}
	if math.IsNaN(scale) || math.IsInf(scale, 0) || scale == 0 {
		return c, fmt.Errorf("scale %v: want a finite number other than 0", scale)
	}
	if math.IsNaN(offset) || math.IsInf(offset, 0) {
		return c, fmt.Errorf("offset %v: want a finite number", offset)
	}
	if t == TypeBool {
		if bit >= 16 {
			return c, fmt.Errorf("bit %d out of range (want 0-15)", bit)
		}
		if bit >= 0 {
			c.bit = int8(bit)
			c.n = 2
			return c, c.setOrder(order, 2)
		}
		return c, nil
	}
	if bit >= 0 {
		return c, fmt.Errorf("bit is only for type bool on holding or input registers, not %s", t)
	}
	c.n = uint8(t.Bytes())
	return c, c.setOrder(order, int(c.n))
}

func (c *Codec) setOrder(order string, n int) error {
	if order == "" {
		if n == 1 {
			return fmt.Errorf("type %s needs order A (high byte) or B (low byte)", c.typ)
		}
		order = "ABCDEFGH"[:n]
	}
	o := strings.ToUpper(order)
	valid := false
	choices := OrderChoices(c.typ)
	if c.typ == TypeBool {
		choices = []string{"AB", "BA", "ABCD", "CDAB", "BADC", "DCBA"}
	}
	for _, ch := range choices {
		if o == ch {
			valid = true
		}
	}
	if !valid {
		return fmt.Errorf("unknown byte order %q for %s (want %s)", order, c.typ, orderHint(c.typ))
	}
	switch {
	case n == 1:
		c.pos[0] = o[0] - 'A'
		return nil
	case len(o) == 4 && n == 2:
		// A 32-bit order on a 16-bit value keeps only its byte swap, as
		// Telegraf does for 16-bit fields of a request.
		if o == "BADC" || o == "DCBA" {
			o = "BA"
		} else {
			o = "AB"
		}
	case len(o) == 4 && n == 8:
		o = map[string]string{"ABCD": "ABCDEFGH", "CDAB": "GHEFCDAB", "BADC": "BADCFEHG", "DCBA": "HGFEDCBA"}[o]
	}
	for wire := 0; wire < n; wire++ {
		c.pos[o[wire]-'A'] = uint8(wire)
	}
	return nil
}

// Type returns the codec's type.
func (c Codec) Type() Type { return c.typ }

// Words is how many registers the value spans.
func (c Codec) Words() int { return c.typ.Words() }

// IsBit reports whether the value is one bit (a coil, a discrete input or a
// bit of a register).
func (c Codec) IsBit() bool { return c.typ == TypeBool }

// Partial reports whether the value fills only part of its register (a bit
// or one byte), so that writing it must keep the rest.
func (c Codec) Partial() bool { return c.typ == TypeBool || c.typ.Bytes() == 1 }

// raw assembles the value's bits, most significant byte first.
func (c Codec) raw(regs []uint16) uint64 {
	var v uint64
	for k := uint8(0); k < c.n; k++ {
		p := c.pos[k]
		v = v<<8 | uint64(regs[p>>1]>>(8*(1-(p&1)))&0xff)
	}
	return v
}

// Decode turns registers (starting at the sensor's address) into the
// engineering value. NaN, ±Inf and short input are errors, never numbers.
func (c Codec) Decode(regs []uint16) (float64, error) {
	if len(regs) < c.typ.Words() {
		return 0, ErrShort
	}
	var x float64
	if c.typ == TypeBool {
		if c.bit < 0 {
			return 0, ErrShort
		}
		r := uint16(c.raw(regs))
		return c.scaleBool(r>>uint(c.bit)&1 == 1), nil
	}
	r := c.raw(regs)
	switch c.typ {
	case TypeInt8:
		x = float64(int8(r))
	case TypeUint8, TypeUint16, TypeUint32:
		x = float64(r)
	case TypeInt16:
		x = float64(int16(r))
	case TypeInt32:
		x = float64(int32(r))
	case TypeInt64:
		x = float64(int64(r))
	case TypeUint64:
		x = float64(r)
	case TypeFloat16:
		x = float16ToFloat64(uint16(r))
	case TypeFloat32:
		x = float64(math.Float32frombits(uint32(r)))
	case TypeFloat64:
		x = math.Float64frombits(r)
	}
	return c.finite(x*c.scale + c.offset)
}

// DecodeBit turns a coil or discrete input into the engineering value
// (0 or 1 before scale and offset).
func (c Codec) DecodeBit(b bool) float64 { return c.scaleBool(b) }

func (c Codec) scaleBool(b bool) float64 {
	if b {
		return c.scale + c.offset
	}
	return c.offset
}

func (c Codec) finite(v float64) (float64, error) {
	switch {
	case math.IsNaN(v):
		return 0, ErrNaN
	case math.IsInf(v, 1):
		return 0, ErrPosInf
	case math.IsInf(v, -1):
		return 0, ErrNegInf
	}
	return v, nil
}

// Encode turns an engineering value into registers, the inverse of Decode:
// raw = (value - offset) / scale, rounded to the nearest integer for integer
// types. Floating types accept NaN and ±Inf (a simulator may want to send
// them); integer types reject values outside their range.
func (c Codec) Encode(v float64) ([]uint16, error) {
	regs := make([]uint16, c.typ.Words())
	return regs, c.EncodeInto(regs, v)
}

// EncodeInto is Encode into a caller's buffer of at least Words registers.
// For a bit of a register only that bit of regs[0] is changed, so a
// simulator can pack several bits into one register.
func (c Codec) EncodeInto(regs []uint16, v float64) error {
	if len(regs) < c.typ.Words() {
		return ErrShort
	}
	if c.typ == TypeBool {
		b, err := c.EncodeBit(v)
		if err != nil {
			return err
		}
		if c.bit < 0 {
			return fmt.Errorf("%w: a bool without bit lives in a coil or discrete input, use EncodeBit", ErrNotWritable)
		}
		// The bit is defined on the register value after byte order.
		r := uint16(c.raw(regs))
		if b {
			r |= 1 << uint(c.bit)
		} else {
			r &^= 1 << uint(c.bit)
		}
		c.put(regs, uint64(r))
		return nil
	}
	raw := (v - c.offset) / c.scale
	var bits uint64
	switch c.typ {
	case TypeFloat16:
		if !math.IsNaN(raw) && !math.IsInf(raw, 0) && math.Abs(raw) >= 65520 { // rounds past the max 65504
			return fmt.Errorf("%w: %v for float16", ErrOutOfRange, v)
		}
		bits = uint64(float64ToFloat16(raw))
	case TypeFloat32:
		if !math.IsNaN(raw) && !math.IsInf(raw, 0) && math.Abs(raw) > math.MaxFloat32 {
			return fmt.Errorf("%w: %v for float32", ErrOutOfRange, v)
		}
		bits = uint64(math.Float32bits(float32(raw)))
	case TypeFloat64:
		bits = math.Float64bits(raw)
	default:
		if math.IsNaN(raw) || math.IsInf(raw, 0) {
			return fmt.Errorf("%w: %v for %s", ErrNotWritable, v, c.typ)
		}
		r := math.Round(raw)
		lo, hi := intRange(c.typ)
		if r < lo || r > hi {
			return fmt.Errorf("%w: %v for %s", ErrOutOfRange, v, c.typ)
		}
		if c.typ == TypeUint64 {
			bits = uint64(r)
		} else {
			bits = uint64(int64(r))
		}
	}
	c.put(regs, bits)
	return nil
}

// EncodeBit turns an engineering value into a coil state: raw 1 is true,
// raw 0 false, anything else an error.
func (c Codec) EncodeBit(v float64) (bool, error) {
	switch raw := (v - c.offset) / c.scale; raw {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("%w: %v is neither %v (off) nor %v (on)", ErrOutOfRange, v, c.offset, c.scale+c.offset)
}

// put writes the value's bytes to their wire positions.
func (c Codec) put(regs []uint16, bits uint64) {
	for k := int(c.n) - 1; k >= 0; k-- {
		p := c.pos[k]
		shift := 8 * (1 - (p & 1))
		regs[p>>1] = regs[p>>1]&^(0xff<<shift) | uint16(bits&0xff)<<shift
		bits >>= 8
	}
}

// intRange is the inclusive range of an integer type as float64. The
// 64-bit upper bounds are the largest float64 below 2^63 and 2^64, since
// those powers themselves do not fit.
func intRange(t Type) (lo, hi float64) {
	switch t {
	case TypeInt8:
		return math.MinInt8, math.MaxInt8
	case TypeUint8:
		return 0, math.MaxUint8
	case TypeInt16:
		return math.MinInt16, math.MaxInt16
	case TypeUint16:
		return 0, math.MaxUint16
	case TypeInt32:
		return math.MinInt32, math.MaxInt32
	case TypeUint32:
		return 0, math.MaxUint32
	case TypeInt64:
		return math.MinInt64, math.Nextafter(1<<63, 0)
	case TypeUint64:
		return 0, math.Nextafter(1<<64, 0)
	}
	return 0, 0
}

// float16ToFloat64 decodes an IEEE 754 binary16 value.
func float16ToFloat64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * frac * math.Ldexp(1, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}

// float64ToFloat16 encodes to IEEE 754 binary16, rounding to nearest even.
func float64ToFloat16(f float64) uint16 {
	var sign uint16
	if math.Signbit(f) {
		sign = 0x8000
		f = -f
	}
	switch {
	case math.IsNaN(f):
		return 0x7e00
	case math.IsInf(f, 0) || f >= 65520: // 65520 rounds up past the max 65504
		return sign | 0x7c00
	case f == 0:
		return sign
	}
	frac, exp := math.Frexp(f) // f = frac * 2^exp, frac in [0.5, 1)
	e := exp - 1 + 15
	if e <= 0 { // subnormal: multiples of 2^-24
		m := math.RoundToEven(f * (1 << 24))
		return sign | uint16(m) // m may reach 0x400, which is the smallest normal
	}
	m := math.RoundToEven((frac*2 - 1) * 1024)
	if m == 1024 {
		m = 0
		e++
	}
	if e >= 0x1f {
		return sign | 0x7c00
	}
	return sign | uint16(e)<<10 | uint16(m)
}
