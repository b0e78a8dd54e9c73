package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/alerting"
)

// The events kept for a failing outbox are bounded: past maxUnsentEvents
// the oldest go, counted, operators' actions last, and the rest stay in
// their order.
func TestUnsentEventsBounded(t *testing.T) {
	g := &Gateway{met: newMetrics(prometheus.NewRegistry(), "s")}
	batch := func(from, n int) []alerting.Event {
		evs := make([]alerting.Event, n)
		for i := range evs {
			evs[i] = alerting.Event{Alarm: fmt.Sprintf("a%d", from+i), Type: alerting.EvActivate}
		}
		return evs
	}
	first := batch(0, maxUnsentEvents-10)
	first[3].User, first[3].Type = "olga", alerting.EvAck // an operator's action among the oldest
	g.keepUnsent(first)
	require.Len(t, g.unsentEvents, maxUnsentEvents-10)
	require.Zero(t, testutil.ToFloat64(g.met.eventsLost))
	g.keepUnsent(batch(maxUnsentEvents-10, 25))
	require.Len(t, g.unsentEvents, maxUnsentEvents)
	require.Equal(t, "a3", g.unsentEvents[0].Alarm, "the operator's action kept")
	require.Equal(t, "olga", g.unsentEvents[0].User)
	require.Equal(t, "a16", g.unsentEvents[1].Alarm, "the oldest 15 others dropped")
	require.Equal(t, fmt.Sprintf("a%d", maxUnsentEvents+14), g.unsentEvents[len(g.unsentEvents)-1].Alarm)
	require.Equal(t, 15.0, testutil.ToFloat64(g.met.eventsLost))
	require.EqualValues(t, 15, g.writeFail.lost, "logged at the next tick")

	// Nothing but operators' actions: the oldest of them go.
	acts := batch(0, maxUnsentEvents+5)
	for i := range acts {
		acts[i].User = "olga"
	}
	g2 := &Gateway{met: newMetrics(prometheus.NewRegistry(), "s")}
	g2.keepUnsent(acts)
	require.Len(t, g2.unsentEvents, maxUnsentEvents)
	require.Equal(t, "a5", g2.unsentEvents[0].Alarm)
	require.Equal(t, 5.0, testutil.ToFloat64(g2.met.eventsLost))
}

// A dead disk fails a commit five times a second: the log gets the first
// failure of a spell at once, then one line per diskFailLogEvery with
// how many it left out.
func TestAppendFailuresLoggedAtAPace(t *testing.T) {
	var buf bytes.Buffer
	g := &Gateway{log: zerolog.New(&buf)}
	g.diskFailLog().Err(errors.New("disk 1")).Msg("outbox append failed")
	for range 5 {
		g.diskFailLog().Err(errors.New("disk 2")).Int("records", 3).Msg("outbox append failed")
	}
	require.Equal(t, 1, strings.Count(buf.String(), "\n"), buf.String())
	require.Contains(t, buf.String(), "disk 1")
	g.failLog.last = g.failLog.last.Add(-diskFailLogEvery) // the period has passed
	g.diskFailLog().Err(errors.New("disk 3")).Msg("outbox append failed")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[1], `"failures_not_logged":5`)
	require.Contains(t, lines[1], "disk 3")
}
