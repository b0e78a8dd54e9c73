package simulator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
)

// Every example site config beside the configs package decodes strictly
// (unknown keys are errors) into configs.Site, and the simulator can serve it.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "configs", "*.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4, "demo, coal-face, tank-farm, pipeline")
	for _, f := range files {
		summary, _, err := configs.Check(f)
		require.NoError(t, err)
		if !strings.HasPrefix(summary, "site ") {
			continue // an ingest or control-room config: no devices to serve
		}
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
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: [{id: s, address: 0, type: float32, bit: 3}]}\n", "bit is only for type bool"},
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: [{id: s, address: 0, type: uint16, scale: 0}]}\n", "scale 0"},
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: []}\n  - {id: b, url: tcp://127.0.0.1:0, sensors: []}\n", "unit 1 at tcp://127.0.0.1:0 is already device a"},
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: [{id: s}]}\n", "address is required"},
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: []}\nsimulation:\n  devices: [{device: b}]\n", "simulation device b: no such device"},
		{"site: x\ndevices:\n  - {id: a, url: tcp://127.0.0.1:0, sensors: []}\nsimulation:\n  scenarios: [{name: s, events: [{effect: flap, targets: [a/x]}]}]\n", "acts on a device"},
	} {
		_, err := New(Options{Site: siteFromYAML(t, c.yaml)})
		require.ErrorContains(t, err, c.want)
	}
}

func TestLoadScenariosFile(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "list.yaml")
	doc := filepath.Join(dir, "doc.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(list, []byte("- name: surge\n  events:\n    - {effect: add, targets: [gas1/ch4], value: 1, rise: 1m}\n"), 0o600))
	require.NoError(t, os.WriteFile(doc, []byte("scenarios:\n  - name: cut\n    events:\n      - {effect: state, state: offline, targets: [gas1], hold: 1m}\n"), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte("scenarios:\n  - name: cut\n    evnts: []\n"), 0o600))
	a, err := LoadScenarios(list)
	require.NoError(t, err)
	b, err := LoadScenarios(doc)
	require.NoError(t, err)
	_, err = LoadScenarios(bad)
	require.ErrorContains(t, err, "evnts")

	s, err := New(Options{Site: siteFromYAML(t, testSite), Scenarios: append(a, b...)})
	require.NoError(t, err)
	require.NoError(t, s.SetClock(0, 0))
	require.NoError(t, s.StartScenario("cut"))
	require.NoError(t, s.StartScenario("surge"))
	require.NoError(t, s.SetClock(30*time.Second, 0))
	require.Equal(t, StateOffline, s.Devices()[0].State)
	require.NoError(t, s.SetClock(2*time.Minute, 0))
	require.Equal(t, StateOnline, s.Devices()[0].State)
	v, src, err := s.Value("gas1", "ch4")
	require.NoError(t, err)
	require.Equal(t, "scenario", src)
	require.Greater(t, v, 1.0)
}

// With Localize, a plant's site file (addresses that do not exist here) is
// served on loopback and answers.
func TestLocalizeServesPlantFile(t *testing.T) {
	site, err := LoadSite(filepath.Join("..", "configs", "tank-farm.yaml"))
	require.NoError(t, err)
	s := startSim(t, Options{Site: site, Localize: true})
	u, err := s.DeviceURL("bay-benzene")
	require.NoError(t, err)
	require.Regexp(t, `^tcp://127\.0\.0\.1:\d+$`, u)
	c := newClient(t, u, 7)
	_, err = c.ReadRegisters(0, 4, mb.HOLDING_REGISTER)
	require.NoError(t, err)
}
