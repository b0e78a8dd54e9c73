package httpapi

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// validID checks the length apart from its pattern; it must accept
// exactly what the counted pattern it replaced accepted.
func TestValidIDMatchesCountedPattern(t *testing.T) {
	counted := regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,199}$`)
	var in []string
	for _, n := range []int{0, 1, 2, 100, 199, 200, 201, 202, 400} {
		for _, fill := range []string{"a", "z", "9", ".", "_", "-", "A", " ", "é", "/"} {
			in = append(in, strings.Repeat(fill, n), "a"+strings.Repeat(fill, max(n-1, 0)), strings.Repeat(fill, n)+"x")
		}
	}
	in = append(in, "d001.s01.high", "-d", ".d", "d\n", "\nd", "d\x00")
	accepted := 0
	for _, s := range in {
		want := counted.MatchString(s)
		require.Equal(t, want, validID(s), "id %q (%d bytes)", s, len(s))
		if want {
			accepted++
		}
	}
	require.Greater(t, accepted, 10, "the inputs exercise accepted ids too")
}
