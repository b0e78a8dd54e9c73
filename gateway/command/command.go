// Package command parses and answers operator commands — ack, shelve,
// unshelve, reset, out_of_service, return_to_service — as they arrive on a
// site's MQTT `cmd` topic, and describes them for the HTTP API, so that both
// entry points accept exactly the same thing. A malformed command is an error naming what is wrong; it
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
	"unicode/utf8"
)

// Action is what the operator asks for.
type Action string

// The actions, as written in the `action` field.
const (
	Ack      Action = "ack"
	Shelve   Action = "shelve"
	Unshelve Action = "unshelve"
	Reset    Action = "reset"
	// OutOfService and ReturnToService take an alarm (or every alarm of a
	// point, id <device>.<sensor>) out of service for maintenance and back:
	// role engineer (NeedsEngineer).
	OutOfService    Action = "out_of_service"
	ReturnToService Action = "return_to_service"
)

// actionList names the actions in an error message.
const actionList = "ack, shelve, unshelve, reset, out_of_service or return_to_service"

// NeedsEngineer reports whether a is for the role engineer only (SAFETY.md:
// out of service is a maintenance action, authorised and logged); the
// others need operator or engineer.
func NeedsEngineer(a Action) bool { return a == OutOfService || a == ReturnToService }

// MaxPayload bounds a command payload; anything larger is rejected unread.
const MaxPayload = 16 << 10

// MaxComment bounds the comment stored in the audit trail, in characters:
// the HTTP API's bound too, so that a comment a gateway's own UI takes is
// taken when a control room forwards it here (1 024 bytes refused 400
// Chinese characters that the UI allowed).
const MaxComment = 1000

// Command is one operator command.
type Command struct {
	ID       string        // request id, echoed in the result
	Action   Action        // ack | shelve | unshelve | reset | out_of_service | return_to_service
	Alarm    string        // alarm id: <device>.<sensor>.<condition> or <group>.<condition>; <device>.<sensor> for every alarm of a point (out_of_service, return_to_service)
	User     string        // who asks; recorded in the audit trail
	Comment  string        // why
	Duration time.Duration // shelve (unless OneShot); out_of_service's expiry (0: until returned to service)
	// OneShot shelves until the alarm next returns to normal, instead
	// of for a Duration (shelve only).
	OneShot bool
}

