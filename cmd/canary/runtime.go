package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/canary-gw/canary/configs"
)

// startupSettle is how long after a command starts its start-up pages are
// released for the last time: long enough for the config, the connections
// and the first polls. Until then they are released every
// startupReleaseEvery, so that start-up does not set the peak: released
// once, at startupSettle, the pages touched before it (the config, the
// connections, the HTTP server, the first commit) added up to a peak of
// 17.3 MB at 4 s into one reference run, against 15.4–16.6 MB from then
// on (docs/performance-history.md, item 68).
const (
	startupSettle       = 5 * time.Second
	startupReleaseEvery = time.Second
)

// runtimeDefaults tunes the Go runtime of a long-running process (canary
// run, canary ingest) for a small edge box, unless the environment says
// otherwise. Both were measured with scripts/load.sh (docs/performance-history.md,
// items 18, 20 and 56):
//
//   - GOGC=gcPercent: canary run's gatewayGCPercent collects garbage when
//     the heap has grown by half since the last cycle instead of doubling.
//     Edge boxes are sized by resident memory: at 10 000 sensors the
//     gateway's peak RSS went from 79 to 62 MB, at 1 000 from 28 to 24 MB,
//     for CPU within run-to-run noise. canary ingest's ingestGCPercent is
//     Go's default: its heap is small, and collecting less often took
//     about 8 % off its CPU for a quarter of a megabyte at the reference
//     load (a megabyte at 10 000 sensors).
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
// It logs the timer slack main gave every thread of the process
// (earlyTimerSlack: timerSlackDefault, or CANARY_TIMER_SLACK's).
//
// It also has the kernel map the executable's pages only as they are
// touched (faultAroundOff; CANARY_FAULT_AROUND=on leaves the kernel's
// default), and releases those that package init touched,
// now, and each second until start-up is over (releaseStartupPages).
func runtimeDefaults(ctx context.Context, log zerolog.Logger, gcPercent int) {
	logTimerSlack(log)
	gogc, set := os.LookupEnv("GOGC")
	if !set {
		debug.SetGCPercent(gcPercent)
		gogc = strconv.Itoa(gcPercent)
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
	log.Debug().Str("gogc", gogc).Int("gomaxprocs", runtime.GOMAXPROCS(0)).Msg("runtime settings")
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
		t := time.NewTicker(startupReleaseEvery)
		defer t.Stop()
		for at := startupReleaseEvery; at <= startupSettle; at += startupReleaseEvery {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				release("start-up, " + at.String())
			}
		}
	}()
}

// The garbage collection targets of the long-running commands unless GOGC
// is set (runtimeDefaults).
const (
	gatewayGCPercent = 50
	ingestGCPercent  = 100
)

// slackOutcome is what earlyTimerSlack came to, for the command to log
// once it has its logger (logTimerSlack).
var slackOutcome struct {
	applied bool // earlyTimerSlack ran for this command
	how     string
	err     error // the slack could not be applied
	envErr  error // CANARY_TIMER_SLACK was bad
}

// earlyTimerSlack gives the process the timer slack the environment asks
// for (timerSlackFromEnv), by an exec of itself if need be
// (applyTimerSlack), when args run canary run, canary ingest or canary
// bench. main calls it first of all, before it handles a signal, starts a
// profile or reads a config: all would be lost to the exec. It logs
// nothing; the command does, with its logger (logTimerSlack).
func earlyTimerSlack(args []string) {
	if !wantsTimerSlack(args) {
		return
	}
	slack, envErr := timerSlackFromEnv()
	how, err := applyTimerSlack(slack)
	slackOutcome.applied, slackOutcome.how, slackOutcome.err, slackOutcome.envErr = true, how, err, envErr
}

// wantsTimerSlack reports whether args run a command that gets the timer
// slack: the long-running gateway and ingest, and the bench that sizes them.
func wantsTimerSlack(args []string) bool {
	c, _, err := newRootCmd(io.Discard, io.Discard).Find(args)
	if err != nil {
		return false
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "--help=true" {
			return false // it only prints its help: no exec for that
		}
	}
	switch c.Name() {
	case "run", "ingest", "bench":
		return true
	}
	return false
}

// logTimerSlack logs what earlyTimerSlack came to, if it ran.
func logTimerSlack(log zerolog.Logger) {
	o := slackOutcome
	if !o.applied {
		return
	}
	if o.envErr != nil {
		log.Warn().Err(o.envErr).Msg("timer slack: the default")
	}
	if o.err != nil {
		log.Info().Err(o.err).Msg("timer slack stays as it was")
		return
	}
	log.Debug().Msg(o.how)
}

// fastPollSlacks: a device polled more often than every fastPollSlacks
// timer slacks may have its polls judged late by the slack alone (a poll
// starts late after a quarter of its period), which counts towards the
// overload that starts a fault hold.
const fastPollSlacks = 20

// warnFastPolls warns of the devices polled so fast that the process's
// timer slack could make their polls late, and how to lower it.
func warnFastPolls(log zerolog.Logger, devices []configs.Device) {
	slack, err := timerSlack()
	if err != nil || slack <= 0 {
		return
	}
	for _, d := range devices {
		if d.Poll > 0 && d.Poll < fastPollSlacks*slack {
			log.Warn().Str("device", d.ID).Dur("poll", d.Poll).Dur("timer_slack", slack).
				Msgf("device polled faster than %d times the timer slack: its polls may start late by the slack alone; set CANARY_TIMER_SLACK lower, or off (it only ever raises the slack the process was started with, e.g. by systemd's TimerSlackNSec)", fastPollSlacks)
		}
	}
}

// timerSlackDefault is the timer slack canary run, canary ingest and
// canary bench run with (applyTimerSlack; docs/performance-history.md,
// item 55).
const timerSlackDefault = 2 * time.Millisecond

// timerSlackFromEnv is the timer slack the environment asks for:
// CANARY_TIMER_SLACK as a duration ("2ms"), "off" (0) for the one the
// process was started with, unset for timerSlackDefault. Any other value is an error, and the
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
