package control

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/gateway/mqtt"
)

// A reading carries when the control room received it, so that the API
// judges its age by that too (httpapi.TestReadingAgeIsTheOlderOfTsAndReceipt):
// a site whose clock is ahead does not keep its last values fresh after it
// falls silent.
func TestReadingsCarryTheirReceipt(t *testing.T) {
	st := newState()
	at := time.Now()
	m := mqtt.Readings{Site: "north", Device: "face-gas", TS: at.Add(time.Hour).UTC(),
		Readings: []mqtt.Reading{{Sensor: "ch4", Kind: "methane", Unit: "%vol", Value: 0.4, Valid: true, Quality: "good"}}}
	out, fresh := st.setReadings(m, at)
	require.True(t, fresh)
	require.Len(t, out, 1)
	require.Equal(t, at, out[0].Received)
	require.Equal(t, at, st.readings["north.face-gas/ch4"].Received)
}

// A readings message older than its device's newest by both seq and time
// is a republished poll (receipt mode) and changes nothing; one older by
// only one of them is news: seqs start again after a gateway's outbox is
// replaced, and times go back after a step of its wall clock.
func TestRepublishedOlderPollIsNotNews(t *testing.T) {
	st := newState()
	t0 := time.Now().UTC()
	poll := func(seq uint64, ts time.Time, v float64) mqtt.Readings {
		return mqtt.Readings{Site: "north", Device: "face-gas", Seq: seq, TS: ts,
			Readings: []mqtt.Reading{{Sensor: "ch4", Kind: "methane", Unit: "%vol", Value: v, Valid: true, Quality: "good"}}}
	}
	value := func() float64 { return *st.readings["north.face-gas/ch4"].Value }
	for _, step := range []struct {
		name      string
		m         mqtt.Readings
		fresh     bool
		wantValue float64
	}{
		{"the first poll", poll(5, t0, 0.5), true, 0.5},
		{"republished, 30 s older by both", poll(3, t0.Add(-30*time.Second), 0.3), false, 0.5},
		{"the same poll again (a QoS 1 duplicate)", poll(5, t0, 0.5), false, 0.5},
		{"the next poll", poll(6, t0.Add(time.Second), 0.6), true, 0.6},
		{"after the gateway's outbox was replaced: seq 1, newer time", poll(1, t0.Add(2*time.Second), 0.7), true, 0.7},
		{"after its wall clock stepped back an hour: newer seq", poll(2, t0.Add(-time.Hour), 0.8), true, 0.8},
	} {
		_, fresh := st.setReadings(step.m, time.Now())
		require.Equal(t, step.fresh, fresh, step.name)
		require.Equal(t, step.wantValue, value(), step.name)
	}
}

// A site that comes online again, or whose status reports a device's seqs
// lower than the last poll's, may have started its seqs and its clock
// again (a replaced box): its next polls are news, though older by both.
func TestNewGatewaySessionForgetsThePollMarks(t *testing.T) {
	st := newState()
	t0 := time.Now().UTC()
	poll := func(seq uint64, ts time.Time) mqtt.Readings {
		return mqtt.Readings{Site: "north", Device: "face-gas", Seq: seq, TS: ts,
			Readings: []mqtt.Reading{{Sensor: "ch4", Kind: "methane", Unit: "%vol", Value: float64(seq), Valid: true, Quality: "good"}}}
	}
	status := func(state string, lastSeq uint64) siteStatus {
		var s siteStatus
		require.NoError(t, json.Unmarshal([]byte(fmt.Sprintf(`{"state":%q,"site":"north","devices":[{"device":"face-gas","comm":"ok","last_seq":%d}]}`, state, lastSeq)), &s))
		return s
	}
	st.setStatus("north", status("online", 5000))
	_, fresh := st.setReadings(poll(5000, t0), time.Now())
	require.True(t, fresh)
	_, fresh = st.setReadings(poll(1, t0.Add(-10*time.Minute)), time.Now())
	require.False(t, fresh, "same session: a republished older poll")

	st.setStatus("north", siteStatus{State: "offline", Site: "north"}) // the MQTT will
	st.setStatus("north", siteStatus{State: "online", Site: "north"})  // before its devices are known
	_, fresh = st.setReadings(poll(1, t0.Add(-10*time.Minute)), time.Now())
	require.True(t, fresh, "a new session: seq 1 on a clock behind is news")

	_, fresh = st.setReadings(poll(7000, t0), time.Now())
	require.True(t, fresh)
	st.setStatus("north", status("online", 3))
	_, fresh = st.setReadings(poll(4, t0.Add(-time.Minute)), time.Now())
	require.True(t, fresh, "the status reports the seqs started again")
}

// A site's fault hold is what its retained status says: set while the
// status carries it, gone when a status without it comes, or the site
// goes offline (the will). Sites are listed in order.
func TestFaultHoldsFollowTheStatus(t *testing.T) {
	st := newState()
	var held siteStatus
	require.NoError(t, json.Unmarshal([]byte(`{"state":"online","site":"south","fault_hold":{"since":"2026-12-01T03:00:00Z","reason":"gateway overloaded"}}`), &held))
	_, changed := st.setStatus("south", held)
	require.True(t, changed)
	held.Site = "north"
	_, changed = st.setStatus("north", held)
	require.True(t, changed)
	_, changed = st.setStatus("north", held) // the status every minute
	require.False(t, changed, "the same hold again is no change")
	got := st.faultHolds()
	require.Equal(t, uint64(2), got.Gen)
	require.Len(t, got.Holds, 2)
	require.Equal(t, "north.", got.Holds[0].Alarm)
	require.Equal(t, "south.", got.Holds[1].Alarm)
	require.Equal(t, "fault_hold", got.Holds[1].Type)
	require.Equal(t, "gateway overloaded", got.Holds[1].Comment)
	require.True(t, got.Holds[1].TS.Equal(time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)))

	_, changed = st.setStatus("south", siteStatus{State: "online", Site: "south"})
	require.True(t, changed)
	_, changed = st.setStatus("north", siteStatus{State: "offline", Site: "north"})
	require.True(t, changed)
	_, changed = st.setStatus("north", siteStatus{State: "offline", Site: "north"})
	require.False(t, changed)
	require.Empty(t, st.faultHolds().Holds)
	require.Equal(t, uint64(4), st.faultHolds().Gen)
}
