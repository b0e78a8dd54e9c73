package ingest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/internal/testenv"
)

// ackLog records the order in which messages are acknowledged, and what
// InfluxDB held at each acknowledgement.
type ackLog struct {
	mu      sync.Mutex
	order   []int
	stored  func(i int) bool // checked for every 20th message
	missing []int            // acknowledged before InfluxDB held its points
}

// fakeMessage is a paho.Message as the broker would deliver it; only its
// acknowledgement is observed (paho itself is exercised by the delivery
// tests, with a real Mosquitto).
type fakeMessage struct {
	i       int
	topic   string
	payload []byte
	log     *ackLog
	acks    int
}

func (m *fakeMessage) Duplicate() bool   { return false }
func (m *fakeMessage) Qos() byte         { return 1 }
func (m *fakeMessage) Retained() bool    { return false }
func (m *fakeMessage) Topic() string     { return m.topic }
func (m *fakeMessage) MessageID() uint16 { return uint16(m.i) }
func (m *fakeMessage) Payload() []byte   { return m.payload }
func (m *fakeMessage) Ack() {
	m.log.mu.Lock()
	defer m.log.mu.Unlock()
	m.acks++
	m.log.order = append(m.log.order, m.i)
	if m.i%20 == 0 && !m.log.stored(m.i) {
		m.log.missing = append(m.log.missing, m.i)
	}
}

// pipelineRig starts an InfluxDB and an Ingest writing to it with the
// batching of o; its broker is never dialled (the tests hand messages to
// the pipeline themselves).
func pipelineRig(t *testing.T, clientID string, o Options) (*Ingest, *testenv.Influx) {
	t.Helper()
	inf := testenv.StartInflux(t)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	w, err := NewWriter(WriterOptions{Config: configs.InfluxDB{URL: inf.URL, Bucket: inf.Bucket}, Log: log})
	require.NoError(t, err)
	t.Cleanup(w.Close)
	o.MQTT, o.Writer, o.NoReceipts, o.Log = configs.MQTT{URL: "tcp://127.0.0.1:1", ClientID: clientID}, w, true, log
	in, err := New(o)
	require.NoError(t, err)
	return in, inf
}

// With several writes in flight, messages are still acknowledged once each,
// in the order they came, and only once InfluxDB holds their points.
func TestPipelineAcksInOrderAfterTheWrite(t *testing.T) {
	in, inf := pipelineRig(t, "pipeline", Options{BatchPoints: 30, BatchWait: 20 * time.Millisecond, Writes: 3})

	const n = 400
	acks := &ackLog{stored: func(i int) bool {
		res, err := inf.Query(`SELECT count(value) FROM reading WHERE site='p' AND seq=` + strconv.Itoa(i+1))
		return err == nil && len(res.Results) == 1 && len(res.Results[0].Series) == 1 &&
			res.Results[0].Series[0].Values[0][1] == float64(2)
	}}
	msgs := make([]*fakeMessage, n)
	for i := range msgs {
		dev := "d" + strconv.Itoa(i%7)
		r := mqtt.Readings{Site: "p", Device: dev, Seq: uint64(i + 1), TS: base.Add(time.Duration(i) * time.Millisecond),
			Readings: []mqtt.Reading{{Sensor: "ch4", Kind: "methane", Value: float64(i), Valid: true, Unit: "%vol", Quality: mqtt.QualityGood},
				{Sensor: "o2", Kind: "oxygen", Value: 20.9, Valid: true, Unit: "%vol", Quality: mqtt.QualityGood}}}
		msgs[i] = &fakeMessage{i: i, topic: "canary/v1/p/readings/" + dev, payload: mqtt.AppendReadings(nil, &r), log: acks}
	}
	q := newQueue()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.pipeline(ctx, nil, q) }()
	for _, m := range msgs {
		q.push(m)
	}
	eventually(t, 30*time.Second, func() bool { return in.Stats().Messages == n }, "all messages acknowledged")
	cancel()
	require.NoError(t, <-done)

	acks.mu.Lock()
	defer acks.mu.Unlock()
	require.Len(t, acks.order, n)
	require.Empty(t, acks.missing, "acknowledged before InfluxDB held the points")
	for i, got := range acks.order {
		require.Equal(t, i, got, "acknowledged in arrival order")
	}
	for _, m := range msgs {
		require.Equal(t, 1, m.acks, "message %d acknowledged once", m.i)
	}
	require.Greater(t, in.Stats().Batches, uint64(n*2/30-1), "many batches, so writes overlapped")
	res, err := inf.Query(`SELECT count(value) FROM reading WHERE site='p'`)
	require.NoError(t, err)
	require.EqualValues(t, 2*n, res.Results[0].Series[0].Values[0][1], "every point of every acknowledged message stored")
}

// A batch close to its due time is cut when the next messages arrive (a
// gateway's next second of polls), in that wake-up, not when its timer
// fires: here the timer is an hour away, and the test moves the early-cut
// time to now once the batch's clock runs. Messages are still acknowledged
// only after InfluxDB holds them.
func TestBatchCutEarlyWhenMessagesArriveNearItsDueTime(t *testing.T) {
	in, inf := pipelineRig(t, "early", Options{BatchWait: time.Hour})
	acks := &ackLog{stored: func(i int) bool {
		res, err := inf.Query(`SELECT count(value) FROM reading WHERE site='e' AND seq=` + strconv.Itoa(i/20+1))
		return err == nil && len(res.Results) == 1 && len(res.Results[0].Series) == 1
	}}
	msg := func(i int) *fakeMessage {
		r := mqtt.Readings{Site: "e", Device: "d", Seq: uint64(i + 1), TS: base.Add(time.Duration(i) * time.Second),
			Readings: []mqtt.Reading{{Sensor: "ch4", Kind: "methane", Value: float64(i), Valid: true, Unit: "%vol", Quality: mqtt.QualityGood}}}
		// i*20: the ack log checks InfluxDB for every 20th message.
		return &fakeMessage{i: i * 20, topic: "canary/v1/e/readings/d", payload: mqtt.AppendReadings(nil, &r), log: acks}
	}
	q := newQueue()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.pipeline(ctx, nil, q) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	q.push(msg(0))
	eventually(t, 10*time.Second, func() bool { return q.cutAt.Load() != noCut }, "batch clock started")
	require.False(t, q.cutDue(), "an hour-long batch is not near its due time at once")
	require.Zero(t, in.Stats().Messages)

	q.armCut(0) // the batch is now within BatchWait/earlyCut of its due time
	q.push(msg(1))
	eventually(t, 10*time.Second, func() bool { return in.Stats().Messages == 2 }, "batch cut when the next message came")
	require.Equal(t, uint64(1), in.Stats().Batches, "one batch, both messages")
	acks.mu.Lock()
	require.Equal(t, []int{0, 20}, acks.order)
	require.Empty(t, acks.missing, "acknowledged before InfluxDB held the points")
	acks.mu.Unlock()

	// The next message starts a new batch with its own clock.
	q.push(msg(2))
	eventually(t, 10*time.Second, func() bool { return q.cutAt.Load() != noCut }, "next batch's clock started")
	require.Equal(t, uint64(2), in.Stats().Messages, "the new batch waits for its time")
}
