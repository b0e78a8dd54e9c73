package alerting

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Table (b) "KPI computation": figures from a scripted hour of alarms.
func TestKPIs(t *testing.T) {
	var cfg Config
	for n := 0; n < 12; n++ {
		cfg.Points = append(cfg.Points, PointConfig{Site: "s", Device: fmt.Sprintf("d%d", n), Sensor: "co", Kind: "co",
			Alarms: SensorAlarms{Comm: &LimitConfig{Timeout: d(2 * time.Hour)}}})
	}
	e, err := New(cfg)
	require.NoError(t, err)
	var log []Event
	obs := func(at time.Duration, dev int, v float64) {
		evs, err := e.Observe(scriptStart.Add(at), Sample{Point: fmt.Sprintf("d%d.co", dev), Value: v})
		require.NoError(t, err)
		log = append(log, evs...)
	}
	// 12 activations of high (P2) within the first 10 minutes: a flood
	for n := 0; n < 12; n++ {
		obs(time.Duration(n)*30*time.Second, n, 40)
	}
	// one detector chatters: 3 more activations of d0 within a minute, one of them fleeting
	obs(20*time.Minute, 0, 10)
	obs(21*time.Minute, 0, 40)
	obs(21*time.Minute+time.Second, 0, 10)
	obs(21*time.Minute+20*time.Second, 0, 40)
	obs(21*time.Minute+30*time.Second, 0, 10)
	obs(21*time.Minute+40*time.Second, 0, 80) // high and high_high (P1)
	_, err = e.Shelve(scriptStart.Add(30*time.Minute), "d5.co.high", "op", "known", time.Hour)
	require.NoError(t, err)
	log = append(log, e.Tick(scriptStart.Add(40*time.Minute))...)

	k := ComputeKPIs(scriptStart, scriptStart.Add(time.Hour), log, e.Alarms())
	require.Equal(t, 16, k.Annunciated)
	require.Equal(t, map[int]int{1: 1, 2: 15}, k.ByPriority)
	require.InDelta(t, 16.0, k.PerHour, 1e-9)
	require.InDelta(t, 16.0/6, k.Per10Min, 1e-9)
	require.Equal(t, 12, k.Peak10Min)
	require.InDelta(t, 100.0/6, k.PctOver10, 1e-9)
	require.Equal(t, AlarmCount{"d0.co.high", 4}, k.Top10[0])
	require.Len(t, k.Top10, 10)
	require.InDelta(t, 100*13.0/16, k.Top10Pct, 1e-9)
	require.Equal(t, 1, k.Chattering)
	require.Equal(t, 1, k.Fleeting)
	require.Equal(t, 1, k.Shelved)
	// flood from the 11th activation (5 min) until the tick at 40 min found < 5 in the window
	require.Equal(t, 35*time.Minute, k.FloodTime)
}
