// Package loadtest holds the parts of the load scenario that need neither
// the simulator nor a running gateway: the generated site config, process
// CPU and memory figures from /proc, a subscriber that counts what reached
// the broker and times alarms, percentiles, and the result record printed by
// `canary bench` and scripts/load.sh.
//
// Composing the simulator with the gateway happens in cmd/canary (bench.go):
// gateway must not import simulator, and this package is imported only by
// cmd, so imports keep pointing one way.
package loadtest
