package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/clocktest"
	"github.com/canary-gw/canary/internal/jsonenc"
)

const (
	operatorPass = "olga-secret-1"
	viewerPass   = "victor-secret-1"
	engineerPass = "erik-secret-1"
	machineToken = "scada-token-0123456789abcdef"
)

type testEnv struct {
	url string
	srv *Server
	be  *fakeBackend
	reg *prometheus.Registry
}

func testUsers(t testing.TB) []User {
	t.Helper()
	hash := func(p string) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		require.NoError(t, err)
		return h
	}
	return []User{
		{Name: "olga", Role: configs.RoleOperator, PasswordHash: hash(operatorPass)},
		{Name: "victor", Role: configs.RoleViewer, PasswordHash: hash(viewerPass)},
		{Name: "erik", Role: configs.RoleEngineer, PasswordHash: hash(engineerPass)},
		{Name: "scada", Role: configs.RoleEngineer, Token: machineToken},
	}
}

// startServer serves a Server over a real loopback listener until the test ends.
func startServer(t *testing.T, mod func(*Options)) *testEnv {
	t.Helper()
	be := newFakeBackend()
	reg := prometheus.NewRegistry()
	opts := Options{
		Config:   configs.HTTP{Listen: "127.0.0.1:0"},
		Users:    testUsers(t),
		Backend:  be,
		Registry: reg,
		Logger:   zerolog.New(zerolog.NewTestWriter(t)),
		Site:     "demo",
		SiteName: "Demo colliery, face 3",
	}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	require.NoError(t, err)
	be.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		// A connection the client dialled and never used (its transport
		// races a dial against a connection coming free) is new to the
		// server, which waits 5 s before taking it for idle: the
		// shutdown's grace ran out in a CI run, after a test of 24
		// requests at once.
		http.DefaultClient.CloseIdleConnections()
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("server did not stop within 10s")
		}
	})
	return &testEnv{url: "http://" + ln.Addr().String(), srv: srv, be: be, reg: reg}
}

type req struct {
	method, path, body string
	header             map[string]string
	user, pass         string
	bearer             string
}

type resp struct {
	code   int
	header http.Header
	body   []byte
}

func (e *testEnv) do(t *testing.T, r req) resp {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	hr, err := http.NewRequestWithContext(t.Context(), r.method, e.url+r.path, strings.NewReader(r.body))
	require.NoError(t, err)
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.user != "" {
		hr.SetBasicAuth(r.user, r.pass)
	}
	if r.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	res, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return resp{code: res.StatusCode, header: res.Header, body: b}
}

func jsonErr(t *testing.T, r resp) string {
	t.Helper()
	require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"), "body %s", r.body)
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(r.body, &e), "body %s", r.body)
	require.NotEmpty(t, e.Error)
	return e.Error
}

var jsonCT = map[string]string{"Content-Type": "application/json"}

func seedAlarms(be *fakeBackend, base time.Time) {
	mk := func(id string, prio int, state string, since time.Duration, latched, active bool) Alarm {
		dev, rest, _ := strings.Cut(id, ".")
		sen, cond, _ := strings.Cut(rest, ".")
		return Alarm{ID: id, Site: "demo", Device: dev, Sensor: sen, Condition: cond, Priority: prio, State: state,
			Active: active, Latched: latched, Value: fp(1.2), Limit: fp(1.0), Since: base.Add(since), Updated: base.Add(since)}
	}
	for _, a := range []Alarm{
		mk("face3-gas.ch4.high", 2, StateAcknowledged, -5*time.Minute, false, true),
		mk("face3-gas.ch4.high_high", 1, StateUnacknowledged, -4*time.Minute, true, true),
		mk("face3-gas2.ch4.high", 2, StateUnacknowledged, -6*time.Minute, false, true),
		mk("face3-gas2.co.high", 2, StateUnacknowledged, -1*time.Minute, false, true),
		mk("face3-gas.o2.low", 2, StateReturnedUnacknowledged, -3*time.Minute, false, false),
		mk("pump.p.bad", 3, StateShelved, -10*time.Minute, false, true),
		mk("face3-gas.ch4.comm", 1, StateAcknowledged, -1*time.Minute, false, true),
		mk("belt.t.high", 4, StateUnacknowledged, -30*time.Second, false, true),
	} {
		be.setAlarm(a, "activate", "", "")
	}
}

func TestAlarmsOrderedBySafetyRules(t *testing.T) {
	e := startServer(t, nil)
	seedAlarms(e.be, time.Now())
	r := e.do(t, req{path: "/api/v1/alarms"})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	var got []Alarm
	require.NoError(t, json.Unmarshal(r.body, &got))
	ids := make([]string, len(got))
	for i, a := range got {
		ids[i] = a.ID
	}
	// P1 first; unacked (incl. returned-unacked) before acked; newest first.
	require.Equal(t, []string{
		"face3-gas.ch4.high_high", // P1 unacked
		"face3-gas.ch4.comm",      // P1 acked
		"face3-gas2.co.high",      // P2 unacked, 1 min ago
		"face3-gas.o2.low",        // P2 returned-unacked, 3 min ago
		"face3-gas2.ch4.high",     // P2 unacked, 6 min ago
		"face3-gas.ch4.high",      // P2 acked
		"pump.p.bad",              // P3 shelved (the UI lists it apart)
		"belt.t.high",             // P4
	}, ids)

	// The payload has exactly the MQTT alarm fields.
	var raw []map[string]any
	require.NoError(t, json.Unmarshal(r.body, &raw))
	keys := make([]string, 0, len(raw[0]))
	for k := range raw[0] {
		keys = append(keys, k)
	}
	require.ElementsMatch(t, []string{"id", "site", "device", "sensor", "condition", "priority", "state", "active",
		"latched", "value", "limit", "since", "updated", "acked_by", "comment"}, keys)
}

func TestSortAlarmsUnknownPriorityFirst(t *testing.T) {
	now := time.Now()
	as := []Alarm{
		{ID: "b", Priority: 1, State: StateUnacknowledged, Since: now},
		{ID: "a", Priority: 0, State: StateAcknowledged, Since: now.Add(-time.Hour)},
		{ID: "c", Priority: 1, State: StateUnacknowledged, Since: now},
	}
	SortAlarms(as)
	require.Equal(t, "a", as[0].ID, "an unclassified alarm must not be buried")
	require.Equal(t, "b", as[1].ID, "ties fall back to the id")
}

