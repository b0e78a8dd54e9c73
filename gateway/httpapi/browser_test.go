package httpapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

// seedSite gives the fake gateway a small coal face: three devices, one of
// them offline with a stale reading, a methane trend crossing both limits,
// and alarms of every priority.
func seedSite(be *fakeBackend) {
	now := time.Now()
	ch4Limits := []Limit{{Condition: "high", Limit: 1.0, Priority: 2}, {Condition: "high_high", Limit: 1.5, Priority: 1}}
	for i := 0; i <= 180; i++ {
		ts := now.Add(time.Duration(i-180) * 5 * time.Second)
		v := 0.35 + 0.0003*float64(i*i)/8
		if i > 170 {
			v = 1.62
		}
		be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane", Value: fp(v), Unit: "%vol",
			Quality: "good", TS: ts, Limits: ch4Limits})
	}
	be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "co", Kind: "co", Value: fp(12), Unit: "ppm", Quality: "good", TS: now,
		Limits: []Limit{{Condition: "high", Limit: 24, Priority: 2}}})
	be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "o2", Kind: "oxygen", Value: fp(20.8), Unit: "%vol", Quality: "good", TS: now,
		Limits: []Limit{{Condition: "low", Limit: 19.5, Priority: 2}}})
	be.setReading(Reading{Site: "demo", Device: "face3-gas2", Sensor: "ch4", Kind: "methane", Value: fp(0.41), Unit: "%vol", Quality: "good",
		TS: now.Add(-95 * time.Second), Stale: true, Limits: ch4Limits})
	be.setReading(Reading{Site: "demo", Device: "pump-station", Sensor: "discharge", Kind: "pressure", Value: fp(4.21), Unit: "MPa",
		Quality: "uncertain", TS: now})
	be.mu.Lock()
	be.devices = []Device{
		{Site: "demo", ID: "face3-gas", State: "online", LastOK: now},
		{Site: "demo", ID: "face3-gas2", State: "offline", LastOK: now.Add(-95 * time.Second), Error: "read holding 0..1 on face3-gas2 unit 2: i/o timeout"},
		{Site: "demo", ID: "pump-station", State: "online", LastOK: now},
	}
	be.mu.Unlock()
	alarm := func(id string, prio int, state string, ago time.Duration, latched, active bool, v, lim float64) {
		dev, rest, _ := strings.Cut(id, ".")
		sen, cond, _ := strings.Cut(rest, ".")
		be.setAlarm(Alarm{ID: id, Site: "demo", Device: dev, Sensor: sen, Condition: cond, Priority: prio, State: state, Active: active,
			Latched: latched, Value: fp(v), Limit: fp(lim), Since: now.Add(-ago), Updated: now.Add(-ago)}, "activate", "", "")
	}
	alarm("face3-gas.ch4.high", 2, StateUnacknowledged, 80*time.Second, false, true, 1.62, 1.0)
	alarm("face3-gas.ch4.high_high", 1, StateUnacknowledged, 40*time.Second, true, true, 1.62, 1.5)
	alarm("face3-gas2.ch4.comm", 1, StateAcknowledged, 90*time.Second, false, true, 0.41, 30)
	alarm("pump-station.discharge.bad", 3, StateUnacknowledged, 5*time.Minute, false, true, 4.21, 0)
	alarm("face3-gas.o2.low", 2, StateReturnedUnacknowledged, 10*time.Minute, false, false, 19.9, 19.5)
	alarm("belt-drive.temp.high", 4, StateShelved, 20*time.Minute, false, true, 71, 70)
}

// openSeededSite serves the seeded site (seedSite) and opens it in a
// browser of width × height, live, its five alarm rows shown.
func openSeededSite(t *testing.T, width, height int) (*testEnv, context.Context, func() []string) {
	e := startServer(t, nil)
	seedSite(e.be)
	ctx, consoleProblems := testenv.Browser(t, width, height)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(e.url+"/")))
	testenv.WaitJS(t, ctx, "the live stream", `document.querySelector('#conn.live') !== null`)
	testenv.WaitJS(t, ctx, "the alarm rows", `document.querySelectorAll('#alarm-rows tr').length === 5`)
	return e, ctx, consoleProblems
}

