// Package mqtt is the gateway's MQTT side: the v1 topic and payload contract
// (an append-style encoder for reading batches with no reflection on the hot
// path, and strict decoders used by canary ingest), the shared client
// plumbing (TLS, username and password file, jittered backoff), and the
// Publisher that drains the outbox to the broker.
//
// Reconnect is owned here, not by paho: the Publisher turns paho's
// AutoReconnect off and makes a fresh client for every session. A paho token
// that completes across a reconnect is not proof of a PUBACK (paho issue
// #563), so a record is released only when its token completed without error
// on a session that is still up; every record not released when a session
// ends is published again, in order, on the next one.
//
// It imports gateway/outbox, gateway/command (the cmd/result answers it
// makes itself), configs and nothing else of the project.
package mqtt
