package control_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

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

	ctx, consoleProblems := testenv.Browser(t, 1600, 1000)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(room+"/")))
	testenv.WaitJS(t, ctx, "the live stream", `document.querySelector('#conn.live') !== null`)
	testenv.WaitJS(t, ctx, "both sites' alarm rows", `document.querySelector('tr[data-alarm="north.face-gas.ch4.high_high"]') !== null && document.querySelector('tr[data-alarm="south.face-gas.ch4.high"]') !== null`)
	// P1 first: north's power-cut alarm heads the list.
	require.Equal(t, "north.face-gas.ch4.high_high", testenv.EvalJS[string](t, ctx, `document.querySelector('#alarm-rows tr').dataset.alarm`))
	testenv.WaitJS(t, ctx, "both sites' device cards", `document.querySelector('[data-device="north.face-gas"]') !== null && document.querySelector('[data-device="south.face-gas"]') !== null`)
	testenv.WaitJS(t, ctx, "the relay tripped at north", `(() => { const b = document.querySelector('button.sensor[data-sensor="north.face-relay/power_cut"] .v'); return b && parseFloat(b.textContent) === 1; })()`)

	// Values update live from the sites.
	testenv.WaitJS(t, ctx, "north methane 1.8", `Math.abs(parseFloat(document.querySelector('button.sensor[data-sensor="north.face-gas/ch4"] .v').textContent) - 1.8) < 0.01`)
	require.NoError(t, north.sim.Hold("face-gas", "ch4", 1.95))
	testenv.WaitJS(t, ctx, "north methane 1.95", `Math.abs(parseFloat(document.querySelector('button.sensor[data-sensor="north.face-gas/ch4"] .v').textContent) - 1.95) < 0.01`)

	// Log in as the operator (the ack button asks), then acknowledge.
	testenv.Click(t, ctx, `button[data-alarm="north.face-gas.ch4.high_high"][data-action="ack"]`)
	testenv.WaitJS(t, ctx, "the login dialog", `document.getElementById('login-dlg').open`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#login-user`), "olga"),
		chromedp.SendKeys(chromedp.CSS(`#login-pass`), "s3cret"),
		chromedp.Click(chromedp.CSS(`#login-ok`)),
	))
	testenv.WaitJS(t, ctx, "the logged-in user", `document.getElementById('user-label').textContent === 'olga (operator)'`)
	testenv.WaitJS(t, ctx, "the stream after login", `document.querySelector('#conn.live') !== null`)
	testenv.Click(t, ctx, `button[data-alarm="north.face-gas.ch4.high_high"][data-action="ack"]`)
	testenv.WaitJS(t, ctx, "the ack dialog", `document.getElementById('cmd-dlg').open`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#cmd-comment`), "power cut confirmed, crew withdrawn"),
		chromedp.Click(chromedp.CSS(`#cmd-ok`)),
	))
	testenv.WaitJS(t, ctx, "the alarm acknowledged", `(() => { const r = document.querySelector('tr[data-alarm="north.face-gas.ch4.high_high"]'); return r && r.dataset.state === 'acknowledged'; })()`)
	require.Equal(t, "olga: power cut confirmed, crew withdrawn",
		testenv.EvalJS[string](t, ctx, `document.querySelector('tr[data-alarm="north.face-gas.ch4.high_high"] td.wide').textContent`))
	// It was the north gateway that acknowledged it; south's alarms are untouched.
	a := alarms(t, north.api)["face-gas.ch4.high_high"]
	require.Equal(t, "acknowledged", a.State)
	require.Equal(t, "olga", a.AckedBy)
	require.Equal(t, "unacknowledged", testenv.EvalJS[string](t, ctx, `document.querySelector('tr[data-alarm="south.face-gas.ch4.high"]').dataset.state`))

	testenv.Screenshot(t, ctx, "control-room-two-sites.png")

	require.Empty(t, consoleProblems(), "the page logged errors")
}
