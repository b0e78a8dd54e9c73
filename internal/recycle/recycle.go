// Package recycle keeps slices that their last user is done with, for the
// next one of about the same length. At a steady load the gateway's
// garbage is mostly slices made per poll and dropped a second later (a
// poll's readings, its payload, a record read back from the outbox); the
// garbage collector's work is set by how fast garbage comes, so reusing
// them makes collections rarer (docs/performance-history.md, item 57).
//
// Slices are kept by capacity class (powers of two), so a site whose
// devices have different numbers of sensors reuses each size for its own
// kind, and only up to a bound: a burst's slices go to the garbage
// collector, not into a cache that never shrinks.
package recycle

import (
	"math/bits"
	"sync"
)

// classes: slices of up to 1<<(classes-1) elements are kept.
const classes = 21

// Slices keeps []T for reuse. The zero value keeps nothing; make one with
// New. Safe for concurrent use.
type Slices[T any] struct {
	mu     sync.Mutex
	free   [classes][][]T
	kept   int // elements (sum of the kept slices' capacities)
	max    int // bound on kept
	reused uint64
}

// New returns a Slices that keeps slices holding at most maxElems elements
// in all.
func New[T any](maxElems int) *Slices[T] {
	return &Slices[T]{max: maxElems}
}

// class is the smallest k with 1<<k >= n.
func class(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// Get returns an empty slice with room for n elements: a kept one when one
// of n's class is there, else a new one whose capacity is n rounded up to
// a power of two (so that it can be kept when it comes back).
func (s *Slices[T]) Get(n int) []T {
	k := class(n)
	if s == nil || k >= classes {
		return make([]T, 0, n)
	}
	s.mu.Lock()
	if l := len(s.free[k]); l > 0 {
		b := s.free[k][l-1]
		s.free[k][l-1] = nil
		s.free[k] = s.free[k][:l-1]
		s.kept -= cap(b)
		s.reused++
		s.mu.Unlock()
		return b
	}
	s.mu.Unlock()
	return make([]T, 0, 1<<k)
}

// Put keeps b for a later Get. The caller must be done with it: nothing may
// read or write b (or a slice of it) afterwards. A slice that Get did not
// make (its capacity is not a power of two), or one past the bound, is
// left to the garbage collector.
func (s *Slices[T]) Put(b []T) {
	c := cap(b)
	if s == nil || c == 0 || c&(c-1) != 0 {
		return
	}
	k := bits.Len(uint(c)) - 1
	if k >= classes {
		return
	}
	b = b[:c]
	clear(b) // what the elements point to is not kept alive here
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kept+c > s.max {
		return
	}
	s.free[k] = append(s.free[k], b[:0])
	s.kept += c
}

// Stats returns the elements kept and how many Gets were served from them.
func (s *Slices[T]) Stats() (kept int, reused uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kept, s.reused
}
