package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway"
	"github.com/canary-gw/canary/gateway/broker"
	"github.com/canary-gw/canary/gateway/loadtest"
	"github.com/canary-gw/canary/simulator"
)

type benchFlags struct {
	devices, sensors int
	poll, duration   time.Duration
	warmup           time.Duration
	json             bool
	brokerURL        string
	dir              string
	maxOutbox        string
	cpuProfile       string
	memProfile       string
	http             bool
	tick             time.Duration
}

func newBenchCmd(g *globalFlags) *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench [--devices N] [--sensors N] [--poll D] [--duration D] [--json]",
		Short: "Run a load scenario on this machine and report readings/s, CPU, alarm latency and memory",
		Long: "bench runs the simulator (one Modbus TCP server per device on loopback), the gateway\n" +
			"(pollers, alarm engine, durable outbox, MQTT publisher) and an embedded MQTT broker in this\n" +
			"process, with a QoS 1 subscriber counting what was delivered. Every device has N float32\n" +
			"methane readings (ABCD, contiguous holding registers); sensor s00 of one device after another\n" +
			"is held across its 1.0 %vol alarm limit to time alarms from the poll response's arrival to\n" +
			"the event received back from the broker. CPU and peak memory are this whole process's.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			// The scenario's components narrate at info; a bench run is
			// quiet unless something goes wrong.
			if log.GetLevel() < zerolog.WarnLevel {
				log = log.Level(zerolog.WarnLevel)
			}
			logTimerSlack(log)
			res, err := runBench(cmd.Context(), f, log, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.json {
				return json.NewEncoder(out).Encode(res)
			}
			printBench(out, res)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.devices, "devices", 50, "Modbus TCP devices (one connection each)")
	fl.IntVar(&f.sensors, "sensors", 20, "float32 readings per device (1..62, one read request per poll)")
	fl.DurationVar(&f.poll, "poll", time.Second, "poll interval of every device")
	fl.DurationVar(&f.duration, "duration", 30*time.Second, "measured time, after the warm-up")
	fl.DurationVar(&f.warmup, "warmup", 5*time.Second, "time to connect and settle before measuring")
	fl.BoolVar(&f.json, "json", false, "print one JSON object")
	fl.StringVar(&f.brokerURL, "broker", "", "use this MQTT broker (for example a Mosquitto on loopback) instead of the embedded one")
	fl.StringVar(&f.dir, "dir", "", "directory for the outbox and the generated site config (default: a temporary one, removed after)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a pprof CPU profile of the measured window to this file")
	fl.StringVar(&f.memProfile, "memprofile", "", "write a pprof heap profile at the end of the measured window to this file")
	fl.DurationVar(&f.tick, "tick", 0, "alarm engine tick (time-driven transitions); 0 keeps the gateway's default")
	fl.BoolVar(&f.http, "http", false, "also run the HTTP API and UI (on a loopback port), as canary run does")
	fl.StringVar(&f.maxOutbox, "max-outbox", "256MiB", "outbox bound; past it the oldest readings are dropped")
	return cmd
}

