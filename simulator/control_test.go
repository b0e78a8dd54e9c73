package simulator

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
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

// A Modbus client may write NaN or ±Inf into a float register. The device
// listing still answers, with such a value as null (JSON has no NaN).
func TestControlAPINonFiniteValueIsNull(t *testing.T) {
	s, base := controlSim(t, "")
	c := newClient(t, "tcp://"+hostPort(t, s, "gas1"), 1)
	require.NoError(t, c.WriteFloat32(0, float32(math.NaN())))
	require.NoError(t, c.SetEncoding(mb.BIG_ENDIAN, mb.LOW_WORD_FIRST))
	require.NoError(t, c.WriteFloat32(2, float32(math.Inf(1))))
	for _, path := range []string{"/devices", "/devices/gas1"} {
		code, _, raw := call(t, "GET", base+path, "")
		require.Equal(t, http.StatusOK, code, raw)
		require.Contains(t, raw, `"id":"ch4","kind":"methane","table":"holding","address":0,"type":"float32","value":null,"source":"written"`)
		require.Contains(t, raw, `"id":"ch4_cdab","kind":"methane","table":"holding","address":2,"type":"float32","value":null,"source":"written"`)
	}
	v, src, err := s.Value("gas1", "ch4")
	require.NoError(t, err)
	require.True(t, math.IsNaN(v))
	require.Equal(t, "written", src)
}

// An answer JSON cannot carry is a 500 with a JSON error, never a 200 with
// an empty body.
func TestWriteJSONEncodesBeforeTheStatus(t *testing.T) {
	rec := httptest.NewRecorder()
	writeJSON(rec, http.StatusOK, map[string]float64{"value": math.NaN()})
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var m map[string]string
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), rec.Body.String())
	require.Contains(t, m["error"], "unsupported value")
}

// A device's faults as GET shows them can be PUT back: latency is a
// duration string both ways.
func TestControlAPIFaultsRoundTrip(t *testing.T) {
	s, base := controlSim(t, "")
	code, body, raw := call(t, "PUT", base+"/devices/gas1/faults", `{"latency": "200ms", "drop": 0.1, "busy": 0.05, "signal": "band"}`)
	require.Equal(t, http.StatusOK, code, raw)
	require.Equal(t, "200ms", body["latency"])
	code, body, raw = call(t, "GET", base+"/devices/gas1", "")
	require.Equal(t, http.StatusOK, code, raw)
	faults, err := json.Marshal(body["faults"])
	require.NoError(t, err)
	require.JSONEq(t, `{"latency": "200ms", "drop": 0.1, "busy": 0.05, "garbage": 0, "signal": "band"}`, string(faults))

	require.NoError(t, s.SetFaults("gas1", configs.SimFaults{}))
	code, _, raw = call(t, "PUT", base+"/devices/gas1/faults", string(faults))
	require.Equal(t, http.StatusOK, code, raw)
	require.Equal(t, configs.SimFaults{Latency: 200 * time.Millisecond, Drop: 0.1, Busy: 0.05, Signal: "band"}, s.Devices()[0].Faults)

	// The Go value round-trips through JSON too, and a bare number (which
	// would be nanoseconds) is refused rather than guessed.
	var f configs.SimFaults
	require.NoError(t, json.Unmarshal([]byte(raw), &f))
	require.Equal(t, 200*time.Millisecond, f.Latency)
	code, body, _ = call(t, "PUT", base+"/devices/gas1/faults", `{"latency": 200000000}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body["error"], "latency 200000000: want a duration string")
	code, body, _ = call(t, "PUT", base+"/devices/gas1/faults", `{"latency": "1s", "lag": 1}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body["error"], "unknown field")
}

