package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// statusSite: a methane detector whose status word (bit 0 fault, bit 1
// warm-up) is read in the same poll.
const statusSite = `
site: e2e
devices:
  - id: face-gas
    url: tcp://127.0.0.1:0
    unit: 1
    poll: 100ms
    timeout: 80ms
    sensors:
      - id: ch4
        kind: methane
        table: holding
        address: 0
        type: float32
        status: {sensor: ch4-status, bad_bits: [0], uncertain_bits: [1]}
      - id: ch4-status
        kind: generic
        table: holding
        address: 2
        type: uint16
simulation:
  seed: 7
`

// End to end through the simulator: the detector raises its fault bit
// while reading 0 — the sensor's bad alarm on MQTT, the reading bad, and no
// comm alarm (the device answers); the bit cleared, the alarm returns.
func TestDetectorFaultBitRaisesTheBadAlarm(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	sim, text := startSim(t, statusSite)
	site := loadYAML(t, "site.yaml", gatewaySite(text, broker.URL, t.TempDir(), "olga", bcryptHash(t, "s3cret")))
	w := watch(t, broker.URL, "e2e")
	startGateway(t, site)
	eventually(t, "readings on MQTT", 10*time.Second, func() bool { return w.hasReadings("face-gas") })

	require.NoError(t, sim.Hold("face-gas", "ch4", 0))
	require.NoError(t, sim.Hold("face-gas", "ch4-status", 1)) // fault
	eventually(t, "the bad alarm", 5*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.bad")) == "unacknowledged" })
	eventually(t, "a bad reading", 5*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return strings.Contains(string(w.retained["canary/v1/e2e/readings/face-gas"]), `{"sensor":"ch4","kind":"methane","value":null,"unit":"%vol","quality":"bad"}`)
	})
	// Past the comm timeout (3 polls of 100 ms) and then some.
	require.Never(t, func() bool { return w.alarm("face-gas.ch4.comm") != nil }, time.Second, 20*time.Millisecond,
		"a comm alarm: the device answered, it is not a loss of communication")

	require.NoError(t, sim.Hold("face-gas", "ch4-status", 0))
	eventually(t, "the bad alarm returned", 5*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.bad")) == "returned_unacknowledged" })
}
