package alerting

import (
	"sort"
	"time"
)

// Condition names an alarm condition of a point (or group / action).
type Condition string

// Conditions configurable per sensor (the `alarms:` keys) and the ones the
// engine derives.
const (
	HighHigh  Condition = "high_high"
	High      Condition = "high"
	Low       Condition = "low"
	LowLow    Condition = "low_low"
	Rate      Condition = "rate"
	Deviation Condition = "deviation"
	Bad       Condition = "bad"
	Comm      Condition = "comm"
	Frozen    Condition = "frozen"
	TWA       Condition = "twa"
	STEL      Condition = "stel"

	// Degraded is a voting group with an input bad, lost or out of service.
	Degraded Condition = "degraded"
	// Bypassed is a point feeding an interlock with an alarm out of service.
	Bypassed Condition = "bypassed"
	// Failed is an interlock action not confirmed within its timeout.
	Failed Condition = "failed"
	// ReadingsDropped is the gateway dropping readings from its full
	// outbox (a system alarm, SetSystem).
	ReadingsDropped Condition = "readings_dropped"
	// WriteFailed is the gateway's outbox failing to commit (a system
	// alarm, SetSystem).
	WriteFailed Condition = "write_failed"
)

// DefaultUncertainLimit is how long a sensor may read uncertain (warm-up,
// calibration, NE 43's under-range band; not over range) before its
// readings are judged bad and its bad alarm raised: a sensor that stays
// uncertain watches nothing, and must not do so in silence. Long enough for
// a detector's warm-up after power-up (catalytic and electrochemical cells:
// one to a few minutes); an attended calibration takes the sensor out of
// service instead (PRACTICE; the bad condition's timeout sets it).
const DefaultUncertainLimit = 5 * time.Minute

// sensorConditions is the evaluation order of a point's conditions.
var sensorConditions = [...]Condition{HighHigh, High, Low, LowLow, Rate, Deviation, Bad, Comm, Frozen, TWA, STEL}

// condPaths are the config paths of sensorConditions ("alarms.<condition>"),
// spelled out so that resolving a sensor does not build them.
var condPaths = [len(sensorConditions)]string{"alarms.high_high", "alarms.high", "alarms.low", "alarms.low_low",
	"alarms.rate", "alarms.deviation", "alarms.bad", "alarms.comm", "alarms.frozen", "alarms.twa", "alarms.stel"}

func (c Condition) isHighSide() bool { return c == HighHigh || c == High }
func (c Condition) isLowSide() bool  { return c == Low || c == LowLow }

// CondSpec is one compiled alarm condition of a point.
type CondSpec struct {
	Condition Condition
	Limit     float64
	Deadband  float64
	// Restore replaces the deadband when HasRestore.
	Restore    float64
	HasRestore bool
	OnDelay    time.Duration
	OffDelay   time.Duration
	Priority   int
	Latch      bool
	// Actions are tripped while the alarm is active or latched.
	Actions []string
	// Regulatory marks a preset value from a regulation or standard:
	// loosening it needs override_regulatory.
	Regulatory bool
	// RegulatoryLatch marks only the latch as such, on a condition whose
	// limit comes from the config (toxic L2, pressure HH/LL: table (a)).
	RegulatoryLatch bool
	// MaxOnDelay is the longest on-delay table (a) allows a trip level
	// whose limit comes from the config (pressure HH/LL 0–2 s, toxic
	// L2/LL 0–5 s); a longer one is a loosening (override_regulatory).
	// 0: none.
	MaxOnDelay time.Duration
	// Source names where the preset value comes from.
	Source          string
	ReAlarm         time.Duration
	Shelvable       bool
	SuppressBy      string
	ResetNeedsAck   bool
	CommentRequired bool
	Period          time.Duration
	Percent         bool
	Timeout         time.Duration // comm: the communication-loss timeout; bad: how long a sensor may read uncertain (DefaultUncertainLimit)
	Samples         int
	ZeroBand        float64
	With            string
	Mode            string
	ShiftStart      time.Duration
	ShiftSet        bool
}

// Preset is the default alarm configuration of a sensor kind and profile.
type Preset struct {
	Kind    string
	Profile string
	Unit    string
	// Min, Max is the valid measuring range; outside it quality is
	// uncertain ("out-of-range"). Equal values mean no range check.
	Min, Max float64
	// NE43 classifies the raw value as a 4–20 mA signal (NAMUR NE 43).
	NE43           bool
	SafetyCritical bool
	// CommTimeoutMax caps the comm timeout (coal: polling ≤ 30 s).
	CommTimeoutMax time.Duration
	// NeedsLimit: the kind has no standard limits; the config must give one.
	NeedsLimit bool
	// SpanDeadband is the H/L deadband in percent of span when a range is known.
	SpanDeadband float64
	Source       string
	Conditions   []CondSpec
}

