package alerting

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A percent rate whose window's reference is 0 alarms on any change: a
// change from 0 is ±Inf percent, never "no change".
func TestRatePercentFromZero(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit float64
		vals  []float64
		want  float64 // the rate alarm's value after the last sample
		alarm bool
	}{
		{"rise from 0", 50, []float64{0, 0, 5}, math.Inf(1), true},
		{"no change at 0", 50, []float64{0, 0, 0}, 0, false},
		{"fall below a 0 maximum", -10, []float64{-5, 0, -3}, math.Inf(-1), true},
		{"rise from a nonzero reference", 50, []float64{2, 2, 3}, 50, true},
		{"small rise from a nonzero reference", 50, []float64{2, 2, 2.5}, 25, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := tc.limit
			hi := 100.0
			e := newEngine(t, Config{Points: []PointConfig{{Site: "s", Device: "d", Sensor: "pt", Kind: "pressure",
				Poll: time.Second, Alarms: SensorAlarms{Range: []float64{-10, 200}, High: &LimitConfig{Limit: &hi},
					Rate: &LimitConfig{Limit: &lim, Percent: ptrTo(true), Period: ptrTo(time.Minute)}}}}})
			for i, v := range tc.vals {
				_, err := e.Step(scriptStart.Add(time.Duration(i)*10*time.Second), []Sample{{Point: "d.pt", Value: v}})
				require.NoError(t, err)
			}
			st, _ := e.Alarm("d.pt.rate")
			require.Equal(t, tc.alarm, st.Active)
			require.Equal(t, tc.want, st.Value)
			_, err := e.Snapshot(scriptStart.Add(time.Minute))
			require.NoError(t, err, "an infinite value is not saved")
			_, err = st.MarshalJSON()
			require.NoError(t, err)
		})
	}
}

func ptrTo[T any](v T) *T { return &v }
