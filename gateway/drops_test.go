package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway"
	"github.com/canary-gw/canary/internal/testenv"
)

// DESIGN: past outbox.max_bytes "the oldest readings go first (counted,
// logged, alarmed)". With the uplink cut, a small outbox fills and drops
// readings: the site's readings-dropped alarm is raised at once (the HTTP
// API shows it while MQTT is down), reaches the broker when the uplink is
// back (alarms are never dropped), and returns once no reading has been
// dropped for the calm period.
func TestDroppedReadingsRaiseAnAlarm(t *testing.T) {
	defer gateway.SetDropCalm(2 * time.Second)()
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	uplink := testenv.StartProxy(t, broker.Addr)
	uplink.Cut()
	_, text := startSim(t, simSite)
	site := loadYAML(t, "site.yaml", gatewaySite(text, "tcp://"+uplink.Addr, t.TempDir(), "olga", bcryptHash(t, "s3cret")))
	// Below what canary check allows (1 MiB), so that two devices at
	// 100 ms fill it within seconds.
	site.Outbox.MaxBytes = 16 << 10
	w := watch(t, broker.URL, "e2e")
	gw := startGateway(t, site)

	id := configs.ReadingsDroppedAlarm
	var st map[string]any
	eventually(t, "the alarm in the HTTP API", 30*time.Second, func() bool {
		st = httpAlarm(t, gw.url, id)
		return st != nil && st["active"] == true
	})
	require.Equal(t, "unacknowledged", st["state"])
	require.EqualValues(t, 2, st["priority"])
	require.Equal(t, "readings_dropped", st["condition"])
	require.Greater(t, st["value"].(float64), 0.0, "the batches dropped")
	require.Contains(t, scrape(gw.url+"/metrics"), "canary_outbox_dropped_readings_total")

	uplink.Restore()
	eventually(t, "the alarm on MQTT", 30*time.Second, func() bool {
		a := w.alarm(id)
		return a != nil && a["active"] == true
	})
	require.Equal(t, "", w.alarm(id)["device"])
	// Delivered again, the outbox empties; no drop for the calm period.
	eventually(t, "the alarm returned", 30*time.Second, func() bool {
		return stateOf(w.alarm(id)) == "returned_unacknowledged"
	})
}

// httpAlarm is one alarm of GET /api/v1/alarms, nil when not listed.
func httpAlarm(t *testing.T, base, id string) map[string]any {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/alarms")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var all []map[string]any
	if json.NewDecoder(strings.NewReader(string(b))).Decode(&all) != nil {
		return nil
	}
	for _, a := range all {
		if a["id"] == id {
			return a
		}
	}
	return nil
}
