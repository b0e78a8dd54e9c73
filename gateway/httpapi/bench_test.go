package httpapi

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// BenchmarkPublish measures the cost the gateway pays per reading pushed to
// the live streams (encode once, fan out to every client, update the trend).
func BenchmarkPublish(b *testing.B) {
	for _, clients := range []int{0, 1, 10, 100} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			srv, err := New(Options{Backend: newFakeBackend(), Registry: prometheus.NewRegistry()})
			require.NoError(b, err)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for i := 0; i < clients; i++ {
				c := srv.hub.add()
				wg.Add(1)
				go func() {
					defer wg.Done()
					var spare [][]byte
					for {
						select {
						case <-c.ready:
							spare = c.take(spare)
						case <-c.kicked:
							return
						case <-stop:
							return
						}
					}
				}()
			}
			r := Reading{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Value: fp(0.4), Unit: "%vol", Quality: "good"}
			base := time.Now()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r.TS = base.Add(time.Duration(i) * time.Millisecond)
				r.Sensor = fmt.Sprintf("s%d", i%200)
				srv.Publish(Event{Reading: &r})
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
			close(stop)
			wg.Wait()
		})
	}
}

// BenchmarkAlarmsEndpoint measures GET /api/v1/alarms (sort and encode)
// during an alarm flood of 1000 standing alarms.
func BenchmarkAlarmsEndpoint(b *testing.B) {
	be := newFakeBackend()
	now := time.Now()
	for i := 0; i < 1000; i++ {
		be.alarms[fmt.Sprintf("dev%d.s.high", i)] = Alarm{ID: fmt.Sprintf("dev%d.s.high", i), Priority: 1 + i%4,
			State: []string{StateUnacknowledged, StateAcknowledged}[i%2], Since: now.Add(-time.Duration(i) * time.Second), Value: fp(1), Limit: fp(1)}
	}
	srv, err := New(Options{Backend: be, Registry: prometheus.NewRegistry()})
	require.NoError(b, err)
	h := srv.Handler()
	r, err := http.NewRequest(http.MethodGet, "/api/v1/alarms", nil)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		w := &recorder{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.code != http.StatusOK {
			b.Fatal(w.code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/request")
}
