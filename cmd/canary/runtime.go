package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"
)

// startupSettle is how long after a command starts its start-up pages are
// released a second time: long enough for the config, the connections and
// the first polls, short enough that start-up does not set the peak.
const startupSettle = 5 * time.Second

// runtimeDefaults tunes the Go runtime of a long-running process (canary
// run, canary ingest) for a small edge box, unless the environment says
// otherwise. Both were measured with scripts/load.sh (docs/performance-history.md,
// items 18 and 20):
//
//   - GOGC=50: garbage is collected when the heap has grown by half since
//     the last cycle instead of doubling. Edge boxes are sized by resident
//     memory: at 10 000 sensors the gateway's peak RSS went from 79 to
//     64 MB, at 1 000 from 28 to 24 MB, for CPU within run-to-run noise.
//   - GOMAXPROCS=1: one scheduler thread. At these loads the process is
//     woken far more often than it works, and with two threads every
//     wake-up also wakes the other to look for work: the reference load
//     cost 26 % less CPU on one (gateway 6.8 → 5.1 ms per 1000 readings;
//     ingest 5.1 → 3.8). One thread carries the gateway to about 240 000
//     readings/s and the ingest well past one InfluxDB. The alarm path
//     stays fast: at 10 000 sensors the alarm latency p99 was 4.5 ms with
//     simulator, broker and gateway all on one thread. Set GOMAXPROCS for
//     larger sites, or where the HTTP API serves many clients at once.
//
// First of all it gives every thread of the process a timer slack of
// timerSlackDefault (timerSlackDefaults; CANARY_TIMER_SLACK sets another,
// or off), which may exec the process once.
//
// It also has the kernel map the executable's pages only as they are
// touched (faultAroundOff; CANARY_FAULT_AROUND=on leaves the kernel's
// default), and releases those that package init touched,
// now and once more when start-up is over (releaseStartupPages).
func runtimeDefaults(ctx context.Context, log zerolog.Logger) {
	// First: it may exec the process again.
	timerSlackDefaults(ctx, log)
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(50)
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
	release := func(when string) {
		n, err := releaseStartupPages()
		if err != nil {
			log.Debug().Err(err).Str("when", when).Int64("bytes", n).Msg("start-up pages not all released")
			return
		}
		log.Debug().Str("when", when).Int64("bytes", n).Msg("start-up pages released")
	}
	// Before the release: what is touched again comes back page by page.
	keep, err := keepFaultAround()
	if err != nil {
		log.Warn().Err(err).Msg("fault-around off for the executable, as by default")
	}
	if keep {
		log.Info().Msg("fault-around stays on for the executable: CANARY_FAULT_AROUND=on")
	} else if err := faultAroundOff(); err != nil {
		log.Info().Err(err).Msg("fault-around stays on for the executable")
	} else {
		log.Debug().Msg("fault-around off for the executable: its pages are mapped as they are touched")
	}
	release("after init")
	go func() {
		t := time.NewTimer(startupSettle)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			release("after start-up")
		}
	}()
}

// timerSlackDefaults gives the process the timer slack the environment
// asks for (timerSlackFromEnv), by an exec of itself if need be
// (applyTimerSlack): canary run, canary ingest and canary bench call it
// first, before they have opened anything.
func timerSlackDefaults(ctx context.Context, log zerolog.Logger) {
	slack, err := timerSlackFromEnv()
	if err != nil {
		log.Warn().Err(err).Dur("timer_slack", slack).Msg("timer slack: the default")
	}
	if ctx.Err() != nil {
		// Stopped already: an exec would lose the signal.
		slack = 0
	}
	if how, err := applyTimerSlack(slack); err != nil {
		log.Info().Err(err).Msg("timer slack stays as it was")
	} else {
		log.Debug().Msg(how)
	}
}

// timerSlackDefault is the timer slack canary run and canary ingest run
// with (applyTimerSlack; docs/performance-history.md, item 55).
const timerSlackDefault = 2 * time.Millisecond

// timerSlackFromEnv is the timer slack the environment asks for:
// CANARY_TIMER_SLACK as a duration ("2ms"), "off" for the kernel's own
// (0), unset for timerSlackDefault. Any other value is an error, and the
// default.
func timerSlackFromEnv() (time.Duration, error) {
	v, set := os.LookupEnv("CANARY_TIMER_SLACK")
	if !set || v == "" {
		return timerSlackDefault, nil
	}
	if v == "off" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > time.Second {
		return timerSlackDefault, fmt.Errorf("CANARY_TIMER_SLACK=%q: want a duration from 1ns to 1s (e.g. 2ms), or off", v)
	}
	return d, nil
}

// keepFaultAround reports whether the environment asks to leave the
// kernel's fault-around on for the executable (CANARY_FAULT_AROUND=on):
// for a seccomp profile that kills a process calling userfaultfd, or to
// compare. "off" or unset is the default; any other value is an error,
// and the default.
func keepFaultAround() (bool, error) {
	switch v := os.Getenv("CANARY_FAULT_AROUND"); v {
	case "on":
		return true, nil
	case "", "off":
		return false, nil
	default:
		return false, fmt.Errorf("CANARY_FAULT_AROUND=%q: want on or off", v)
	}
}
