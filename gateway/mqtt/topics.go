package mqtt

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/canary-gw/canary/internal/jsonenc"
)

// Topics builds the v1 topics of one site: <prefix>/v1/<site>/...
type Topics struct{ base string }

// NewTopics returns the topics of site under prefix (default "canary").
func NewTopics(prefix, site string) Topics {
	if prefix == "" {
		prefix = "canary"
	}
	return Topics{base: prefix + "/v1/" + site + "/"}
}

// Readings is where one device's poll batches go.
func (t Topics) Readings(device string) string { return t.base + "readings/" + device }

// Alarm is the retained state topic of one alarm.
func (t Topics) Alarm(id string) string { return t.base + "alarms/" + id }

// Events carries every alarm transition and operator action.
func (t Topics) Events() string { return t.base + "events" }

// Status is the retained online/offline status (and the will).
func (t Topics) Status() string { return t.base + "status" }

// Cmd carries inbound operator commands.
func (t Topics) Cmd() string { return t.base + "cmd" }

// CmdResult carries the answers to commands.
func (t Topics) CmdResult() string { return t.base + "cmd/result" }

// Receipts carries canary ingest's delivery receipts for this site.
func (t Topics) Receipts() string { return t.base + "receipts" }

// DeadLetter carries messages canary ingest could not store, with the reason.
func (t Topics) DeadLetter() string { return t.base + "deadletter" }

// TopicKind classifies an inbound topic.
type TopicKind int

// Topic kinds canary ingest consumes.
const (
	TopicUnknown TopicKind = iota
	TopicReadings
	TopicAlarm
	TopicEvents
)

// ParseTopic splits <prefix>/v1/<site>/readings/<device>,
// <prefix>/v1/<site>/alarms/<id> and <prefix>/v1/<site>/events.
func ParseTopic(prefix, topic string) (site string, kind TopicKind, name string) {
	rest, ok := strings.CutPrefix(topic, prefix+"/v1/")
	if !ok {
		return "", TopicUnknown, ""
	}
	site, rest, ok = strings.Cut(rest, "/")
	if !ok || !ValidID(site) {
		return "", TopicUnknown, ""
	}
	switch {
	case rest == "events":
		return site, TopicEvents, ""
	case strings.HasPrefix(rest, "readings/"):
		name = rest[len("readings/"):]
		if ValidID(name) {
			return site, TopicReadings, name
		}
	case strings.HasPrefix(rest, "alarms/"):
		name = rest[len("alarms/"):]
		if name != "" && !strings.Contains(name, "/") {
			return site, TopicAlarm, name
		}
	}
	return site, TopicUnknown, ""
}

// SeqRange is an inclusive range of sequence numbers, [from, to] in JSON.
type SeqRange [2]uint64

// Receipt is what canary ingest publishes on <prefix>/v1/<site>/receipts
// after InfluxDB accepted a batch: the sequence numbers it stored, per
// device and for the site's events. Ranges, not a high-water mark, because
// replicas on a share group each store part of a stream.
type Receipt struct {
	Ingest   string                `json:"ingest,omitempty"`
	Readings map[string][]SeqRange `json:"readings,omitempty"`
	Events   []SeqRange            `json:"events,omitempty"`
}

// Ranges compresses sequence numbers (any order, duplicates allowed) into
// sorted inclusive ranges.
func Ranges(seqs []uint64) []SeqRange {
	if len(seqs) == 0 {
		return nil
	}
	s := slices.Clone(seqs)
	slices.Sort(s)
	out := []SeqRange{{s[0], s[0]}}
	for _, v := range s[1:] {
		last := &out[len(out)-1]
		if v <= last[1]+1 {
			last[1] = max(last[1], v)
			continue
		}
		out = append(out, SeqRange{v, v})
	}
	return out
}

// maxReceiptSpan bounds how many sequence numbers one receipt may name, so
// a hostile receipt cannot make the publisher loop for ever.
const maxReceiptSpan = 1 << 24

// DecodeReceipt parses and checks a receipt.
func DecodeReceipt(b []byte) (Receipt, error) {
	var r Receipt
	if err := decodeStrict(b, &r); err != nil {
		return r, fmt.Errorf("decode receipt: %w", err)
	}
	var span uint64
	check := func(path string, rs []SeqRange) error {
		for i, x := range rs {
			if x[0] == 0 || x[1] < x[0] {
				return fmt.Errorf("decode receipt: %s[%d]: bad range [%d,%d]", path, i, x[0], x[1])
			}
			span += x[1] - x[0] + 1
			if span > maxReceiptSpan {
				return errors.New("decode receipt: names too many sequence numbers")
			}
		}
		return nil
	}
	for dev, rs := range r.Readings {
		if !ValidID(dev) {
			return r, fmt.Errorf("decode receipt: readings: %q is not a device id", dev)
		}
		if err := check("readings."+dev, rs); err != nil {
			return r, err
		}
	}
	if err := check("events", r.Events); err != nil {
		return r, err
	}
	return r, nil
}

// MarshalReceipt encodes a receipt, without HTML escaping (docs/mqtt.md).
func MarshalReceipt(r Receipt) []byte {
	b, err := jsonenc.Marshal(r)
	if err != nil {
		// A Receipt holds only strings and integers.
		panic(fmt.Sprintf("marshal receipt: %v", err))
	}
	return b
}
