package gateway

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/canary-gw/canary/alerting"
)

// actReq asks an action's runner to drive it to a state.
type actReq struct {
	action string
	trip   bool
	at     time.Time
}

// actResult is the runner's answer: confirmed by read-back or not, for a
// trip or a release.
type actResult struct {
	action string
	trip   bool
	ok     bool
	detail string
}

// actSlot is one action's desired state and its runner's bookkeeping. Each
// action has its own runner goroutine (runAction), so a slow action (a
// valve waiting for its limit switch, writes to an offline module) never
// holds another one up; writes on one link are serialized by its poller.
// The slot keeps only the latest desired state: a trip or release never
// waits in a queue behind older ones and can never be refused.
type actSlot struct {
	wake chan struct{} // capacity 1: the runner has something to look at

	mu      sync.Mutex
	want    actReq // the desired state not yet started, if pending
	pending bool
	busy    bool   // an attempt is running
	cur     actReq // the running attempt's request
	cancel  context.CancelFunc
	// superseded: the running attempt was cancelled by a newer request
	// for the other state; its result is not reported (the newer one's is).
	superseded bool
}

func newActSlot() *actSlot { return &actSlot{wake: make(chan struct{}, 1)} }

// set makes r the desired state. A running attempt for the other state is
// cancelled: a trip never waits for a release to time out, nor the other
// way round.
func (s *actSlot) set(r actReq) {
	s.mu.Lock()
	s.want, s.pending = r, true
	if s.busy && s.cur.trip != r.trip && s.cancel != nil {
		s.superseded = true
		s.cancel()
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// idle reports that nothing is pending or running.
func (s *actSlot) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.pending && !s.busy
}

// start takes the pending request, if any, as the running attempt, with a
// context the next set for the other state cancels.
func (s *actSlot) start(ctx context.Context) (actReq, context.Context, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pending {
		return actReq{}, nil, false
	}
	r := s.want
	actx, cancel := context.WithCancel(ctx)
	s.pending, s.busy, s.cur, s.cancel, s.superseded = false, true, r, cancel, false
	return r, actx, true
}

// finish ends the running attempt and reports whether its result stands
// (it was not superseded).
func (s *actSlot) finish() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel()
	s.busy, s.cancel = false, nil
	return !s.superseded
}

// onActionResult reports a confirmed or failed action to the engine, unless
// the engine's demand changed meanwhile (a late "tripped" must not confirm
// a release). A failed action is tried again with backoff for as long as
// the engine still demands it: a relay module that was offline for a few
// seconds must still cut the power when it comes back.
func (g *Gateway) onActionResult(ctx context.Context, r actResult) {
	if st, ok := g.actionState(r.action); ok && st.Tripped != r.trip {
		g.log.Debug().Str("action", r.action).Bool("trip", r.trip).Msg("stale action result ignored")
		return
	}
	evs, err := g.eng.ActionResult(time.Now(), r.action, r.ok, r.detail)
	if err != nil {
		g.log.Error().Err(err).Str("action", r.action).Msg("action result")
	}
	if r.ok {
		delete(g.actRetry, r.action)
		delete(g.actBackoff, r.action)
	} else {
		b := g.actBackoff[r.action]
		b = min(max(2*b, time.Second), 10*time.Second)
		g.actBackoff[r.action] = b
		g.actRetry[r.action] = time.Now().Add(b)
	}
	g.commit(ctx, evs, nil, nil)
}

// retryActions asks again for failed actions whose backoff has passed,
// with the engine's current demand. An action has at most one request
// pending: one whose runner is busy or has a request waiting is left
// alone, its result schedules the next retry if it fails.
func (g *Gateway) retryActions(now time.Time) {
	for name, at := range g.actRetry {
		if now.Before(at) {
			continue
		}
		st, ok := g.actionState(name)
		s := g.actSlots[name]
		if !ok || s == nil {
			delete(g.actRetry, name)
			continue
		}
		delete(g.actRetry, name) // until its result comes back
		if !s.idle() {
			continue
		}
		g.log.Warn().Str("action", name).Bool("trip", st.Tripped).Msg("retrying failed interlock action")
		s.set(actReq{action: name, trip: st.Tripped, at: now})
	}
}

func (g *Gateway) actionState(name string) (alerting.ActionState, bool) {
	for _, st := range g.eng.Actions() {
		if st.ID == name {
			return st, true
		}
	}
	return alerting.ActionState{}, false
}

// queueAction hands a trip or release to the action's runner without
// blocking the core: an alarm evaluation never waits for a Modbus write.
// It replaces any request of that action not started yet.
func (g *Gateway) queueAction(ev alerting.Event) {
	name := ev.Action
	if name == "" {
		name = ev.Alarm
	}
	req := actReq{action: name, trip: ev.Type == alerting.EvActionTrip, at: ev.TS}
	s, ok := g.actSlots[name]
	if !ok {
		g.log.Error().Str("action", name).Msg("interlock action not configured")
		select {
		case g.actDone <- actResult{action: name, trip: req.trip, ok: false, detail: "unknown action"}:
		default:
		}
		return
	}
	s.set(req)
}

