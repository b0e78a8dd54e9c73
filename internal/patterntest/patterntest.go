// Package patterntest checks that a hand-written validator accepts exactly
// what a reference regular expression accepts, over inputs built around
// its length bounds. The project's id and user-name validators replaced
// patterns with counted repetitions ({0,63}: one copy of the character
// class per count, compiled at every start) by uncounted ones plus a
// length check; each keeps a test that it still matches the old pattern.
//
// It imports nothing of the project.
package patterntest

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Matches checks that valid accepts exactly the strings counted matches,
// among: each fill repeated to each length, the same after a leading "a",
// the same with a trailing "x", and extra. what names the input in
// failure messages ("user", "id").
func Matches(t *testing.T, what string, counted *regexp.Regexp, valid func(string) bool, lengths []int, fills, extra []string) {
	t.Helper()
	var in []string
	for _, n := range lengths {
		for _, fill := range fills {
			in = append(in, strings.Repeat(fill, n), "a"+strings.Repeat(fill, max(n-1, 0)), strings.Repeat(fill, n)+"x")
		}
	}
	in = append(in, extra...)
	accepted := 0
	for _, s := range in {
		want := counted.MatchString(s)
		require.Equal(t, want, valid(s), "%s %q (%d bytes)", what, s, len(s))
		if want {
			accepted++
		}
	}
	require.Greater(t, accepted, 10, "the inputs exercise accepted %ss too", what)
}
