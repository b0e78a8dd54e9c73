// Package ingest moves readings and alarms into InfluxDB with an
// at-least-once guarantee.
//
// Ingest is `canary ingest`: an MQTT consumer on a shared subscription
// (fixed client id, persistent session, QoS 1, manual acknowledgement) that
// acknowledges a message only after InfluxDB accepted the batch holding it,
// then publishes a delivery receipt per site. Writer is the InfluxDB side
// (blocking writes, own batching, own retries; a batch InfluxDB refuses as
// malformed goes to the dead-letter topic instead of being retried for ever).
// Direct uses the same Writer to drain a gateway's outbox straight into
// InfluxDB, for sites configured with an influxdb section.
//
// Points have a deterministic identity (measurement, tags, timestamp from
// the message), so a redelivered message overwrites itself.
//
// It imports gateway/mqtt, gateway/outbox and configs.
package ingest
