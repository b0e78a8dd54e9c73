package control

import (
	"strings"
	"testing"

	"github.com/canary-gw/canary/configs"
)

// message is a paho.Message for feeding onMessage directly.
type message struct {
	topic   string
	payload []byte
}

func (m message) Duplicate() bool   { return false }
func (m message) Qos() byte         { return 1 }
func (m message) Retained() bool    { return false }
func (m message) Topic() string     { return m.topic }
func (m message) MessageID() uint16 { return 1 }
func (m message) Payload() []byte   { return m.payload }
func (m message) Ack()              {}

// FuzzMessage feeds arbitrary topics and payloads to the control room, as
// any client allowed to publish on the broker could: never a panic, and
// everything kept is qualified by the site of the topic it came from.
func FuzzMessage(f *testing.F) {
	f.Add("canary/v1/north/readings/face-gas", []byte(`{"site":"north","device":"face-gas","seq":1,"ts":"2026-01-01T00:00:00Z","readings":[{"sensor":"ch4","kind":"methane","value":1.2,"unit":"%vol","quality":"good"}]}`))
	f.Add("canary/v1/north/alarms/face-gas.ch4.high", []byte(`{"id":"face-gas.ch4.high","site":"north","device":"face-gas","sensor":"ch4","condition":"high","priority":2,"state":"unacknowledged","active":true,"latched":false,"value":1.2,"limit":1,"since":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z","acked_by":"","comment":""}`))
	f.Add("canary/v1/north/alarms/face-gas.ch4.high", []byte{})
	f.Add("canary/v1/north/events", []byte(`{"seq":1,"ts":"2026-01-01T00:00:00Z","type":"activate","alarm":"face-gas.ch4.high","from":"normal","to":"unacknowledged","active":true,"value":1.2,"limit":1,"user":"","comment":""}`))
	f.Add("canary/v1/north/status", []byte(`{"state":"online","site":"north","devices":[{"device":"face-gas","comm":"lost"}]}`))
	f.Add("canary/v1/north/cmd/result", []byte(`{"id":"x","ok":false,"error":"no"}`))
	f.Add("canary/v1/North/status", []byte(`{"state":"offline"}`))
	// One room for every input: state left by earlier messages is part of
	// what later ones meet.
	cfg := &configs.Control{}
	cfg.SetDefaults()
	r, err := New(Options{Config: cfg})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		r.onMessage(nil, message{topic: topic, payload: payload})
		for _, a := range r.st.alarmList() {
			if !strings.HasPrefix(a.ID, a.Site+".") {
				t.Fatalf("alarm %q not qualified by its site %q", a.ID, a.Site)
			}
		}
		for _, rd := range r.st.readingsList() {
			if !strings.HasPrefix(rd.Device, rd.Site+".") {
				t.Fatalf("device %q not qualified by its site %q", rd.Device, rd.Site)
			}
		}
		for _, d := range r.st.deviceList() {
			if !strings.HasPrefix(d.ID, d.Site+".") {
				t.Fatalf("device %q not qualified by its site %q", d.ID, d.Site)
			}
		}
	})
}
