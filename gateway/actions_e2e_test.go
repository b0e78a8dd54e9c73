package gateway_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// Two interlocks: a valve close confirmed by its limit switch (a valve
// takes seconds to travel: confirm_timeout 10s), and the coal face power
// cut (SAFETY.md table (b): issued within 2 s).
const twoActionSite = `
site: e2e
devices:
  - id: gas-a
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
        alarms:
          high_high: {action: valve-close}
  - id: gas-b
    url: tcp://127.0.0.1:0
    unit: 2
    poll: 100ms
    timeout: 80ms
    sensors:
      - id: ch4
        kind: methane
        table: holding
        address: 0
        type: float32
        alarms:
          high_high: {action: power-cut}
  - id: valve
    url: tcp://127.0.0.1:0
    unit: 3
    poll: 100ms
    timeout: 80ms
    sensors:
      - {id: cmd, kind: generic, table: coil, address: 0, type: bool}
      - {id: closed, kind: generic, table: discrete, address: 4, type: bool}
  - id: face-relay
    url: tcp://127.0.0.1:0
    unit: 4
    poll: 100ms
    timeout: 80ms
    sensors:
      - {id: power_cut, kind: generic, table: coil, address: 0, type: bool}
actions:
  - id: valve-close
    device: valve
    table: coil
    address: 0
    trip: 1
    release: 0
    confirm_timeout: 10s
    readback: {table: discrete, address: 4, trip: 1, release: 0}
  - id: power-cut
    device: face-relay
    table: coil
    address: 0
    trip: 1
    release: 0
simulation:
  seed: 7
`

// A power cut tripped while another action waits for its read-back (a
// valve travelling, confirm_timeout 10 s) is written at once: actions do
// not wait for each other. With one runner for every action it was
// written 9.7 s after the methane crossed the limit, and power-cut.failed
// was raised for a working relay.
func TestPowerCutIsNotHeldUpByASlowValve(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	sim, text := startSim(t, twoActionSite)
	site := loadYAML(t, "site.yaml", gatewaySite(text, broker.URL, t.TempDir(), "olga", bcryptHash(t, "pw")))
	w := watch(t, broker.URL, "e2e")
	startGateway(t, site)
	for _, d := range []string{"gas-a", "gas-b", "valve", "face-relay"} {
		eventually(t, "readings of "+d, 10*time.Second, func() bool { return w.hasReadings(d) })
	}
	require.NoError(t, sim.Hold("valve", "closed", 0)) // the valve is travelling
	require.NoError(t, sim.Hold("gas-a", "ch4", 1.8))
	eventually(t, "valve written", 5*time.Second, func() bool {
		v, _, err := sim.Value("valve", "cmd")
		return err == nil && v == 1
	})
	time.Sleep(300 * time.Millisecond) // the valve's runner waits for its limit switch

	t0 := time.Now()
	require.NoError(t, sim.Hold("gas-b", "ch4", 1.8))
	var cut time.Duration
	eventually(t, "power cut", 20*time.Second, func() bool {
		v, _, err := sim.Value("face-relay", "power_cut")
		if err == nil && v == 1 {
			cut = time.Since(t0)
			return true
		}
		return false
	})
	t.Logf("power cut written %v after the methane reached 1.8 %%vol at gas-b", cut)
	// A poll (100 ms), the evaluation and the write: well inside the 2 s
	// a coal face power cut allows.
	require.Less(t, cut, time.Second, "power cut issued %v after the trip condition, behind the valve", cut)
}
