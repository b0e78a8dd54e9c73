package ingest

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
)

// rig is a real delivery chain: outbox → publisher → Mosquitto → ingest →
// InfluxDB 1.8.10, each part startable and stoppable on its own.
type rig struct {
	t      *testing.T
	site   string
	log    zerolog.Logger
	mosq   *testenv.Mosquitto
	influx *testenv.Influx
	proxy  *testenv.Proxy
	dir    string

	ob      *outbox.Outbox
	pub     *mqtt.Publisher
	pubStop func()
	ings    map[string]*runningIngest

	// fresh, when set, makes produce's items as a gateway writing
	// InfluxDB itself does (Fresh.Item).
	fresh *Fresh

	mu       sync.Mutex
	produced map[string]int // device → batches appended
}

type runningIngest struct {
	in   *Ingest
	stop func()
}

func newRig(t *testing.T, mopts testenv.MosquittoOptions) *rig {
	r := &rig{t: t, site: "site1", log: zerolog.New(zerolog.NewTestWriter(t)).Level(logLevel()),
		dir: t.TempDir(), ings: map[string]*runningIngest{}, produced: map[string]int{}}
	r.mosq = testenv.StartMosquitto(t, mopts)
	r.influx = testenv.StartInflux(t)
	r.proxy = testenv.StartProxy(t, r.mosq.Addr)
	t.Cleanup(func() {
		for id := range r.ings {
			r.stopIngest(id)
		}
		r.stopPublisher()
		if r.ob != nil {
			_ = r.ob.Close()
		}
	})
	return r
}

func (r *rig) openOutbox(maxBytes int64, onDrop func(outbox.Drop)) {
	ob, err := outbox.Open(outbox.Options{Dir: r.dir, MaxBytes: maxBytes, OnDrop: onDrop, Log: r.log})
	require.NoError(r.t, err)
	r.ob = ob
}

// mqttConfig points through the proxy (the uplink a test can cut).
func (r *rig) mqttConfig(clientID string) configs.MQTT {
	return configs.MQTT{URL: "tcp://" + r.proxy.Addr, ClientID: clientID, TopicPrefix: "canary"}
}

func (r *rig) startPublisher(release string) {
	r.startPublisherWith(release, r.mqttConfig("canary-"+r.site))
}

