package httpapi

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
)

// Password checks are rationed: a flood of Basic requests gets 429 with
// Retry-After instead of starving the gateway's CPU, while token requests
// (no bcrypt) are still served.
func TestPasswordChecksAreRationed(t *testing.T) {
	e := startServer(t, func(o *Options) { o.Config.Anonymous = configs.AnonymousNone })
	e.srv.auth.slotWait = time.Millisecond // waiting for a slot fails almost at once
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do(t, req{path: "/api/v1/alarms", user: "nobody", pass: "guess"})
			mu.Lock()
			codes[r.code]++
			mu.Unlock()
			if r.code == http.StatusTooManyRequests {
				require.Equal(t, "2", r.header.Get("Retry-After"))
			}
		}()
	}
	wg.Wait()
	require.Positive(t, codes[http.StatusTooManyRequests], "some requests were told to come back: %v", codes)
	require.Positive(t, codes[http.StatusUnauthorized], "the others were checked and refused: %v", codes)
	require.Equal(t, 24, codes[http.StatusTooManyRequests]+codes[http.StatusUnauthorized], "%v", codes)
	r := e.do(t, req{path: "/api/v1/alarms", bearer: machineToken})
	require.Equal(t, http.StatusOK, r.code)
}

// A server on loopback answers only to an IP address or localhost: a
// DNS-rebinding page cannot read the site's data.
func TestLoopbackServerRefusesForeignHostNames(t *testing.T) {
	e := startServer(t, nil)
	hr, err := http.NewRequest(http.MethodGet, e.url+"/api/v1/readings", nil)
	require.NoError(t, err)
	hr.Host = "evil.example:8080"
	res, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusMisdirectedRequest, res.StatusCode)
	hr.Host = "localhost:8080"
	res, err = http.DefaultClient.Do(hr)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
}

// Behind a reverse proxy (docs/http-api.md, "TLS"), the browser's Origin
// is the proxy's and the Host is the proxy's own or the one it passes
// through: with http.public_origins both are accepted, on a loopback
// listener too, and nothing else is. Without it the UI could read but
// never act (403 cross-origin), or got 421 for every request.
func TestReverseProxyOrigins(t *testing.T) {
	e := startServer(t, func(o *Options) { o.Config.PublicOrigins = []string{"https://Canary.Example.com/"} })
	send := func(method, path, host, origin, body string) int {
		hr, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader(body))
		require.NoError(t, err)
		if host != "" {
			hr.Host = host
		}
		if origin != "" {
			hr.Header.Set("Origin", origin)
		}
		hr.Header.Set("Content-Type", "application/json")
		hr.SetBasicAuth("olga", operatorPass)
		res, err := http.DefaultClient.Do(hr)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	e.be.setAlarm(Alarm{ID: "belt.t.high", Site: "demo", Device: "belt", Sensor: "t", Condition: "high", Priority: 4,
		State: StateUnacknowledged, Active: true, Since: time.Now()}, "activate", "", "")
	ack := "/api/v1/alarms/belt.t.high/ack"
	// The proxy rewrites Host to the listener (nginx's default).
	require.Equal(t, http.StatusOK, send("POST", ack, "", "https://canary.example.com", `{"comment":"via the proxy"}`))
	require.Equal(t, http.StatusForbidden, send("POST", ack, "", "https://evil.example", `{}`))
	require.Equal(t, http.StatusForbidden, send("POST", ack, "", "http://canary.example.com", `{}`), "another scheme is another origin")
	// The proxy passes the browser's Host through.
	require.Equal(t, http.StatusOK, send("GET", "/api/v1/readings", "canary.example.com", "", ""))
	require.Equal(t, http.StatusOK, send("GET", "/api/v1/readings", "canary.example.com:8443", "", ""), "a name, whatever the port")
	require.Equal(t, http.StatusMisdirectedRequest, send("GET", "/api/v1/readings", "evil.example", "", ""))
	require.Equal(t, http.StatusMisdirectedRequest, send("GET", "/api/v1/readings", "canary.example.com.evil.example", "", ""))

	// A default port is as a browser writes the origin: without it.
	e = startServer(t, func(o *Options) {
		o.Config.PublicOrigins = []string{"https://canary.example.com:443", "http://ops.example.com:8080"}
	})
	e.be.setAlarm(Alarm{ID: "belt.t.high", Site: "demo", Device: "belt", Sensor: "t", Condition: "high", Priority: 4,
		State: StateUnacknowledged, Active: true, Since: time.Now()}, "activate", "", "")
	require.Equal(t, http.StatusOK, send("POST", ack, "", "https://canary.example.com", `{"comment":"via the proxy"}`))
	require.Equal(t, http.StatusConflict, send("POST", ack, "ops.example.com", "http://ops.example.com:8080", `{}`), "past the origin check (already acknowledged)")
	require.Equal(t, http.StatusForbidden, send("POST", ack, "", "http://ops.example.com", `{}`), "another port is another origin")
}