// The clock's speed is bounded: 1e300 would overflow the simulated time
// (and then refuse every later request as negative).
func TestClockSpeedIsBounded(t *testing.T) {
	s, base := controlSim(t, "")
	for _, c := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"PUT", "/clock", `{"speed": 1e300}`, 400, "want at most 1000000 simulated seconds per real second"},
		{"PUT", "/clock", `{"speed": 1000001}`, 400, "want at most 1000000"},
		{"PUT", "/clock", `{"speed": -1}`, 400, "must not be negative"},
		{"POST", "/scenarios/fast", `{"speed": 1e300, "events": [{"effect": "add", "targets": ["gas1/ch4"], "value": 1}]}`, 400, "want at most 1000000"},
		{"PUT", "/clock", `{"time": "1h", "speed": 1000000}`, 200, ""},
		{"PUT", "/clock", `{"speed": 1}`, 200, ""},
	} {
		code, body, raw := call(t, c.method, base+c.path, c.body)
		require.Equal(t, c.code, code, "%s %s: %s", c.method, c.path, raw)
		if c.msg != "" {
			require.Contains(t, body["error"], c.msg, c.body)
		}
	}
	require.GreaterOrEqual(t, s.Now(), time.Hour)

	for _, text := range []string{
		testSite + "  speed: 1e300\n",
		testSite + "  speed: .nan\n",
		testSite + "  scenarios: [{name: fast, speed: .inf, events: [{effect: add, targets: [gas1/ch4], value: 1}]}]\n",
	} {
		_, err := New(Options{Site: siteFromYAML(t, text)})
		require.ErrorContains(t, err, "want at most 1000000", text)
	}
	_, err := New(Options{Site: siteFromYAML(t, testSite), Speed: 1e7})
	require.ErrorContains(t, err, "want at most 1000000")

	// At the highest speed, simulated time stops at its end instead of
	// wrapping negative.
	real := time.Unix(0, 0)
	c := newClock(func() time.Time { return real }, 1e6)
	real = real.Add(1000 * time.Hour)
	require.Greater(t, c.now(), 290*365*24*time.Hour)
}

// A hold must be a value the sensor's encoding carries; else 400 names the
// range, and the sensor keeps what it had. The control API's value is then
// what the gateway reads, up to the encoding's resolution.
func TestControlAPIHoldOutsideTheEncoding(t *testing.T) {
	s, site := gatewaySim(t, `
site: hold
devices:
  - id: d
    url: tcp://127.0.0.1:5020
    sensors:
      - {id: co, kind: co, table: input, address: 0, type: uint16, scale: 0.1}
      - {id: o2, kind: oxygen, table: input, address: 1, type: int16, scale: 0.01}
      - {id: t, kind: temperature, table: input, address: 2, type: float16}
      - {id: b, kind: generic, table: holding, address: 0, type: int8, order: A}
      - {id: flag, kind: generic, table: holding, address: 1, type: bool, bit: 3}
      - {id: ch4, kind: methane, table: holding, address: 2, type: float32}
      - {id: relay, kind: generic, table: coil, address: 0, type: bool}
`)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	base := srv.URL + "/api/v1/devices/d/sensors/"
	for _, c := range []struct {
		sensor string
		value  string
		code   int
		msg    string
	}{
		{"co", "-5", 400, "-5 is outside what uint16, scale 0.1 can carry (0 to 6553.5)"},
		{"co", "1e9", 400, "(0 to 6553.5)"},
		{"co", "6553.6", 400, "(0 to 6553.5)"},
		{"co", "6553.5", 200, ""},
		{"co", "12.34", 200, ""}, // 123 counts: within half a step
		{"o2", "400", 400, "(-327.68 to 327.67)"},
		{"o2", "20.9", 200, ""},
		{"t", "70000", 400, "(-65504 to 65504)"},
		{"t", "21.5", 200, ""},
		{"b", "200", 400, "(-128 to 127)"},
		{"b", "-100", 200, ""},
		{"flag", "0.5", 400, "(0 for off or 1 for on)"},
		{"flag", "1", 200, ""},
		{"ch4", "1e39", 400, "float32"},
		{"ch4", "1.8", 200, ""},
		{"relay", "2", 400, "a coil can carry (0 for off or 1 for on)"},
		{"relay", "1", 200, ""},
	} {
		before, beforeSrc, err := s.Value("d", c.sensor)
		require.NoError(t, err)
		code, body, raw := call(t, "PUT", base+c.sensor, `{"value": `+c.value+`}`)
		require.Equal(t, c.code, code, "%s = %s: %s", c.sensor, c.value, raw)
		v, src, err := s.Value("d", c.sensor)
		require.NoError(t, err)
		if c.code != 200 {
			require.Contains(t, body["error"], c.msg)
			require.Contains(t, body["error"], "hold d/"+c.sensor)
			require.Equal(t, before, v, "%s keeps its value", c.sensor)
			require.Equal(t, beforeSrc, src)
			continue
		}
		want, err := strconv.ParseFloat(c.value, 64)
		require.NoError(t, err)
		require.Equal(t, want, body["value"])
		require.Equal(t, "held", src)
	}
	got := gatewayReads(t, s, site, "d")
	for id, want := range map[string]float64{"co": 12.3, "o2": 20.9, "t": 21.5, "b": -100, "flag": 1, "ch4": 1.8, "relay": 1} {
		require.InDelta(t, want, got[id].Value, 1e-6, id)
	}
}