func runBench(parent context.Context, f benchFlags, log zerolog.Logger, stderr io.Writer) (loadtest.Result, error) {
	var res loadtest.Result
	if f.duration <= 0 || f.warmup < 0 {
		return res, usageErrorf("bench: --duration must be > 0 and --warmup >= 0")
	}
	dir := f.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "canary-bench-")
		if err != nil {
			return res, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// Broker.
	brokerURL := f.brokerURL
	var brk *broker.Broker
	if brokerURL == "" {
		b, err := broker.New(broker.Options{Listen: "127.0.0.1:0", Log: log})
		if err != nil {
			return res, err
		}
		brk = b
		errc := make(chan error, 1)
		wg.Add(1)
		go func() { defer wg.Done(); errc <- b.Run(ctx) }()
		select {
		case <-b.Ready():
		case err := <-errc:
			return res, err
		}
		brokerURL = b.URL()
	}

	// The scenario's site: one file for the simulator and the gateway.
	ports, err := loadtest.FreePorts(f.devices)
	if err != nil {
		return res, err
	}
	sc := loadtest.Scenario{Site: "bench", Devices: f.devices, Sensors: f.sensors, Poll: f.poll, Ports: ports,
		BrokerURL: brokerURL, OutboxDir: filepath.Join(dir, "outbox"), MaxOutbox: f.maxOutbox}
	text, err := sc.SiteYAML()
	if err != nil {
		return res, usageError{fmt.Errorf("bench: %w", err)}
	}
	_ = os.RemoveAll(sc.OutboxDir) // a previous run's backlog is not this run's load
	path := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	site, _, err := configs.LoadSite(path)
	if err != nil {
		return res, fmt.Errorf("bench: generated site: %w", err)
	}
	simSite, err := simulator.LoadSite(path)
	if err != nil {
		return res, fmt.Errorf("bench: generated site: %w", err)
	}

	// Simulator.
	sim, err := simulator.New(simulator.Options{Site: simSite, Logger: log, MaxConns: 4 * f.devices})
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	simErr := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); simErr <- sim.Run(ctx) }()
	select {
	case <-sim.Ready():
	case err := <-simErr:
		return res, err
	}

	// Subscriber first, so that nothing the gateway publishes is missed.
	subscriber, err := loadtest.Subscribe(brokerURL, site.MQTT.TopicPrefix, site.Site, "bench-sub", 10*time.Second)
	if err != nil {
		return res, err
	}
	defer subscriber.Close()

	// Gateway.
	reg := prometheus.NewRegistry()
	var commitLat loadtest.Latencies
	gwOpts := gateway.Options{Site: site, Log: log, Registry: reg, NoHTTP: !f.http, TickEvery: f.tick,
		AlarmCommitted: func(at time.Time, _ int) { commitLat.Add(time.Since(at)) }}
	if f.http {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return res, fmt.Errorf("bench: http: %w", err)
		}
		gwOpts.HTTPListener = ln
	}
	gw, err := gateway.New(gwOpts)
	if err != nil {
		return res, err
	}
	gwCtx, stopGW := context.WithCancel(ctx)
	defer stopGW()
	gwErr := make(chan error, 1)
	go func() {
		err := gw.Run(gwCtx)
		if cerr := gw.Close(); err == nil {
			err = cerr
		}
		gwErr <- err
	}()

	fmt.Fprintf(stderr, "bench: %d devices × %d sensors every %s (%.0f readings/s offered), warm-up %s, measuring %s\n",
		f.devices, f.sensors, f.poll, float64(f.devices*f.sensors)/f.poll.Seconds(), f.warmup, f.duration)
	if err := sleepCtx(ctx, f.warmup, gwErr); err != nil {
		return res, err
	}

	// Measured window.
	_, r0, _, _ := subscriber.Counts()
	m0, _, _, _ := subscriber.Counts()
	subscriber.Alarm.Reset()
	commitLat.Reset()
	p0, err := loadtest.ReadProc(0)
	if err != nil {
		return res, err
	}
	var stopProf func()
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return res, err
		}
		stopProf = stop
		defer stop()
	}
	t0 := time.Now()
	holdCtx, stopHolds := context.WithCancel(ctx)
	holdsDone := make(chan struct{})
	go func() { defer close(holdsDone); driveAlarms(holdCtx, sim, f.devices, log) }()
	err = sleepCtx(ctx, f.duration, gwErr)
	stopHolds()
	<-holdsDone
	if err != nil {
		return res, err
	}
	elapsed := time.Since(t0)
	if stopProf != nil {
		stopProf()
	}
	p1, err := loadtest.ReadProc(0)
	if err != nil {
		return res, err
	}
	if f.memProfile != "" {
		if err := writeHeapProfile(f.memProfile); err != nil {
			return res, err
		}
	}
	m1, r1, _, bad := subscriber.Counts()
	backlog, _ := loadtest.MetricSum(reg, "canary_outbox_records")
	dropped, _ := loadtest.MetricSum(reg, "canary_outbox_dropped_readings_total")
	pollErrs, _ := loadtest.MetricSum(reg, "canary_device_poll_errors_total")
	if bad > 0 {
		fmt.Fprintf(stderr, "bench: %d undecodable messages\n", bad)
	}

	delivered := r1 - r0
	res = loadtest.Result{
		Devices: f.devices, Sensors: f.sensors, PollS: f.poll.Seconds(), Duration: elapsed.Seconds(),
		OfferedPerS:  float64(f.devices*f.sensors) / f.poll.Seconds(),
		ReadingsPerS: float64(delivered) / elapsed.Seconds(),
		Readings:     delivered, Messages: m1 - m0,
		CPUCores:    (p1.CPUSeconds - p0.CPUSeconds) / elapsed.Seconds(),
		AlarmP50ms:  ms(subscriber.Alarm.Percentile(50)),
		AlarmP99ms:  ms(subscriber.Alarm.Percentile(99)),
		AlarmMaxms:  ms(subscriber.Alarm.Percentile(100)),
		AlarmEvents: subscriber.Alarm.Count(),
		CommitP50ms: ms(commitLat.Percentile(50)),
		CommitP99ms: ms(commitLat.Percentile(99)),
		PeakRSS:     p1.PeakRSS,
		Backlog:     int(backlog),
		Dropped:     uint64(dropped),
		PollErrors:  uint64(pollErrs),
	}
	if delivered > 0 {
		res.CPUPer1000 = (p1.CPUSeconds - p0.CPUSeconds) / float64(delivered) * 1000
	}
	if brk != nil && brk.Dropped() > 0 {
		fmt.Fprintf(stderr, "bench: the embedded broker dropped %d messages\n", brk.Dropped())
	}
	stopGW()
	select {
	case err := <-gwErr:
		if err != nil && !errors.Is(err, context.Canceled) {
			return res, err
		}
	case <-time.After(30 * time.Second):
		return res, errors.New("bench: gateway did not stop within 30s")
	}
	return res, nil
}

