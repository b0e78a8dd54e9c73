package alerting

import (
	"sort"
	"time"
)

// KPIs are the alarm-system performance figures of SAFETY.md §1.6 /
// table (b) for one site (operator area) over [From, To), computed from
// the event log and the current alarm states.
type KPIs struct {
	From, To time.Time
	// Annunciated counts activations presented to the operator (not
	// shelved, suppressed or out of service).
	Annunciated int
	PerHour     float64
	Per10Min    float64
	// PctOver10 is the share of 10-minute intervals with more than 10 alarms.
	PctOver10 float64
	Peak10Min int
	FloodTime time.Duration
	FloodPct  float64
	// ByPriority counts annunciated activations per priority (1..4).
	ByPriority map[int]int
	// Top10 are the most frequent alarms; Top10Pct their share of Annunciated.
	Top10    []AlarmCount
	Top10Pct float64
	// Nuisance flags raised in the period.
	Chattering, Fleeting, Stale int
	// Shelved and OutOfService count alarms in those states now.
	Shelved, OutOfService int
}

// AlarmCount is one alarm's activation count.
type AlarmCount struct {
	Alarm string
	Count int
}

// ComputeKPIs evaluates the events of one site in [from, to).
func ComputeKPIs(from, to time.Time, events []Event, states []AlarmState) KPIs {
	k := KPIs{From: from, To: to, ByPriority: map[int]int{}}
	prio := map[string]int{}
	for _, s := range states {
		prio[s.ID] = s.Priority
		switch s.State {
		case Shelved:
			k.Shelved++
		case OutOfService:
			k.OutOfService++
		}
	}
	span := to.Sub(from)
	if span <= 0 {
		return k
	}
	nIntervals := int((span + 10*time.Minute - 1) / (10 * time.Minute))
	buckets := make([]int, nIntervals)
	counts := map[string]int{}
	var floodSince time.Time
	inFlood := false
	for _, ev := range events {
		if ev.TS.Before(from) || !ev.TS.Before(to) {
			continue
		}
		switch ev.Type {
		case EvActivate, EvUnsuppress:
			if ev.To != Unacknowledged {
				continue
			}
			k.Annunciated++
			k.ByPriority[prio[ev.Alarm]]++
			counts[ev.Alarm]++
			buckets[int(ev.TS.Sub(from)/(10*time.Minute))]++
		case EvChattering:
			k.Chattering++
		case EvFleeting:
			k.Fleeting++
		case EvStale:
			k.Stale++
		case EvFloodStart:
			inFlood, floodSince = true, ev.TS
		case EvFloodEnd:
			if inFlood {
				k.FloodTime += ev.TS.Sub(floodSince)
			} else {
				k.FloodTime += ev.TS.Sub(from)
			}
			inFlood = false
		}
	}
	if inFlood {
		k.FloodTime += to.Sub(floodSince)
	}
	k.PerHour = float64(k.Annunciated) / span.Hours()
	k.Per10Min = float64(k.Annunciated) / (span.Minutes() / 10)
	over := 0
	for _, c := range buckets {
		if c > 10 {
			over++
		}
		k.Peak10Min = max(k.Peak10Min, c)
	}
	k.PctOver10 = 100 * float64(over) / float64(nIntervals)
	k.FloodPct = 100 * k.FloodTime.Seconds() / span.Seconds()
	for id, c := range counts {
		k.Top10 = append(k.Top10, AlarmCount{id, c})
	}
	sort.Slice(k.Top10, func(i, j int) bool {
		if k.Top10[i].Count != k.Top10[j].Count {
			return k.Top10[i].Count > k.Top10[j].Count
		}
		return k.Top10[i].Alarm < k.Top10[j].Alarm
	})
	if len(k.Top10) > 10 {
		k.Top10 = k.Top10[:10]
	}
	top := 0
	for _, c := range k.Top10 {
		top += c.Count
	}
	if k.Annunciated > 0 {
		k.Top10Pct = 100 * float64(top) / float64(k.Annunciated)
	}
	return k
}