func (r *rig) startPublisherWith(release string, cfg configs.MQTT) {
	p, err := mqtt.NewPublisher(mqtt.Options{Config: cfg, Site: r.site, Outbox: r.ob, Release: release, Log: r.log,
		KeepAlive: 2 * time.Second, ConnectTimeout: 2 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		ReceiptTimeout: 3 * time.Second, ShutdownGrace: -1})
	require.NoError(r.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	r.pub = p
	r.pubStop = func() {
		cancel()
		require.NoError(r.t, <-done)
	}
}

func (r *rig) stopPublisher() {
	if r.pubStop != nil {
		r.pubStop()
		r.pubStop = nil
	}
}

func (r *rig) writer() *Writer {
	w, err := NewWriter(WriterOptions{Config: configs.InfluxDB{URL: r.influx.URL, Bucket: r.influx.Bucket, Timeout: 5 * time.Second},
		Log: r.log, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	require.NoError(r.t, err)
	r.t.Cleanup(w.Close)
	return w
}

// startIngest connects straight to the broker (not through the uplink proxy).
func (r *rig) startIngest(clientID string) *Ingest {
	cfg := configs.MQTT{URL: r.mosq.URL, ClientID: clientID, TopicPrefix: "canary"}
	return r.startIngestWith(clientID, cfg)
}

func (r *rig) startIngestWith(clientID string, cfg configs.MQTT) *Ingest {
	in, err := New(Options{MQTT: cfg, ShareGroup: "ingest", Writer: r.writer(), BatchPoints: 500, BatchWait: 50 * time.Millisecond, Log: r.log})
	require.NoError(r.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	r.ings[clientID] = &runningIngest{in: in, stop: func() {
		cancel()
		require.NoError(r.t, <-done)
	}}
	eventually(r.t, 10*time.Second, in.Subscribed, "ingest "+clientID+" subscribed")
	return in
}

func (r *rig) stopIngest(id string) {
	if ri, ok := r.ings[id]; ok {
		ri.stop()
		delete(r.ings, id)
	}
}

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// produce appends n poll batches for each device (3 readings each), as a
// poller would: one Append per poll cycle.
func (r *rig) produce(devices, n int) {
	r.t.Helper()
	for i := 0; i < n; i++ {
		items := make([]outbox.Item, 0, devices)
		for d := 0; d < devices; d++ {
			dev := "dev" + strconv.Itoa(d)
			r.mu.Lock()
			k := r.produced[dev]
			r.produced[dev] = k + 1
			r.mu.Unlock()
			m := mqtt.Readings{Site: r.site, Device: dev,
				TS: base.Add(time.Duration(k) * time.Millisecond),
				Readings: []mqtt.Reading{
					{Sensor: "ch4", Kind: "methane", Value: float64(k) / 100, Valid: true, Unit: "%vol", Quality: mqtt.QualityGood},
					{Sensor: "co", Kind: "co", Value: 3, Valid: true, Unit: "ppm", Quality: mqtt.QualityGood},
					{Sensor: "o2", Kind: "oxygen", Unit: "%vol", Quality: mqtt.QualityBad},
				}}
			if r.fresh != nil {
				items = append(items, r.fresh.Item(m))
			} else {
				items = append(items, mqtt.ReadingsItem(m))
			}
		}
		_, err := r.ob.Append(context.Background(), items...)
		require.NoError(r.t, err)
	}
}

// seqs returns, per device, the seq values stored in InfluxDB.
func (r *rig) seqs() map[string][]int {
	r.t.Helper()
	res, err := r.influx.Query(fmt.Sprintf(`SELECT seq FROM reading WHERE site='%s' AND sensor='ch4' GROUP BY device`, r.site))
	require.NoError(r.t, err)
	out := map[string][]int{}
	for _, s := range res.Results[0].Series {
		for _, v := range s.Values {
			out[s.Tags["device"]] = append(out[s.Tags["device"]], int(v[1].(float64)))
		}
	}
	return out
}

// waitStored polls InfluxDB until every produced batch is stored, then
// checks that each device's sequence is exactly 1..n: nothing lost, no hole.
func (r *rig) waitStored(timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	var got map[string][]int
	for {
		got = r.seqs()
		complete := true
		r.mu.Lock()
		for dev, n := range r.produced {
			if len(got[dev]) < n {
				complete = false
			}
		}
		r.mu.Unlock()
		if complete || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for dev, n := range r.produced {
		s := got[dev]
		sort.Ints(s)
		want := make([]int, n)
		for i := range want {
			want[i] = i + 1
		}
		if !slicesEqual(want, s) {
			r.t.Fatalf("device %s: produced seqs 1..%d, stored %d; missing %v", dev, n, len(s), missing(s, n))
		}
		// Each point stored carries the reading of its own batch.
		cnt, err := r.influx.Query(fmt.Sprintf(`SELECT count(value) FROM reading WHERE site='%s' AND device='%s' AND sensor='ch4'`, r.site, dev))
		require.NoError(r.t, err)
		require.EqualValues(r.t, n, cnt.Results[0].Series[0].Values[0][1])
	}
}

// eventually polls cond with a bounded deadline.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out: %s", msg)
		time.Sleep(20 * time.Millisecond)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// missing lists the seqs in 1..n not in sorted s, as ranges.
func missing(s []int, n int) []string {
	have := map[int]bool{}
	for _, v := range s {
		have[v] = true
	}
	var out []string
	for i := 1; i <= n; i++ {
		if have[i] {
			continue
		}
		j := i
		for j+1 <= n && !have[j+1] {
			j++
		}
		out = append(out, fmt.Sprintf("%d-%d", i, j))
		i = j
	}
	return out
}

func logLevel() zerolog.Level {
	if os.Getenv("CANARY_TEST_DEBUG") != "" {
		return zerolog.DebugLevel
	}
	return zerolog.InfoLevel
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
