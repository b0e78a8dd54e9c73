package alerting

import (
	"fmt"
	"testing"
	"time"
)

// More than 32767 distinct comm timeouts (e.g. per-sensor comm.timeout
// overrides, or many devices with different poll intervals) overflow
// point.commList (int16): the first Tick panics.
func TestManyCommTimeouts(t *testing.T) {
	const n = 1<<15 + 1
	cfg := Config{}
	for i := 0; i < n; i++ {
		cfg.Points = append(cfg.Points, PointConfig{Site: "s", Device: fmt.Sprintf("d%d", i), Sensor: "t",
			Kind: "generic", Poll: time.Second + time.Duration(i)*time.Millisecond})
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.Tick(scriptStart)
}
