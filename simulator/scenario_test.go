package simulator

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

var scenarioSensors = []string{"ch4-1/ch4", "ch4-2/ch4", "ch4-3/ch4", "ch4-4/ch4", "ch4-4/co", "station/pt", "station/loop"}

// runScenarioTimeline starts each scenario of the test site at simulated
// time 0 with the clock paused, then steps the clock and reads every
// sensor over Modbus TCP, as a gateway would.
func runScenarioTimeline(t *testing.T) string {
	t.Helper()
	site, err := LoadSite(filepath.Join("testdata", "scenario-site.yaml"))
	require.NoError(t, err)
	var b strings.Builder
	for _, name := range []string{"leak", "stuck-and-drift", "link", "pipeline-rupture", "pressure-surge"} {
		s := startSim(t, Options{Site: site})
		require.NoError(t, s.SetClock(0, 0))
		require.NoError(t, s.StartScenario(name))
		require.NoError(t, s.SetClock(0, 0)) // the leak sets its own speed; hold the clock for the test
		clients := map[string]*modbus.ModbusClient{}
		for step := time.Duration(0); step <= 12*time.Minute; step += 30 * time.Second {
			require.NoError(t, s.SetClock(step, 0))
			fmt.Fprintf(&b, "%s %5.0fs", name, step.Seconds())
			for _, tg := range scenarioSensors {
				dev, sen := splitTarget(tg)
				c := clients[dev]
				if c == nil {
					c = newClient(t, "tcp://"+hostPort(t, s, dev), s.byID[dev].unit)
					clients[dev] = c
				}
				sn := s.byID[dev].byID[sen]
				tbl := modbus.HOLDING_REGISTER
				if sn.shape.table == "input" {
					tbl = modbus.INPUT_REGISTER
				}
				if sn.cfg.Order == "CDAB" {
					require.NoError(t, c.SetEncoding(modbus.BIG_ENDIAN, modbus.LOW_WORD_FIRST))
				} else {
					require.NoError(t, c.SetEncoding(modbus.BIG_ENDIAN, modbus.HIGH_WORD_FIRST))
				}
				f, err := c.ReadFloat32s(sn.shape.addr, 1, tbl)
				switch {
				case err == nil:
					fmt.Fprintf(&b, " %s=%.4f", tg, f[0])
				case err == modbus.ErrRequestTimedOut:
					fmt.Fprintf(&b, " %s=timeout", tg)
				default:
					fmt.Fprintf(&b, " %s=%v", tg, err)
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func TestScenarioGolden(t *testing.T) {
	got := runScenarioTimeline(t)
	golden := filepath.Join("testdata", "scenarios.golden")
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run with -update to create it")
	require.Equal(t, string(want), got, "same seed and scenario must give the same values")
}

// The same scenario from a second, independent simulator gives the same
// values; the shapes are checked without the golden file too.
func TestScenarioShapes(t *testing.T) {
	site, err := LoadSite(filepath.Join("testdata", "scenario-site.yaml"))
	require.NoError(t, err)
	a := startSim(t, Options{Site: site})
	b := startSim(t, Options{Site: site})
	for _, s := range []*Simulator{a, b} {
		require.NoError(t, s.SetClock(0, 0))
		require.NoError(t, s.StartScenario("stuck-and-drift"))
		require.NoError(t, s.StartScenario("leak")) // sets the clock running at 3600x from 0
		require.NoError(t, s.SetClock(0, 0))
	}
	at := func(s *Simulator, tm time.Duration, tg string) float64 {
		require.NoError(t, s.SetClock(tm, 0))
		dev, sen := splitTarget(tg)
		return value(t, s, dev, sen)
	}
	for tm := time.Duration(0); tm < 15*time.Minute; tm += 17 * time.Second {
		for _, tg := range scenarioSensors {
			require.Equal(t, at(a, tm, tg), at(b, tm, tg), "%s at %v", tg, tm)
		}
	}
	// Leak: the first detector reaches background + 2.0 after the 2 min
	// rise; the second starts a minute later and peaks at 0.8 of it.
	require.InDelta(t, 2.05, at(a, 4*time.Minute, "ch4-1/ch4"), 0.1)
	require.Less(t, at(a, 50*time.Second, "ch4-2/ch4"), 0.2)
	require.InDelta(t, 0.05+1.6, at(a, 5*time.Minute, "ch4-2/ch4"), 0.1)
	require.InDelta(t, 0.05+2.0*0.8*0.8*0.8, at(a, 8*time.Minute, "ch4-4/ch4"), 0.1)
	require.Less(t, at(a, 20*time.Minute, "ch4-1/ch4"), 0.2, "the leak has passed")
	// Freeze: the CO reading does not move between 1 and 6 minutes.
	frozen := at(a, 61*time.Second, "ch4-4/co")
	for tm := 70 * time.Second; tm < 6*time.Minute; tm += 23 * time.Second {
		require.Equal(t, frozen, at(a, tm, "ch4-4/co"))
	}
	// Drift: 6 mA per hour on top of the loop's physics.
	d := at(a, 30*time.Minute, "station/loop") - at(b, 30*time.Minute, "station/loop")
	require.Zero(t, d)
	require.NoError(t, a.StopScenario("stuck-and-drift"))
	undrifted := at(a, 30*time.Minute, "station/loop")
	require.InDelta(t, 3.0, at(b, 30*time.Minute, "station/loop")-undrifted, 1e-9)
}

// Time compression: the leak scenario runs at 3600 simulated seconds per
// real second, so its peak arrives in well under a second of real time.
func TestScenarioCompressedTime(t *testing.T) {
	site, err := LoadSite(filepath.Join("testdata", "scenario-site.yaml"))
	require.NoError(t, err)
	s := startSim(t, Options{Site: site})
	c := newClient(t, "tcp://"+hostPort(t, s, "ch4-1"), 1)
	require.NoError(t, s.StartScenario("leak"))
	eventually(t, "methane at ch4-1 above 1.5 %vol", func() bool {
		f, err := c.ReadFloat32s(0, 1, modbus.HOLDING_REGISTER)
		return err == nil && f[0] > 1.5
	})
	require.Greater(t, s.Now(), time.Minute)
	st := s.Scenarios()
	var found bool
	for _, sc := range st {
		if sc.Name == "leak" {
			found = true
			require.True(t, sc.Running)
		}
	}
	require.True(t, found)
}
