package alerting

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/canary-gw/canary/internal/configerr"
)

// Resolved is a point's compiled alarm configuration: its preset with the
// sensor's overrides applied.
type Resolved struct {
	Kind, Profile, Unit string
	Min, Max            float64
	// FaultBelow, with HasFaultBelow, is a floor under which a reading is
	// a sensor fault where no range is known: a toxic gas's concentration
	// cannot be negative, and a transmitter driven below its zero (a wire
	// break on a 4-20 mA loop scaled to ppm) must not read as clean air.
	FaultBelow     float64
	HasFaultBelow  bool
	NE43           bool
	SafetyCritical bool
	Source         string
	Conditions     []CondSpec
}

// Cond returns the compiled condition c, if configured.
func (r *Resolved) Cond(c Condition) (CondSpec, bool) {
	for _, s := range r.Conditions {
		if s.Condition == c {
			return s, true
		}
	}
	return CondSpec{}, false
}

func (a *SensorAlarms) get(c Condition) *LimitConfig {
	switch c {
	case HighHigh:
		return a.HighHigh
	case High:
		return a.High
	case Low:
		return a.Low
	case LowLow:
		return a.LowLow
	case Rate:
		return a.Rate
	case Deviation:
		return a.Deviation
	case Bad:
		return a.Bad
	case Comm:
		return a.Comm
	case Frozen:
		return a.Frozen
	case TWA:
		return a.TWA
	case STEL:
		return a.STEL
	}
	return nil
}

var gasKinds = map[string]bool{"methane": true, "combustible": true, "h2s": true, "co": true, "oxygen": true, "toxic": true}

// Resolve compiles the alarm conditions of one sensor from its kind,
// profile ("" = the kind's default), unit ("" = the preset's), poll
// interval (0 = 1s) and `alarms:` overrides. The returned error holds
// configerr field errors with paths relative to the sensor ("kind",
// "alarms.high.limit"); it may hold only warnings (check with
// configerr.HasErrors), in which case Resolved is usable.
func Resolve(kind, profile, unit string, poll time.Duration, a SensorAlarms) (Resolved, error) {
	var buf [len(sensorConditions)]CondSpec
	r, n, err := resolve(&buf, kind, profile, unit, poll, a)
	if n > 0 {
		r.Conditions = append([]CondSpec(nil), buf[:n]...)
	}
	return r, err
}