func TestBrowserControlRoom(t *testing.T) {
	e, ctx, consoleProblems := openSeededSite(t, 1600, 1000)
	require.Equal(t, "Demo colliery, face 3", testenv.EvalJS[string](t, ctx, `document.getElementById('site-name').textContent`))

	// The summary is in the SAFETY.md order, the levels of one sensor
	// together, most severe first, where the most severe falls (DESIGN.md:
	// the display groups them by sensor); the shelved alarm is listed apart.
	order := testenv.EvalJS[[]string](t, ctx, `[...document.querySelectorAll('#alarm-rows tr')].map(r => r.dataset.alarm)`)
	require.Equal(t, []string{
		"face3-gas.ch4.high_high", "face3-gas.ch4.high",
		"face3-gas2.ch4.comm", "face3-gas.o2.low",
		"pump-station.discharge.bad",
	}, order)
	require.Equal(t, []bool{false, true, false, false, false},
		testenv.EvalJS[[]bool](t, ctx, `[...document.querySelectorAll('#alarm-rows tr')].map(r => r.classList.contains('grouped'))`))
	require.Equal(t, []string{"belt-drive.temp.high"},
		testenv.EvalJS[[]string](t, ctx, `[...document.querySelectorAll('#shelved-rows tr')].map(r => r.dataset.alarm)`))

	// Priorities carry a word and a symbol, not only a colour.
	badges := testenv.EvalJS[[]string](t, ctx, `[...document.querySelectorAll('#alarm-rows tr .prio')].map(b => b.textContent + '|' + getComputedStyle(b, '::before').content)`)
	require.Equal(t, []string{`P1 Emergency|"◆"`, `P2 High|"▲"`, `P1 Emergency|"◆"`, `P2 High|"▲"`, `P3 Medium|"●"`}, badges)
	p1bg := testenv.EvalJS[string](t, ctx, `getComputedStyle(document.querySelector('#alarm-rows .prio.p1')).backgroundColor`)
	p2bg := testenv.EvalJS[string](t, ctx, `getComputedStyle(document.querySelector('#alarm-rows .prio.p2')).backgroundColor`)
	require.NotEqual(t, p1bg, p2bg)
	require.Equal(t, "UNACK", testenv.EvalJS[string](t, ctx, `document.querySelector('tr[data-alarm="face3-gas.ch4.high_high"] .state').textContent`))
	require.Equal(t, "RTN UNACK", testenv.EvalJS[string](t, ctx, `document.querySelector('tr[data-alarm="face3-gas.o2.low"] .state').textContent`))

	// Devices: communication state, and the stale value is greyed, not live.
	require.Equal(t, "OFFLINE", testenv.EvalJS[string](t, ctx, `document.querySelector('[data-device="face3-gas2"] .comm').textContent`))
	require.True(t, testenv.EvalJS[bool](t, ctx, `document.querySelector('button.sensor[data-sensor="face3-gas2/ch4"]').classList.contains('stale')`))
	require.Contains(t, testenv.EvalJS[string](t, ctx, `document.querySelector('button.sensor[data-sensor="face3-gas2/ch4"] .s-meta').textContent`), "STALE")
	require.False(t, testenv.EvalJS[bool](t, ctx, `document.querySelector('button.sensor[data-sensor="face3-gas/co"]').classList.contains('stale')`))
	require.Equal(t, "ppm", testenv.EvalJS[string](t, ctx, `document.querySelector('button.sensor[data-sensor="face3-gas/co"] .s-unit').textContent`))

	// Values update live from the event stream.
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "co", Kind: "co", Value: fp(17.5), Unit: "ppm", Quality: "good", TS: time.Now()})
	testenv.WaitJS(t, ctx, "the live CO value", `document.querySelector('button.sensor[data-sensor="face3-gas/co"] .v').textContent === '17.5'`)
	// A value that goes bad shows as a dash, not as a number.
	e.be.setReading(Reading{Site: "demo", Device: "pump-station", Sensor: "discharge", Kind: "pressure", Value: nil, Unit: "MPa", Quality: "bad", TS: time.Now()})
	testenv.WaitJS(t, ctx, "the bad pressure", `document.querySelector('button.sensor[data-sensor="pump-station/discharge"] .v').textContent === '\u2014'`)
	// A device going offline shows at once.
	e.srv.Publish(Event{Device: &Device{Site: "demo", ID: "pump-station", State: "fault", Error: "modbus exception 4 (server device failure)"}})
	testenv.WaitJS(t, ctx, "the pump fault", `document.querySelector('[data-device="pump-station"] .comm').textContent === 'FAULT'`)

	// The trend of the methane sensor, with both limits drawn.
	testenv.Click(t, ctx, `button.sensor[data-sensor="face3-gas/ch4"]`)
	testenv.WaitJS(t, ctx, "the trend", `document.querySelectorAll('#trend svg polyline.series').length > 0`)
	require.Equal(t, []string{"high", "high_high"},
		testenv.EvalJS[[]string](t, ctx, `[...document.querySelectorAll('#trend line.limit')].map(l => l.dataset.limit)`))
	require.Greater(t, testenv.EvalJS[int](t, ctx, `document.querySelector('#trend polyline.series').getAttribute('points').split(' ').length`), 100)

	// Acting needs a login: the button asks for one.
	testenv.Click(t, ctx, `button[data-alarm="face3-gas.ch4.high_high"][data-action="ack"]`)
	testenv.WaitJS(t, ctx, "the login dialog", `document.getElementById('login-dlg').open`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#login-user`), "olga"),
		chromedp.SendKeys(chromedp.CSS(`#login-pass`), "wrong"),
		chromedp.Click(chromedp.CSS(`#login-ok`)),
	))
	testenv.WaitJS(t, ctx, "the login error", `document.getElementById('login-error').textContent.includes('wrong user name or password')`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#login-pass`), operatorPass),
		chromedp.Click(chromedp.CSS(`#login-ok`)),
	))
	testenv.WaitJS(t, ctx, "the logged-in user", `document.getElementById('user-label').textContent === 'olga (operator)'`)
	require.False(t, testenv.EvalJS[bool](t, ctx, `document.getElementById('login-dlg').open`))
	require.Equal(t, "", testenv.EvalJS[string](t, ctx, `sessionStorage.getItem('canary.auth').includes('`+operatorPass+`') ? 'password stored!' : ''`),
		"the UI keeps a session token, never the password")
	testenv.WaitJS(t, ctx, "the stream after login", `document.querySelector('#conn.live') !== null`)

	// Keyboard: the shelve dialog opens from a focused button and Escape closes it, focus returns.
	testenv.EvalJS[bool](t, ctx, `(document.querySelector('button[data-alarm="pump-station.discharge.bad"][data-action="shelve"]').focus(), true)`)
	require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent("\r")))
	testenv.WaitJS(t, ctx, "the shelve dialog", `document.getElementById('cmd-dlg').open && getComputedStyle(document.getElementById('cmd-duration-label')).display !== 'none'`)
	require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent(kb.Escape)))
	testenv.WaitJS(t, ctx, "the dialog closed by Escape", `!document.getElementById('cmd-dlg').open`)
	testenv.WaitJS(t, ctx, "focus back on the shelve button", `document.activeElement && document.activeElement.dataset.alarm === 'pump-station.discharge.bad' && document.activeElement.dataset.action === 'shelve'`)
	_, sent := e.be.lastCommand()
	require.False(t, sent, "a cancelled dialog sends nothing")
	// The dialog's close event comes in a task of its own: closed and
	// opened again for another command in one task, the late close event
	// must not cancel the new command (it did: a CI run's ack sent nothing).
	testenv.EvalJS[bool](t, ctx, `(document.querySelector('button[data-alarm="pump-station.discharge.bad"][data-action="shelve"]').click(),
		document.getElementById('cmd-dlg').close(),
		document.querySelector('button[data-alarm="face3-gas.ch4.high_high"][data-action="ack"]').click(), true)`)

	// Acknowledge the P1 alarm with a comment (its dialog is open).
	testenv.WaitJS(t, ctx, "the ack dialog", `document.getElementById('cmd-dlg').open && document.getElementById('cmd-ok').textContent === 'Acknowledge'`)
	require.Equal(t, "none", testenv.EvalJS[string](t, ctx, `getComputedStyle(document.getElementById('cmd-duration-label')).display`),
		"the ack dialog shows no shelve duration")
	require.Equal(t, "as olga (operator)", testenv.EvalJS[string](t, ctx, `document.getElementById('cmd-user').textContent`))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#cmd-comment`), "power cut confirmed, crew withdrawn"),
		chromedp.Click(chromedp.CSS(`#cmd-ok`)),
	))
	testenv.WaitJS(t, ctx, "the alarm acknowledged", `(() => { const r = document.querySelector('tr[data-alarm="face3-gas.ch4.high_high"]'); return r && r.dataset.state === 'acknowledged'; })()`)
	cmd, ok := e.be.lastCommand()
	require.True(t, ok)
	require.Equal(t, Command{Action: "ack", Alarm: "face3-gas.ch4.high_high", User: "olga", Role: "operator", Comment: "power cut confirmed, crew withdrawn"}, cmd)
	require.Equal(t, "ACK", testenv.EvalJS[string](t, ctx, `document.querySelector('tr[data-alarm="face3-gas.ch4.high_high"] .state').textContent`))
	require.Equal(t, "olga: power cut confirmed, crew withdrawn", testenv.EvalJS[string](t, ctx, `document.querySelector('tr[data-alarm="face3-gas.ch4.high_high"] td.wide').textContent`))
	// Acknowledged P1 moves below... nothing: it stays P1, now after no unacked P1. The P1 rows keep their priority.
	testenv.WaitJS(t, ctx, "the audit entry in the event log", `document.querySelector('#log li').textContent.includes('by olga') && document.querySelector('#log li').textContent.includes('power cut confirmed')`)

	// A rejected command shows the gateway's reason in the dialog.
	testenv.Click(t, ctx, `button[data-alarm="face3-gas.ch4.high_high"][data-action="reset"]`)
	testenv.WaitJS(t, ctx, "the reset dialog", `document.getElementById('cmd-dlg').open`)
	testenv.Click(t, ctx, `#cmd-ok`)
	testenv.WaitJS(t, ctx, "the reset refusal", `document.getElementById('cmd-error').textContent.includes('condition still active')`)
	testenv.Click(t, ctx, `#cmd-cancel`)

	testenv.Screenshot(t, ctx, "control-room-wall.png")

	// A flood of annunciations raises the banner.
	require.True(t, testenv.EvalJS[bool](t, ctx, `document.getElementById('flood').hidden`))
	for i := 0; i < 11; i++ {
		e.be.setAlarm(Alarm{ID: fmt.Sprintf("face3-gas.x%d.high", i), Site: "demo", Device: "face3-gas", Sensor: fmt.Sprintf("x%d", i),
			Condition: "high", Priority: 3, State: StateUnacknowledged, Active: true, Value: fp(2), Limit: fp(1), Since: time.Now()}, "activate", "", "")
	}
	testenv.WaitJS(t, ctx, "the flood banner", `!document.getElementById('flood').hidden && document.getElementById('flood').textContent.includes('ALARM FLOOD')`)

	require.Empty(t, consoleProblems(), "the page logged errors (CSP violations, exceptions)")
}