func TestReadingsJSON(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e := startServer(t, func(o *Options) { o.Now = func() time.Time { return now } })
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Value: fp(0.42), Unit: "%vol",
		Quality: "good", TS: now.Add(-2 * time.Second), Limits: []Limit{{Condition: "high", Limit: 1.0, Priority: 2}}})
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "o2", Kind: "oxygen", Value: nil, Unit: "%vol",
		Quality: "bad", TS: now.Add(-45 * time.Second)})

	r := e.do(t, req{path: "/api/v1/readings"})
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "no-store", r.header.Get("Cache-Control"))
	var raw []map[string]any
	require.NoError(t, json.Unmarshal(r.body, &raw))
	require.Len(t, raw, 2)
	for _, k := range []string{"site", "device", "sensor", "kind", "value", "unit", "quality", "ts"} {
		require.Contains(t, raw[0], k)
	}
	require.InDelta(t, 0.42, raw[0]["value"], 1e-9)
	require.Equal(t, "2026-03-01T11:59:58.000000000Z", raw[0]["ts"], "as on MQTT: UTC, nine fraction digits")
	require.Equal(t, false, raw[0]["stale"])
	require.InDelta(t, 2.0, raw[0]["age_s"], 1e-9)
	require.Nil(t, raw[1]["value"], "a bad reading has a null value, not 0")
	require.Equal(t, true, raw[1]["stale"], "older than StaleAfter (30s) is not live")
}

// A reading's age is the older of its ages by ts and by when it was
// received (Received, on the monotonic clock): a step of the wall clock
// back (NTP at a box's boot) or a sender's clock ahead cannot make a value
// after which nothing came look fresh, and a value delivered late (an
// outbox backlog, a retained message) is as old as its ts says.
func TestReadingAgeIsTheOlderOfTsAndReceipt(t *testing.T) {
	for _, tc := range []struct {
		name         string
		now          func() time.Time
		ts, received time.Duration // before the real now
		wantAge      float64
		wantStale    bool
	}{
		{"received 40 s ago, the wall clock stepped an hour back since",
			func() time.Time { return clocktest.WallStep(time.Now(), -time.Hour) }, 40 * time.Second, 40 * time.Second, 40, true},
		{"delivered just now from a backlog, ts 2 minutes ago", time.Now, 2 * time.Minute, 0, 120, true},
		{"received 40 s ago from a sender whose clock is an hour ahead", time.Now, -time.Hour, 40 * time.Second, 40, true},
		{"received 2 s ago", time.Now, 2 * time.Second, 2 * time.Second, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, func(o *Options) {
				o.StaleAfter = 30 * time.Second
				o.Now = tc.now
			})
			now := time.Now()
			e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Value: fp(0.42), Unit: "%vol",
				Quality: "good", TS: now.Add(-tc.ts).UTC(), Received: now.Add(-tc.received)})
			r := e.do(t, req{path: "/api/v1/readings"})
			require.Equal(t, http.StatusOK, r.code)
			var raw []map[string]any
			require.NoError(t, json.Unmarshal(r.body, &raw))
			require.Len(t, raw, 1)
			require.Equal(t, tc.wantStale, raw[0]["stale"])
			require.InDelta(t, tc.wantAge, raw[0]["age_s"], 1)
			require.NotContains(t, raw[0], "Received")
		})
	}
}

func TestAuthOnCommands(t *testing.T) {
	e := startServer(t, nil)
	seedAlarms(e.be, time.Now())
	path := "/api/v1/alarms/belt.t.high/ack"
	body := `{"comment":"seen"}`

	r := e.do(t, req{method: "POST", path: path, body: body, header: jsonCT})
	require.Equal(t, http.StatusUnauthorized, r.code)
	require.Contains(t, r.header.Values("WWW-Authenticate"), `Basic realm="canary", charset="UTF-8"`)
	require.Contains(t, jsonErr(t, r), "authentication required")

	r = e.do(t, req{method: "POST", path: path, body: body, header: jsonCT, user: "olga", pass: "wrong"})
	require.Equal(t, http.StatusUnauthorized, r.code)
	require.Contains(t, jsonErr(t, r), "invalid credentials")

	r = e.do(t, req{method: "POST", path: path, body: body, header: jsonCT, user: "nobody", pass: operatorPass})
	require.Equal(t, http.StatusUnauthorized, r.code)

	r = e.do(t, req{method: "POST", path: path, body: body, header: jsonCT, bearer: "not-a-token"})
	require.Equal(t, http.StatusUnauthorized, r.code)
	require.Equal(t, []string{`Bearer realm="canary"`}, r.header.Values("WWW-Authenticate"),
		"a failed bearer token must not trigger the browser's basic prompt")

	r = e.do(t, req{method: "POST", path: path, body: body, header: jsonCT, user: "victor", pass: viewerPass})
	require.Equal(t, http.StatusForbidden, r.code)
	require.Contains(t, jsonErr(t, r), "role viewer")
	_, any := e.be.lastCommand()
	require.False(t, any, "no command may reach the backend without an operator")

	// The user is the authenticated one, whatever the body says.
	r = e.do(t, req{method: "POST", path: path, body: `{"comment":"seen by me"}`, header: jsonCT, user: "olga", pass: operatorPass})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	cmd, _ := e.be.lastCommand()
	require.Equal(t, Command{Action: "ack", Alarm: "belt.t.high", User: "olga", Role: "operator", Comment: "seen by me"}, cmd)
	var ok struct {
		OK    bool   `json:"ok"`
		Alarm *Alarm `json:"alarm"`
	}
	require.NoError(t, json.Unmarshal(r.body, &ok))
	require.True(t, ok.OK)
	require.Equal(t, StateAcknowledged, ok.Alarm.State)
	require.Equal(t, "olga", ok.Alarm.AckedBy)

	// A static machine token (engineer) may act too.
	r = e.do(t, req{method: "POST", path: "/api/v1/alarms/face3-gas2.co.high/ack", body: `{}`, header: jsonCT, bearer: machineToken})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	cmd, _ = e.be.lastCommand()
	require.Equal(t, "scada", cmd.User)

	// The audit trail (history) has the user and the comment.
	h := e.do(t, req{path: "/api/v1/history?limit=2"})
	require.Equal(t, http.StatusOK, h.code)
	var hist []Transition
	require.NoError(t, json.Unmarshal(h.body, &hist))
	require.Len(t, hist, 2)
	require.Equal(t, "olga", hist[0].User)
	require.Equal(t, "seen by me", hist[0].Comment)
	require.Equal(t, "scada", hist[1].User)
}

