package gateway

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// A restored shelve that would run past max_shelve from the restart is cut
// to max_shelve, and the gateway says so, naming the alarm: the operator
// set it longer. Here the state was written by a clock a year ahead, in a
// snapshot without saved_at (written before it existed), which nothing
// else shows.
func TestRestoredShelveCutIsLogged(t *testing.T) {
	site := coreSite(t, 1)
	g1, err := New(Options{Site: site, Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	now := time.Now()
	var id string
	for _, st := range g1.eng.Alarms() {
		if _, err := g1.eng.Shelve(now, st.ID, "ann", "sensor being replaced", time.Hour); err == nil {
			id = st.ID
			break
		}
	}
	require.NotEmpty(t, id, "no shelvable alarm")
	snap, err := g1.eng.Snapshot(now)
	require.NoError(t, err)
	require.NoError(t, g1.Close())
	snap = regexp.MustCompile(`,"saved_at":"[^"]*"`).ReplaceAll(snap, nil)
	yearOn := `"shelve_until":"` + now.AddDate(1, 0, 0).UTC().Format(time.RFC3339Nano) + `"`
	snap = regexp.MustCompile(`"shelve_until":"[^"]*"`).ReplaceAll(snap, []byte(yearOn))
	require.Contains(t, string(snap), yearOn)
	require.NoError(t, os.WriteFile(g1.statePath, snap, 0o600))

	var log bytes.Buffer
	g2, err := New(Options{Site: site, Log: zerolog.New(&log), NoHTTP: true})
	require.NoError(t, err)
	defer g2.Close()
	require.NoError(t, g2.restore(context.Background()))
	require.Contains(t, log.String(), `"message":"restored shelves cut to max_shelve from now"`)
	require.Regexp(t, `"alarms":\["`+regexp.QuoteMeta(id)+`"\]`, log.String())
	st, ok := g2.eng.Alarm(id)
	require.True(t, ok)
	require.False(t, st.ShelvedUntil.IsZero(), "no longer shelved")
	require.WithinDuration(t, time.Now().Add(8*time.Hour), st.ShelvedUntil, time.Minute, "shelved for max_shelve (8 h) from the restore")
}
