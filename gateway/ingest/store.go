package ingest

import (
	"strings"
	"sync/atomic"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// inboundStore is paho's MemoryStore without the QoS 1 PUBLISH packets the
// broker sends us. paho puts every one in its store when it arrives and
// deletes it when the PUBACK goes out, but never reads it back: on
// reconnect it resends only what it sent itself (outbound keys) and
// inbound PUBRELs, and discards stored inbound PUBLISHes (paho v1.5.1
// client.go resume). A message we have not acknowledged is the broker's to
// deliver again, not paho's. Under load that Put and Del were ~7 % of the
// ingest's CPU (a locked map insert per message, and a lookup plus a
// formatted log argument per acknowledgement). Everything else (our
// receipts and dead letters until their PUBACK, QoS 2 state should a broker
// ever send QoS 2) is stored as before.
type inboundStore struct {
	*paho.MemoryStore
	// kept counts inbound packets that were stored (anything but a QoS 1
	// PUBLISH); while it is 0, deleting an inbound key has nothing to do.
	kept atomic.Int64
}

func newInboundStore() *inboundStore { return &inboundStore{MemoryStore: paho.NewMemoryStore()} }

// paho's key prefix for packets the broker sent (store.go inboundPrefix).
const inboundKeyPrefix = "i."

func (s *inboundStore) Put(key string, m packets.ControlPacket) {
	if strings.HasPrefix(key, inboundKeyPrefix) {
		if p, ok := m.(*packets.PublishPacket); ok && p.Qos == 1 {
			return
		}
		s.kept.Add(1)
	}
	s.MemoryStore.Put(key, m)
}

func (s *inboundStore) Del(key string) {
	if strings.HasPrefix(key, inboundKeyPrefix) && s.kept.Load() == 0 {
		return
	}
	s.MemoryStore.Del(key)
}
