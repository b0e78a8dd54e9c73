package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// controlSim runs the test site with the control API on an ephemeral port.
func controlSim(t *testing.T, token string) (*Simulator, string) {
	t.Helper()
	s := startSim(t, Options{Site: siteFromYAML(t, testSite), ControlAddr: "127.0.0.1:0", ControlToken: token})
	return s, "http://" + s.ControlAddr() + "/api/v1"
}

func call(t *testing.T, method, url, body string, hdr ...string) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		require.NoError(t, json.Unmarshal(raw, &m), string(raw))
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, m, string(raw)
}

func TestControlAPIDevicesHoldAndState(t *testing.T) {
	s, base := controlSim(t, "")
	code, _, raw := call(t, "GET", base+"/devices", "")
	require.Equal(t, http.StatusOK, code)
	var devs []DeviceStatus
	require.NoError(t, json.Unmarshal([]byte(raw), &devs))
	require.Len(t, devs, 4)
	require.Equal(t, "gas1", devs[0].ID)
	require.Equal(t, 1, devs[0].Unit)
	require.Equal(t, "online", devs[0].State)
	require.NotEqual(t, "127.0.0.1:0", devs[0].Address, "the resolved address")
	require.Len(t, devs[0].Sensors, 4)
	require.Equal(t, "physics", devs[0].Sensors[0].Source)

	code, body, _ := call(t, "PUT", base+"/devices/gas1/sensors/ch4", `{"value": 2.0}`)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 2.0, body["value"])
	require.Equal(t, "held", body["source"])
	c := newClient(t, "tcp://"+hostPort(t, s, "gas1"), 1)
	f, err := c.ReadFloat32s(0, 1, 0)
	require.NoError(t, err)
	require.Equal(t, float32(2.0), f[0])

	code, body, _ = call(t, "DELETE", base+"/devices/gas1/sensors/ch4", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "physics", body["source"])

	code, _, _ = call(t, "PUT", base+"/devices/gas1/state", `{"state": "offline"}`)
	require.Equal(t, http.StatusOK, code)
	code, body, _ = call(t, "GET", base+"/devices/gas1", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "offline", body["state"])

	code, body, _ = call(t, "PUT", base+"/devices/gas1/faults", `{"latency": "50ms", "drop": 0.1}`)
	require.Equal(t, http.StatusOK, code, body)
	code, body, _ = call(t, "PUT", base+"/clock", `{"time": "1h", "speed": 0}`)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, time.Hour, s.Now())
}

func TestControlAPIBadRequests(t *testing.T) {
	_, base := controlSim(t, "")
	for _, c := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"PUT", "/devices/gas1/sensors/ch4", `{"value": "high"}`, 400, "cannot unmarshal"},
		{"PUT", "/devices/gas1/sensors/ch4", `{}`, 400, `needs a finite number "value"`},
		{"PUT", "/devices/gas1/sensors/ch4", `{"value": 1, "hold": true}`, 400, "unknown field"},
		{"PUT", "/devices/gas1/sensors/ch4", `not json`, 400, "invalid character"},
		{"PUT", "/devices/nope/sensors/ch4", `{"value": 1}`, 404, "device nope"},
		{"PUT", "/devices/gas1/sensors/nope", `{"value": 1}`, 404, "sensor gas1/nope"},
		{"DELETE", "/devices/gas1/sensors/nope", ``, 404, "not found"},
		{"PUT", "/devices/gas1/state", `{"state": "dead"}`, 400, `state "dead": want online, offline or fault`},
		{"PUT", "/devices/nope/state", `{"state": "online"}`, 404, "device nope"},
		{"PUT", "/devices/gas1/faults", `{"drop": 1.5}`, 400, "faults.drop"},
		{"PUT", "/devices/gas1/faults", `{"latency": "soon"}`, 400, "latency"},
		{"POST", "/scenarios/nope", ``, 404, "scenario nope"},
		{"POST", "/scenarios/mine", `{"events": [{"effect": "explode", "targets": ["gas1/ch4"]}]}`, 400, `effect "explode"`},
		{"POST", "/scenarios/mine", `{"events": [{"effect": "add", "targets": ["gas1/nope"]}]}`, 400, `no sensor "nope"`},
		{"POST", "/scenarios/mine", `{"name": "other", "events": []}`, 400, "names scenario"},
		{"PUT", "/clock", `{"speed": -1}`, 400, "must not be negative"},
		{"GET", "/nothing", ``, 404, "no such endpoint"},
		{"POST", "/devices", ``, 404, "no such endpoint: POST /api/v1/devices"},
	} {
		code, body, raw := call(t, c.method, base+c.path, c.body)
		require.Equal(t, c.code, code, "%s %s: %s", c.method, c.path, raw)
		if c.msg != "" {
			require.Contains(t, body["error"], c.msg, "%s %s", c.method, c.path)
		}
	}
}

