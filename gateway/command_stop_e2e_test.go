package gateway_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/gateway"
	"github.com/canary-gw/canary/internal/testenv"
)

// Operator commands arriving over HTTP while the gateway stops do not hold
// the stop up: one that reaches the core after it stopped taking commands
// (its drain) is answered "gateway stopping". It used to wait on the
// core's channel with the request's context, which http.Server.Shutdown
// does not cancel: the HTTP server waited its 5 s grace, and Run returned
// "http shutdown: context deadline exceeded" (exit 1 on a clean stop).
func TestCommandsDuringStopDoNotHoldItUp(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	_, text := startSim(t, simSite)
	site := loadYAML(t, "site.yaml", gatewaySite(text, broker.URL, t.TempDir(), "olga", bcryptHash(t, "pw")))
	for attempt := range 8 { // the command must hit the drain: a race, tried a few times
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		s2 := *site
		s2.Outbox.Dir = t.TempDir()
		gw, err := gateway.New(gateway.Options{Site: &s2, Log: zerolog.Nop(), HTTPListener: ln})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- gw.Run(ctx) }()
		url := "http://" + ln.Addr().String() + "/api/v1/alarms/face-gas.ch4.high/ack"
		time.Sleep(500 * time.Millisecond)
		var stop atomic.Bool
		var wg sync.WaitGroup
		var sent atomic.Int64
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{Timeout: 20 * time.Second}
				for !stop.Load() {
					req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(`{"comment":"x"}`))
					req.Header.Set("Content-Type", "application/json")
					req.SetBasicAuth("olga", "pw")
					resp, err := c.Do(req)
					if err == nil {
						_ = resp.Body.Close()
					}
					sent.Add(1)
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		t0 := time.Now()
		cancel()
		err = <-done
		took := time.Since(t0)
		stop.Store(true)
		wg.Wait()
		_ = gw.Close()
		t.Logf("attempt %d: %d commands sent; Run returned after %v: %v", attempt, sent.Load(), took, err)
		require.NoError(t, err, "clean stop with commands in flight")
		require.Less(t, took, 3*time.Second, "stop with commands in flight")
	}
}
