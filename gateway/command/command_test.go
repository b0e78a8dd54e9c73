package command

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Command
		wantErr string
	}{
		{
			name: "ack",
			in:   `{"id":"r1","action":"ack","alarm":"face3-gas.ch4.high","user":"alice","comment":"on it"}`,
			want: Command{ID: "r1", Action: Ack, Alarm: "face3-gas.ch4.high", User: "alice", Comment: "on it"},
		},
		{
			name: "shelve with duration",
			in:   `{"id":"r2","action":"shelve","alarm":"face3-gas.ch4.frozen","user":"bob","comment":"sensor swap","duration":"30m"}`,
			want: Command{ID: "r2", Action: Shelve, Alarm: "face3-gas.ch4.frozen", User: "bob", Comment: "sensor swap", Duration: 30 * time.Minute},
		},
		{
			name: "group alarm reset",
			in:   `{"id":"r3","action":"reset","alarm":"face3-vote.high_high","user":"carol"}`,
			want: Command{ID: "r3", Action: Reset, Alarm: "face3-vote.high_high", User: "carol"},
		},
		{name: "not json", in: `ack please`, wantErr: "not valid JSON"},
		{name: "empty", in: ``, wantErr: "not valid JSON"},
		{name: "array", in: `[1,2]`, wantErr: "not valid JSON"},
		{name: "unknown field", in: `{"id":"x","action":"ack","alarm":"a.b.high","user":"u","force":true}`, wantErr: `unknown field "force"`},
		{name: "unknown action", in: `{"id":"x","action":"silence","alarm":"a.b.high","user":"u"}`, wantErr: `unknown action "silence"`},
		{name: "missing user", in: `{"id":"x","action":"ack","alarm":"a.b.high"}`, wantErr: "user: required"},
		{name: "bad alarm id", in: `{"id":"x","action":"ack","alarm":"../etc","user":"u"}`, wantErr: "is not an alarm id"},
		{name: "shelve without duration", in: `{"id":"x","action":"shelve","alarm":"a.b.high","user":"u"}`, wantErr: "duration: required for shelve"},
		{name: "negative duration", in: `{"id":"x","action":"shelve","alarm":"a.b.high","user":"u","duration":"-5m"}`, wantErr: "not a positive duration"},
		{name: "duration on ack", in: `{"id":"x","action":"ack","alarm":"a.b.high","user":"u","duration":"5m"}`, wantErr: "only shelve takes a duration"},
		{name: "wrong type", in: `{"id":"x","action":1,"alarm":"a.b.high","user":"u"}`, wantErr: "action: want a string"},
		{name: "trailing data", in: `{"id":"x","action":"ack","alarm":"a.b.high","user":"u"} {}`, wantErr: "trailing data"},
		{name: "huge", in: `{"comment":"` + strings.Repeat("x", MaxPayload) + `"}`, wantErr: "more than the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRejectedCommandKeepsItsID(t *testing.T) {
	c, err := Parse([]byte(`{"id":"req-7","action":"explode","alarm":"a.b.high","user":"u"}`))
	require.Error(t, err)
	require.Equal(t, "req-7", c.ID)
	var r Result
	require.NoError(t, json.Unmarshal(Answer(c.ID, err).JSON(), &r))
	require.Equal(t, Result{ID: "req-7", OK: false, Error: err.Error()}, r)
	require.JSONEq(t, `{"id":"req-7","ok":true}`, string(Answer("req-7", nil).JSON()))
}

// FuzzParseCommand: arbitrary payloads never panic, and whatever is
// accepted is a complete, valid command.
func FuzzParseCommand(f *testing.F) {
	f.Add([]byte(`{"id":"r1","action":"ack","alarm":"face3-gas.ch4.high","user":"alice","comment":"x"}`))
	f.Add([]byte(`{"id":"r2","action":"shelve","alarm":"g.high","user":"b","duration":"30m"}`))
	f.Add([]byte(`{"action":null}`))
	f.Add([]byte(`nonsense`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if c.Alarm == "" || c.User == "" {
			t.Fatalf("accepted incomplete command %+v", c)
		}
		switch c.Action {
		case Ack, Unshelve, Reset:
			if c.Duration != 0 {
				t.Fatalf("duration on %s", c.Action)
			}
		case Shelve:
			if c.Duration <= 0 {
				t.Fatalf("shelve without duration")
			}
		default:
			t.Fatalf("accepted unknown action %q", c.Action)
		}
	})
}