// resolve is Resolve writing the conditions into dst (n of them) instead
// of a new slice: New resolves thousands of sensors and keeps one copy of
// each distinct result.
func resolve(dst *[len(sensorConditions)]CondSpec, kind, profile, unit string, poll time.Duration, a SensorAlarms) (r Resolved, n int, err error) {
	var errs configerr.List
	p := lookupPreset(kind, profile)
	if p == nil {
		if _, known := Kinds()[kind]; !known {
			errs.Add("kind", "unknown sensor kind %q (want one of %s)", kind, strings.Join(KindNames(), ", "))
		} else {
			errs.Add("profile", "unknown profile %q for kind %s (want one of %s)", profile, kind, strings.Join(Kinds()[kind], ", "))
		}
		return Resolved{}, 0, errs.Err()
	}
	r = Resolved{Kind: p.Kind, Profile: p.Profile, Unit: p.Unit, Min: p.Min, Max: p.Max, NE43: p.NE43,
		SafetyCritical: p.SafetyCritical, Source: p.Source}
	if unit != "" && unit != p.Unit {
		if len(p.Conditions) > 0 {
			errs.Add("unit", "unit %q differs from the %s/%s preset's %q: limits are never compared across units; pick a profile in %s or leave unit unset", unit, p.Kind, p.Profile, p.Unit, unit)
		}
		r.Unit = unit
	}
	if a.Range != nil {
		if len(a.Range) != 2 || !(a.Range[0] < a.Range[1]) || !finite(a.Range[0]) || !finite(a.Range[1]) {
			errs.Add("alarms.range", "want [min, max] with min < max, got %v", a.Range)
		} else {
			r.Min, r.Max = a.Range[0], a.Range[1]
			// Below the range by 2 % of its span a reading is a sensor
			// fault (the bad alarm): a range whose floor is lower than
			// the preset's (a lower minimum or a wider span) lets a
			// transmitter driven below its zero read as clean air.
			if p.Max > p.Min && !p.NE43 && faultFloor(r.Min, r.Max) < faultFloor(p.Min, p.Max) {
				loosen(&errs, "alarms.range", a.OverrideRegulatory, "range %v puts the sensor-fault floor at %v, below the %s/%s preset's %v (range %v..%v): readings in between would no longer be a sensor fault (%s)",
					a.Range, faultFloor(r.Min, r.Max), p.Kind, p.Profile, faultFloor(p.Min, p.Max), p.Min, p.Max, p.Source)
			}
		}
	}
	if a.SafetyCritical != nil {
		if p.SafetyCritical && !*a.SafetyCritical {
			loosen(&errs, "alarms.safety_critical", a.OverrideRegulatory, "clears safety_critical of the %s/%s preset: a bad or lost sensor would no longer trip its interlock (%s)", p.Kind, p.Profile, p.Source)
		}
		r.SafetyCritical = *a.SafetyCritical
	}
	if poll <= 0 {
		poll = time.Second
	}
	span := r.Max - r.Min

	// Implicit fault conditions: a lost or faulted sensor is always an alarm.
	gas := gasKinds[p.Kind]
	faultPrio := 3
	if gas {
		faultPrio = 2
	}
	if r.SafetyCritical {
		faultPrio = 1
	}
	commTimeout := 3 * poll
	if p.CommTimeoutMax > 0 && commTimeout > p.CommTimeoutMax {
		commTimeout = p.CommTimeoutMax
	}
	var baseBuf [8]CondSpec
	base := append(baseBuf[:0], p.Conditions...)
	base = append(base,
		CondSpec{Condition: Bad, Priority: faultPrio, Timeout: DefaultUncertainLimit, Regulatory: true, Source: srcNE43 + "; fail-safe principle (SAFETY §3.3)"},
		CondSpec{Condition: Comm, Priority: faultPrio, Timeout: commTimeout, Regulatory: true, Source: "SAFETY §3.2: comm timeout 3 x poll; " + srcCoalPoll},
	)
	if p.SpanDeadband > 0 && span > 0 {
		for i := range base {
			if base[i].Condition.isHighSide() || base[i].Condition.isLowSide() {
				base[i].Deadband = p.SpanDeadband * span / 100
			}
		}
	}

	for ci, c := range sensorConditions {
		path := condPaths[ci]
		o := a.get(c)
		var spec CondSpec
		found := false
		for _, b := range base {
			if b.Condition == c {
				spec, found = b, true
				break
			}
		}
		if !found {
			if o == nil {
				continue
			}
			if o.Enabled != nil && !*o.Enabled {
				continue
			}
			spec = condDefaults(p, c)
			if p.SpanDeadband > 0 && span > 0 && (c.isHighSide() || c.isLowSide()) {
				spec.Deadband = p.SpanDeadband * span / 100
			}
			if c == Frozen && gas && r.Max > r.Min {
				spec.ZeroBand = 0.01 * r.Max
			}
			if o.Limit == nil && c != Frozen {
				errs.Add(path+".limit", "required: the %s/%s preset has no %s condition", p.Kind, p.Profile, c)
			}
		}
		spec.ResetNeedsAck = true
		if o != nil {
			override := o.OverrideRegulatory || a.OverrideRegulatory
			applyOverride(&errs, path, &spec, o, override, p)
			if o.Enabled != nil && !*o.Enabled {
				if spec.Regulatory {
					loosen(&errs, path+".enabled", override, "disables the %s condition of the %s/%s preset (%s)", c, p.Kind, p.Profile, spec.Source)
				}
				continue
			}
		}
		if c == Comm && p.CommTimeoutMax > 0 && spec.Timeout > p.CommTimeoutMax {
			loosen(&errs, path+".timeout", o != nil && (o.OverrideRegulatory || a.OverrideRegulatory), "comm timeout %s exceeds %s required by the %s/%s profile (%s)", spec.Timeout, p.CommTimeoutMax, p.Kind, p.Profile, srcCoalPoll)
		}
		if c == Frozen && spec.Samples < 2 {
			errs.Add(path+".samples", "must be at least 2, got %d", spec.Samples)
		}
		if spec.CommentRequired == false && spec.Priority == 1 && (o == nil || o.CommentRequired == nil) {
			spec.CommentRequired = true
		}
		dst[n] = spec
		n++
	}
	if p.NeedsLimit {
		has := false
		for _, s := range dst[:n] {
			if s.Condition.isHighSide() || s.Condition.isLowSide() {
				has = true
			}
		}
		if !has {
			errs.Add("alarms", "kind %s has no standard limits: set at least one of alarms.high_high, high, low, low_low with a limit", p.Kind)
		}
	}
	if p.Kind == "toxic" {
		toxicDefaults(&errs, &r, dst[:n], a)
	}
	checkOrder(&errs, dst[:n])
	return r, n, errs.Err()
}

