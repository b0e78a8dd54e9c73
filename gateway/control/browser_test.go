package control_test

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

	"github.com/canary-gw/canary/internal/testenv"
)

const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Debian Chromium (the flags of gateway/httpapi's
// browser tests) and collects console errors and uncaught exceptions.
func browser(t *testing.T, width, height int) (context.Context, func() []string) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("browser tests need Debian's Chromium at %s (apt-get install -y chromium): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
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

func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			break
		}
	}
	dump, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 3000)`))
	t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, expr, err, dump)
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// click finds the element again on every try: rows are redrawn as events arrive.
func click(t *testing.T, ctx context.Context, sel string) {
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

// TestBrowserControlRoomTwoSites drives the control room's UI in a real
// Chromium against the real rig (two gateways on Mosquitto): the page loads
// both sites, values update live, the operator logs in and acknowledges
// north's power-cut alarm, and the row turns acknowledged when the site's
// answer comes back over MQTT.
func TestBrowserControlRoomTwoSites(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	h := hash(t, "s3cret")
	north := startSite(t, "north", broker.URL, h)
	south := startSite(t, "south", broker.URL, h)
	room := startRoom(t, roomYAML(broker.URL, h))
	require.NoError(t, north.sim.Hold("face-gas", "ch4", 1.8))
	require.NoError(t, south.sim.Hold("face-gas", "ch4", 1.2))
	eventually(t, "alarms in the control room", 10*time.Second, func() bool {
		as := alarms(t, room)
		return as["north.face-gas.ch4.high_high"].Active && as["south.face-gas.ch4.high"].Active
	})

	ctx, consoleProblems := browser(t, 1600, 1000)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(room+"/")))
	waitJS(t, ctx, "the live stream", `document.querySelector('#conn.live') !== null`)
	waitJS(t, ctx, "both sites' alarm rows", `document.querySelector('tr[data-alarm="north.face-gas.ch4.high_high"]') !== null && document.querySelector('tr[data-alarm="south.face-gas.ch4.high"]') !== null`)
	// P1 first: north's power-cut alarm heads the list.
	require.Equal(t, "north.face-gas.ch4.high_high", evalJS[string](t, ctx, `document.querySelector('#alarm-rows tr').dataset.alarm`))
	waitJS(t, ctx, "both sites' device cards", `document.querySelector('[data-device="north.face-gas"]') !== null && document.querySelector('[data-device="south.face-gas"]') !== null`)
	waitJS(t, ctx, "the relay tripped at north", `(() => { const b = document.querySelector('button.sensor[data-sensor="north.face-relay/power_cut"] .v'); return b && parseFloat(b.textContent) === 1; })()`)

	// Values update live from the sites.
	waitJS(t, ctx, "north methane 1.8", `Math.abs(parseFloat(document.querySelector('button.sensor[data-sensor="north.face-gas/ch4"] .v').textContent) - 1.8) < 0.01`)
	require.NoError(t, north.sim.Hold("face-gas", "ch4", 1.95))
	waitJS(t, ctx, "north methane 1.95", `Math.abs(parseFloat(document.querySelector('button.sensor[data-sensor="north.face-gas/ch4"] .v').textContent) - 1.95) < 0.01`)

	// Log in as the operator (the ack button asks), then acknowledge.
	click(t, ctx, `button[data-alarm="north.face-gas.ch4.high_high"][data-action="ack"]`)
	waitJS(t, ctx, "the login dialog", `document.getElementById('login-dlg').open`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#login-user`), "olga"),
		chromedp.SendKeys(chromedp.CSS(`#login-pass`), "s3cret"),
		chromedp.Click(chromedp.CSS(`#login-ok`)),
	))
	waitJS(t, ctx, "the logged-in user", `document.getElementById('user-label').textContent === 'olga (operator)'`)
	waitJS(t, ctx, "the stream after login", `document.querySelector('#conn.live') !== null`)
	click(t, ctx, `button[data-alarm="north.face-gas.ch4.high_high"][data-action="ack"]`)
	waitJS(t, ctx, "the ack dialog", `document.getElementById('cmd-dlg').open`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#cmd-comment`), "power cut confirmed, crew withdrawn"),
		chromedp.Click(chromedp.CSS(`#cmd-ok`)),
	))
	waitJS(t, ctx, "the alarm acknowledged", `(() => { const r = document.querySelector('tr[data-alarm="north.face-gas.ch4.high_high"]'); return r && r.dataset.state === 'acknowledged'; })()`)
	require.Equal(t, "olga: power cut confirmed, crew withdrawn",
		evalJS[string](t, ctx, `document.querySelector('tr[data-alarm="north.face-gas.ch4.high_high"] td.wide').textContent`))
	// It was the north gateway that acknowledged it; south's alarms are untouched.
	a := alarms(t, north.api)["face-gas.ch4.high_high"]
	require.Equal(t, "acknowledged", a.State)
	require.Equal(t, "olga", a.AckedBy)
	require.Equal(t, "unacknowledged", evalJS[string](t, ctx, `document.querySelector('tr[data-alarm="south.face-gas.ch4.high"]').dataset.state`))

	dir := filepath.Join("testdata", "artifacts")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	p := filepath.Join(dir, "control-room-two-sites.png")
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot: %s", p)

	require.Empty(t, consoleProblems(), "the page logged errors")
}
