package simulator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/internal/configerr"
	"github.com/rs/zerolog"
)

// DefaultControlAddr is where `canary sim` serves its control API.
const DefaultControlAddr = "127.0.0.1:5021"

// Options configures a Simulator.
type Options struct {
	// Site is the site config whose devices are simulated. Its optional
	// `simulation:` section adds seed, overrides and scenarios.
	Site *configs.Site
	// Scenarios are added to (and replace by name) those of the site.
	Scenarios []configs.Scenario
	// Seed, when set, replaces the site's simulation seed.
	Seed *int64
	// Speed, when > 0, replaces the site's time compression.
	Speed float64
	// ControlAddr is the control API's listen address; empty serves none
	// (an in-process user can mount Handler itself).
	ControlAddr string
	// ControlToken, when set, must come as "Authorization: Bearer <token>"
	// on every state-changing control request.
	ControlToken string
	// Localize serves every TCP endpoint on 127.0.0.1 at a free port
	// instead of the url's host and port, so a plant's site file can be
	// tried on a laptop; DeviceURL and the control API show where.
	Localize bool
	// MaxConns bounds the connections per TCP endpoint; default 256.
	MaxConns int
	// IdleTimeout closes a TCP connection that sent nothing for this long;
	// default 2 minutes (above any sane poll period).
	IdleTimeout time.Duration
	Logger      zerolog.Logger
}

// Simulator serves a site's devices. Construct with New, then Run.
type Simulator struct {
	opts      Options
	log       zerolog.Logger
	seed      int64
	devices   []*device
	byID      map[string]*device
	endpoints []*endpoint

	mu        sync.Mutex
	clock     clock
	scenarios map[string]configs.Scenario
	running   map[string]*runningScenario
	requests  uint64
	seq       uint64 // stamps holds and writes, see paintOrder

	ready       chan struct{}
	controlAddr string
}

type runningScenario struct {
	name    string
	start   time.Duration
	effects []*effect
}

// New builds a simulator for a site: it checks every device and sensor and
// builds the physics, and does not touch the network.
func New(opts Options) (*Simulator, error) {
	if opts.Site == nil {
		return nil, errors.New("simulator: no site config")
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 256
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 2 * time.Minute
	}
	sim := opts.Site.Simulation
	s := &Simulator{
		opts:      opts,
		log:       opts.Logger.With().Str("component", "simulator").Str("site", opts.Site.Site).Logger(),
		byID:      map[string]*device{},
		scenarios: map[string]configs.Scenario{},
		running:   map[string]*runningScenario{},
		ready:     make(chan struct{}),
	}
	speed := 1.0
	if sim != nil {
		if err := sim.Validate(); err != nil {
			return nil, configerr.Prefix("simulation", err)
		}
		s.seed = sim.Seed
		if sim.Speed > 0 {
			speed = sim.Speed
		}
	}
	if opts.Seed != nil {
		s.seed = *opts.Seed
	}
	if opts.Speed > 0 {
		speed = opts.Speed
	}
	if err := checkSpeed(speed); err != nil {
		return nil, err
	}
	s.clock = newClock(time.Now, speed)

	eps := map[link]*endpoint{}
	for i, dc := range opts.Site.Devices {
		if _, dup := s.byID[dc.ID]; dup {
			return nil, fmt.Errorf("devices[%d]: device %s defined twice", i, dc.ID)
		}
		d, err := newDevice(dc, sim, s.seed)
		if err != nil {
			return nil, fmt.Errorf("devices[%d]: %w", i, err)
		}
		for _, w := range d.warnings {
			s.log.Warn().Str("device", d.id).Msg(w + " (served, the sensor laid out last wins on shared registers)")
		}
		l, err := parseLink(dc.URL)
		if err != nil {
			return nil, fmt.Errorf("devices[%d] %s: %w", i, dc.ID, err)
		}
		ep := eps[l]
		if ep == nil {
			ep = &endpoint{link: l, units: map[uint8]*device{}, baud: dc.Baud}
			if opts.Localize && l.scheme != "rtu" {
				ep.listen = "127.0.0.1:0"
			}
			eps[l] = ep
			s.endpoints = append(s.endpoints, ep)
		}
		if other := ep.units[d.unit]; other != nil {
			return nil, fmt.Errorf("devices[%d] %s: unit %d at %s is already device %s", i, dc.ID, d.unit, dc.URL, other.id)
		}
		if l.scheme == "rtu" && (d.unit < 1 || d.unit > 247) {
			return nil, fmt.Errorf("devices[%d] %s: unit %d: a serial line takes 1..247", i, dc.ID, d.unit)
		}
		d.endpoint = ep
		ep.units[d.unit] = d
		ep.devices = append(ep.devices, d)
		s.devices = append(s.devices, d)
		s.byID[d.id] = d
	}
	if sim != nil {
		for _, sd := range sim.Devices {
			if s.byID[sd.Device] == nil {
				return nil, fmt.Errorf("simulation device %s: no such device", sd.Device)
			}
		}
	}
	for _, sc := range builtinScenarios(opts.Site) {
		s.scenarios[sc.Name] = sc
	}
	var defined []configs.Scenario
	if sim != nil {
		defined = append(defined, sim.Scenarios...)
	}
	defined = append(defined, opts.Scenarios...)
	for i, sc := range defined {
		if err := s.checkScenario(sc); err != nil {
			return nil, fmt.Errorf("scenarios[%d] %s: %w", i, sc.Name, err)
		}
		s.scenarios[sc.Name] = sc
	}
	return s, nil
}

