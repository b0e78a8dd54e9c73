package simulator

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/canary-gw/canary/configs"
	"go.yaml.in/yaml/v3"
)

// DeviceStatus is one simulated device as the control API shows it.
type DeviceStatus struct {
	ID   string `json:"id"`
	Unit int    `json:"unit"`
	// URL is the configured url; Address where it is served (the
	// resolved host:port, or the pseudo-terminal of an rtu:// device).
	URL       string            `json:"url"`
	Address   string            `json:"address"`
	Transport string            `json:"transport"`
	PTY       string            `json:"pty,omitempty"`
	State     string            `json:"state"`
	Faults    configs.SimFaults `json:"faults"`
	Sensors   []SensorStatus    `json:"sensors"`
}

// SensorStatus is one simulated sensor and its current value.
type SensorStatus struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Table   string `json:"table"`
	Address int    `json:"address"`
	Type    string `json:"type"`
	// Value is the engineering value. It is NaN or ±Inf when a Modbus
	// client wrote one into a float register, and NaN for a 4–20 mA sensor
	// in the fault band whose encoding cannot carry it (it answers
	// exception 04); JSON shows such a value as null.
	Value float64 `json:"value"`
	// Source is physics, scenario, held (control API), written (a Modbus
	// client wrote the register, e.g. a power-cut relay) or fault.
	Source string `json:"source"`
}

// MarshalJSON writes a value that is not a finite number as null (JSON has
// no NaN or Inf).
func (st SensorStatus) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID      string   `json:"id"`
		Kind    string   `json:"kind"`
		Table   string   `json:"table"`
		Address int      `json:"address"`
		Type    string   `json:"type"`
		Value   *float64 `json:"value"`
		Source  string   `json:"source"`
	}{st.ID, st.Kind, st.Table, st.Address, st.Type, finite(st.Value), st.Source})
}

// finite is v, or nil (JSON null) when v is NaN or ±Inf.
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// Devices is every simulated device with its sensors' current values.
func (s *Simulator) Devices() []DeviceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.clock.now()
	out := make([]DeviceStatus, 0, len(s.devices))
	for _, d := range s.devices {
		state, faults := d.linkAt(t)
		ds := DeviceStatus{ID: d.id, Unit: int(d.unit), URL: d.cfg.URL, Address: d.endpoint.addr,
			Transport: d.endpoint.link.scheme, State: state, Faults: faults, Sensors: make([]SensorStatus, 0, len(d.sensors))}
		if d.endpoint.tty != nil {
			ds.PTY = d.endpoint.tty.Name()
		}
		for _, sn := range d.sensors {
			v, src := sn.valueAt(t)
			if state == StateFault && d.faultBand(faults) && sn.cfg.Kind == "current" {
				v, src = math.NaN(), "fault"
				if sn.bandOK {
					v = sn.bandValue
				}
			}
			ds.Sensors = append(ds.Sensors, SensorStatus{ID: sn.cfg.ID, Kind: sn.cfg.Kind, Table: sn.shape.table,
				Address: int(sn.shape.addr), Type: sensorType(sn.cfg), Value: v, Source: src})
		}
		out = append(out, ds)
	}
	return out
}

