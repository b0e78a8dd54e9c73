package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway"
	"github.com/canary-gw/canary/gateway/broker"
	"github.com/canary-gw/canary/gateway/httpapi"
	"github.com/canary-gw/canary/gateway/ingest"
	"github.com/canary-gw/canary/gateway/loadtest"
	"github.com/canary-gw/canary/simulator"
)

// The demo's fixed choices, documented in docs/demo.md.
const (
	demoUser     = "operator"
	demoScenario = "methane-leak"
	demoClientID = "canary-demo"
)

type demoFlags struct {
	listen        string
	data          string
	influxURL     string
	influxBucket  string
	influxOrg     string
	incidentAfter time.Duration
}

func newDemoCmd(g *globalFlags) *cobra.Command {
	f := demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo [--listen ADDR] [--data DIR] [--influx-url URL]",
		Short: "Run the whole system in one process: simulator, broker, gateway, control room",
		Long: "demo runs the demo site (configs/demo.yaml, built in) with no hardware and no servers:\n" +
			"the simulator serves its Modbus devices, an embedded MQTT broker carries the topics,\n" +
			"the gateway polls, raises alarms and runs the power-cut interlock, and the control-room\n" +
			"UI listens on --listen. A few seconds after start it stages a methane leak that spreads\n" +
			"along the face, escalates to high and high_high and trips the power cut.\n" +
			"It prints the UI address and the demo operator's password (new on every run).\n" +
			"With --influx-url it also writes readings and alarms into that InfluxDB\n" +
			"(token from " + configs.InfluxTokenEnv + " if needed). Ctrl-C stops it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// People run the demo in a terminal: readable logs unless asked otherwise.
			if fl := cmd.Flag("log-format"); fl != nil && !fl.Changed {
				g.logFormat = "console"
			}
			if fl := cmd.Flag("log-level"); fl != nil && !fl.Changed {
				g.logLevel = "warn"
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), log, f)
		},
	}
	cmd.Flags().StringVar(&f.listen, "listen", configs.DefaultHTTPListen, "control-room UI and API listen address")
	cmd.Flags().StringVar(&f.data, "data", "", "directory for the outbox and alarm state (default: a temporary directory, removed at exit)")
	cmd.Flags().StringVar(&f.influxURL, "influx-url", "", "also ingest into this InfluxDB (e.g. http://127.0.0.1:8086)")
	cmd.Flags().StringVar(&f.influxBucket, "influx-bucket", "canary/autogen", "InfluxDB bucket (1.8: database/retention-policy; the database must exist)")
	cmd.Flags().StringVar(&f.influxOrg, "influx-org", "", "InfluxDB organisation (2.x only)")
	cmd.Flags().DurationVar(&f.incidentAfter, "incident-after", 5*time.Second, "when the staged methane leak starts; negative: never")
	return cmd
}

// demoSite loads the built-in demo site and points it at this run's
// pieces: the Modbus endpoints move to free loopback ports (so the demo
// never collides with a real device server), the outbox into dataDir, and
// the one demo operator gets the run's password.
func demoSite(dataDir, passwordHash string) (*configs.Site, error) {
	var site configs.Site
	if _, err := configs.Parse("demo.yaml (built in)", configs.DemoYAML(), &site); err != nil {
		return nil, fmt.Errorf("demo site: %w", err)
	}
	// One port per distinct endpoint, all asked for at once: the kernel
	// may give the same free port to two listens in a row, and two
	// simulated endpoints on one port would stop the demo.
	var urls []string
	moved := map[string]string{}
	for _, d := range site.Devices {
		if _, ok := moved[d.URL]; !ok {
			moved[d.URL] = ""
			urls = append(urls, d.URL)
		}
	}
	ports, err := loadtest.FreePorts(len(urls))
	if err != nil {
		return nil, fmt.Errorf("demo site: %w", err)
	}
	for i, u := range urls {
		moved[u] = fmt.Sprintf("tcp://127.0.0.1:%d", ports[i])
	}
	for i := range site.Devices {
		site.Devices[i].URL = moved[site.Devices[i].URL]
	}
	site.Outbox.Dir = dataDir
	site.MQTT.ClientID = demoClientID
	site.HTTP.Users = []configs.HTTPUser{{Name: demoUser, Role: configs.RoleOperator, PasswordHash: passwordHash}}
	return &site, nil
}

// demoPassword is 12 random characters from an alphabet without look-alikes.
func demoPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go >= 1.24)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:4]) + "-" + string(b[4:8]) + "-" + string(b[8:])
}