func TestSessionLogin(t *testing.T) {
	e := startServer(t, nil)
	seedAlarms(e.be, time.Now())

	r := e.do(t, req{method: "POST", path: "/api/v1/session", user: "olga", pass: "nope"})
	require.Equal(t, http.StatusUnauthorized, r.code)
	require.Contains(t, jsonErr(t, r), "wrong user name or password")

	r = e.do(t, req{method: "POST", path: "/api/v1/session", user: "olga", pass: operatorPass})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	var s struct{ User, Role, Token string }
	require.NoError(t, json.Unmarshal(r.body, &s))
	require.Equal(t, "olga", s.User)
	require.Equal(t, "operator", s.Role)
	require.Len(t, s.Token, 64)

	r = e.do(t, req{path: "/api/v1/session", bearer: s.Token})
	require.Equal(t, http.StatusOK, r.code)
	r = e.do(t, req{method: "POST", path: "/api/v1/alarms/face3-gas.ch4.high_high/ack", body: `{"comment":"on it"}`, header: jsonCT, bearer: s.Token})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)

	r = e.do(t, req{method: "DELETE", path: "/api/v1/session", bearer: s.Token})
	require.Equal(t, http.StatusOK, r.code)
	r = e.do(t, req{method: "POST", path: "/api/v1/alarms/face3-gas2.co.high/ack", body: `{}`, header: jsonCT, bearer: s.Token})
	require.Equal(t, http.StatusUnauthorized, r.code, "a logged-out token is dead")

	// The UI's login form gets no Basic challenge (the browser would put its
	// own password prompt over the form).
	r = e.do(t, req{method: "POST", path: "/api/v1/session", user: "olga", pass: "nope", header: map[string]string{"X-Canary-UI": "1"}})
	require.Equal(t, http.StatusUnauthorized, r.code)
	require.Equal(t, []string{`Bearer realm="canary"`}, r.header.Values("WWW-Authenticate"))

	// Cross-site login attempts are refused.
	r = e.do(t, req{method: "POST", path: "/api/v1/session", user: "olga", pass: operatorPass, header: map[string]string{"Origin": "http://evil.example"}})
	require.Equal(t, http.StatusForbidden, r.code)
}

func TestSessionExpires(t *testing.T) {
	now := time.Now()
	clock := &now
	e := startServer(t, func(o *Options) {
		o.SessionTTL = time.Minute
		o.Now = func() time.Time { return *clock }
	})
	r := e.do(t, req{method: "POST", path: "/api/v1/session", user: "olga", pass: operatorPass})
	require.Equal(t, http.StatusOK, r.code)
	var s struct{ Token string }
	require.NoError(t, json.Unmarshal(r.body, &s))
	later := now.Add(2 * time.Minute)
	clock = &later
	r = e.do(t, req{path: "/api/v1/session", bearer: s.Token})
	require.Equal(t, http.StatusUnauthorized, r.code)
}

