package simulator

import (
	"encoding/binary"
	"sort"
	"time"
)

// Modbus exception codes the simulator answers.
const (
	excIllegalFunction = 0x01
	excIllegalAddress  = 0x02
	excIllegalValue    = 0x03
	excDeviceFailure   = 0x04
	excBusy            = 0x06
)

// fate is what the framing layer does with an answer.
type fate int

const (
	fateAnswer  fate = iota // send the response
	fateSilent              // send nothing (offline, dropped, unknown unit)
	fateGarbage             // send a broken frame
)

// reply is the outcome of one request.
type reply struct {
	pdu   []byte
	fate  fate
	delay time.Duration // real time to wait before answering
}

func exception(fc byte, code byte) []byte { return []byte{fc | 0x80, code} }

// handle serves one request PDU for a unit behind an endpoint. It never
// panics on malformed input: a short or inconsistent PDU answers exception
// 03 (illegal data value), an unknown function exception 01.
func (s *Simulator) handle(ep *endpoint, unit uint8, pdu []byte) reply {
	dev := ep.units[unit]
	if dev == nil || len(pdu) == 0 {
		return reply{fate: fateSilent}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.clock.now()
	s.requests++
	state, faults := dev.linkAt(t)
	r := reply{delay: faults.Latency}
	if state == StateOffline || (faults.Drop > 0 && dev.rng.Float64() < faults.Drop) {
		return reply{fate: fateSilent}
	}
	fc := pdu[0]
	if faults.Busy > 0 && dev.rng.Float64() < faults.Busy {
		r.pdu = exception(fc, excBusy)
		return r
	}
	if faults.Garbage > 0 && dev.rng.Float64() < faults.Garbage {
		r.fate = fateGarbage
	}
	band := false
	if state == StateFault {
		if !dev.faultBand(faults) {
			r.pdu = exception(fc, excDeviceFailure)
			return r
		}
		band = true
	}
	r.pdu = s.execute(dev, pdu, t, band)
	return r
}

// execute runs one function on a device. Callers hold s.mu.
func (s *Simulator) execute(dev *device, pdu []byte, t time.Duration, band bool) []byte {
	fc := pdu[0]
	body := pdu[1:]
	u16 := func(i int) int { return int(binary.BigEndian.Uint16(body[i:])) }
	switch fc {
	case 0x01, 0x02:
		if len(body) != 4 {
			return exception(fc, excIllegalValue)
		}
		addr, qty := u16(0), u16(2)
		if qty < 1 || qty > 2000 || addr+qty > 0x10000 {
			return exception(fc, excIllegalValue)
		}
		tbl := dev.tables[tableOf(fc)]
		if tbl == nil || !tbl.covers(addr, qty) {
			return exception(fc, excIllegalAddress)
		}
		bits := s.readBits(tbl, addr, qty, t)
		out := make([]byte, 2+(qty+7)/8)
		out[0], out[1] = fc, byte((qty+7)/8)
		for i, b := range bits {
			if b {
				out[2+i/8] |= 1 << (i % 8)
			}
		}
		return out
	case 0x03, 0x04:
		if len(body) != 4 {
			return exception(fc, excIllegalValue)
		}
		addr, qty := u16(0), u16(2)
		if qty < 1 || qty > 125 || addr+qty > 0x10000 {
			return exception(fc, excIllegalValue)
		}
		tbl := dev.tables[tableOf(fc)]
		if tbl == nil || !tbl.covers(addr, qty) {
			return exception(fc, excIllegalAddress)
		}
		regs, ok := s.readRegs(tbl, addr, qty, t, band)
		if !ok {
			return exception(fc, excDeviceFailure)
		}
		out := make([]byte, 2+2*qty)
		out[0], out[1] = fc, byte(2*qty)
		for i, r := range regs {
			binary.BigEndian.PutUint16(out[2+2*i:], r)
		}
		return out
	case 0x05:
		if len(body) != 4 {
			return exception(fc, excIllegalValue)
		}
		addr, v := u16(0), u16(2)
		if v != 0xff00 && v != 0 {
			return exception(fc, excIllegalValue)
		}
		if c := s.writeBits(dev, addr, []bool{v == 0xff00}, t); c != 0 {
			return exception(fc, c)
		}
		return append([]byte(nil), pdu...)
	case 0x06:
		if len(body) != 4 {
			return exception(fc, excIllegalValue)
		}
		if c := s.writeRegs(dev, u16(0), []uint16{uint16(u16(2))}, t); c != 0 {
			return exception(fc, c)
		}
		return append([]byte(nil), pdu...)
	case 0x0f:
		if len(body) < 5 {
			return exception(fc, excIllegalValue)
		}
		addr, qty, n := u16(0), u16(2), int(body[4])
		if qty < 1 || qty > 1968 || n != (qty+7)/8 || len(body) != 5+n || addr+qty > 0x10000 {
			return exception(fc, excIllegalValue)
		}
		bits := make([]bool, qty)
		for i := range bits {
			bits[i] = body[5+i/8]&(1<<(i%8)) != 0
		}
		if c := s.writeBits(dev, addr, bits, t); c != 0 {
			return exception(fc, c)
		}
		return append([]byte{fc}, body[:4]...)
	case 0x10:
		if len(body) < 5 {
			return exception(fc, excIllegalValue)
		}
		addr, qty, n := u16(0), u16(2), int(body[4])
		if qty < 1 || qty > 123 || n != 2*qty || len(body) != 5+n || addr+qty > 0x10000 {
			return exception(fc, excIllegalValue)
		}
		regs := make([]uint16, qty)
		for i := range regs {
			regs[i] = binary.BigEndian.Uint16(body[5+2*i:])
		}
		if c := s.writeRegs(dev, addr, regs, t); c != 0 {
			return exception(fc, c)
		}
		return append([]byte{fc}, body[:4]...)
	}
	return exception(fc, excIllegalFunction)
}

// encodeNow is a sensor's registers at t (only its own bits set), fault
// band applied. It is false when the sensor cannot be served: in the fault
// band a sensor that is not a 4–20 mA loop, or one whose encoding cannot
// carry a fault-band value.
func (s *Simulator) encodeNow(sn *sensor, t time.Duration, band bool) ([]uint16, bool) {
	if band {
		if sn.cfg.Kind != "current" || !sn.bandOK {
			return nil, false
		}
		return sn.band[:sn.shape.width], true
	}
	if sn.written != nil && sn.held == nil {
		return sn.written, true
	}
	v, _ := sn.valueAt(t)
	regs, err := sn.shape.encode(v)
	return regs, err == nil
}

// paintOrder is the order a read lays out the sensors of a table that
// touch [addr, addr+qty): config order, unless sensors share registers.
// Then the values of the physics (and scenarios) come first, whole words
// before bits and bytes, and held and written values after them, the most
// recent last: on a shared register the last one wins on the bits they
// share, so a held status word shows although a bit of it is its own
// sensor, and a held bit shows in a word the physics serves.
func paintOrder(tbl *table, addr, qty int) []*sensor {
	if !tbl.shared {
		return tbl.points
	}
	var out []*sensor
	for _, sn := range tbl.points {
		if a := int(sn.shape.addr); a+sn.shape.width > addr && a < addr+qty {
			out = append(out, sn)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.stamp != b.stamp {
			return a.stamp < b.stamp
		}
		return !a.shape.partial && b.shape.partial
	})
	return out
}

func (s *Simulator) readRegs(tbl *table, addr, qty int, t time.Duration, band bool) ([]uint16, bool) {
	out := make([]uint16, qty)
	for _, sn := range paintOrder(tbl, addr, qty) {
		a := int(sn.shape.addr)
		if a+sn.shape.width <= addr || a >= addr+qty {
			continue
		}
		regs, ok := s.encodeNow(sn, t, band)
		if !ok {
			return nil, false
		}
		for i, r := range regs {
			if j := a + i - addr; j >= 0 && j < qty {
				m := sn.shape.mask[i]
				out[j] = out[j]&^m | r&m
			}
		}
	}
	return out, true
}

func (s *Simulator) readBits(tbl *table, addr, qty int, t time.Duration) []bool {
	out := make([]bool, qty)
	for _, sn := range paintOrder(tbl, addr, qty) {
		a := int(sn.shape.addr)
		if a < addr || a >= addr+qty {
			continue
		}
		regs, ok := s.encodeNow(sn, t, false)
		out[a-addr] = ok && regs[0] != 0
	}
	return out
}

// writeRegs applies a client's register write to the holding table: every
// sensor it touches keeps the written registers until it is released (a
// bit or a byte keeps the whole register and reads its part of it).
func (s *Simulator) writeRegs(dev *device, addr int, regs []uint16, t time.Duration) byte {
	tbl := dev.tables["holding"]
	if tbl == nil || !tbl.covers(addr, len(regs)) {
		return excIllegalAddress
	}
	s.seq++
	for _, sn := range tbl.points {
		a := int(sn.shape.addr)
		if a+sn.shape.width <= addr || a >= addr+len(regs) {
			continue
		}
		cur := s.currentRegs(sn, t)
		for i := range cur {
			if j := a + i - addr; j >= 0 && j < len(regs) {
				cur[i] = regs[j]
			}
		}
		sn.written, sn.held, sn.stamp = cur, nil, s.seq
		s.log.Info().Str("device", dev.id).Str("sensor", sn.cfg.ID).Msg("register written")
	}
	return 0
}

func (s *Simulator) writeBits(dev *device, addr int, bits []bool, t time.Duration) byte {
	tbl := dev.tables["coil"]
	if tbl == nil || !tbl.covers(addr, len(bits)) {
		return excIllegalAddress
	}
	s.seq++
	for _, sn := range tbl.points {
		a := int(sn.shape.addr)
		if a < addr || a >= addr+len(bits) {
			continue
		}
		var v uint16
		if bits[a-addr] {
			v = 1
		}
		sn.written, sn.held, sn.stamp = []uint16{v}, nil, s.seq
		s.log.Info().Str("device", dev.id).Str("sensor", sn.cfg.ID).Bool("value", v == 1).Msg("coil written")
	}
	return 0
}

// currentRegs is a copy of what a sensor's registers read now, the base a
// partial write patches.
func (s *Simulator) currentRegs(sn *sensor, t time.Duration) []uint16 {
	if sn.written != nil {
		return append([]uint16(nil), sn.written...)
	}
	v, _ := sn.valueAt(t)
	regs, err := sn.shape.encode(v)
	if err != nil {
		return make([]uint16, sn.shape.width)
	}
	return regs
}

// broadcast runs a write sent to unit 0 on a serial line on every online
// device of the line. Reads are meaningless as broadcasts and ignored.
func (s *Simulator) broadcast(ep *endpoint, pdu []byte) {
	if len(pdu) == 0 {
		return
	}
	switch pdu[0] {
	case 0x05, 0x06, 0x0f, 0x10:
	default:
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.clock.now()
	for _, d := range ep.devices {
		if state, _ := d.linkAt(t); state == StateOnline {
			s.execute(d, pdu, t, false)
		}
	}
}

// tableOf is the table a read function addresses.
func tableOf(fc byte) string {
	switch fc {
	case 0x01:
		return "coil"
	case 0x02:
		return "discrete"
	case 0x03:
		return "holding"
	}
	return "input"
}
