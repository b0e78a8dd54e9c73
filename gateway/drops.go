package gateway

import (
	"context"
	"time"

	"github.com/canary-gw/canary/configs"
)

// The readings-dropped alarm (configs.ReadingsDroppedAlarm): DESIGN's
// outbox.max_bytes drops the oldest readings past it, "counted, logged,
// alarmed". The outbox counts each drop (onDrop); the core's tick raises
// the alarm at the first drop it sees, with the batches dropped so far in
// the spell as its value, and returns it once dropCalm has passed without
// one. Alarms themselves are never dropped, so this one always gets out.

// dropCalm is how long without a drop before the alarm returns: a full
// outbox drops at every commit, and an uplink that comes back for a moment
// should not make the alarm chatter. A variable for the tests.
var dropCalm = time.Minute

// dropAlarm is the core's bookkeeping for the alarm.
type dropAlarm struct {
	started bool      // the engine's restored state was read
	on      bool      // raised (or restored active) and not yet returned
	seen    uint64    // Gateway.drops at the last tick
	spell   uint64    // Gateway.drops when the alarm was raised
	last    time.Time // the tick that last saw a drop
}

// judgeDrops raises or returns the alarm; on the core goroutine, at its tick.
func (g *Gateway) judgeDrops(ctx context.Context, now time.Time) {
	d := &g.drop
	if !d.started {
		// Restored active from before a restart: it returns after a calm
		// from now, unless drops go on.
		d.started = true
		if st, ok := g.eng.Alarm(configs.ReadingsDroppedAlarm); ok && st.Active {
			d.on, d.last = true, now
		}
	}
	n := g.drops.Load()
	var active bool
	switch {
	case n != d.seen:
		if !d.on {
			d.on, d.spell = true, d.seen
		}
		d.seen, d.last = n, now
		active = true
	case d.on && now.Sub(d.last) >= dropCalm:
		d.on = false
	default:
		return
	}
	value := n - d.spell
	evs, err := g.eng.SetSystem(now, configs.ReadingsDroppedAlarm, active, float64(value))
	if err != nil {
		g.log.Error().Err(err).Msg("readings-dropped alarm")
		return
	}
	if len(evs) > 0 {
		g.flush(ctx, evs)
	}
}