// Handler is the control API, rooted at /api/v1:
//
//	GET    /api/v1/devices
//	GET    /api/v1/devices/{device}
//	PUT    /api/v1/devices/{device}/sensors/{sensor}   {"value": 2.0}
//	DELETE /api/v1/devices/{device}/sensors/{sensor}
//	PUT    /api/v1/devices/{device}/state              {"state": "online"|"offline"|"fault"}
//	PUT    /api/v1/devices/{device}/faults             {"latency":"2s","drop":0.3,"busy":0,"garbage":0,"signal":"auto"}
//	GET    /api/v1/scenarios
//	POST   /api/v1/scenarios/{name}                    optional body: a scenario (YAML or JSON) to define first
//	DELETE /api/v1/scenarios/{name}
//	GET    /api/v1/clock
//	PUT    /api/v1/clock                               {"time": "10m", "speed": 0}
func (s *Simulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/devices", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Devices())
	})
	mux.HandleFunc("GET /api/v1/devices/{device}", func(w http.ResponseWriter, r *http.Request) {
		for _, d := range s.Devices() {
			if d.ID == r.PathValue("device") {
				writeJSON(w, http.StatusOK, d)
				return
			}
		}
		writeError(w, fmt.Errorf("device %s: %w", r.PathValue("device"), ErrNotFound))
	})
	mux.HandleFunc("PUT /api/v1/devices/{device}/sensors/{sensor}", s.auth(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Value *float64 `json:"value"`
		}
		if err := readJSON(r, &body); err != nil {
			writeError(w, err)
			return
		}
		if body.Value == nil || math.IsNaN(*body.Value) || math.IsInf(*body.Value, 0) {
			writeError(w, fmt.Errorf("%w: body needs a finite number \"value\", e.g. {\"value\": 2.0}", ErrInvalid))
			return
		}
		if err := s.Hold(r.PathValue("device"), r.PathValue("sensor"), *body.Value); err != nil {
			writeError(w, err)
			return
		}
		s.writeSensor(w, r)
	}))
	mux.HandleFunc("DELETE /api/v1/devices/{device}/sensors/{sensor}", s.auth(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Release(r.PathValue("device"), r.PathValue("sensor")); err != nil {
			writeError(w, err)
			return
		}
		s.writeSensor(w, r)
	}))
	mux.HandleFunc("PUT /api/v1/devices/{device}/state", s.auth(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			State string `json:"state"`
		}
		if err := readJSON(r, &body); err != nil {
			writeError(w, err)
			return
		}
		if err := s.SetState(r.PathValue("device"), body.State); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"device": r.PathValue("device"), "state": body.State})
	}))
	mux.HandleFunc("PUT /api/v1/devices/{device}/faults", s.auth(func(w http.ResponseWriter, r *http.Request) {
		// configs.SimFaults reads latency as a duration string and writes
		// it the same way, so a GET's faults can be sent back.
		var f configs.SimFaults
		if err := readJSON(r, &f); err != nil {
			writeError(w, err)
			return
		}
		if err := s.SetFaults(r.PathValue("device"), f); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, f)
	}))
	mux.HandleFunc("GET /api/v1/scenarios", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Scenarios())
	})
	mux.HandleFunc("POST /api/v1/scenarios/{name}", s.auth(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeError(w, fmt.Errorf("%w: read body: %w", ErrInvalid, err))
			return
		}
		if len(strings.TrimSpace(string(raw))) > 0 {
			// A body defines the scenario first (JSON is YAML too).
			sc, err := parseScenario(raw)
			if err != nil {
				writeError(w, fmt.Errorf("%w: %w", ErrInvalid, err))
				return
			}
			if sc.Name == "" {
				sc.Name = name
			}
			if sc.Name != name {
				writeError(w, fmt.Errorf("%w: body names scenario %q, path %q", ErrInvalid, sc.Name, name))
				return
			}
			if err := s.AddScenario(sc); err != nil {
				writeError(w, err)
				return
			}
		}
		if err := s.StartScenario(name); err != nil {
			writeError(w, err)
			return
		}
		for _, st := range s.Scenarios() {
			if st.Name == name {
				writeJSON(w, http.StatusAccepted, st)
			}
		}
	}))
	mux.HandleFunc("DELETE /api/v1/scenarios/{name}", s.auth(func(w http.ResponseWriter, r *http.Request) {
		if err := s.StopScenario(r.PathValue("name")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /api/v1/clock", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		t, speed := s.clock.now(), s.clock.speed
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"time": t.String(), "seconds": t.Seconds(), "speed": speed})
	})
	mux.HandleFunc("PUT /api/v1/clock", s.auth(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Time  *string  `json:"time"`
			Speed *float64 `json:"speed"`
		}
		if err := readJSON(r, &body); err != nil {
			writeError(w, err)
			return
		}
		s.mu.Lock()
		t, speed := s.clock.now(), s.clock.speed
		s.mu.Unlock()
		if body.Time != nil {
			d, err := time.ParseDuration(*body.Time)
			if err != nil {
				writeError(w, fmt.Errorf("%w: time %q: want a duration such as \"10m\"", ErrInvalid, *body.Time))
				return
			}
			t = d
		}
		if body.Speed != nil {
			speed = *body.Speed
		}
		if err := s.SetClock(t, speed); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"time": t.String(), "seconds": t.Seconds(), "speed": speed})
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	return mux
}

func (s *Simulator) writeSensor(w http.ResponseWriter, r *http.Request) {
	v, src, err := s.Value(r.PathValue("device"), r.PathValue("sensor"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": r.PathValue("device"), "sensor": r.PathValue("sensor"), "value": finite(v), "source": src})
}

// auth guards state-changing requests. A web page the operator happens to
// visit must not be able to drive the simulator (and through it a gateway's
// alarms and interlocks): a request from a browser names its Origin, which
// must be this server; and the Host must be an IP address or localhost, so a
// DNS-rebinding name cannot pose as this server. A control token, when set,
// is required on top.
func (s *Simulator) auth(h http.HandlerFunc) http.HandlerFunc {
	want := []byte("Bearer " + s.opts.ControlToken)
	return func(w http.ResponseWriter, r *http.Request) {
		if err := sameSite(r); err != nil {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
			return
		}
		if s.opts.ControlToken != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		h(w, r)
	}
}

// sameSite refuses cross-origin browser requests and unknown host names.
func sameSite(r *http.Request) error {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host != "localhost" && net.ParseIP(strings.Trim(host, "[]")) == nil {
		return fmt.Errorf("host %q is not an IP address or localhost", r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("cross-origin request from %q refused", o)
		}
	}
	return nil
}

func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %w", ErrInvalid, err)
	}
	return nil
}

// writeJSON encodes v before it sends the status, so that a value JSON
// cannot carry answers 500 with an error instead of 200 and an empty body.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(map[string]string{"error": "encode answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// parseScenario reads one scenario, strictly (unknown keys are errors).
func parseScenario(raw []byte) (configs.Scenario, error) {
	var sc configs.Scenario
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		return sc, fmt.Errorf("scenario: %w", err)
	}
	return sc, nil
}
