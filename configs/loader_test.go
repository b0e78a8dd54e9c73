package configs

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestConfigErrorsGolden loads each broken config in testdata/errors and
// compares every reported problem, as `canary check` prints it, with the
// golden file beside it.
func TestConfigErrorsGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, warnings, err := LoadSite(f)
			var cerr *Error
			require.True(t, errors.As(err, &cerr), "want config errors, got %v", err)
			var b strings.Builder
			for _, w := range warnings {
				b.WriteString(w.String() + "\n")
			}
			for _, p := range cerr.Problems {
				require.Positive(t, p.Line, "every problem has a line: %s", p)
				b.WriteString(p.String() + "\n")
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(b.String()), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "golden file (run with -update to create)")
			require.Equal(t, string(want), b.String())
		})
	}
}

func TestUnknownKeySuggestion(t *testing.T) {
	fields := yamlFields(typeOf[Sensor]())
	require.Equal(t, `unknown key "adress" (did you mean "address"?)`, unknownKeyMsg("adress", fields))
	require.Contains(t, unknownKeyMsg("zzzzzz", fields), "known keys: ")
}

func TestCheckIDRules(t *testing.T) {
	for _, ok := range []string{"a", "face3-gas", "ch4", "0x", "a_b"} {
		require.NoError(t, CheckID(ok), ok)
	}
	for _, bad := range []string{"", "A", "-a", "a.b", "a/b", "a b", "ä", strings.Repeat("a", 65)} {
		require.Error(t, CheckID(bad), bad)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"512MiB": 512 << 20, "1GiB": 1 << 30, "4096": 4096, "10 KB": 10000, "1.5KiB": 1536, "0B": 0,
	} {
		got, err := ParseByteSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "lots", "-1MiB", "1XB", "MiB"} {
		_, err := ParseByteSize(bad)
		require.Error(t, err, bad)
	}
}

// FuzzParseSite feeds arbitrary bytes to the site loader: it must never
// panic, and whatever it rejects it rejects with located problems.
func FuzzParseSite(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/errors/*.yaml")
	more, _ := filepath.Glob("*.yaml")
	for _, s := range append(seeds, more...) {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("site: a\ndevices: [{id: d, url: 'tcp://x:1', sensors: [{id: s, kind: co}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Site
		_, err := Parse("fuzz.yaml", data, &s)
		var cerr *Error
		if err != nil {
			if !errors.As(err, &cerr) {
				t.Fatalf("non-config error %v", err)
			}
			for _, p := range cerr.Problems {
				if p.Line < 1 || p.Msg == "" {
					t.Fatalf("problem without line or message: %+v", p)
				}
			}
		}
	})
}