func runDemo(ctx context.Context, out io.Writer, log zerolog.Logger, f demoFlags) error {
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return usageErrorf("demo: --listen %q is not host:port", f.listen)
	}
	dataDir := f.data
	if dataDir == "" {
		d, err := os.MkdirTemp("", "canary-demo-")
		if err != nil {
			return fmt.Errorf("demo: data dir: %w", err)
		}
		defer os.RemoveAll(d)
		dataDir = d
	}
	password := demoPassword()
	hash, err := httpapi.HashPassword(password)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	site, err := demoSite(dataDir, string(hash))
	if err != nil {
		return err
	}

	// Listen for the UI now: a busy port is reported before anything starts.
	httpLn, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("demo: listen %s (choose another with --listen): %w", f.listen, err)
	}
	defer httpLn.Close()

	brk, err := broker.New(broker.Options{Log: log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	sim, err := simulator.New(simulator.Options{Site: site, ControlAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		return fmt.Errorf("demo: simulator: %w", err)
	}

	// The broker and the simulator outlive the gateway: it stops first, so
	// its last batches and its offline status still reach the broker.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	infraCtx, stopInfra := context.WithCancel(context.WithoutCancel(ctx))
	defer stopInfra()
	grp, gctx := errgroup.WithContext(ctx)
	var apps sync.WaitGroup
	// fail stops everything started so far and waits for it.
	fail := func(err error) error {
		cancel()
		return joinErr(grp.Wait(), err)
	}
	grp.Go(func() error { return brk.Run(infraCtx) })
	grp.Go(func() error { return sim.Run(infraCtx) })
	grp.Go(func() error {
		<-gctx.Done()
		apps.Wait()
		stopInfra()
		return nil
	})
	if err := waitReady(gctx, brk.Ready(), sim.Ready()); err != nil {
		if ctx.Err() != nil {
			return fail(nil) // Ctrl-C during start-up is a clean stop
		}
		return fail(err)
	}
	site.MQTT.URL = brk.URL()

	gw, err := gateway.New(gateway.Options{Site: site, Log: log, HTTPListener: httpLn})
	if err != nil {
		return fail(fmt.Errorf("demo: %w", err))
	}
	defer gw.Close()
	goApp := func(fn func() error) {
		apps.Add(1)
		grp.Go(func() error {
			defer apps.Done()
			return fn()
		})
	}
	goApp(func() error { return gw.Run(gctx) })

	if f.influxURL != "" {
		w, err := ingest.NewWriter(ingest.WriterOptions{
			Config: configs.InfluxDB{URL: f.influxURL, Bucket: f.influxBucket, Org: f.influxOrg}, Log: log,
		})
		if err != nil {
			return fail(usageError{fmt.Errorf("demo: --influx-url: %w", err)})
		}
		defer w.Close()
		in, err := ingest.New(ingest.Options{
			MQTT: configs.MQTT{URL: brk.URL(), ClientID: demoClientID + "-ingest"}, Writer: w, Log: log,
		})
		if err != nil {
			return fail(fmt.Errorf("demo: %w", err))
		}
		goApp(func() error { return in.Run(gctx) })
	}

	narr := &narrator{out: out}
	goApp(func() error { return narr.run(gctx, brk.URL(), site.Site) })

	narr.printf("canary demo: %s\n", site.Name)
	narr.printf("  control room   http://%s/\n", httpLn.Addr())
	narr.printf("  operator login user %q, password %q (demo only; new on every run)\n", demoUser, password)
	narr.printf("  mqtt broker    %s  (try: mosquitto_sub -h %s -p %s -t 'canary/v1/#' -v)\n", brk.URL(), hostOf(brk.Addr()), portOf(brk.Addr()))
	narr.printf("  simulator      http://%s/api/v1/devices\n", sim.ControlAddr())
	for _, d := range sim.Devices() {
		narr.printf("  modbus device  %-12s unit %d at tcp://%s\n", d.ID, d.Unit, d.Address)
	}
	if f.influxURL != "" {
		narr.printf("  influxdb       %s bucket %s\n", f.influxURL, f.influxBucket)
	}
	narr.printf("  data           %s\n", dataDir)
	if f.incidentAfter >= 0 {
		narr.printf("in %s: a methane leak at the intake end of face 3 (scenario %s)\n", f.incidentAfter, demoScenario)
		goApp(func() error {
			select {
			case <-gctx.Done():
				return nil
			case <-time.After(f.incidentAfter):
			}
			if err := sim.StartScenario(demoScenario); err != nil {
				return fmt.Errorf("demo: start scenario: %w", err)
			}
			narr.printf("%s incident started: methane rising at face3-ch4-1, spreading along the face\n", clock())
			return nil
		})
	}
	narr.printf("press Ctrl-C to stop\n")

	err = grp.Wait()
	narr.printf("canary demo stopped\n")
	return err
}

func waitReady(ctx context.Context, chans ...<-chan struct{}) error {
	for _, c := range chans {
		select {
		case <-c:
		case <-ctx.Done():
			return errors.New("demo: stopped before every part was ready")
		}
	}
	return nil
}

func joinErr(groupErr, err error) error {
	if groupErr != nil {
		return groupErr
	}
	return err
}

func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
func clock() string             { return time.Now().Format("15:04:05") }

// narrator prints the alarm transitions of the demo site as they appear on
// the events topic, so the terminal tells the incident's story too.
type narrator struct {
	mu  sync.Mutex
	out io.Writer
}

func (n *narrator) printf(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.out, format, args...)
}

type demoEvent struct {
	Type    string   `json:"type"`
	Alarm   string   `json:"alarm"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	Value   *float64 `json:"value"`
	Limit   *float64 `json:"limit"`
	User    string   `json:"user"`
	Comment string   `json:"comment"`
}

func (n *narrator) run(ctx context.Context, brokerURL, site string) error {
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(demoClientID + "-narrator").
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true)
	topic := "canary/v1/" + site + "/events"
	opts.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
			var ev demoEvent
			if json.Unmarshal(m.Payload(), &ev) != nil {
				return
			}
			n.printf("%s\n", ev.line())
		})
	})
	c := paho.NewClient(opts)
	c.Connect()
	<-ctx.Done()
	c.Disconnect(100)
	return nil
}

func (ev demoEvent) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-9s %-28s", clock(), ev.Type, ev.Alarm)
	if ev.From != "" || ev.To != "" {
		fmt.Fprintf(&b, " %s -> %s", ev.From, ev.To)
	}
	if ev.Value != nil {
		fmt.Fprintf(&b, " value %.2f", *ev.Value)
	}
	if ev.Limit != nil {
		fmt.Fprintf(&b, " limit %.2f", *ev.Limit)
	}
	if ev.User != "" {
		fmt.Fprintf(&b, " by %s", ev.User)
	}
	if ev.Comment != "" {
		fmt.Fprintf(&b, " %q", ev.Comment)
	}
	return b.String()
}
