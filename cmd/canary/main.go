// Command canary is the one binary of the canary safety-monitoring gateway:
// CLI wiring only. Each subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes, as the docs promise.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks an error as a usage or config problem (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// globalFlags are the flags every subcommand shares.
type globalFlags struct {
	logLevel  string
	logFormat string
}

// logger builds the process logger from the global flags.
func (g *globalFlags) logger(w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(g.logLevel))
	if err != nil || g.logLevel == "" {
		return zerolog.Nop(), usageErrorf("--log-level %q: want trace, debug, info, warn or error", g.logLevel)
	}
	var out io.Writer
	switch g.logFormat {
	case "json":
		out = w
	case "console":
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Nop(), usageErrorf("--log-format %q: want json or console", g.logFormat)
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "canary",
		Short:         "Safety-monitoring gateway for hazardous sites",
		Long:          "canary polls Modbus gas detectors and pressure transmitters, raises alarms on the edge,\nand streams readings and alarms over MQTT into InfluxDB.",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "json", "log format: json (for machines) or console (for people)")
	// Bad logging flags are usage errors before any subcommand starts.
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		_, err := g.logger(io.Discard)
		return err
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newCheckCmd(g),
		newReadCmd(g),
		newSimCmd(g),
		newRunCmd(g),
		newIngestCmd(g),
		newDemoCmd(g),
		newBenchCmd(g),
		newControlCmd(g),
	)
	return root
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "canary:", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") {
		return exitUsage
	}
	return exitRuntime
}

func main() {
	// Before anything else: it may exec the process again.
	earlyTimerSlack(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := profileFromEnv(os.Stderr)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// profileFromEnv profiles any command from the environment, so a long-running
// `canary run` or `canary ingest` in a load test can be profiled without a
// flag on every command: CANARY_CPUPROFILE=FILE writes a CPU profile of the
// whole run, CANARY_MEMPROFILE=FILE a heap profile at exit.
func profileFromEnv(stderr io.Writer) (stop func()) {
	stopCPU := fromEnv(stderr, "CANARY_CPUPROFILE", func(path string) (func() error, error) {
		return startToFile(path, "cpu profile", pprof.StartCPUProfile, pprof.StopCPUProfile)
	})
	stopTrace := fromEnv(stderr, "CANARY_TRACE", func(path string) (func() error, error) {
		return startToFile(path, "trace", trace.Start, trace.Stop)
	})
	return func() {
		stopTrace()
		stopCPU()
		if path := os.Getenv("CANARY_MEMPROFILE"); path != "" {
			if err := writeHeapProfile(path); err != nil {
				fmt.Fprintln(stderr, "canary:", err)
			}
		}
	}
}

// fromEnv runs start on the file the environment variable env names, if
// it names one, and returns what stops it; failures are reported on
// stderr, not fatal: a profile must not keep a gateway from running.
func fromEnv(stderr io.Writer, env string, start func(path string) (stop func() error, err error)) func() {
	path := os.Getenv(env)
	if path == "" {
		return func() {}
	}
	stop, err := start(path)
	if err != nil {
		fmt.Fprintln(stderr, "canary:", err)
		return func() {}
	}
	return func() {
		if err := stop(); err != nil {
			fmt.Fprintln(stderr, "canary:", err)
		}
	}
}
