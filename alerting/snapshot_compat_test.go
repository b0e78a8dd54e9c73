package alerting

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The fixture in testdata/snapshot_v1 was written by the engine at commit
// 419082d (before the issue-7 rewrite of the engine's internals) with
// -write-snapshot-fixture. It must never be regenerated: it is the proof
// that a snapshot written by a gateway running that code restores to the
// same alarm states in the current one.
var writeSnapshotFixture = flag.Bool("write-snapshot-fixture", false, "write testdata/snapshot_v1 (only with the old engine)")

const snapshotFixtureDir = "testdata/snapshot_v1"

// renderRestore restores snap into a fresh engine of the property config
// and renders the events, every alarm's state and every action.
func renderRestore(t testing.TB, snap []byte, at time.Time) string {
	e, err := New(propertyConfig())
	require.NoError(t, err)
	evs, err := e.Restore(at, snap)
	var b strings.Builder
	fmt.Fprintf(&b, "restore error: %v\n", err)
	for _, ev := range evs {
		raw, err := json.Marshal(ev)
		require.NoError(t, err)
		fmt.Fprintf(&b, "event %s action=%s\n", raw, ev.Action)
	}
	for _, st := range e.Alarms() {
		raw, err := json.Marshal(st)
		require.NoError(t, err)
		fmt.Fprintf(&b, "alarm %s acked=%t shelved_until=%s one_shot=%t suppressed=%t first_out=%t chattering=%t stale=%t quality=%s\n",
			raw, st.Acked, st.ShelvedUntil.UTC().Format(time.RFC3339Nano), st.OneShot, st.Suppressed, st.FirstOut, st.Chattering, st.Stale, st.Quality)
	}
	for _, a := range e.Actions() {
		fmt.Fprintf(&b, "action %+v\n", a)
	}
	// The restored engine must go on working: a tick far later expires
	// shelves and out-of-service periods and raises comm alarms.
	for _, ev := range e.Tick(at.Add(10 * time.Hour)) {
		raw, err := json.Marshal(ev)
		require.NoError(t, err)
		fmt.Fprintf(&b, "tick %s\n", raw)
	}
	return b.String()
}

// fixtureSeeds are property-runner seeds whose final state has shelved,
// out-of-service, latched, unacknowledged and first-out alarms and a
// tripped action (checked when the fixture was written).
var fixtureSeeds = []uint64{3, 11, 42}

func TestRestoreSnapshotFromOldEngine(t *testing.T) {
	for _, seed := range fixtureSeeds {
		snapPath := filepath.Join(snapshotFixtureDir, fmt.Sprintf("seed%d.json", seed))
		wantPath := filepath.Join(snapshotFixtureDir, fmt.Sprintf("seed%d.restored", seed))
		atPath := filepath.Join(snapshotFixtureDir, fmt.Sprintf("seed%d.at", seed))
		if *writeSnapshotFixture {
			rng := rand.New(rand.NewPCG(seed, 7))
			data := make([]byte, 3000)
			for i := range data {
				data[i] = byte(rng.UintN(256))
			}
			r := newRunner(t)
			r.run(data)
			snap, err := r.e.Snapshot()
			require.NoError(t, err)
			var pretty bytes.Buffer
			require.NoError(t, json.Indent(&pretty, snap, "", " "))
			require.NoError(t, os.MkdirAll(snapshotFixtureDir, 0o755))
			require.NoError(t, os.WriteFile(snapPath, pretty.Bytes(), 0o644))
			at := r.now.Add(time.Second)
			require.NoError(t, os.WriteFile(atPath, []byte(at.Format(time.RFC3339Nano)), 0o644))
			require.NoError(t, os.WriteFile(wantPath, []byte(renderRestore(t, snap, at)), 0o644))
			continue
		}
		snap, err := os.ReadFile(snapPath)
		require.NoError(t, err)
		want, err := os.ReadFile(wantPath)
		require.NoError(t, err)
		rawAt, err := os.ReadFile(atPath)
		require.NoError(t, err)
		at, err := time.Parse(time.RFC3339Nano, string(rawAt))
		require.NoError(t, err)
		require.Equal(t, string(want), renderRestore(t, snap, at), "seed %d", seed)
	}
}