// driveAlarms holds sensor s00 of one device after another above its
// high limit (1.0 %vol) and back below it, so every step is one activate or
// return event. A device flips at most every 10 s, far from the chattering
// threshold.
func driveAlarms(ctx context.Context, sim *simulator.Simulator, devices int, log zerolog.Logger) {
	every := max(50*time.Millisecond, 10*time.Second/time.Duration(devices))
	t := time.NewTicker(every)
	defer t.Stop()
	high := make([]bool, devices)
	for i := 0; ; i = (i + 1) % devices {
		select {
		case <-ctx.Done():
			for d, h := range high {
				if h {
					_ = sim.Hold(loadtest.DeviceID(d), loadtest.SensorID(0), 0.2)
				}
			}
			return
		case <-t.C:
		}
		v := 1.2
		if high[i] {
			v = 0.2
		}
		high[i] = !high[i]
		if err := sim.Hold(loadtest.DeviceID(i), loadtest.SensorID(0), v); err != nil {
			log.Error().Err(err).Msg("bench hold")
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration, gwErr <-chan error) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-gwErr:
		return fmt.Errorf("bench: gateway stopped early: %w", err)
	case <-t.C:
		return nil
	}
}

func startCPUProfile(path string) (stop func(), err error) {
	s, err := startToFile(path, "cpu profile", pprof.StartCPUProfile, pprof.StopCPUProfile)
	if err != nil {
		return nil, err
	}
	return func() { _ = s() }, nil
}

// startToFile creates path and starts writing to it (start: a CPU profile
// or an execution trace); the returned stop, safe to call more than once,
// stops it and closes the file. what names it in errors.
func startToFile(path, what string, start func(io.Writer) error, stop func()) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var once sync.Once
	var closeErr error
	return func() error {
		once.Do(func() {
			stop()
			if err := f.Close(); err != nil {
				closeErr = fmt.Errorf("%s: %w", what, err)
			}
		})
		return closeErr
	}, nil
}

func writeHeapProfile(path string) error {
	pf, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer pf.Close()
	if err := pprof.Lookup("heap").WriteTo(pf, 0); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printBench(w io.Writer, r loadtest.Result) {
	fmt.Fprintf(w, "scenario        %d devices × %d sensors every %gs = %.0f readings/s offered, %.1fs measured\n",
		r.Devices, r.Sensors, r.PollS, r.OfferedPerS, r.Duration)
	fmt.Fprintf(w, "delivered       %.0f readings/s (%d readings in %d messages, QoS 1, received back from the broker)\n",
		r.ReadingsPerS, r.Readings, r.Messages)
	fmt.Fprintf(w, "cpu             %.3f ms per 1000 readings, %.1f%% of one core (whole process: simulator, gateway, broker, subscriber)\n",
		r.CPUPer1000*1000, r.CPUCores*100)
	fmt.Fprintf(w, "alarm latency   p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d events (poll response → event received from the broker)\n",
		r.AlarmP50ms, r.AlarmP99ms, r.AlarmMaxms, r.AlarmEvents)
	fmt.Fprintf(w, "alarm commit    p50 %.2f ms, p99 %.2f ms (poll response → alarm committed to the outbox, handed to the publisher)\n",
		r.CommitP50ms, r.CommitP99ms)
	sensors := r.Devices * r.Sensors
	fmt.Fprintf(w, "memory          peak RSS %.1f MB (%.0f bytes per sensor)\n",
		float64(r.PeakRSS)/1e6, float64(r.PeakRSS)/float64(max(sensors, 1)))
	fmt.Fprintf(w, "outbox          %d records waiting at the end, %d readings records dropped; %d poll errors\n",
		r.Backlog, r.Dropped, r.PollErrors)
}