// startActions starts one runner per action. They run until stop is
// closed (after the core has stopped: nothing new can be asked for) and
// they have done what was pending then, or until ctx ends.
func (g *Gateway) startActions(ctx context.Context, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, s := range g.actSlots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.runAction(ctx, s, stop)
		}()
	}
	return &wg
}

// runAction drives one action: it performs its latest desired state,
// confirmed by read-back, and reports each result to the core.
func (g *Gateway) runAction(ctx context.Context, s *actSlot, stop <-chan struct{}) {
	for {
		r, actx, ok := s.start(ctx)
		if !ok {
			select {
			case <-s.wake:
			case <-stop:
				s.mu.Lock()
				more := s.pending
				s.mu.Unlock()
				if !more {
					return
				}
			case <-ctx.Done():
				return
			}
			continue
		}
		res := g.doAction(actx, r)
		res.trip = r.trip
		if !s.finish() {
			g.log.Info().Str("action", r.action).Bool("trip", r.trip).Msg("interlock action superseded")
			continue
		}
		ev := g.log.Info()
		if !res.ok {
			ev = g.log.Error()
		}
		ev.Str("action", r.action).Bool("trip", r.trip).Str("detail", res.detail).Msg("interlock action")
		g.met.actions.WithLabelValues(r.action, map[bool]string{true: "trip", false: "release"}[r.trip], resultLabel(errIf(!res.ok))).Inc()
		select {
		case g.actDone <- res:
		case <-stop:
			// The core has stopped: nobody takes results any more.
		case <-ctx.Done():
			return
		}
	}
}

func errIf(b bool) error {
	if b {
		return fmt.Errorf("failed")
	}
	return nil
}

// doAction writes the trip or release value and confirms it: by the
// driver's read-back of the same register, and, when a separate read-back
// point is configured (a feed sensor, a valve limit switch), by that
// point's next good reading within the confirm timeout.
func (g *Gateway) doAction(ctx context.Context, r actReq) actResult {
	a, ok := g.actions[r.action]
	if !ok {
		return actResult{action: r.action, detail: "unknown action"}
	}
	value := *a.Release
	if r.trip {
		value = *a.Trip
	}
	sensor, ok := g.sensorAt(a.Device, a.Table, a.Address)
	if !ok {
		return actResult{action: r.action, detail: "target register is not a configured sensor"}
	}
	// A write whose answer is lost may still have switched the relay, and
	// writing the same value again is harmless: retry until confirmed or
	// the confirm timeout is spent, then report failure (P1 "action
	// failed"). One deadline covers the writes and the read-back wait.
	timeout := a.ConfirmTimeout
	if timeout <= 0 {
		timeout = g.o.ActionTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var back float64
	var err error
	for attempt := 1; ; attempt++ {
		back, err = g.polls.Write(wctx, a.Device, sensor, value)
		if err == nil || wctx.Err() != nil {
			break
		}
		g.log.Warn().Err(err).Str("action", r.action).Int("attempt", attempt).Msg("interlock write failed, retrying")
		select {
		case <-wctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err != nil {
		return actResult{action: r.action, detail: err.Error()}
	}
	rb := a.Readback
	if rb == nil || rb.Address == nil || (rb.Device == a.Device && rb.Table == a.Table && *rb.Address == a.Address) {
		return actResult{action: r.action, ok: true, detail: fmt.Sprintf("wrote %v, read back %v", value, back)}
	}
	want := *rb.Release
	if r.trip {
		want = *rb.Trip
	}
	point, ok := g.sensorAt(rb.Device, rb.Table, *rb.Address)
	if !ok {
		return actResult{action: r.action, detail: "read-back point is not a configured sensor"}
	}
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if v, ok := g.view.latest(rb.Device + "." + point); ok && v.after(r.at) && math.Abs(v.value-want) < 1e-9 {
			return actResult{action: r.action, ok: true, detail: fmt.Sprintf("wrote %v, %s.%s reads %v", value, rb.Device, point, v.value)}
		}
		select {
		case <-ctx.Done():
			return actResult{action: r.action, detail: "stopped"}
		case <-g.actStop:
			// The core has stopped: the point's readings no longer reach
			// the view, and nobody takes the result.
			return actResult{action: r.action, detail: fmt.Sprintf("wrote %v; stopped before %s.%s was read back", value, rb.Device, point)}
		case <-wctx.Done():
			return actResult{action: r.action, detail: fmt.Sprintf("wrote %v but %s.%s did not read %v within %s", value, rb.Device, point, want, timeout)}
		case <-poll.C:
		}
	}
}
