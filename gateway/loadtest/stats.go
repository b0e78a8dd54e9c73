package loadtest

import (
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// Latencies collects durations; safe for concurrent use.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one duration.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// Count is how many were recorded.
func (l *Latencies) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// Reset forgets everything recorded (the end of a warm-up).
func (l *Latencies) Reset() {
	l.mu.Lock()
	l.d = l.d[:0]
	l.mu.Unlock()
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 100); 0 when
// nothing was recorded.
func (l *Latencies) Percentile(p float64) time.Duration {
	l.mu.Lock()
	s := slices.Clone(l.d)
	l.mu.Unlock()
	return Percentile(s, p)
}

// Percentile is the nearest-rank p-th percentile of d (sorted in place).
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	rank := int(float64(len(d))*p/100+0.999999) - 1
	rank = max(0, min(rank, len(d)-1))
	return d[rank]
}

// Result is what one load run measured. The JSON field names are the
// contract of `canary bench --json`.
type Result struct {
	Devices  int     `json:"devices"`
	Sensors  int     `json:"sensors"`
	PollS    float64 `json:"poll_s"`
	Duration float64 `json:"duration_s"`
	// Offered is the configured load (devices × sensors / poll).
	OfferedPerS float64 `json:"offered_readings_per_s"`
	// ReadingsPerS were delivered: received back from the broker at QoS 1.
	ReadingsPerS float64 `json:"readings_per_s"`
	Readings     uint64  `json:"readings"`
	Messages     uint64  `json:"messages"`
	// CPUPer1000 is CPU seconds of the whole process per 1000 delivered
	// readings; CPUCores is the average number of cores busy.
	CPUPer1000 float64 `json:"cpu_s_per_1000"`
	CPUCores   float64 `json:"cpu_cores"`
	// Alarm latency: from the poll response's arrival (the event's ts) to
	// the alarm event received back from the broker.
	AlarmP50ms  float64 `json:"alarm_latency_p50_ms"`
	AlarmP99ms  float64 `json:"alarm_latency_p99_ms"`
	AlarmMaxms  float64 `json:"alarm_latency_max_ms"`
	AlarmEvents int     `json:"alarm_events"`
	// Commit latency: from the poll response's arrival to the alarm
	// committed to the outbox (the publisher is signalled right then).
	CommitP50ms float64 `json:"alarm_commit_latency_p50_ms"`
	CommitP99ms float64 `json:"alarm_commit_latency_p99_ms"`
	PeakRSS     int64   `json:"peak_rss_bytes"`
	// Backlog is what was still in the outbox at the end (records).
	Backlog int `json:"outbox_backlog"`
	// Dropped readings records (outbox over its bound).
	Dropped uint64 `json:"outbox_dropped"`
	// PollErrors counted by the gateway.
	PollErrors uint64 `json:"poll_errors"`
}

// MarshalJSON writes the result with its derived figures: memory per sensor,
// and the alarm latencies as null when no alarm was measured (a 0 would
// read as a perfect score).
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	out := struct {
		plain
		AlarmP50ms   *float64 `json:"alarm_latency_p50_ms"`
		AlarmP99ms   *float64 `json:"alarm_latency_p99_ms"`
		AlarmMaxms   *float64 `json:"alarm_latency_max_ms"`
		CommitP50ms  *float64 `json:"alarm_commit_latency_p50_ms"`
		CommitP99ms  *float64 `json:"alarm_commit_latency_p99_ms"`
		MemPerSensor float64  `json:"memory_per_sensor_bytes"`
	}{plain: plain(r)}
	if r.AlarmEvents > 0 {
		out.AlarmP50ms, out.AlarmP99ms, out.AlarmMaxms = &r.AlarmP50ms, &r.AlarmP99ms, &r.AlarmMaxms
		out.CommitP50ms, out.CommitP99ms = &r.CommitP50ms, &r.CommitP99ms
	}
	if n := r.Devices * r.Sensors; n > 0 {
		out.MemPerSensor = float64(r.PeakRSS) / float64(n)
	}
	return json.Marshal(out)
}
