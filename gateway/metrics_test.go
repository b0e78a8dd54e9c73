package gateway_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// /metrics shows what a site engineer watches: polls and errors per device,
// outbox depth and age, the broker connection, alarms by state and priority.
func TestMetricsShowTheGatewaysState(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	sim, text := startSim(t, simSite)
	site := loadYAML(t, "site.yaml", gatewaySite(text, broker.URL, t.TempDir(), "olga", bcryptHash(t, "pw")))
	gw := startGateway(t, site)
	require.NoError(t, sim.Hold("face-gas", "ch4", 1.2))

	want := []*regexp.Regexp{
		regexp.MustCompile(`canary_device_polls_total\{device="face-gas",site="e2e"\} [1-9]`),
		regexp.MustCompile(`canary_device_online\{device="face-relay",site="e2e"\} 1`),
		regexp.MustCompile(`canary_outbox_records\{lane="readings",site="e2e"\} \d+`),
		regexp.MustCompile(`canary_outbox_oldest_age_seconds\{lane="alarms",site="e2e"\} [0-9.e+-]+`),
		regexp.MustCompile(`canary_mqtt_connected\{site="e2e"\} 1`),
		regexp.MustCompile(`canary_readings_total\{site="e2e"\} [1-9]`),
		regexp.MustCompile(`canary_alarms\{priority="2",site="e2e",state="unacknowledged"\} 1`),
	}
	var body string
	eventually(t, "the gateway's metrics", 15*time.Second, func() bool {
		body = scrape(gw.url + "/metrics")
		for _, re := range want {
			if !re.MatchString(body) {
				return false
			}
		}
		return true
	})
}
