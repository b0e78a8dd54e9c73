package gateway_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/gateway"
	"github.com/canary-gw/canary/internal/testenv"
)

// A component that fails (here the HTTP listener) must end Run with an
// error, so that the service manager restarts the gateway, rather than
// leave a process that says "online" and evaluates nothing.
func TestRunReturnsWhenAComponentFails(t *testing.T) {
	text := fmt.Sprintf(`
site: broken
mqtt: {url: "tcp://127.0.0.1:%d"}
outbox: {dir: %q}
devices:
  - id: gas
    url: tcp://127.0.0.1:%d
    sensors:
      - {id: ch4, kind: methane, table: holding, address: 0, type: float32}
`, testenv.FreePort(t), t.TempDir(), testenv.FreePort(t))
	site := loadYAML(t, "site.yaml", text)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close()) // serving on it fails at once
	gw, err := gateway.New(gateway.Options{Site: site, Log: zerolog.New(zerolog.NewTestWriter(t)), HTTPListener: ln})
	require.NoError(t, err)
	t.Cleanup(func() { _ = gw.Close() })
	done := make(chan error, 1)
	go func() { done <- gw.Run(context.Background()) }()
	select {
	case err := <-done:
		require.Error(t, err)
		require.Contains(t, err.Error(), "http")
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its HTTP server failed")
	}
}

// An interlock write that fails because the relay module is offline is
// reported (P1 "<action>.failed") and tried again until it is confirmed
// once the module answers: the power is cut late, never not at all.
func TestFailedInterlockIsRetriedUntilConfirmed(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	sim, text := startSim(t, simSite)
	site := loadYAML(t, "site.yaml", gatewaySite(text, broker.URL, t.TempDir(), "olga", bcryptHash(t, "pw")))
	w := watch(t, broker.URL, "e2e")
	startGateway(t, site)
	eventually(t, "readings", 10*time.Second, func() bool { return w.hasReadings("face-relay") })

	require.NoError(t, sim.SetState("face-relay", "offline"))
	require.NoError(t, sim.Hold("face-gas", "ch4", 1.8))
	eventually(t, "action failed alarm", 15*time.Second, func() bool {
		return strings.HasPrefix(stateOf(w.alarm("power-cut.failed")), "unack")
	})
	v, _, err := sim.Value("face-relay", "power_cut")
	require.NoError(t, err)
	require.Equal(t, 0.0, v, "the relay was offline: nothing was written yet")

	require.NoError(t, sim.SetState("face-relay", "online"))
	eventually(t, "the power cut once the relay answers", 20*time.Second, func() bool {
		v, _, err := sim.Value("face-relay", "power_cut")
		return err == nil && v == 1
	})
}

// readBackSite is simSite with the power cut confirmed on another register:
// the relay's feed contact (a discrete input that reads 0 once the feed is
// cut), found by the sensor configured at it.
func readBackSite(t *testing.T) string {
	t.Helper()
	text := strings.Replace(simSite, `      - id: power_cut
        kind: generic
        table: coil
        address: 0
        type: bool
`, `      - id: power_cut
        kind: generic
        table: coil
        address: 0
        type: bool
      - id: feed
        kind: generic
        table: discrete
        address: 4
        type: bool
`, 1)
	text = strings.Replace(text, "    release: 0\n", "    release: 0\n    confirm_timeout: 2s\n    readback: {table: discrete, address: 4, trip: 0, release: 1}\n", 1)
	require.Contains(t, text, "readback:", "simSite changed: the read-back site must be rebuilt")
	require.Contains(t, text, "id: feed")
	return text
}

// TestInterlockConfirmedByReadBack: a trip is confirmed by the read-back
// register's sensor reading the trip value, and fails (P1 "<action>.failed")
// when it never does. The sensor at the read-back register is looked up
// when the gateway starts, before it lets the devices' configs go.
func TestInterlockConfirmedByReadBack(t *testing.T) {
	for _, c := range []struct {
		name      string
		feed      float64 // what the feed contact reads after the trip
		confirmed bool
	}{{"feed cut", 0, true}, {"feed stays on", 1, false}} {
		t.Run(c.name, func(t *testing.T) {
			broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
			sim, text := startSim(t, readBackSite(t))
			site := loadYAML(t, "site.yaml", gatewaySite(text, broker.URL, t.TempDir(), "olga", bcryptHash(t, "pw")))
			w := watch(t, broker.URL, "e2e")
			gw := startGateway(t, site)
			eventually(t, "readings", 10*time.Second, func() bool { return w.hasReadings("face-relay") })
			require.NoError(t, sim.Hold("face-relay", "feed", c.feed))
			require.NoError(t, sim.Hold("face-gas", "ch4", 1.8))
			result := "ok"
			if !c.confirmed {
				result = "rejected"
			}
			series := fmt.Sprintf(`canary_interlock_actions_total{action="power-cut",op="trip",result=%q,site="e2e"} 1`, result)
			eventually(t, series, 15*time.Second, func() bool {
				return strings.Contains(scrape(gw.url+"/metrics"), series)
			})
			if c.confirmed {
				st := stateOf(w.alarm("power-cut.failed"))
				require.False(t, strings.HasPrefix(st, "unack"), "power-cut.failed is %s after a confirmed trip", st)
			} else {
				eventually(t, "power-cut.failed", 5*time.Second, func() bool {
					return strings.HasPrefix(stateOf(w.alarm("power-cut.failed")), "unack")
				})
			}
			v, _, err := sim.Value("face-relay", "power_cut")
			require.NoError(t, err)
			require.Equal(t, 1.0, v, "the relay was written either way")
		})
	}
}
