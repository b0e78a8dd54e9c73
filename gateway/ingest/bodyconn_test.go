package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/testenv"
)

// bodyConn writes a limited body that fits its limit from the body's own
// bytes, and anything else (a body longer than its limit, a reader that
// cannot write itself) as the connection would: the peer gets exactly
// the bytes the limit lets through, over real loopback TCP.
func TestBodyConnWritesWhatTheLimitLetsThrough(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 10_000) // 160 KB
	cases := []struct {
		name  string
		r     func() io.Reader
		limit int64
		want  []byte
	}{
		{"whole body, its own length", func() io.Reader { return bytes.NewReader(body) }, int64(len(body)), body},
		{"whole body, a larger limit", func() io.Reader { return bytes.NewReader(body) }, int64(len(body)) + 10, body},
		{"sentBody", func() io.Reader { return &sentBody{Reader: bytes.NewReader(body), closed: make(chan struct{})} }, int64(len(body)), body},
		{"a body longer than its limit", func() io.Reader { return bytes.NewReader(body) }, 1000, body[:1000]},
		{"a reader that cannot write itself", func() io.Reader { return io.MultiReader(bytes.NewReader(body)) }, int64(len(body)), body},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			got := make(chan []byte, 1)
			go func() {
				s, err := ln.Accept()
				if err != nil {
					got <- nil
					return
				}
				defer s.Close()
				b, _ := io.ReadAll(s)
				got <- b
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			lr := &io.LimitedReader{R: c.r(), N: c.limit}
			n, err := bodyConn{raw}.ReadFrom(lr)
			require.NoError(t, err)
			require.EqualValues(t, len(c.want), n)
			require.EqualValues(t, c.limit-int64(len(c.want)), lr.N, "the limit counts what was written")
			require.NoError(t, raw.Close())
			select {
			case b := <-got:
				require.Equal(t, c.want, b)
			case <-time.After(10 * time.Second):
				t.Fatal("the peer read nothing")
			}
		})
	}
}

// The Writer's requests go through bodyConn: writing a 130 KB body (the
// reference load's second) to a real InfluxDB allocates less than the
// 32 KiB copy buffer the transport's connection made for every request
// before, and every point is stored.
func TestWriterPostsWithoutACopyBuffer(t *testing.T) {
	inf := testenv.StartInflux(t)
	w, err := NewWriter(WriterOptions{Config: configs.InfluxDB{URL: inf.URL, Bucket: inf.Bucket, Timeout: 10 * time.Second}, Log: zerolog.Nop()})
	require.NoError(t, err)
	t.Cleanup(w.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	const perWrite, writes = 1000, 20
	bodies := make([][]byte, writes)
	for k := range bodies {
		for i := range perWrite {
			bodies[k] = fmt.Appendf(bodies[k], "readings,site=s,device=d%02d,sensor=ch%03d,kind=gas,unit=%%25vol value=%d.25,quality=\"good\" %d\n",
				i%50, i, k*perWrite+i, base+int64(k*perWrite+i))
		}
	}
	require.Greater(t, len(bodies[0]), 100_000)
	require.NoError(t, w.Write(ctx, bodies[0])) // the connection, dialled
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for _, b := range bodies[1:] {
		require.NoError(t, w.Write(ctx, b))
	}
	runtime.ReadMemStats(&m1)
	perReq := (m1.TotalAlloc - m0.TotalAlloc) / (writes - 1)
	t.Logf("%d bytes allocated per 130 KB write", perReq)
	require.Less(t, perReq, uint64(32<<10), "bytes allocated per write: a copy buffer again?")

	res, err := inf.Query(`SELECT count("value") FROM "readings"`)
	require.NoError(t, err)
	require.EqualValues(t, perWrite*writes, res.Results[0].Series[0].Values[0][1], "points stored")
}
