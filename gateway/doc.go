// Package gateway composes the edge gateway of `canary run`: the Modbus poll
// loops feed one core goroutine that owns the alarm engine, commits every
// poll's readings and every alarm transition to the durable outbox, keeps
// the latest state for the HTTP API and UI, runs interlock actions, and
// answers operator commands from MQTT and HTTP. The publisher drains the
// outbox to the broker.
//
// The alarm engine is single-threaded by design: everything that touches
// it (readings, ticks, commands, action results) goes through the core
// loop, so evaluation order is the order of arrival.
//
// It imports drivers/modbus, alerting, configs and its own sub-packages;
// nothing of cmd or simulator.
package gateway
