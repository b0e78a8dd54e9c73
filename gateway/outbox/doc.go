// Package outbox is the gateway's durable store-and-forward queue: every
// reading batch, alarm state and alarm event is committed here (bbolt, fsync)
// before it is published, and leaves only when the publisher releases it
// (after the broker's PUBACK, or after canary ingest's receipt).
//
// Two lanes: alarms (alarm states and events; never dropped, drained ahead
// of any backlog) and readings (bounded: past max_bytes the oldest readings
// are dropped, counted and reported through OnDrop). Each stream (a device's
// readings, an alarm id's states, the site's events) has its own sequence
// number, allocated at commit and continuing across restarts, so a consumer
// can see a gap.
//
// Appends and releases from concurrent callers are coalesced by one commit
// goroutine into a single transaction and a single fsync (group commit): the
// throughput of many producers is bounded by fsync latency per group, not per
// append.
//
// It imports nothing of the project above it.
package outbox
