package mqtt

import "github.com/canary-gw/canary/internal/recycle"

// The publisher reads every record back from the outbox before it
// publishes it, and a copy of each record's payload, with the flight that
// carries it, was the largest part of the gateway's garbage at a steady
// load (docs/performance-history.md, item 57). Once the broker has
// acknowledged a record, nothing refers to its payload any more: paho
// copied it into its packet before the PUBACK could come, the client of
// the session never resends (no paho resume), and the publisher dropped
// the flight. So the publisher keeps the payload buffers and flights of
// acknowledged records for the next ones it reads back. Records that wait
// for a receipt (release: receipt) may be published again, and those of
// a session that ended may still be in paho's queue: they are left to the
// garbage collector. Only the publisher's goroutine uses a recycler.
type recycler struct {
	payloads *recycle.Slices[byte]
	flights  []*flight
}

const (
	// recycleMaxBytes bounds the payload buffers kept: enough for a window
	// of MaxInflight (256) readings payloads of a few KiB.
	recycleMaxBytes = 1 << 20
	// recycleMaxFlights bounds the flights kept.
	recycleMaxFlights = 1024
)

func newRecycler() recycler { return recycler{payloads: recycle.New[byte](recycleMaxBytes)} }

// payload returns a slice of length n, reusing a kept buffer when one fits.
func (r *recycler) payload(n int) []byte { return r.payloads.Get(n)[:n] }

// flight returns a zeroed flight.
func (r *recycler) flight() *flight {
	if l := len(r.flights); l > 0 {
		f := r.flights[l-1]
		r.flights[l-1] = nil
		r.flights = r.flights[:l-1]
		return f
	}
	return new(flight)
}

// keep takes back a released flight and its payload: the broker
// acknowledged it and no receipt can send it again.
func (r *recycler) keep(f *flight) {
	r.payloads.Put(f.rec.Payload)
	if len(r.flights) < recycleMaxFlights {
		*f = flight{}
		r.flights = append(r.flights, f)
	}
}
