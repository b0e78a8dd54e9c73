package alerting

import "sort"

// SortForDisplay orders an alarm summary as SAFETY.md §6 / table (b)
// prescribe: priority ascending (P1 first); within a priority
// unacknowledged (including returned-unacknowledged) before acknowledged;
// then newest activation first; ties by id for a stable display.
func SortForDisplay(s []AlarmState) {
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if a.Acked != b.Acked {
			return !a.Acked
		}
		if !a.Since.Equal(b.Since) {
			return a.Since.After(b.Since)
		}
		return a.ID < b.ID
	})
}

// SortChronological orders alarms by activation time, newest first.
func SortChronological(s []AlarmState) {
	sort.SliceStable(s, func(i, j int) bool {
		if !s[i].Since.Equal(s[j].Since) {
			return s[i].Since.After(s[j].Since)
		}
		return s[i].ID < s[j].ID
	})
}