func TestCommandBadInput(t *testing.T) {
	e := startServer(t, nil)
	seedAlarms(e.be, time.Now())
	op := func(method, path, body string, hdr map[string]string) resp {
		return e.do(t, req{method: method, path: path, body: body, header: hdr, user: "olga", pass: operatorPass})
	}
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		code   int
		errHas string
	}{
		{"no content type", "POST", "/api/v1/alarms/belt.t.high/ack", `{}`, nil, 415, "Content-Type must be application/json"},
		{"form content type", "POST", "/api/v1/alarms/belt.t.high/ack", `comment=x`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"bad json", "POST", "/api/v1/alarms/belt.t.high/ack", `{"comment":`, jsonCT, 400, "bad JSON body"},
		{"empty body", "POST", "/api/v1/alarms/belt.t.high/ack", ``, jsonCT, 400, "empty body"},
		{"unknown field", "POST", "/api/v1/alarms/belt.t.high/ack", `{"user":"mallory"}`, jsonCT, 400, `unknown field "user"`},
		{"trailing data", "POST", "/api/v1/alarms/belt.t.high/ack", `{} {}`, jsonCT, 400, "trailing data"},
		{"array body", "POST", "/api/v1/alarms/belt.t.high/ack", `[]`, jsonCT, 400, "bad JSON body"},
		{"null body", "POST", "/api/v1/alarms/belt.t.high/ack", `null`, jsonCT, 400, "want a JSON object"},
		{"string body", "POST", "/api/v1/alarms/belt.t.high/ack", ` "ack" `, jsonCT, 400, `want a JSON object such as {"comment": "..."}, got "ack"`},
		{"long comment in characters", "POST", "/api/v1/alarms/belt.t.high/ack", `{"comment":"` + strings.Repeat("甲", 1001) + `"}`, jsonCT, 400, "at most 1000"},
		{"oversize", "POST", "/api/v1/alarms/belt.t.high/ack", `{"comment":"` + strings.Repeat("x", 20000) + `"}`, jsonCT, 413, "body larger than 16384 bytes"},
		{"long comment", "POST", "/api/v1/alarms/belt.t.high/ack", `{"comment":"` + strings.Repeat("x", 1001) + `"}`, jsonCT, 400, "at most 1000"},
		{"unknown alarm", "POST", "/api/v1/alarms/no.such.alarm/ack", `{}`, jsonCT, 404, "unknown alarm"},
		{"bad alarm id", "POST", "/api/v1/alarms/BAD%20ID/ack", `{}`, jsonCT, 400, "is not an id"},
		{"unknown action", "POST", "/api/v1/alarms/belt.t.high/delete", `{}`, jsonCT, 404, `unknown action "delete"`},
		{"ack acked", "POST", "/api/v1/alarms/face3-gas.ch4.high/ack", `{}`, jsonCT, 409, "not allowed"},
		{"reset active latch", "POST", "/api/v1/alarms/face3-gas.ch4.high_high/reset", `{}`, jsonCT, 409, "condition still active"},
		{"shelve without reason", "POST", "/api/v1/alarms/belt.t.high/shelve", `{"duration":"30m"}`, jsonCT, 400, "reason is required"},
		{"shelve without duration", "POST", "/api/v1/alarms/belt.t.high/shelve", `{"comment":"sensor swap"}`, jsonCT, 400, "duration: required"},
		{"shelve bad duration", "POST", "/api/v1/alarms/belt.t.high/shelve", `{"comment":"x","duration":"soon"}`, jsonCT, 400, `duration "soon"`},
		{"shelve negative", "POST", "/api/v1/alarms/belt.t.high/shelve", `{"comment":"x","duration":"-5m"}`, jsonCT, 400, "must be positive"},
		{"shelve too long (backend rule)", "POST", "/api/v1/alarms/belt.t.high/shelve", `{"comment":"x","duration":"24h"}`, jsonCT, 400, "maximum 8h"},
		{"shelve P1 (backend rule)", "POST", "/api/v1/alarms/face3-gas.ch4.high_high/shelve", `{"comment":"x","duration":"1h"}`, jsonCT, 409, "cannot be shelved"},
		{"duration on ack", "POST", "/api/v1/alarms/belt.t.high/ack", `{"duration":"1h"}`, jsonCT, 400, "only allowed for shelve and out_of_service"},
		{"one-shot with a duration", "POST", "/api/v1/alarms/belt.t.high/shelve", `{"comment":"x","duration":"1h","one_shot":true}`, jsonCT, 400, "give one_shot or a duration, not both"},
		{"one-shot ack", "POST", "/api/v1/alarms/belt.t.high/ack", `{"one_shot":true}`, jsonCT, 400, "one_shot: only allowed for shelve"},
		{"out of service by an operator", "POST", "/api/v1/alarms/belt.t.high/out_of_service", `{"comment":"x"}`, jsonCT, 403, "this needs engineer"},
		{"return to service by an operator", "POST", "/api/v1/alarms/belt.t.high/return_to_service", `{}`, jsonCT, 403, "this needs engineer"},
		{"wrong method on command", "GET", "/api/v1/alarms/belt.t.high/ack", ``, nil, 405, "method GET not allowed"},
		{"wrong method on alarms", "DELETE", "/api/v1/alarms", ``, nil, 405, "allowed: GET"},
		{"cross origin", "POST", "/api/v1/alarms/belt.t.high/ack", `{}`, map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, "cross-origin"},
		{"unknown endpoint", "GET", "/api/v1/nothing", ``, nil, 404, "no such endpoint"},
		{"bad history limit", "GET", "/api/v1/history?limit=-1", ``, nil, 400, "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := op(c.method, c.path, c.body, c.hdr)
			require.Equal(t, c.code, r.code, "%s", r.body)
			require.Contains(t, jsonErr(t, r), c.errHas)
		})
	}
	r := op("GET", "/api/v1/alarms/belt.t.high/ack", "", nil)
	require.Equal(t, "POST", r.header.Get("Allow"))

	// A backend failure that is not the operator's fault is a 500 with the reason.
	e.be.failWith = errors.New("alarm store unavailable")
	r = op("POST", "/api/v1/alarms/belt.t.high/ack", `{}`, jsonCT)
	require.Equal(t, http.StatusInternalServerError, r.code)
	require.Contains(t, jsonErr(t, r), "alarm store unavailable")
}

func TestShelveAndUnshelve(t *testing.T) {
	e := startServer(t, nil)
	seedAlarms(e.be, time.Now())
	r := e.do(t, req{method: "POST", path: "/api/v1/alarms/belt.t.high/shelve", body: `{"comment":"belt stopped for maintenance","duration":"2h"}`,
		header: jsonCT, user: "olga", pass: operatorPass})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	cmd, _ := e.be.lastCommand()
	require.Equal(t, 2*time.Hour, cmd.Duration)
	require.Equal(t, "belt stopped for maintenance", cmd.Comment)
	r = e.do(t, req{method: "POST", path: "/api/v1/alarms/belt.t.high/unshelve", body: `{}`, header: jsonCT, user: "olga", pass: operatorPass})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
}

