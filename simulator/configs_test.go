package simulator

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every example site config beside the configs package decodes strictly
// (unknown keys are errors) into configs.Site, and the simulator can serve it.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "configs", "*.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4, "demo, coal-face, tank-farm, pipeline")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			site, err := LoadSite(f)
			require.NoError(t, err)
			require.NotEmpty(t, site.Site)
			require.NotEmpty(t, site.Devices)
			s, err := New(Options{Site: site})
			require.NoError(t, err)
			require.NotEmpty(t, s.Scenarios())
			for _, d := range s.Devices() {
				for _, sn := range d.Sensors {
					require.False(t, sn.Value != sn.Value, "%s/%s is NaN", d.ID, sn.ID)
				}
			}
		})
	}
}

// The demo stages its incident within 30 s: at speed 10 the leak passes
// 1.5 %vol (power cut) at the first detector within 300 simulated seconds,
// and reaches all four detectors of the chain.
func TestDemoLeakEscalatesInTime(t *testing.T) {
	site, err := LoadSite(filepath.Join("..", "configs", "demo.yaml"))
	require.NoError(t, err)
	s, err := New(Options{Site: site})
	require.NoError(t, err)
	require.NoError(t, s.SetClock(0, 0))
	require.NoError(t, s.StartScenario("methane-leak"))
	require.Equal(t, 10.0, s.clock.speed)
	require.NoError(t, s.SetClock(300*time.Second, 0))
	v, _, err := s.Value("face3-ch4-1", "ch4")
	require.NoError(t, err)
	require.Greater(t, v, 1.5)
	require.NoError(t, s.SetClock(10*time.Minute, 0))
	for _, d := range []string{"face3-ch4-2", "face3-ch4-3", "face3-ch4-4"} {
		v, src, err := s.Value(d, "ch4")
		require.NoError(t, err)
		require.Equal(t, "scenario", src)
		require.Greater(t, v, 1.0, d)
	}
}

func TestNewRejectsBadSites(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: [{id: s, address: 0, type: float33}]}\n", "unknown type"},
		{"site: x\ndevices:\n  - {id: a, url: udp://h:1, sensors: []}\n", "scheme udp is not simulated"},
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: [{id: s, address: 0, type: float32}, {id: t, address: 1}]}\n", "overlap"},
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: []}\n  - {id: b, url: tcp://127.0.0.1:0, sensors: []}\n", "unit 1 at tcp://127.0.0.1:0 is already device a"},
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: [{id: s}]}\n", "address is required"},
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: []}\nsimulation:\n  devices: [{device: b}]\n", "simulation device b: no such device"},
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: []}\nsimulation:\n  scenarios: [{name: s, events: [{effect: flap, targets: [a/x]}]}]\n", "acts on a device"},
	} {
		_, err := New(Options{Site: siteFromYAML(t, c.yaml)})
		require.ErrorContains(t, err, c.want)
	}
}
