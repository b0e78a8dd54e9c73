package mqtt

import (
	"context"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
)

// ConnectLogged makes c's first connection, for a client that paho then
// reconnects (AutoReconnect, ConnectRetry off): it logs every failed
// attempt at error level with its reason (a wrong password, an untrusted
// certificate, no route) and tries again (1 s doubling to 10 s) until it
// connects or ctx ends. paho's own ConnectRetry reports a failed attempt
// only on its debug logger: a consumer that never connected said nothing.
// The caller waits for it to return before it disconnects c, or a Connect
// made as ctx ended could leave a connection nobody owns.
func ConnectLogged(ctx context.Context, c paho.Client, log zerolog.Logger, broker string) {
	bo := Backoff{Min: time.Second, Max: 10 * time.Second}
	for ctx.Err() == nil {
		t := c.Connect()
		select {
		case <-t.Done():
		case <-ctx.Done():
			return
		}
		err := t.Error()
		if err == nil {
			return
		}
		d := bo.Next()
		log.Error().Err(err).Str("broker", broker).Dur("backoff", d).Msg("mqtt connect failed")
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
	}
}
