package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// A site writing straight into InfluxDB: InfluxDB dies by SIGKILL
// mid-stream, the outbox holds everything, nothing is lost.
func TestDirectWriterSurvivesInfluxKill(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	r.openOutbox(0, nil)
	d := r.runDirect(DirectOptions{})
	r.produce(3, 100)
	eventually(t, 20*time.Second, func() bool { return d.Stats().Records > 0 }, "first records stored")
	r.influx.Kill()
	r.produce(3, 200)
	r.influx.Restart()
	r.produce(3, 50)
	r.waitStored(60 * time.Second)
	eventually(t, 10*time.Second, func() bool { return r.ob.Stats().Records[1] == 0 }, "outbox emptied")
	require.Zero(t, d.Stats().Dropped)
	// Each record written once: a written record whose release waits for
	// the outbox's next commit is not read again meanwhile.
	require.Equal(t, uint64(3*350), d.Stats().Records)
}

// batch_points bounds a direct write (a record is never split): every
// record is written once, in writes of at most three 3-point records.
func TestDirectWriterHonoursBatchPoints(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	r.openOutbox(0, nil)
	d := r.runDirect(DirectOptions{BatchPoints: 7})
	r.produce(4, 30)
	r.waitStored(30 * time.Second)
	eventually(t, 10*time.Second, func() bool { return d.Stats().Records == 4*30 }, "every record stored")
	require.Equal(t, uint64(4*30), d.Stats().Records, "each record written once")
	require.Equal(t, uint64(4*30*3), d.Stats().Points)
	require.GreaterOrEqual(t, d.Stats().Writes, uint64(4*30/3), "at most three records a write")
}

// runDirect runs a direct writer on the rig's outbox (o's Outbox, Writer,
// Site and Log are the rig's) until the test ends.
func (r *rig) runDirect(o DirectOptions) *Direct {
	r.t.Helper()
	o.Outbox, o.Writer, o.Site, o.Log = r.ob, r.writer(), r.site, r.log
	d, err := NewDirect(o)
	require.NoError(r.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		require.NoError(r.t, <-done)
	})
	return d
}

// batch_wait spaces the writes and gathers what arrives meanwhile: 40
// commits in quick succession (a few milliseconds each) go out in one
// write or a few, not one each.
func TestDirectWriterHonoursBatchWait(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	r.openOutbox(0, nil)
	d := r.runDirect(DirectOptions{BatchWait: time.Second})
	r.produce(2, 40)
	r.waitStored(30 * time.Second)
	eventually(t, 10*time.Second, func() bool { return d.Stats().Records == 2*40 }, "every record stored")
	// Without the wait: 15 to 40 writes here (one a commit, less what
	// arrives during a write); with it, one a second.
	require.LessOrEqual(t, d.Stats().Writes, uint64(5), "writes for 40 commits within a second or two")
}

// A commit after a quiet spell is a batch already: it is written at once,
// not batch_wait later (a wake-up a second of its own at a gateway's
// once-a-second commits); the next commit, within batch_wait of that
// write, waits for it.
func TestDirectWriterWritesACommitAtOnce(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	r.openOutbox(0, nil)
	d := r.runDirect(DirectOptions{BatchWait: time.Hour})
	r.produce(3, 1)
	r.waitStored(30 * time.Second) // fails the test unless stored
	eventually(t, 10*time.Second, func() bool { return d.Stats().Records == 3 }, "the first commit's records written")
	require.EqualValues(t, 1, d.Stats().Writes)

	r.produce(3, 1)
	time.Sleep(2 * time.Second)
	require.EqualValues(t, 3, d.Stats().Records, "the next commit waits batch_wait after the last write")
	require.EqualValues(t, 1, d.Stats().Writes)
	require.EqualValues(t, 3, r.ob.Stats().Records[1], "and stays in the outbox meanwhile")
}

// With Fresh (a gateway writing InfluxDB itself), the direct writer writes
// the lines built at commit instead of decoding the payloads it reads back,
// and InfluxDB stores the same points. More records wait than Fresh holds
// (a writer that fell behind): the oldest are decoded from the outbox.
func TestDirectWriterWritesFreshLines(t *testing.T) {
	r := newRig(t, testenv.MosquittoOptions{})
	r.openOutbox(0, nil)
	r.fresh = NewFresh()
	const devices, n = 4, 300
	r.produce(devices, n)
	d := r.runDirect(DirectOptions{Fresh: r.fresh})
	r.waitStored(60 * time.Second)
	eventually(t, 10*time.Second, func() bool { return d.Stats().Records == devices*n }, "every record stored")
	require.Zero(t, d.Stats().Dropped)
	st := r.fresh.Stats()
	require.EqualValues(t, devices*n, st.Added, "lines built for every record")
	require.EqualValues(t, maxFreshRecords, st.Taken, "the newest records written from their lines, the rest decoded")
	require.Zero(t, st.Held)

	// Every field and tag of a device's points as produced, the decoded
	// ones' (seq 1..44 of each device) and the fresh ones' alike.
	res, err := r.influx.Query(`SELECT value, quality, seq, kind, unit FROM reading WHERE site='site1' AND device='dev0' AND sensor='ch4'`)
	require.NoError(t, err)
	rows := res.Results[0].Series[0].Values
	require.Len(t, rows, n)
	for _, row := range rows {
		seq := row[3].(float64)
		require.InDelta(t, (seq-1)/100, row[1].(float64), 1e-12, "value of seq %v", seq)
		require.Equal(t, []any{"good", "methane", "%vol"}, []any{row[2], row[4], row[5]}, "seq %v", seq)
	}
	res, err = r.influx.Query(`SELECT count(quality) FROM reading WHERE site='site1' AND sensor='o2' AND quality='bad'`)
	require.NoError(t, err)
	require.EqualValues(t, devices*n, res.Results[0].Series[0].Values[0][1], "the valueless readings, quality bad")
}
