package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
)

// The outbox fills while the uplink is down: the oldest readings go first,
// every one of them counted; alarms all survive; what remains arrives
// without a hole after the drop point.
func TestDeliveryOutboxFullDropsOldestReadingsCounted(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	var drops atomic.Uint64
	r.openOutbox(64<<10, func(d outbox.Drop) { drops.Add(uint64(d.Records)) })
	r.startIngest("ingest-a")
	r.proxy.Cut()
	r.startPublisher(configs.ReleasePuback)
	r.produce(2, 600) // far more than 64 KiB
	for i := 0; i < 20; i++ {
		_, err := r.ob.Append(context.Background(), mqtt.EventItem(func(dst []byte, seq uint64) []byte {
			return fmt.Appendf(dst, `{"seq":%d,"ts":"2026-01-01T00:00:%02d.000000000Z","type":"activate","alarm":"dev0.ch4.high","from":"normal","to":"unacknowledged","active":true,"value":1.2,"limit":1,"user":"","comment":""}`, seq, seq)
		}))
		require.NoError(t, err)
	}
	st := r.ob.Stats()
	require.Positive(t, st.DroppedRecords)
	require.Equal(t, drops.Load(), st.DroppedRecords, "OnDrop saw every drop")
	require.Equal(t, 20, st.Records[outbox.Alarms])
	r.proxy.Restore()
	eventually(t, 60*time.Second, func() bool { st := r.ob.Stats(); return st.Records[0]+st.Records[1] == 0 }, "outbox drained")

	// Stored + dropped = produced, and the stored ones are a contiguous tail.
	var stored int
	eventually(t, 30*time.Second, func() bool {
		got := r.seqs()
		stored = len(got["dev0"]) + len(got["dev1"])
		return uint64(stored)+st.DroppedRecords == 1200
	}, "stored + dropped == produced")
	for dev, s := range r.seqs() {
		sort.Ints(s)
		require.Equal(t, 600, s[len(s)-1], dev)
		require.Equal(t, 600-len(s)+1, s[0], "%s: stored readings are the newest, without a hole", dev)
	}
	res, err := r.influx.Query(`SELECT count(seq) FROM alarm_event`)
	require.NoError(t, err)
	require.EqualValues(t, 20, res.Results[0].Series[0].Values[0][1], "no alarm event dropped")
}

func TestIngestAlarmStatesAndEvents(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	r.openOutbox(0, nil)
	r.startIngest("ingest-a")
	r.startPublisher(configs.ReleaseReceipt)
	state := `{"id":"dev0.ch4.high","site":"site1","device":"dev0","sensor":"ch4","condition":"high","priority":2,"state":"unacknowledged","active":true,"latched":false,"value":1.2,"limit":1,"since":"2026-01-01T00:00:01Z","updated":"2026-01-01T00:00:01Z","acked_by":"","comment":""}`
	acked := `{"id":"dev0.ch4.high","site":"site1","device":"dev0","sensor":"ch4","condition":"high","priority":2,"state":"acknowledged","active":true,"latched":false,"value":1.3,"limit":1,"since":"2026-01-01T00:00:01Z","updated":"2026-01-01T00:00:05Z","acked_by":"ann","comment":"fan on"}`
	_, err := r.ob.Append(context.Background(),
		mqtt.AlarmItem("dev0.ch4.high", []byte(state)),
		mqtt.EventItem(func(dst []byte, seq uint64) []byte {
			return fmt.Appendf(dst, `{"seq":%d,"ts":"2026-01-01T00:00:01Z","type":"activate","alarm":"dev0.ch4.high","from":"normal","to":"unacknowledged","active":true,"value":1.2,"limit":1,"user":"","comment":""}`, seq)
		}),
		mqtt.AlarmItem("dev0.ch4.high", []byte(acked)),
		mqtt.EventItem(func(dst []byte, seq uint64) []byte {
			return fmt.Appendf(dst, `{"seq":%d,"ts":"2026-01-01T00:00:05Z","type":"ack","alarm":"dev0.ch4.high","from":"unacknowledged","to":"acknowledged","active":true,"value":1.3,"limit":1,"user":"ann","comment":"fan on"}`, seq)
		}),
		mqtt.AlarmItem("dev0.ch4.high", nil), // cleared: nothing to store
	)
	require.NoError(t, err)
	eventually(t, 30*time.Second, func() bool { return r.ob.Stats().Records[outbox.Alarms] == 0 }, "alarm lane released")
	var res *testenv.QueryResult
	eventually(t, 10*time.Second, func() bool {
		res, err = r.influx.Query(`SELECT "state", "value", "limit", "user", "comment" FROM "alarm" GROUP BY *`)
		return err == nil && len(res.Results[0].Series) == 1 && len(res.Results[0].Series[0].Values) == 2
	}, "two alarm points")
	s := res.Results[0].Series[0]
	require.Equal(t, map[string]string{"site": "site1", "device": "dev0", "sensor": "ch4", "alarm": "dev0.ch4.high", "condition": "high", "priority": "2"}, s.Tags)
	require.Equal(t, []any{"2026-01-01T00:00:05Z", "acknowledged", 1.3, 1.0, "ann", "fan on"}, s.Values[1])
	res, err = r.influx.Query(`SELECT "seq", "to", "user" FROM "alarm_event"`)
	require.NoError(t, err)
	require.Len(t, res.Results[0].Series[0].Values, 2)
	require.Equal(t, []any{"2026-01-01T00:00:05Z", 2.0, "acknowledged", "ann"}, res.Results[0].Series[0].Values[1])
}

