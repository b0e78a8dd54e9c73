package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// FuzzCommand throws arbitrary alarm ids, actions, content types and bodies
// at the command endpoint. It must never panic, never answer 5xx for bad
// input, always explain a refusal in JSON, and reach the backend only for a
// well-formed command, with the authenticated user.
func FuzzCommand(f *testing.F) {
	for _, s := range []struct{ id, action, ct, body string }{
		{"belt.t.high", "ack", "application/json", `{"comment":"seen"}`},
		{"belt.t.high", "shelve", "application/json", `{"comment":"maintenance","duration":"30m"}`},
		{"belt.t.high", "shelve", "application/json", `{"comment":"x","duration":"-1h"}`},
		{"face3-gas.ch4.high_high", "reset", "application/json; charset=utf-8", `{}`},
		{"belt.t.high", "unshelve", "text/plain", `{}`},
		{"no.such", "ack", "application/json", `{"comment":"\u0000\xff"}`},
		{"x", "ack", "application/json", `{"comment": 5}`},
		{"..", "ack", "application/json", `[1,2,3]`},
	} {
		f.Add(s.id, s.action, s.ct, s.body)
	}
	be := newFakeBackend()
	srv, err := New(Options{Backend: be, Users: testUsers(f), Registry: prometheus.NewRegistry()})
	require.NoError(f, err)
	be.srv = srv
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, id, action, ct, body string) {
		be.mu.Lock()
		be.commands = nil
		be.alarms = map[string]Alarm{}
		be.mu.Unlock()
		seedAlarms(be, time.Now())
		r, err := http.NewRequest(http.MethodPost, "/api/v1/alarms/"+url.PathEscape(id)+"/"+url.PathEscape(action), strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Authorization", "Bearer "+machineToken)
		w := &recorder{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.code >= 500 {
			t.Fatalf("status %d for id %q action %q body %q: %s", w.code, id, action, body, w.buf.String())
		}
		cmd, sent := be.lastCommand()
		if w.code >= 300 && w.code < 400 {
			// The mux redirects unclean paths ("a/../b") to their clean
			// form before any handler runs.
			if sent {
				t.Fatalf("redirected request reached the backend: %+v", cmd)
			}
			return
		}
		if w.code != http.StatusOK {
			var e errorBody
			if err := json.Unmarshal(w.buf.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("status %d without a JSON error: %q", w.code, w.buf.String())
			}
			if sent && w.code != http.StatusNotFound && w.code != http.StatusConflict && w.code != http.StatusBadRequest {
				t.Fatalf("command %+v reached the backend although the request was refused with %d", cmd, w.code)
			}
			return
		}
		if !sent || cmd.User != "scada" || cmd.Alarm != id || cmd.Action != action {
			t.Fatalf("accepted but backend got %+v (sent %v)", cmd, sent)
		}
	})
}