// One-shot shelving (until the alarm returns) and out of service, role
// engineer, with a reason and an optional expiry (SAFETY.md).
func TestOneShotShelveAndOutOfService(t *testing.T) {
	e := startServer(t, nil)
	seedAlarms(e.be, time.Now())
	r := e.do(t, req{method: "POST", path: "/api/v1/alarms/belt.t.high/shelve", body: `{"comment":"purging the line","one_shot":true}`,
		header: jsonCT, user: "olga", pass: operatorPass})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	cmd, _ := e.be.lastCommand()
	require.Equal(t, Command{Action: "shelve", Alarm: "belt.t.high", User: "olga", Role: "operator", Comment: "purging the line", OneShot: true}, cmd)

	eng := func(path, body string) resp {
		return e.do(t, req{method: "POST", path: path, body: body, header: jsonCT, bearer: machineToken})
	}
	n := e.be.commandCount()
	r = e.do(t, req{method: "POST", path: "/api/v1/alarms/face3-gas2.co.high/out_of_service", body: `{"comment":"x","duration":"1h"}`,
		header: jsonCT, user: "olga", pass: operatorPass})
	require.Equal(t, http.StatusForbidden, r.code, "%s", r.body)
	r = eng("/api/v1/alarms/face3-gas2.co.high/out_of_service", `{"duration":"4h"}`)
	require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
	require.Contains(t, jsonErr(t, r), "a reason is required to take an alarm out of service")
	r = eng("/api/v1/alarms/face3-gas2.co.high/out_of_service", `{"comment":"detector swap","duration":"0s"}`)
	require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
	require.Contains(t, jsonErr(t, r), "must be positive")
	require.Equal(t, n, e.be.commandCount(), "refused commands never reached the backend")
	r = eng("/api/v1/alarms/face3-gas2.co.high/out_of_service", `{"comment":"detector swap","duration":"4h"}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, n+1, e.be.commandCount())
	cmd, _ = e.be.lastCommand()
	require.Equal(t, Command{Action: "out_of_service", Alarm: "face3-gas2.co.high", User: "scada", Role: "engineer", Comment: "detector swap", Duration: 4 * time.Hour}, cmd)
	var ok struct {
		Alarm *Alarm `json:"alarm"`
	}
	require.NoError(t, json.Unmarshal(r.body, &ok))
	require.Equal(t, StateOutOfService, ok.Alarm.State)
	r = eng("/api/v1/alarms/face3-gas2.co.high/return_to_service", `{"comment":"new detector calibrated"}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	cmd, _ = e.be.lastCommand()
	require.Equal(t, "return_to_service", cmd.Action)
	require.Zero(t, cmd.Duration)
}

func TestAnonymousNoneNeedsLogin(t *testing.T) {
	e := startServer(t, func(o *Options) { o.Config.Anonymous = configs.AnonymousNone })
	for _, p := range []string{"/api/v1/readings", "/api/v1/alarms", "/api/v1/devices", "/api/v1/history", "/api/v1/holds", "/api/v1/events"} {
		r := e.do(t, req{path: p})
		require.Equal(t, http.StatusUnauthorized, r.code, p)
		require.NotEmpty(t, r.header.Get("WWW-Authenticate"))
	}
	r := e.do(t, req{path: "/api/v1/readings", user: "victor", pass: viewerPass})
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "[]\n", string(r.body))
	e.be.setFaultHold(true, "gateway overloaded")
	r = e.do(t, req{path: "/api/v1/holds", user: "victor", pass: viewerPass})
	require.Equal(t, http.StatusOK, r.code)
	require.JSONEq(t, `{"gen":1,"holds":[{"seq":1,"ts":"`+e.be.FaultHolds().Holds[0].TS.UTC().Format(jsonenc.TimeLayout)+`","type":"fault_hold","alarm":"","from":"","to":"","active":false,"value":null,"limit":null,"user":"","comment":"gateway overloaded"}]}`, string(r.body))
	// Probes and the UI shell stay open so the login form can load.
	require.Equal(t, http.StatusOK, e.do(t, req{path: "/healthz"}).code)
	require.Equal(t, http.StatusOK, e.do(t, req{path: "/"}).code)
	require.Equal(t, http.StatusOK, e.do(t, req{path: "/api/v1/info"}).code)
}

// sseReader reads server-sent events from a live stream.
type sseReader struct {
	sc *bufio.Scanner
}

func (s *sseReader) next(t *testing.T) (string, string) {
	t.Helper()
	var ev, data string
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if data != "" {
				return ev, data
			}
			ev = ""
		case strings.HasPrefix(line, "event: "):
			ev = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	t.Fatalf("event stream ended: %v", s.sc.Err())
	return "", ""
}

func openStream(t *testing.T, e *testEnv) (*sseReader, *http.Response) {
	t.Helper()
	hr, err := http.NewRequestWithContext(t.Context(), "GET", e.url+"/api/v1/events", nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	// Wait until the server has registered the client before publishing.
	require.Eventually(t, func() bool {
		e.srv.hub.mu.Lock()
		defer e.srv.hub.mu.Unlock()
		return len(e.srv.hub.clients) > 0
	}, 5*time.Second, 5*time.Millisecond)
	return &sseReader{sc: bufio.NewScanner(res.Body)}, res
}

func TestEventStream(t *testing.T) {
	e := startServer(t, nil)
	s, _ := openStream(t, e)

	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Value: fp(1.25), Unit: "%vol", Quality: "good", TS: time.Now()})
	e.be.setAlarm(Alarm{ID: "face3-gas.ch4.high", Site: "demo", Device: "face3-gas", Sensor: "ch4", Condition: "high", Priority: 2,
		State: StateUnacknowledged, Active: true, Value: fp(1.25), Limit: fp(1.0), Since: time.Now()}, "activate", "", "")
	e.srv.Publish(Event{Device: &Device{Site: "demo", ID: "face3-gas", State: "offline", Error: "i/o timeout"}})
	e.srv.Publish(Event{}) // nothing set: ignored

	ev, data := s.next(t)
	require.Equal(t, "reading", ev)
	var rd Reading
	require.NoError(t, json.Unmarshal([]byte(data), &rd))
	require.InDelta(t, 1.25, *rd.Value, 1e-9)

	ev, data = s.next(t)
	require.Equal(t, "alarm", ev)
	require.Contains(t, data, `"state":"unacknowledged"`)

	ev, data = s.next(t)
	require.Equal(t, "transition", ev)
	var tr Transition
	require.NoError(t, json.Unmarshal([]byte(data), &tr))
	require.Equal(t, Transition{Seq: 1, TS: tr.TS, Type: "activate", Alarm: "face3-gas.ch4.high", From: "normal", To: "unacknowledged",
		Active: true, Value: fp(1.25), Limit: fp(1.0)}, tr)

	ev, data = s.next(t)
	require.Equal(t, "device", ev)
	require.Contains(t, data, `"state":"offline"`)
}

func TestSlowStreamClientIsCutNotBlocking(t *testing.T) {
	h := newHub(2)
	slow := h.add()
	fast := h.add()
	var spare [][]byte
	for i := 0; i < 2; i++ {
		require.Zero(t, h.broadcast([]byte("x")))
		<-fast.ready
		spare = fast.take(spare)
		require.Equal(t, [][]byte{[]byte("x")}, spare)
	}
	require.Equal(t, 1, h.broadcast([]byte("x")), "the third byte overflows the slow client's budget")
	select {
	case <-slow.kicked:
	default:
		t.Fatal("slow client was not told to resync")
	}
	require.Zero(t, h.broadcast([]byte("y")), "the slow client is gone; the fast one still gets messages")
	require.Equal(t, [][]byte{[]byte("x"), []byte("y")}, fast.take(nil))
}

