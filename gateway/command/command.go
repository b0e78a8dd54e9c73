// Package command parses and answers operator commands — ack, shelve,
// unshelve, reset — as they arrive on a site's MQTT `cmd` topic, and
// describes them for the HTTP API, so that both entry points accept exactly
// the same thing. A malformed command is an error naming what is wrong; it
// never panics.
//
// It imports nothing of the project.
package command

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Action is what the operator asks for.
type Action string

// The actions, as written in the `action` field.
const (
	Ack      Action = "ack"
	Shelve   Action = "shelve"
	Unshelve Action = "unshelve"
	Reset    Action = "reset"
)

// MaxPayload bounds a command payload; anything larger is rejected unread.
const MaxPayload = 16 << 10

// MaxComment bounds the comment stored in the audit trail.
const MaxComment = 1024

// Command is one operator command.
type Command struct {
	ID       string        // request id, echoed in the result
	Action   Action        // ack | shelve | unshelve | reset
	Alarm    string        // alarm id: <device>.<sensor>.<condition> or <group>.<condition>
	User     string        // who asks; recorded in the audit trail
	Comment  string        // why
	Duration time.Duration // shelve only
}

// wire is the JSON form on the cmd topic.
type wire struct {
	ID       *string `json:"id"`
	Action   *string `json:"action"`
	Alarm    *string `json:"alarm"`
	User     *string `json:"user"`
	Comment  *string `json:"comment"`
	Duration *string `json:"duration"`
}

var (
	alarmIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*){1,2}$`)
	// userPattern is ^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$ with the length
	// checked apart (validUser): a counted repetition compiles to one copy
	// of the class per count, 60 KB at every start of every command and
	// 26 KB kept, where this is 3 KB.
	userPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]*$`)
)

// validUser reports whether s is a user name: letters, digits and ._@-,
// not starting with a punctuation mark, at most 64 bytes.
func validUser(s string) bool { return len(s) <= 64 && userPattern.MatchString(s) }

// Parse decodes and validates a command payload. On error the returned
// Command still carries the request id when one could be read, so that
// the rejection can be answered to the right request.
func Parse(payload []byte) (Command, error) {
	var c Command
	if len(payload) > MaxPayload {
		return c, fmt.Errorf("command is %d bytes, more than the limit of %d", len(payload), MaxPayload)
	}
	var w wire
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		// Try to recover the id for the answer.
		var idOnly struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(payload, &idOnly)
		c.ID = idOnly.ID
		return c, fmt.Errorf("command is not valid JSON: %s", jsonErr(err))
	}
	if dec.More() {
		return c, errors.New("command has trailing data after the JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return c, errors.New("command has trailing data after the JSON object")
	}
	if w.ID != nil {
		c.ID = *w.ID
	}
	if len(c.ID) > 128 {
		c.ID = c.ID[:128]
		return c, errors.New("id: longer than 128 characters")
	}
	var problems []string
	if w.Action == nil {
		problems = append(problems, "action: required (ack, shelve, unshelve or reset)")
	} else {
		switch a := Action(*w.Action); a {
		case Ack, Shelve, Unshelve, Reset:
			c.Action = a
		default:
			problems = append(problems, fmt.Sprintf("action: unknown action %q (want ack, shelve, unshelve or reset)", *w.Action))
		}
	}
	switch {
	case w.Alarm == nil || *w.Alarm == "":
		problems = append(problems, "alarm: required (an alarm id such as face3-gas.ch4.high)")
	case !alarmIDPattern.MatchString(*w.Alarm):
		problems = append(problems, fmt.Sprintf("alarm: %q is not an alarm id (want <device>.<sensor>.<condition> or <group>.<condition>)", clip(*w.Alarm)))
	default:
		c.Alarm = *w.Alarm
	}
	switch {
	case w.User == nil || *w.User == "":
		problems = append(problems, "user: required (who is acting is recorded in the audit trail)")
	case !validUser(*w.User):
		problems = append(problems, fmt.Sprintf("user: %q is not a user name (letters, digits, '.', '_', '@', '-', at most 64)", clip(*w.User)))
	default:
		c.User = *w.User
	}
	if w.Comment != nil {
		if len(*w.Comment) > MaxComment {
			problems = append(problems, fmt.Sprintf("comment: longer than %d bytes", MaxComment))
		} else {
			c.Comment = strings.TrimSpace(*w.Comment)
		}
	}
	if c.Action == Shelve {
		if w.Duration == nil || *w.Duration == "" {
			problems = append(problems, `duration: required for shelve (a duration such as "30m")`)
		} else if d, err := time.ParseDuration(*w.Duration); err != nil || d <= 0 {
			problems = append(problems, fmt.Sprintf("duration: %q is not a positive duration (such as 30m or 2h)", clip(*w.Duration)))
		} else {
			c.Duration = d
		}
	} else if w.Duration != nil && *w.Duration != "" {
		problems = append(problems, fmt.Sprintf("duration: only shelve takes a duration, not %s", c.Action))
	}
	if len(problems) > 0 {
		return c, errors.New(strings.Join(problems, "; "))
	}
	return c, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func jsonErr(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		if ute.Field == "" {
			return "want a JSON object"
		}
		return fmt.Sprintf("%s: want a %s", ute.Field, ute.Type)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// Result is the answer published on the site's cmd/result topic.
type Result struct {
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Answer builds the result for a command and the error it met (nil = ok).
func Answer(id string, err error) Result {
	if err != nil {
		return Result{ID: id, OK: false, Error: err.Error()}
	}
	return Result{ID: id, OK: true}
}

// JSON encodes the result.
func (r Result) JSON() []byte {
	b, _ := json.Marshal(r) // a struct of strings and a bool always marshals
	return b
}