// toxicDefaults applies SAFETY table (a)'s generic toxic profile, whose
// limits come from the config: a deadband of 5 % of L1 (the high limit;
// half the high-high one, at 200 % OEL, without it) on both levels unless
// set, and, without a range, the fault floor of its 0-300 % OEL span
// (2 % of the span below zero, as for ranged presets: 6 % of L1).
func toxicDefaults(errs *configerr.List, r *Resolved, conds []CondSpec, a SensorAlarms) {
	l1 := 0.0
	for _, s := range conds {
		if s.Condition == High {
			l1 = s.Limit
		}
	}
	if l1 <= 0 {
		for _, s := range conds {
			if s.Condition == HighHigh {
				l1 = s.Limit / 2
			}
		}
	}
	if !(l1 > 0) {
		return
	}
	for i := range conds {
		c := conds[i].Condition
		if o := a.get(c); c.isHighSide() && (o == nil || o.Deadband == nil) {
			conds[i].Deadband = 0.05 * l1
		}
	}
	if !(r.Max > r.Min) {
		r.FaultBelow, r.HasFaultBelow = -0.06*l1, true
	} else if f := faultFloor(r.Min, r.Max); f < -0.06*l1 {
		loosen(errs, "alarms.range", a.OverrideRegulatory, "range %v puts the sensor-fault floor at %v, below the toxic profile's %v (6 %% of L1 under zero): readings in between would no longer be a sensor fault (%s)",
			a.Range, f, -0.06*l1, srcToxic)
	}
}

// faultFloor is where a reading below a range becomes a sensor fault: 2 %
// of the span under its minimum (observe).
func faultFloor(lo, hi float64) float64 { return lo - 0.02*(hi-lo) }

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func loosen(errs *configerr.List, path string, override bool, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if override {
		errs.Warn(path, "WARNING: loosens a regulatory limit (override_regulatory is set): %s", msg)
		return
	}
	errs.Add(path, "loosens a regulatory limit: %s; set override_regulatory: true to accept this (it is still reported as a warning)", msg)
}

