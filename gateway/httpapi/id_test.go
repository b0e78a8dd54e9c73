package httpapi

import (
	"regexp"
	"testing"

	"github.com/canary-gw/canary/internal/patterntest"
)

// validID checks the length apart from its pattern; it must accept
// exactly what the counted pattern it replaced accepted.
func TestValidIDMatchesCountedPattern(t *testing.T) {
	patterntest.Matches(t, "id", regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,199}$`), validID,
		[]int{0, 1, 2, 100, 199, 200, 201, 202, 400},
		[]string{"a", "z", "9", ".", "_", "-", "A", " ", "é", "/"},
		[]string{"d001.s01.high", "-d", ".d", "d\n", "\nd", "d\x00"})
}
