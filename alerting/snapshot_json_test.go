package alerting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// snapshotOracle is the snapshot struct exactly as Snapshot built it for
// encoding/json before WriteSnapshot: the reference the hand-written
// encoder is checked against.
func snapshotOracle(e *Engine, now time.Time) snapshot {
	s := snapshot{Version: snapshotVersion, SavedAt: now.Round(0), Seq: map[string]uint64{}, Flood: map[string]bool{}}
	for site, st := range e.sites {
		s.Seq[site] = st.seq
		if st.flood {
			s.Flood[site] = true
		}
	}
	for _, a := range e.alist {
		if a.baseState() == Normal && a.shelve == notShelved && !a.oos {
			continue
		}
		sa := snapAlarm{ID: a.id, Active: a.active, Acked: a.acked, Latched: a.latched, Since: e.onClockOf(now, a.since()),
			Updated: e.onClockOf(now, a.updated()), AckedAt: e.onClockOf(now, a.ackedAt()), AckedBy: a.ackedBy(), Comment: a.comment(),
			ShelveUntil: e.onClockOf(now, a.shelveUntil()), OOS: a.oos, OOSUntil: e.onClockOf(now, a.oosUntil()), FirstOut: a.firstOut, Stale: a.stale, Held: a.held}
		if v := e.valueOf(a); !math.IsNaN(v) && !math.IsInf(v, 0) {
			sa.Value = &v
		}
		switch a.shelve {
		case timedShelve:
			sa.Shelve = "timed"
		case oneShotShelve:
			sa.Shelve = "oneshot"
		}
		s.Alarms = append(s.Alarms, sa)
	}
	for _, act := range e.aclist {
		if act.tripped {
			s.Actions = append(s.Actions, snapAction{ID: act.cfg.ID, Tripped: true, Trigger: act.trigger})
		}
	}
	return s
}

// requireSnapshotMatchesEncodingJSON checks got, the engine's snapshot,
// byte for byte against encoding/json's encoding of snapshotOracle. Two
// differences are encoding/json's own and do not change what decodes: it
// escapes <, > and & (turned off here) and U+2028/U+2029 (put back).
func requireSnapshotMatchesEncodingJSON(t testing.TB, e *Engine, now time.Time, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(snapshotOracle(e, now)))
	want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	want = bytes.ReplaceAll(want, []byte(`\u2028`), []byte("\u2028"))
	want = bytes.ReplaceAll(want, []byte(`\u2029`), []byte("\u2029"))
	require.Equal(t, string(want), string(got))
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// methanePoints is a site of n methane detectors, d00000.ch4 and on.
func methanePoints(n int) Config {
	var cfg Config
	for i := range n {
		cfg.Points = append(cfg.Points, PointConfig{Site: "demo", Device: fmt.Sprintf("d%05d", i), Sensor: "ch4", Kind: "methane"})
	}
	return cfg
}

type sizeWriter int

func (w *sizeWriter) Write(p []byte) (int, error) {
	*w += sizeWriter(len(p))
	return len(p), nil
}

// A snapshot with every kind of member, operator text that strconv.Quote
// got wrong and more alarms than one chunk holds: the same bytes as
// encoding/json, written in chunks, and restored into a new engine.
func TestWriteSnapshotMatchesEncodingJSON(t *testing.T) {
	const n = 400
	cfg := methanePoints(n)
	e := newEngine(t, cfg)
	now := time.Date(2026, 11, 29, 3, 0, 0, 120000000, time.UTC)
	empty, err := e.Snapshot(now)
	require.NoError(t, err)
	requireSnapshotMatchesEncodingJSON(t, e, now, empty)

	comments := []string{"plain", "<b>gas</b> & co", "bell\a nul\x00", "bad \xff byte", "line\u2028sep", "é€𝄞 \"q\" \\", "two\tlines\r\nand DEL\x7f"}
	for i := range n {
		id := fmt.Sprintf("d%05d.ch4", i)
		v := 1.2 + float64(i)*1e-3
		if i%50 == 7 {
			v = 3e-7 // below 1e-6: exponent form in JSON, no alarm
		}
		_, err := e.Observe(now, Sample{Point: id, Value: v, Quality: Good})
		require.NoError(t, err)
		switch i % 5 {
		case 1:
			_, err = e.Ack(now.Add(time.Second), id+".high", "alice", comments[i%len(comments)])
		case 2:
			_, err = e.Shelve(now.Add(2*time.Second), id+".high", "bob", comments[(i+1)%len(comments)], time.Hour)
		case 3:
			_, err = e.OutOfService(now.Add(3*time.Second), id+".high", "carol", comments[(i+2)%len(comments)], 8*time.Hour)
		}
		require.NoError(t, err)
	}
	var w countingWriter
	require.NoError(t, e.WriteSnapshot(now.Add(4*time.Second), &w))
	require.Greater(t, w.writes, 1, "a large snapshot is written in chunks")
	requireSnapshotMatchesEncodingJSON(t, e, now.Add(4*time.Second), w.Bytes())
	snap, err := e.Snapshot(now.Add(4 * time.Second))
	require.NoError(t, err)
	require.Equal(t, w.String(), string(snap))

	e2 := newEngine(t, cfg)
	_, err = e2.Restore(now.Add(4*time.Second), snap)
	require.NoError(t, err)
	again, err := e2.Snapshot(now.Add(5 * time.Second))
	require.NoError(t, err)
	requireSnapshotMatchesEncodingJSON(t, e2, now.Add(5*time.Second), again)
	for _, id := range []string{"d00001.ch4.high", "d00002.ch4.high", "d00003.ch4.high"} {
		a, _ := e.Alarm(id)
		b, _ := e2.Alarm(id)
		require.Equal(t, a.State, b.State, id)
		require.Equal(t, a.Comment, b.Comment, id)
		require.True(t, a.Since.Equal(b.Since), id)
	}
}

// BenchmarkSnapshot is a persist of the alarm state with 10 000 alarms
// standing (a flood at a large site): the hand-written chunked encoder
// against the encoding/json path it replaced (the snapshot struct, then
// json.Marshal). Figures in docs/performance.md.
func BenchmarkSnapshot(b *testing.B) {
	const n = 10000
	e := newEngine(b, methanePoints(n))
	now := time.Date(2026, 11, 29, 3, 0, 0, 120000000, time.UTC)
	for i := range n {
		if _, err := e.Observe(now, Sample{Point: fmt.Sprintf("d%05d.ch4", i), Value: 1.2, Quality: Good}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("encoder=chunked", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for b.Loop() {
			var w sizeWriter // as a file: what is written is not kept
			if err := e.WriteSnapshot(now, &w); err != nil {
				b.Fatal(err)
			}
			size = int(w)
		}
		b.ReportMetric(float64(size), "bytes/snapshot")
	})
	b.Run("encoder=encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for b.Loop() {
			out, err := json.Marshal(snapshotOracle(e, now))
			if err != nil {
				b.Fatal(err)
			}
			size = len(out)
		}
		b.ReportMetric(float64(size), "bytes/snapshot")
	})
}
