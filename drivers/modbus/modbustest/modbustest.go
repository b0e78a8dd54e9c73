// Package modbustest starts independent Modbus peers for tests: a pymodbus
// server (Debian's python3-pymodbus, run with /usr/bin/python3) over TCP or
// RTU, and socat pty pairs standing in for a serial line. It is test
// support for drivers/modbus and cmd/canary; nothing ships it.
package modbustest

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canary-gw/canary/internal/testenv"
)

//go:embed pyserver.py
var pyserver []byte

// Python is Debian's interpreter, which has pymodbus (the one on PATH may
// be a pyenv without it).
const Python = "/usr/bin/python3"

// Unit is one unit id's tables, zero-based from address 0. A read past a
// table's end gets exception 2 (illegal data address).
type Unit struct {
	Holding  []uint16 `json:"hr,omitempty"`
	Input    []uint16 `json:"ir,omitempty"`
	Coils    []int    `json:"co,omitempty"`
	Discrete []int    `json:"di,omitempty"`
	// HoldingSparse, when set, replaces Holding: only these addresses
	// exist, and a read that touches a hole gets exception 2.
	HoldingSparse map[int]uint16 `json:"hr_sparse,omitempty"`
}

// Spec describes the served units; unit ids not listed never answer, like
// a dead device.
type Spec struct {
	Units map[int]Unit
}

type wireSpec struct {
	Mode   string          `json:"mode"`
	Port   int             `json:"port,omitempty"`
	Device string          `json:"device,omitempty"`
	Baud   int             `json:"baud,omitempty"`
	Units  map[string]Unit `json:"units"`
}

// Require fails the test with a clear message when a tool is missing.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required for this test: apt-get install -y mbpoll socat python3-pymodbus (%v)", tool, err)
		}
	}
	if out, err := exec.Command(Python, "-c", "import pymodbus").CombinedOutput(); err != nil {
		t.Fatalf("pymodbus is required for this test: apt-get install -y python3-pymodbus (%v: %s)", err, out)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago and
// that no earlier call in this process has returned (testenv.FreePort).
func FreePort(t testing.TB) int {
	t.Helper()
	return testenv.FreePort(t)
}

// Server is a running pymodbus TCP server.
type Server struct {
	URL  string // tcp://127.0.0.1:PORT
	Port int
	stop func()
}

// Stop kills the server (as a device losing power); cleanup also stops it.
func (s *Server) Stop() { s.stop() }

// StartTCP starts pymodbus on a free loopback port; it is stopped at
// cleanup.
func StartTCP(t testing.TB, spec Spec) *Server {
	t.Helper()
	Require(t)
	var lastErr error
	for range 3 { // the free port may be taken in between
		s, err := StartTCPPort(t, FreePort(t), spec)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("start pymodbus tcp server: %v", lastErr)
	return nil
}

// StartTCPPort starts pymodbus on a given loopback port, e.g. to bring a
// stopped server back where its clients expect it.
func StartTCPPort(t testing.TB, port int, spec Spec) (*Server, error) {
	t.Helper()
	stop, err := start(t, wireSpec{Mode: "tcp", Port: port}, spec)
	if err != nil {
		return nil, err
	}
	return &Server{URL: fmt.Sprintf("tcp://127.0.0.1:%d", port), Port: port, stop: stop}, nil
}

// StartRTU starts a pymodbus RTU server on the serial device dev (one end
// of a pty pair) at baud, 8N1.
func StartRTU(t testing.TB, dev string, baud int, spec Spec) {
	t.Helper()
	Require(t)
	if _, err := start(t, wireSpec{Mode: "rtu", Device: dev, Baud: baud}, spec); err != nil {
		t.Fatalf("start pymodbus rtu server: %v", err)
	}
}

func start(t testing.TB, ws wireSpec, spec Spec) (func(), error) {
	dir := t.TempDir()
	ws.Units = map[string]Unit{}
	for id, u := range spec.Units {
		ws.Units[fmt.Sprint(id)] = u
	}
	js, err := json.Marshal(ws)
	if err != nil {
		return nil, err
	}
	specFile, script := filepath.Join(dir, "spec.json"), filepath.Join(dir, "pyserver.py")
	if err := os.WriteFile(specFile, js, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(script, pyserver, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(Python, script, specFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- nil
				return
			}
		}
		ready <- fmt.Errorf("pymodbus exited before ready")
	}()
	var once sync.Once
	stop := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	select {
	case err = <-ready:
	case <-time.After(15 * time.Second):
		err = fmt.Errorf("pymodbus not ready after 15s")
	}
	if err == nil && ws.Mode == "tcp" {
		err = waitDial(fmt.Sprintf("127.0.0.1:%d", ws.Port))
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("%w: %s", err, stderr.String())
	}
	t.Cleanup(stop)
	return stop, nil
}

func waitDial(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pymodbus not listening on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// PtyPair starts socat with two linked pseudo-terminals and returns their
// paths: a serial line whose ends are a and b.
func PtyPair(t testing.TB) (a, b string) {
	t.Helper()
	Require(t, "socat")
	dir := t.TempDir()
	a, b = filepath.Join(dir, "ttyA"), filepath.Join(dir, "ttyB")
	cmd := exec.Command("socat", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start socat: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		if ea == nil && eb == nil {
			return a, b
		}
		if time.Now().After(deadline) {
			t.Fatalf("socat pty pair not ready: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}
