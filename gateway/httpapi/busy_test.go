package httpapi

import (
	"net/http"
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
