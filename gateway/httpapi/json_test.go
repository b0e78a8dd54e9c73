package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// shanghai is a gateway's local zone that is not UTC (TZ=Asia/Shanghai).
var shanghai = time.FixedZone("CST", 8*3600)

// Alarm states and transitions are the MQTT payloads byte for byte, on
// GET and on the event stream: times in UTC with nine fraction digits
// whatever zone they were stamped in, null for a time that is not (a
// normal alarm shelved was never active), strings without HTML escaping.
func TestAlarmJSONIsTheMQTTPayload(t *testing.T) {
	e := startServer(t, nil)
	s, _ := openStream(t, e)
	at := time.Date(2026, 3, 1, 19, 58, 10, 0, shanghai)
	e.be.setAlarm(Alarm{ID: "face3-gas.ch4.high", Site: "demo", Device: "face3-gas", Sensor: "ch4", Condition: "high",
		Priority: 2, State: StateUnacknowledged, Active: true, Value: fp(1.25), Limit: fp(1), Since: at, Updated: at,
		Comment: "ch4 > 1 & rising <fast>"}, "activate", "", "")
	e.be.setAlarm(Alarm{ID: "face3-gas.co.high", Site: "demo", Device: "face3-gas", Sensor: "co", Condition: "high",
		Priority: 3, State: StateShelved, Limit: fp(30), Updated: at.Add(30 * time.Second), AckedBy: "",
		Comment: "sensor swap"}, "shelve", "olga", "sensor swap")

	ch4 := `{"id":"face3-gas.ch4.high","site":"demo","device":"face3-gas","sensor":"ch4","condition":"high","priority":2,` +
		`"state":"unacknowledged","active":true,"latched":false,"value":1.25,"limit":1,` +
		`"since":"2026-03-01T11:58:10.000000000Z","updated":"2026-03-01T11:58:10.000000000Z","acked_by":"","comment":"ch4 > 1 & rising <fast>"}`
	co := `{"id":"face3-gas.co.high","site":"demo","device":"face3-gas","sensor":"co","condition":"high","priority":3,` +
		`"state":"shelved","active":false,"latched":false,"value":null,"limit":30,` +
		`"since":null,"updated":"2026-03-01T11:58:40.000000000Z","acked_by":"","comment":"sensor swap"}`
	r := e.do(t, req{path: "/api/v1/alarms"})
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "["+ch4+","+co+"]\n", string(r.body))

	tr1 := `{"seq":1,"ts":"2026-03-01T11:58:10.000000000Z","type":"activate","alarm":"face3-gas.ch4.high","from":"normal",` +
		`"to":"unacknowledged","active":true,"value":1.25,"limit":1,"user":"","comment":""}`
	tr2 := `{"seq":2,"ts":"2026-03-01T11:58:40.000000000Z","type":"shelve","alarm":"face3-gas.co.high","from":"normal",` +
		`"to":"shelved","active":false,"value":null,"limit":30,"user":"olga","comment":"sensor swap"}`
	r = e.do(t, req{path: "/api/v1/history"})
	require.Equal(t, "["+tr1+","+tr2+"]\n", string(r.body))

	for _, want := range []struct{ event, data string }{{"alarm", ch4}, {"transition", tr1}, {"alarm", co}, {"transition", tr2}} {
		ev, data := s.next(t)
		require.Equal(t, want.event, ev)
		require.Equal(t, want.data, data)
	}

	// Decoded, null is the zero time again.
	var got []Alarm
	require.NoError(t, json.Unmarshal(e.do(t, req{path: "/api/v1/alarms"}).body, &got))
	require.True(t, got[0].Since.Equal(at))
	require.True(t, got[1].Since.IsZero())
}

// A reading's ts and a device's last_ok are written as MQTT's ts, null
// when never read or never answered.
func TestReadingAndDeviceTimesAsOnMQTT(t *testing.T) {
	at := time.Date(2026, 3, 1, 20, 0, 0, 500, shanghai)
	e := startServer(t, func(o *Options) { o.Now = func() time.Time { return at.Add(time.Second) } })
	s, _ := openStream(t, e)
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Value: fp(0.42), Unit: "%vol",
		Quality: "good", TS: at})
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "co", Kind: "co", Unit: "ppm", Quality: "bad"})
	e.be.mu.Lock()
	e.be.devices = []Device{{Site: "demo", ID: "face3-gas", State: "online", LastOK: at}, {Site: "demo", ID: "pump", State: "unknown"}}
	e.be.mu.Unlock()

	var rs []map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(e.do(t, req{path: "/api/v1/readings"}).body, &rs))
	require.Equal(t, `"2026-03-01T12:00:00.000000500Z"`, string(rs[0]["ts"]))
	require.Equal(t, `null`, string(rs[1]["ts"]))
	_, data := s.next(t)
	require.Contains(t, data, `"ts":"2026-03-01T12:00:00.000000500Z"`)

	r := e.do(t, req{path: "/api/v1/devices"})
	require.Equal(t, `[{"site":"demo","id":"face3-gas","state":"online","last_ok":"2026-03-01T12:00:00.000000500Z"},`+
		`{"site":"demo","id":"pump","state":"unknown","last_ok":null}]`+"\n", string(r.body))
}

// The hand-written encoders write every field encoding/json would, with
// the same values: a field added to a type must be added to its encoder.
func TestJSONEncodersCoverEveryField(t *testing.T) {
	at := time.Date(2026, 3, 1, 11, 58, 10, 123456789, time.UTC)
	type plainAlarm Alarm
	type plainTransition Transition
	type plainReading Reading
	type plainDevice Device
	a := Alarm{ID: "i", Site: "s", Device: "d", Sensor: "n", Condition: "high", Priority: 2, State: StateAcknowledged,
		Active: true, Latched: true, Value: fp(1.5), Limit: fp(-2e-7), Since: at, Updated: at.Add(time.Second),
		AckedBy: "olga", Comment: "c\n\"q\"", Held: true}
	tr := Transition{Seq: 7, TS: at, Type: "ack", Alarm: "i", From: "unacknowledged", To: "acknowledged", Active: true,
		Value: fp(3), Limit: fp(1e21), User: "olga", Comment: "x"}
	rd := Reading{Site: "s", Device: "d", Sensor: "n", Kind: "k", Value: fp(0.1), Unit: "u", Quality: "good", TS: at,
		Stale: true, AgeSeconds: 2.5, Received: at, Limits: []Limit{{Condition: "high", Limit: 1, Priority: 2}}}
	dv := Device{Site: "s", ID: "d", State: "offline", LastOK: at, Error: "i/o timeout"}
	for _, c := range []struct{ ours, plain any }{
		{a, plainAlarm(a)}, {tr, plainTransition(tr)}, {rd, plainReading(rd)}, {dv, plainDevice(dv)},
		{Reading{}, plainReading{}}, {Device{}, plainDevice{}},
	} {
		ours, err := json.Marshal(c.ours)
		require.NoError(t, err)
		plain, err := json.Marshal(c.plain)
		require.NoError(t, err)
		var o, p map[string]any
		require.NoError(t, json.Unmarshal(ours, &o))
		require.NoError(t, json.Unmarshal(plain, &p))
		if p["ts"] == "0001-01-01T00:00:00Z" {
			p["ts"] = nil // what this fix changes
		}
		if p["last_ok"] == "0001-01-01T00:00:00Z" {
			p["last_ok"] = nil
		}
		require.Equal(t, p, o, "%T", c.ours)
	}
}
