package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/configerr"
)

// Options configure a Server.
type Options struct {
	// Config is the validated `http:` section (listen, anonymous; its users
	// are given resolved in Users).
	Config configs.HTTP
	// Users may log in; see LoadUsers.
	Users []User
	// Backend is the gateway state. Required.
	Backend Backend
	// Registry receives the HTTP metrics and is what /metrics serves, so the
	// gateway registers its own collectors on the same registry. If nil, a
	// private registry is made.
	Registry *prometheus.Registry
	// Logger; the zero value logs nothing.
	Logger zerolog.Logger
	// Site and SiteName label the UI.
	Site     string
	SiteName string
	// StaleAfter marks a reading stale (greyed, not live) when it is older
	// than this. Default 30s, the longest comm timeout coal profiles allow.
	StaleAfter time.Duration
	// TrendWindow and TrendPoints bound the per-sensor trend kept for the
	// charts. Defaults 15m and 1800.
	TrendWindow time.Duration
	TrendPoints int
	// SessionTTL is how long a UI login lasts. Default 12h (a shift).
	SessionTTL time.Duration
	// MaxBodyBytes bounds a request body. Default 16 KiB.
	MaxBodyBytes int64
	// Heartbeat is the event-stream keep-alive period. Default 15s.
	Heartbeat time.Duration
	// ShutdownGrace bounds a clean stop. Default 5s.
	ShutdownGrace time.Duration
	// Now is the clock; default time.Now. Tests set it.
	Now func() time.Time
}

// Server is the HTTP API and UI.
type Server struct {
	opts     Options
	backend  Backend
	auth     *authenticator
	reg      *prometheus.Registry
	metrics  *metrics
	hub      *hub
	trends   *trends
	log      zerolog.Logger
	handler  http.Handler
	now      func() time.Time
	stopping chan struct{}
	// stopCtx ends with stopping (context.AfterFunc for writes under way).
	stopCtx  context.Context
	stopAll  context.CancelFunc
	stopOnce sync.Once
	ready    atomic.Bool
	// publicOrigins and publicHosts: http.public_origins, as origins and
	// as the host names a proxy may pass through.
	publicOrigins, publicHosts map[string]struct{}
}

// New builds a Server; it does not listen (see Run and Serve).
func New(opts Options) (*Server, error) {
	if opts.Backend == nil {
		return nil, errors.New("httpapi: Backend is required")
	}
	opts.Config.SetDefaults()
	// Warnings (a non-loopback listen with anonymous viewers) do not stop
	// the server; the config loader has printed them.
	if err := opts.Config.Validate(); configerr.HasErrors(err) {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 30 * time.Second
	}
	if opts.TrendWindow <= 0 {
		opts.TrendWindow = 15 * time.Minute
	}
	if opts.TrendPoints <= 0 {
		opts.TrendPoints = 1800
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 16 << 10
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	auth, err := newAuthenticator(opts.Users, opts.SessionTTL)
	if err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	s := &Server{
		opts:     opts,
		backend:  opts.Backend,
		auth:     auth,
		reg:      opts.Registry,
		metrics:  m,
		hub:      newHub(streamBudget),
		trends:   newTrends(opts.TrendWindow, opts.TrendPoints),
		log:      opts.Logger.With().Str("component", "httpapi").Logger(),
		now:      opts.Now,
		stopping: make(chan struct{}),
	}
	s.publicOrigins, s.publicHosts = map[string]struct{}{}, map[string]struct{}{}
	for _, o := range opts.Config.PublicOrigins {
		origin, host, err := configs.PublicOrigin(o) // checked by Validate
		if err == nil {
			s.publicOrigins[origin], s.publicHosts[host] = struct{}{}, struct{}{}
		}
	}
	s.stopCtx, s.stopAll = context.WithCancel(context.Background())
	s.ready.Store(true)
	s.handler = s.routes()
	return s, nil
}

// Handler returns the HTTP handler (for tests and for embedding in another
// server).
func (s *Server) Handler() http.Handler { return s.handler }

// Run listens on Config.Listen and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Config.Listen)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", s.opts.Config.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then stops: /readyz turns 503,
// event streams end, and in-flight requests get ShutdownGrace to finish.
// It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	handler := s.handler
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		handler = loopbackHostOnly(handler, s.publicHosts)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A client that stops reading an answer must not hold its
		// goroutine and socket for ever (event streams set their own
		// deadline before every write).
		WriteTimeout:   2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 32 << 10,
		// net/http's own complaints (TLS probes, malformed requests) go to
		// the injected logger, not to stderr.
		ErrorLog: log.New(s.log.With().Str("source", "net/http").Logger(), "", 0),
	}
	s.log.Info().Str("addr", ln.Addr().String()).Msg("http listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	s.stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("http shutdown: %w", err)
	}
	s.log.Info().Msg("http stopped")
	return nil
}