// Malformed messages and batches InfluxDB refuses go to the dead-letter
// topic, are counted and acknowledged: never retried for ever, and they do
// not hold up the good messages around them.
func TestIngestDeadLetters(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	in := r.startIngest("ingest-a")
	// A field type conflict: "value" is already a string in this series
	// family, so InfluxDB answers 400 for our float.
	// Field types are fixed per measurement and shard (one week here): the
	// conflict sits in a week of 2020 that only the "bad" message touches.
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, r.influx.WriteLines(fmt.Appendf(nil, "reading,device=other,site=site1,sensor=ch4 value=\"text\" %d", old.UnixNano())))

	cfg := configs.MQTT{URL: r.mosq.URL, ClientID: "test-client", TopicPrefix: "canary"}
	dead := make(chan paho.Message, 10)
	opts, err := mqtt.ClientOptions(cfg, "test-client")
	require.NoError(t, err)
	c := paho.NewClient(opts)
	require.True(t, c.Connect().WaitTimeout(10*time.Second))
	defer c.Disconnect(0)
	require.True(t, c.Subscribe("canary/v1/site1/deadletter", 1, func(_ paho.Client, m paho.Message) { dead <- m }).WaitTimeout(10*time.Second))
	receipts := make(chan paho.Message, 10)
	require.True(t, c.Subscribe("canary/v1/site1/receipts", 1, func(_ paho.Client, m paho.Message) { receipts <- m }).WaitTimeout(10*time.Second))

	good := func(dev string, seq int) []byte {
		ts := base.Add(time.Duration(seq) * time.Second)
		if dev == "bad" {
			ts = old.Add(time.Hour)
		}
		m := mqtt.Readings{Site: "site1", Device: dev, Seq: uint64(seq), TS: ts,
			Readings: []mqtt.Reading{{Sensor: "ch4", Kind: "methane", Value: 0.5, Valid: true, Unit: "%vol", Quality: "good"}}}
		return mqtt.AppendReadings(nil, &m)
	}
	pub := func(topic string, payload []byte) {
		tok := c.Publish(topic, 1, false, payload)
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}
	pub("canary/v1/site1/readings/dev0", good("dev0", 1))
	pub("canary/v1/site1/readings/dev0", []byte(`{"site":"site1","device":"dev0","seq":"x"}`))
	pub("canary/v1/site1/readings/bad", good("bad", 1))
	pub("canary/v1/site1/readings/dev0", good("dev0", 2))

	var reasons []string
	for len(reasons) < 2 {
		select {
		case m := <-dead:
			var d struct{ Topic, Error, Payload string }
			require.NoError(t, json.Unmarshal(m.Payload(), &d))
			reasons = append(reasons, d.Topic+": "+d.Error)
		case <-time.After(30 * time.Second):
			t.Fatalf("dead letters: got %v", reasons)
		}
	}
	sort.Strings(reasons)
	t.Logf("dead letters: %q", reasons)
	require.Contains(t, reasons[0], "canary/v1/site1/readings/bad: influxdb rejected the batch (status 400)")
	require.Contains(t, reasons[1], "canary/v1/site1/readings/dev0: decode readings")
	eventually(t, 10*time.Second, func() bool { return len(r.seqs()["dev0"]) == 2 }, "good messages stored")
	eventually(t, 10*time.Second, func() bool { return in.Stats().Messages == 4 }, "all four acknowledged")
	require.EqualValues(t, 2, in.Stats().DeadLetters)
	// Receipts name the dead-lettered messages too, so a gateway in receipt
	// mode stops sending them.
	done := map[string][]mqtt.SeqRange{}
	for len(done["bad"]) == 0 || len(done["dev0"]) == 0 || done["dev0"][0] != (mqtt.SeqRange{1, 2}) {
		select {
		case m := <-receipts:
			rc, err := mqtt.DecodeReceipt(m.Payload())
			require.NoError(t, err)
			for dev, rs := range rc.Readings {
				done[dev] = mqtt.Ranges(append(expand(done[dev]), expand(rs)...))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("receipts so far: %v", done)
		}
	}
}

func expand(rs []mqtt.SeqRange) []uint64 {
	var out []uint64
	for _, r := range rs {
		for s := r[0]; s <= r[1]; s++ {
			out = append(out, s)
		}
	}
	return out
}

func TestIngestOverTLSWithPassword(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{TLS: true, RequireClientCert: true, Users: map[string]string{"ingest": "pw", "gw": "gpw"}})
	r.openOutbox(0, nil)
	t.Setenv(configs.MQTTPasswordEnv, "pw")
	tlsCfg := func(user, id string) configs.MQTT {
		return configs.MQTT{URL: r.mosq.URL, ClientID: id, Username: user, TopicPrefix: "canary",
			CAFile: r.mosq.Certs.CAFile, CertFile: r.mosq.Certs.ClientCertFile, KeyFile: r.mosq.Certs.ClientKeyFile}
	}
	r.startIngestWith("ingest-a", tlsCfg("ingest", "ingest-a"))
	gw := tlsCfg("gw", "canary-site1")
	pw := t.TempDir() + "/gw.pass"
	require.NoError(t, writeFile(pw, "gpw"))
	gw.PasswordFile = pw
	r.startPublisherWith(configs.ReleaseReceipt, gw)
	r.produce(2, 100)
	r.waitStored(30 * time.Second)
}
