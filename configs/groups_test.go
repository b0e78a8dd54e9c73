package configs

import (
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/internal/configerr"
)

const groupsYAML = `
groups:
  - id: face3-ch4
    sensors: [a.ch4, b.ch4, c.ch4]
    vote: 2oo3
    action: power-cut
actions:
  - id: power-cut
    device: face3-relay
    table: coil
    address: 0
    trip: 1
    release: 0
    readback: {table: discrete, address: 4, trip: 0, release: 1}
`

func errPaths(err error) []string {
	var out []string
	for _, fe := range configerr.Flatten(err) {
		out = append(out, fe.Path)
	}
	sort.Strings(out)
	return out
}

func TestGroupsAndActionsFromYAML(t *testing.T) {
	var doc struct {
		Groups  []Group  `yaml:"groups"`
		Actions []Action `yaml:"actions"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(groupsYAML), &doc))
	g, a := &doc.Groups[0], &doc.Actions[0]
	g.SetDefaults()
	a.SetDefaults()
	require.NoError(t, g.Validate())
	require.NoError(t, a.Validate())
	require.Equal(t, alerting.GroupConfig{ID: "face3-ch4", Site: "demo", Points: []string{"a.ch4", "b.ch4", "c.ch4"},
		M: 2, N: 3, FaultVote: "trip", Condition: alerting.HighHigh, Priority: 1, Latch: true, Action: "power-cut"}, g.Alerting("demo"))
	require.Equal(t, alerting.ActionConfig{ID: "power-cut", Site: "demo", ConfirmTimeout: 2 * time.Second}, a.Alerting("demo"))
	require.Equal(t, "face3-relay", a.Readback.Device)
	require.Equal(t, 4, *a.Readback.Address)
	require.Equal(t, 0.0, *a.Readback.Trip)

	// the converted configs build an engine
	var cfg alerting.Config
	for _, id := range []string{"a", "b", "c"} {
		cfg.Points = append(cfg.Points, alerting.PointConfig{Site: "demo", Device: id, Sensor: "ch4", Kind: "methane"})
	}
	cfg.Groups = []alerting.GroupConfig{g.Alerting("demo")}
	cfg.Actions = []alerting.ActionConfig{a.Alerting("demo")}
	_, err := alerting.New(cfg)
	require.NoError(t, err)
}

func TestGroupValidate(t *testing.T) {
	g := Group{ID: "Bad ID", Sensors: []string{"a.ch4", "nodot", "a.ch4"}, Vote: "2oo2", FaultVote: "maybe", Condition: "bad", Priority: 9, Action: "X"}
	require.Equal(t, []string{"action", "condition", "fault_vote", "id", "priority", "sensors[1]", "sensors[2]", "vote"}, errPaths(g.Validate()))
	g = Group{ID: "g", Sensors: []string{"a.b"}, Vote: "2of3"}
	g.SetDefaults()
	require.Equal(t, []string{"vote"}, errPaths(g.Validate()))
}

func TestActionValidate(t *testing.T) {
	two, one := 2.0, 1.0
	a := Action{ID: "x", Device: "", Table: "input", Address: 70000, Trip: &two, ConfirmTimeout: -time.Second,
		Readback: &Readback{Table: "nope"}}
	require.Equal(t, []string{"address", "confirm_timeout", "device", "readback.table", "release", "table"}, errPaths(a.Validate()))
	a = Action{ID: "x", Device: "d", Table: "coil", Trip: &two, Release: &one}
	require.Equal(t, []string{"trip"}, errPaths(a.Validate()))
	a = Action{ID: "x", Device: "d", Table: "holding", Trip: &one, Release: &one}
	require.Equal(t, []string{"release"}, errPaths(a.Validate()))
}
