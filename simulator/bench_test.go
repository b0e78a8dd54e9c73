package simulator

import (
	"context"
	"fmt"
	"io"
	"log"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/rs/zerolog"
	mb "github.com/simonvetter/modbus"
	"github.com/stretchr/testify/require"
)

// bigSite generates a site of n devices × 8 sensors. With perPort devices
// per TCP address (unit ids 1..perPort), as behind serial gateways; each
// address is a distinct loopback IP with an ephemeral port.
func bigSite(n, perPort int) *configs.Site {
	ip := func(i int) *int { return &i }
	one := 1.0
	tenth := 0.1
	hundredth := 0.01
	milli := 0.001
	kinds := []struct {
		kind, table, typ, order string
		scale                   *float64
		width                   int
	}{
		{"methane", "holding", "float32", "ABCD", &one, 2},
		{"co", "holding", "uint16", "", &tenth, 1},
		{"oxygen", "holding", "uint16", "", &hundredth, 1},
		{"h2s", "holding", "uint16", "", &tenth, 1},
		{"pressure", "holding", "float32", "CDAB", &one, 2},
		{"temperature", "holding", "int16", "", &tenth, 1},
		{"current", "holding", "uint16", "", &milli, 1},
		{"generic", "holding", "int32", "CDAB", &one, 2},
	}
	site := &configs.Site{Site: "bench", Simulation: &configs.Simulation{Seed: 1}}
	for i := range n {
		port := i / perPort
		d := configs.Device{DeviceConfig: modbus.DeviceConfig{
			ID:   fmt.Sprintf("dev%04d", i),
			URL:  fmt.Sprintf("tcp://127.0.%d.%d:0", 1+port/250, 1+port%250),
			Unit: ip(1 + i%perPort),
		}}
		addr := 0
		for j, k := range kinds {
			d.Sensors = append(d.Sensors, configs.Sensor{
				SensorConfig: modbus.SensorConfig{ID: fmt.Sprintf("s%d", j), Table: k.table, Address: ip(addr), Type: k.typ, Order: k.order, Scale: k.scale},
				Kind:         k.kind,
			})
			addr += k.width
		}
		site.Devices = append(site.Devices, d)
	}
	return site
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkStartup1000 builds and starts a 1000-device × 8-sensor site, one
// TCP address per device, and stops it again.
func BenchmarkStartup1000(b *testing.B) {
	for _, perPort := range []int{1, 250} {
		b.Run(fmt.Sprintf("devices_per_address=%d", perPort), func(b *testing.B) {
			site := bigSite(1000, perPort)
			var heap uint64
			for b.Loop() {
				before := heapInUse()
				s, err := New(Options{Site: site, Logger: zerolog.Nop()})
				require.NoError(b, err)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- s.Run(ctx) }()
				<-s.Ready()
				b.StopTimer()
				heap = heapInUse() - before
				b.StartTimer()
				cancel()
				require.NoError(b, <-done)
			}
			b.ReportMetric(float64(heap), "heap_bytes")
			b.ReportMetric(float64(heap)/8000, "heap_bytes/sensor")
		})
	}
}

// BenchmarkRequests reads all 8 sensors of a device (one 11-register read)
// from parallel clients over loopback TCP, spread over a 1000-device site.
func BenchmarkRequests(b *testing.B) {
	site := bigSite(1000, 250)
	s, err := New(Options{Site: site, Logger: zerolog.Nop(), MaxConns: 1024})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	defer func() { cancel(); <-done }()
	var next atomic.Int64
	b.SetParallelism(4)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		dev := fmt.Sprintf("dev%04d", (i*37)%1000)
		u, err := s.DeviceURL(dev)
		require.NoError(b, err)
		c, err := mb.NewClient(&mb.ClientConfiguration{URL: u, Timeout: time.Second, Logger: log.New(io.Discard, "", 0)})
		require.NoError(b, err)
		require.NoError(b, c.Open())
		defer c.Close()
		require.NoError(b, c.SetUnitId(s.byID[dev].unit))
		for pb.Next() {
			if _, err := c.ReadRegisters(0, 11, mb.HOLDING_REGISTER); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
	b.ReportMetric(float64(b.N*8)/time.Since(start).Seconds(), "sensor_values/s")
}

// BenchmarkValue is the cost of one physics evaluation (noise, drift,
// excursions) without the network.
func BenchmarkValue(b *testing.B) {
	s, err := New(Options{Site: bigSite(10, 10), Logger: zerolog.Nop()})
	require.NoError(b, err)
	sn := s.byID["dev0001"].byID["s1"] // CO: every physics term
	var t time.Duration
	for b.Loop() {
		t += 250 * time.Millisecond
		sn.valueAt(t)
	}
}

// A 1000-device site starts in one process and every part of it answers.
func TestLargeSite(t *testing.T) {
	s := startSim(t, Options{Site: bigSite(1000, 250)})
	require.NoError(t, s.SetClock(time.Hour, 0))
	for _, dev := range []string{"dev0000", "dev0499", "dev0999"} {
		u, err := s.DeviceURL(dev)
		require.NoError(t, err)
		c := newClient(t, u, s.byID[dev].unit)
		require.NoError(t, c.SetEncoding(mb.BIG_ENDIAN, mb.HIGH_WORD_FIRST))
		f, err := c.ReadFloat32s(0, 1, mb.HOLDING_REGISTER)
		require.NoError(t, err)
		want, _, err := s.Value(dev, "s0")
		require.NoError(t, err)
		require.InDelta(t, want, float64(f[0]), 1e-6)
	}
	require.Len(t, s.Devices(), 1000)
}
