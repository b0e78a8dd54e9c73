package loadtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/testenv"
)

func TestSiteYAMLLoadsThroughTheSiteLoader(t *testing.T) {
	ports, err := FreePorts(3)
	require.NoError(t, err)
	require.Len(t, ports, 3)
	require.NotEqual(t, ports[0], ports[1])
	sc := Scenario{Site: "bench", Devices: 3, Sensors: 20, Poll: time.Second, Ports: ports,
		BrokerURL: "tcp://127.0.0.1:1883", OutboxDir: t.TempDir()}
	text, err := sc.SiteYAML()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "site.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	site, _, err := configs.LoadSite(path)
	require.NoError(t, err)
	require.Len(t, site.Devices, 3)
	d := site.Devices[2]
	require.Equal(t, DeviceID(2), d.ID)
	require.Len(t, d.Sensors, 20)
	// 20 float32 in 40 contiguous holding registers, as in the reference scenario.
	require.Equal(t, 38, *d.Sensors[19].Address)
	require.Equal(t, SensorID(19), d.Sensors[19].ID)
	require.Equal(t, 500*time.Millisecond, d.Timeout)
}

func TestScenarioRejectsWhatCannotBeGenerated(t *testing.T) {
	for name, sc := range map[string]Scenario{
		"no site":       {Devices: 1, Sensors: 1, Poll: time.Second, Ports: []int{1}},
		"no devices":    {Site: "s", Sensors: 1, Poll: time.Second},
		"63 sensors":    {Site: "s", Devices: 1, Sensors: 63, Poll: time.Second, Ports: []int{1}},
		"no poll":       {Site: "s", Devices: 1, Sensors: 1, Ports: []int{1}},
		"missing ports": {Site: "s", Devices: 2, Sensors: 1, Poll: time.Second, Ports: []int{1}},
	} {
		_, err := sc.SiteYAML()
		require.Error(t, err, name)
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis, utime 250 and stime
	// 50 ticks.
	stat := []byte("1234 (canary (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 1000 10 18446744073709551615")
	cpu, err := ParseStatCPU(stat)
	require.NoError(t, err)
	require.InDelta(t, 3.0, cpu, 1e-9)
	_, err = ParseStatCPU([]byte("1234 canary S 1"))
	require.ErrorContains(t, err, "command name")
	_, err = ParseStatCPU([]byte("1 (x) S 1 2"))
	require.ErrorContains(t, err, "fields")
}

func TestReadProcOfThisProcess(t *testing.T) {
	buf := make([]byte, 32<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	p, err := ReadProc(0)
	require.NoError(t, err)
	require.GreaterOrEqual(t, p.PeakRSS, int64(len(buf)), "the 32 MiB just touched are in the peak")
	require.GreaterOrEqual(t, p.PeakRSS, p.RSS)
	// CPU time grows while this goroutine spins (ticks are 10 ms).
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := ReadProc(0)
		require.NoError(t, err)
		if q.CPUSeconds > p.CPUSeconds {
			break
		}
		require.True(t, time.Now().Before(deadline), "CPU time never grew")
	}
	_, err = ReadProc(1 << 30)
	require.Error(t, err)
}

func TestPercentileNearestRank(t *testing.T) {
	var l Latencies
	require.Zero(t, l.Percentile(99))
	for i := 100; i >= 1; i-- {
		l.Add(time.Duration(i) * time.Millisecond)
	}
	require.Equal(t, 50*time.Millisecond, l.Percentile(50))
	require.Equal(t, 99*time.Millisecond, l.Percentile(99))
	require.Equal(t, 100*time.Millisecond, l.Percentile(100))
	require.Equal(t, 100, l.Count())
	l.Reset()
	require.Zero(t, l.Count())
}

func TestMetricSum(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "x_records"}, []string{"lane"})
	reg.MustRegister(g)
	g.WithLabelValues("alarms").Set(2)
	g.WithLabelValues("readings").Set(5)
	sum, err := MetricSum(reg, "x_records")
	require.NoError(t, err)
	require.Equal(t, 7.0, sum)
	sum, err = MetricSum(reg, "x_records", "lane", "readings")
	require.NoError(t, err)
	require.Equal(t, 5.0, sum)
}

// The subscriber counts readings and times alarm events as they come from a
// real Mosquitto.
func TestSubscriberCountsAndTimesOverMosquitto(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	s, err := Subscribe(m.URL, "canary", "bench", "sub-test", 10*time.Second)
	require.NoError(t, err)
	defer s.Close()

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL).SetClientID("pub-test"))
	tok := pub.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer pub.Disconnect(100)

	at := time.Now().Add(-3 * time.Millisecond).UTC().Format("2006-01-02T15:04:05.000000000Z")
	msgs := map[string]string{
		"canary/v1/bench/readings/d000": `{"site":"bench","device":"d000","seq":1,"ts":"` + at + `","readings":[{"sensor":"s00","kind":"methane","value":0.2,"unit":"%vol","quality":"good"},{"sensor":"s01","kind":"methane","value":0.3,"unit":"%vol","quality":"good"}]}`,
		"canary/v1/bench/events":        `{"seq":1,"ts":"` + at + `","type":"activate","alarm":"bench.d000.s00.high"}`,
	}
	for topic, payload := range msgs {
		tok := pub.Publish(topic, 1, false, payload)
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}
	require.Eventually(t, func() bool {
		m, _, _, _ := s.Counts()
		return m == 2
	}, 10*time.Second, 10*time.Millisecond)
	msgsN, readings, events, bad := s.Counts()
	require.Equal(t, uint64(2), msgsN)
	require.Equal(t, uint64(2), readings)
	require.Equal(t, uint64(1), events)
	require.Zero(t, bad)
	require.Equal(t, 1, s.Alarm.Count())
	require.GreaterOrEqual(t, s.Alarm.Percentile(100), 3*time.Millisecond)
}
