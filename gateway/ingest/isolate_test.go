package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/internal/testenv"
)

// msg is a received MQTT message as paho hands it to the ingest.
type msg struct {
	topic   string
	payload []byte
}

func (m msg) Duplicate() bool   { return false }
func (m msg) Qos() byte         { return 1 }
func (m msg) Retained() bool    { return false }
func (m msg) Topic() string     { return m.topic }
func (m msg) MessageID() uint16 { return 0 }
func (m msg) Payload() []byte   { return m.payload }
func (m msg) Ack()              {}

// A batch InfluxDB refuses is written again message by message; the
// receipts must still name every message of it, including one already
// dead-lettered at decode: without its receipt a gateway in receipt mode
// sends it again every receipt timeout, and it is dead-lettered each time.
func TestIsolatedBatchKeepsEveryReceipt(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	// "value" is a string in 2020's shard: InfluxDB refuses the bad device's float.
	require.NoError(t, r.influx.WriteLines(fmt.Appendf(nil, "reading,device=other,site=site1,sensor=ch4 value=\"text\" %d", old.UnixNano())))
	in, err := New(Options{MQTT: configs.MQTT{URL: r.mosq.URL, ClientID: "isolate", TopicPrefix: "canary"},
		ShareGroup: "ingest", Writer: r.writer(), Log: r.log})
	require.NoError(t, err)
	reading := func(dev string, seq uint64, ts time.Time) msg {
		m := mqtt.Readings{Site: "site1", Device: dev, Seq: seq, TS: ts,
			Readings: []mqtt.Reading{{Sensor: "ch4", Kind: "methane", Value: 0.5, Valid: true, Unit: "%vol", Quality: "good"}}}
		return msg{"canary/v1/site1/readings/" + dev, mqtt.AppendReadings(nil, &m)}
	}
	b := newBatch()
	var dec mqtt.ReadingsDecoder
	var rd mqtt.Readings
	for _, m := range []msg{
		reading("dev0", 1, base),
		{"canary/v1/site1/readings/dev0", []byte(`{"site":"site1","device":"dev0","seq":2,"readings":"not a list"}`)},
		reading("bad", 1, old.Add(time.Hour)),
		reading("dev0", 3, base.Add(time.Second)),
	} {
		in.add(b, &dec, &rd, m)
	}
	require.Len(t, b.dead, 1, "the undecodable message")
	require.NoError(t, in.write(t.Context(), b))
	require.Len(t, b.dead, 2, "and the one InfluxDB refuses")
	require.Equal(t, []uint64{1, 2, 3}, b.seqs["site1"].readings["dev0"], "receipts of dev0")
	require.Equal(t, []uint64{1}, b.seqs["site1"].readings["bad"])
}
