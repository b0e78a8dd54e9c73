package ingest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// TestInboundStoreKeepsAllButReceivedQoS1Publishes checks what the store
// keeps: our own publishes until their PUBACK, inbound QoS 2 state, but no
// copy of a QoS 1 message the broker sent.
func TestInboundStoreKeepsAllButReceivedQoS1Publishes(t *testing.T) {
	s := newInboundStore()
	s.Open()
	defer s.Close()

	in := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	in.Qos, in.MessageID = 1, 7
	s.Put("i.7", in)
	require.Nil(t, s.Get("i.7"), "a received QoS 1 publish is not kept")
	s.Del("i.7") // its PUBACK going out: nothing to delete, no effect
	require.Empty(t, s.All())

	out := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	out.Qos, out.MessageID = 1, 7
	s.Put("o.7", out)
	require.Same(t, out, s.Get("o.7"), "our own publish is kept until its PUBACK")

	in2 := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	in2.Qos, in2.MessageID = 2, 8
	s.Put("i.8", in2)
	require.Same(t, in2, s.Get("i.8"), "QoS 2 state is kept")
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 9
	s.Put("i.9", rel)
	require.Same(t, rel, s.Get("i.9"))
	require.ElementsMatch(t, []string{"o.7", "i.8", "i.9"}, s.All())

	s.Del("i.8")
	s.Del("o.7")
	require.Equal(t, []string{"i.9"}, s.All())
}

// TestInboundStoreWithPaho holds QoS 1 messages from a real Mosquitto
// unacknowledged, as the ingest does while a batch is written, once with
// paho's own MemoryStore and once with inboundStore: paho's store holds a
// copy of each under the inbound prefix inboundStore relies on (so a paho
// that changed its keys fails here), inboundStore holds none. (That
// acknowledgements still reach the broker is what the ingest's delivery
// tests check, which run on inboundStore.)
func TestInboundStoreWithPaho(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	const n = 50
	run := func(id string, store paho.Store) (held []string) {
		got := make(chan paho.Message, n)
		opts := paho.NewClientOptions().AddBroker(m.URL).SetClientID(id).SetCleanSession(false).
			SetAutoAckDisabled(true).SetOrderMatters(true).SetStore(store).
			SetDefaultPublishHandler(func(_ paho.Client, msg paho.Message) { got <- msg })
		c := paho.NewClient(opts)
		require.True(t, c.Connect().WaitTimeout(10*time.Second))
		require.True(t, c.Subscribe("store/"+id, 1, nil).WaitTimeout(10*time.Second))
		pub := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL).SetClientID(id + "-pub"))
		require.True(t, pub.Connect().WaitTimeout(10*time.Second))
		defer pub.Disconnect(0)
		for i := range n {
			require.True(t, pub.Publish("store/"+id, 1, false, strconv.Itoa(i)).WaitTimeout(10*time.Second))
		}
		msgs := make([]paho.Message, 0, n)
		for range n {
			select {
			case msg := <-got:
				msgs = append(msgs, msg)
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: %d of %d messages received", id, len(msgs), n)
			}
		}
		for _, k := range store.All() {
			if strings.HasPrefix(k, inboundKeyPrefix) {
				held = append(held, k)
			}
		}
		for _, msg := range msgs {
			msg.Ack()
		}
		c.Disconnect(250)
		return held
	}
	require.Len(t, run("paho-store", paho.NewMemoryStore()), n, "paho keeps each received message under %q", inboundKeyPrefix)
	require.Empty(t, run("inbound-store", newInboundStore()))
}

// TestIngestAcksReachTheBroker checks that the ingest's acknowledgements,
// with paho's store no longer holding received messages, still settle them
// at the broker: after 200 messages and a marker were stored, the same
// durable session restarted gets at most the marker again (its PUBACK may
// have been in the socket's buffer when the ingest stopped), never the 200.
func TestIngestAcksReachTheBroker(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	const n = 200
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(r.mosq.URL).SetClientID("acks-pub"))
	require.True(t, pub.Connect().WaitTimeout(10*time.Second))
	defer pub.Disconnect(0)
	send := func(dev string, seq int) {
		require.True(t, pub.Publish("canary/v1/bench/readings/"+dev, 1, false, benchMessageFor(dev, seq)).WaitTimeout(10*time.Second))
	}
	stored := func(dev string) func() bool {
		return func() bool {
			res, err := r.influx.Query("SELECT count(quality) FROM reading WHERE device='" + dev + "'")
			return err == nil && len(res.Results) > 0 && len(res.Results[0].Series) > 0
		}
	}

	in := r.startIngest("acks-a")
	for i := range n {
		send("d"+strconv.Itoa(i%4), i/4+1)
	}
	eventually(t, 30*time.Second, func() bool { return in.Stats().Messages == n }, "200 messages stored and acknowledged")
	send("mark1", 1)
	eventually(t, 30*time.Second, func() bool { return in.Stats().Messages == n+1 }, "marker 1 acknowledged")
	r.stopIngest("acks-a")

	again := r.startIngest("acks-a")
	send("mark2", 1)
	eventually(t, 30*time.Second, stored("mark2"), "marker 2 stored")
	eventually(t, 30*time.Second, func() bool { return again.Stats().Messages >= 1 }, "marker 2 acknowledged")
	require.LessOrEqual(t, again.Stats().Messages, uint64(2), "acknowledged messages were delivered again")
}
