package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/httpapi"
	"github.com/canary-gw/canary/gateway/mqtt"
)

// shanghai is a gateway's local zone that is not UTC (TZ=Asia/Shanghai):
// the pollers and the engine stamp times in the zone of the clock.
var shanghai = time.FixedZone("CST", 8*3600)

// viewAPI serves a gateway's view over the HTTP API.
type viewAPI struct {
	g   *Gateway
	srv *httpapi.Server
	url string
}

func newViewAPI(t *testing.T, eng *alerting.Engine, site *configs.Site) *viewAPI {
	t.Helper()
	g := &Gateway{}
	g.view.init(site, eng)
	srv, err := httpapi.New(httpapi.Options{Backend: (*backend)(g), Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &viewAPI{g: g, srv: srv, url: hs.URL}
}

// getRaw returns a GET endpoint's JSON array, element by element as sent.
func (a *viewAPI) getRaw(t *testing.T, path string) []json.RawMessage {
	t.Helper()
	res, err := http.Get(a.url + path)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", b)
	var out []json.RawMessage
	require.NoError(t, json.Unmarshal(b, &out), "%s", b)
	return out
}

// sse is one server-sent event.
type sse struct{ event, data string }

// openEvents connects to the event stream and returns its messages.
func (a *viewAPI) openEvents(t *testing.T) <-chan sse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, a.url+"/api/v1/events", nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	require.Eventually(t, a.srv.Streaming, 5*time.Second, 5*time.Millisecond)
	ch := make(chan sse, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		var m sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				m.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				m.data = strings.TrimPrefix(line, "data: ")
			case line == "" && m.data != "":
				ch <- m
				m = sse{}
			}
		}
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan sse, event string) string {
	t.Helper()
	for {
		select {
		case m, ok := <-ch:
			require.True(t, ok, "event stream ended")
			if m.event == event {
				return m.data
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", event)
		}
	}
}

// The HTTP API's alarm states and transitions, on GET and on the event
// stream, are the MQTT payloads byte for byte (alerting's encoder), on a
// gateway whose local zone is not UTC: UTC times with nine fraction
// digits, null for a time that is not, the same string escaping. A
// reading's ts is the MQTT readings payload's.
func TestViewHTTPJSONIsTheMQTTPayload(t *testing.T) {
	high := func(limit float64, prio int) *alerting.LimitConfig {
		return &alerting.LimitConfig{Limit: &limit, Priority: &prio}
	}
	eng, err := alerting.New(alerting.Config{Points: []alerting.PointConfig{
		{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "generic", Poll: time.Second,
			Alarms: alerting.SensorAlarms{High: high(1.0, 2)}},
		{Site: "demo", Device: "face3-gas", Sensor: "co", Kind: "generic", Poll: time.Second,
			Alarms: alerting.SensorAlarms{High: high(30, 3)}},
	}})
	require.NoError(t, err)
	site := &configs.Site{Site: "demo", Devices: []configs.Device{{DeviceConfig: modbus.DeviceConfig{ID: "face3-gas"},
		Sensors: []configs.Sensor{{SensorConfig: modbus.SensorConfig{ID: "ch4"}, Kind: "generic"},
			{SensorConfig: modbus.SensorConfig{ID: "co"}, Kind: "generic"}}}}}
	api := newViewAPI(t, eng, site)
	v := &api.g.view
	stream := api.openEvents(t)

	// A fraction with trailing zeros: encoding/json would trim them.
	t0 := time.Date(2026, 3, 1, 19, 58, 10, 120000000, shanghai)
	wantState := map[string]string{}
	var wantEvents []string
	apply := func(evs []alerting.Event, err error) {
		t.Helper()
		require.NoError(t, err)
		require.NotEmpty(t, evs)
		for _, ev := range evs {
			v.addTransition(api.srv, ev)
			wantEvents = append(wantEvents, string(ev.AppendJSON(nil)))
			require.Equal(t, wantEvents[len(wantEvents)-1], nextEvent(t, stream, "transition"))
			st, ok := eng.Alarm(ev.Alarm)
			require.True(t, ok)
			v.setAlarm(api.srv, st)
			wantState[st.ID] = string(st.AppendJSON(nil))
			require.Equal(t, wantState[st.ID], nextEvent(t, stream, "alarm"))
		}
	}

	p := mqtt.Readings{Site: "demo", Device: "face3-gas", TS: t0, Readings: []mqtt.Reading{
		{Sensor: "ch4", Kind: "generic", Value: 1.3, Valid: true, Quality: "good"},
		{Sensor: "co", Kind: "generic", Value: 5, Valid: true, Quality: "good"}}}
	metas := v.sensors(&modbus.Batch{Device: "face3-gas", Readings: []modbus.Reading{{Sensor: "ch4"}, {Sensor: "co"}}})
	v.setReadings(metas, p, time.Now())
	v.publishReadings(api.srv, metas, p)
	apply(eng.Step(t0, []alerting.Sample{{Point: "face3-gas.ch4", Value: 1.3}, {Point: "face3-gas.co", Value: 5}}))
	apply(eng.Ack(t0.Add(20*time.Second), "face3-gas.ch4.high", "olga", "crew sent <face 3> & fan on"))
	// Shelving a normal alarm: never active, so since is null on MQTT.
	apply(eng.Shelve(t0.Add(30*time.Second), "face3-gas.co.high", "olga", "sensor swap", time.Hour))
	require.Contains(t, wantState["face3-gas.co.high"], `"since":null`)
	require.Contains(t, wantState["face3-gas.ch4.high"], `"since":"2026-03-01T11:58:10.120000000Z"`)

	got := map[string]string{}
	for _, a := range api.getRaw(t, "/api/v1/alarms") {
		var id struct{ ID string }
		require.NoError(t, json.Unmarshal(a, &id))
		got[id.ID] = string(a)
	}
	require.Equal(t, wantState, got, "GET /api/v1/alarms")

	var history []string
	for _, e := range api.getRaw(t, "/api/v1/history") {
		history = append(history, string(e))
	}
	require.Equal(t, wantEvents, history, "GET /api/v1/history")

	var mq struct{ TS json.RawMessage }
	require.NoError(t, json.Unmarshal(mqtt.AppendReadings(nil, &p), &mq))
	require.Equal(t, `"2026-03-01T11:58:10.120000000Z"`, string(mq.TS))
	for _, r := range api.getRaw(t, "/api/v1/readings") {
		var rd struct{ TS json.RawMessage }
		require.NoError(t, json.Unmarshal(r, &rd))
		require.Equal(t, string(mq.TS), string(rd.TS), "GET /api/v1/readings: %s", r)
	}

	v.setDevice(modbus.Batch{Device: "face3-gas", At: t0})
	var dev struct {
		LastOK json.RawMessage `json:"last_ok"`
	}
	require.NoError(t, json.Unmarshal(api.getRaw(t, "/api/v1/devices")[0], &dev))
	require.Equal(t, string(mq.TS), string(dev.LastOK), "GET /api/v1/devices")
}

// The event stream's readings carry the MQTT readings payload's ts; a
// sensor never read and a device never answered have null times.
func TestViewHTTPReadingTimes(t *testing.T) {
	eng, err := alerting.New(alerting.Config{Points: []alerting.PointConfig{
		{Site: "demo", Device: "d", Sensor: "a", Kind: "generic", Poll: time.Second},
		{Site: "demo", Device: "d", Sensor: "b", Kind: "generic", Poll: time.Second},
	}})
	require.NoError(t, err)
	site := &configs.Site{Site: "demo", Devices: []configs.Device{{DeviceConfig: modbus.DeviceConfig{ID: "d"},
		Sensors: []configs.Sensor{{SensorConfig: modbus.SensorConfig{ID: "a"}, Kind: "generic"},
			{SensorConfig: modbus.SensorConfig{ID: "b"}, Kind: "generic"}}}}}
	api := newViewAPI(t, eng, site)
	v := &api.g.view

	devs := api.getRaw(t, "/api/v1/devices")
	require.Contains(t, string(devs[0]), `"last_ok":null`, "never answered")
	rs := api.getRaw(t, "/api/v1/readings")
	require.Contains(t, string(rs[0]), `"ts":null`, "never read")

	stream := api.openEvents(t)
	at := time.Date(2026, 3, 1, 8, 0, 0, 500, shanghai)
	p := mqtt.Readings{Site: "demo", Device: "d", TS: at, Readings: []mqtt.Reading{
		{Sensor: "a", Value: 1, Valid: true, Quality: "good"}, {Sensor: "b", Quality: "bad"}}}
	metas := v.sensors(&modbus.Batch{Device: "d", Readings: []modbus.Reading{{Sensor: "a"}, {Sensor: "b"}}})
	v.setReadings(metas, p, time.Now())
	v.publishReadings(api.srv, metas, p)
	for range 2 {
		var rd struct{ TS json.RawMessage }
		require.NoError(t, json.Unmarshal([]byte(nextEvent(t, stream, "reading")), &rd))
		require.Equal(t, `"`+string(mqtt.AppendTime(nil, at))+`"`, string(rd.TS))
		require.Equal(t, `"2026-03-01T00:00:00.000000500Z"`, string(rd.TS))
	}
}
