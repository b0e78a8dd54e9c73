package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Influx is a running InfluxDB 1.8.10 with database "canary" created.
// Kill and Restart keep its port and data, as a real crash would.
type Influx struct {
	// URL is http://127.0.0.1:PORT.
	URL string
	// DB is "canary"; Bucket is its v2-compatibility name "canary/autogen".
	DB, Bucket string
	Dir        string

	addr string
	proc *process
}

// influxdBinary finds influxd built by
// `go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10`.
func influxdBinary(t testing.TB) string {
	t.Helper()
	hint := "go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10"
	if p, err := exec.LookPath("influxd"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		t.Fatalf("testenv: go env GOPATH: %v", err)
	}
	return lookBinary(t, filepath.Join(strings.TrimSpace(string(out)), "bin", "influxd"), hint)
}

// StartInflux starts influxd with every listener on a free loopback port,
// Flux enabled, and creates database "canary".
func StartInflux(t testing.TB) *Influx {
	t.Helper()
	return StartInfluxWith(t, InfluxOptions{})
}

// InfluxOptions change what StartInfluxWith configures.
type InfluxOptions struct {
	// MaxBodySize is influxd's [http] max-body-size in bytes: a write
	// with a larger body is answered 413. 0: no limit.
	MaxBodySize int
}

// StartInfluxWith is StartInflux with options.
func StartInfluxWith(t testing.TB, o InfluxOptions) *Influx {
	t.Helper()
	bin := influxdBinary(t)
	dir := t.TempDir()
	port, rpc := FreePort(t), FreePort(t)
	in := &Influx{DB: "canary", Bucket: "canary/autogen", Dir: dir, addr: hostPort(port)}
	in.URL = "http://" + in.addr
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = %q
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
  wal-fsync-delay = "0s"
[retention]
  enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = %q
  flux-enabled = true
  log-enabled = false
  max-body-size = %d
[logging]
  level = "warn"
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
`, hostPort(rpc), filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), in.addr, o.MaxBodySize)
	confPath := filepath.Join(dir, "influxdb.conf")
	writeFile(t, confPath, []byte(conf), 0o600)
	in.proc = &process{t: t, name: "influxd", bin: bin, args: []string{"-config", confPath}}
	in.proc.start()
	t.Cleanup(func() { in.proc.signal(syscall.SIGTERM) })
	in.waitReady()
	if _, err := in.Query("CREATE DATABASE " + in.DB); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	return in
}

func (in *Influx) waitReady() {
	in.proc.t.Helper()
	in.proc.waitTCP(in.addr, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(in.URL + "/ping")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.proc.t.Fatalf("testenv: influxd not ready:\n%s", in.proc.output())
}

// Kill stops influxd with SIGKILL.
func (in *Influx) Kill() { in.proc.signal(syscall.SIGKILL) }

// Restart starts influxd again on the same port and data.
func (in *Influx) Restart() {
	in.proc.t.Helper()
	in.proc.start()
	in.waitReady()
}

// Output is what influxd logged.
func (in *Influx) Output() string { return in.proc.output() }

// QueryResult is the body of a v1 /query answer.
type QueryResult struct {
	Results []struct {
		Series []struct {
			Name    string            `json:"name"`
			Tags    map[string]string `json:"tags"`
			Columns []string          `json:"columns"`
			Values  [][]any           `json:"values"`
		} `json:"series"`
		Error string `json:"error"`
	} `json:"results"`
	Error string `json:"error"`
}

// Query runs InfluxQL against database "canary" over the v1 /query endpoint.
func (in *Influx) Query(q string) (*QueryResult, error) {
	form := url.Values{"q": {q}, "db": {in.DB}}
	resp, err := http.PostForm(in.URL+"/query", form)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("query %q: read body: %w", q, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("query %q: status %d: %s", q, resp.StatusCode, body)
	}
	var r QueryResult
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %q: decode: %w", q, err)
	}
	if r.Error != "" {
		return nil, fmt.Errorf("query %q: %s", q, r.Error)
	}
	for _, res := range r.Results {
		if res.Error != "" {
			return nil, fmt.Errorf("query %q: %s", q, res.Error)
		}
	}
	return &r, nil
}

// WriteLines posts line protocol (ns precision) straight to /write, the raw
// ceiling the ingest benchmark compares itself against.
func (in *Influx) WriteLines(body []byte) error {
	resp, err := http.Post(in.URL+"/write?db="+in.DB+"&precision=ns", "text/plain", strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("write: status %d: %s", resp.StatusCode, b)
	}
	return nil
}