const (
	srcCoal     = "Coal Mine Safety Regulations (2016, amended 2022) Art. 498 table; AQ 1029-2019 [SAFETY S62,S64]"
	srcCoalPoll = "AQ 6201 / GB 50581: polling cycle <= 30 s [SAFETY S66]"
	srcUSCoal   = "30 CFR 27.22: warning 1.0-1.5 %vol, de-energize at 2.0 %vol [SAFETY S74]"
	srcUSMNM    = "30 CFR 57.22306: warning 1.0 %, de-energize 1.5 %, de-energize on sensor power loss [SAFETY S76]"
	srcGBT      = "GB/T 50493-2019 5.5.2: L1 <= 25 %LEL, L2 <= 50 %LEL, L2 latched [SAFETY S22,S23]"
	srcIntlLEL  = "fixed-detection practice 20 %LEL ventilation / 40 %LEL ESD [SAFETY S34]; over-range latched [S38]"
	srcOpenPath = "GB/T 50493-2019 5.5.2(5): 1 / 2 LEL.m [SAFETY S23]"
	srcH2SUS    = "instrument defaults low 10 / high 20 ppm, TWA 10, STEL 15 (Industrial Scientific) [SAFETY S32]; OSHA ceiling 20 ppm [S40]"
	srcH2SCN    = "GB/T 50493-2019: L1 10 mg/m3, L2 20 mg/m3 (100 % / 200 % of MAC 10) [SAFETY S28]"
	srcCOUS     = "instrument defaults 35 / 70 ppm (Industrial Scientific) [SAFETY S32]; NIOSH REL 35 ppm TWA [S45]"
	srcCOMSHA   = "MSHA 50 / 100 ppm [SAFETY S32]"
	srcCOCoal   = "Coal Mine Safety Regulations: CO <= 0.0024 % (24 ppm) [SAFETY S47,S48]"
	srcCOCN     = "GB/T 50493-2019: L1 20 mg/m3, L2 40 mg/m3 [SAFETY S28]"
	srcO2       = "GB/T 50493-2019 5.5.2(4), OSHA 29 CFR 1910.146: 19.5 / 23.5 %vol [SAFETY S23,S58]; low-low 18.0 EU practice [S37]"
	srcO2Coal   = "Coal Mine Safety Regulations: intake O2 >= 20 % [SAFETY S47]"
	srcPressure = "ISA TR18.2.3 / EEMUA 191 starting values: 2 % span, 15 s (UNCERTAIN) [SAFETY S15]; HH/LL trips latched [S98]"
	srcTemp     = "ISA TR18.2.3 / EEMUA 191 starting values: 1 % span, 60 s (UNCERTAIN) [SAFETY S15]"
	srcNE43     = "NAMUR NE 43: <= 3.6 / >= 21.0 mA failure, 3.8-20.5 mA valid [SAFETY S78,S79]"
	srcPractice = "canary practice (SAFETY §1.3 priorities)"
	srcToxic    = "GB/T 50493-2019 5.5.2(3): L1 <= 100 % OEL, L2 <= 200 % OEL, L2 latched, deadband 5 % of L1, range 0-300 % OEL; limits from the config [SAFETY S22, table (a)]"
)

func lim(c Condition, limit, db float64, prio int, latch bool, src string) CondSpec {
	return CondSpec{Condition: c, Limit: limit, Deadband: db, Priority: prio, Latch: latch, Regulatory: true, Source: src}
}

func withRestore(s CondSpec, r float64) CondSpec {
	s.Restore, s.HasRestore = r, true
	return s
}

func methaneCoal(profile string, alarm, cut, restore float64, src string) Preset {
	p := Preset{Kind: "methane", Profile: profile, Unit: "%vol", Min: 0, Max: 4, SafetyCritical: true,
		CommTimeoutMax: 30 * time.Second, Source: src + "; " + srcCoalPoll}
	p.Conditions = []CondSpec{
		withRestore(lim(HighHigh, cut, 0, 1, true, src), restore),
		lim(High, alarm, 0.05, 2, false, src),
	}
	// Where the regulation sets no separate alarm level the high alarm
	// returns at the restore level too.
	if alarm == cut {
		p.Conditions[1] = withRestore(p.Conditions[1], restore)
	}
	return p
}

