// Package simulator stands in for a site's field devices: it serves every
// Modbus device of a site config (TCP, RTU on a pseudo-terminal, RTU over
// TCP) with values from seeded physics chosen by each sensor's kind, encoded
// with the sensor's own table, address, type, order and scale, and it injects
// the faults a gateway must survive (offline, fault signal, slow answers,
// dropped requests, busy, frozen and drifting values, garbage frames, CRC
// errors). Scripted scenarios (a spreading methane leak, a pressure surge, a
// pipeline rupture, ...) run in compressed simulated time and are
// reproducible: every value is a pure function of the seed, the sensor and
// the simulated time.
//
// A control API (see Simulator.Handler) lets tests and demos hold values,
// change device states and start scenarios.
//
// It imports configs (and through it the drivers' config types) and never
// gateway or alerting.
package simulator
