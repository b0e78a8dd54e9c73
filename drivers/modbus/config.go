package modbus

import "time"

// DeviceConfig is one Modbus device (one unit id behind one link), as it is
// written under `devices:` in a site config. The site config adds the
// sensors; this package plans reads for them from []SensorConfig.
type DeviceConfig struct {
	// ID names the device in topics, tags and logs: [a-z0-9][a-z0-9_-]*.
	ID string `yaml:"id"`
	// URL is the link: tcp://host:port, tcp+tls://host:port,
	// rtu:///dev/ttyUSB0, rtuovertcp://host:port.
	URL string `yaml:"url"`
	// Unit is the Modbus unit (slave) id; default 1. 1–247 on serial lines,
	// 0–255 on TCP.
	Unit *int `yaml:"unit"`
	// Poll is the fixed poll period; default 1s.
	Poll time.Duration `yaml:"poll"`
	// Timeout bounds one request; default 500ms, must be below Poll.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how often a failed request is retried within one poll.
	Retries *int `yaml:"retries"`

	// Serial line settings for rtu:// (defaults 19200 8N1).
	Baud     int    `yaml:"baud"`
	Parity   string `yaml:"parity"`
	DataBits int    `yaml:"data_bits"`
	StopBits int    `yaml:"stop_bits"`

	// TLS material for tcp+tls:// (mutual TLS, as the Modbus/TCP security
	// spec requires).
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`

	// Request planning limits, for devices that accept less than the
	// protocol maximum.
	MaxRegisters int  `yaml:"max_registers"` // per read, default and max 125
	MaxBits      int  `yaml:"max_bits"`      // per read, default and max 2000
	MaxGap       *int `yaml:"max_gap"`       // unrequested registers bridged to merge reads, default 8

	// MaxBackoff caps how long a device that stops answering is left
	// alone between attempts, so the live devices on its link keep their
	// rate; default 10s (or Poll, if longer).
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// SensorConfig is where one sensor's value lives in the device and how it
// is decoded: value = raw * scale + offset.
type SensorConfig struct {
	// ID names the sensor: [a-z0-9][a-z0-9_-]*, unique within its device.
	ID string `yaml:"id"`
	// Table is holding | input | coil | discrete.
	Table string `yaml:"table"`
	// Address is the zero-based protocol address.
	Address *int `yaml:"address"`
	// Type is the register type (int16 uint16 int32 uint32 int64 uint64
	// float32 float64 bool, ...).
	Type string `yaml:"type"`
	// Order is the byte order of multi-byte types: ABCD CDAB BADC DCBA, or
	// ABCDEFGH GHEFCDAB BADCFEHG HGFEDCBA for 64-bit types.
	Order string `yaml:"order"`
	// Bit picks one bit (0 = least significant) of a 16-bit register.
	Bit *int `yaml:"bit"`
	// Scale and Offset convert the raw value to engineering units.
	Scale  *float64 `yaml:"scale"`
	Offset float64  `yaml:"offset"`
	// Status names the detector's status word, another sensor of the
	// device, whose bits make this sensor's reading bad or uncertain
	// (SAFETY table (b), device-status validation).
	Status *StatusConfig `yaml:"status"`
}

// StatusConfig maps a status word's bits onto a reading's quality: a
// detector in fault, inhibit, warm-up or calibration may well report 0,
// which must not read as clean air.
type StatusConfig struct {
	// Sensor is the status word: a sensor of the same device, of an
	// integer or bool type, read in the same poll.
	Sensor string `yaml:"sensor"`
	// BadBits set make the reading bad (the sensor's bad alarm): fault,
	// inhibit, out of service.
	BadBits []int `yaml:"bad_bits"`
	// UncertainBits set make it uncertain (its limit alarms hold): warm-up,
	// calibration.
	UncertainBits []int `yaml:"uncertain_bits"`
}
