package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// One-shot shelving and out of service reach the engine from outside, over
// MQTT and HTTP, as SAFETY.md's table (b) asks: a one-shot shelve lasts
// until the alarm returns; out of service is the engineer's (an operator is
// refused on both ways in), needs a reason and, on an interlock input, an
// expiry; the point's bypassed alarm stands meanwhile; back in service, an
// alarm whose condition is present annunciates again.
func TestOutOfServiceAndOneShotShelveEndToEnd(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	sim, text := startSim(t, simSite)
	opHash, engHash := bcryptHash(t, "s3cret"), bcryptHash(t, "eng-s3cret")
	text = gatewaySite(text, broker.URL, t.TempDir(), "olga", opHash)
	olga := fmt.Sprintf("      password_hash: '%s'\n", opHash)
	require.Contains(t, text, olga)
	text = strings.Replace(text, olga, olga+fmt.Sprintf("    - name: erik\n      role: engineer\n      password_hash: '%s'\n", engHash), 1)
	site := loadYAML(t, "site.yaml", text)
	w := watch(t, broker.URL, "e2e")
	gw := startGateway(t, site)
	cmd := func(id, body string) map[string]any {
		t.Helper()
		w.publish(t, "canary/v1/e2e/cmd", `{"id":"`+id+`",`+body+`}`)
		eventually(t, "the answer to "+id, 5*time.Second, func() bool { return w.result(id) != nil })
		return w.result(id)
	}

	// One-shot shelve: hidden while active, over once the alarm returns.
	require.NoError(t, sim.Hold("face-gas", "ch4", 1.2))
	eventually(t, "high unacknowledged", 5*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.high")) == "unacknowledged" })
	r := cmd("s1", `"action":"shelve","alarm":"face-gas.ch4.high","user":"olga","comment":"purging the heading","one_shot":true`)
	require.Equal(t, true, r["ok"], r)
	eventually(t, "high shelved", 5*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.high")) == "shelved" })
	require.NoError(t, sim.Hold("face-gas", "ch4", 0.3))
	eventually(t, "the one-shot shelve ends as the alarm returns", 5*time.Second, func() bool {
		return stateOf(w.alarm("face-gas.ch4.high")) != "shelved"
	})
	require.NotEqual(t, "unacknowledged", stateOf(w.alarm("face-gas.ch4.high")), "a returned alarm is not annunciated anew")
	refused := func(id, body, why string) {
		t.Helper()
		r := cmd(id, body)
		require.Equal(t, false, r["ok"], r)
		require.Contains(t, r["error"], why)
	}
	refused("s2", `"action":"shelve","alarm":"face-gas.ch4.high","user":"olga","comment":"x","one_shot":true`, "not active") // one-shot needs an active alarm

	// Out of service: the engineer's, with a reason and, on an interlock
	// input (ch4 trips the power cut), an expiry of at most 72 h.
	refused("o1", `"action":"out_of_service","alarm":"face-gas.ch4","user":"olga","comment":"detector swap","duration":"1h"`, "needs engineer")
	refused("o2", `"action":"out_of_service","alarm":"face-gas.ch4","user":"erik","comment":"detector swap"`, "give an expiry")
	refused("o2b", `"action":"out_of_service","alarm":"face-gas.ch4","user":"erik","comment":"detector swap","duration":"100h"`, "out-of-service expiry exceeds the maximum (72h0m0s)")
	refused("o3", `"action":"out_of_service","alarm":"face-gas.ch4","user":"erik","duration":"1h"`, "comment required")
	r = cmd("o4", `"action":"out_of_service","alarm":"face-gas.ch4","user":"erik","comment":"detector swap","duration":"1h"`)
	require.Equal(t, true, r["ok"], r)
	for _, id := range []string{"face-gas.ch4.high", "face-gas.ch4.high_high"} {
		eventually(t, id+" out of service", 5*time.Second, func() bool { return stateOf(w.alarm(id)) == "out_of_service" })
	}
	eventually(t, "the bypass stands", 5*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.bypassed")) == "unacknowledged" })

	// Gas while out of service: evaluated, not annunciated, and the bypassed
	// input trips nothing.
	require.NoError(t, sim.Hold("face-gas", "ch4", 1.8))
	time.Sleep(time.Second) // ten polls
	require.Equal(t, "out_of_service", stateOf(w.alarm("face-gas.ch4.high_high")))
	v, _, err := sim.Value("face-relay", "power_cut")
	require.NoError(t, err)
	require.Equal(t, 0.0, v, "an input out of service trips no action")

	// Back in service over HTTP: an operator is refused, the engineer is not;
	// the present condition annunciates and trips.
	code, body := httpPost(t, gw.url+"/api/v1/alarms/face-gas.ch4/return_to_service", "olga", "s3cret", `{"comment":"new detector"}`)
	require.Equal(t, http.StatusForbidden, code, body)
	code, body = httpPost(t, gw.url+"/api/v1/alarms/face-gas.ch4/return_to_service", "erik", "eng-s3cret", `{"comment":"new detector calibrated"}`)
	require.Equal(t, http.StatusOK, code, body)
	eventually(t, "high_high annunciated", 5*time.Second, func() bool { return stateOf(w.alarm("face-gas.ch4.high_high")) == "unacknowledged" })
	eventually(t, "the power cut trips", 5*time.Second, func() bool {
		v, _, err := sim.Value("face-relay", "power_cut")
		return err == nil && v == 1
	})
	eventually(t, "the bypass returns", 5*time.Second, func() bool {
		s := stateOf(w.alarm("face-gas.ch4.bypassed"))
		return s != "unacknowledged" && s != "acknowledged"
	})

	// The audit trail has each action with its user.
	w.mu.Lock()
	defer w.mu.Unlock()
	seen, comments := map[string]string{}, map[string]string{}
	for _, ev := range w.events {
		if a, _ := ev["alarm"].(string); strings.HasPrefix(a, "face-gas.ch4.") {
			seen[fmt.Sprint(ev["type"])] = fmt.Sprint(ev["user"])
			comments[fmt.Sprint(ev["type"])] = fmt.Sprint(ev["comment"])
		}
	}
	require.Equal(t, "olga", seen["shelve"])
	require.Equal(t, "erik", seen["out_of_service"])
	require.Equal(t, "erik", seen["return_to_service"])
	require.Regexp(t, `^until 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ: detector swap$`, comments["out_of_service"], "the audit trail says when the bypass ends")
}
