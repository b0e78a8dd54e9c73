package modbus

import (
	"context"
	"fmt"
	"math"
	"slices"
)

type writeReq struct {
	dev    *devState
	sensor int
	value  float64
	done   chan writeResult
}

type writeResult struct {
	readBack float64
	err      error
}

// Write sets a sensor's register or coil to value and reads it back, for
// interlock actions (trip a relay, close a valve). It runs on the link's
// goroutine between polls, so it never interleaves with a poll on a shared
// line; Run must be running. It returns the read-back value, and an error
// when the write fails or the read-back differs from what was written.
// A bit or a byte (int8, uint8) of a register is written as
// read-modify-write of that register (not atomic against the device's own
// logic).
func (p *Poller) Write(ctx context.Context, device, sensor string, value float64) (float64, error) {
	var d *devState
	for _, ds := range p.devs {
		if ds.cfg.ID == device {
			d = ds
		}
	}
	if d == nil {
		return 0, fmt.Errorf("write %s.%s: device not on link %s", device, sensor, p.link.URL())
	}
	si, ok := d.sensorIx[sensor]
	if !ok {
		return 0, fmt.Errorf("write %s.%s: unknown sensor", device, sensor)
	}
	req := writeReq{dev: d, sensor: si, value: value, done: make(chan writeResult, 1)}
	select {
	case p.writes <- req:
	case <-ctx.Done():
		return 0, fmt.Errorf("write %s.%s: %w", device, sensor, ctx.Err())
	}
	select {
	case r := <-req.done:
		if r.err != nil {
			return r.readBack, fmt.Errorf("write %s.%s: %w", device, sensor, r.err)
		}
		return r.readBack, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("write %s.%s: %w", device, sensor, ctx.Err())
	}
}

// write runs on the link goroutine.
func (p *Poller) write(w writeReq) writeResult {
	d := w.dev
	unit := *d.cfg.Unit
	var f Field
	var r Request
	for _, rq := range d.plan.Requests {
		for _, fl := range rq.Fields {
			if fl.Sensor == w.sensor {
				f, r = fl, rq
			}
		}
	}
	addr := r.Addr + uint16(f.Offset)
	switch r.Table {
	case TableCoil:
		b, err := f.Codec.EncodeBit(w.value)
		if err != nil {
			return writeResult{err: err}
		}
		if err := p.link.WriteCoil(unit, addr, b); err != nil {
			return writeResult{err: fmt.Errorf("write coil %d: %w", addr, err)}
		}
		got, err := p.link.ReadBits(unit, TableCoil, addr, 1)
		if err != nil {
			return writeResult{err: fmt.Errorf("read back coil %d: %w", addr, err)}
		}
		v := f.Codec.DecodeBit(got[0])
		if got[0] != b {
			return writeResult{readBack: v, err: fmt.Errorf("read back coil %d: %v, wrote %v", addr, got[0], b)}
		}
		return writeResult{readBack: v}
	case TableHolding:
		n := uint16(f.Codec.Words())
		regs := make([]uint16, n)
		if f.Codec.Partial() {
			// The rest of the register is other data: keep it.
			cur, err := p.link.ReadRegisters(unit, TableHolding, addr, 1)
			if err != nil {
				return writeResult{err: fmt.Errorf("read holding %d before setting part of it: %w", addr, err)}
			}
			copy(regs, cur)
		}
		if err := f.Codec.EncodeInto(regs, w.value); err != nil {
			return writeResult{err: err}
		}
		if err := p.link.WriteRegisters(unit, addr, regs); err != nil {
			return writeResult{err: fmt.Errorf("write holding %d..%d: %w", addr, addr+n-1, err)}
		}
		got, err := p.link.ReadRegisters(unit, TableHolding, addr, n)
		if err != nil {
			return writeResult{err: fmt.Errorf("read back holding %d..%d: %w", addr, addr+n-1, err)}
		}
		v, derr := f.Codec.Decode(got)
		switch derr {
		case ErrNaN:
			v = math.NaN()
		case ErrPosInf:
			v = math.Inf(1)
		case ErrNegInf:
			v = math.Inf(-1)
		}
		if !slices.Equal(got, regs) {
			return writeResult{readBack: v, err: fmt.Errorf("read back holding %d..%d: %04x, wrote %04x", addr, addr+n-1, got, regs)}
		}
		// The registers hold what was written; a non-finite float there
		// was asked for, so it is no failure of the write.
		return writeResult{readBack: v}
	}
	return writeResult{err: fmt.Errorf("table %s is read-only (want holding or coil)", r.Table)}
}
