package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
)

// cmdReq is an operator command on its way into the core.
type cmdReq struct {
	cmd  command.Command
	done chan error
}

// core is the one goroutine that owns the alarm engine. ctx only tells it
// to leave the loop: everything it commits is committed with a context that
// is never cancelled, so that a transition the engine made is never lost to
// a shutdown racing the outbox.
func (g *Gateway) core(ctx context.Context) error {
	tick := time.NewTicker(g.o.TickEvery)
	defer tick.Stop()
	work := context.WithoutCancel(ctx)
	for {
		// Leaving has priority over work that is ready at the same time.
		select {
		case <-ctx.Done():
			return g.drain(work)
		default:
		}
		select {
		case <-ctx.Done():
			return g.drain(work)
		case b := <-g.batches:
			g.onBatch(work, b)
		case c := <-g.cmds:
			c.done <- g.onCommand(work, c.cmd)
		case r := <-g.actDone:
			g.onActionResult(work, r)
		case now := <-tick.C:
			g.commit(work, g.eng.Tick(now), nil)
			g.retryActions(now)
			g.resendAlarms(work)
		}
	}
}

// drain commits what the pollers handed over before they stopped.
func (g *Gateway) drain(ctx context.Context) error {
	for {
		select {
		case b := <-g.batches:
			g.onBatch(ctx, b)
		default:
			return g.persist()
		}
	}
}

// onBatch evaluates one poll's readings and commits them with whatever
// alarm transitions they caused, in one outbox commit.
func (g *Gateway) onBatch(ctx context.Context, b modbus.Batch) {
	start := time.Now()
	at := b.At
	if at.IsZero() {
		at = start
	}
	samples := make([]alerting.Sample, 0, len(b.Readings))
	payload := mqtt.Readings{Site: g.site.Site, Device: b.Device, TS: at.UTC(), Readings: make([]mqtt.Reading, 0, len(b.Readings))}
	for _, r := range b.Readings {
		id := b.Device + "." + r.Sensor
		q := quality(r.Quality)
		v := r.Value
		if q == alerting.BadQuality || math.IsNaN(v) || math.IsInf(v, 0) {
			v = math.NaN()
		}
		samples = append(samples, alerting.Sample{Point: id, Value: v, Quality: q})
		meta := g.view.meta[id]
		payload.Readings = append(payload.Readings, mqtt.Reading{
			Sensor: r.Sensor, Kind: meta.kind, Unit: meta.unit,
			Value: v, Valid: !math.IsNaN(v), Quality: q.String(),
		})
	}
	evs, err := g.eng.Step(at, samples)
	if err != nil {
		g.log.Error().Err(err).Str("device", b.Device).Msg("alarm evaluation")
	}
	g.view.setReadings(b, payload, g.o.Registry != nil)
	if g.view.setDevice(b) {
		// The retained status names each device's communication state.
		g.pub.StatusChanged()
	}
	g.commit(ctx, evs, []outbox.Item{mqtt.ReadingsItem(payload)})
	g.met.observeBatch(b, len(evs), time.Since(start))
	if g.http != nil {
		g.view.publishReadings(g.http, payload)
	}
}

// commit appends alarm transitions (priority lane) and readings to the
// outbox in one commit, hands tripped and released actions to the action
// runner, updates the views and persists the engine state when alarms
// changed.
func (g *Gateway) commit(ctx context.Context, evs []alerting.Event, readings []outbox.Item) {
	if len(evs) == 0 && len(readings) == 0 {
		return
	}
	items := make([]outbox.Item, 0, 2*len(evs)+len(readings))
	changed := map[string]bool{}
	// eventSeq is the seq of the latest event of each alarm in this commit,
	// filled in as the outbox encodes the events (in order, before the
	// alarm states appended after them), so that the alarm's state carries
	// the seq of the transition that produced it into InfluxDB.
	eventSeq := map[string]uint64{}
	for i := range evs {
		ev := evs[i]
		items = append(items, mqtt.EventItem(func(dst []byte, seq uint64) []byte {
			ev.Seq = seq
			if ev.Alarm != "" {
				eventSeq[ev.Alarm] = seq
			}
			b, _ := ev.MarshalJSON() // hand-written encoder, never fails
			return append(dst, b...)
		}))
		switch ev.Type {
		case alerting.EvActionTrip, alerting.EvActionRelease:
			g.queueAction(ev)
		}
		if ev.Alarm != "" && !changed[ev.Alarm] {
			if _, ok := g.eng.Alarm(ev.Alarm); ok {
				changed[ev.Alarm] = true
			}
		}
	}
	for id := range changed {
		st, _ := g.eng.Alarm(id)
		if st.State == alerting.Normal {
			items = append(items, mqtt.AlarmItem(id, nil)) // clears the retained state
			continue
		}
		payload, _ := st.MarshalJSON()
		items = append(items, mqtt.AlarmStateItem(id, payload, func() uint64 { return eventSeq[id] }))
	}
	items = append(items, readings...)
	seqs, err := g.appendAll(ctx, items)
	if err != nil {
		// Alarm states that did not go out are sent again on every tick
		// until they do (resendAlarms): the retained topic must not stay
		// stale.
		for id := range changed {
			g.unsent[id] = true
		}
		// The outbox refuses only when closed or the disk fails: the
		// alarm state is still live in the engine, the UI and the
		// persisted snapshot, and the log says what did not go out.
		g.log.Error().Err(err).Int("events", len(evs)).Msg("outbox append failed")
		g.met.appendErrors.Inc()
	}
	for i := range evs {
		if i < len(seqs) {
			evs[i].Seq = seqs[i]
		}
		g.view.addTransition(g.http, evs[i])
	}
	if len(changed) > 0 {
		for id := range changed {
			st, _ := g.eng.Alarm(id)
			g.view.setAlarm(g.http, st)
		}
		g.met.alarmsChanged(g.eng.Alarms())
	}
	if len(evs) > 0 {
		if err := g.persist(); err != nil {
			g.log.Error().Err(err).Msg("persist alarm state")
		}
	}
}

