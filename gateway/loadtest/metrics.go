package loadtest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricSum adds up every series of the named metric family (counter or
// gauge) in g; with a label pair only the series carrying it.
func MetricSum(g prometheus.Gatherer, name string, label ...string) (float64, error) {
	fams, err := g.Gather()
	if err != nil {
		return 0, fmt.Errorf("gather metrics: %w", err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(label) == 2 {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == label[0] && lp.GetValue() != label[1] {
						continue series
					}
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum, nil
}
