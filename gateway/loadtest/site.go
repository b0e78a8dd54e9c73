package loadtest

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Scenario is the load: Devices Modbus TCP devices with Sensors float32
// readings each (two holding registers per reading, ABCD, contiguous from
// address 0), polled every Poll.
type Scenario struct {
	Site    string
	Devices int
	Sensors int
	Poll    time.Duration
	// Timeout per request; default Poll/2 capped at 1s.
	Timeout time.Duration
	// Ports are the devices' loopback ports (len == Devices); FreePorts
	// finds some.
	Ports     []int
	BrokerURL string
	OutboxDir string
	// MaxOutbox bounds the outbox (for example "256MiB").
	MaxOutbox string
}

// Validate reports a scenario that cannot be generated.
func (s Scenario) Validate() error {
	switch {
	case s.Site == "":
		return fmt.Errorf("scenario: no site id")
	case s.Devices < 1:
		return fmt.Errorf("scenario: devices %d (want at least 1)", s.Devices)
	case s.Sensors < 1 || s.Sensors > 62:
		// 62 float32 = 124 registers: one read request per poll, as in the
		// reference scenario (20 readings in 40 registers).
		return fmt.Errorf("scenario: sensors %d per device (want 1..62)", s.Sensors)
	case s.Poll <= 0:
		return fmt.Errorf("scenario: poll %s (want > 0)", s.Poll)
	case len(s.Ports) != s.Devices:
		return fmt.Errorf("scenario: %d ports for %d devices", len(s.Ports), s.Devices)
	}
	return nil
}

// DeviceID names device i.
func DeviceID(i int) string { return fmt.Sprintf("d%03d", i) }

// SensorID names sensor j of a device. Sensor 0 of every device is a
// coal-face methane detector (high alarm at 1.0 %vol) that the scenario
// drives across its limit; the others are methane detectors too, so every
// reading goes through full alarm evaluation.
func SensorID(j int) string { return fmt.Sprintf("s%02d", j) }

// SiteYAML is the site config of the scenario: the same file serves the
// simulator and the gateway.
func (s Scenario) SiteYAML() (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = min(s.Poll/2, time.Second)
	}
	maxOutbox := s.MaxOutbox
	if maxOutbox == "" {
		maxOutbox = "256MiB"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "site: %s\nname: canary load scenario\n", s.Site)
	if s.BrokerURL != "" {
		fmt.Fprintf(&b, "mqtt:\n  url: %s\n  client_id: %s-gw\n", s.BrokerURL, s.Site)
	}
	if s.OutboxDir != "" {
		fmt.Fprintf(&b, "outbox:\n  dir: %q\n  max_bytes: %s\n", s.OutboxDir, maxOutbox)
	}
	b.WriteString("devices:\n")
	for i := range s.Devices {
		fmt.Fprintf(&b, "  - id: %s\n    url: tcp://127.0.0.1:%d\n    unit: 1\n    poll: %s\n    timeout: %s\n    sensors:\n",
			DeviceID(i), s.Ports[i], s.Poll, timeout)
		for j := range s.Sensors {
			fmt.Fprintf(&b, "      - {id: %s, kind: methane, table: holding, address: %d, type: float32, order: ABCD}\n",
				SensorID(j), 2*j)
		}
	}
	b.WriteString("simulation:\n  seed: 1\n")
	return b.String(), nil
}

// FreePorts reserves n loopback ports by listening on port 0 and closing
// them all at the end (so no two are equal).
func FreePorts(n int) ([]int, error) {
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free ports: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
