package configs

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSimulationValidate(t *testing.T) {
	neg := -1.0
	bad := Simulation{
		Speed:   -2,
		Sensors: []SimSensor{{Device: "a", Noise: &neg}},
		Devices: []SimDevice{{Device: "a", State: "dead", Faults: SimFaults{Drop: 2, Signal: "loud"}}},
		Scenarios: []Scenario{
			{Name: "s", Events: []ScenarioEvent{
				{Effect: "add", Targets: []string{"a"}},
				{Effect: "flap", Targets: []string{"a/x"}, Duty: 3},
				{Effect: "boom", Rise: -time.Second, Factor: &neg},
			}},
			{Name: "s"},
		},
	}
	err := bad.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"speed: must not be negative",
		"sensors[0].sensor: is required",
		"sensors[0].noise: must not be negative",
		`devices[0].state: "dead"`,
		"devices[0].faults.drop: want a share between 0 and 1",
		`devices[0].faults.signal: "loud"`,
		`scenarios[0].events[0].targets[0]: "a": effect add acts on a sensor`,
		`scenarios[0].events[1].targets[0]: "a/x": effect flap acts on a device`,
		"scenarios[0].events[1].duty",
		`scenarios[0].events[2].effect: "boom"`,
		"scenarios[0].events[2].targets: at least one target",
		"scenarios[0].events[2].rise: must not be negative",
		"scenarios[0].events[2].factor",
		`scenarios[1].name: scenario "s" defined twice`,
		"scenarios[1].events: a scenario needs at least one event",
	} {
		require.True(t, strings.Contains(err.Error(), want), "missing %q in\n%v", want, err)
	}
	ok := Simulation{Seed: 1, Speed: 10, Scenarios: []Scenario{{Name: "leak", Events: []ScenarioEvent{
		{Effect: "add", Targets: []string{"d/s"}, Value: 1, Rise: time.Minute},
		{Effect: "state", State: "offline", Targets: []string{"d"}},
	}}}}
	require.NoError(t, ok.Validate())
}
