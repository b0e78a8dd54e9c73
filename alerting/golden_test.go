package alerting

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/canary-gw/canary/internal/configerr"
)

var update = flag.Bool("update", false, "rewrite the golden expected.events files")

// scriptConfig is the config.yaml of a scripted case.
type scriptConfig struct {
	Site    string        `yaml:"site"`
	Options scriptOptions `yaml:"options"`
	Points  []struct {
		ID      string        `yaml:"id"`
		Kind    string        `yaml:"kind"`
		Profile string        `yaml:"profile"`
		Unit    string        `yaml:"unit"`
		Poll    time.Duration `yaml:"poll"`
		Alarms  SensorAlarms  `yaml:"alarms"`
	} `yaml:"points"`
	Groups []struct {
		ID        string   `yaml:"id"`
		Sensors   []string `yaml:"sensors"`
		Vote      string   `yaml:"vote"`
		FaultVote string   `yaml:"fault_vote"`
		Condition string   `yaml:"condition"`
		Priority  int      `yaml:"priority"`
		Latch     bool     `yaml:"latch"`
		Action    string   `yaml:"action"`
		Override  bool     `yaml:"override_regulatory"`
	} `yaml:"groups"`
	Actions []struct {
		ID             string        `yaml:"id"`
		ConfirmTimeout time.Duration `yaml:"confirm_timeout"`
	} `yaml:"actions"`
	Systems []struct {
		ID        string `yaml:"id"`
		Condition string `yaml:"condition"`
		Priority  int    `yaml:"priority"`
	} `yaml:"systems"`
}

type scriptOptions struct {
	MaxShelve       time.Duration `yaml:"max_shelve"`
	MaxOutOfService time.Duration `yaml:"max_out_of_service"`
	ChatterCount    int           `yaml:"chatter_count"`
	ChatterWindow   time.Duration `yaml:"chatter_window"`
	FleetingBelow   time.Duration `yaml:"fleeting_below"`
	StaleAfter      time.Duration `yaml:"stale_after"`
	FloodWindow     time.Duration `yaml:"flood_window"`
	FloodStart      int           `yaml:"flood_start"`
	FloodEnd        int           `yaml:"flood_end"`
}

var scriptStart = time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)

func loadScriptConfig(t testing.TB, path string) Config {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var sc scriptConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&sc), path)
	site := sc.Site
	if site == "" {
		site = "s1"
	}
	cfg := Config{Options: Options(sc.Options)}
	for _, p := range sc.Points {
		dev, sen, ok := strings.Cut(p.ID, ".")
		require.True(t, ok, "point id %q: want device.sensor", p.ID)
		cfg.Points = append(cfg.Points, PointConfig{Site: site, Device: dev, Sensor: sen, Kind: p.Kind,
			Profile: p.Profile, Unit: p.Unit, Poll: p.Poll, Alarms: p.Alarms})
	}
	for _, g := range sc.Groups {
		m, n, err := ParseVote(g.Vote)
		require.NoError(t, err)
		cfg.Groups = append(cfg.Groups, GroupConfig{ID: g.ID, Site: site, Points: g.Sensors, M: m, N: n,
			FaultVote: g.FaultVote, Condition: Condition(g.Condition), Priority: g.Priority, Latch: g.Latch, Action: g.Action,
			OverrideRegulatory: g.Override})
	}
	for _, a := range sc.Actions {
		cfg.Actions = append(cfg.Actions, ActionConfig{ID: a.ID, Site: site, ConfirmTimeout: a.ConfirmTimeout})
	}
	for _, y := range sc.Systems {
		cfg.Systems = append(cfg.Systems, SystemConfig{ID: y.ID, Site: site, Condition: Condition(y.Condition), Priority: y.Priority})
	}
	return cfg
}

// script runs steps.txt against an engine and renders every event,
// command error and requested state dump as text.
type script struct {
	t    testing.TB
	cfg  Config
	e    *Engine
	out  strings.Builder
	last uint64
}

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	require.False(t, configerr.HasErrors(err), "config: %v", err)
	return e
}