func TestBrowserPhoneLayout(t *testing.T) {
	e := startServer(t, nil)
	seedSite(e.be)
	ctx, consoleProblems := testenv.Browser(t, 390, 844)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(e.url+"/"),
	))
	testenv.WaitJS(t, ctx, "the live stream", `document.querySelector('#conn.live') !== null`)
	testenv.WaitJS(t, ctx, "the alarm rows", `document.querySelectorAll('#alarm-rows tr').length === 5`)
	// One column: the panels stack and nothing is wider than the screen.
	require.Equal(t, 1, testenv.EvalJS[int](t, ctx, `getComputedStyle(document.querySelector('main.grid')).gridTemplateColumns.split(' ').length`))
	require.LessOrEqual(t, testenv.EvalJS[int](t, ctx, `document.documentElement.scrollWidth`), 390)
	// Each alarm is a card: its id and its buttons are on screen, no sideways scrolling.
	require.LessOrEqual(t, testenv.EvalJS[float64](t, ctx, `document.querySelector('button[data-alarm="face3-gas.ch4.high_high"][data-action="reset"]').getBoundingClientRect().right`), 390.0)
	require.LessOrEqual(t, testenv.EvalJS[float64](t, ctx, `document.querySelector('tr[data-alarm="face3-gas.ch4.high_high"] .alarm-id').getBoundingClientRect().right`), 390.0)
	require.Equal(t, "rgb(229, 50, 45)", testenv.EvalJS[string](t, ctx, `getComputedStyle(document.querySelector('tr[data-alarm="face3-gas.ch4.high_high"]')).borderLeftColor`))
	testenv.Screenshot(t, ctx, "control-room-phone.png")
	require.Empty(t, consoleProblems())
}

