package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/gateway"
	"github.com/canary-gw/canary/gateway/loadtest"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
)

// polledValue is what sensor s of device d always reads (exact in float32).
func polledValue(d, s int) float64 { return 0.25*float64(d) + 0.0625*float64(s) }

// The pollers' readings are reused for later polls once the core has
// evaluated them. Devices polled every 50 ms through the simulator, each
// sensor at a constant value of its own, for two seconds: every poll's
// record in the outbox must carry its own device's sensors and values (a
// slice reused while the core still read it would carry another poll's,
// or none).
func TestPolledReadingsAreReusedOnlyOnceEvaluated(t *testing.T) {
	const devices, sensors = 8, 6
	ports := make([]int, devices)
	for i := range ports {
		ports[i] = testenv.FreePort(t)
	}
	dir := t.TempDir()
	sc := loadtest.Scenario{Site: "reuse", Devices: devices, Sensors: sensors, Poll: 50 * time.Millisecond,
		Timeout: 40 * time.Millisecond, Ports: ports, BrokerURL: "tcp://127.0.0.1:1", OutboxDir: dir}
	text, err := sc.SiteYAML()
	require.NoError(t, err)
	var b strings.Builder
	b.WriteString("  sensors:\n")
	for d := range devices {
		for s := range sensors {
			fmt.Fprintf(&b, "    - {device: %s, sensor: %s, base: %g, noise: 0, drift: 0, ripple: 0, excursion: 0}\n",
				loadtest.DeviceID(d), loadtest.SensorID(s), polledValue(d, s))
		}
	}
	text += b.String()
	_, text = startSim(t, text)
	site := loadYAML(t, "reuse.yaml", text)

	gw, err := gateway.New(gateway.Options{Site: site, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), NoHTTP: true})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = gw.Run(ctx)
	require.True(t, err == nil || ctx.Err() != nil, "run: %v", err)
	require.NoError(t, gw.Close())

	ob, err := outbox.Open(outbox.Options{Dir: dir, Log: zerolog.Nop()})
	require.NoError(t, err)
	defer ob.Close()
	recs, err := ob.Drain(outbox.Readings, 0, 1<<20)
	require.NoError(t, err)
	require.Greater(t, len(recs), devices*10, "about 40 polls a device in 2 s")
	good := 0
	for _, rec := range recs {
		m, err := mqtt.DecodeReadings(rec.Payload)
		require.NoError(t, err)
		var d int
		_, err = fmt.Sscanf(m.Device, "d%03d", &d)
		require.NoError(t, err, "device %q", m.Device)
		require.Len(t, m.Readings, sensors, "%s seq %d", m.Device, m.Seq)
		for s, r := range m.Readings {
			require.Equal(t, loadtest.SensorID(s), r.Sensor, "%s seq %d", m.Device, m.Seq)
			if r.Valid { // a poll that timed out on a busy machine has none
				require.Equal(t, polledValue(d, s), r.Value, "%s seq %d %s", m.Device, m.Seq, r.Sensor)
				good++
			}
		}
	}
	require.Greater(t, good, len(recs)*sensors/2, "most readings valid")
	t.Logf("%d polls of %d devices checked, %d readings with a value", len(recs), devices, good)
}
