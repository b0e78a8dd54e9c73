package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/command"
)

// SortAlarms orders alarms for the summary as SAFETY.md prescribes:
// priority ascending (P1 first); within a priority, unacknowledged
// (including returned-unacknowledged) before acknowledged; then activation
// time newest first. Ties fall back to the id so the order is stable.
func SortAlarms(as []Alarm) {
	sort.SliceStable(as, func(i, j int) bool {
		a, b := as[i], as[j]
		if pa, pb := prioKey(a.Priority), prioKey(b.Priority); pa != pb {
			return pa < pb
		}
		if ua, ub := unacked(a.State), unacked(b.State); ua != ub {
			return ua
		}
		if !a.Since.Equal(b.Since) {
			return a.Since.After(b.Since)
		}
		return a.ID < b.ID
	})
}

// prioKey puts an unknown priority (0 or out of range) first: an alarm the
// gateway could not classify is shown, not buried.
func prioKey(p int) int {
	if p < 1 || p > 4 {
		return 0
	}
	return p
}

func unacked(state string) bool {
	return state == StateUnacknowledged || state == StateReturnedUnacknowledged
}

// commandBody is the JSON body of POST /api/v1/alarms/{id}/{action}.
type commandBody struct {
	Comment  string `json:"comment"`
	Duration string `json:"duration"`
	OneShot  bool   `json:"one_shot"`
}

// maxComment is the MQTT command's bound: a control room forwards what its
// UI takes.
const maxComment = command.MaxComment

// decodeJSON reads a JSON object body into v, with a bounded size and no
// unknown fields. It returns the status and message for a bad body.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) (int, string) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type must be application/json, got %q", ct)
	}
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	dec := json.NewDecoder(body)
	// Read whole first: decoding `null` (or `[]`, `"x"`) into a struct is no
	// error to encoding/json, and such a body is not the object asked for.
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", mbe.Limit)
		case errors.Is(err, io.EOF):
			return http.StatusBadRequest, `empty body: want a JSON object such as {"comment": "..."}`
		default:
			return http.StatusBadRequest, "bad JSON body: " + err.Error()
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", mbe.Limit)
		}
		return http.StatusBadRequest, "bad JSON body: trailing data after the object"
	}
	if raw[0] != '{' {
		return http.StatusBadRequest, fmt.Sprintf(`bad JSON body: want a JSON object such as {"comment": "..."}, got %s`, clipJSON(raw))
	}
	obj := json.NewDecoder(bytes.NewReader(raw))
	obj.DisallowUnknownFields()
	if err := obj.Decode(v); err != nil {
		return http.StatusBadRequest, "bad JSON body: " + err.Error()
	}
	return 0, ""
}

// clipJSON is the start of a JSON value, for an error message.
func clipJSON(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "..."
	}
	return string(raw)
}

var actions = map[string]bool{"ack": true, "shelve": true, "unshelve": true, "reset": true,
	"out_of_service": true, "return_to_service": true}