func TestBrowserLoginRequired(t *testing.T) {
	e := startServer(t, func(o *Options) { o.Config.Anonymous = "none" })
	seedSite(e.be)
	ctx, consoleProblems := testenv.Browser(t, 1280, 900)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(e.url+"/")))
	testenv.WaitJS(t, ctx, "the login dialog", `document.getElementById('login-dlg').open`)
	require.Equal(t, 0, testenv.EvalJS[int](t, ctx, `document.querySelectorAll('#alarm-rows tr').length`), "nothing is shown before login")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#login-user`), "victor"),
		chromedp.SendKeys(chromedp.CSS(`#login-pass`), viewerPass),
		chromedp.Click(chromedp.CSS(`#login-ok`)),
	))
	testenv.WaitJS(t, ctx, "the alarms after login", `document.querySelectorAll('#alarm-rows tr').length === 5`)
	testenv.WaitJS(t, ctx, "the live stream", `document.querySelector('#conn.live') !== null`)
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "co", Kind: "co", Value: fp(3.25), Unit: "ppm", Quality: "good", TS: time.Now()})
	testenv.WaitJS(t, ctx, "the live value", `document.querySelector('button.sensor[data-sensor="face3-gas/co"] .v').textContent === '3.25'`)
	// A viewer may look but not act: the ack button asks for an operator.
	testenv.Click(t, ctx, `button[data-alarm="face3-gas.ch4.high_high"][data-action="ack"]`)
	testenv.WaitJS(t, ctx, "the operator hint", `document.getElementById('login-dlg').open && document.getElementById('login-error').textContent.includes('log in as an operator')`)
	require.Empty(t, consoleProblems())
}

