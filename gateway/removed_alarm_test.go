package gateway

import (
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// An alarm standing at a clean shutdown whose device is then taken out of
// the config: the rest of the state is restored (not taken for a corrupt
// file), and the removed alarm's retained state is cleared (an empty
// retained payload), or every control room shows it for ever and cannot
// acknowledge it. Also when the removed alarms were the only ones standing
// (the state file was then taken for corrupt and renamed).
func TestRemovedAlarmsRetainedStateIsCleared(t *testing.T) {
	for _, othersToo := range []bool{true, false} {
		t.Run(map[bool]string{true: "others standing", false: "only removed ones standing"}[othersToo], func(t *testing.T) {
			removedAlarmRestart(t, othersToo)
		})
	}
}

func removedAlarmRestart(t *testing.T, othersToo bool) {
	two := coreSite(t, 2)
	g, err := New(Options{Site: two, Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	g.flush(t.Context(), g.eng.Tick(time.Now()))
	bs := benchBatches(2)
	if othersToo {
		bs[0].Readings[0].Value = 1.2 // d000.s00.high, kept
	}
	bs[1].Readings[0].Value = 1.2 // d001.s00.high, removed below
	bs[0].At, bs[1].At = time.Now(), time.Now()
	g.onBatches(t.Context(), bs)
	g.flush(t.Context(), g.eng.Tick(time.Now()))
	for _, id := range []string{"d000.s00.high", "d001.s00.high"} {
		st, ok := g.eng.Alarm(id)
		require.True(t, ok)
		require.Equal(t, othersToo || id == "d001.s00.high", st.Active, id)
	}
	for _, r := range mustDrain(t, g) { // published
		require.NoError(t, g.ob.Release(t.Context(), r.Key))
	}
	require.NoError(t, g.persist())
	g.markClean()
	require.NoError(t, g.Close())

	one := coreSite(t, 1) // d001 taken out; the same outbox and state file
	one.Outbox.Dir = two.Outbox.Dir
	g, err = New(Options{Site: one, Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	defer g.Close()
	require.NoError(t, g.restore(t.Context()))

	cleared, kept := false, false
	for _, r := range mustDrain(t, g) {
		switch r.Stream {
		case "d001.s00.high":
			require.Empty(t, r.Payload, "the removed alarm's retained state")
			cleared = true
		case "d000.s00.high":
			require.NotEmpty(t, r.Payload)
			kept = true
		}
	}
	require.True(t, cleared, "the retained state of d001.s00.high (no longer configured) is not cleared")
	require.Equal(t, othersToo, kept, "the state of d000.s00.high is published again")
	st, ok := g.eng.Alarm("d000.s00.high")
	require.True(t, ok)
	require.Equal(t, othersToo, st.Active, "restored")
	_, err = os.Stat(g.statePath + ".corrupt")
	require.ErrorIs(t, err, os.ErrNotExist, "the state file is not taken for corrupt")
}
