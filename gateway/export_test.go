package gateway

import "time"

// SetDropCalm sets dropCalm for a test; the returned func restores it.
func SetDropCalm(d time.Duration) func() {
	old := dropCalm
	dropCalm = d
	return func() { dropCalm = old }
}