// After a step of the gateway's wall clock back (NTP setting a box's clock
// after boot), every later ts is older than what the browser holds: the
// stream's updates must still show. An alarm annunciated again and a new
// value, both stamped an hour before what the page loaded.
func TestBrowserUpdatesAfterAClockStepBack(t *testing.T) {
	e, ctx, consoleProblems := openSeededSite(t, 1280, 900)
	require.Equal(t, "acknowledged", testenv.EvalJS[string](t, ctx, `document.querySelector('tr[data-alarm="face3-gas2.ch4.comm"]').dataset.state`))
	// Past the moments in which a stream item can have raced the snapshot.
	testenv.WaitJS(t, ctx, "the snapshot's race window over", `performance.now() > st.snapUntil`)

	// The CO trend on screen: it follows the stepped-back clock too.
	testenv.Click(t, ctx, `button.sensor[data-sensor="face3-gas/co"]`)
	testenv.WaitJS(t, ctx, "the CO trend", `st.trend && st.trend.sensor === 'co' && st.trend.points.length > 0`)

	back := time.Now().Add(-time.Hour)
	e.be.setAlarm(Alarm{ID: "face3-gas2.ch4.comm", Site: "demo", Device: "face3-gas2", Sensor: "ch4", Condition: "comm", Priority: 1,
		State: StateUnacknowledged, Active: true, Value: fp(0.41), Limit: fp(30), Since: back, Updated: back}, "re_alarm", "", "")
	testenv.WaitJS(t, ctx, "the alarm annunciated again", `document.querySelector('tr[data-alarm="face3-gas2.ch4.comm"]').dataset.state === 'unacknowledged'`)
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "co", Kind: "co", Value: fp(13.5), Unit: "ppm", Quality: "good", TS: back})
	testenv.WaitJS(t, ctx, "the new CO value", `document.querySelector('button.sensor[data-sensor="face3-gas/co"] .v').textContent === '13.5'`)
	testenv.WaitJS(t, ctx, "the CO trend restarted at the new time",
		`st.trend.points.length === 1 && st.trend.points[0].value === 13.5`)
	// And a reload shows the server's trend the same way.
	testenv.EvalJS[bool](t, ctx, `(st.trend = null, loadTrend('face3-gas/co'), true)`)
	testenv.WaitJS(t, ctx, "the reloaded CO trend", `st.trend && st.trend.points.length === 1 && st.trend.points[0].value === 13.5`)
	require.Empty(t, consoleProblems())
}

// The fault hold's banner: shown from the info at load, and from the
// stream's fault_hold and fault_hold_end transitions after.
func TestBrowserFaultHoldBanner(t *testing.T) {
	e := startServer(t, nil)
	seedSite(e.be)
	e.be.setFaultHold(true, "gateway overloaded (in the last 1s: 3 polls abandoned as late)")
	ctx, consoleProblems := testenv.Browser(t, 1280, 900)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(e.url+"/")))
	testenv.WaitJS(t, ctx, "the live stream", `document.querySelector('#conn.live') !== null`)
	testenv.WaitJS(t, ctx, "the banner at load", `!document.getElementById('fault-hold').hidden && document.getElementById('fault-hold').textContent.startsWith('GATEWAY OVERLOADED (since ')`)
	require.Contains(t, testenv.EvalJS[string](t, ctx, `document.getElementById('fault-hold').title`), "3 polls abandoned as late")
	// A comm alarm the hold keeps active is marked held, and no longer
	// once released.
	held := Alarm{ID: "face3-gas.ch4.comm", Site: "demo", Device: "face3-gas", Sensor: "ch4", Condition: "comm", Priority: 1,
		State: StateUnacknowledged, Active: true, Since: time.Now(), Held: true}
	e.be.setAlarm(held, "activate", "", "")
	testenv.WaitJS(t, ctx, "the held mark", `document.querySelector('tr[data-alarm="face3-gas.ch4.comm"] .held') !== null`)
	require.Contains(t, testenv.EvalJS[string](t, ctx, `document.querySelector('tr[data-alarm="face3-gas.ch4.comm"] .held').title`), "fault hold")
	testenv.Screenshot(t, ctx, "control-room-fault-hold.png")
	held.Held, held.Active, held.State = false, false, StateReturnedUnacknowledged
	e.be.setAlarm(held, "return", "", "")
	testenv.WaitJS(t, ctx, "the held mark gone", `document.querySelector('tr[data-alarm="face3-gas.ch4.comm"]') !== null && document.querySelector('tr[data-alarm="face3-gas.ch4.comm"] .held') === null`)
	e.be.setFaultHold(false, "calm")
	testenv.WaitJS(t, ctx, "the banner gone", `document.getElementById('fault-hold').hidden`)
	e.be.setFaultHold(true, "overloaded again")
	testenv.WaitJS(t, ctx, "the banner again", `!document.getElementById('fault-hold').hidden && document.getElementById('fault-hold').title === 'overloaded again'`)
	// A control room's list names each site held ("<site>." holds).
	e.be.setHolds(Transition{TS: time.Now(), Type: "fault_hold", Alarm: "north.", Comment: "north overloaded"},
		Transition{TS: time.Now(), Type: "fault_hold", Alarm: "south.", Comment: "south overloaded"})
	testenv.WaitJS(t, ctx, "the sites held", `document.getElementById('fault-hold').textContent.startsWith('GATEWAY OVERLOADED (north since ') && document.getElementById('fault-hold').textContent.includes(', south since ')`)
	// An older list (a lower gen), arriving late, does not undo a newer
	// one; the next newer one is shown.
	e.be.mu.Lock()
	e.be.holdGen -= 5
	e.be.mu.Unlock()
	e.be.setHolds() // empty, but older
	// The stream is in order: once a reading sent after it shows, the
	// older list was handled, and ignored.
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "co", Kind: "co", Value: fp(7.77), Unit: "ppm", Quality: "good", TS: time.Now()})
	testenv.WaitJS(t, ctx, "the reading after the older list", `document.querySelector('button.sensor[data-sensor="face3-gas/co"] .v').textContent === '7.77'`)
	require.True(t, testenv.EvalJS[bool](t, ctx, `!document.getElementById('fault-hold').hidden && document.getElementById('fault-hold').textContent.includes('north since')`), "an older list undid a newer one")
	e.be.mu.Lock()
	e.be.holdGen += 10
	e.be.mu.Unlock()
	e.be.setFaultHold(true, "newest")
	testenv.WaitJS(t, ctx, "the newest list", `document.getElementById('fault-hold').title === 'newest'`)
	require.Empty(t, consoleProblems(), "the page logged errors (CSP violations, exceptions)")
}

