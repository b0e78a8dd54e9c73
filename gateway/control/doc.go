// Package control is the central control room of `canary control`: the same
// HTTP API and UI as an edge gateway (gateway/httpapi), fed over MQTT from
// every site on the broker instead of from a local alarm engine. It
// subscribes to each site's retained alarm and status topics, its readings
// and its events, and sends operator actions on the site's cmd topic,
// answering the HTTP call only when the site's gateway has answered on
// cmd/result: the alarm engine on the edge stays the one authority.
//
// Device and alarm ids are qualified with the site (`<site>.<device>`,
// `<site>.<alarm-id>`) because two sites may use the same ids; the `site`
// field of every item carries the bare site id.
//
// It imports configs, gateway/httpapi and gateway/mqtt; nothing of cmd or
// simulator.
package control
