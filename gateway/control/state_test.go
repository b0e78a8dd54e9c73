package control

import (
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
	out := st.setReadings(m, at)
	require.Len(t, out, 1)
	require.Equal(t, at, out[0].Received)
	require.Equal(t, at, st.readings["north.face-gas/ch4"].Received)
}
