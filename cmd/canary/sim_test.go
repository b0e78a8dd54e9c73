package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSimCommandServesAndStops(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "site.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
site: cli
devices:
  - id: gas
    url: tcp://127.0.0.1:0
    sensors:
      - {id: ch4, kind: methane, table: holding, address: 0, type: float32}
`), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sim", "-c", cfg, "--control", "127.0.0.1:0", "--seed", "5", "--log-level", "warn"}, &out, &errb)
	}()
	re := regexp.MustCompile(`control api at (http://\S+)`)
	var base string
	deadline := time.Now().Add(10 * time.Second)
	for base == "" {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		}
		require.True(t, time.Now().Before(deadline), "no control api line; stdout %q stderr %q", out.String(), errb.String())
		time.Sleep(10 * time.Millisecond)
	}
	require.Regexp(t, `device gas unit 1 at tcp://127\.0\.0\.1:\d+`, out.String())
	resp, err := http.Get(base + "/devices")
	require.NoError(t, err)
	var devs []map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&devs))
	resp.Body.Close()
	require.Len(t, devs, 1)
	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, errb.String())
	case <-time.After(10 * time.Second):
		t.Fatal("sim did not stop")
	}
}

func TestSimCommandConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "site.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: [{id: s, adress: 0}]}\n"), 0o600))
	var out, errb syncBuffer
	code := run(context.Background(), []string{"sim", "-c", cfg}, &out, &errb)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errb.String(), "adress")
	code = run(context.Background(), []string{"sim"}, &out, &errb)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errb.String(), "-c FILE is required")
}
