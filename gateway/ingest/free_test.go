package ingest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The most recently returned batch is handed out first, so at a trickle
// the same batch (and its grown buffers) is reused instead of all in turn.
func TestFreeBatchesReuseMostRecent(t *testing.T) {
	f := newFreeBatches(4)
	require.Len(t, f.ready, 4)
	<-f.ready
	a := f.pop()
	a.body = append(a.body, "reading value=1"...)
	<-f.ready
	b := f.pop()
	f.push(a)
	<-f.ready
	require.Same(t, a, f.pop(), "the batch returned last comes back first")
	f.push(b)
	f.push(a)
	seen := map[*batch]bool{}
	for range 4 {
		select {
		case <-f.ready:
		default:
			t.Fatal("a returned batch has no token")
		}
		seen[f.pop()] = true
	}
	require.Len(t, seen, 4, "every batch is handed out once")
	require.Empty(t, f.ready)
}
