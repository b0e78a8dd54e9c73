package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/gateway/broker"
	"github.com/canary-gw/canary/internal/testenv"
)

func TestControlConfigErrorsExit2(t *testing.T) {
	code, _, stderr := canary(t, "control")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "-c FILE is required")

	bad := filepath.Join(t.TempDir(), "control.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("mqtt:\n  url: tcp://127.0.0.1:1883\nhttp:\n  listen: 127.0.0.1:8080\nsites: [North]\n"), 0o600))
	code, _, stderr = canary(t, "control", "-c", bad)
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, bad+`:5: sites[0]: "North" is not a site id`)

	code, out, _ := canary(t, "check", "-c", filepath.Join("..", "..", "configs", "control.yaml"))
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "ok (control room: every site")
}

// TestControlRunsAndStops runs `canary control` against the embedded
// broker: /readyz turns ready once it is subscribed, and it stops cleanly
// when its context ends.
func TestControlRunsAndStops(t *testing.T) {
	b, err := broker.New(broker.Options{})
	require.NoError(t, err)
	bctx, bcancel := context.WithCancel(context.Background())
	bdone := make(chan error, 1)
	go func() { bdone <- b.Run(bctx) }()
	defer func() { bcancel(); require.NoError(t, <-bdone) }()
	<-b.Ready()

	port := testenv.FreePort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(t.TempDir(), "control.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("mqtt:\n  url: "+b.URL()+"\nhttp:\n  listen: "+listen+"\n"), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	errb := &syncBuffer{}
	go func() { done <- run(ctx, []string{"control", "-c", cfg}, &syncBuffer{}, errb) }()
	waitFor(t, "control room ready", 15*time.Second, func() bool {
		resp, err := http.Get("http://" + listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, errb.String())
	case <-time.After(15 * time.Second):
		t.Fatal("control did not stop")
	}
}
