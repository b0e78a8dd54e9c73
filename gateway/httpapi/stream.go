package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// hub fans published changes out to the event-stream clients. Publish
// never blocks the gateway: a client whose buffer is full is disconnected
// (it reconnects and reloads the full state, so it misses nothing for
// good), instead of slowing everyone down or silently skipping events.
type hub struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	bufSize int
}

type client struct {
	ch     chan []byte
	kicked chan struct{}
	once   sync.Once
}

func newHub(bufSize int) *hub {
	return &hub{clients: map[*client]struct{}{}, bufSize: bufSize}
}

func (h *hub) add() *client {
	c := &client{ch: make(chan []byte, h.bufSize), kicked: make(chan struct{})}
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	return c
}

// empty reports whether no client listens.
func (h *hub) empty() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients) == 0
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

// broadcast returns how many clients were disconnected for being slow.
func (h *hub) broadcast(msg []byte) int {
	dropped := 0
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c.ch <- msg:
		default:
			delete(h.clients, c)
			c.once.Do(func() { close(c.kicked) })
			dropped++
		}
	}
	return dropped
}

// sseMessage formats one server-sent event.
func sseMessage(event string, v any) ([]byte, error) {
	b := make([]byte, 0, 384)
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	if a, ok := v.(jsonAppender); ok {
		b = a.appendJSON(b)
	} else {
		j, err := marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s event: %w", event, err)
		}
		b = append(b, bytes.TrimSuffix(j, []byte{'\n'})...)
	}
	return append(b, "\n\n"...), nil
}

// Publish pushes one change to every event-stream client and, for
// readings, into the trend buffer. It never blocks and is safe for
// concurrent use; the gateway calls it for every reading, alarm state
// change, transition and device state change.
func (s *Server) Publish(ev Event) {
	if ev.Reading != nil {
		s.trends.add(*ev.Reading)
	}
	s.Stream(ev)
}

// Trend records one reading in the trend buffer (value NaN: no value)
// without building an Event; it does not allocate after a sensor's first
// reading.
func (s *Server) Trend(device, sensor string, ts time.Time, value float64, quality string) {
	s.trends.addSample(device, sensor, ts, value, quality)
}

// TrendSeries returns the number under which Trend's buffer keeps a
// sensor, for TrendAt: the gateway looks it up once per sensor instead of
// hashing the device and sensor names for every reading.
func (s *Server) TrendSeries(device, sensor string) int32 {
	return s.trends.id(device, sensor)
}

// TrendAt is Trend for the sensor numbered id by TrendSeries (an unknown
// number is ignored).
func (s *Server) TrendAt(id int32, ts time.Time, value float64, quality string) {
	s.trends.addAt(id, ts, value, quality)
}

// Streaming reports whether a client is on the event stream: without one,
// building events is pure cost.
func (s *Server) Streaming() bool { return !s.hub.empty() }

// Stream pushes one change to every event-stream client (not to the
// trends). It never blocks.
func (s *Server) Stream(ev Event) {
	var (
		name string
		v    any
	)
	// With nobody on the event stream, encoding every reading (reflection
	// JSON on the gateway's core goroutine) is pure cost.
	if s.hub.empty() {
		return
	}
	switch {
	case ev.Reading != nil:
		r := *ev.Reading
		s.fillReading(&r, s.now())
		name, v = "reading", &r
	case ev.Alarm != nil:
		name, v = "alarm", ev.Alarm
	case ev.Transition != nil:
		name, v = "transition", ev.Transition
	case ev.Device != nil:
		name, v = "device", ev.Device
	case ev.Holds != nil:
		name, v = "holds", ev.Holds
	default:
		return
	}
	msg, err := sseMessage(name, v)
	if err != nil {
		s.log.Error().Err(err).Msg("publish failed")
		return
	}
	s.metrics.published.WithLabelValues(name).Inc()
	if n := s.hub.broadcast(msg); n > 0 {
		s.metrics.sseDropped.Add(float64(n))
		s.log.Warn().Int("clients", n).Msg("slow event stream clients disconnected")
	}
}

// handleEvents serves GET /api/v1/events.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	c := s.hub.add()
	defer s.hub.remove(c)
	s.metrics.sseClients.Inc()
	defer s.metrics.sseClients.Dec()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The client reloads the full state on every (re)connect, so the
	// stream itself carries only changes.
	if _, err := fmt.Fprint(w, "retry: 2000\n: connected\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	ping := time.NewTicker(s.opts.Heartbeat)
	defer ping.Stop()
	for {
		var msg []byte
		select {
		case <-r.Context().Done():
			return
		case <-s.stopping:
			return
		case <-c.kicked:
			_, _ = fmt.Fprint(w, "event: resync\ndata: {}\n\n")
			_ = rc.Flush()
			return
		case <-ping.C:
			msg = []byte(": ping\n\n")
		case msg = <-c.ch:
		}
		if _, err := w.Write(msg); err != nil {
			return
		}
		// Write everything already queued before one flush.
		for drained := false; !drained; {
			select {
			case m := <-c.ch:
				if _, err := w.Write(m); err != nil {
					return
				}
			default:
				drained = true
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
