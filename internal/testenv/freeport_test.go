package testenv

import "testing"

// A test that asks for several ports before it listens on any must get
// different ones: the kernel alone may give the same free port twice in a
// row (two simulated devices on one port failed a CI run).
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[int]int{}
	for i := range 500 {
		p := FreePort(t)
		if j, ok := seen[p]; ok {
			t.Fatalf("call %d returned port %d, as call %d did", i, p, j)
		}
		if p <= 0 || p > 65535 {
			t.Fatalf("call %d returned port %d", i, p)
		}
		seen[p] = i
	}
}