// loginOperator logs olga in from the page's login button.
func loginOperator(ctx context.Context, t *testing.T) {
	t.Helper()
	loginAs(ctx, t, "olga", operatorPass)
}

func loginAs(ctx context.Context, t *testing.T, user, pass string) {
	t.Helper()
	testenv.Click(t, ctx, `#login-btn`)
	testenv.WaitJS(t, ctx, "the login dialog", `document.getElementById('login-dlg').open`)
	// The form keeps the last user's name.
	testenv.EvalJS[bool](t, ctx, `(document.getElementById('login-user').value = '', true)`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#login-user`), user),
		chromedp.SendKeys(chromedp.CSS(`#login-pass`), pass),
		chromedp.Click(chromedp.CSS(`#login-ok`)),
	))
}

// An engineer takes an alarm out of service from the alarm list and back
// (an operator has no such button), with a reason and an expiry; an
// operator shelves an active alarm until it returns (one-shot).
func TestBrowserOutOfServiceAndOneShotShelve(t *testing.T) {
	e, ctx, consoleProblems := openSeededSite(t, 1600, 1000)
	const oosButtons = `document.querySelectorAll('button[data-action="out_of_service"]').length`
	require.Zero(t, testenv.EvalJS[int](t, ctx, oosButtons), "out of service offered to nobody logged in")
	loginOperator(ctx, t)
	testenv.WaitJS(t, ctx, "the logged-in operator", `document.getElementById('user-label').textContent === 'olga (operator)'`)
	require.Zero(t, testenv.EvalJS[int](t, ctx, oosButtons), "out of service offered to an operator")

	// One-shot shelve, by the operator.
	const high = "face3-gas.ch4.high"
	testenv.Click(t, ctx, `button[data-alarm="`+high+`"][data-action="shelve"]`)
	testenv.WaitJS(t, ctx, "the shelve dialog", `document.getElementById('cmd-dlg').open`)
	require.Equal(t, "none", testenv.EvalJS[string](t, ctx, `getComputedStyle(document.getElementById('cmd-oos-label')).display`),
		"the shelve dialog shows no out-of-service expiry")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#cmd-duration`), "one_shot"),
		chromedp.SendKeys(chromedp.CSS(`#cmd-comment`), "purging the heading"),
		chromedp.Click(chromedp.CSS(`#cmd-ok`)),
	))
	testenv.WaitJS(t, ctx, "the dialog closed", `!document.getElementById('cmd-dlg').open`)
	cmd, ok := e.be.lastCommand()
	require.True(t, ok)
	require.Equal(t, Command{Action: "shelve", Alarm: high, User: "olga", Role: "operator", Comment: "purging the heading", OneShot: true}, cmd)

	// A returned alarm cannot be shelved one-shot: the choice is not offered.
	testenv.Click(t, ctx, `button[data-alarm="face3-gas.o2.low"][data-action="shelve"]`)
	testenv.WaitJS(t, ctx, "the shelve dialog", `document.getElementById('cmd-dlg').open`)
	require.True(t, testenv.EvalJS[bool](t, ctx, `document.getElementById('cmd-one-shot').disabled`))
	require.Equal(t, "30m", testenv.EvalJS[string](t, ctx, `document.getElementById('cmd-duration').value`), "the last dialog's one-shot choice is not kept")
	testenv.Click(t, ctx, `#cmd-cancel`)
	testenv.WaitJS(t, ctx, "the dialog closed", `!document.getElementById('cmd-dlg').open`)

	testenv.Click(t, ctx, `#logout-btn`)
	loginAs(ctx, t, "erik", engineerPass)
	testenv.WaitJS(t, ctx, "the logged-in engineer", `document.getElementById('user-label').textContent === 'erik (engineer)'`)
	const bad = "pump-station.discharge.bad"
	testenv.WaitJS(t, ctx, "the out-of-service button", `document.querySelector('button[data-alarm="`+bad+`"][data-action="out_of_service"]') !== null`)
	testenv.Click(t, ctx, `button[data-alarm="`+bad+`"][data-action="out_of_service"]`)
	testenv.WaitJS(t, ctx, "the out-of-service dialog", `document.getElementById('cmd-dlg').open && document.getElementById('cmd-ok').textContent === 'Take out of service'`)
	require.Equal(t, "none", testenv.EvalJS[string](t, ctx, `getComputedStyle(document.getElementById('cmd-duration-label')).display`))
	require.Equal(t, "(reason required)", testenv.EvalJS[string](t, ctx, `document.getElementById('cmd-required').textContent`))
	// Without a reason the form does not go.
	sent := e.be.commandCount()
	testenv.Click(t, ctx, `#cmd-ok`)
	time.Sleep(300 * time.Millisecond) // a command sent would be at the backend
	require.True(t, testenv.EvalJS[bool](t, ctx, `document.getElementById('cmd-dlg').open`))
	require.Equal(t, sent, e.be.commandCount(), "no command without a reason")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#cmd-oos-duration`), "8h"),
		chromedp.SendKeys(chromedp.CSS(`#cmd-comment`), "transmitter replaced"),
		chromedp.Click(chromedp.CSS(`#cmd-ok`)),
	))
	testenv.WaitJS(t, ctx, "the alarm out of service, listed apart", `(() => { const r = document.querySelector('#shelved-rows tr[data-alarm="`+bad+`"]'); return r && r.dataset.state === 'out_of_service'; })()`)
	cmd, _ = e.be.lastCommand()
	require.Equal(t, Command{Action: "out_of_service", Alarm: bad, User: "erik", Role: "engineer", Comment: "transmitter replaced", Duration: 8 * time.Hour}, cmd)

	// Listed with the shelved alarms, folded away: opened, as a user does.
	testenv.Click(t, ctx, `#shelved-box summary`)
	testenv.WaitJS(t, ctx, "the shelved list open", `document.getElementById('shelved-box').open`)
	testenv.Click(t, ctx, `button[data-alarm="`+bad+`"][data-action="return_to_service"]`)
	testenv.WaitJS(t, ctx, "the return dialog", `document.getElementById('cmd-dlg').open && document.getElementById('cmd-ok').textContent === 'Return to service'`)
	require.Equal(t, "none", testenv.EvalJS[string](t, ctx, `getComputedStyle(document.getElementById('cmd-oos-label')).display`))
	testenv.Click(t, ctx, `#cmd-ok`)
	testenv.WaitJS(t, ctx, "the alarm back in the list", `(() => { const r = document.querySelector('#alarm-rows tr[data-alarm="`+bad+`"]'); return r && r.dataset.state !== 'out_of_service'; })()`)
	cmd, _ = e.be.lastCommand()
	require.Equal(t, Command{Action: "return_to_service", Alarm: bad, User: "erik", Role: "engineer"}, cmd)
	require.Empty(t, consoleProblems(), "the page logged errors (CSP violations, exceptions)")
}

