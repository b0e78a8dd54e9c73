package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
)

// RejectedError is a batch InfluxDB refused as malformed (HTTP 400, e.g. a
// parse error or a field type conflict): retrying it cannot help.
type RejectedError struct {
	Status  int
	Message string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("influxdb rejected the batch (status %d): %s", e.Status, e.Message)
}

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Config is the influxdb section, defaults applied.
	Config configs.InfluxDB
	Log    zerolog.Logger
	// BackoffMin and BackoffMax bound the retry backoff (default 100ms, 10s).
	BackoffMin, BackoffMax time.Duration
}

// Writer writes line protocol to InfluxDB through the client's HTTP
// service, as its WriteAPIBlocking does: one request per Write, retried
// here (never by the library's async queue, which drops data silently).
// The body is posted from the caller's bytes: WriteAPIBlocking takes a
// string, and copying every body into one (about 130 KB a second at the
// reference load) was most of what writing InfluxDB added to a
// process's garbage.
type Writer struct {
	o        WriterOptions
	client   influxdb2.Client
	http     ihttp.Service
	writeURL string // the write endpoint, as the client's write API builds it
	log      zerolog.Logger
	retries  atomic.Uint64
}

// NewWriter reads the token and prepares the client; it does not dial.
func NewWriter(o WriterOptions) (*Writer, error) {
	o.Config.SetDefaults()
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("new influxdb writer: %w", err)
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = 10 * time.Second
	}
	token := os.Getenv(configs.InfluxTokenEnv)
	if o.Config.TokenFile != "" {
		b, err := os.ReadFile(o.Config.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("new influxdb writer: token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			// Most likely a file not filled in yet; InfluxDB without
			// authentication needs no token_file at all.
			return nil, fmt.Errorf("new influxdb writer: token_file %s is empty (leave token_file out for an InfluxDB without authentication)", o.Config.TokenFile)
		}
	}
	opts := influxdb2.DefaultOptions().
		SetPrecision(time.Nanosecond).
		SetHTTPRequestTimeout(requestTimeout(o.Config.Timeout)).
		SetUseGZip(false)
	// The client's own transport, with its timeouts, proxy and TLS
	// settings, dialling through bodyConn.
	if t, ok := opts.HTTPClient().Transport.(*http.Transport); ok {
		withBodyConns(t)
	}
	client := influxdb2.NewClientWithOptions(o.Config.URL, token, opts)
	u, err := url.Parse(client.HTTPService().ServerAPIURL())
	if err == nil {
		u, err = u.Parse("write")
	}
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("new influxdb writer: url: %w", err)
	}
	q := u.Query()
	q.Set("org", o.Config.Org)
	q.Set("bucket", o.Config.Bucket)
	q.Set("precision", "ns")
	u.RawQuery = q.Encode()
	return &Writer{
		o:        o,
		client:   client,
		http:     client.HTTPService(),
		writeURL: u.String(),
		log:      o.Log.With().Str("component", "influxdb").Str("bucket", o.Config.Bucket).Logger(),
	}, nil
}

// post sends one write request with body. The transport may still read
// a request's body after the response has come (a server answering
// early, with an error): post returns only once it has closed it, since
// the caller reuses body after Write.
func (w *Writer) post(ctx context.Context, body []byte) error {
	b := &sentBody{Reader: bytes.NewReader(body), closed: make(chan struct{})}
	perr := w.http.DoPostRequest(ctx, w.writeURL, b, func(req *http.Request) {
		req.ContentLength = int64(len(body)) // not chunked: a *bytes.Reader would set it
	}, func(r *http.Response) error { return r.Body.Close() })
	// The transport always closes it, on success and on error alike; a
	// request that never reached it (none is expected: the URL was
	// checked) must not hold the writer for ever.
	t := time.NewTimer(time.Duration(requestTimeout(w.o.Config.Timeout))*time.Second + 10*time.Second)
	select {
	case <-b.closed:
	case <-ctx.Done():
	case <-t.C:
		w.log.Error().Msg("influxdb write: the HTTP client did not let go of the request body")
	}
	t.Stop()
	if perr != nil {
		return perr
	}
	return nil
}

// sentBody is a request body that tells when the transport is done with it.
type sentBody struct {
	*bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func (b *sentBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// requestTimeout is the client's timeout in whole seconds (its unit),
// rounded up: a request is never cut shorter than the configured timeout
// (500ms and 2500ms were 1s and 2s).
func requestTimeout(d time.Duration) uint {
	return uint(max(1, (d+time.Second-1)/time.Second))
}

// Close releases the HTTP client.
func (w *Writer) Close() { w.client.Close() }

// Retries counts retried write requests.
func (w *Writer) Retries() uint64 { return w.retries.Load() }

// Write stores body (line protocol, newline separated). It retries
// transient failures (no answer, timeouts, 429, 5xx) and configuration
// failures (401, 403, 404 database not found: an operator can fix them
// while the data waits) with jittered backoff until ctx ends. A body too
// large for the server is split. A malformed batch returns *RejectedError.
func (w *Writer) Write(ctx context.Context, body []byte) error {
	body = bytes.TrimRight(body, "\n")
	if len(body) == 0 {
		return nil
	}
	bo := mqtt.Backoff{Min: w.o.BackoffMin, Max: w.o.BackoffMax}
	for attempt := 1; ; attempt++ {
		err := w.post(ctx, body)
		if err == nil {
			if attempt > 1 {
				w.log.Info().Int("attempt", attempt).Msg("influxdb write succeeded after retries")
			}
			return nil
		}
		var he *ihttp.Error
		status := 0
		if errors.As(err, &he) {
			status = he.StatusCode
		}
		switch {
		case status == 413:
			// At the line end nearest past the middle, or, when the
			// middle is in the last line, before it.
			mid := -1
			if i := bytes.IndexByte(body[len(body)/2:], '\n'); i >= 0 {
				mid = len(body)/2 + i
			} else {
				mid = bytes.LastIndexByte(body[:len(body)/2], '\n')
			}
			if mid >= 0 {
				if err := w.Write(ctx, body[:mid]); err != nil {
					return err
				}
				return w.Write(ctx, body[mid+1:])
			}
			return &RejectedError{Status: status, Message: "one line is larger than the server accepts"}
		case status == 400 || status == 422:
			return &RejectedError{Status: status, Message: he.Message}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("write to influxdb: %w", ctx.Err())
		}
		d := bo.Next()
		if he != nil && he.RetryAfter > 0 {
			d = max(d, time.Duration(he.RetryAfter)*time.Second)
		}
		ev := w.log.Warn()
		if status == 401 || status == 403 || status == 404 {
			ev = w.log.Error() // needs an operator: wrong token or no database
		}
		ev.Err(err).Int("status", status).Int("attempt", attempt).Dur("backoff", d).Msg("influxdb write failed, retrying")
		w.retries.Add(1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("write to influxdb: %w", ctx.Err())
		case <-t.C:
		}
	}
}
