package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/gateway/httpapi"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/internal/jsonenc"
)

// Options configure a Room.
type Options struct {
	// Config is the loaded (defaulted and validated) control-room config.
	Config *configs.Control
	Log    zerolog.Logger
	// Registry receives the HTTP metrics and is served on /metrics; nil
	// makes a private one.
	Registry *prometheus.Registry
	// HTTPListener, when set, is served instead of Config.HTTP.Listen.
	HTTPListener net.Listener
	// Reconcile is how long after a reconnect the retained alarm states
	// are awaited before alarms not re-delivered count as cleared; default 2s.
	Reconcile time.Duration
}

// Room is the central control room. Build with New, then Run.
type Room struct {
	o      Options
	cfg    *configs.Control
	log    zerolog.Logger
	st     *state
	http   *httpapi.Server
	client paho.Client
	ready  atomic.Bool
	prefix string

	mu      sync.Mutex
	pending map[string]chan command.Result
	// pubMu makes a change of state and its event to the page one step,
	// for the MQTT callbacks and reconcileLoop alike: the page follows the
	// stream's order (docs/ui.md), so an event must not overtake the one
	// of a later change.
	pubMu sync.Mutex
	// reconnects carries the alarms known before a reconnect to Run, which
	// reconciles them once the retained states had time to arrive.
	reconnects chan map[string]httpapi.Alarm
}

// New builds the control room; it reads the MQTT credentials and the users'
// passwords now, and dials nothing.
func New(o Options) (*Room, error) {
	if o.Config == nil {
		return nil, errors.New("control: no config")
	}
	if o.Reconcile <= 0 {
		o.Reconcile = 2 * time.Second
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	cfg := o.Config
	r := &Room{
		o: o, cfg: cfg, st: newState(), prefix: cfg.MQTT.TopicPrefix,
		log:        o.Log.With().Str("component", "control").Logger(),
		pending:    map[string]chan command.Result{},
		reconnects: make(chan map[string]httpapi.Alarm, 1),
	}
	users, err := httpapi.LoadUsers(cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("control: http users: %w", err)
	}
	srv, err := httpapi.New(httpapi.Options{
		Config: cfg.HTTP, Users: users, Backend: (*backend)(r), Registry: o.Registry,
		Logger: o.Log, Site: "control", SiteName: "Control room",
	})
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	r.http = srv

	po, err := mqtt.ClientOptions(cfg.MQTT, cfg.MQTT.ClientID)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	// A clean session: the control room's state is the retained topics
	// plus what arrives while it runs; nothing is worth queueing for it.
	// The first connection is Run's (mqtt.ConnectLogged: every failed
	// attempt logged with its reason); paho reconnects after that.
	po.SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(false).
		SetMaxReconnectInterval(10 * time.Second).
		SetOrderMatters(true).SetKeepAlive(30 * time.Second)
	po.SetOnConnectHandler(r.onConnect)
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		r.ready.Store(false)
		r.log.Warn().Err(err).Msg("mqtt connection lost")
	})
	po.SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
		r.log.Warn().Str("broker", cfg.MQTT.URL).Msg("mqtt reconnecting")
	})
	r.client = paho.NewClient(po)
	return r, nil
}

// filters are the subscriptions: per configured site, or every site.
func (r *Room) filters() map[string]byte {
	sites := r.cfg.Sites
	if len(sites) == 0 {
		sites = []string{"+"}
	}
	f := map[string]byte{}
	for _, s := range sites {
		base := r.prefix + "/v1/" + s + "/"
		for _, t := range []string{"readings/+", "alarms/+", "events", "status", "cmd/result"} {
			f[base+t] = 1
		}
	}
	return f
}

func (r *Room) onConnect(c paho.Client) {
	// Alarms cleared while we were away were cleared on the broker too,
	// so they will not come back: forget everything and let the retained
	// states rebuild it.
	old := r.st.forgetAlarms()
	// Paho does not retry a refused subscription; keep trying while this
	// connection lasts (a new connection runs this handler again).
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		tok := c.SubscribeMultiple(r.filters(), r.onMessage)
		err := errors.New("no answer within 10s")
		if tok.WaitTimeout(10 * time.Second) {
			err = mqtt.SubscribeErr(tok)
		}
		if err == nil {
			break
		}
		r.log.Error().Err(err).Dur("backoff", backoff).Msg("mqtt subscribe failed")
		if !c.IsConnectionOpen() {
			return
		}
		time.Sleep(backoff)
	}
	select {
	case r.reconnects <- old:
	default:
		// A reconcile is still pending; merge into it.
		select {
		case prev := <-r.reconnects:
			for k, v := range prev {
				old[k] = v
			}
		default:
		}
		r.reconnects <- old
	}
	r.ready.Store(true)
	r.log.Info().Str("broker", r.cfg.MQTT.URL).Msg("mqtt connected")
}