// A wall screen logged in when its session ends (a gateway restart, or
// after 12 h) goes on showing live data where anyone may watch: it waited
// at a login dialog with an empty alarm list. And a bad reading that came
// with a number (a detector in fault reporting 0) shows a dash, never the
// number.
func TestBrowserSessionEndKeepsTheScreenLive(t *testing.T) {
	e, ctx, consoleProblems := openSeededSite(t, 1600, 1000)
	loginOperator(ctx, t)
	testenv.WaitJS(t, ctx, "the logged-in user", `document.getElementById('user-label').textContent === 'olga (operator)'`)
	testenv.WaitJS(t, ctx, "the stream after login", `document.querySelector('#conn.live') !== null`)

	// The gateway forgets every session and the stream starts again.
	e.srv.auth.mu.Lock()
	clear(e.srv.auth.sessions)
	e.srv.auth.mu.Unlock()
	e.srv.hub.mu.Lock()
	for c := range e.srv.hub.clients {
		delete(e.srv.hub.clients, c)
		c.once.Do(func() { close(c.kicked) })
	}
	e.srv.hub.mu.Unlock()
	testenv.WaitJS(t, ctx, "the session's end said", `document.getElementById('user-label').textContent === 'session ended: log in to act'`)
	testenv.WaitJS(t, ctx, "live again, anonymously", `document.querySelector('#conn.live') !== null`)
	require.False(t, testenv.EvalJS[bool](t, ctx, `document.getElementById('login-dlg').open`), "no dialog over the screen")
	testenv.WaitJS(t, ctx, "the alarm rows", `document.querySelectorAll('#alarm-rows tr').length === 5`)

	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "co", Kind: "co", Value: fp(19.5), Unit: "ppm", Quality: "good", TS: time.Now()})
	testenv.WaitJS(t, ctx, "a live value after the session's end", `document.querySelector('button.sensor[data-sensor="face3-gas/co"] .v').textContent === '19.5'`)
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas", Sensor: "co", Kind: "co", Value: fp(0), Unit: "ppm", Quality: "bad", TS: time.Now()})
	testenv.WaitJS(t, ctx, "the bad reading as a dash", `document.querySelector('button.sensor[data-sensor="face3-gas/co"] .v').textContent === '\u2014'`)
	require.Empty(t, consoleProblems(), "the page logged errors (CSP violations, exceptions)")
}

