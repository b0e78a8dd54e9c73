package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/internal/configerr"
)

type readFlags struct {
	unit, addr, count, bit    int
	table, typ, order         string
	scale, offset             float64
	asJSON, probe             bool
	timeout                   time.Duration
	baud, dataBits, stopBits  int
	parity                    string
	caFile, certFile, keyFile string
}

// flagOf maps a config path of the driver's validation to the flag a user
// typed, so that errors name what can be fixed.
var flagOf = map[string]string{
	"url": "URL", "unit": "--unit", "timeout": "--timeout", "poll": "--timeout", "baud": "--baud",
	"parity": "--parity", "data_bits": "--data-bits", "stop_bits": "--stop-bits", "ca_file": "--ca-file",
	"cert_file": "--cert-file", "key_file": "--key-file", "table": "--table", "type": "--type",
	"order": "--order", "address": "--addr", "bit": "--bit", "scale": "--scale", "offset": "--offset",
}

func newReadCmd(g *globalFlags) *cobra.Command {
	f := &readFlags{}
	cmd := &cobra.Command{
		Use:   "read URL --addr A [--unit N] [--table T] [--type TYPE] [--order ORDER] [--count N]",
		Short: "Read and decode registers from a device (commissioning, like mbpoll with canary's decoders)",
		Long: `read reads registers or bits once from a Modbus device and prints them decoded
with the same codec the gateway uses: value = raw * scale + offset.

URL is tcp://host:port, tcp+tls://host:port, rtuovertcp://host:port or
rtu:///dev/ttyUSB0 (with --baud, --parity, --stop-bits). Addresses are
zero-based protocol addresses. --count reads that many consecutive values of
--type. --probe reads the raw registers once and shows the value under every
byte order side by side, to find a device's order.

With --json the output is one JSON array of numbers (booleans for bool);
with --probe --json one object mapping each order to such an array. A value
that cannot be read (NaN, Inf) is null in JSON and the exit code is 1.`,
		Example: `  canary read tcp://192.0.2.10:502 --unit 1 --table holding --addr 0 --type float32 --order CDAB
  canary read rtu:///dev/ttyUSB0 --baud 9600 --parity even --unit 3 --addr 100 --count 4 --type int16 --scale 0.1
  canary read tcp://127.0.0.1:5020 --addr 0 --type float32 --probe`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("read: want exactly one URL, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRead(cmd, g, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.unit, "unit", modbus.DefaultUnit, "unit (slave) id: 1-247 on serial lines, 0-255 on TCP")
	fl.StringVar(&f.table, "table", "holding", "register table: holding, input, coil, discrete")
	fl.IntVar(&f.addr, "addr", -1, "zero-based protocol address of the first value (required)")
	fl.StringVar(&f.typ, "type", "", "value type: "+modbus.TypeNames+" (default uint16, bool for coil/discrete)")
	fl.StringVar(&f.order, "order", "", "byte order: ABCD CDAB BADC DCBA, ABCDEFGH GHEFCDAB BADCFEHG HGFEDCBA for 64-bit, AB BA for 16-bit, A B for 8-bit")
	fl.IntVar(&f.bit, "bit", -1, "bit 0-15 of a register, for --type bool on holding or input")
	fl.IntVar(&f.count, "count", 1, "number of consecutive values to read")
	fl.Float64Var(&f.scale, "scale", 1, "multiply the raw value by this")
	fl.Float64Var(&f.offset, "offset", 0, "then add this")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON array")
	fl.BoolVar(&f.probe, "probe", false, "show the value under every byte order")
	fl.DurationVar(&f.timeout, "timeout", time.Second, "request timeout")
	fl.IntVar(&f.baud, "baud", modbus.DefaultBaud, "serial speed (rtu://)")
	fl.StringVar(&f.parity, "parity", modbus.DefaultParity, "serial parity: none, even, odd (rtu://)")
	fl.IntVar(&f.dataBits, "data-bits", modbus.DefaultDataBits, "serial data bits (rtu://): 8, as RTU framing has")
	fl.IntVar(&f.stopBits, "stop-bits", modbus.DefaultStopBits, "serial stop bits: 1 or 2 (rtu://)")
	fl.StringVar(&f.caFile, "ca-file", "", "CA certificate (tcp+tls://)")
	fl.StringVar(&f.certFile, "cert-file", "", "client certificate (tcp+tls://)")
	fl.StringVar(&f.keyFile, "key-file", "", "client key (tcp+tls://)")
	return cmd
}

// readUsage turns the driver's field errors into one usage error naming flags.
func readUsage(err error) error {
	var msgs []string
	for _, fe := range configerr.Sorted(err) {
		path := fe.Path
		if i := strings.LastIndex(path, "."); i >= 0 {
			path = path[i+1:]
		}
		name, ok := flagOf[path]
		if !ok {
			name = path
		}
		msgs = append(msgs, name+": "+fe.Msg)
	}
	return usageErrorf("read: %s", strings.Join(msgs, "; "))
}

func runRead(cmd *cobra.Command, g *globalFlags, f *readFlags, url string) error {
	logger, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if f.addr < 0 {
		return usageErrorf("read: --addr is required (zero-based protocol address 0-65535)")
	}
	if f.count < 1 || f.count > modbus.MaxReadBits {
		return usageErrorf("read: --count %d out of range (want 1-%d)", f.count, modbus.MaxReadBits)
	}
	if f.typ == "" {
		f.typ = "uint16"
		if f.table == "coil" || f.table == "discrete" {
			f.typ = "bool"
		}
	}
	if f.timeout <= 0 {
		// 0 would become the default of a device config, derived from the
		// poll this command makes up from it: half a millisecond.
		return usageErrorf("read: --timeout %s must be positive", f.timeout)
	}
	d := modbus.DeviceConfig{
		ID: "read", URL: url, Unit: &f.unit, Timeout: f.timeout, Poll: 2*f.timeout + time.Millisecond,
		Retries: new(int), CAFile: f.caFile, CertFile: f.certFile, KeyFile: f.keyFile,
	}
	if strings.HasPrefix(strings.ToLower(url), "rtu://") {
		d.Baud, d.Parity, d.DataBits, d.StopBits = f.baud, f.parity, f.dataBits, f.stopBits
	}
	d.SetDefaults()
	if err := d.Validate(); err != nil {
		return readUsage(err)
	}
	typ, err := modbus.ParseType(f.typ)
	if err != nil {
		return usageErrorf("read: --type: %v", err)
	}
	width := typ.Words()
	sensors := make([]modbus.SensorConfig, f.count)
	for i := range sensors {
		s := modbus.SensorConfig{
			ID: fmt.Sprintf("v%d", i), Table: f.table, Address: new(int), Type: f.typ, Order: f.order,
			Scale: &f.scale, Offset: f.offset,
		}
		*s.Address = f.addr + i*width
		if typ == modbus.TypeBool && f.bit >= 0 {
			*s.Address = f.addr + i
			s.Bit = &f.bit
		} else if f.bit >= 0 {
			s.Bit = &f.bit // let validation explain
		}
		s.SetDefaults()
		sensors[i] = s
	}
	if err := modbus.ValidateSensors(&d, sensors); err != nil {
		return readUsage(err)
	}
	bitsTable := f.table == "coil" || f.table == "discrete"
	if f.probe {
		if bitsTable || typ == modbus.TypeBool {
			return usageErrorf("read: --probe is for register values, not bits (coils, discrete inputs, bool)")
		}
		return probe(cmd, &d, f, typ, logger)
	}
	ps, err := modbus.NewPollers([]modbus.Device{{Config: d, Sensors: sensors}}, modbus.Options{Logger: &logger})
	if err != nil {
		return usageErrorf("read: %v", err)
	}
	b := ps[0].PollOnce(cmd.Context())[0]
	return printRead(cmd.OutOrStdout(), b, sensors, f, typ, url)
}

// errReadLate is read's outcome when its one poll was abandoned as late
// (modbus.Batch.Late): a request's timeout expired while this process was
// not running (a suspended laptop, an overloaded box), so the readings say
// nothing about the device. The gateway's next poll would tell; read has
// none, so it says what happened instead of an empty reason.
var errReadLate = errors.New("timed out (the process was stalled past the timeout; nothing is known about the device, run read again)")

// printRead prints the outcome of read's one poll, and returns an error
// when it failed, was abandoned as late, or any value is not good.
func printRead(out io.Writer, b modbus.Batch, sensors []modbus.SensorConfig, f *readFlags, typ modbus.Type, url string) error {
	if b.Late {
		return fmt.Errorf("read %s unit %d: %w", url, f.unit, errReadLate)
	}
	if b.Err != nil {
		return fmt.Errorf("read %s unit %d: %w", url, f.unit, b.Err)
	}
	var bad []string
	vals := make([]any, len(b.Readings))
	for i, r := range b.Readings {
		if r.Quality != modbus.QualityGood {
			bad = append(bad, fmt.Sprintf("%s %d: %s", f.table, *sensors[i].Address, readReason(r)))
			continue
		}
		vals[i] = jsonValue(typ, r.Value, f)
	}
	if f.asJSON {
		if err := json.NewEncoder(out).Encode(vals); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "TABLE\tADDR\tTYPE\tVALUE\n")
		for i, r := range b.Readings {
			v := readReason(r)
			if r.Quality == modbus.QualityGood {
				v = formatValue(typ, r.Value, f)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", f.table, *sensors[i].Address, typeLabel(typ, sensors[i]), v)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("read %s unit %d: bad values: %s", url, f.unit, strings.Join(bad, "; "))
	}
	return nil
}

// readReason is why a reading is not good: its reason, or its quality
// when the driver gave none.
func readReason(r modbus.Reading) string {
	if r.Reason == "" {
		return r.Quality.String()
	}
	return r.Reason
}

func typeLabel(typ modbus.Type, s modbus.SensorConfig) string {
	switch {
	case s.Bit != nil:
		return fmt.Sprintf("bool bit %d", *s.Bit)
	case s.Order != "":
		return typ.String() + " " + s.Order
	}
	return typ.String()
}

// isPlainBool is a bool shown as true/false: no scale or offset applied.
func isPlainBool(typ modbus.Type, f *readFlags) bool {
	return typ == modbus.TypeBool && f.scale == 1 && f.offset == 0
}

func jsonValue(typ modbus.Type, v float64, f *readFlags) any {
	if isPlainBool(typ, f) {
		return v == 1
	}
	return json.Number(formatValue(typ, v, f))
}

// formatValue prints the shortest form that round-trips at the type's
// precision, so a float32 reads 3.1415927, not 3.1415927410125732.
func formatValue(typ modbus.Type, v float64, f *readFlags) string {
	if isPlainBool(typ, f) {
		return strconv.FormatBool(v == 1)
	}
	bits := 64
	if typ == modbus.TypeFloat32 || typ == modbus.TypeFloat16 {
		bits = 32
	}
	return strconv.FormatFloat(v, 'g', -1, bits)
}

// probe reads the raw registers once and decodes them under every order.
func probe(cmd *cobra.Command, d *modbus.DeviceConfig, f *readFlags, typ modbus.Type, logger zerolog.Logger) error {
	tbl, _ := modbus.ParseTable(f.table)
	n := f.count * typ.Words()
	if n > modbus.MaxReadRegisters || f.addr+n-1 > 65535 {
		return usageErrorf("read: --probe reads %d registers from %d: want at most %d, ending by 65535", n, f.addr, modbus.MaxReadRegisters)
	}
	link, err := modbus.NewLink(d, logger)
	if err != nil {
		return err
	}
	defer link.Close()
	regs, err := link.ReadRegisters(*d.Unit, tbl, uint16(f.addr), uint16(n))
	if err != nil {
		return fmt.Errorf("read %s unit %d %s %d..%d: %w", d.URL, *d.Unit, tbl, f.addr, f.addr+n-1, err)
	}
	var orders []string
	for _, o := range modbus.OrderChoices(typ) {
		// Aliases (32-bit names on 16- and 64-bit values) add nothing.
		if (typ.Bytes() == 2 && len(o) != 2) || (typ.Bytes() == 8 && len(o) != 8) {
			continue
		}
		orders = append(orders, o)
	}
	table := map[string][]any{}
	cells := make([][]string, f.count)
	for _, o := range orders {
		c, err := modbus.NewCodec(typ, o, -1, f.scale, f.offset)
		if err != nil {
			return usageErrorf("read: %v", err)
		}
		for i := 0; i < f.count; i++ {
			v, derr := c.Decode(regs[i*typ.Words():])
			switch {
			case derr != nil:
				table[o] = append(table[o], nil)
				cells[i] = append(cells[i], strings.TrimPrefix(derr.Error(), "value is "))
			default:
				table[o] = append(table[o], json.Number(formatValue(typ, v, f)))
				cells[i] = append(cells[i], formatValue(typ, v, f))
			}
		}
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		return json.NewEncoder(out).Encode(table)
	}
	return printProbe(out, tbl, f.addr, typ, regs, orders, cells)
}

func printProbe(out io.Writer, tbl modbus.Table, addr int, typ modbus.Type, regs []uint16, orders []string, cells [][]string) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ADDR\tRAW\t%s\n", strings.Join(orders, "\t"))
	w := typ.Words()
	for i, row := range cells {
		raw := make([]string, w)
		for j := range raw {
			raw[j] = fmt.Sprintf("%04X", regs[i*w+j])
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", addr+i*w, strings.Join(raw, " "), strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "(%s %s registers %d..%d)\n", typ, tbl, addr, addr+len(regs)-1)
	return err
}
