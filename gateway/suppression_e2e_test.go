package gateway_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// suppressSite: a pump's suction pressure, whose low alarm is suppressed
// by design while the pump's running contact (another device, a coil)
// reads 0.
const suppressSite = `
site: e2e
devices:
  - id: pump-pt
    url: tcp://127.0.0.1:0
    unit: 1
    poll: 100ms
    timeout: 80ms
    sensors:
      - id: suction
        kind: pressure
        table: holding
        address: 0
        type: float32
        alarms:
          low: {limit: 0.2, on_delay: 0s, suppress_by: not pump-ctl.running}
  - id: pump-ctl
    url: tcp://127.0.0.1:0
    unit: 2
    poll: 100ms
    timeout: 80ms
    sensors:
      - id: running
        kind: generic
        table: coil
        address: 0
        type: bool
simulation:
  seed: 7
`

// Suppression by design from a site signal, against a real simulator,
// gateway and Mosquitto (SAFETY.md table (b)): the pump stopped, its
// low suction pressure raises no alarm on the broker; started with the
// pressure still low, the alarm annunciates; and a running contact that
// is no longer read suppresses nothing.
func TestSuppressedByDesignFromASiteSignal(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	sim, text := startSim(t, suppressSite)
	site := loadYAML(t, "site.yaml", gatewaySite(text, broker.URL, t.TempDir(), "olga", bcryptHash(t, "s3cret")))
	w := watch(t, broker.URL, "e2e")
	startGateway(t, site)
	const low = "pump-pt.suction.low"
	// Suppressed: the alarm's last suppression event on the broker is
	// "suppress", and it is active (a normal alarm is not listed).
	lastSuppression := func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		last := ""
		for _, ev := range w.events {
			if ev["alarm"] == low && (ev["type"] == "suppress" || ev["type"] == "unsuppress") {
				last = ev["type"].(string)
			}
		}
		return last
	}
	active := func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		on := false
		for _, ev := range w.events {
			if ev["alarm"] == low {
				on = ev["active"] == true
			}
		}
		return on
	}
	suppressed := func() bool { return lastSuppression() == "suppress" && active() }

	require.NoError(t, sim.Hold("pump-ctl", "running", 1))
	require.NoError(t, sim.Hold("pump-pt", "suction", 0.5))
	eventually(t, "readings on MQTT", 10*time.Second, func() bool { return w.hasReadings("pump-pt") && w.hasReadings("pump-ctl") })

	// Stopped: the low pressure that follows is suppressed, not annunciated.
	require.NoError(t, sim.Hold("pump-ctl", "running", 0))
	time.Sleep(500 * time.Millisecond) // five polls of the contact
	require.NoError(t, sim.Hold("pump-pt", "suction", 0.05))
	eventually(t, "the low alarm active and suppressed", 5*time.Second, suppressed)
	time.Sleep(500 * time.Millisecond)
	require.NotContains(t, []string{"unacknowledged", "acknowledged"}, stateOf(w.alarm(low)), "a suppressed alarm on the broker")

	// Started with the pressure still low: annunciated.
	require.NoError(t, sim.Hold("pump-ctl", "running", 1))
	eventually(t, "the low alarm annunciated", 5*time.Second, func() bool { return stateOf(w.alarm(low)) == "unacknowledged" })
	w.publish(t, "canary/v1/e2e/cmd", `{"id":"a1","action":"ack","alarm":"`+low+`","user":"olga"}`)
	eventually(t, "acknowledged", 5*time.Second, func() bool { return stateOf(w.alarm(low)) == "acknowledged" })

	// Stopped again: suppressed. Then the contact cannot be read (its
	// device offline: bad readings, then its comm alarm): in doubt, it
	// suppresses nothing. (A contact not read at all past its comm
	// timeout is the golden test suppression_by_sensor's.)
	require.NoError(t, sim.Hold("pump-ctl", "running", 0))
	eventually(t, "suppressed again", 5*time.Second, suppressed)
	require.NoError(t, sim.SetState("pump-ctl", "offline"))
	eventually(t, "the contact's comm alarm", 10*time.Second, func() bool { return stateOf(w.alarm("pump-ctl.running.comm")) == "unacknowledged" })
	eventually(t, "the low alarm annunciated again", 5*time.Second, func() bool {
		return !suppressed() && stateOf(w.alarm(low)) == "unacknowledged"
	})
}
