package gateway

import (
	"os"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/command"
)

// A latching trip that comes right after a routine snapshot (polls and
// ticks share one grid, so a snapshot for an alarm of the poll before is
// often just written) is saved neededGap after it, not held to the
// routine gap and the next grid step (up to half a second: a crash in
// between lost it).
func TestLatchRightAfterASnapshotIsSavedSoon(t *testing.T) {
	g := newCoreGateway(t, 1, Options{TickEvery: 250 * time.Millisecond})
	g.flush(t.Context(), g.eng.Tick(time.Now()))
	g.persistNow(time.Now()) // a routine snapshot, just written
	// As on a slow disk: neededGap at its 2 s bound, which a descheduled
	// test does not outrun before the batch is committed.
	g.persistTook = 200 * time.Millisecond
	bs := benchBatches(1)
	bs[0].Readings[0].Value = 1.6 // high and high_high (latching)
	bs[0].At = time.Now()
	g.onBatches(t.Context(), bs)
	snap, err := os.ReadFile(g.statePath)
	require.NoError(t, err)
	require.NotContains(t, string(snap), `"d000.s00.high_high"`, "within neededGap of the last snapshot")
	require.True(t, g.stateDirty)

	now := time.Now()
	g.tickedAt = now
	d := g.nextTick(now)
	require.LessOrEqual(t, d, g.neededGap(), "the core wakes for it neededGap after the last snapshot, off the grid")
	g.onTick(t.Context(), g.persistedAt.Add(2*g.neededGap()))
	snap, err = os.ReadFile(g.statePath)
	require.NoError(t, err)
	require.Contains(t, string(snap), `"d000.s00.high_high"`, "saved at the first tick past neededGap")
	require.False(t, g.neededDirty)
}

// A reset right after a routine snapshot is in the snapshot when the
// command returns: a crash a moment later (the power cut's own?) must not
// bring the released interlock back tripped at the restart.
func TestResetRightAfterASnapshotIsSaved(t *testing.T) {
	g, err := New(Options{Site: registersSite(t), Log: zerolog.Nop(), NoHTTP: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	g.flush(t.Context(), g.eng.Tick(time.Now()))
	poll := func(v float64) {
		g.onBatches(t.Context(), []modbus.Batch{{Device: "face-gas", At: time.Now(),
			Readings: []modbus.Reading{{Sensor: "ch4", Value: v, Quality: modbus.QualityGood}}}})
	}
	poll(1.8)
	poll(0.3) // the gas gone: high_high latched, the power still cut
	require.NoError(t, g.onCommand(t.Context(), command.Command{Action: command.Ack, Alarm: "face-gas.ch4.high_high", User: "olga", Comment: "seen"}))
	g.persistNow(time.Now()) // a routine snapshot, just written
	snap, err := os.ReadFile(g.statePath)
	require.NoError(t, err)
	require.Contains(t, string(snap), `"tripped":true`)
	require.NoError(t, g.onCommand(t.Context(), command.Command{Action: command.Reset, Alarm: "face-gas.ch4.high_high", User: "olga", Comment: "checked"}))
	snap, err = os.ReadFile(g.statePath)
	require.NoError(t, err)
	require.NotContains(t, string(snap), `"tripped":true`, "the released power cut is saved as released")
}

// canary_batch_commit_seconds counts a poll's wait for the core: an
// overloaded core shows there (it measured the evaluation alone).
func TestBatchSecondsCountTheWaitForTheCore(t *testing.T) {
	g := newCoreGateway(t, 1, Options{TickEvery: 250 * time.Millisecond})
	g.flush(t.Context(), g.eng.Tick(time.Now()))
	bs := benchBatches(1)
	bs[0].At = time.Now().Add(-400 * time.Millisecond) // answered 400 ms ago
	g.onBatches(t.Context(), bs)
	var m dto.Metric
	require.NoError(t, g.met.evalSeconds.Write(&m))
	require.EqualValues(t, 1, m.GetHistogram().GetSampleCount())
	require.GreaterOrEqual(t, m.GetHistogram().GetSampleSum(), 0.4)
}
