package command

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
		{name: "empty", in: ``, wantErr: "command is empty"},
		{name: "array", in: `[1,2]`, wantErr: "not valid JSON"},
		{name: "unknown field", in: `{"id":"x","action":"ack","alarm":"a.b.high","user":"u","force":true}`, wantErr: `unknown field "force"`},
		{name: "unknown action", in: `{"id":"x","action":"silence","alarm":"a.b.high","user":"u"}`, wantErr: `unknown action "silence"`},
		{name: "missing user", in: `{"id":"x","action":"ack","alarm":"a.b.high"}`, wantErr: "user: required"},
		{name: "bad alarm id", in: `{"id":"x","action":"ack","alarm":"../etc","user":"u"}`, wantErr: "is not an alarm id"},
		{name: "shelve without duration", in: `{"id":"x","action":"shelve","alarm":"a.b.high","user":"u"}`, wantErr: "duration: required for shelve"},
		{name: "negative duration", in: `{"id":"x","action":"shelve","alarm":"a.b.high","user":"u","duration":"-5m"}`, wantErr: "not a positive duration"},
		{name: "duration on ack", in: `{"id":"x","action":"ack","alarm":"a.b.high","user":"u","duration":"5m"}`, wantErr: "only shelve and out_of_service take a duration, not ack"},
		{
			name: "one-shot shelve",
			in:   `{"id":"r5","action":"shelve","alarm":"a.b.high","user":"u","comment":"purging","one_shot":true}`,
			want: Command{ID: "r5", Action: Shelve, Alarm: "a.b.high", User: "u", Comment: "purging", OneShot: true},
		},
		{name: "one-shot shelve with a duration", in: `{"id":"x","action":"shelve","alarm":"a.b.high","user":"u","one_shot":true,"duration":"5m"}`, wantErr: "give one_shot or a duration, not both"},
		{name: "one_shot false is a timed shelve", in: `{"id":"x","action":"shelve","alarm":"a.b.high","user":"u","one_shot":false}`, wantErr: "duration: required for shelve"},
		{name: "one-shot ack", in: `{"id":"x","action":"ack","alarm":"a.b.high","user":"u","one_shot":true}`, wantErr: "one_shot: only shelve is one-shot, not ack"},
		{
			name: "out of service with an expiry",
			in:   `{"id":"r6","action":"out_of_service","alarm":"face3-gas.ch4","user":"eve","comment":"detector swap","duration":"4h"}`,
			want: Command{ID: "r6", Action: OutOfService, Alarm: "face3-gas.ch4", User: "eve", Comment: "detector swap", Duration: 4 * time.Hour},
		},
		{
			name: "out of service until returned",
			in:   `{"id":"r7","action":"out_of_service","alarm":"face3-gas.ch4.high","user":"eve","comment":"detector swap"}`,
			want: Command{ID: "r7", Action: OutOfService, Alarm: "face3-gas.ch4.high", User: "eve", Comment: "detector swap"},
		},
		{name: "out of service for no time", in: `{"id":"x","action":"out_of_service","alarm":"a.b","user":"u","duration":"0s"}`, wantErr: "not a positive duration"},
		{
			name: "return to service",
			in:   `{"id":"r8","action":"return_to_service","alarm":"face3-gas.ch4","user":"eve"}`,
			want: Command{ID: "r8", Action: ReturnToService, Alarm: "face3-gas.ch4", User: "eve"},
		},
		{name: "duration on return to service", in: `{"id":"x","action":"return_to_service","alarm":"a.b","user":"u","duration":"1h"}`, wantErr: "not return_to_service"},
		{name: "wrong type", in: `{"id":"x","action":1,"alarm":"a.b.high","user":"u"}`, wantErr: "action: want a string"},
		{name: "trailing data", in: `{"id":"x","action":"ack","alarm":"a.b.high","user":"u"} {}`, wantErr: "trailing data"},
		{
			name: "long comment in characters, not bytes",
			in:   `{"id":"r4","action":"ack","alarm":"a.b.high","user":"u","comment":"` + strings.Repeat("甲烷", MaxComment/2) + `"}`,
			want: Command{ID: "r4", Action: Ack, Alarm: "a.b.high", User: "u", Comment: strings.Repeat("甲烷", MaxComment/2)},
		},
		{name: "comment too long", in: `{"id":"x","action":"ack","alarm":"a.b.high","user":"u","comment":"` + strings.Repeat("x", MaxComment+1) + `"}`, wantErr: "comment: longer than 1000 characters"},
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
	f.Add([]byte(`{"id":"r3","action":"shelve","alarm":"g.high","user":"b","one_shot":true}`))
	f.Add([]byte(`{"id":"r4","action":"out_of_service","alarm":"d.s","user":"b","comment":"c","duration":"2h"}`))
	f.Add([]byte(`{"action":null}`))
	f.Add([]byte(`nonsense`))
	f.Add([]byte(`{"id":5,"action":1}`))
	f.Add([]byte(`{"ID":"x","id":{"a":[1]}} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r := Reject(data, "no"); !utf8.ValidString(r.ID) || len(r.ID) > maxID {
			t.Fatalf("rejection id %q", r.ID)
		}
		c, err := Parse(data)
		if !utf8.ValidString(c.ID) || len(c.ID) > maxID {
			t.Fatalf("id %q", c.ID)
		}
		if err != nil {
			return
		}
		if c.Alarm == "" || c.User == "" {
			t.Fatalf("accepted incomplete command %+v", c)
		}
		if c.OneShot && c.Action != Shelve {
			t.Fatalf("one_shot on %s", c.Action)
		}
		switch c.Action {
		case Ack, Unshelve, Reset, ReturnToService:
			if c.Duration != 0 {
				t.Fatalf("duration on %s", c.Action)
			}
		case Shelve:
			if (c.Duration > 0) == c.OneShot {
				t.Fatalf("shelve with duration %s, one-shot %v", c.Duration, c.OneShot)
			}
		case OutOfService:
			if c.Duration < 0 {
				t.Fatalf("out_of_service for %s", c.Duration)
			}
		default:
			t.Fatalf("accepted unknown action %q", c.Action)
		}
	})
}

// A command that cannot be run is answered with the sender's id whenever
// it can be read, and the error says why when it cannot.
func TestRejectedCommandIDs(t *testing.T) {
	ok := `"action":"ack","alarm":"a.b.high","user":"u"`
	long := strings.Repeat("x", 200)
	wide := "a" + strings.Repeat("é", 100) // 201 bytes; byte 128 is inside an é
	tests := []struct {
		name, in, wantID string
		wantErr          []string
	}{
		{name: "number id", in: `{"id":5,` + ok + `}`, wantID: "5",
			wantErr: []string{`id: want a string, not the number 5 (answered as "5")`}},
		{name: "number id as written", in: `{"id":1.50,` + ok + `}`, wantID: "1.50", wantErr: []string{"not the number 1.50"}},
		{name: "number id, other error first", in: `{"action":1,"id":7}`, wantID: "7",
			wantErr: []string{"action: want a string", `answered as "7"`}},
		{name: "number id, name in capitals", in: `{"ID":8,` + ok + `}`, wantID: "8"},
		{name: "trailing object", in: `{"id":"r1",` + ok + `} {}`, wantID: "r1", wantErr: []string{"trailing data"}},
		{name: "trailing garbage", in: `{"id":"r2",` + ok + `}xyz`, wantID: "r2", wantErr: []string{"trailing data"}},
		{name: "trailing data, long id", in: `{"id":"` + long + `",` + ok + `} 1`, wantID: long[:128],
			wantErr: []string{"trailing data", "id: longer than 128"}},
		{name: "over the limit, id first", in: `{"id":"big","comment":"` + strings.Repeat("x", MaxPayload) + `"}`, wantID: "big",
			wantErr: []string{"more than the limit"}},
		{name: "over the limit, id beyond it", in: `{"comment":"` + strings.Repeat("x", MaxPayload) + `","id":"late"}`, wantID: "",
			wantErr: []string{"more than the limit", "no id in its first 16384 bytes (the answer's id is empty)"}},
		{name: "cut short after the id", in: `{"id":"r3","action":"ack"`, wantID: "r3", wantErr: []string{"not valid JSON"}},
		{name: "unknown field", in: `{"id":"r4",` + ok + `,"force":true}`, wantID: "r4", wantErr: []string{`unknown field "force"`}},
		{name: "wrong type before the id", in: `{"action":1,"id":"r5"}`, wantID: "r5", wantErr: []string{"action: want a string"}},
		{name: "last id wins", in: `{"id":"a","id":"b","action":1}`, wantID: "b"},
		{name: "bool id", in: `{"id":true,` + ok + `}`, wantID: "",
			wantErr: []string{"id: want a string, not a bool (the answer's id is empty)"}},
		{name: "object id", in: `{"id":{"n":1},` + ok + `}`, wantID: "", wantErr: []string{"not an object (the answer's id is empty)"}},
		{name: "array id", in: `{"id":[1],` + ok + `}`, wantID: "", wantErr: []string{"not an array (the answer's id is empty)"}},
		{name: "not json", in: `ack please`, wantID: "", wantErr: []string{"not valid JSON", "no id could be read (the answer's id is empty)"}},
		{name: "broken before the id", in: `{"action":"ack",,"id":"r6"}`, wantID: "", wantErr: []string{"no id could be read"}},
		{name: "no id sent", in: `{"action":1}`, wantID: ""},
		{name: "empty", in: ``, wantID: "", wantErr: []string{"command is empty"}},
		{name: "long id cut at a character", in: `{"id":"` + wide + `",` + ok + `}`, wantID: wide[:127], wantErr: []string{"id: longer than 128"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			require.Error(t, err)
			require.Equal(t, tt.wantID, c.ID)
			require.True(t, utf8.ValidString(c.ID))
			for _, w := range tt.wantErr {
				require.Contains(t, err.Error(), w)
			}
			if tt.wantID != "" {
				require.NotContains(t, err.Error(), "the answer's id is empty")
			}
		})
	}
}

func TestReject(t *testing.T) {
	const why = "command queue full: not executed, try again"
	require.Equal(t, Result{ID: "q1", Error: why}, Reject([]byte(`{"id":"q1","action":"ack"}`), why))
	require.Equal(t, Result{ID: "9", Error: why + `; id: want a string, not the number 9 (answered as "9")`}, Reject([]byte(`{"id":9}`), why))
	require.Equal(t, Result{ID: "", Error: why + "; no id could be read (the answer's id is empty)"}, Reject([]byte(`nope`), why))
	require.Equal(t, Result{ID: "", Error: why}, Reject([]byte(`{"action":"ack"}`), why))
	big := []byte(`{"id":"b1","comment":"` + strings.Repeat("x", 2*MaxPayload) + `"}`)
	require.Equal(t, "b1", Reject(big, why).ID)
}

// TestResultJSONNotHTMLEscaped: the answer echoes an id and names what was
// wrong byte for byte, < > & included (docs/mqtt.md: payloads are not
// HTML-escaped), with no trailing newline.
func TestResultJSONNotHTMLEscaped(t *testing.T) {
	r := Answer(`<a&b>`, errors.New(`unknown alarm "x<y>&z"`))
	require.Equal(t, `{"id":"<a&b>","ok":false,"error":"unknown alarm \"x<y>&z\""}`, string(r.JSON()))
	require.Equal(t, `{"id":"q&1","ok":true}`, string(Answer("q&1", nil).JSON()))
	var back Result
	require.NoError(t, json.Unmarshal(r.JSON(), &back))
	require.Equal(t, r, back)
}
