package alerting

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The MQTT payloads carry exactly the DESIGN.md fields.
func TestAlarmStateJSON(t *testing.T) {
	cfg := Config{Points: []PointConfig{{Site: "demo", Device: "face3-gas", Sensor: "ch4", Kind: "methane"}}}
	e, err := New(cfg)
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 8, 0, 0, 123456789, time.UTC)
	evs, err := e.Observe(now, Sample{Point: "face3-gas.ch4", Value: 1.8, Quality: Good})
	require.NoError(t, err)
	require.Len(t, evs, 2)
	_, err = e.Ack(now.Add(time.Second), "face3-gas.ch4.high", "alice", "on my way \"now\"")
	require.NoError(t, err)

	st, ok := e.Alarm("face3-gas.ch4.high")
	require.True(t, ok)
	raw, err := json.Marshal(st)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"face3-gas.ch4.high","site":"demo","device":"face3-gas","sensor":"ch4","condition":"high",
		"priority":2,"state":"acknowledged","active":true,"latched":false,"value":1.8,"limit":1,
		"since":"2026-03-01T08:00:00.123456789Z","updated":"2026-03-01T08:00:01.123456789Z",
		"acked_by":"alice","comment":"on my way \"now\""}`, string(raw))

	raw, err = json.Marshal(evs[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"seq":1,"ts":"2026-03-01T08:00:00.123456789Z","type":"activate","alarm":"face3-gas.ch4.high_high",
		"from":"normal","to":"unacknowledged","active":true,"value":1.8,"limit":1.5,"user":"","comment":""}`, string(raw))

	// never active: since is null; a bad-quality alarm has no limit
	st, _ = e.Alarm("face3-gas.ch4.bad")
	raw, err = json.Marshal(st)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	require.Nil(t, m["since"])
	require.Equal(t, 1.8, m["value"])
	require.Nil(t, m["limit"])
	require.Len(t, m, 15)

	raw, err = json.Marshal(Event{Value: math.NaN(), Limit: math.Inf(1)})
	require.NoError(t, err)
	require.True(t, json.Valid(raw))
}

func TestSortForDisplay(t *testing.T) {
	t0 := scriptStart
	s := []AlarmState{
		{ID: "p2-acked-new", Priority: 2, Acked: true, Since: t0.Add(5 * time.Second)},
		{ID: "p2-unacked-old", Priority: 2, Since: t0},
		{ID: "p1-acked", Priority: 1, Acked: true, Since: t0},
		{ID: "p2-unacked-new", Priority: 2, Since: t0.Add(3 * time.Second)},
		{ID: "p3-unacked", Priority: 3, Since: t0.Add(9 * time.Second)},
		{ID: "p1-unacked", Priority: 1, Since: t0},
	}
	SortForDisplay(s)
	var ids []string
	for _, x := range s {
		ids = append(ids, x.ID)
	}
	require.Equal(t, []string{"p1-unacked", "p1-acked", "p2-unacked-new", "p2-unacked-old", "p2-acked-new", "p3-unacked"}, ids)
	SortChronological(s)
	require.Equal(t, "p3-unacked", s[0].ID)
}

func TestUnknownPoint(t *testing.T) {
	e, err := New(Config{Points: []PointConfig{{Site: "s", Device: "d", Sensor: "a", Kind: "co"}}})
	require.NoError(t, err)
	_, err = e.Observe(scriptStart, Sample{Point: "d.zz"})
	require.ErrorIs(t, err, ErrUnknownPoint)
	evs, err := e.Step(scriptStart, []Sample{{Point: "d.zz"}, {Point: "d.a", Value: 50}})
	require.ErrorIs(t, err, ErrUnknownPoint)
	require.Len(t, evs, 1, "the known point is still evaluated")
	_, err = e.Restore(scriptStart, []byte("{garbage"))
	require.Error(t, err)
	_, err = e.Restore(scriptStart, []byte(`{"version":99}`))
	require.ErrorContains(t, err, "unsupported version")
	_, err = e.ActionResult(scriptStart, "nope", true, "")
	require.ErrorIs(t, err, ErrUnknownAction)
}