func (r *Room) onMessage(_ paho.Client, m paho.Message) {
	site, rest, ok := r.splitTopic(m.Topic())
	if !ok {
		return
	}
	payload := m.Payload()
	if rest != "cmd/result" {
		r.pubMu.Lock()
		defer r.pubMu.Unlock()
	}
	switch {
	case strings.HasPrefix(rest, "readings/"):
		rd, err := mqtt.DecodeReadings(payload)
		if err != nil || rd.Site != site || "readings/"+rd.Device != rest {
			r.log.Warn().Err(err).Str("topic", m.Topic()).Msg("readings message ignored")
			return
		}
		hrs, fresh := r.st.setReadings(rd, time.Now())
		if !fresh {
			return // a republished older poll (receipt mode): history, not news
		}
		for _, hr := range hrs {
			r.http.Publish(httpapi.Event{Reading: &hr})
		}
		if d, changed := r.st.markDevice(site, rd.Device, rd); changed {
			r.http.Publish(httpapi.Event{Device: &d})
		}
	case strings.HasPrefix(rest, "alarms/"):
		id := rest[len("alarms/"):]
		if len(payload) == 0 {
			if a, ok := r.st.clearAlarm(site, id); ok {
				r.http.Publish(httpapi.Event{Alarm: &a})
			}
			return
		}
		a, err := mqtt.DecodeAlarmState(payload)
		if err != nil || a.ID != id {
			r.log.Warn().Err(err).Str("topic", m.Topic()).Msg("alarm state ignored")
			return
		}
		a.Site = site
		ha := r.st.setAlarm(a)
		r.http.Publish(httpapi.Event{Alarm: &ha})
	case rest == "events":
		ev, err := mqtt.DecodeEvent(payload)
		if err != nil {
			r.log.Warn().Err(err).Str("topic", m.Topic()).Msg("event ignored")
			return
		}
		t := r.st.addTransition(site, ev)
		r.http.Publish(httpapi.Event{Transition: &t})
	case rest == "status":
		var st siteStatus
		if len(payload) == 0 || json.Unmarshal(payload, &st) != nil || st.State == "" {
			r.log.Warn().Str("topic", m.Topic()).Msg("status ignored")
			return
		}
		devs, holds := r.st.setStatus(site, st)
		for _, d := range devs {
			r.http.Publish(httpapi.Event{Device: &d})
		}
		if holds {
			h := r.st.faultHolds()
			r.http.Publish(httpapi.Event{Holds: &h})
		}
	case rest == "cmd/result":
		var res command.Result
		if json.Unmarshal(payload, &res) != nil || res.ID == "" {
			return
		}
		r.mu.Lock()
		ch := r.pending[res.ID]
		delete(r.pending, res.ID)
		r.mu.Unlock()
		if ch != nil {
			ch <- res
		}
	}
}

// splitTopic returns the site and the rest of <prefix>/v1/<site>/<rest>.
func (r *Room) splitTopic(topic string) (site, rest string, ok bool) {
	t, ok := strings.CutPrefix(topic, r.prefix+"/v1/")
	if !ok {
		return "", "", false
	}
	site, rest, ok = strings.Cut(t, "/")
	return site, rest, ok && mqtt.ValidID(site)
}

// Run connects to the broker and serves the API and UI until ctx ends.
func (r *Room) Run(ctx context.Context) error {
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error {
		mqtt.ConnectLogged(gctx, r.client, r.log, r.cfg.MQTT.URL)
		return nil
	})
	grp.Go(func() error {
		var err error
		if r.o.HTTPListener != nil {
			err = r.http.Serve(gctx, r.o.HTTPListener)
		} else {
			err = r.http.Run(gctx)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("control http: %w", err)
		}
		return nil
	})
	grp.Go(func() error { return r.reconcileLoop(gctx) })
	r.log.Info().Str("broker", r.cfg.MQTT.URL).Strs("sites", r.cfg.Sites).Msg("control room running")
	err := grp.Wait()
	r.ready.Store(false)
	r.client.Disconnect(250)
	r.log.Info().Msg("control room stopped")
	return err
}

// reconcileLoop tells the UI about alarms that were known before a
// reconnect and were not re-delivered as retained states: they cleared
// while the control room was away.
func (r *Room) reconcileLoop(ctx context.Context) error {
	for {
		var old map[string]httpapi.Alarm
		select {
		case <-ctx.Done():
			return nil
		case old = <-r.reconnects:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.o.Reconcile):
		}
		r.pubMu.Lock()
		for id, a := range old {
			if r.st.hasAlarm(id) {
				continue
			}
			a.State, a.Active, a.Latched = httpapi.StateNormal, false, false
			r.http.Publish(httpapi.Event{Alarm: &a})
		}
		r.pubMu.Unlock()
	}
}

