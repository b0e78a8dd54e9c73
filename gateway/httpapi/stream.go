package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// hub fans published changes out to the event-stream clients. Publish
// never blocks the gateway: a client that has more than its budget of
// bytes waiting (it cannot keep up) is disconnected (it reconnects and
// reloads the full state, so it misses nothing for good), instead of
// slowing everyone down or silently skipping events.
//
// The budget is in bytes, not messages: one poll of a site's devices is a
// burst of a reading per sensor, and an alarm flood one of a transition
// and a state per alarm, all sent in one turn of the gateway's core before
// any client runs. A bound of 256 messages cut every client, however
// fast, on every poll of a 1 000-sensor site and in a flood of 128 alarms.
type hub struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	budget  int
}

// streamBudget is a client's default budget: a poll of 10 000 sensors
// (about 3 MB of reading events) with room to spare. The messages are
// shared by the clients, so it bounds what a stalled client keeps alive.
const streamBudget = 8 << 20

type client struct {
	mu     sync.Mutex
	queue  [][]byte
	queued int           // bytes in queue
	ready  chan struct{} // capacity 1: something was queued
	kicked chan struct{}
	once   sync.Once
}

func newHub(budget int) *hub {
	return &hub{clients: map[*client]struct{}{}, budget: budget}
}

func (h *hub) add() *client {
	c := &client{ready: make(chan struct{}, 1), kicked: make(chan struct{})}
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
		c.mu.Lock()
		over := c.queued+len(msg) > h.budget
		if !over {
			c.queue = append(c.queue, msg)
			c.queued += len(msg)
		}
		c.mu.Unlock()
		if over {
			delete(h.clients, c)
			c.once.Do(func() { close(c.kicked) })
			dropped++
			continue
		}
		select {
		case c.ready <- struct{}{}:
		default:
		}
	}
	return dropped
}

// take returns what is queued and leaves spare (emptied) as the queue.
func (c *client) take(spare [][]byte) [][]byte {
	clear(spare)
	c.mu.Lock()
	q := c.queue
	c.queue, c.queued = spare[:0], 0
	c.mu.Unlock()
	return q
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

// TrendSeries returns the number under which the trend buffer keeps a
// sensor, for TrendPoll's Add: the gateway looks it up once per sensor instead of
// hashing the device and sensor names for every reading.
func (s *Server) TrendSeries(device, sensor string) int32 {
	return s.trends.id(device, sensor)
}

// TrendPoll starts recording one poll's readings, all stamped ts, in the
// trend buffer: Add (or AddNamed) each, then Done. It holds the buffer's
// lock until Done: call nothing else of the Server in between.
func (s *Server) TrendPoll(ts time.Time) TrendPoll { return s.trends.poll(ts) }

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
	// A client that stops reading (its window full) would hold a write,
	// and with it this goroutine and its socket, until its TCP gave up, and
	// make the gateway's stop wait out its grace and fail: every write has
	// a deadline, and stopping ends a write under way.
	// (A second, not now: a stream that is ending anyway finishes its
	// response cleanly.) The mutex keeps a write from setting its own
	// deadline after the stop's.
	var deadlineMu sync.Mutex
	defer context.AfterFunc(s.stopCtx, func() {
		deadlineMu.Lock()
		defer deadlineMu.Unlock()
		_ = rc.SetWriteDeadline(time.Now().Add(time.Second))
	})()
	setDeadline := func() bool {
		deadlineMu.Lock()
		defer deadlineMu.Unlock()
		return s.stopCtx.Err() == nil && rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) == nil
	}
	var batch, spare [][]byte
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.stopping:
			return
		case <-c.kicked:
			if setDeadline() {
				_, _ = fmt.Fprint(w, "event: resync\ndata: {}\n\n")
				_ = rc.Flush()
			}
			return
		case <-ping.C:
			batch = append(batch[:0], pingMsg)
		case <-c.ready:
			// Everything queued, in one flush.
			batch, spare = c.take(spare), batch
		}
		if !setDeadline() {
			return
		}
		// The deadline bounds a blocked write, not the whole batch: a
		// client that reads, however slowly, is not cut while it keeps up
		// with its budget.
		sent := 0
		for _, m := range batch {
			if sent += len(m); sent > deadlineEvery {
				if !setDeadline() {
					return
				}
				sent = len(m)
			}
			if _, err := w.Write(m); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

var pingMsg = []byte(": ping\n\n")

// streamWriteTimeout bounds a write to an event-stream client that
// blocks: renewed every deadlineEvery bytes.
const (
	streamWriteTimeout = 10 * time.Second
	deadlineEvery      = 64 << 10
)
