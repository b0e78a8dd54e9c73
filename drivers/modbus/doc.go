// Package modbus is canary's Modbus field driver: it validates device and
// sensor configs, compiles each device's sensors into a read plan (the fewest
// requests per table) with one register codec per sensor, and polls devices
// over TCP, TCP+TLS, RTU and RTU-over-TCP links, turning every poll into a
// Batch of Readings that carry a quality (good, uncertain, bad) next to the
// value, so a lost or faulted sensor is never silent.
//
// One goroutine owns each link (a serial line or a TCP endpoint) and polls
// the devices behind it in turn; simonvetter/modbus is used underneath but
// never reconnects by itself, so the poller does (Close + Open).
//
// The codec (Codec, Encode) is shared with the simulator. The package
// imports nothing of the project above it: no gateway, MQTT or alarms.
package modbus