// wireCommand is the payload on a site's cmd topic.
type wireCommand struct {
	ID       string `json:"id"`
	Action   string `json:"action"`
	Alarm    string `json:"alarm"`
	User     string `json:"user"`
	Comment  string `json:"comment,omitempty"`
	Duration string `json:"duration,omitempty"`
	OneShot  bool   `json:"one_shot,omitempty"`
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (Go >= 1.24)
	return "control-" + hex.EncodeToString(b)
}

// command sends an operator action to the alarm's site and waits for the
// site's answer.
func (r *Room) command(ctx context.Context, c httpapi.Command) error {
	site, alarm, ok := splitQualified(c.Alarm)
	if !ok {
		return fmt.Errorf("%w: %q: control-room alarm ids are <site>.<alarm-id>", httpapi.ErrUnknownAlarm, c.Alarm)
	}
	if len(r.cfg.Sites) > 0 && !contains(r.cfg.Sites, site) {
		return fmt.Errorf("%w: site %s is not watched by this control room", httpapi.ErrUnknownAlarm, site)
	}
	switch st, known := r.st.siteState(site); {
	case !known:
		return fmt.Errorf("%w: no site %s on the broker", httpapi.ErrUnknownAlarm, site)
	case st != "online":
		// A command queued for a gateway that is away would run whenever it
		// comes back, long after the operator decided: refuse it now.
		return fmt.Errorf("%w: site %s is %s; try again when it is back", httpapi.ErrNotAllowed, site, st)
	}
	w := wireCommand{ID: newRequestID(), Action: c.Action, Alarm: alarm, User: c.User, Comment: c.Comment, OneShot: c.OneShot}
	if c.Duration > 0 { // a timed shelve's, an out_of_service's expiry
		w.Duration = c.Duration.String()
	}
	payload, err := jsonenc.Marshal(w) // a comment's < > & as typed (docs/mqtt.md)
	if err != nil {
		return fmt.Errorf("encode command: %w", err)
	}
	ch := make(chan command.Result, 1)
	r.mu.Lock()
	r.pending[w.ID] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, w.ID)
		r.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(ctx, r.cfg.CommandTimeout)
	defer cancel()
	topic := mqtt.NewTopics(r.prefix, site).Cmd()
	tok := r.client.Publish(topic, 1, false, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("send %s to site %s: %w", c.Action, site, err)
		}
	case <-ctx.Done():
		return fmt.Errorf("send %s to site %s: broker did not acknowledge within %s", c.Action, site, r.cfg.CommandTimeout)
	}
	r.log.Info().Str("site", site).Str("alarm", alarm).Str("action", c.Action).Str("user", c.User).Str("id", w.ID).Msg("command sent")
	select {
	case res := <-ch:
		if res.OK {
			return nil
		}
		return classify(site, res.Error)
	case <-ctx.Done():
		return fmt.Errorf("site %s did not answer %s of %s within %s", site, c.Action, alarm, r.cfg.CommandTimeout)
	}
}

// classify maps a site's refusal (its cmd/result error text) to the API's
// status classes.
func classify(site, msg string) error {
	err := fmt.Errorf("site %s: %s", site, msg)
	switch {
	case strings.Contains(msg, "unknown alarm"):
		return fmt.Errorf("%w: %w", httpapi.ErrUnknownAlarm, err)
	case strings.HasPrefix(msg, "action:"), strings.HasPrefix(msg, "alarm:"), strings.HasPrefix(msg, "user:"),
		strings.HasPrefix(msg, "duration:"), strings.HasPrefix(msg, "comment:"), strings.HasPrefix(msg, "command "),
		strings.HasPrefix(msg, "one_shot:"),
		strings.Contains(msg, "shelve duration exceeds"), strings.Contains(msg, "out-of-service expiry exceeds"),
		strings.Contains(msg, "duration must be positive"),
		strings.Contains(msg, "comment required"):
		return fmt.Errorf("%w: %w", httpapi.ErrBadCommand, err)
	default:
		// Refused in the alarm's state, or the user is not allowed at the site.
		return fmt.Errorf("%w: %w", httpapi.ErrNotAllowed, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// backend adapts the Room to the HTTP API.
type backend Room

func (b *backend) Readings() []httpapi.Reading            { return b.st.readingsList() }
func (b *backend) Alarms() []httpapi.Alarm                { return b.st.alarmList() }
func (b *backend) Devices() []httpapi.Device              { return b.st.deviceList() }
func (b *backend) History(limit int) []httpapi.Transition { return b.st.historyTail(limit) }
func (b *backend) Ready() bool                            { return b.ready.Load() }
func (b *backend) FaultHolds() httpapi.Holds              { return b.st.faultHolds() }
func (b *backend) Command(ctx context.Context, c httpapi.Command) error {
	return (*Room)(b).command(ctx, c)
}
