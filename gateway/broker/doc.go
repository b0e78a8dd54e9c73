// Package broker is an embedded MQTT broker (mochi-mqtt) for `canary demo`,
// `canary bench` and tests that want a broker in the same process. It is
// tuned for the project's at-least-once path: retained alarm states and
// queued QoS 1 messages never expire (mochi's default drops them after
// 24 h), and the per-client write queue and inflight window are raised so a
// busy subscriber is slowed, not silently skipped.
//
// Secure by default: it listens on loopback only; a non-loopback address
// needs an auth ledger (users and topic ACLs). Production sites should run
// Mosquitto or a clustered broker; this one keeps nothing on disk.
//
// It imports no other package of the project.
package broker