func (s *script) pointID(name string) string {
	if _, ok := s.e.points[name]; ok {
		return name
	}
	var found string
	for _, p := range s.e.plist {
		if p.sensor == name {
			require.Empty(s.t, found, "sensor name %q is ambiguous; use device.sensor", name)
			found = p.id
		}
	}
	require.NotEmpty(s.t, found, "unknown sensor %q", name)
	return found
}

func fmtNum(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "-"
	}
	return strconv.FormatFloat(f, 'g', 6, 64)
}

func (s *script) events(evs []Event) {
	for _, ev := range evs {
		require.Greater(s.t, ev.Seq, s.last, "event seq must increase")
		s.last = ev.Seq
		fmt.Fprintf(&s.out, "%s #%d %s %s %s->%s active=%t value=%s limit=%s", ev.TS.Sub(scriptStart), ev.Seq, ev.Type,
			orDash(ev.Alarm), orDash(string(ev.From)), orDash(string(ev.To)), ev.Active, fmtNum(ev.Value), fmtNum(ev.Limit))
		if ev.User != "" {
			fmt.Fprintf(&s.out, " user=%s", ev.User)
		}
		if ev.Comment != "" {
			fmt.Fprintf(&s.out, " comment=%q", ev.Comment)
		}
		s.out.WriteByte('\n')
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (s *script) stateLine(off time.Duration, a AlarmState) {
	fmt.Fprintf(&s.out, "%s STATE %s P%d %s active=%t latched=%t value=%s limit=%s since=%s", off, a.ID, a.Priority, a.State,
		a.Active, a.Latched, fmtNum(a.Value), fmtNum(a.Limit), sinceStr(a.Since))
	if a.AckedBy != "" {
		fmt.Fprintf(&s.out, " acked_by=%s", a.AckedBy)
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{a.FirstOut, "first_out"}, {a.Chattering, "chattering"}, {a.Stale, "stale"}, {a.Suppressed, "suppressed"}, {a.OneShot, "one_shot"}} {
		if f.on {
			s.out.WriteString(" " + f.name)
		}
	}
	if !a.ShelvedUntil.IsZero() {
		fmt.Fprintf(&s.out, " shelved_until=%s", a.ShelvedUntil.Sub(scriptStart))
	}
	s.out.WriteByte('\n')
}

func sinceStr(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Sub(scriptStart).String()
}

// splitArgs splits on spaces, keeping "quoted strings" together.
func splitArgs(line string) []string {
	var out []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		if line[0] == '"' {
			end := strings.IndexByte(line[1:], '"')
			if end < 0 {
				out = append(out, line[1:])
				break
			}
			out = append(out, line[1:end+1])
			line = line[end+2:]
			continue
		}
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			out = append(out, line)
			break
		}
		out = append(out, line[:i])
		line = line[i+1:]
	}
	return out
}

func arg(a []string, i int) string {
	if i < len(a) {
		return a[i]
	}
	return ""
}