func TestControlAPIScenarios(t *testing.T) {
	s, base := controlSim(t, "")
	code, _, raw := call(t, "GET", base+"/scenarios", "")
	require.Equal(t, http.StatusOK, code)
	var list []ScenarioStatus
	require.NoError(t, json.Unmarshal([]byte(raw), &list))
	names := map[string]bool{}
	for _, sc := range list {
		names[sc.Name] = true
	}
	for _, n := range []string{"methane-leak", "drifting-sensor", "frozen-sensor", "sensor-fault", "flapping-link"} {
		require.True(t, names[n], "built-in scenario %s in %v", n, names)
	}
	code, body, _ := call(t, "POST", base+"/scenarios/methane-leak", "")
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, true, body["running"])

	// A scenario defined in the request body.
	code, body, _ = call(t, "POST", base+"/scenarios/spike", `name: spike
events:
  - {effect: approach, targets: [gas2/ch4], value: 3.5}
`)
	require.Equal(t, http.StatusAccepted, code, body)
	v, src, err := s.Value("gas2", "ch4")
	require.NoError(t, err)
	require.Equal(t, 3.5, v)
	require.Equal(t, "scenario", src)
	code, _, _ = call(t, "DELETE", base+"/scenarios/spike", "")
	require.Equal(t, http.StatusNoContent, code)
	v, _, err = s.Value("gas2", "ch4")
	require.NoError(t, err)
	require.Less(t, v, 0.5)
}

func TestControlAPIToken(t *testing.T) {
	_, base := controlSim(t, "s3cret")
	code, _, _ := call(t, "GET", base+"/devices", "")
	require.Equal(t, http.StatusOK, code, "reading needs no token")
	code, body, _ := call(t, "PUT", base+"/devices/gas1/state", `{"state": "offline"}`)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, body["error"], "bearer token")
	code, _, _ = call(t, "PUT", base+"/devices/gas1/state", `{"state": "offline"}`, "Authorization", "Bearer s3cret")
	require.Equal(t, http.StatusOK, code)
}

// A page the operator visits cannot drive the simulator: cross-origin
// browser requests and DNS-rebinding host names are refused on every
// state-changing endpoint; reads and same-origin tools still work.
func TestControlAPIRefusesCrossSiteWrites(t *testing.T) {
	_, base := controlSim(t, "")
	code, m, _ := call(t, "POST", base+"/scenarios/methane-leak", "name: x\n", "Origin", "http://evil.example", "Content-Type", "text/plain")
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, m["error"], "cross-origin")
	code, _, _ = call(t, "PUT", base+"/devices/gas1/sensors/ch4", `{"value": 3}`, "Host", "evil.example")
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = call(t, "GET", base+"/devices", "", "Origin", "http://evil.example")
	require.Equal(t, http.StatusOK, code, "reads are not state-changing")
	// A tool on the same host (no Origin, IP host) still works.
	code, _, body := call(t, "PUT", base+"/devices/gas1/sensors/ch4", `{"value": 0.3}`)
	require.Equal(t, http.StatusOK, code, body)
}