// One poll of a site is a reading per sensor, published in one turn of
// the gateway's core: a client that reads as fast as it can gets them all
// (a 256-message bound sent every client `resync` on every poll of a site
// of 255 sensors or more).
func TestStreamBurstOfAPollReachesTheClient(t *testing.T) {
	e := startServer(t, nil)
	s, _ := openStream(t, e)
	const sensors = 2000
	for i := range sensors {
		e.srv.Publish(Event{Reading: &Reading{Site: "demo", Device: fmt.Sprintf("d%03d", i/20), Sensor: fmt.Sprintf("s%02d", i%20),
			Kind: "methane", Value: fp(0.4), Unit: "%vol", Quality: "good", TS: time.Now()}})
	}
	for i := range sensors {
		ev, data := s.next(t)
		require.Equal(t, "reading", ev, "message %d: %s", i, data)
	}
	require.Zero(t, testutil.ToFloat64(e.srv.metrics.sseDropped))
}

// A client that stops reading (its TCP window full) neither keeps its
// goroutine nor makes the server's stop fail: Serve returns nil within
// the grace, and the client is gone.
func TestStalledStreamClientDoesNotHoldTheStop(t *testing.T) {
	be := newFakeBackend()
	srv, err := New(Options{Backend: be, Config: configs.HTTP{Listen: "127.0.0.1:0"}, ShutdownGrace: 3 * time.Second})
	require.NoError(t, err)
	srv.hub = newHub(256 << 10)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(4096))
	_, err = fmt.Fprintf(conn, "GET /api/v1/events HTTP/1.1\r\nHost: %s\r\n\r\n", ln.Addr())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !srv.hub.empty() }, 5*time.Second, 5*time.Millisecond)
	var c *client
	srv.hub.mu.Lock()
	for k := range srv.hub.clients {
		c = k
	}
	srv.hub.mu.Unlock()
	queued := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.queued
	}
	// Never read: publish at the pace the server writes until its write
	// blocks (the queue stops draining), then past the budget.
	big := Device{Site: "demo", ID: "d", State: "offline", Error: strings.Repeat("x", 1000)}
	blocked := false
	for i := 0; i < 2000 && !blocked; i++ {
		for range 100 {
			srv.Publish(Event{Device: &big})
		}
		blocked = !assert.Eventually(&quiet{}, func() bool { return queued() == 0 }, 500*time.Millisecond, time.Millisecond)
	}
	require.True(t, blocked, "the server's writes never blocked")
	// Until its socket's buffers are full and its queue past the budget,
	// however fast it drained before (a busy machine can make the first
	// loop's wait run out early).
	for i := 0; i < 200_000 && !srv.hub.empty(); i++ {
		srv.Publish(Event{Device: &big})
	}
	require.True(t, srv.hub.empty(), "the stalled client was never cut")
	require.Equal(t, 1.0, testutil.ToFloat64(srv.metrics.sseClients), "its handler is stuck in a write")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "the stop waited out its grace")
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
	require.Zero(t, testutil.ToFloat64(srv.metrics.sseClients))
}

// quiet is an assert.TestingT that reports nothing.
type quiet struct{}

func (quiet) Errorf(string, ...any) {}

func TestShutdownEndsOpenStreams(t *testing.T) {
	be := newFakeBackend()
	srv, err := New(Options{Backend: be, Config: configs.HTTP{Listen: "127.0.0.1:0"}})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	e := &testEnv{url: "http://" + ln.Addr().String(), srv: srv, be: be}
	_, res := openStream(t, e)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return with an open event stream")
	}
	_, err = io.ReadAll(res.Body)
	require.NoError(t, err, "the stream ends cleanly")
	rec := httptestRecorder(t, srv, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, rec.code, "a stopping server is not ready")
}

func httptestRecorder(t *testing.T, srv *Server, path string) resp {
	t.Helper()
	hr, err := http.NewRequestWithContext(t.Context(), "GET", path, nil)
	require.NoError(t, err)
	w := &recorder{h: http.Header{}}
	srv.Handler().ServeHTTP(w, hr)
	return resp{code: w.code, header: w.h, body: w.buf.Bytes()}
}

type recorder struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(c int)   { r.code = c }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.buf.Write(b)
}

