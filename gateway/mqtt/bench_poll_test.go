package mqtt

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkAppendReadings20 encodes one poll of 20 readings into a reused
// buffer: the hand-written encoder of the hot path (no reflection).
func BenchmarkAppendReadings20(b *testing.B) {
	m := Readings{Site: "demo", Device: "face3-gas", Seq: 1, TS: time.Now()}
	for i := range 20 {
		m.Readings = append(m.Readings, Reading{Sensor: fmt.Sprintf("s%02d", i), Kind: "methane", Unit: "%vol",
			Value: 0.21 + float64(i)/100, Valid: true, Quality: QualityGood})
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		m.Seq++
		buf = AppendReadings(buf[:0], &m)
	}
	polls := float64(b.N)
	b.ReportMetric(polls*20/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/polls, "µs/poll")
	b.ReportMetric(float64(len(buf)), "bytes/poll")
}