// onCommand runs an operator command on the engine.
func (g *Gateway) onCommand(ctx context.Context, c command.Command) error {
	now := time.Now()
	var evs []alerting.Event
	var err error
	switch c.Action {
	case command.Ack:
		evs, err = g.eng.Ack(now, c.Alarm, c.User, c.Comment)
	case command.Shelve:
		evs, err = g.eng.Shelve(now, c.Alarm, c.User, c.Comment, c.Duration)
	case command.Unshelve:
		evs, err = g.eng.Unshelve(now, c.Alarm, c.User, c.Comment)
	case command.Reset:
		evs, err = g.eng.Reset(now, c.Alarm, c.User, c.Comment)
	default:
		err = fmt.Errorf("unknown action %q", c.Action)
	}
	g.commit(ctx, evs, nil)
	g.met.commands.WithLabelValues(string(c.Action), resultLabel(err)).Inc()
	ev := g.log.Info()
	if err != nil {
		ev = g.log.Warn().Err(err)
	}
	ev.Str("alarm", c.Alarm).Str("user", c.User).Str("action", string(c.Action)).Msg("operator command")
	return err
}

func resultLabel(err error) string {
	if err != nil {
		return "rejected"
	}
	return "ok"
}

// runCommand hands a command to the core and waits for its answer.
func (g *Gateway) runCommand(ctx context.Context, c command.Command) error {
	req := cmdReq{cmd: c, done: make(chan error, 1)}
	select {
	case g.cmds <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mqttCommand answers one command from the site's cmd topic.
func (g *Gateway) mqttCommand(ctx context.Context, payload []byte) []byte {
	c, err := command.Parse(payload)
	if err == nil {
		err = g.view.authorize(c.User)
	}
	if err == nil {
		err = g.runCommand(ctx, c)
	}
	if err != nil {
		g.log.Warn().Err(err).Str("id", c.ID).Msg("mqtt command rejected")
	}
	return command.Answer(c.ID, err).JSON()
}

// restore loads the persisted alarm state: a restart keeps every
// unacknowledged, latched and shelved alarm with its original since.
func (g *Gateway) restore(ctx context.Context) error {
	data, err := os.ReadFile(g.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gateway: read alarm state: %w", err)
	}
	evs, err := g.eng.Restore(time.Now(), data)
	if err != nil && evs == nil && len(nonNormal(g.eng.Alarms())) == 0 {
		// A corrupt state file must not keep the gateway from watching
		// the site; the alarms re-raise from live readings.
		g.log.Error().Err(err).Str("file", g.statePath).Msg("alarm state not restored")
		bad := g.statePath + ".corrupt"
		_ = os.Rename(g.statePath, bad)
		return nil
	}
	if err != nil {
		// Partly restored (e.g. alarms that are no longer configured):
		// keep what was restored, including the interlock trips it
		// re-issues.
		g.log.Warn().Err(err).Str("file", g.statePath).Msg("alarm state partly restored")
	}
	restored := nonNormal(g.eng.Alarms())
	for _, st := range restored {
		g.view.setAlarm(nil, st)
		// Publish every restored state again: retained states are
		// idempotent, and a broker that lost its store, or a crash
		// between the outbox commit and the snapshot, would otherwise
		// leave the retained topic wrong until the next transition.
		g.unsent[st.ID] = true
	}
	g.commit(ctx, evs, nil)
	g.resendAlarms(ctx)
	g.log.Info().Int("alarms", len(g.eng.Alarms())).Msg("alarm state restored")
	return nil
}

func nonNormal(all []alerting.AlarmState) []alerting.AlarmState {
	var out []alerting.AlarmState
	for _, st := range all {
		if st.State != alerting.Normal {
			out = append(out, st)
		}
	}
	return out
}

// resendAlarms publishes the current state of every alarm whose state did
// not reach the outbox (or must be republished after a restart).
func (g *Gateway) resendAlarms(ctx context.Context) {
	if len(g.unsent) == 0 {
		return
	}
	items := make([]outbox.Item, 0, len(g.unsent))
	ids := make([]string, 0, len(g.unsent))
	for id := range g.unsent {
		st, ok := g.eng.Alarm(id)
		if !ok {
			delete(g.unsent, id)
			continue
		}
		var payload []byte
		if st.State != alerting.Normal {
			payload, _ = st.MarshalJSON()
		}
		items = append(items, mqtt.AlarmItem(id, payload))
		ids = append(ids, id)
	}
	if _, err := g.appendAll(ctx, items); err != nil {
		g.log.Error().Err(err).Int("alarms", len(items)).Msg("outbox append failed, alarm states will be sent again")
		return
	}
	for _, id := range ids {
		delete(g.unsent, id)
	}
}

// persist writes the engine snapshot atomically (write, fsync, rename).
func (g *Gateway) persist() error {
	data, err := g.eng.Snapshot()
	if err != nil {
		return err
	}
	tmp := g.statePath + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, g.statePath); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(g.statePath)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func quality(q modbus.Quality) alerting.Quality {
	switch q {
	case modbus.QualityGood:
		return alerting.Good
	case modbus.QualityUncertain:
		return alerting.Uncertain
	default:
		return alerting.BadQuality
	}
}