// stop flips readiness and ends event streams, which http.Server.Shutdown
// would otherwise wait on forever.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		s.ready.Store(false)
		close(s.stopping)
		s.stopAll()
	})
}

// route is one path's handlers per method.
type route struct {
	name    string
	methods map[string]http.HandlerFunc
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern, name string, methods map[string]http.HandlerFunc) {
		rt := route{name: name, methods: methods}
		mux.Handle(pattern, s.instrument(name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h, ok := rt.methods[r.Method]
			// HEAD works wherever GET does, except on the endless stream.
			if !ok && r.Method == http.MethodHead && rt.name != "events" {
				h, ok = rt.methods[http.MethodGet]
			}
			if !ok {
				allow := make([]string, 0, len(rt.methods))
				for m := range rt.methods {
					allow = append(allow, m)
				}
				w.Header().Set("Allow", strings.Join(sortStrings(allow), ", "))
				writeError(w, http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(sortStrings(allow), ", "))
				return
			}
			h(w, r)
		})))
	}
	read := func(h http.HandlerFunc) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{http.MethodGet: s.requireRead(h)}
	}
	handle("/api/v1/readings", "readings", read(s.handleReadings))
	handle("/api/v1/alarms", "alarms", read(s.handleAlarms))
	handle("/api/v1/devices", "devices", read(s.handleDevices))
	handle("/api/v1/history", "history", read(s.handleHistory))
	handle("/api/v1/holds", "holds", read(s.handleHolds))
	handle("/api/v1/trends/{device}/{sensor}", "trends", read(s.handleTrend))
	handle("/api/v1/info", "info", map[string]http.HandlerFunc{http.MethodGet: s.handleInfo})
	handle("/api/v1/events", "events", read(s.handleEvents))
	handle("/api/v1/alarms/{id}/{action}", "command", map[string]http.HandlerFunc{http.MethodPost: s.handleCommand})
	handle("/api/v1/session", "session", map[string]http.HandlerFunc{
		http.MethodPost:   s.handleLogin,
		http.MethodGet:    s.handleWhoAmI,
		http.MethodDelete: s.handleLogout,
	})
	handle("/api/", "api_unknown", map[string]http.HandlerFunc{
		http.MethodGet:    s.apiNotFound,
		http.MethodPost:   s.apiNotFound,
		http.MethodPut:    s.apiNotFound,
		http.MethodDelete: s.apiNotFound,
	})
	handle("/metrics", "metrics", map[string]http.HandlerFunc{
		http.MethodGet: promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}).ServeHTTP,
	})
	handle("/healthz", "healthz", map[string]http.HandlerFunc{http.MethodGet: func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}})
	handle("/readyz", "readyz", map[string]http.HandlerFunc{http.MethodGet: s.handleReady})
	handle("/", "ui", map[string]http.HandlerFunc{http.MethodGet: s.handleUI})
	return securityHeaders(mux)
}

func sortStrings(ss []string) []string {
	for i := 1; i < len(ss); i++ {
		for j := i; j > 0 && ss[j] < ss[j-1]; j-- {
			ss[j], ss[j-1] = ss[j-1], ss[j]
		}
	}
	return ss
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
		if name != "events" {
			s.metrics.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}
	})
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, errorBody{Error: fmt.Sprintf(format, args...)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"encode response"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func (s *Server) apiNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "no such endpoint: %s", r.URL.Path)
}

// challenge answers 401. A request that tried a bearer token gets only the
// Bearer challenge, so a browser does not pop up its own password prompt
// over the UI's login form when a session expires.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request, msg string) {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "bearer") || r.Header.Get("X-Canary-UI") != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="canary"`)
	} else {
		w.Header().Add("WWW-Authenticate", `Basic realm="canary", charset="UTF-8"`)
		w.Header().Add("WWW-Authenticate", `Bearer realm="canary"`)
	}
	s.metrics.authFailures.WithLabelValues("unauthenticated").Inc()
	writeError(w, http.StatusUnauthorized, "%s", msg)
}

// authorize returns the request's principal, or writes 401/403 and
// returns false. minRole "" means anonymous access per config.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, minRole string) (principal, bool) {
	p, res, _ := s.auth.authenticate(r, s.now())
	switch res {
	case authBusy:
		tooBusy(w)
		return principal{}, false
	case authBad:
		s.challenge(w, r, "invalid credentials")
		return principal{}, false
	case authNone:
		if minRole == configs.RoleViewer && s.opts.Config.Anonymous == configs.RoleViewer {
			return principal{Role: configs.RoleViewer}, true
		}
		s.challenge(w, r, "authentication required (HTTP basic or bearer token)")
		return principal{}, false
	}
	if roleRank(p.Role) < roleRank(minRole) {
		s.metrics.authFailures.WithLabelValues("forbidden").Inc()
		writeError(w, http.StatusForbidden, "user %s has role %s; this needs %s", p.User, p.Role, minRole)
		return principal{}, false
	}
	return p, true
}

