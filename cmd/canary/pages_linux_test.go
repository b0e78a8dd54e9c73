//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/canary-gw/canary/internal/testenv"
)

// smapsEntry writes one mapping of /proc/PID/smaps as the kernel does.
func smapsEntry(rng, perms, dev string, inode int, path string, rss, anon, privDirty int) string {
	return fmt.Sprintf(`%s %s 00000000 %s %d                  %s
Size:               6416 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                %4d kB
Pss:                 900 kB
Shared_Clean:       2000 kB
Shared_Dirty:          0 kB
Private_Clean:      1324 kB
Private_Dirty:      %4d kB
Referenced:         3324 kB
Anonymous:          %4d kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
Swap:                  0 kB
Locked:                0 kB
THPeligible:           0
VmFlags: rd ex mr mw me sd
`, rng, perms, dev, inode, path, rss, privDirty, anon)
}

func TestReleasableRanges(t *testing.T) {
	exeDev := unix.Mkdev(0xfd, 0x01)
	const exeIno = 1234567
	tests := []struct {
		name  string
		smaps string
		want  []pageRange
		err   string
	}{
		{
			name: "text and read-only data of the executable, clean",
			smaps: smapsEntry("00400000-00a44000", "r-xp", "fd:01", exeIno, "/usr/bin/canary", 3324, 0, 0) +
				smapsEntry("00a44000-010ea000", "r--p", "fd:01", exeIno, "/usr/bin/canary", 1840, 0, 0),
			want: []pageRange{{0x400000, 0xa44000, 3324 << 10}, {0xa44000, 0x10ea000, 1840 << 10}},
		},
		{
			name: "writable data is never released",
			smaps: smapsEntry("010ea000-01130000", "rw-p", "fd:01", exeIno, "/usr/bin/canary", 312, 0, 0) +
				smapsEntry("00400000-00a44000", "r-xp", "fd:01", exeIno, "/usr/bin/canary", 10, 0, 0),
			want: []pageRange{{0x400000, 0xa44000, 10 << 10}},
		},
		{
			name: "a copy-on-write page (a breakpoint, a relocation) keeps the mapping",
			smaps: smapsEntry("00400000-00a44000", "r-xp", "fd:01", exeIno, "/usr/bin/canary", 3324, 4, 4) +
				smapsEntry("00a44000-010ea000", "r--p", "fd:01", exeIno, "/usr/bin/canary", 1840, 8, 8),
			want: nil,
		},
		{
			name:  "the file's own dirty pages (a binary just built or copied) are released",
			smaps: smapsEntry("00400000-00a44000", "r-xp", "fd:01", exeIno, "/usr/bin/canary", 3324, 0, 3324),
			want:  []pageRange{{0x400000, 0xa44000, 3324 << 10}},
		},
		{
			name: "other files, shared mappings, anonymous memory",
			smaps: smapsEntry("7f0000000000-7f0000100000", "r-xp", "fd:01", 99, "/lib/x.so", 100, 0, 0) +
				smapsEntry("7f0000100000-7f0000200000", "r-xp", "fd:02", exeIno, "/mnt/other", 100, 0, 0) +
				smapsEntry("7f0000200000-7f0000300000", "r--s", "fd:01", exeIno, "/usr/bin/canary", 100, 0, 0) +
				smapsEntry("c000000000-c004000000", "rw-p", "00:00", 0, "", 8000, 8000, 8000),
			want: nil,
		},
		{
			name:  "an executable replaced on disk is still matched by device and inode",
			smaps: smapsEntry("00400000-00a44000", "r-xp", "fd:01", exeIno, "/usr/bin/canary (deleted)", 64, 0, 0),
			want:  []pageRange{{0x400000, 0xa44000, 64 << 10}},
		},
		{
			name:  "a garbled range",
			smaps: smapsEntry("00400000", "r-xp", "fd:01", exeIno, "/usr/bin/canary", 64, 0, 0),
			err:   `smaps range "00400000": want LO-HI`,
		},
		{
			name:  "a garbled size",
			smaps: strings.Replace(smapsEntry("00400000-00a44000", "r-xp", "fd:01", exeIno, "/usr/bin/canary", 64, 0, 0), "Anonymous:             0", "Anonymous:          zero", 1),
			err:   `smaps Anonymous: "zero"`,
		},
		{
			name:  "a truncated mapping line",
			smaps: "00400000-00a44000 r-xp 00000000\n",
			err:   "want range, perms, offset, device and inode",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := releasableRanges(strings.NewReader(tt.smaps), exeDev, exeIno)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// exeResident is the resident size of this process's read-only mappings
// of its own executable, from /proc/PID/smaps.
func exeResident(t *testing.T, pid int) int64 {
	t.Helper()
	st, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	require.NoError(t, err)
	sys := st.Sys().(*syscall.Stat_t)
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	require.NoError(t, err)
	defer f.Close()
	ranges, err := releasableRanges(f, uint64(sys.Dev), sys.Ino)
	require.NoError(t, err)
	require.NotEmpty(t, ranges, "no read-only mapping of the executable found")
	var n int64
	for _, r := range ranges {
		n += r.rss
	}
	return n
}

// TestReleaseStartupPagesUnmapsTheExecutable releases this test binary's
// own pages and checks they left its resident set, and that the process
// goes on running the code it released (the next touch maps it again).
func TestReleaseStartupPagesUnmapsTheExecutable(t *testing.T) {
	before := exeResident(t, os.Getpid())
	released, err := releaseStartupPages()
	require.NoError(t, err)
	after := exeResident(t, os.Getpid())
	t.Logf("executable resident %d KiB, released %d KiB, resident after %d KiB", before>>10, released>>10, after>>10)
	require.Greater(t, released, int64(1<<20), "package init alone touches megabytes of the test binary")
	require.Less(t, after, before/2, "the released pages are still resident")

	// Code released above runs again: parse, format and hash afresh.
	got, err := releasableRanges(strings.NewReader(smapsEntry("1000-2000", "r--p", "00:01", 7, "x", 4, 0, 0)), unix.Mkdev(0, 1), 7)
	require.NoError(t, err)
	require.Equal(t, []pageRange{{0x1000, 0x2000, 4 << 10}}, got)
}

// TestRunReleasesStartupPages runs `canary run` as a process and checks,
// from its debug log and from outside through /proc, that it releases its
// start-up pages after package init and again after start-up. The site's
// broker and device are unreachable: the gateway runs on regardless.
func TestRunReleasesStartupPages(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site.yaml")
	require.NoError(t, os.WriteFile(site, []byte(fmt.Sprintf(`
site: pages
mqtt:
  url: tcp://127.0.0.1:%d
  client_id: pages-gw
outbox:
  dir: %s
devices:
  - id: gas
    url: tcp://127.0.0.1:%d
    unit: 1
    poll: 1s
    sensors:
      - id: ch4
        kind: methane
        table: holding
        address: 0
        type: float32
`, testenv.FreePort(t), filepath.Join(dir, "outbox"), testenv.FreePort(t))), 0o600))

	cmd := canaryProcess(t, "run", "-c", site, "--log-level", "debug", "--log-format", "json")
	logFile := cmd.Stdout.(*os.File).Name()

	var lines []string
	deadline := time.Now().Add(startupSettle + 15*time.Second)
	for len(lines) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		lines = lines[:0]
		f, err := os.Open(logFile)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"start-up pages released"`) {
				lines = append(lines, sc.Text())
			}
		}
		f.Close()
	}
	require.Len(t, lines, 2, "want a release after init and one after start-up")
	require.Contains(t, lines[0], `"when":"after init"`)
	require.Contains(t, lines[1], `"when":"after start-up"`)
	for _, l := range lines {
		require.NotContains(t, l, `"bytes":0,`, "nothing was released: %s", l)
	}
	// The gateway keeps running on the code it touches again.
	require.Nil(t, cmd.ProcessState)
	require.NoError(t, cmd.Process.Signal(syscall.Signal(0)))
	t.Logf("executable resident after start-up: %d KiB", exeResident(t, cmd.Process.Pid)>>10)
}
