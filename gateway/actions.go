package gateway

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/canary-gw/canary/alerting"
)

// actReq asks the action runner to drive an interlock action.
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

// retryActions queues failed actions whose backoff has passed, with the
// engine's current demand.
func (g *Gateway) retryActions(now time.Time) {
	for name, at := range g.actRetry {
		if now.Before(at) {
			continue
		}
		st, ok := g.actionState(name)
		if !ok {
			delete(g.actRetry, name)
			continue
		}
		g.actRetry[name] = now.Add(g.actBackoff[name]) // until a result comes back
		g.log.Warn().Str("action", name).Bool("trip", st.Tripped).Msg("retrying failed interlock action")
		select {
		case g.actReqs <- actReq{action: name, trip: st.Tripped, at: now}:
		default:
		}
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

// queueAction hands a trip or release to the runner without blocking the
// core: an alarm evaluation never waits for a Modbus write.
func (g *Gateway) queueAction(ev alerting.Event) {
	name := ev.Action
	if name == "" {
		name = ev.Alarm
	}
	req := actReq{action: name, trip: ev.Type == alerting.EvActionTrip, at: ev.TS}
	select {
	case g.actReqs <- req:
	default:
		// The runner is hundreds of writes behind: report the failure so
		// the engine raises "action failed" instead of waiting silently.
		g.log.Error().Str("action", name).Msg("action queue full")
		select {
		case g.actDone <- actResult{action: name, trip: req.trip, ok: false, detail: "action queue full"}:
		default:
		}
	}
}

// runActions performs interlock writes one at a time, in the order the
// engine asked for them, each confirmed by read-back.
func (g *Gateway) runActions(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-g.actReqs:
			res := g.doAction(ctx, r)
			res.trip = r.trip
			ev := g.log.Info()
			if !res.ok {
				ev = g.log.Error()
			}
			ev.Str("action", r.action).Bool("trip", r.trip).Str("detail", res.detail).Msg("interlock action")
			g.met.actions.WithLabelValues(r.action, map[bool]string{true: "trip", false: "release"}[r.trip], resultLabel(errIf(!res.ok))).Inc()
			select {
			case g.actDone <- res:
			case <-ctx.Done():
				return nil
			}
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
		case <-wctx.Done():
			return actResult{action: r.action, detail: fmt.Sprintf("wrote %v but %s.%s did not read %v within %s", value, rb.Device, point, want, timeout)}
		case <-poll.C:
		}
	}
}
