package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
	"github.com/canary-gw/canary/simulator"
)

// loadSiteText loads a site config from its YAML text.
func loadSiteText(t *testing.T, text string) *configs.Site {
	t.Helper()
	path := filepath.Join(t.TempDir(), "site.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	s, _, err := configs.LoadSite(path)
	require.NoError(t, err)
	return s
}

// runSim runs the site's simulator for the test.
func runSim(t *testing.T, text string) *simulator.Simulator {
	t.Helper()
	sim, err := simulator.New(simulator.Options{Site: loadSiteText(t, text), Logger: zerolog.Nop()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-sim.Ready()
	return sim
}

// powerCutSite: a methane sensor whose high_high trips the face power cut
// (no MQTT broker listens: the gateway keeps its records).
const powerCutSite = `
site: e2e
mqtt: {url: "tcp://127.0.0.1:%d"}
outbox: {dir: %q}
devices:
  - id: face-gas
    url: tcp://127.0.0.1:%d
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
          high_high: {action: power-cut}
  - id: face-relay
    url: tcp://127.0.0.1:%d
    unit: 2
    poll: 100ms
    timeout: 80ms
    sensors:
      - {id: power_cut, kind: generic, table: coil, address: 0, type: bool}
actions:
  - {id: power-cut, device: face-relay, table: coil, address: 0, trip: 1, release: 0}
simulation:
  seed: 7
`

func powerCutSiteText(t *testing.T) string {
	return fmt.Sprintf(powerCutSite, testenv.FreePort(t), t.TempDir(), testenv.FreePort(t), testenv.FreePort(t))
}

// deadActionsSite: n actions on an I/O module (which the test takes
// offline), each confirm_timeout 300ms, and the face power cut on its own
// relay.
func deadActionsSite(t *testing.T, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "site: e2e\nmqtt: {url: \"tcp://127.0.0.1:%d\"}\noutbox: {dir: %q}\ndevices:\n", testenv.FreePort(t), t.TempDir())
	fmt.Fprintf(&b, "  - id: gas-many\n    url: tcp://127.0.0.1:%d\n    unit: 1\n    poll: 200ms\n    timeout: 150ms\n    sensors:\n", testenv.FreePort(t))
	for i := range n {
		fmt.Fprintf(&b, "      - {id: ch%02d, kind: methane, table: holding, address: %d, type: float32, alarms: {high_high: {action: a%02d}}}\n", i, 2*i, i)
	}
	fmt.Fprintf(&b, "  - id: gas-b\n    url: tcp://127.0.0.1:%d\n    unit: 2\n    poll: 200ms\n    timeout: 150ms\n    sensors:\n", testenv.FreePort(t))
	fmt.Fprintf(&b, "      - {id: ch4, kind: methane, table: holding, address: 0, type: float32, alarms: {high_high: {action: power-cut}}}\n")
	fmt.Fprintf(&b, "  - id: io\n    url: tcp://127.0.0.1:%d\n    unit: 3\n    poll: 200ms\n    timeout: 150ms\n    sensors:\n", testenv.FreePort(t))
	for i := range n {
		fmt.Fprintf(&b, "      - {id: c%02d, kind: generic, table: coil, address: %d, type: bool}\n", i, i)
	}
	fmt.Fprintf(&b, "  - id: face-relay\n    url: tcp://127.0.0.1:%d\n    unit: 4\n    poll: 200ms\n    timeout: 150ms\n    sensors:\n", testenv.FreePort(t))
	fmt.Fprintf(&b, "      - {id: power_cut, kind: generic, table: coil, address: 0, type: bool}\nactions:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {id: a%02d, device: io, table: coil, address: %d, trip: 1, release: 0, confirm_timeout: 300ms}\n", i, i)
	}
	fmt.Fprintf(&b, "  - {id: power-cut, device: face-relay, table: coil, address: 0, trip: 1, release: 0}\nsimulation:\n  seed: 7\n")
	return b.String()
}

// Actions failing on an offline I/O module, retried for seconds, do not
// delay a power cut on another module: each action has its own runner and
// at most one request pending. With one runner and a FIFO the power cut
// waited behind every queued retry (each holding the runner for its
// confirm timeout), and once the FIFO was full a trip was refused.
func TestDeadActionsDoNotDelayThePowerCut(t *testing.T) {
	const n = 64
	text := deadActionsSite(t, n)
	sim := runSim(t, text)
	g, err := New(Options{Site: loadSiteText(t, text), Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = g.Close() })
	time.Sleep(1500 * time.Millisecond)

	require.NoError(t, sim.SetState("io", "offline")) // the I/O module dies
	for i := range n {
		require.NoError(t, sim.Hold("gas-many", fmt.Sprintf("ch%02d", i), 1.8))
	}
	time.Sleep(5 * time.Second) // every action failed and is being retried

	t0 := time.Now()
	require.NoError(t, sim.Hold("gas-b", "ch4", 1.8))
	for time.Since(t0) < 20*time.Second {
		if v, _, err := sim.Value("face-relay", "power_cut"); err == nil && v == 1 {
			took := time.Since(t0)
			t.Logf("power cut written after %v", took)
			// A poll (200 ms), the evaluation and the write.
			require.Less(t, took, time.Second, "power cut held up by the failing actions")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("power cut not written 20 s after gas-b reached 1.8 percent by volume")
}

// A trip is never refused, however many requests came before it: an
// action holds one desired state, not a place in a queue. (A 256-entry
// FIFO refused the 257th: "action queue full", P1 "action failed".)
func TestActionRequestIsNeverRefused(t *testing.T) {
	g, err := New(Options{Site: loadSiteText(t, powerCutSiteText(t)), Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	// No runner is running: every request stays pending.
	for i := range 1000 {
		typ := alerting.EvActionTrip
		if i%2 == 1 {
			typ = alerting.EvActionRelease
		}
		g.queueAction(alerting.Event{Type: typ, Action: "power-cut", TS: time.Now()})
	}
	g.queueAction(alerting.Event{Type: alerting.EvActionTrip, Action: "power-cut", TS: time.Now()})
	select {
	case r := <-g.actDone:
		t.Fatalf("action request refused: %+v", r)
	default:
	}
}

// A failed action's retry is not asked for while its runner is busy (or
// has a request waiting): at most one request of an action is pending,
// the running attempt's result schedules the next retry.
func TestRetryLeavesABusyActionAlone(t *testing.T) {
	g, err := New(Options{Site: loadSiteText(t, powerCutSiteText(t)), Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	g.flush(t.Context(), g.eng.Tick(time.Now()))
	g.onBatches(t.Context(), []modbus.Batch{{Device: "face-gas", Unit: 1, At: time.Now(),
		Readings: []modbus.Reading{{Sensor: "ch4", Value: 1.8, Quality: modbus.QualityGood}}}})
	st, _ := g.actionState("power-cut")
	require.True(t, st.Tripped)
	s := g.actSlots["power-cut"]
	r, _, ok := s.start(t.Context()) // the runner takes the trip
	require.True(t, ok)
	require.True(t, r.trip)

	g.actRetry["power-cut"] = time.Now().Add(-time.Second) // an earlier attempt failed
	for range 5 {
		g.retryActions(time.Now())
	}
	require.True(t, s.idle() == false && !s.pending, "a retry was queued behind the running attempt")
	require.True(t, s.finish())

	// Idle, it is retried.
	g.actRetry["power-cut"] = time.Now().Add(-time.Second)
	g.retryActions(time.Now())
	require.True(t, s.pending)
	require.True(t, s.want.trip)
}

// A trip decided while the gateway stops (a poll answered just before
// the stop, drained by the core) is written: the action runners stop
// after the core, once they have done what was pending, and the pollers
// serve their writes until then. Before, the runner stopped as soon as
// the stop began: the trip was published ("tripped") and the relay never
// written.
func TestTripDuringStopIsWritten(t *testing.T) {
	text := powerCutSiteText(t)
	sim := runSim(t, text)
	// The core is held in a commit (AlarmCommitted) while the stop begins
	// and the poll of 1.8 %vol is queued: it evaluates that poll in its
	// drain.
	var armed atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	g, err := New(Options{Site: loadSiteText(t, text), Log: zerolog.Nop(), NoHTTP: true,
		AlarmCommitted: func(time.Time, int) {
			if armed.CompareAndSwap(true, false) {
				close(held)
				<-release
			}
		}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	time.Sleep(1500 * time.Millisecond) // running, polling

	armed.Store(true)
	g.batches <- modbus.Batch{Device: "face-gas", Unit: 1, At: time.Now(), // "high" (1.0): no trip
		Readings: []modbus.Reading{{Sensor: "ch4", Value: 1.2, Quality: modbus.QualityGood}}}
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the core did not commit the high alarm")
	}
	cancel()
	g.batches <- modbus.Batch{Device: "face-gas", Unit: 1, At: time.Now(), // answered just before the stop
		Readings: []modbus.Reading{{Sensor: "ch4", Value: 1.8, Quality: modbus.QualityGood}}}
	time.Sleep(100 * time.Millisecond) // the stop has begun
	close(release)
	t0 := time.Now()
	require.NoError(t, <-done)
	t.Logf("Run returned %v after the core was let go", time.Since(t0))

	st, ok := g.actionState("power-cut")
	require.True(t, ok)
	recs, err := g.ob.Drain(outbox.Alarms, 0, 1<<20)
	require.NoError(t, err)
	trips := 0
	for _, r := range recs {
		if strings.Contains(string(r.Payload), `"type":"action_trip"`) {
			trips++
		}
	}
	require.NoError(t, g.Close())
	v, _, err := sim.Value("face-relay", "power_cut")
	require.NoError(t, err)
	t.Logf("engine tripped=%v, action_trip events in outbox=%d, relay coil=%v", st.Tripped, trips, v)
	require.True(t, st.Tripped)
	require.Equal(t, 1.0, v, "the engine tripped power-cut (and published it) but the relay was never written")
}

// A command handed to a core that has stopped taking commands (its drain
// at shutdown) is answered at once, not when the caller gives up: an HTTP
// server's shutdown does not cancel its requests' contexts, so the stop
// took the whole HTTP grace (5 s) and Run failed.
func TestCommandAfterCoreStoppedIsAnswered(t *testing.T) {
	g, err := New(Options{Site: loadSiteText(t, powerCutSiteText(t)), Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	stopped := make(chan struct{})
	close(stopped)
	g.coreStop = stopped // nobody takes g.cmds
	res := make(chan error, 1)
	go func() {
		res <- g.runCommand(context.Background(), command.Command{Action: command.Ack,
			Alarm: "face-gas.ch4.high_high", User: "olga", Comment: "seen"})
	}()
	select {
	case err := <-res:
		require.ErrorIs(t, err, errStopping)
	case <-time.After(2 * time.Second):
		t.Fatal("command to a stopped core still waiting after 2 s")
	}
}

// A request for the other state cancels the running attempt (a trip never
// waits for a release to be confirmed or time out), whose result is then
// not reported: the newer request's is. One for the same state leaves it
// running.
func TestActionSlotSupersedes(t *testing.T) {
	s := newActSlot()
	s.set(actReq{action: "valve-close", trip: false})
	r, actx, ok := s.start(t.Context())
	require.True(t, ok)
	require.False(t, r.trip)

	s.set(actReq{action: "valve-close", trip: false}) // the same state again
	require.NoError(t, actx.Err())
	s.set(actReq{action: "valve-close", trip: true})
	require.Error(t, actx.Err(), "the release attempt goes on while a trip waits")
	require.False(t, s.finish(), "a superseded attempt's result is reported")

	r, actx, ok = s.start(t.Context())
	require.True(t, ok)
	require.True(t, r.trip)
	require.NoError(t, actx.Err())
	require.True(t, s.finish())
	require.True(t, s.idle())
}