// presets lists every kind and profile; the first profile of a kind is its default.
var presets = []Preset{
	methaneCoal("coal_face", 1.0, 1.5, 1.0, srcCoal),
	methaneCoal("heading", 1.0, 1.5, 1.0, srcCoal),
	methaneCoal("return_airway", 1.0, 1.0, 1.0, srcCoal),
	methaneCoal("intake", 0.5, 0.5, 0.5, srcCoal),
	methaneCoal("drainage_roadway", 2.5, 2.5, 2.5, srcCoal),
	methaneCoal("coal_bunker", 1.5, 1.5, 1.5, srcCoal),
	{Kind: "methane", Profile: "main_return", Unit: "%vol", Min: 0, Max: 4, SafetyCritical: true,
		CommTimeoutMax: 30 * time.Second, Source: srcCoal + " (wing/main return, UNCERTAIN)",
		Conditions: []CondSpec{lim(High, 0.75, 0.05, 2, false, srcCoal+" (UNCERTAIN)")}},
	{Kind: "methane", Profile: "us_coal_machine", Unit: "%vol", Min: 0, Max: 5, SafetyCritical: true,
		Source: srcUSCoal, Conditions: []CondSpec{
			lim(HighHigh, 2.0, 0, 1, true, srcUSCoal),
			lim(High, 1.0, 0.05, 2, false, srcUSCoal),
		}},
	{Kind: "methane", Profile: "us_mnm", Unit: "%vol", Min: 0, Max: 5, SafetyCritical: true,
		Source: srcUSMNM, Conditions: []CondSpec{
			lim(HighHigh, 1.5, 0, 1, true, srcUSMNM),
			lim(High, 1.0, 0.05, 2, false, srcUSMNM),
		}},

	{Kind: "combustible", Profile: "intl", Unit: "%LEL", Min: 0, Max: 100, Source: srcIntlLEL,
		Conditions: []CondSpec{lim(HighHigh, 40, 2, 1, true, srcIntlLEL), lim(High, 20, 2, 2, false, srcIntlLEL)}},
	{Kind: "combustible", Profile: "cn_petrochem", Unit: "%LEL", Min: 0, Max: 100, Source: srcGBT,
		Conditions: []CondSpec{lim(HighHigh, 50, 2, 1, true, srcGBT), lim(High, 20, 2, 2, false, srcGBT)}},
	{Kind: "combustible", Profile: "open_path", Unit: "LEL.m", Min: 0, Max: 5, Source: srcOpenPath,
		Conditions: []CondSpec{lim(HighHigh, 2, 0.1, 1, true, srcOpenPath), lim(High, 1, 0.1, 2, false, srcOpenPath)}},

	{Kind: "h2s", Profile: "us", Unit: "ppm", Min: 0, Max: 100, Source: srcH2SUS,
		Conditions: []CondSpec{
			lim(HighHigh, 20, 1, 1, false, srcH2SUS), lim(High, 10, 1, 2, false, srcH2SUS),
			{Condition: TWA, Limit: 10, Priority: 3, Mode: "accumulate", Regulatory: true, Source: srcH2SUS},
			{Condition: STEL, Limit: 15, Priority: 2, Period: 15 * time.Minute, Regulatory: true, Source: srcH2SUS},
		}},
	{Kind: "h2s", Profile: "cn_petrochem", Unit: "mg/m3", Min: 0, Max: 30, Source: srcH2SCN,
		Conditions: []CondSpec{lim(HighHigh, 20, 1, 1, true, srcH2SCN), lim(High, 10, 1, 2, false, srcH2SCN)}},

	{Kind: "co", Profile: "us", Unit: "ppm", Min: 0, Max: 500, Source: srcCOUS,
		Conditions: []CondSpec{lim(HighHigh, 70, 2, 1, false, srcCOUS), lim(High, 35, 2, 2, false, srcCOUS)}},
	{Kind: "co", Profile: "msha", Unit: "ppm", Min: 0, Max: 500, Source: srcCOMSHA,
		Conditions: []CondSpec{lim(HighHigh, 100, 2, 1, false, srcCOMSHA), lim(High, 50, 2, 2, false, srcCOMSHA)}},
	{Kind: "co", Profile: "cn_coal", Unit: "ppm", Min: 0, Max: 1000, Source: srcCOCoal,
		Conditions: []CondSpec{lim(High, 24, 2, 2, false, srcCOCoal)}},
	{Kind: "co", Profile: "cn_petrochem", Unit: "mg/m3", Min: 0, Max: 60, Source: srcCOCN,
		Conditions: []CondSpec{lim(HighHigh, 40, 2, 1, true, srcCOCN), lim(High, 20, 2, 2, false, srcCOCN)}},

	{Kind: "oxygen", Profile: "ambient", Unit: "%vol", Min: 0, Max: 25, Source: srcO2,
		Conditions: []CondSpec{
			lim(High, 23.5, 0.2, 2, false, srcO2), lim(Low, 19.5, 0.2, 2, false, srcO2),
			lim(LowLow, 18.0, 0.2, 1, true, srcO2),
		}},
	{Kind: "oxygen", Profile: "cn_coal", Unit: "%vol", Min: 0, Max: 25, Source: srcO2Coal,
		Conditions: []CondSpec{
			lim(High, 23.5, 0.2, 2, false, srcO2), lim(Low, 20.0, 0.2, 2, false, srcO2Coal),
			lim(LowLow, 18.0, 0.2, 1, true, srcO2),
		}},

	{Kind: "toxic", Profile: "default", Unit: "ppm", NeedsLimit: true, Source: srcToxic},
	{Kind: "pressure", Profile: "default", Unit: "MPa", NeedsLimit: true, SpanDeadband: 2, Source: srcPressure},
	{Kind: "temperature", Profile: "default", Unit: "°C", SpanDeadband: 1, Source: srcTemp},
	{Kind: "current", Profile: "ne43", Unit: "mA", Min: 3.8, Max: 20.5, NE43: true, Source: srcNE43},
	{Kind: "generic", Profile: "default", Source: srcPractice},
}