func applyOverride(errs *configerr.List, path string, s *CondSpec, o *LimitConfig, override bool, p *Preset) {
	c := s.Condition
	reg := s.Regulatory
	src := s.Source
	if o.Limit != nil {
		v := *o.Limit
		switch {
		case c == Comm:
			errs.Add(path+".limit", "comm has no limit; its time without a good reading is timeout")
		case c == Bad:
			errs.Add(path+".limit", "bad has no limit: it is active while samples are bad (the fault-confirm time is on_delay)")
		case !finite(v):
			errs.Add(path+".limit", "must be a finite number, got %v", v)
		case c == Rate && v == 0:
			errs.Add(path+".limit", "must not be 0 (positive: rise, negative: fall)")
		case (c == Deviation || c == TWA || c == STEL) && v <= 0:
			errs.Add(path+".limit", "must be positive, got %v", v)
		case c == Frozen && v < 0:
			errs.Add(path+".limit", "tolerance must not be negative, got %v", v)
		default:
			if reg && ((c.isLowSide() && v < s.Limit) || (!c.isLowSide() && v > s.Limit)) {
				loosen(errs, path+".limit", override, "%s limit %v is looser than the %s/%s preset %v (%s)", c, v, p.Kind, p.Profile, s.Limit, src)
			}
			s.Limit = v
		}
	}
	if o.Deadband != nil {
		if *o.Deadband < 0 || !finite(*o.Deadband) {
			errs.Add(path+".deadband", "must not be negative, got %v", *o.Deadband)
		} else {
			s.Deadband = *o.Deadband
		}
	}
	if o.Restore != nil {
		v := *o.Restore
		switch {
		case !(c.isHighSide() || c.isLowSide()):
			errs.Add(path+".restore", "only limit conditions (high_high, high, low, low_low) have a restore level")
		case !finite(v):
			errs.Add(path+".restore", "must be a finite number")
		default:
			if reg && s.HasRestore && ((c.isHighSide() && v > s.Restore) || (c.isLowSide() && v < s.Restore)) {
				loosen(errs, path+".restore", override, "restore level %v is looser than the preset %v (%s)", v, s.Restore, src)
			}
			s.Restore, s.HasRestore = v, true
		}
	}
	if o.OnDelay != nil {
		if *o.OnDelay < 0 {
			errs.Add(path+".on_delay", "must not be negative")
		} else {
			switch {
			case reg && *o.OnDelay > s.OnDelay:
				loosen(errs, path+".on_delay", override, "on-delay %s is longer than the preset %s on a life-safety alarm (%s)", *o.OnDelay, s.OnDelay, src)
			case s.MaxOnDelay > 0 && *o.OnDelay > s.MaxOnDelay:
				loosen(errs, path+".on_delay", override, "on-delay %s is longer than the %s trip delay of at most %s (%s)", *o.OnDelay, p.Kind, s.MaxOnDelay, src)
			}
			s.OnDelay = *o.OnDelay
		}
	}
	if o.OffDelay != nil {
		if *o.OffDelay < 0 {
			errs.Add(path+".off_delay", "must not be negative")
		} else {
			s.OffDelay = *o.OffDelay
		}
	}
	if o.Priority != nil {
		v := *o.Priority
		if v < 1 || v > 4 {
			errs.Add(path+".priority", "must be 1 (emergency) to 4 (low), got %d", v)
		} else {
			if reg && v > s.Priority {
				loosen(errs, path+".priority", override, "priority %d is lower than the preset's %d (%s)", v, s.Priority, src)
			}
			s.Priority = v
		}
	}
	if o.Latch != nil {
		if (reg || s.RegulatoryLatch) && s.Latch && !*o.Latch {
			loosen(errs, path+".latch", override, "removes the latch of the %s/%s preset (%s)", p.Kind, p.Profile, src)
		}
		s.Latch = *o.Latch
	}
	if o.Action != "" {
		s.Actions = append(s.Actions, o.Action)
	}
	if o.ReAlarm != nil {
		if *o.ReAlarm < 0 {
			errs.Add(path+".realarm", "must not be negative")
		} else {
			s.ReAlarm = *o.ReAlarm
		}
	}
	if o.Shelvable != nil {
		s.Shelvable = *o.Shelvable
	}
	if o.SuppressBy != "" {
		if reg {
			// With override_regulatory a warning, as every loosening.
			loosen(errs, path+".suppress_by", override, "suppresses a regulatory %s alarm by design (%s)", c, src)
		}
		s.SuppressBy = o.SuppressBy
	}
	if o.ResetNeedsAck != nil {
		s.ResetNeedsAck = *o.ResetNeedsAck
	}
	if o.CommentRequired != nil {
		s.CommentRequired = *o.CommentRequired
	}
	if o.Period != nil {
		switch {
		case c != Rate && c != STEL:
			errs.Add(path+".period", "only rate and stel have a period")
		case c == STEL && (*o.Period < 5*time.Minute || *o.Period > 15*time.Minute || *o.Period%time.Minute != 0):
			errs.Add(path+".period", "STEL window must be whole minutes from 5m to 15m, got %s", *o.Period)
		case *o.Period <= 0:
			errs.Add(path+".period", "must be positive")
		default:
			s.Period = *o.Period
		}
	}
	if o.Percent != nil {
		if c != Rate {
			errs.Add(path+".percent", "only rate has percent")
		}
		s.Percent = *o.Percent
	}
	if o.Timeout != nil {
		switch {
		case c != Comm && c != Bad:
			errs.Add(path+".timeout", "only comm and bad have a timeout")
		case *o.Timeout <= 0:
			errs.Add(path+".timeout", "must be positive")
		default:
			if c == Bad && s.Regulatory && *o.Timeout > s.Timeout {
				// A sensor left uncertain longer before its bad alarm
				// speaks watches nothing for longer.
				loosen(errs, path+".timeout", override, "an uncertain spell of %s before the bad alarm is longer than the %s of the %s/%s preset: the sensor watches nothing for longer", *o.Timeout, s.Timeout, p.Kind, p.Profile)
			}
			s.Timeout = *o.Timeout
		}
	}
	if o.Samples != nil {
		if c != Frozen {
			errs.Add(path+".samples", "only frozen has samples")
		}
		s.Samples = *o.Samples
	}
	if o.ZeroBand != nil {
		if c != Frozen || *o.ZeroBand < 0 {
			errs.Add(path+".zero_band", "only frozen has a zero band, and it must not be negative")
		} else {
			s.ZeroBand = *o.ZeroBand
		}
	}
	if o.With != "" {
		if c != Deviation {
			errs.Add(path+".with", "only deviation compares with another sensor")
		}
		s.With = o.With
	}
	if c == Deviation && s.With == "" {
		errs.Add(path+".with", "required: the redundant sensor as \"device.sensor\"")
	}
	if o.Mode != "" {
		if c != TWA {
			errs.Add(path+".mode", "only twa has a mode")
		} else if o.Mode != "accumulate" && o.Mode != "moving8h" {
			errs.Add(path+".mode", "unknown TWA mode %q (want accumulate or moving8h)", o.Mode)
		} else {
			s.Mode = o.Mode
		}
	}
	if o.ShiftStart != "" {
		d, err := parseClock(o.ShiftStart)
		switch {
		case c != TWA:
			errs.Add(path+".shift_start", "only twa has a shift start")
		case err != nil:
			errs.Add(path+".shift_start", "%v", err)
		default:
			s.ShiftStart, s.ShiftSet = d, true
		}
	}
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("want a UTC time of day HH:MM, got %q", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

func findCond(conds []CondSpec, c Condition) (*CondSpec, bool) {
	for i := range conds {
		if conds[i].Condition == c {
			return &conds[i], true
		}
	}
	return nil, false
}

func checkOrder(errs *configerr.List, conds []CondSpec) {
	hh, okHH := findCond(conds, HighHigh)
	h, okH := findCond(conds, High)
	l, okL := findCond(conds, Low)
	ll, okLL := findCond(conds, LowLow)
	if okHH && okH && hh.Limit < h.Limit {
		errs.Add("alarms.high_high.limit", "%v is below alarms.high.limit %v", hh.Limit, h.Limit)
	}
	if okLL && okL && ll.Limit > l.Limit {
		errs.Add("alarms.low_low.limit", "%v is above alarms.low.limit %v", ll.Limit, l.Limit)
	}
	if okH && okL && h.Limit <= l.Limit {
		errs.Add("alarms.high.limit", "%v is not above alarms.low.limit %v", h.Limit, l.Limit)
	}
	for _, s := range conds {
		if !s.HasRestore {
			continue
		}
		p := "alarms." + string(s.Condition) + ".restore"
		if s.Condition.isHighSide() && s.Restore > s.Limit {
			errs.Add(p, "%v is above the limit %v: the alarm could never return", s.Restore, s.Limit)
		}
		if s.Condition.isLowSide() && s.Restore < s.Limit {
			errs.Add(p, "%v is below the limit %v: the alarm could never return", s.Restore, s.Limit)
		}
	}
}
