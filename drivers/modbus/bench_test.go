package modbus

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
	mb "github.com/simonvetter/modbus"
	"github.com/stretchr/testify/require"
)

func BenchmarkDecode(b *testing.B) {
	cases := []struct {
		name  string
		typ   Type
		order string
		bit   int
		regs  []uint16
	}{
		{"int16", TypeInt16, "", -1, []uint16{0xFFFB}},
		{"uint16_scaled", TypeUint16, "", -1, []uint16{0x022B}},
		{"float32_ABCD", TypeFloat32, "ABCD", -1, []uint16{0x4049, 0x0FDB}},
		{"float32_CDAB", TypeFloat32, "CDAB", -1, []uint16{0x0FDB, 0x4049}},
		{"float16", TypeFloat16, "", -1, []uint16{0x3C00}},
		{"int32_DCBA", TypeInt32, "DCBA", -1, []uint16{0xFFFF, 0xFF7F}},
		{"float64_HGFEDCBA", TypeFloat64, "HGFEDCBA", -1, []uint16{0x182D, 0x4454, 0xFB21, 0x0940}},
		{"bool_bit", TypeBool, "", 3, []uint16{0x0008}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			c := mustCodec(b, tc.typ, tc.order, tc.bit, 0.1, 1)
			b.ReportAllocs()
			var sink float64
			for b.Loop() {
				v, _ := c.Decode(tc.regs)
				sink += v
			}
			_ = sink
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/reading")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("sensors=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			sensors := make([]SensorConfig, n)
			for i := range sensors {
				sensors[i] = sensor(fmt.Sprintf("s%d", i), "holding", rng.IntN(20000), "float32", "CDAB")
				sensors[i].SetDefaults()
			}
			d := validDevice()
			b.ReportAllocs()
			var reqs int
			for b.Loop() {
				p, err := NewPlan(&d, sensors)
				if err != nil {
					b.Fatal(err)
				}
				reqs = len(p.Requests)
			}
			b.ReportMetric(float64(reqs), "requests")
		})
	}
}

// benchHandler serves every holding/input register as a float32 1.5.
type benchHandler struct{}

func (benchHandler) HandleCoils(*mb.CoilsRequest) ([]bool, error) { return nil, mb.ErrIllegalFunction }
func (benchHandler) HandleDiscreteInputs(*mb.DiscreteInputsRequest) ([]bool, error) {
	return nil, mb.ErrIllegalFunction
}
func (benchHandler) HandleHoldingRegisters(r *mb.HoldingRegistersRequest) ([]uint16, error) {
	return floatRegs(r.Addr, r.Quantity), nil
}
func (benchHandler) HandleInputRegisters(r *mb.InputRegistersRequest) ([]uint16, error) {
	return floatRegs(r.Addr, r.Quantity), nil
}

func floatRegs(addr, n uint16) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		if (int(addr)+i)%2 == 0 {
			out[i] = 0x3FC0
		}
	}
	return out
}

// BenchmarkPollTCP polls one device with N float32 sensors over loopback
// TCP against an in-process simonvetter/modbus server (the server's CPU is
// included, so readings/s is a floor for the driver alone).
func BenchmarkPollTCP(b *testing.B) {
	for _, n := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("sensors=%d", n), func(b *testing.B) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(b, err)
			addr := l.Addr().String()
			require.NoError(b, l.Close())
			srv, err := mb.NewServer(&mb.ServerConfiguration{URL: "tcp://" + addr, Timeout: time.Minute, MaxClients: 4}, benchHandler{})
			require.NoError(b, err)
			require.NoError(b, srv.Start())
			b.Cleanup(func() { _ = srv.Stop() })
			sensors := make([]SensorConfig, n)
			for i := range sensors {
				sensors[i] = sensor(fmt.Sprintf("s%d", i), "holding", 2*i, "float32", "")
			}
			dev := device("bench", "tcp://"+addr, 1, time.Second, sensors)
			nop := zerolog.Nop()
			ps, err := NewPollers([]Device{dev}, Options{Logger: &nop})
			require.NoError(b, err)
			p, d := ps[0], ps[0].devs[0]
			defer p.link.Close()
			b.ReportAllocs()
			for b.Loop() {
				bt := p.poll(b.Context(), d)
				if bt.Err != nil {
					b.Fatal(bt.Err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(len(d.plan.Requests)), "requests/poll")
		})
	}
}
