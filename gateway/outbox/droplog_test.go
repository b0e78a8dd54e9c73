package outbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

type dropLine struct {
	Msg     string `json:"message"`
	Records int    `json:"records"`
	Commits int    `json:"commits"`
	Total   uint64 `json:"total"`
}

func dropLines(t *testing.T, buf *bytes.Buffer) []dropLine {
	t.Helper()
	var out []dropLine
	sc := bufio.NewScanner(buf)
	for sc.Scan() {
		var l dropLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), "log line %q", sc.Text())
		if l.Msg != "outbox opened" {
			out = append(out, l)
		}
	}
	return out
}

// A full outbox drops at nearly every commit; the log gets a line when the
// drops start, one per period while they last, and one when they stop, and
// every dropped record is in exactly one line.
func TestDropLogOneLinePerPeriod(t *testing.T) {
	const every = 10 * time.Second
	t0 := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	type commit struct {
		at      time.Duration // since t0
		records int           // dropped by the commit; 0: none
	}
	cases := []struct {
		name    string
		commits []commit
		close   bool
		want    []dropLine // Msg abbreviated to its first word after "outbox"
	}{
		{
			name:    "no drops, no lines",
			commits: []commit{{0, 0}, {time.Second, 0}, {20 * time.Second, 0}},
			close:   true,
		},
		{
			name:    "a single drop: a line at once, and one when a period passes without drops",
			commits: []commit{{0, 5}, {time.Second, 0}, {11 * time.Second, 0}},
			want:    []dropLine{{Msg: "full", Records: 5, Commits: 1, Total: 5}, {Msg: "no", Records: 0, Commits: 0, Total: 5}},
		},
		{
			name: "a drop at every commit for 25 s: a line at the start and every 10 s, the rest at close",
			commits: func() []commit {
				var cs []commit
				for i := range 250 {
					cs = append(cs, commit{time.Duration(i) * 100 * time.Millisecond, 2})
				}
				return cs
			}(),
			close: true,
			want: []dropLine{
				{Msg: "full", Records: 2, Commits: 1, Total: 2},
				{Msg: "still", Records: 200, Commits: 100, Total: 202},
				{Msg: "still", Records: 200, Commits: 100, Total: 402},
				{Msg: "no", Records: 98, Commits: 49, Total: 500},
			},
		},
		{
			name: "drops on and off at the bound stay one spell: no line for each gap",
			commits: func() []commit {
				var cs []commit
				for i := range 120 {
					n := 0
					if i%2 == 0 {
						n = 1
					}
					cs = append(cs, commit{time.Duration(i) * 100 * time.Millisecond, n})
				}
				// The last drop was at 11.8 s; 10 s later a commit without
				// drops ends the spell.
				return append(cs, commit{22 * time.Second, 0}, commit{30 * time.Second, 0})
			}(),
			want: []dropLine{
				{Msg: "full", Records: 1, Commits: 1, Total: 1},
				{Msg: "still", Records: 50, Commits: 50, Total: 51},
				{Msg: "no", Records: 9, Commits: 9, Total: 60},
			},
		},
		{
			name:    "a drop after a period without commits ends the spell before it and starts a new one",
			commits: []commit{{0, 3}, {time.Second, 2}, {12 * time.Second, 4}},
			close:   true,
			want: []dropLine{
				{Msg: "full", Records: 3, Commits: 1, Total: 3},
				{Msg: "no", Records: 2, Commits: 1, Total: 5},
				{Msg: "full", Records: 4, Commits: 1, Total: 9},
				{Msg: "no", Records: 0, Commits: 0, Total: 9},
			},
		},
		{
			name:    "a new spell after the end of one starts with a line at once",
			commits: []commit{{0, 3}, {15 * time.Second, 0}, {16 * time.Second, 4}, {17 * time.Second, 1}},
			close:   true,
			want: []dropLine{
				{Msg: "full", Records: 3, Commits: 1, Total: 3},
				{Msg: "no", Records: 0, Commits: 0, Total: 3},
				{Msg: "full", Records: 4, Commits: 1, Total: 7},
				{Msg: "no", Records: 1, Commits: 1, Total: 8},
			},
		},
	}
	words := map[string]string{
		"outbox full: oldest readings dropped (alarms are never dropped)":       "full",
		"outbox still full: oldest readings dropped (alarms are never dropped)": "still",
		"outbox no longer dropping readings":                                    "no",
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := zerolog.New(&buf)
			l := dropLog{every: every}
			var total uint64
			for _, c := range tc.commits {
				total += uint64(c.records)
				l.note(log, t0.Add(c.at), Drop{Records: c.records, Bytes: int64(c.records) * 100, Total: total})
			}
			if tc.close {
				l.flush(log)
			}
			got := dropLines(t, &buf)
			var sum uint64
			for i := range got {
				w, ok := words[got[i].Msg]
				require.True(t, ok, "unexpected message %q", got[i].Msg)
				got[i].Msg = w
				sum += uint64(got[i].Records)
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, total, sum, "every dropped record is in exactly one line")
		})
	}
}

// Through a real outbox: hundreds of dropping commits make a handful of
// lines, and their records add up to the outbox's own count.
func TestFullOutboxLogsDropsWithoutALinePerCommit(t *testing.T) {
	var buf bytes.Buffer
	ob, err := Open(Options{Dir: t.TempDir(), MaxBytes: 4096, Log: zerolog.New(&buf)})
	require.NoError(t, err)
	ctx := context.Background()
	start := time.Now()
	it := Item{Kind: KindReadings, Stream: "d", Encode: func(dst []byte, seq uint64) []byte {
		return append(dst, make([]byte, 200)...)
	}}
	for range 300 {
		_, err := ob.Append(ctx, it)
		require.NoError(t, err)
	}
	dropped := ob.Stats().DroppedRecords
	require.Greater(t, dropped, uint64(250), "the outbox dropped at most commits")
	require.NoError(t, ob.Close())
	periods := int(time.Since(start) / dropLogEvery)
	lines := dropLines(t, &buf)
	var sum uint64
	for _, l := range lines {
		sum += uint64(l.Records)
	}
	require.Equal(t, dropped, sum, "every dropped record is in one line")
	require.LessOrEqual(t, len(lines), 2+periods,
		"a line at the start, at close, and one per %s between (got %d)", dropLogEvery, len(lines))
	require.Equal(t, "outbox no longer dropping readings", lines[len(lines)-1].Msg)
	require.Equal(t, dropped, lines[len(lines)-1].Total)
}