// A command's answer carries the alarm's state as it was right after the
// command; the stream may bring a newer one first (the alarm returned and
// was raised again before the answer arrived). The newer state stays on
// the screen: the stale answer used to overwrite it, showing an alarm
// that needs attention as acknowledged.
func TestBrowserCommandAnswerOlderThanTheStream(t *testing.T) {
	e, ctx, consoleProblems := openSeededSite(t, 1600, 1000)
	loginOperator(ctx, t)
	testenv.WaitJS(t, ctx, "the stream after login", `document.querySelector('#conn.live') !== null`)

	const id = "face3-gas.ch4.high"
	e.be.mu.Lock()
	e.be.afterAlarms = func() {
		// The answer holds the acknowledged state; before it is written
		// the alarm is raised again, and the stream says so.
		e.be.mu.Lock()
		a := e.be.alarms[id]
		e.be.mu.Unlock()
		a.State, a.Since, a.Updated, a.AckedBy, a.Comment = StateUnacknowledged, time.Now(), time.Now().Add(time.Second), "", ""
		e.be.setAlarm(a, "activate", "", "")
		time.Sleep(500 * time.Millisecond) // the stream's message is on the screen first
	}
	e.be.mu.Unlock()
	testenv.Click(t, ctx, `button[data-alarm="`+id+`"][data-action="ack"]`)
	testenv.WaitJS(t, ctx, "the ack dialog", `document.getElementById('cmd-dlg').open`)
	testenv.Click(t, ctx, `#cmd-ok`)
	testenv.WaitJS(t, ctx, "the dialog closed", `!document.getElementById('cmd-dlg').open`)
	cmd, ok := e.be.lastCommand()
	require.True(t, ok)
	require.Equal(t, "ack", cmd.Action)
	require.Equal(t, "unacknowledged", testenv.EvalJS[string](t, ctx, `document.querySelector('tr[data-alarm="`+id+`"]').dataset.state`),
		"the stale answer of the ack overwrote the alarm raised again")
	require.Equal(t, "UNACK", testenv.EvalJS[string](t, ctx, `document.querySelector('tr[data-alarm="`+id+`"] .state').textContent`))
	require.Empty(t, consoleProblems(), "the page logged errors (CSP violations, exceptions)")
}

// A sensor the gateway has never read has no age: the UI says so, and does
// not count one from the page's load (it showed "3 s ago" for a sensor
// that had never answered).
func TestBrowserNeverReadSensor(t *testing.T) {
	e, ctx, consoleProblems := openSeededSite(t, 1600, 1000)
	e.be.setReading(Reading{Site: "demo", Device: "face3-gas2", Sensor: "co", Kind: "co", Value: nil, Unit: "ppm", Quality: "bad", Stale: true})
	sel := `button.sensor[data-sensor="face3-gas2/co"] .s-meta`
	testenv.WaitJS(t, ctx, "the never-read sensor", `document.querySelector('`+sel+`') !== null`)
	time.Sleep(1100 * time.Millisecond) // an age counted from the load would show by now
	meta := testenv.EvalJS[string](t, ctx, `document.querySelector('`+sel+`').textContent`)
	require.Contains(t, meta, "NEVER READ")
	require.NotContains(t, meta, "ago")
	require.Equal(t, "\u2014", testenv.EvalJS[string](t, ctx, `document.querySelector('button.sensor[data-sensor="face3-gas2/co"] .v').textContent`))
	// A read sensor still shows its age.
	require.Contains(t, testenv.EvalJS[string](t, ctx, `document.querySelector('button.sensor[data-sensor="face3-gas/co"] .s-meta').textContent`), "ago")
	require.Empty(t, consoleProblems(), "the page logged errors (CSP violations, exceptions)")
}