func (s *Server) requireRead(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.authorize(w, r, configs.RoleViewer); ok {
			h(w, r)
		}
	}
}

func (s *Server) fillReading(r *Reading, now time.Time) {
	if r.TS.IsZero() {
		r.Stale = true
		return
	}
	age := now.Sub(r.TS)
	if !r.Received.IsZero() {
		// The older of the two: by ts, a value delivered late (an
		// outbox backlog, a retained message) is as old as it is; by
		// receipt, on the monotonic clock, a step of the wall clock
		// back, or a sender's clock ahead, cannot make it fresh.
		age = max(age, now.Sub(r.Received))
	}
	r.AgeSeconds = max(age.Seconds(), 0)
	if age > s.opts.StaleAfter {
		r.Stale = true
	}
}

func (s *Server) handleReadings(w http.ResponseWriter, _ *http.Request) {
	rs := s.backend.Readings()
	now := s.now()
	out := make([]Reading, len(rs))
	for i, r := range rs {
		s.fillReading(&r, now)
		out[i] = r
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAlarms(w http.ResponseWriter, _ *http.Request) {
	as := s.backend.Alarms()
	out := make([]Alarm, 0, len(as))
	for _, a := range as {
		if a.State != StateNormal {
			out = append(out, a)
		}
	}
	SortAlarms(out)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDevices(w http.ResponseWriter, _ *http.Request) {
	ds := s.backend.Devices()
	if ds == nil {
		ds = []Device{}
	}
	writeJSON(w, http.StatusOK, ds)
}

func (s *Server) handleHolds(w http.ResponseWriter, _ *http.Request) {
	h := s.backend.FaultHolds()
	if h.Holds == nil {
		h.Holds = []Transition{}
	}
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	limit := 200
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "limit %q: want a number from 1 to 10000", v)
			return
		}
		limit = n
	}
	h := s.backend.History(limit)
	if h == nil {
		h = []Transition{}
	}
	writeJSON(w, http.StatusOK, h)
}

// idRE is ^[a-z0-9][a-z0-9_.-]{0,199}$ with the length checked apart
// (validID): the counted repetition compiled to 200 copies of the class,
// 171 KB and 2 200 allocations at every start of every command and 72 KB
// kept, where this is 3 KB.
var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// validID reports whether s is a device or sensor id of at most 200 bytes.
func validID(s string) bool { return len(s) <= 200 && idRE.MatchString(s) }

func (s *Server) handleTrend(w http.ResponseWriter, r *http.Request) {
	dev, sen := r.PathValue("device"), r.PathValue("sensor")
	if !validID(dev) || !validID(sen) {
		writeError(w, http.StatusBadRequest, "device and sensor must be ids ([a-z0-9][a-z0-9_-]*)")
		return
	}
	type trend struct {
		Device string       `json:"device"`
		Sensor string       `json:"sensor"`
		Unit   string       `json:"unit"`
		Limits []Limit      `json:"limits"`
		Points []TrendPoint `json:"points"`
	}
	t := trend{Device: dev, Sensor: sen, Limits: []Limit{}, Points: s.trends.get(dev, sen)}
	found := false
	for _, rd := range s.backend.Readings() {
		if rd.Device == dev && rd.Sensor == sen {
			found = true
			t.Unit = rd.Unit
			if rd.Limits != nil {
				t.Limits = rd.Limits
			}
			break
		}
	}
	if !found {
		writeError(w, http.StatusNotFound, "unknown sensor %s/%s", dev, sen)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) handleInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"site":          s.opts.Site,
		"name":          s.opts.SiteName,
		"anonymous":     s.opts.Config.Anonymous,
		"stale_after_s": s.opts.StaleAfter.Seconds(),
	})
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stopping"})
		return
	}
	if !s.backend.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// tooBusy answers a request that found every password-check slot taken.
func tooBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "2")
	writeError(w, http.StatusTooManyRequests, "too many password checks at once; retry shortly (or log in once and use the session token)")
}

// loopbackHostOnly guards a server that listens on loopback against DNS
// rebinding: a web page whose name resolves to 127.0.0.1 would otherwise
// reach it as "same origin" and read the site's readings and alarms. Only
// an IP address or localhost may name this server, or a host of
// http.public_origins (a reverse proxy that passes its Host through).
func loopbackHostOnly(next http.Handler, public map[string]struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		// By name, whatever the port: rebinding is a matter of names.
		if _, ok := public[strings.ToLower(host)]; ok {
			next.ServeHTTP(w, r)
			return
		}
		if host != "localhost" && net.ParseIP(host) == nil {
			writeError(w, http.StatusMisdirectedRequest, "host %q: this server listens on loopback and answers only to an IP address or localhost", r.Host)
			return
		}
		next.ServeHTTP(w, r)
	})
}