// wire is the JSON form on the cmd topic.
type wire struct {
	ID       *string `json:"id"`
	Action   *string `json:"action"`
	Alarm    *string `json:"alarm"`
	User     *string `json:"user"`
	Comment  *string `json:"comment"`
	Duration *string `json:"duration"`
	OneShot  *bool   `json:"one_shot"`
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
// the rejection can be answered to the right request; when it could not,
// the error says why.
func Parse(payload []byte) (Command, error) {
	var c Command
	if len(payload) == 0 {
		return c, errors.New("command is empty")
	}
	if len(payload) > MaxPayload {
		var problem string
		c.ID, problem = readID(payload)
		msg := fmt.Sprintf("command is %d bytes, more than the limit of %d", len(payload), MaxPayload)
		if problem == errNoID {
			problem = fmt.Sprintf("no id in its first %d bytes (the answer's id is empty)", MaxPayload)
		}
		return c, withProblem(msg, problem)
	}
	var w wire
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		var problem string
		c.ID, problem = readID(payload)
		var ute *json.UnmarshalTypeError
		if problem != "" && errors.As(err, &ute) && ute.Field == "id" {
			// The problem names the id's type and what was answered.
			return c, errors.New("command is not valid JSON: " + problem)
		}
		return c, withProblem("command is not valid JSON: "+jsonErr(err), problem)
	}
	// The object decoded: its id answers whatever follows.
	if w.ID != nil {
		c.ID = *w.ID
	}
	if dec.More() {
		return c, withProblem("command has trailing data after the JSON object", clipID(&c.ID))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return c, withProblem("command has trailing data after the JSON object", clipID(&c.ID))
	}
	if p := clipID(&c.ID); p != "" {
		return c, errors.New(p)
	}
	var problems []string
	if w.Action == nil {
		problems = append(problems, "action: required ("+actionList+")")
	} else {
		switch a := Action(*w.Action); a {
		case Ack, Shelve, Unshelve, Reset, OutOfService, ReturnToService:
			c.Action = a
		default:
			problems = append(problems, fmt.Sprintf("action: unknown action %q (want %s)", *w.Action, actionList))
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
		if utf8.RuneCountInString(*w.Comment) > MaxComment {
			problems = append(problems, fmt.Sprintf("comment: longer than %d characters", MaxComment))
		} else {
			c.Comment = strings.TrimSpace(*w.Comment)
		}
	}
	c.OneShot = w.OneShot != nil && *w.OneShot
	hasDuration := w.Duration != nil && *w.Duration != ""
	switch {
	case c.Action == Shelve && c.OneShot:
		if hasDuration {
			problems = append(problems, "duration: a one-shot shelve lasts until the alarm returns; give one_shot or a duration, not both")
		}
	case c.Action == Shelve && !hasDuration:
		problems = append(problems, `duration: required for shelve (a duration such as "30m", or "one_shot": true until the alarm returns)`)
	case c.OneShot:
		problems = append(problems, fmt.Sprintf("one_shot: only shelve is one-shot, not %s", c.Action))
	case hasDuration && c.Action != Shelve && c.Action != OutOfService:
		problems = append(problems, fmt.Sprintf("duration: only shelve and out_of_service take a duration, not %s", c.Action))
	}
	if hasDuration && (c.Action == Shelve || c.Action == OutOfService) {
		if d, err := time.ParseDuration(*w.Duration); err != nil || d <= 0 {
			problems = append(problems, fmt.Sprintf("duration: %q is not a positive duration (such as 30m or 2h)", clip(*w.Duration)))
		} else {
			c.Duration = d
		}
	}
	if len(problems) > 0 {
		return c, errors.New(strings.Join(problems, "; "))
	}
	return c, nil
}

// maxID bounds the id echoed in an answer.
const maxID = 128

// errNoID is readID's problem when the payload ends or breaks before an id.
const errNoID = "no id could be read (the answer's id is empty)"

// clipID cuts an id longer than maxID at a character boundary, so that the
// answer still starts with the sender's id, and says so.
func clipID(id *string) string {
	if len(*id) <= maxID {
		return ""
	}
	n := maxID
	for n > 0 && !utf8.RuneStart((*id)[n]) {
		n--
	}
	*id = (*id)[:n]
	return fmt.Sprintf("id: longer than %d characters", maxID)
}

func withProblem(msg, problem string) error {
	if problem != "" {
		msg += "; " + problem
	}
	return errors.New(msg)
}

// readID reads the id of a payload that does not decode as a command, so
// that its rejection still reaches the sender. It reads the first
// MaxPayload bytes up to the first syntax error; as encoding/json does,
// it matches the name "id" in any case and takes the last one. A number id
// is answered with its text. problem is "" when the answer's id is the
// sender's (or the object has none), else why it is not.
func readID(payload []byte) (id, problem string) {
	dec := json.NewDecoder(bytes.NewReader(payload[:min(len(payload), MaxPayload)]))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", errNoID
	}
	found := false
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			break
		}
		if key, _ := k.(string); !strings.EqualFold(key, "id") {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				break
			}
			continue
		}
		v, err := dec.Token()
		if err != nil {
			break
		}
		found = true
		switch v := v.(type) {
		case string:
			id, problem = v, ""
		case json.Number:
			id = v.String()
			problem = fmt.Sprintf("id: want a string, not the number %s (answered as %q)", clip(id), clip(id))
		case nil:
			id, problem = "", ""
		default:
			// A bool, object or array. The rest of an object or array is
			// not skipped, so no later id is looked for.
			return "", fmt.Sprintf("id: want a string, not %s (the answer's id is empty)", kindOf(v))
		}
	}
	if t, err := dec.Token(); !found && (err != nil || t != json.Delim('}')) {
		return "", errNoID
	}
	if p := clipID(&id); p != "" {
		if problem != "" {
			p = problem + "; " + p
		}
		problem = p
	}
	return id, problem
}

func kindOf(t json.Token) string {
	switch t {
	case json.Delim('{'):
		return "an object"
	case json.Delim('['):
		return "an array"
	}
	return "a bool"
}

// Reject answers a command refused before it was parsed (retained, queue
// full, gateway stopping), with the id read from the payload when it can
// be and reason saying why it was not run.
func Reject(payload []byte, reason string) Result {
	id, problem := readID(payload)
	return Result{ID: id, OK: false, Error: withProblem(reason, problem).Error()}
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

// JSON encodes the result as every MQTT payload is written: without
// encoding/json's HTML escaping, so an id or error holding < > & is echoed
// byte for byte (docs/mqtt.md), and without a trailing newline.
func (r Result) JSON() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(r) // a struct of strings and a bool always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
