package modbus

import (
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/canary-gw/canary/internal/configerr"
)

// Defaults, as documented in docs/modbus.md.
const (
	DefaultUnit         = 1
	DefaultPoll         = time.Second
	DefaultTimeout      = 500 * time.Millisecond
	DefaultRetries      = 1
	DefaultBaud         = 19200
	DefaultParity       = "none"
	DefaultDataBits     = 8
	DefaultStopBits     = 1
	DefaultMaxGap       = 8
	DefaultMaxBackoff   = 10 * time.Second
	MaxReadRegisters    = 125  // protocol limit of FC03/FC04
	MaxReadBits         = 2000 // protocol limit of FC01/FC02
	maxRetries          = 10
	schemeTCP           = "tcp"
	schemeTLS           = "tcp+tls"
	schemeRTU           = "rtu"
	schemeRTUOverTCP    = "rtuovertcp"
	validSchemes        = "tcp://host:port, tcp+tls://host:port, rtu:///dev/ttyX, rtuovertcp://host:port"
	validTables         = "holding, input, coil, discrete"
	validParities       = "none, even, odd"
	defaultMaxGapInBits = 16 // one gap unit on bit tables, see Plan
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// SetDefaults fills every unset field with its default. It is separate from
// Validate so that Validate stays pure and sees the final values.
func (d *DeviceConfig) SetDefaults() {
	if d.Unit == nil {
		d.Unit = ptr(DefaultUnit)
	}
	if d.Poll == 0 {
		d.Poll = DefaultPoll
	}
	if d.Timeout == 0 {
		d.Timeout = min(DefaultTimeout, d.Poll/2)
		if d.Timeout <= 0 {
			d.Timeout = DefaultTimeout
		}
	}
	if d.Retries == nil {
		d.Retries = ptr(DefaultRetries)
	}
	if scheme(d.URL) == schemeRTU {
		if d.Baud == 0 {
			d.Baud = DefaultBaud
		}
		if d.Parity == "" {
			d.Parity = DefaultParity
		}
		if d.DataBits == 0 {
			d.DataBits = DefaultDataBits
		}
		if d.StopBits == 0 {
			// 8N1: what nearly every gas detector ships with. The
			// library's own default (2 stop bits without parity) follows
			// the letter of the spec but few devices do.
			d.StopBits = DefaultStopBits
		}
	}
	if d.MaxRegisters == 0 {
		d.MaxRegisters = MaxReadRegisters
	}
	if d.MaxBits == 0 {
		d.MaxBits = MaxReadBits
	}
	if d.MaxGap == nil {
		d.MaxGap = ptr(DefaultMaxGap)
	}
	if d.MaxBackoff == 0 {
		d.MaxBackoff = max(DefaultMaxBackoff, d.Poll)
	}
}

// SetDefaults fills a sensor's unset scale (1) and byte order (big endian,
// high word first; 8-bit types have no default half).
func (s *SensorConfig) SetDefaults() {
	if s.Scale == nil {
		s.Scale = ptr(1.0)
	}
	if s.Order == "" {
		if t, err := ParseType(s.Type); err == nil && t.Bytes() > 1 {
			s.Order = OrderChoices(t)[0]
		}
	}
}

// Validate checks the device's own fields (not its sensors); paths are
// relative to the device.
func (d *DeviceConfig) Validate() error {
	var l configerr.List
	if d.ID == "" {
		l.Add("id", "is required")
	} else if !idPattern.MatchString(d.ID) {
		l.Add("id", "%q is not a valid id (want [a-z0-9][a-z0-9_-]*)", d.ID)
	}
	sch := scheme(d.URL)
	switch {
	case d.URL == "":
		l.Add("url", "is required (want %s)", validSchemes)
	case sch == "":
		l.Add("url", "%q has no scheme (want %s)", d.URL, validSchemes)
	default:
		if err := checkAddress(sch, d.URL); err != nil {
			l.Add("url", "%s", err)
		}
	}
	if d.Unit != nil {
		lo, hi := 0, 255
		if sch == schemeRTU || sch == schemeRTUOverTCP {
			// 0 is broadcast (no answer) and 248-255 are reserved on
			// serial lines.
			lo, hi = 1, 247
		}
		if *d.Unit < lo || *d.Unit > hi {
			l.Add("unit", "%d out of range (want %d-%d for %s://)", *d.Unit, lo, hi, sch)
		}
	}
	if d.Poll <= 0 {
		l.Add("poll", "%s must be positive", d.Poll)
	}
	if d.Timeout <= 0 {
		l.Add("timeout", "%s must be positive", d.Timeout)
	} else if d.Poll > 0 && d.Timeout >= d.Poll {
		l.Add("timeout", "%s must be shorter than poll (%s)", d.Timeout, d.Poll)
	}
	if d.Retries != nil && (*d.Retries < 0 || *d.Retries > maxRetries) {
		l.Add("retries", "%d out of range (want 0-%d)", *d.Retries, maxRetries)
	}
	if d.MaxBackoff < 0 {
		l.Add("max_backoff", "%s must not be negative", d.MaxBackoff)
	}
	if sch == schemeRTU {
		if d.Baud <= 0 {
			l.Add("baud", "%d must be positive (e.g. 9600, 19200)", d.Baud)
		}
		switch d.Parity {
		case "none", "even", "odd":
		default:
			l.Add("parity", "unknown parity %q (want %s)", d.Parity, validParities)
		}
		switch d.DataBits {
		case 8:
		case 7:
			// RTU framing carries 8-bit bytes (Modbus over Serial Line
			// 1.02, 2.5.1); 7 data bits is the ASCII mode's, which no
			// RTU frame survives.
			l.Add("data_bits", "7 is Modbus ASCII framing, which canary does not speak: RTU uses 8 data bits")
		default:
			l.Add("data_bits", "%d (want 8: RTU framing)", d.DataBits)
		}
		if d.StopBits != 1 && d.StopBits != 2 {
			l.Add("stop_bits", "%d (want 1 or 2)", d.StopBits)
		}
	} else if sch != "" {
		for _, f := range []struct {
			key string
			set bool
		}{{"baud", d.Baud != 0}, {"parity", d.Parity != ""}, {"data_bits", d.DataBits != 0}, {"stop_bits", d.StopBits != 0}} {
			if f.set {
				l.Add(f.key, "is only for rtu:// links, not %s://", sch)
			}
		}
	}
	if sch == schemeTLS {
		for _, f := range []struct{ key, val string }{{"ca_file", d.CAFile}, {"cert_file", d.CertFile}, {"key_file", d.KeyFile}} {
			if f.val == "" {
				l.Add(f.key, "is required for tcp+tls:// (Modbus/TCP security is mutual TLS)")
			}
		}
	} else if sch != "" {
		for _, f := range []struct{ key, val string }{{"ca_file", d.CAFile}, {"cert_file", d.CertFile}, {"key_file", d.KeyFile}} {
			if f.val != "" {
				l.Add(f.key, "is only for tcp+tls:// links, not %s://", sch)
			}
		}
	}
	if d.MaxRegisters < 1 || d.MaxRegisters > MaxReadRegisters {
		l.Add("max_registers", "%d out of range (want 1-%d)", d.MaxRegisters, MaxReadRegisters)
	}
	if d.MaxBits < 1 || d.MaxBits > MaxReadBits {
		l.Add("max_bits", "%d out of range (want 1-%d)", d.MaxBits, MaxReadBits)
	}
	if d.MaxGap != nil && (*d.MaxGap < 0 || *d.MaxGap > MaxReadRegisters) {
		l.Add("max_gap", "%d out of range (want 0-%d)", *d.MaxGap, MaxReadRegisters)
	}
	return l.Err()
}

// ValidateSensors checks a device's sensors against the device; paths are
// relative to the device (sensors[2].order).
func ValidateSensors(d *DeviceConfig, sensors []SensorConfig) error {
	var l configerr.List
	seen := make(map[string]int, len(sensors))
	for i := range sensors {
		s := &sensors[i]
		p := fmt.Sprintf("sensors[%d]", i)
		if s.ID == "" {
			l.Add(p+".id", "is required")
		} else if !idPattern.MatchString(s.ID) {
			l.Add(p+".id", "%q is not a valid id (want [a-z0-9][a-z0-9_-]*)", s.ID)
		} else if j, dup := seen[s.ID]; dup {
			l.Add(p+".id", "duplicate sensor id %q (also sensors[%d])", s.ID, j)
		} else {
			seen[s.ID] = i
		}
		for _, fe := range sensorErrors(d, s) {
			l.Merge(p, fe)
		}
	}
	for i := range sensors {
		if st := sensors[i].Status; st != nil {
			statusErrors(&l, fmt.Sprintf("sensors[%d].status", i), &sensors[i], st, sensors, seen)
		}
	}
	return l.Err()
}

// statusErrors checks a sensor's status: the status word must be another
// sensor of the device, an integer or a bool, and the bits must fit it.
func statusErrors(l *configerr.List, p string, s *SensorConfig, st *StatusConfig, sensors []SensorConfig, seen map[string]int) {
	j, ok := seen[st.Sensor]
	switch {
	case st.Sensor == "":
		l.Add(p+".sensor", "is required: the id of the sensor holding the status word")
		return
	case !ok:
		l.Add(p+".sensor", "unknown sensor %q (want a sensor of the same device)", st.Sensor)
		return
	case st.Sensor == s.ID:
		l.Add(p+".sensor", "a sensor cannot be its own status word")
		return
	}
	w := &sensors[j]
	typ, err := ParseType(w.Type)
	if err != nil {
		return // reported at the status sensor
	}
	if w.Status != nil {
		// Judged in config order, a chain would judge one reading on a
		// word already marked down (and "unread" is no fault).
		l.Add(p+".sensor", "%s has a status of its own: a status word is read as it is", st.Sensor)
		return
	}
	width := 64
	switch typ {
	case TypeBool:
		width = 1
	case TypeFloat16, TypeFloat32, TypeFloat64:
		l.Add(p+".sensor", "%s is a %s: a status word is an integer (or a bool)", st.Sensor, typ)
		return
	case TypeInt64, TypeUint64:
		// Values pass through a float64: bits past 52 would be rounded.
		l.Add(p+".sensor", "%s is a %s: a status word has at most 32 bits", st.Sensor, typ)
		return
	default:
		width = 8 * typ.Bytes()
	}
	if w.Scale != nil && *w.Scale != 1 || w.Offset != 0 {
		l.Add(p+".sensor", "%s has a scale or offset: a status word is read as it is", st.Sensor)
	}
	if len(st.BadBits)+len(st.UncertainBits) == 0 {
		l.Add(p, "names no bits: want bad_bits and/or uncertain_bits")
	}
	in := map[int]string{}
	for _, f := range []struct {
		name string
		bits []int
	}{{"bad_bits", st.BadBits}, {"uncertain_bits", st.UncertainBits}} {
		for k, b := range f.bits {
			switch {
			case b < 0 || b >= width:
				l.Add(fmt.Sprintf("%s.%s[%d]", p, f.name, k), "bit %d out of range (want 0-%d for the %s status word, 0 = least significant)", b, width-1, typ)
			case in[b] != "":
				l.Add(fmt.Sprintf("%s.%s[%d]", p, f.name, k), "bit %d is also in %s", b, in[b])
			default:
				in[b] = f.name
			}
		}
	}
}

// sensorErrors checks one sensor; it is shared by ValidateSensors and
// NewPlan so that a plan is never built from an invalid sensor.
func sensorErrors(d *DeviceConfig, s *SensorConfig) []error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, configerr.Field(path, format, args...)) }
	tbl, terr := ParseTable(s.Table)
	if terr != nil {
		add("table", "%s", terr)
	}
	typ, yerr := ParseType(s.Type)
	if yerr != nil {
		if s.Type == "" {
			add("type", "is required (want %s)", TypeNames)
		} else {
			add("type", "%s", yerr)
		}
	}
	if s.Address == nil {
		add("address", "is required (zero-based protocol address 0-65535)")
	} else if *s.Address < 0 || *s.Address > 65535 {
		add("address", "%d out of range (want 0-65535, zero-based)", *s.Address)
	}
	if s.Bit != nil && (*s.Bit < 0 || *s.Bit > 15) {
		add("bit", "%d out of range (want 0-15, 0 = least significant)", *s.Bit)
	}
	if s.Scale != nil && (*s.Scale == 0 || math.IsNaN(*s.Scale) || math.IsInf(*s.Scale, 0)) {
		add("scale", "%v: want a finite number other than 0", *s.Scale)
	}
	if math.IsNaN(s.Offset) || math.IsInf(s.Offset, 0) {
		add("offset", "%v: want a finite number", s.Offset)
	}
	if terr != nil || yerr != nil {
		return errs
	}
	bitTable := tbl == TableCoil || tbl == TableDiscrete
	switch {
	case bitTable && typ != TypeBool:
		add("type", "%s cannot live in a %s (want bool: coils and discrete inputs are single bits)", typ, tbl)
	case bitTable && s.Bit != nil:
		add("bit", "is only for holding or input registers, a %s is already one bit", tbl)
	case bitTable && s.Order != "":
		add("order", "is only for registers, a %s has no byte order", tbl)
	case !bitTable && typ == TypeBool && s.Bit == nil:
		add("bit", "bool on a %s register needs bit: 0-15 (or use table coil or discrete)", tbl)
	case !bitTable && typ != TypeBool && s.Bit != nil:
		add("bit", "is only for type bool, not %s", typ)
	default:
		bit := -1
		if s.Bit != nil {
			bit = *s.Bit
		}
		if !bitTable {
			if _, err := NewCodec(typ, s.Order, min(bit, 15), 1, 0); err != nil {
				add("order", "%s", err)
			}
		}
	}
	if s.Address != nil && *s.Address >= 0 && !bitTable {
		if end := *s.Address + typ.Words() - 1; end > 65535 {
			add("address", "%s at %d spans registers %d-%d, past the last address 65535", typ, *s.Address, *s.Address, end)
		}
	}
	// A value is never split across reads, so a sensor wider than the
	// device's max_registers would make the plan read more than the device
	// accepts, on every poll. An out-of-range max_registers is reported at
	// the device.
	if !bitTable && d.MaxRegisters >= 1 && d.MaxRegisters <= MaxReadRegisters && typ.Words() > d.MaxRegisters {
		add("type", "%s spans %d registers, more than the device's max_registers (%d): raise max_registers or read a narrower type", typ, typ.Words(), d.MaxRegisters)
	}
	return errs
}

func ptr[T any](v T) *T { return &v }

func scheme(url string) string {
	i := strings.Index(url, "://")
	if i <= 0 {
		return ""
	}
	return strings.ToLower(url[:i])
}

// linkAddress is what comes after the scheme: host:port or a device path.
func linkAddress(url string) string {
	i := strings.Index(url, "://")
	if i < 0 {
		return url
	}
	return url[i+3:]
}

func checkAddress(sch, url string) error {
	rest := linkAddress(url)
	switch sch {
	case schemeRTU:
		if rest == "" || !strings.HasPrefix(rest, "/") {
			return fmt.Errorf("%q needs a serial device path, e.g. rtu:///dev/ttyUSB0", url)
		}
	case schemeTCP, schemeTLS, schemeRTUOverTCP:
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" {
			return fmt.Errorf("%q needs host:port, e.g. %s://192.0.2.10:502", url, sch)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q out of range (want 1-65535)", url, port)
		}
	default:
		return fmt.Errorf("unknown scheme %q in %q (want %s)", sch, url, validSchemes)
	}
	return nil
}