// Run serves every endpoint and the control API until ctx is done, then
// closes them all and waits for every goroutine it started.
func (s *Simulator) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(s.endpoints)+1)
	var opened []*endpoint
	fail := func(err error) error {
		cancel()
		for _, ep := range opened {
			ep.close()
		}
		wg.Wait()
		return err
	}
	for _, ep := range s.endpoints {
		if err := ep.open(s); err != nil {
			return fail(fmt.Errorf("serve %s://%s: %w", ep.link.scheme, ep.link.target, err))
		}
		opened = append(opened, ep)
		s.log.Info().Str("url", ep.link.scheme+"://"+ep.link.target).Str("addr", ep.addr).Int("devices", len(ep.devices)).Msg("serving")
	}
	var srv *http.Server
	if s.opts.ControlAddr != "" {
		ln, err := net.Listen("tcp", s.opts.ControlAddr)
		if err != nil {
			return fail(fmt.Errorf("control api listen %s: %w", s.opts.ControlAddr, err))
		}
		s.controlAddr = ln.Addr().String()
		srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("control api: %w", err)
			}
		}()
		s.log.Info().Str("addr", s.controlAddr).Msg("control api listening")
	}
	for _, ep := range opened {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ep.serve(ctx, s); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("serve %s: %w", ep.addr, err)
			}
		}()
	}
	close(s.ready)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
	}
	for _, ep := range opened {
		ep.close()
	}
	wg.Wait()
	s.log.Info().Msg("stopped")
	return err
}

// Ready is closed once every endpoint and the control API listen.
func (s *Simulator) Ready() <-chan struct{} { return s.ready }

// ControlAddr is the control API's listening address (after Ready), e.g.
// "127.0.0.1:5021"; its base URL is http://ADDR/api/v1.
func (s *Simulator) ControlAddr() string { return s.controlAddr }

