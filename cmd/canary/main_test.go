package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// canary runs the CLI in-process and returns its exit code and output.
func canary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckReportsEveryErrorWithExit2(t *testing.T) {
	f := filepath.Join("..", "..", "configs", "testdata", "errors", "typo-and-types.yaml")
	code, _, stderr := canary(t, "check", "-c", f)
	require.Equal(t, exitUsage, code)
	golden, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".golden")
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(golden)), "\n") {
		// The golden file names the file relative to configs/.
		rel := strings.TrimPrefix(line, "testdata/errors/typo-and-types.yaml")
		require.Contains(t, stderr, f+rel)
	}
}

func TestCheckMissingFileAndFlag(t *testing.T) {
	code, _, stderr := canary(t, "check")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "-c FILE is required")

	code, _, stderr = canary(t, "check", "-c", filepath.Join(t.TempDir(), "nope.yaml"))
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "no such file")

	// A -c that cannot be read is a usage error for every command.
	for _, cmd := range []string{"check", "run", "ingest", "control", "sim"} {
		code, _, stderr = canary(t, cmd, "-c", t.TempDir())
		require.Equal(t, exitUsage, code, "%s: %s", cmd, stderr)
		require.Contains(t, stderr, "is a directory", cmd)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	code, _, _ := canary(t, "no-such-command")
	require.Equal(t, exitUsage, code)
	code, _, _ = canary(t, "check", "--no-such-flag")
	require.Equal(t, exitUsage, code)
	code, _, stderr := canary(t, "--log-format", "xml", "check", "-c", "x")
	require.Equal(t, exitUsage, code, stderr)
	require.Contains(t, stderr, `--log-format "xml"`)
	code, _, stderr = canary(t, "--log-level", "loud", "check", "-c", "x")
	require.Equal(t, exitUsage, code, stderr)
	require.Contains(t, stderr, `--log-level "loud"`)
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := canary(t, "--version")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "canary version")
	code, out, _ = canary(t, "--help")
	require.Equal(t, exitOK, code)
	for _, sub := range []string{"check", "read", "sim", "run", "ingest", "demo", "bench"} {
		require.Contains(t, out, sub)
	}
}
