package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// handedOut is every port FreePort has returned in this process. The
// kernel may hand the same free port to two listens in a row, and a test
// that asks for several ports before it listens on any (eight simulated
// devices, say) would then give two of them one port.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort returns a loopback port that was free a moment ago and that no
// earlier call in this process has returned.
func FreePort(t testing.TB) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	// A port returned before stays held while the next is asked for, so
	// the kernel gives another.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: find a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if handedOut.ports[port] {
			held = append(held, l)
			continue
		}
		if err := l.Close(); err != nil {
			t.Fatalf("testenv: release port %d: %v", port, err)
		}
		handedOut.ports[port] = true
		return port
	}
	t.Fatalf("testenv: 100 listens gave only ports returned before")
	return 0
}

// lookBinary fails the test with the install hint when bin is missing.
func lookBinary(t testing.TB, bin, hint string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		if _, serr := os.Stat(bin); serr == nil {
			return bin
		}
		t.Fatalf("testenv: %s not found (%v); install it: %s", bin, err, hint)
	}
	return p
}

// process is one server process that can be killed and started again with
// the same arguments and files.
type process struct {
	t    testing.TB
	name string
	bin  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		s.b.Reset()
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (p *process) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("testenv: start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.cmd, p.out, p.done = cmd, out, done
}

// signal sends sig and waits for the process to exit.
func (p *process) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

// waitTCP polls until addr accepts connections or the process died.
func (p *process) waitTCP(addr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !p.running() {
			p.t.Fatalf("testenv: %s exited during start:\n%s", p.name, p.output())
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("testenv: %s not listening on %s after %s:\n%s", p.name, addr, timeout, p.output())
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatalf("testenv: write %s: %v", path, err)
	}
}

func errorf(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Fatalf("testenv: %s", fmt.Sprintf(format, args...))
}