func (s *script) run(steps string) {
	sc := bufio.NewScanner(strings.NewReader(steps))
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		a := splitArgs(line)
		off, err := time.ParseDuration(a[0])
		require.NoError(s.t, err, "line %d: %s", lineNo, line)
		now := scriptStart.Add(off)
		verb := arg(a, 1)
		var evs []Event
		switch verb {
		case "tick":
			evs = s.e.Tick(now)
		case "ack":
			evs, err = s.e.Ack(now, a[2], arg(a, 3), arg(a, 4))
		case "reset":
			evs, err = s.e.Reset(now, a[2], arg(a, 3), arg(a, 4))
		case "shelve":
			if a[4] == "oneshot" {
				evs, err = s.e.ShelveOneShot(now, a[2], a[3], arg(a, 5))
			} else {
				d, perr := time.ParseDuration(a[4])
				require.NoError(s.t, perr, "line %d", lineNo)
				evs, err = s.e.Shelve(now, a[2], a[3], arg(a, 5), d)
			}
		case "unshelve":
			evs, err = s.e.Unshelve(now, a[2], arg(a, 3), arg(a, 4))
		case "oos":
			d, perr := time.ParseDuration(a[4])
			require.NoError(s.t, perr, "line %d", lineNo)
			evs, err = s.e.OutOfService(now, a[2], a[3], arg(a, 5), d)
		case "rts":
			evs, err = s.e.ReturnToService(now, a[2], arg(a, 3), arg(a, 4))
		case "flag":
			evs = s.e.SetFlag(now, a[2], a[3] == "true")
		case "result":
			evs, err = s.e.ActionResult(now, a[2], a[3] == "ok", arg(a, 4))
		case "system": // system ID on|off VALUE: Engine.SetSystem
			v, perr := strconv.ParseFloat(a[4], 64)
			require.NoError(s.t, perr, "line %d", lineNo)
			evs, err = s.e.SetSystem(now, a[2], a[3] == "on", v)
		case "faulthold":
			evs = s.e.SetFaultHold(now, a[2] == "on", arg(a, 3))
		case "release": // release N|all: Engine.ReleaseHeld
			n := -1
			if a[2] != "all" {
				var perr error
				n, perr = strconv.Atoi(a[2])
				require.NoError(s.t, perr, "line %d", lineNo)
			}
			s.events(s.e.ReleaseHeld(now, n))
			fmt.Fprintf(&s.out, "%s HELD %d\n", off, s.e.Held())
			continue
		case "restart":
			snap, serr := s.e.Snapshot(now)
			require.NoError(s.t, serr)
			s.e = newEngine(s.t, s.cfg)
			evs, err = s.e.Restore(now, snap)
			fmt.Fprintf(&s.out, "%s RESTART\n", off)
		case "state":
			st, ok := s.e.Alarm(a[2])
			require.True(s.t, ok, "line %d: unknown alarm %s", lineNo, a[2])
			s.stateLine(off, st)
			continue
		case "dump":
			all := s.e.Alarms()
			var shown []AlarmState
			for _, st := range all {
				if st.State != Normal || st.Active || st.Latched {
					shown = append(shown, st)
				}
			}
			SortForDisplay(shown)
			fmt.Fprintf(&s.out, "%s DUMP (display order)\n", off)
			for _, st := range shown {
				s.stateLine(off, st)
			}
			continue
		default:
			var samples []Sample
			for i := 1; i < len(a); i++ {
				name, val, ok := strings.Cut(a[i], "=")
				require.True(s.t, ok, "line %d: want name=value, got %q", lineNo, a[i])
				v, perr := strconv.ParseFloat(val, 64)
				require.NoError(s.t, perr, "line %d", lineNo)
				q, fault := Good, false
				if i+1 < len(a) && !strings.Contains(a[i+1], "=") {
					if a[i+1] == "fault" { // bad by the device's status word (Sample.Fault)
						q, fault = BadQuality, true
					} else {
						q, perr = ParseQuality(a[i+1])
						require.NoError(s.t, perr, "line %d", lineNo)
					}
					i++
				}
				samples = append(samples, Sample{Point: s.pointID(name), Value: v, Quality: q, Fault: fault})
			}
			evs, err = s.e.Step(now, samples)
			require.NoError(s.t, err)
		}
		if err != nil {
			fmt.Fprintf(&s.out, "%s ERR %s: %v\n", off, verb, err)
		}
		s.events(evs)
	}
	require.NoError(s.t, sc.Err())
}

func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/steps.txt")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, stepsPath := range dirs {
		dir := filepath.Dir(stepsPath)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg := loadScriptConfig(t, filepath.Join(dir, "config.yaml"))
			steps, err := os.ReadFile(stepsPath)
			require.NoError(t, err)
			s := &script{t: t, cfg: cfg, e: newEngine(t, cfg)}
			s.run(string(steps))
			got := s.out.String()
			golden := filepath.Join(dir, "expected.events")
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "missing golden file; run go test ./alerting -run TestGolden -update and review it")
			require.Equal(t, string(want), got)
		})
	}
}