// DeviceURL is the url a client reaches a device at (after Ready): the
// listening address for tcp:// and rtuovertcp:// (port 0 resolved), the
// pseudo-terminal for rtu://.
func (s *Simulator) DeviceURL(id string) (string, error) {
	d := s.byID[id]
	if d == nil {
		return "", fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	return d.endpoint.url(), nil
}

// ErrNotFound is returned for an unknown device, sensor or scenario.
var ErrNotFound = errors.New("not found")

// ErrInvalid is returned for a bad value, state or fault setting.
var ErrInvalid = errors.New("invalid")

func (s *Simulator) sensor(device, sensorID string) (*sensor, error) {
	d := s.byID[device]
	if d == nil {
		return nil, fmt.Errorf("device %s: %w", device, ErrNotFound)
	}
	sn := d.byID[sensorID]
	if sn == nil {
		return nil, fmt.Errorf("sensor %s/%s: %w", device, sensorID, ErrNotFound)
	}
	return sn, nil
}

// Hold holds a sensor at a value (in engineering units) until Release.
// The value must be one the sensor's encoding carries: encoded and decoded
// again it must come back within the encoding's resolution (half a step of
// an integer type); else the error (ErrInvalid) names the range it carries.
// A float type carries NaN and ±Inf too.
func (s *Simulator) Hold(device, sensorID string, v float64) error {
	sn, err := s.sensor(device, sensorID)
	if err != nil {
		return err
	}
	if err := sn.shape.carries(v); err != nil {
		return fmt.Errorf("hold %s/%s: %w: %w", device, sensorID, ErrInvalid, err)
	}
	s.mu.Lock()
	s.seq++
	sn.held, sn.written, sn.stamp = &v, nil, s.seq
	s.mu.Unlock()
	return nil
}

// Release hands a held or written sensor back to the physics.
func (s *Simulator) Release(device, sensorID string) error {
	sn, err := s.sensor(device, sensorID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	sn.held, sn.written, sn.stamp = nil, nil, 0
	s.mu.Unlock()
	return nil
}

// Value is a sensor's current engineering value and its source (physics,
// scenario, held or written).
func (s *Simulator) Value(device, sensorID string) (float64, string, error) {
	sn, err := s.sensor(device, sensorID)
	if err != nil {
		return 0, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, src := sn.valueAt(s.clock.now())
	return v, src, nil
}

// SetState sets a device online, offline or fault.
func (s *Simulator) SetState(device, state string) error {
	d := s.byID[device]
	if d == nil {
		return fmt.Errorf("device %s: %w", device, ErrNotFound)
	}
	if err := checkState(state); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	s.mu.Lock()
	d.state = state
	s.mu.Unlock()
	s.log.Info().Str("device", device).Str("state", state).Msg("device state set")
	return nil
}

// SetFaults replaces a device's link faults (the zero value clears them).
func (s *Simulator) SetFaults(device string, f configs.SimFaults) error {
	d := s.byID[device]
	if d == nil {
		return fmt.Errorf("device %s: %w", device, ErrNotFound)
	}
	if err := checkFaults(f); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	s.mu.Lock()
	d.faults = f
	s.mu.Unlock()
	return nil
}

// Now is the simulated time since the simulator was built.
func (s *Simulator) Now() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock.now()
}

// SetClock sets the simulated time and its speed (simulated seconds per
// real second; 0 pauses it, which makes reads exactly reproducible).
func (s *Simulator) SetClock(t time.Duration, speed float64) error {
	if t < 0 {
		return fmt.Errorf("clock: %w: time and speed must not be negative", ErrInvalid)
	}
	if err := checkSpeed(speed); err != nil {
		return fmt.Errorf("clock: %w: %w", ErrInvalid, err)
	}
	s.mu.Lock()
	s.clock.set(t, speed)
	s.mu.Unlock()
	return nil
}

// Requests is the number of requests addressed to a simulated unit so far.
func (s *Simulator) Requests() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// clock is simulated time: piecewise linear in real time.
type clock struct {
	real     func() time.Time
	realBase time.Time
	simBase  time.Duration
	speed    float64
}

func newClock(real func() time.Time, speed float64) clock {
	return clock{real: real, realBase: real(), speed: speed}
}

// maxClock is where simulated time stops: just short of the largest
// time.Duration (292 years), so that it never wraps negative.
const maxClock = time.Duration(math.MaxInt64 - 1<<20)

func (c *clock) now() time.Duration {
	d := float64(c.real().Sub(c.realBase)) * c.speed
	if c.simBase >= maxClock || d >= float64(maxClock-c.simBase) {
		return maxClock
	}
	return c.simBase + time.Duration(d)
}

// checkSpeed refuses a clock speed that is negative, not a number, or
// above configs.MaxSimSpeed.
func checkSpeed(speed float64) error {
	if speed < 0 {
		return fmt.Errorf("speed %v must not be negative", speed)
	}
	if !(speed <= configs.MaxSimSpeed) {
		return fmt.Errorf("speed %v: want at most %.0f simulated seconds per real second (0 pauses)", speed, configs.MaxSimSpeed)
	}
	return nil
}

func (c *clock) set(t time.Duration, speed float64) {
	c.simBase, c.realBase, c.speed = t, c.real(), speed
}

// sortedScenarioNames lists the defined scenarios.
func (s *Simulator) sortedScenarioNames() []string {
	names := make([]string, 0, len(s.scenarios))
	for n := range s.scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