func TestHealthReadyMetrics(t *testing.T) {
	e := startServer(t, nil)
	r := e.do(t, req{path: "/healthz"})
	require.Equal(t, http.StatusOK, r.code)
	require.JSONEq(t, `{"status":"ok"}`, string(r.body))
	r = e.do(t, req{path: "/readyz"})
	require.Equal(t, http.StatusOK, r.code)
	e.be.mu.Lock()
	e.be.ready = false
	e.be.mu.Unlock()
	r = e.do(t, req{path: "/readyz"})
	require.Equal(t, http.StatusServiceUnavailable, r.code)
	require.JSONEq(t, `{"status":"not ready"}`, string(r.body))

	// The gateway's own collectors on the same registry show up on /metrics.
	g := prometheus.NewCounter(prometheus.CounterOpts{Name: "canary_test_gateway_total", Help: "test"})
	e.reg.MustRegister(g)
	g.Add(3)
	e.do(t, req{method: "POST", path: "/api/v1/alarms/x.y.z/ack", body: `{}`, header: jsonCT})
	r = e.do(t, req{path: "/metrics"})
	require.Equal(t, http.StatusOK, r.code)
	body := string(r.body)
	require.Contains(t, body, "canary_test_gateway_total 3")
	require.Contains(t, body, `canary_http_requests_total{code="200",route="readyz"} 1`)
	require.Contains(t, body, `canary_http_requests_total{code="401",route="command"} 1`)
	require.Contains(t, body, `canary_http_auth_failures_total{reason="unauthenticated"} 1`)
	require.Contains(t, body, "canary_http_sse_clients 0")

	// Metrics go on the registry passed in, never the global one: a second
	// server on the same registry is refused, on a fresh one it is fine.
	_, err := New(Options{Backend: e.be, Registry: e.reg})
	require.ErrorContains(t, err, "register http metrics")
	_, err = New(Options{Backend: e.be, Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
}

func TestUIServedWithSecurityHeaders(t *testing.T) {
	e := startServer(t, nil)
	r := e.do(t, req{path: "/"})
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
	require.Contains(t, string(r.body), `<script src="app.js" defer></script>`)
	csp := r.header.Get("Content-Security-Policy")
	require.Contains(t, csp, "default-src 'self'")
	require.Contains(t, csp, "frame-ancestors 'none'")
	require.NotContains(t, csp, "unsafe-inline")
	require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
	require.Equal(t, "DENY", r.header.Get("X-Frame-Options"))
	require.Equal(t, "no-referrer", r.header.Get("Referrer-Policy"))

	r = e.do(t, req{path: "/app.js"})
	require.Equal(t, http.StatusOK, r.code)
	require.Contains(t, r.header.Get("Content-Type"), "javascript")
	r = e.do(t, req{path: "/app.css"})
	require.Contains(t, r.header.Get("Content-Type"), "text/css")
	require.Equal(t, http.StatusNotFound, e.do(t, req{path: "/nope.html"}).code)
	require.Equal(t, http.StatusNotFound, e.do(t, req{path: "/../server.go"}).code)
	require.Equal(t, http.StatusMethodNotAllowed, e.do(t, req{method: "POST", path: "/"}).code)
	// No cookies anywhere: nothing a cross-site request could ride on.
	require.Empty(t, r.header.Values("Set-Cookie"))

	r = e.do(t, req{path: "/api/v1/info"})
	require.JSONEq(t, `{"site":"demo","name":"Demo colliery, face 3","anonymous":"viewer","stale_after_s":30}`, string(r.body))
}

func TestTrend(t *testing.T) {
	base := time.Now().Add(-time.Minute)
	// Three points over three seconds: one point per second.
	e := startServer(t, func(o *Options) { o.TrendPoints, o.TrendWindow = 3, 3*time.Second })
	for i := 0; i < 5; i++ {
		e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Value: fp(float64(i)), Unit: "%vol",
			Quality: "good", TS: base.Add(time.Duration(i) * time.Second), Limits: []Limit{{Condition: "high", Limit: 1, Priority: 2}, {Condition: "high_high", Limit: 1.5, Priority: 1}}})
	}
	// A republished older reading is ignored.
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Unit: "%vol", Value: fp(99), Quality: "good", TS: base})
	r := e.do(t, req{path: "/api/v1/trends/face3-gas/ch4"})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	var tr struct {
		Unit   string
		Limits []Limit
		Points []TrendPoint
	}
	require.NoError(t, json.Unmarshal(r.body, &tr))
	require.Equal(t, "%vol", tr.Unit)
	require.Len(t, tr.Limits, 2)
	require.Len(t, tr.Points, 3, "bounded to TrendPoints")
	require.InDelta(t, 2.0, *tr.Points[0].Value, 1e-9)
	require.InDelta(t, 4.0, *tr.Points[2].Value, 1e-9)

	r = e.do(t, req{path: "/api/v1/trends/face3-gas/nope"})
	require.Equal(t, http.StatusNotFound, r.code)
	r = e.do(t, req{path: "/api/v1/trends/Face3/ch4"})
	require.Equal(t, http.StatusBadRequest, r.code)
}

func TestTrendWindow(t *testing.T) {
	tr := newTrends(10*time.Second, 1000)
	base := time.Now()
	for i := 0; i < 100; i++ {
		tr.add(Reading{Device: "d", Sensor: "s", Value: fp(float64(i)), TS: base.Add(time.Duration(i) * time.Second)})
	}
	pts := tr.get("d", "s")
	require.Len(t, pts, 11, "only the last 10s are kept")
	require.InDelta(t, 89.0, *pts[0].Value, 1e-9)
	require.Empty(t, tr.get("d", "other"))
}

// TestTrendDownsampling: with fewer points than readings in the window,
// readings share points; the chart still spans the window, keeps a spike,
// a gap (no value) and the worst quality, and never holds more points than
// it was given.
func TestTrendDownsampling(t *testing.T) {
	tr := newTrends(60*time.Second, 6) // one point per 10 s
	base := time.Unix(1_800_000_000, 0)
	for i := 0; i < 120; i++ {
		r := Reading{Device: "d", Sensor: "s", Value: fp(0.5), Quality: "good", TS: base.Add(time.Duration(i) * time.Second)}
		switch i {
		case 93:
			r.Value = fp(2.75) // a spike inside a bucket
		case 104:
			r.Value, r.Quality = nil, "bad" // a lost reading
		case 112:
			r.Quality = "uncertain"
		}
		tr.add(r)
	}
	pts := tr.get("d", "s")
	require.LessOrEqual(t, len(pts), 6)
	require.GreaterOrEqual(t, len(pts), 5, "the window stays covered")
	span := pts[len(pts)-1].TS.Sub(pts[0].TS)
	require.GreaterOrEqual(t, span, 40*time.Second)
	require.LessOrEqual(t, span, 60*time.Second)
	var spike, gap, uncertain bool
	for _, p := range pts {
		switch {
		case p.Value == nil:
			gap = true
			require.Equal(t, "bad", p.Quality)
		case *p.Value == 2.75:
			spike = true
		}
		if p.Quality == "uncertain" {
			uncertain = true
		}
	}
	require.True(t, spike, "the spike survives downsampling: %+v", pts)
	require.True(t, gap, "the missing value survives downsampling")
	require.True(t, uncertain, "the worst quality of a bucket is kept")
}

// TestTrendFloat32: values are kept as float32 and served in their
// shortest form, so 1.2 comes back as 1.2.
func TestTrendFloat32(t *testing.T) {
	tr := newTrends(time.Minute, 10)
	tr.add(Reading{Device: "d", Sensor: "s", Value: fp(1.2), Quality: "good", TS: time.Now()})
	pts := tr.get("d", "s")
	require.Len(t, pts, 1)
	b, err := json.Marshal(pts[0].Value)
	require.NoError(t, err)
	require.Equal(t, "1.2", string(b))
	require.Zero(t, pts[0].TS.UnixNano()%int64(100*time.Millisecond), "times to 0.1 s")
}

