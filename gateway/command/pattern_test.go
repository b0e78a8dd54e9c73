package command

import (
	"regexp"
	"testing"

	"github.com/canary-gw/canary/internal/patterntest"
)

// validUser checks the length apart from its pattern; it must accept
// exactly what the counted pattern it replaced accepted.
func TestValidUserMatchesCountedPattern(t *testing.T) {
	patterntest.Matches(t, "user", regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`), validUser,
		[]int{0, 1, 2, 32, 63, 64, 65, 66, 200},
		[]string{"a", "Z", "9", ".", "_", "@", "-", " ", "é", "/"},
		[]string{"op.1@site-a", "-op", ".op", "op\n", "\nop", "op\x00"})
}
