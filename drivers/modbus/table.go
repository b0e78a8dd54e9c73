package modbus

import "fmt"

// Table is one of the four Modbus data tables.
type Table uint8

// Tables. TableUnknown is the zero value.
const (
	TableUnknown  Table = iota
	TableHolding        // holding registers, FC03 (read) / FC06, FC16 (write)
	TableInput          // input registers, FC04
	TableCoil           // coils, FC01 (read) / FC05 (write)
	TableDiscrete       // discrete inputs, FC02
)

var tableNames = [...]string{"unknown", "holding", "input", "coil", "discrete"}

func (t Table) String() string {
	if int(t) < len(tableNames) {
		return tableNames[t]
	}
	return fmt.Sprintf("table(%d)", t)
}

// IsBits reports whether the table holds single bits.
func (t Table) IsBits() bool { return t == TableCoil || t == TableDiscrete }

// ParseTable reads a table's config spelling.
func ParseTable(s string) (Table, error) {
	for i, n := range tableNames {
		if i != 0 && n == s {
			return Table(i), nil
		}
	}
	if s == "" {
		return TableUnknown, fmt.Errorf("is required (want %s)", validTables)
	}
	return TableUnknown, fmt.Errorf("unknown table %q (want %s)", s, validTables)
}
