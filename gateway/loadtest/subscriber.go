package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/canary-gw/canary/gateway/mqtt"
)

// Subscriber counts what the gateway delivered to the broker, as a control
// room or `canary ingest` would receive it (QoS 1), and times alarm events.
type Subscriber struct {
	client   paho.Client
	messages atomic.Uint64
	readings atomic.Uint64
	events   atomic.Uint64
	bad      atomic.Uint64
	// Alarm holds, per activate/return event, the time from the poll
	// response's arrival (the event's ts) to its receipt here.
	Alarm Latencies
}

// Subscribe connects to broker and subscribes to the site's readings and
// events at QoS 1.
func Subscribe(broker, prefix, site, clientID string, timeout time.Duration) (*Subscriber, error) {
	s := &Subscriber{}
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(clientID).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(timeout).SetOrderMatters(false)
	c := paho.NewClient(opts)
	if err := wait(c.Connect(), timeout); err != nil {
		return nil, fmt.Errorf("subscriber connect %s: %w", broker, err)
	}
	t := mqtt.NewTopics(prefix, site)
	filters := map[string]byte{t.Readings("+"): 1, t.Events(): 1}
	if err := wait(c.SubscribeMultiple(filters, s.onMessage), timeout); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("subscriber subscribe: %w", err)
	}
	s.client = c
	return s, nil
}

var sensorKey = []byte(`"sensor":`)

func (s *Subscriber) onMessage(_ paho.Client, m paho.Message) {
	now := time.Now()
	s.messages.Add(1)
	if !strings.HasSuffix(m.Topic(), "/events") {
		// Counting keys keeps the subscriber's own CPU out of the figures
		// as far as possible; the payload codec is tested elsewhere.
		s.readings.Add(uint64(bytes.Count(m.Payload(), sensorKey)))
		return
	}
	s.events.Add(1)
	var ev struct {
		TS   string `json:"ts"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(m.Payload(), &ev); err != nil {
		s.bad.Add(1)
		return
	}
	if ev.Type != "activate" && ev.Type != "return" {
		return
	}
	at, err := mqtt.ParseTime(ev.TS)
	if err != nil {
		s.bad.Add(1)
		return
	}
	s.Alarm.Add(now.Sub(at))
}

// Counts are messages, readings, events and undecodable payloads received.
func (s *Subscriber) Counts() (messages, readings, events, bad uint64) {
	return s.messages.Load(), s.readings.Load(), s.events.Load(), s.bad.Load()
}

// Close disconnects.
func (s *Subscriber) Close() { s.client.Disconnect(100) }

func wait(t paho.Token, d time.Duration) error {
	if !t.WaitTimeout(d) {
		return fmt.Errorf("timed out after %s", d)
	}
	return t.Error()
}
