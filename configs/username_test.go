package configs

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// validUserName checks the length apart from its pattern; it must accept
// exactly what the counted pattern it replaced accepted.
func TestValidUserNameMatchesCountedPattern(t *testing.T) {
	counted := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)
	var in []string
	for _, n := range []int{0, 1, 2, 32, 63, 64, 65, 66, 200} {
		for _, fill := range []string{"a", "Z", "9", ".", "_", "@", "-", " ", "é", "/"} {
			in = append(in, strings.Repeat(fill, n), "a"+strings.Repeat(fill, max(n-1, 0)), strings.Repeat(fill, n)+"x")
		}
	}
	in = append(in, "op.1@site-a", "-op", ".op", "op\n", "\nop", "op\x00")
	accepted := 0
	for _, s := range in {
		want := counted.MatchString(s)
		require.Equal(t, want, validUserName(s), "user %q (%d bytes)", s, len(s))
		if want {
			accepted++
		}
	}
	require.Greater(t, accepted, 10, "the inputs exercise accepted names too")
}
