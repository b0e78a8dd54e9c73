package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
)

func TestRecyclerFlights(t *testing.T) {
	r := newRecycler()
	f := r.flight()
	f.rec.Payload, f.acked = r.payload(10), true
	r.keep(f)
	g := r.flight()
	require.Same(t, f, g)
	require.Equal(t, flight{}, *g, "a kept flight comes back zeroed")
	kept, _ := r.payloads.Stats()
	require.Equal(t, 16, kept, "its payload kept")
	require.Len(t, r.payload(12), 12)
	_, reused := r.payloads.Stats()
	require.EqualValues(t, 1, reused)
}

// recyclePayload is a payload whose every byte follows from its stream and
// seq, of a length that changes from record to record, so a buffer reused
// while a record still needed it shows as a wrong message.
func recyclePayload(dst []byte, stream string, seq uint64) []byte {
	n := 20 + int(seq*7919%5000)
	head := fmt.Sprintf("%s:%d:%d:", stream, seq, n)
	dst = append(dst, head...)
	for i := len(head); i < n; i++ {
		dst = append(dst, byte('a'+(seq+uint64(i))%26))
	}
	return dst
}

// TestRecycledPayloadsArriveIntact publishes waves of records through a
// real Mosquitto with a small window, so that the payload buffers of the
// acknowledged records of one wave carry the next ones: every message must
// arrive as it was committed.
func TestRecycledPayloadsArriveIntact(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	cfg := configs.MQTT{URL: m.URL}
	cfg.SetDefaults()
	got := subscribe(t, cfg, "canary/v1/s1/readings/#")
	ob := openOutbox(t)
	p, stop := startPublisher(t, Options{Config: cfg, Site: "s1", Outbox: ob, MaxInflight: 16})

	const waves, perWave = 6, 100
	devs := []string{"d1", "d2", "d3"}
	for w := 0; w < waves; w++ {
		items := make([]outbox.Item, 0, perWave)
		for i := 0; i < perWave; i++ {
			dev := devs[i%len(devs)]
			items = append(items, outbox.Item{Kind: outbox.KindReadings, Stream: dev, Encode: func(dst []byte, seq uint64) []byte {
				return recyclePayload(dst, dev, seq)
			}})
		}
		_, err := ob.Append(context.Background(), items...)
		require.NoError(t, err)
		waitFor(t, 30*time.Second, func() bool { return len(got.snapshot()) >= (w+1)*perWave }, "wave published")
	}
	stop()

	msgs := got.snapshot()
	require.Len(t, msgs, waves*perWave, "each record once (no reconnect)")
	seen := map[string]bool{}
	for _, msg := range msgs {
		b := msg.Payload()
		parts := strings.SplitN(string(b), ":", 4)
		require.Len(t, parts, 4, "payload %.40q", b)
		var seq uint64
		_, err := fmt.Sscan(parts[1], &seq)
		require.NoError(t, err)
		require.Equal(t, "canary/v1/s1/readings/"+parts[0], msg.Topic())
		require.True(t, bytes.Equal(recyclePayload(nil, parts[0], seq), b), "%s seq %d arrived as %.60q...", parts[0], seq, b)
		seen[parts[0]+":"+parts[1]] = true
	}
	require.Len(t, seen, waves*perWave)
	// The publisher has stopped: its recycler can be read. Buffers were
	// handed out again (each wave after the first), and are kept.
	kept, reused := p.recycle.payloads.Stats()
	require.Positive(t, reused, "payload buffers reused")
	require.Positive(t, kept)
}
