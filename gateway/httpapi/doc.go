// Package httpapi is the gateway's HTTP side: the JSON API under /api/v1,
// the server-sent event stream, /metrics, /healthz, /readyz and the
// control-room web UI embedded in the binary.
//
// It does not own any alarm or reading state. The gateway implements
// Backend (the latest values, alarm states, device communication and the
// audit trail, and the operator commands) and pushes every change into
// Server.Publish, which fans it out to the live streams and keeps a short
// trend per sensor for the charts. The JSON types here are this package's
// own; the gateway adapts its state to them.
//
// Security: it listens on loopback unless configured otherwise, has no
// cookies (state changes need an Authorization header and a JSON body, so a
// cross-site form cannot forge one), checks Origin on state changes, and
// sets a strict Content-Security-Policy; the UI needs nothing from outside.
//
// It imports configs and internal leaves only; never alerting, drivers or
// other gateway packages.
package httpapi
