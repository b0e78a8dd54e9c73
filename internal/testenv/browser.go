package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// ChromiumPath is Debian's Chromium, which the test command installs.
const ChromiumPath = "/usr/bin/chromium"

// ArtifactDir is where UI screenshots go: $CANARY_UI_ARTIFACTS, or the
// git-ignored testdata/artifacts.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CANARY_UI_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// Browser starts a fresh headless Debian Chromium for one test and collects
// every console error and uncaught exception (CSP violations included).
func Browser(t testing.TB, width, height int) (context.Context, func() []string) {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("browser tests need Debian's Chromium at %s (apt-get install -y chromium): %v", ChromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	// Start the browser now, so a missing or broken Chromium fails here.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")), "start chromium")

	var (
		mu       sync.Mutex
		problems []string
		wg       sync.WaitGroup
	)
	cctx, stopConsole := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range chromedp.Console(cctx) {
			if err != nil {
				return
			}
			// Expected refusals (401 on a wrong password, 409 on a refused
			// reset) are network log entries; CSP violations come from
			// "security" and exceptions are exceptions.
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stopConsole()
		wg.Wait()
		cancelCtx()
		cancelAlloc()
	})
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// WaitJS polls a JavaScript predicate in the page until it is true.
func WaitJS(t testing.TB, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		// A poll can fail while the page is still being replaced
		// ("Cannot find context"); poll again until the deadline.
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		dump, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 3000)`))
		t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, expr, err, dump)
	}
}

// EvalJS evaluates expr in the page.
func EvalJS[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// Click clicks an element with the mouse. The UI redraws rows when events
// arrive, so a node found a moment ago can be gone: find it again.
func Click(t testing.TB, ctx context.Context, sel string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		if err == nil {
			return
		}
		if time.Now().After(deadline) || !strings.Contains(err.Error(), "node") {
			t.Fatalf("click %s: %v", sel, err)
		}
	}
}

// Screenshot saves a full-page PNG into ArtifactDir.
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	p := filepath.Join(ArtifactDir(t), name)
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot: %s", p)
}
