package modbus

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/drivers/modbus/modbustest"
)

// A detector's status word sets its reading's quality (SAFETY table (b),
// device-status validation), read from an independent server (pymodbus):
// a fault bit makes a reading of 0 bad — not clean air — with the device
// answering (Fault: no comm loss); a warm-up bit makes it uncertain; a
// status word that cannot be read makes it bad; bits not named change
// nothing.
func TestStatusWordSetsQuality(t *testing.T) {
	// ch4 at holding 0, its status word at 40 (a separate read: the gap is
	// past max_gap), bit 0 fault, bit 1 warm-up.
	unit := func(status uint16) modbustest.Unit {
		return modbustest.Unit{HoldingSparse: map[int]uint16{0: 0, 40: status}}
	}
	srv := modbustest.StartTCP(t, modbustest.Spec{Units: map[int]modbustest.Unit{
		1: unit(0), 2: unit(1), 3: unit(2), 4: unit(0b1000),
		5: {HoldingSparse: map[int]uint16{0: 0}}, // no status word: exception 2
	}})
	sensors := func() []SensorConfig {
		ch4 := sensor("ch4", "holding", 0, "uint16", "")
		ch4.Status = &StatusConfig{Sensor: "ch4_status", BadBits: []int{0}, UncertainBits: []int{1}}
		return []SensorConfig{ch4, sensor("ch4_status", "holding", 40, "uint16", "")}
	}
	var devs []Device
	for u := 1; u <= 5; u++ {
		devs = append(devs, device("d"+string(rune('0'+u)), srv.URL, u, time.Second, sensors()))
	}
	ps, err := NewPollers(devs, Options{Logger: testLogger(t)})
	require.NoError(t, err)
	require.Len(t, ps, 1)
	got := map[string]Reading{}
	for _, b := range ps[0].PollOnce(t.Context()) {
		got[b.Device] = b.Readings[0]
	}
	require.Equal(t, QualityGood, got["d1"].Quality, "status 0: %+v", got["d1"])
	require.Equal(t, Reading{Sensor: "ch4", Quality: QualityBad, Fault: true, Reason: "status ch4_status bit 0 (bad)"}, got["d2"])
	require.Equal(t, Reading{Sensor: "ch4", Quality: QualityUncertain, Reason: "status ch4_status bit 1 (uncertain)"}, got["d3"])
	require.Equal(t, QualityGood, got["d4"].Quality, "a bit no rule names: %+v", got["d4"])
	require.Equal(t, QualityBad, got["d5"].Quality)
	require.False(t, got["d5"].Fault)
	require.Equal(t, "status word ch4_status unread", got["d5"].Reason)
}
