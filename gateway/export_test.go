package gateway

import (
	"time"

	"github.com/canary-gw/canary/gateway/ingest"
)

// SetDropCalm sets dropCalm for a test; the returned func restores it.
func SetDropCalm(d time.Duration) func() {
	old := dropCalm
	dropCalm = d
	return func() { dropCalm = old }
}

// FreshStats are the counters of the lines g builds at commit for its
// direct InfluxDB writer; false without one.
func FreshStats(g *Gateway) (ingest.FreshStats, bool) {
	if g.fresh == nil {
		return ingest.FreshStats{}, false
	}
	return g.fresh.Stats(), true
}
