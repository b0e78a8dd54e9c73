package recycle

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClasses(t *testing.T) {
	s := New[byte](1 << 20)
	for _, tc := range []struct{ n, cap int }{{0, 1}, {1, 1}, {2, 2}, {3, 4}, {1000, 1024}, {1024, 1024}, {1025, 2048}, {1 << 20, 1 << 20}} {
		b := s.Get(tc.n)
		require.Empty(t, b)
		require.Equal(t, tc.cap, cap(b), "Get(%d)", tc.n)
	}
	// Past the largest class: exact, and never kept.
	big := s.Get(1<<20 + 1)
	require.Equal(t, 1<<20+1, cap(big))
	s.Put(big)
	kept, _ := s.Stats()
	require.Zero(t, kept)
}

func TestReuse(t *testing.T) {
	s := New[string](4096)
	b := append(s.Get(1500), "a", "b")
	s.Put(b)
	kept, reused := s.Stats()
	require.Equal(t, 2048, kept)
	require.Zero(t, reused)
	again := s.Get(1100) // the same class: the kept slice, empty and cleared
	require.Empty(t, again)
	require.Equal(t, &b[:1][0], &again[:1][0])
	require.Equal(t, []string{"", ""}, again[:2], "cleared: it keeps nothing alive")
	kept, reused = s.Stats()
	require.Zero(t, kept)
	require.EqualValues(t, 1, reused)
	require.Equal(t, 512, cap(s.Get(300)), "another class: a new slice")

	s.Put(make([]string, 1500)) // not a power of two: not made by Get
	kept, _ = s.Stats()
	require.Zero(t, kept)
}

func TestBounded(t *testing.T) {
	s := New[byte](1 << 16)
	for range 10 {
		s.Put(make([]byte, 0, 1<<14))
	}
	kept, _ := s.Stats()
	require.Equal(t, 1<<16, kept, "four of ten kept")
	var nilSlices *Slices[int]
	require.Empty(t, nilSlices.Get(5))
	nilSlices.Put(make([]int, 8)) // a nil Slices keeps nothing
}
