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

// FuzzPayloadJSON checks the hand-written alarm and event encoders against
// encoding/json's decoder: whatever an operator typed as user or comment
// (control characters, invalid UTF-8, any value) gives valid JSON that
// decodes to what was typed, each invalid byte replaced by U+FFFD. Before
// internal/jsonenc, a comment holding "\u0007" made the payload invalid.
func FuzzPayloadJSON(f *testing.F) {
	f.Add("alice", "on my way \"now\"", 1.8)
	f.Add("bob", "bell\a nul\x00 vt\v del\x7f", -0.0)
	f.Add("c\xffd", "tag \U000e0001 line \u2028 \xe2\x82", 1e21)
	f.Add("", "", 1e-7)
	f.Fuzz(func(t *testing.T, user, comment string, value float64) {
		now := time.Date(2026, 3, 1, 8, 0, 0, 123456789, time.UTC)
		st := AlarmState{ID: "d.s.high", Site: "demo", Device: "d", Sensor: "s", Condition: High, Priority: 2,
			State: Unacknowledged, Active: true, Value: value, Limit: 1, Since: now, Updated: now, AckedBy: user, Comment: comment}
		ev := Event{Seq: 7, TS: now, Type: EvAck, Alarm: "d.s.high", From: Unacknowledged, To: Acknowledged, Active: true,
			Value: value, Limit: math.NaN(), User: user, Comment: comment}
		stRaw, _ := st.MarshalJSON()
		evRaw, _ := ev.MarshalJSON()
		for _, raw := range [][]byte{stRaw, evRaw} {
			if !json.Valid(raw) {
				t.Fatalf("invalid JSON: %s", raw)
			}
			var got struct {
				User    *string  `json:"user"`
				AckedBy *string  `json:"acked_by"`
				Comment string   `json:"comment"`
				Value   *float64 `json:"value"`
			}
			require.NoError(t, json.Unmarshal(raw, &got))
			who := got.User
			if who == nil {
				who = got.AckedBy
			}
			require.NotNil(t, who)
			require.Equal(t, string([]rune(user)), *who)
			require.Equal(t, string([]rune(comment)), got.Comment)
			if math.IsNaN(value) || math.IsInf(value, 0) {
				require.Nil(t, got.Value)
			} else {
				require.NotNil(t, got.Value)
				require.Equal(t, value, *got.Value)
			}
		}
	})
}
