package modbus

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/canary-gw/canary/internal/configerr"
)

// Field is one sensor inside a Request.
type Field struct {
	// Sensor indexes Plan.Sensors.
	Sensor int
	// Offset is the sensor's first register (or bit) within the request.
	Offset int
	Codec  Codec
}

// Request is one read: Count registers or bits from Addr in Table.
type Request struct {
	Table  Table
	Addr   uint16
	Count  uint16
	Fields []Field
}

// Plan is a device's sensors compiled into the fewest reads: built once
// from config, used on every poll without further decisions.
type Plan struct {
	// Sensors are the sensor ids, in config order; Field.Sensor and
	// Batch.Readings follow this order.
	Sensors  []string
	Requests []Request
}

// NewPlan validates the sensors against the device (defaults must already
// be set) and merges them into requests: per table, sorted by address,
// neighbours share a read while the read stays within max_registers (or
// max_bits) and the unrequested gap between them is at most max_gap
// registers (max_gap*16 bits on coil and discrete tables).
func NewPlan(d *DeviceConfig, sensors []SensorConfig) (*Plan, error) {
	if err := ValidateSensors(d, sensors); err != nil {
		return nil, err
	}
	if d.MaxRegisters < 1 || d.MaxRegisters > MaxReadRegisters || d.MaxBits < 1 || d.MaxBits > MaxReadBits || d.MaxGap == nil {
		return nil, errors.New("plan: device limits unset, call SetDefaults and Validate first")
	}
	type item struct {
		idx   int
		table Table
		addr  int
		width int
		codec Codec
	}
	items := make([]item, 0, len(sensors))
	p := &Plan{Sensors: make([]string, len(sensors))}
	for i := range sensors {
		s := sensors[i]
		s.SetDefaults()
		p.Sensors[i] = s.ID
		tbl, _ := ParseTable(s.Table)
		typ, _ := ParseType(s.Type)
		bit := -1
		if s.Bit != nil {
			bit = *s.Bit
		}
		order := s.Order
		if tbl.IsBits() {
			order = ""
		}
		c, err := NewCodec(typ, order, bit, *s.Scale, s.Offset)
		if err != nil {
			return nil, configerr.Field(fmt.Sprintf("sensors[%d]", i), "%s", err)
		}
		w := typ.Words()
		if tbl.IsBits() {
			w = 1
		}
		items = append(items, item{idx: i, table: tbl, addr: *s.Address, width: w, codec: c})
	}
	sort.SliceStable(items, func(a, b int) bool {
		if items[a].table != items[b].table {
			return items[a].table < items[b].table
		}
		return items[a].addr < items[b].addr
	})
	var cur *Request
	var end int // one past the last register/bit of cur
	for _, it := range items {
		maxCount, maxGap := d.MaxRegisters, *d.MaxGap
		if it.table.IsBits() {
			maxCount, maxGap = d.MaxBits, *d.MaxGap*defaultMaxGapInBits
		}
		newEnd := max(end, it.addr+it.width)
		if cur == nil || cur.Table != it.table || it.addr-end > maxGap || newEnd-int(cur.Addr) > maxCount {
			p.Requests = append(p.Requests, Request{Table: it.table, Addr: uint16(it.addr)})
			cur = &p.Requests[len(p.Requests)-1]
			end = it.addr + it.width
			newEnd = end
		}
		end = newEnd
		cur.Count = uint16(end - int(cur.Addr))
		cur.Fields = append(cur.Fields, Field{Sensor: it.idx, Offset: it.addr - int(cur.Addr), Codec: it.codec})
	}
	return p, nil
}

// splitAtGaps cuts a request where no sensor covers a register (or bit),
// for devices that answer exception 2 to reads across holes in their map.
func splitAtGaps(r Request) []Request {
	fields := slices.Clone(r.Fields)
	slices.SortStableFunc(fields, func(a, b Field) int { return a.Offset - b.Offset })
	var out []Request
	var end int // one past the last covered offset of the current part
	for _, f := range fields {
		w := f.Codec.Words()
		if r.Table.IsBits() {
			w = 1
		}
		if len(out) == 0 || f.Offset > end {
			out = append(out, Request{Table: r.Table, Addr: r.Addr + uint16(f.Offset)})
			end = f.Offset
		}
		cur := &out[len(out)-1]
		end = max(end, f.Offset+w)
		cur.Count = uint16(end - int(cur.Addr-r.Addr))
		cur.Fields = append(cur.Fields, Field{Sensor: f.Sensor, Offset: f.Offset - int(cur.Addr-r.Addr), Codec: f.Codec})
	}
	return out
}