func BenchmarkTrendAdd(b *testing.B) {
	tr := newTrends(15*time.Minute, 262)
	sensors := make([]string, 20)
	for i := range sensors {
		sensors[i] = fmt.Sprintf("s%02d", i)
	}
	base := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tr.addSample("d001", sensors[i%20], base.Add(time.Duration(i/20)*time.Second), 1.5, "good")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkTrendSite adds the readings of a 1 000-sensor site (50 devices
// × 20) in poll order: by names as Trend does, by the sensors' numbers one
// reading at a time, and a poll at a time as the gateway does (TrendPoll).
func BenchmarkTrendSite(b *testing.B) {
	const devices, sensors = 50, 20
	var devs, sens []string
	for d := range devices {
		devs = append(devs, fmt.Sprintf("d%03d", d))
	}
	for s := range sensors {
		sens = append(sens, fmt.Sprintf("s%02d", s))
	}
	base := time.Now()
	for _, mode := range []string{"by-name", "by-number", "by-poll"} {
		b.Run(mode, func(b *testing.B) {
			tr := newTrends(15*time.Minute, 131)
			ids := make([]int32, 0, devices*sensors)
			for _, d := range devs {
				for _, s := range sens {
					ids = append(ids, tr.id(d, s))
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				n := i % (devices * sensors)
				ts := base.Add(time.Duration(i/(devices*sensors)) * time.Second)
				switch mode {
				case "by-name":
					tr.addSample(devs[n/sensors], sens[n%sensors], ts, 1.5, "good")
					i++
				case "by-number":
					p := tr.poll(ts)
					p.Add(ids[n], 1.5, "good")
					p.Done()
					i++
				default: // n is a poll's first reading: a whole poll
					p := tr.poll(ts)
					for s := range sensors {
						p.Add(ids[n+s], 1.5, "good")
					}
					p.Done()
					i += sensors
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/reading")
		})
	}
}

func TestLoadUsers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("hashed-pass"), bcrypt.MinCost)
	require.NoError(t, err)
	cfg := configs.HTTP{Users: []configs.HTTPUser{
		{Name: "plain", Role: "operator", PasswordFile: write("plain.pass", "plain-pass\n")},
		{Name: "hashed", Role: "viewer", PasswordFile: write("hashed.pass", string(hash)+"\n")},
		{Name: "inline", Role: "engineer", PasswordHash: string(hash), TokenFile: write("tok", "  "+machineToken+"  \n")},
	}}
	users, err := LoadUsers(cfg)
	require.NoError(t, err)
	require.Len(t, users, 3)
	require.NoError(t, bcrypt.CompareHashAndPassword(users[0].PasswordHash, []byte("plain-pass")), "plain passwords are hashed at load")
	require.NoError(t, bcrypt.CompareHashAndPassword(users[1].PasswordHash, []byte("hashed-pass")))
	require.Equal(t, machineToken, users[2].Token)

	_, err = LoadUsers(configs.HTTP{Users: []configs.HTTPUser{{Name: "x", Role: "viewer", TokenFile: write("short", "abc")}}})
	require.ErrorContains(t, err, "http.users[0] x: token_file")
	require.ErrorContains(t, err, "shorter than 16")
	_, err = LoadUsers(configs.HTTP{Users: []configs.HTTPUser{{Name: "x", Role: "viewer", PasswordFile: filepath.Join(dir, "missing")}}})
	require.ErrorContains(t, err, "password_file")
	_, err = LoadUsers(configs.HTTP{Users: []configs.HTTPUser{{Name: "x", Role: "viewer", PasswordFile: write("empty", "\n")}}})
	require.ErrorContains(t, err, "is empty")

	// One token for two users would act as whichever came last.
	_, err = LoadUsers(configs.HTTP{Users: []configs.HTTPUser{
		{Name: "olga", Role: "operator", TokenFile: write("olga.tok", machineToken)},
		{Name: "scada", Role: "viewer", TokenFile: write("scada.tok", machineToken+"\n")},
	}})
	require.ErrorContains(t, err, "http.users[1] scada: token_file "+filepath.Join(dir, "scada.tok")+" holds the same token as http.users[0] olga")
	_, err = newAuthenticator([]User{{Name: "a", Role: "viewer", Token: machineToken}, {Name: "b", Role: "operator", Token: machineToken}}, time.Hour)
	require.ErrorContains(t, err, `user "b": same token as user "a"`)

	// An unknown name is checked against a hash of the users' own cost.
	costly, err := bcrypt.GenerateFromPassword([]byte("costly-pass"), bcrypt.DefaultCost+1)
	require.NoError(t, err)
	a, err := newAuthenticator([]User{{Name: "c", Role: "viewer", PasswordHash: costly}, {Name: "d", Role: "viewer", PasswordHash: hash}}, time.Hour)
	require.NoError(t, err)
	dummyCost, err := bcrypt.Cost(a.dummy)
	require.NoError(t, err)
	require.Equal(t, bcrypt.DefaultCost+1, dummyCost)

	// Resolved users work end to end through basic auth.
	e := startServer(t, func(o *Options) { o.Users = users })
	r := e.do(t, req{method: "POST", path: "/api/v1/session", user: "plain", pass: "plain-pass"})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
}

func TestNewRejectsBadOptions(t *testing.T) {
	_, err := New(Options{})
	require.ErrorContains(t, err, "Backend is required")
	_, err = New(Options{Backend: newFakeBackend(), Config: configs.HTTP{Listen: "nonsense"}})
	require.ErrorContains(t, err, "listen")
	_, err = New(Options{Backend: newFakeBackend(), Users: []User{{Name: "a", Role: "root"}}})
	require.ErrorContains(t, err, `unknown role "root"`)
	// A non-loopback listen is only a warning: it was configured on purpose.
	_, err = New(Options{Backend: newFakeBackend(), Config: configs.HTTP{Listen: "0.0.0.0:0"}})
	require.NoError(t, err)
}

func TestRunListensOnConfiguredAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	srv, err := New(Options{Backend: newFakeBackend(), Config: configs.HTTP{Listen: addr}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	require.Eventually(t, func() bool {
		res, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	// A taken port is a clear error, not a hang.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	srv2, err := New(Options{Backend: newFakeBackend(), Config: configs.HTTP{Listen: busy.Addr().String()}})
	require.NoError(t, err)
	require.ErrorContains(t, srv2.Run(t.Context()), "http listen "+busy.Addr().String())
}
