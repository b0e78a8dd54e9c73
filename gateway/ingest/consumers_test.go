package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
)

// readingsWatch is a QoS 1 subscriber to the readings topics: it counts
// messages and the seqs it saw per device.
type readingsWatch struct {
	mu   sync.Mutex
	msgs int
	seqs map[string]map[uint64]bool
}

func watchReadings(t *testing.T, url string) *readingsWatch {
	w := &readingsWatch{seqs: map[string]map[uint64]bool{}}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("watch").SetCleanSession(true))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })
	tok = c.Subscribe("canary/v1/+/readings/+", 1, func(_ paho.Client, m paho.Message) {
		r, err := mqtt.DecodeReadings(m.Payload())
		if err != nil {
			t.Errorf("readings payload: %v", err)
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.msgs++
		if w.seqs[r.Device] == nil {
			w.seqs[r.Device] = map[uint64]bool{}
		}
		w.seqs[r.Device][r.Seq] = true
	})
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	return w
}

// complete reports whether every device has seqs 1..n[device], and the
// messages received.
func (w *readingsWatch) complete(n map[string]int) (bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for dev, k := range n {
		for s := 1; s <= k; s++ {
			if !w.seqs[dev][uint64(s)] {
				return false, w.msgs
			}
		}
	}
	return true, w.msgs
}

func (r *rig) producedCopy() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.produced {
		out[k] = v
	}
	return out
}

// A site that publishes over MQTT and writes InfluxDB itself from one
// outbox (two consumers): each consumer gets every record while the other
// is down, a record leaves only when both have it, and a consumer that
// reconnects while the other is behind does not send again what it
// already delivered.
func TestPublisherAndDirectWriterShareTheOutbox(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	ob, err := outbox.Open(outbox.Options{Dir: r.dir, Consumers: 2, Log: r.log})
	require.NoError(t, err)
	r.ob = ob
	w := watchReadings(t, r.mosq.URL)
	r.startPublisher("puback")
	d := r.runDirect(DirectOptions{Consumer: 1})
	records := func() int { st := r.ob.Stats(); return st.Records[0] + st.Records[1] }
	onMQTT := func(msg string) int {
		var msgs int
		eventually(t, 30*time.Second, func() bool {
			var ok bool
			ok, msgs = w.complete(r.producedCopy())
			return ok
		}, msg)
		return msgs
	}

	// Both up: everything reaches both, and leaves the outbox.
	r.produce(3, 50)
	onMQTT("first records on MQTT")
	r.waitStored(30 * time.Second)
	eventually(t, 10*time.Second, func() bool { return records() == 0 }, "outbox emptied")

	// InfluxDB down: MQTT gets everything, the outbox keeps it all for
	// InfluxDB.
	r.influx.Kill()
	r.produce(3, 100)
	onMQTT("records on MQTT while InfluxDB is down")
	eventually(t, 10*time.Second, func() bool { return r.pub.Stats().Released == 3*150 }, "publisher released all")
	require.NoError(t, r.ob.Release(context.Background())) // commit the deferred releases
	require.Equal(t, 3*100, records(), "the outbox keeps what InfluxDB has not stored")

	// The uplink drops and comes back while InfluxDB is still down: the
	// publisher's new session does not send the 300 records again.
	_, before := w.complete(r.producedCopy())
	sessions := r.pub.Stats().Sessions
	r.proxy.Cut()
	r.proxy.Restore()
	eventually(t, 20*time.Second, func() bool { return r.pub.Stats().Sessions > sessions && r.pub.Stats().Connected }, "publisher reconnected")
	r.produce(3, 1)
	after := onMQTT("a record after the reconnect")
	require.Equal(t, before+3, after, "messages on MQTT after the reconnect: only the new records")
	eventually(t, 10*time.Second, func() bool { return r.pub.Stats().Released == 3*151 }, "publisher released the new records")

	// InfluxDB back, uplink cut: InfluxDB gets everything, the outbox
	// keeps what MQTT has not.
	r.proxy.Cut()
	r.influx.Restart()
	r.produce(3, 40)
	r.waitStored(60 * time.Second)
	eventually(t, 10*time.Second, func() bool {
		_ = r.ob.Release(context.Background())
		return records() == 3*40
	}, fmt.Sprintf("the outbox keeps the %d records MQTT has not acknowledged", 3*40))

	// Uplink back: MQTT gets the rest, the outbox empties.
	r.proxy.Restore()
	onMQTT("every record on MQTT")
	eventually(t, 20*time.Second, func() bool {
		_ = r.ob.Release(context.Background())
		return records() == 0
	}, "outbox emptied")
	require.Zero(t, d.Stats().Dropped)
}