// condDefaults are kind-specific defaults for conditions added by the
// config (not in the preset): priority, delays, latch.
func condDefaults(p *Preset, c Condition) CondSpec {
	s := CondSpec{Condition: c, Priority: 3, Source: "config"}
	switch c {
	case HighHigh, LowLow:
		s.Priority = 1
		switch {
		case p.Kind == "pressure":
			s.Latch, s.RegulatoryLatch = true, true
			s.MaxOnDelay = 2 * time.Second // table (a): "0–2 s for HH/LL trips"
			s.Source = srcPressure
		case p.Kind == "toxic" && c == HighHigh:
			s.Latch, s.RegulatoryLatch = true, true // table (a): "L2 latched"
			s.MaxOnDelay = 5 * time.Second          // table (a): on-delay 0–5 s
			s.Source = srcToxic
		case p.Kind == "toxic":
			s.MaxOnDelay = 5 * time.Second
			s.Source = srcToxic
		}
	case High, Low:
		s.Priority = 2
		switch p.Kind {
		case "pressure":
			s.OnDelay, s.OffDelay, s.Source = 15*time.Second, 15*time.Second, srcPressure
		case "temperature":
			s.OnDelay, s.OffDelay, s.Source = 60*time.Second, 60*time.Second, srcTemp
		}
	case Rate, STEL:
		s.Priority = 2
		s.Period = 15 * time.Minute
		if c == Rate {
			s.Period = time.Minute
		}
	case TWA:
		s.Mode = "accumulate"
	case Frozen:
		s.Samples = 10
	}
	return s
}

// Kinds returns every sensor kind with its profiles, default profile first.
func Kinds() map[string][]string {
	out := map[string][]string{}
	for _, p := range presets {
		out[p.Kind] = append(out[p.Kind], p.Profile)
	}
	return out
}

// KindNames returns the sorted sensor kinds.
func KindNames() []string {
	var ks []string
	for k := range Kinds() {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// LookupPreset returns the preset of kind and profile ("" = the kind's
// default). The preset is the caller's copy.
func LookupPreset(kind, profile string) (Preset, bool) {
	p := lookupPreset(kind, profile)
	if p == nil {
		return Preset{}, false
	}
	c := *p
	c.Conditions = append([]CondSpec(nil), p.Conditions...)
	return c, true
}

// lookupPreset is LookupPreset without the copy, for the engine's own
// read-only use.
func lookupPreset(kind, profile string) *Preset {
	for i := range presets {
		if p := &presets[i]; p.Kind == kind && (profile == "" || p.Profile == profile) {
			return p
		}
	}
	return nil
}
