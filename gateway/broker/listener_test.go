package broker

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// flakyListener fails its first Accept as a process out of file
// descriptors does, then accepts from the real listener.
type flakyListener struct {
	net.Listener
	failed atomic.Bool
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if !f.failed.Swap(true) {
		return nil, errors.New("accept tcp 127.0.0.1: accept4: too many open files")
	}
	return f.Listener.Accept()
}

// An Accept that fails for a reason other than the close (EMFILE) does not
// end the broker's accepting for the rest of the process: it waits and
// accepts again. The close still ends it.
func TestListenerAcceptsAgainAfterAFailedAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := newGatedListener("tcp", &flakyListener{Listener: ln})
	established := make(chan struct{}, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		l.Serve(func(_ string, c net.Conn) error {
			established <- struct{}{}
			return c.Close()
		})
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	require.NoError(t, err)
	defer c.Close()
	select {
	case <-established:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection after a failed accept was never served")
	}
	l.Close(func(string) {})
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the close")
	}
}
