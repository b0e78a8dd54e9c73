package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/testenv"
)

// InfluxDB answers 413 to a body over its max-body-size without reading
// it (the Content-Length says so), while the client may still be sending
// it: the Writer splits the body at a line and writes both halves, and a
// single line larger than the limit is refused (RejectedError), not
// retried for ever. Write posts from the caller's buffer, which the
// caller reuses once Write returns: the points stored are the ones
// written.
func TestWriterSplitsWhatInfluxDBFindsTooLarge(t *testing.T) {
	const limit = 4096
	inf := testenv.StartInfluxWith(t, testenv.InfluxOptions{MaxBodySize: limit})
	w, err := NewWriter(WriterOptions{Config: configs.InfluxDB{URL: inf.URL, Bucket: inf.Bucket, Timeout: 5 * time.Second}, Log: zerolog.Nop()})
	require.NoError(t, err)
	t.Cleanup(w.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	const n = 400
	var body []byte
	for i := range n {
		body = fmt.Appendf(body, "split,sensor=s%03d value=%d,pad=%q %d\n", i, i, strings.Repeat("x", 40), base+int64(i))
	}
	require.Greater(t, len(body), 8*limit, "the body needs several splits")
	require.NoError(t, w.Write(ctx, body))
	for i := range body {
		body[i] = 'z' // the caller's next batch
	}
	res, err := inf.Query(`SELECT count("value"), sum("value") FROM "split"`)
	require.NoError(t, err)
	require.Len(t, res.Results, 1)
	require.Len(t, res.Results[0].Series, 1, "no points stored")
	row := res.Results[0].Series[0].Values[0]
	require.EqualValues(t, n, row[1], "points stored")
	require.EqualValues(t, n*(n-1)/2, row[2], "sum of the values stored")
	require.Zero(t, w.Retries(), "a 413 is split, not retried")

	// A long last line holding the middle: split before it.
	tail := fmt.Appendf(nil, "split,sensor=head value=1 %d\nsplit,sensor=tail value=2,pad=%q %d\n", base, strings.Repeat("t", limit-80), base)
	require.Greater(t, len(tail), limit)
	require.NoError(t, w.Write(ctx, tail))
	res, err = inf.Query(`SELECT count("value") FROM "split" WHERE sensor='head' OR sensor='tail'`)
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Results[0].Series[0].Values[0][1], "both lines stored")

	// One line over the limit cannot be split: refused, at once.
	big := fmt.Appendf(nil, "split,sensor=big value=1,pad=%q %d\n", strings.Repeat("y", 2*limit), base)
	err = w.Write(ctx, big)
	var rej *RejectedError
	require.ErrorAs(t, err, &rej)
	require.Equal(t, 413, rej.Status)
	require.NoError(t, ctx.Err())
}
