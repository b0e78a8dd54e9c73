package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clkTck is USER_HZ, 100 on every Linux architecture Go supports.
const clkTck = 100

// Proc is one reading of a process's CPU time and memory.
type Proc struct {
	// CPUSeconds is user + system time, from /proc/<pid>/stat.
	CPUSeconds float64
	// PeakRSS (VmHWM) and RSS (VmRSS) in bytes, from /proc/<pid>/status.
	PeakRSS int64
	RSS     int64
}

// ReadProc reads /proc/<pid>; pid 0 is this process.
func ReadProc(pid int) (Proc, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Proc{}, fmt.Errorf("read process stats: %w", err)
	}
	cpu, err := ParseStatCPU(stat)
	if err != nil {
		return Proc{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return Proc{}, fmt.Errorf("read process status: %w", err)
	}
	hwm, err := statusKB(status, "VmHWM:")
	if err != nil {
		return Proc{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	rss, err := statusKB(status, "VmRSS:")
	if err != nil {
		return Proc{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	return Proc{CPUSeconds: cpu, PeakRSS: hwm, RSS: rss}, nil
}

// ParseStatCPU returns utime+stime in seconds from the text of
// /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func ParseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", truncate(stat))
	}
	f := strings.Fields(string(stat[i+1:]))
	// After the name: state(3) ... utime(14) stime(15), so index 11 and 12.
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name (want at least 13)", len(f))
	}
	ut, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime %q: %w", f[11], err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime %q: %w", f[12], err)
	}
	return float64(ut+st) / clkTck, nil
}

func statusKB(status []byte, key string) (int64, error) {
	for line := range strings.SplitSeq(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, key)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s %q (want N kB)", key, strings.TrimSpace(rest))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %q: %w", key, f[0], err)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("no %s line", key)
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
