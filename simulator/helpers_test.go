package simulator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canary-gw/canary/configs"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// siteFromYAML decodes a site config strictly, as LoadSite does.
func siteFromYAML(t testing.TB, text string) *configs.Site {
	t.Helper()
	p := filepath.Join(t.TempDir(), "site.yaml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	site, err := LoadSite(p)
	require.NoError(t, err)
	return site
}

// startSim builds and runs a simulator until the test ends.
func startSim(t testing.TB, opts Options) *Simulator {
	t.Helper()
	opts.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	s, err := New(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		require.NoError(t, err, "simulator stopped before it was ready")
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("simulator not ready within 10s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("simulator run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("simulator did not stop within 10s")
		}
	})
	return s
}

func hostPort(t testing.TB, s *Simulator, device string) string {
	t.Helper()
	u, err := s.DeviceURL(device)
	require.NoError(t, err)
	_, hp, ok := strings.Cut(u, "://")
	require.True(t, ok, u)
	return hp
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testSite is a small site on ephemeral ports: two units behind one TCP
// address, one on another, a relay with a coil, bits of a register.
const testSite = `
site: test
devices:
  - id: gas1
    url: tcp://127.0.0.1:0
    unit: 1
    sensors:
      - {id: ch4, kind: methane, table: holding, address: 0, type: float32, order: ABCD}
      - {id: ch4_cdab, kind: methane, table: holding, address: 2, type: float32, order: CDAB}
      - {id: co, kind: co, table: input, address: 0, type: uint16, scale: 0.1}
      - {id: o2, kind: oxygen, table: input, address: 1, type: int16, scale: 0.01}
  - id: gas2
    url: tcp://127.0.0.1:0
    unit: 2
    sensors:
      - {id: ch4, kind: methane, table: holding, address: 10, type: float64, order: HGFEDCBA}
      - {id: loop, kind: current, table: input, address: 0, type: uint16, scale: 0.001}
  - id: relay
    url: tcp://127.0.0.1:0
    unit: 9
    sensors:
      - {id: power_cut, kind: generic, table: coil, address: 0, type: bool}
      - {id: breaker, kind: generic, table: discrete, address: 0, type: bool}
      - {id: setpoint, kind: generic, table: holding, address: 0, type: int32, order: CDAB}
      - {id: bit2, kind: generic, table: holding, address: 2, type: bool, bit: 2}
      - {id: bit5, kind: generic, table: holding, address: 2, type: bool, bit: 5}
  - id: loop4
    url: tcp://127.0.0.2:0
    unit: 4
    sensors:
      - {id: pt, kind: current, table: input, address: 0, type: uint16, scale: 0.001}
simulation:
  seed: 42
`

func faults(latency time.Duration, drop, busy, garbage float64) configs.SimFaults {
	return configs.SimFaults{Latency: latency, Drop: drop, Busy: busy, Garbage: garbage}
}
