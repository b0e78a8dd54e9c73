// Package alerting is canary's alarm engine: the ISA-18.2 / IEC 62682
// alarm life cycle (unacknowledged, acknowledged, returned-unacknowledged,
// latched, shelved, suppressed by design, out of service) over limit,
// rate-of-change, deviation, bad-quality (NAMUR NE 43), communication-loss,
// frozen-value and TWA/STEL conditions; MooN voting groups with first-out;
// interlock actions as outputs; presets per sensor kind and profile with
// their regulatory sources.
//
// It is pure and deterministic: no I/O, no goroutines, no clock (time is
// passed in), no logging. It imports only the standard library and
// internal/configerr. See docs/alarms.md.
package alerting
