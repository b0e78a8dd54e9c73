package configs

import (
	"errors"
	"flag"
	"fmt"
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

func TestLoadOneDocumentPerFile(t *testing.T) {
	const site = "site: a\ndevices: [{id: d, url: 'tcp://x:1', sensors: [{id: s, kind: co, table: holding, address: 0, type: uint16}]}]\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"leading marker", "---\n" + site, ""},
		{"end marker", site + "...\n", ""},
		{"second document", site + "\n---\nsite: b\n", "x.yaml:4: a config file holds one YAML document; found another at line 4"},
		{"empty second document", site + "---\n", "x.yaml:3: a config file holds one YAML document; found another at line 3"},
		{"broken second document", site + "---\nsite: [\n", "x.yaml:5: invalid YAML: did not find expected node content (here, or in the block that starts here)"}, // the end of the file
	} {
		t.Run(c.name, func(t *testing.T) {
			var s Site
			_, err := Parse("x.yaml", []byte(c.yaml), &s)
			if c.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, c.want)
			require.Equal(t, "a", s.Site, "the first document is still checked")
		})
	}
}

// An explicit 0 would silently become the default; a positive value or an
// empty one (the same as leaving the key out) is fine.
func TestLoadRefusesExplicitZero(t *testing.T) {
	const ingest = "mqtt: {client_id: a}\ninfluxdb: {url: 'http://127.0.0.1:8086', bucket: canary/autogen, batch_wait: %s}\n"
	for _, c := range []struct {
		name   string
		target any
		yaml   string
		want   string
	}{
		{"ingest batch_wait", &Ingest{}, fmt.Sprintf(ingest, "0s"), "x.yaml:2: influxdb.batch_wait: must be positive; leave it out for the default 200ms (1s in an ingest config)"},
		{"ingest batch_wait set", &Ingest{}, fmt.Sprintf(ingest, "50ms"), ""},
		{"ingest batch_wait empty", &Ingest{}, fmt.Sprintf(ingest, "~"), ""},
		{"control command_timeout", &Control{}, "command_timeout: 0s\n", "x.yaml:1: command_timeout: must be positive; leave it out for the default 10s"},
		{"control command_timeout set", &Control{}, "command_timeout: 5s\n", ""},
		{"outbox max_bytes 0B", &Site{}, "outbox: {max_bytes: 0B}\n", "x.yaml:1: outbox.max_bytes: must be positive; leave it out for the default 512MiB"},
		{"outbox max_bytes 0MiB", &Site{}, "outbox: {max_bytes: 0MiB}\n", "x.yaml:1: outbox.max_bytes: must be positive; leave it out for the default 512MiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(c.yaml), c.target)
			if _, site := c.target.(*Site); site {
				// Only the line of interest: the rest of the site is missing.
				require.ErrorContains(t, err, c.want)
				return
			}
			if c.want == "" {
				require.NoError(t, err)
			} else {
				require.EqualError(t, err, c.want)
			}
		})
	}
}
