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

// actResult is the runner's answer: confirmed by read-back or not.
type actResult struct {
	action string
	ok     bool
	detail string
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
		case g.actDone <- actResult{action: name, ok: false, detail: "action queue full"}:
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
	sensor, ok := g.site.SensorAt(a.Device, a.Table, a.Address)
	if !ok {
		return actResult{action: r.action, detail: "target register is not a configured sensor"}
	}
	// A write whose answer is lost may still have switched the relay, and
	// writing the same value again is harmless: retry until confirmed or
	// the confirm timeout is spent, then report failure (P1 "action failed").
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
	point, ok := g.site.SensorAt(rb.Device, rb.Table, *rb.Address)
	if !ok {
		return actResult{action: r.action, detail: "read-back point is not a configured sensor"}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if v, ok := g.view.latest(rb.Device + "." + point); ok && v.after(r.at) && math.Abs(v.value-want) < 1e-9 {
			return actResult{action: r.action, ok: true, detail: fmt.Sprintf("wrote %v, %s.%s reads %v", value, rb.Device, point, v.value)}
		}
		select {
		case <-ctx.Done():
			return actResult{action: r.action, detail: "stopped"}
		case <-deadline.C:
			return actResult{action: r.action, detail: fmt.Sprintf("wrote %v but %s.%s did not read %v within %s", value, rb.Device, point, want, timeout)}
		case <-poll.C:
		}
	}
}