// handleCommand serves POST /api/v1/alarms/{id}/{action}.
func (s *Server) handleCommand(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), r.PathValue("action")
	if !actions[action] {
		writeError(w, http.StatusNotFound, "unknown action %q (want ack, shelve, unshelve, reset, out_of_service or return_to_service)", action)
		return
	}
	minRole := configs.RoleOperator
	if command.NeedsEngineer(command.Action(action)) {
		minRole = configs.RoleEngineer // maintenance: authorised, as SAFETY.md asks
	}
	if !s.sameOrigin(r) {
		s.metrics.authFailures.WithLabelValues("cross_origin").Inc()
		writeError(w, http.StatusForbidden, "cross-origin request refused (Origin %q)", r.Header.Get("Origin"))
		return
	}
	p, ok := s.authorize(w, r, minRole)
	if !ok {
		return
	}
	reject := func(code int, format string, args ...any) {
		s.metrics.commands.WithLabelValues(action, "rejected").Inc()
		writeError(w, code, format, args...)
	}
	if !validID(id) {
		reject(http.StatusBadRequest, "alarm id %q is not an id (<device>.<sensor>.<condition>)", id)
		return
	}
	var body commandBody
	if code, msg := s.decodeJSON(w, r, &body); code != 0 {
		reject(code, "%s", msg)
		return
	}
	body.Comment = strings.TrimSpace(body.Comment)
	if !utf8.ValidString(body.Comment) || utf8.RuneCountInString(body.Comment) > maxComment {
		reject(http.StatusBadRequest, "comment: at most %d characters of valid UTF-8", maxComment)
		return
	}
	cmd := Command{Action: action, Alarm: id, User: p.User, Role: p.Role, Comment: body.Comment, OneShot: body.OneShot}
	switch {
	case action == "shelve" && body.Comment == "":
		// ISA-18.2: shelving needs a reason on record.
		reject(http.StatusBadRequest, "comment: a reason is required to shelve an alarm")
		return
	case action == "out_of_service" && body.Comment == "":
		reject(http.StatusBadRequest, "comment: a reason is required to take an alarm out of service")
		return
	case body.OneShot && action != "shelve":
		reject(http.StatusBadRequest, "one_shot: only allowed for shelve")
		return
	case body.OneShot && body.Duration != "":
		reject(http.StatusBadRequest, "a one-shot shelve lasts until the alarm returns: give one_shot or a duration, not both")
		return
	case action == "shelve" && !body.OneShot && body.Duration == "":
		reject(http.StatusBadRequest, `duration: required to shelve (e.g. "30m"), or "one_shot": true until the alarm returns`)
		return
	case body.Duration != "" && action != "shelve" && action != "out_of_service":
		reject(http.StatusBadRequest, "duration: only allowed for shelve and out_of_service")
		return
	}
	if body.Duration != "" {
		d, err := time.ParseDuration(body.Duration)
		switch {
		case err != nil:
			reject(http.StatusBadRequest, "duration %q: want a Go duration such as 30m or 2h", body.Duration)
			return
		case d <= 0:
			reject(http.StatusBadRequest, "duration %q: must be positive", body.Duration)
			return
		}
		cmd.Duration = d
	}

	err := s.backend.Command(r.Context(), cmd)
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknownAlarm):
		reject(http.StatusNotFound, "%s", err.Error())
		return
	case errors.Is(err, ErrNotAllowed):
		reject(http.StatusConflict, "%s", err.Error())
		return
	case errors.Is(err, ErrBadCommand):
		reject(http.StatusBadRequest, "%s", err.Error())
		return
	default:
		s.metrics.commands.WithLabelValues(action, "error").Inc()
		s.log.Error().Err(err).Str("alarm", id).Str("action", action).Str("user", p.User).Msg("command failed")
		writeError(w, http.StatusInternalServerError, "%s failed: %s", action, err.Error())
		return
	}
	s.metrics.commands.WithLabelValues(action, "ok").Inc()
	s.log.Info().Str("alarm", id).Str("action", action).Str("user", p.User).Msg("operator command")
	resp := struct {
		OK    bool   `json:"ok"`
		Alarm *Alarm `json:"alarm"`
	}{OK: true}
	for _, a := range s.backend.Alarms() {
		if a.ID == id {
			resp.Alarm = &a
			break
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

type sessionResp struct {
	User    string     `json:"user"`
	Role    string     `json:"role"`
	Token   string     `json:"token,omitempty"`
	Expires *time.Time `json:"expires,omitempty"`
}

// handleLogin serves POST /api/v1/session: basic credentials in, a session
// token out, so the UI keeps a token in sessionStorage and not a password.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-origin request refused (Origin %q)", r.Header.Get("Origin"))
		return
	}
	p, res, scheme := s.auth.authenticate(r, s.now())
	if res == authBusy {
		tooBusy(w)
		return
	}
	if res != authOK || scheme != "basic" {
		// The UI's own login form must not be overlaid by the browser's
		// password prompt, which a Basic challenge would trigger.
		if r.Header.Get("X-Canary-UI") != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="canary"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Basic realm="canary", charset="UTF-8"`)
		}
		if res == authNone || scheme != "basic" {
			s.metrics.authFailures.WithLabelValues("unauthenticated").Inc()
			writeError(w, http.StatusUnauthorized, "log in with HTTP basic credentials")
			return
		}
		s.metrics.authFailures.WithLabelValues("unauthenticated").Inc()
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	tok, exp, err := s.auth.newSession(p, s.now())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%s", err.Error())
		return
	}
	s.log.Info().Str("user", p.User).Str("role", p.Role).Msg("login")
	writeJSON(w, http.StatusOK, sessionResp{User: p.User, Role: p.Role, Token: tok, Expires: &exp})
}

// handleWhoAmI serves GET /api/v1/session.
func (s *Server) handleWhoAmI(w http.ResponseWriter, r *http.Request) {
	p, res, _ := s.auth.authenticate(r, s.now())
	if res == authBusy {
		tooBusy(w)
		return
	}
	if res != authOK {
		s.challenge(w, r, "not logged in")
		return
	}
	writeJSON(w, http.StatusOK, sessionResp{User: p.User, Role: p.Role})
}

// handleLogout serves DELETE /api/v1/session.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	s.auth.endSession(r)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
