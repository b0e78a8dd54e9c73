//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/canary-gw/canary/internal/testenv"
)

// entry is one mapping of a /proc/PID/smaps fixture.
type entry struct {
	rng, perms, dev string
	inode           int
	path            string
	rss, anon, dirt int    // kB
	swap            string // kB, or "" for no Swap line
	flags           string // VmFlags
}

// smaps writes the entries as the kernel does.
func smaps(es ...entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s %s 00000000 %s %d                  %s\n", e.rng, e.perms, e.dev, e.inode, e.path)
		fmt.Fprintf(&b, "Size:               6416 kB\nKernelPageSize:        4 kB\nMMUPageSize:           4 kB\n")
		fmt.Fprintf(&b, "Rss:                %4d kB\nPss:                 900 kB\nShared_Clean:       2000 kB\nShared_Dirty:          0 kB\n", e.rss)
		fmt.Fprintf(&b, "Private_Clean:      1324 kB\nPrivate_Dirty:      %4d kB\nReferenced:         3324 kB\n", e.dirt)
		fmt.Fprintf(&b, "Anonymous:          %4d kB\nKSM:                   0 kB\nLazyFree:              0 kB\nAnonHugePages:         0 kB\n", e.anon)
		if e.swap != "" {
			fmt.Fprintf(&b, "Swap:               %4s kB\nSwapPss:               0 kB\n", e.swap)
		}
		fmt.Fprintf(&b, "Locked:                0 kB\nTHPeligible:           0\nVmFlags: %s\n", e.flags)
	}
	return b.String()
}

func TestReleasableRanges(t *testing.T) {
	const pc = 0x401234 // in the text fixtures' range
	text := entry{"00400000-00a44000", "r-xp", "fd:01", 1234567, "/usr/bin/canary", 3324, 0, 0, "0", "rd ex mr mw me sd"}
	rodata := entry{"00a44000-010ea000", "r--p", "fd:01", 1234567, "/usr/bin/canary", 1840, 0, 0, "0", "rd mr mw me sd"}
	data := entry{"010ea000-01130000", "rw-p", "fd:01", 1234567, "/usr/bin/canary", 312, 96, 96, "0", "rd wr mr mw me ac sd"}
	with := func(e entry, f func(*entry)) entry { f(&e); return e }
	tests := []struct {
		name  string
		smaps string
		want  []pageRange
		err   string
	}{
		{
			name:  "text and read-only data of the executable, clean; writable data never",
			smaps: smaps(text, rodata, data),
			want:  []pageRange{{0x400000, 0xa44000, 3324 << 10}, {0xa44000, 0x10ea000, 1840 << 10}},
		},
		{
			name:  "a copy-on-write page (a breakpoint, a relocation) keeps the mapping",
			smaps: smaps(with(text, func(e *entry) { e.anon, e.dirt = 4, 4 }), with(rodata, func(e *entry) { e.anon = 8 })),
			want:  nil,
		},
		{
			name:  "a copy-on-write page in swap keeps the mapping",
			smaps: smaps(text, with(rodata, func(e *entry) { e.swap = "8" })),
			want:  []pageRange{{0x400000, 0xa44000, 3324 << 10}},
		},
		{
			name:  "without a Swap line nothing is known: kept",
			smaps: smaps(text, with(rodata, func(e *entry) { e.swap = "" })),
			want:  []pageRange{{0x400000, 0xa44000, 3324 << 10}},
		},
		{
			name:  "without a VmFlags line nothing is known: kept",
			smaps: strings.Replace(smaps(text, rodata), "VmFlags: rd mr mw me sd\n", "", 1),
			want:  []pageRange{{0x400000, 0xa44000, 3324 << 10}},
		},
		{
			name:  "hugetlbfs, whose copy-on-write pages Anonymous does not count, is kept",
			smaps: smaps(text, with(rodata, func(e *entry) { e.flags = "rd mr mw me ht sd" })),
			want:  []pageRange{{0x400000, 0xa44000, 3324 << 10}},
		},
		{
			name:  "a mapping once writable (RELRO of a PIE or cgo build) is kept",
			smaps: smaps(text, with(rodata, func(e *entry) { e.flags = "rd mr mw me ac sd" })),
			want:  []pageRange{{0x400000, 0xa44000, 3324 << 10}},
		},
		{
			name:  "the file's own dirty pages (a binary just built or copied) are released",
			smaps: smaps(with(text, func(e *entry) { e.dirt = 3324 })),
			want:  []pageRange{{0x400000, 0xa44000, 3324 << 10}},
		},
		{
			name: "other files, shared mappings, anonymous memory are kept",
			smaps: smaps(text,
				entry{"7f0000000000-7f0000100000", "r-xp", "fd:01", 99, "/lib/x.so", 100, 0, 0, "0", "rd ex"},
				entry{"7f0000100000-7f0000200000", "r-xp", "fd:02", 1234567, "/mnt/other", 100, 0, 0, "0", "rd ex"},
				entry{"7f0000200000-7f0000300000", "r--s", "fd:01", 1234567, "/usr/bin/canary", 100, 0, 0, "0", "rd sh"},
				entry{"c000000000-c004000000", "rw-p", "00:00", 0, "", 8000, 8000, 8000, "0", "rd wr ac"}),
			want: []pageRange{{0x400000, 0xa44000, 3324 << 10}},
		},
		{
			name:  "an executable replaced on disk is still the file its code is in",
			smaps: smaps(with(text, func(e *entry) { e.path = "/usr/bin/canary (deleted)"; e.rss = 64 })),
			want:  []pageRange{{0x400000, 0xa44000, 64 << 10}},
		},
		{
			name:  "no file mapping holds the code",
			smaps: smaps(rodata, entry{"00400000-00a44000", "r-xp", "00:00", 0, "", 64, 64, 64, "0", "rd ex"}),
			err:   "no file mapping holds the code at 0x401234",
		},
		{
			name:  "a garbled range",
			smaps: smaps(with(text, func(e *entry) { e.rng = "00400000" })),
			err:   `smaps range "00400000": want LO-HI`,
		},
		{
			name:  "a garbled size",
			smaps: strings.Replace(smaps(text), "Anonymous:             0", "Anonymous:          zero", 1),
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
			got, err := releasableRanges(strings.NewReader(tt.smaps), pc)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// ownRanges is this process's releasable mappings of its executable.
func ownRanges(t *testing.T) []pageRange {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	require.NoError(t, err)
	defer f.Close()
	ranges, err := releasableRanges(f, reflect.ValueOf(releaseStartupPages).Pointer())
	require.NoError(t, err)
	require.NotEmpty(t, ranges, "no releasable mapping of the executable found")
	return ranges
}

// TestReleaseStartupPagesUnmapsTheExecutable maps every page of this test
// binary's releasable mappings (reading them through /proc/self/mem faults
// them in), releases them, and checks they left its resident set, and
// that the process goes on running the code it released (the next touch
// maps it again).
func TestReleaseStartupPagesUnmapsTheExecutable(t *testing.T) {
	mem, err := os.Open("/proc/self/mem")
	require.NoError(t, err)
	defer mem.Close()
	var size int64
	for _, r := range ownRanges(t) {
		buf := make([]byte, r.hi-r.lo)
		_, err := mem.ReadAt(buf, int64(r.lo))
		require.NoError(t, err)
		size += int64(len(buf))
	}
	// A collection now, not between the measures: it reads the runtime's
	// tables in the executable and would map some again.
	runtime.GC()
	resident := func() (n int64) {
		for _, r := range ownRanges(t) {
			n += r.rss
		}
		return n
	}
	before := resident()
	released, err := releaseStartupPages()
	require.NoError(t, err)
	after := resident()
	t.Logf("executable %d KiB, resident %d KiB, released %d KiB, resident after %d KiB", size>>10, before>>10, released>>10, after>>10)
	require.Greater(t, before, size*9/10, "reading the mappings did not map them")
	require.GreaterOrEqual(t, released, before*9/10)
	require.Less(t, after, before/2, "the released pages are still resident")

	// Code released above runs again.
	got, err := releasableRanges(strings.NewReader(smaps(entry{"1000-2000", "r--p", "00:01", 7, "x", 4, 0, 0, "0", "rd"})), 0x1800)
	require.NoError(t, err)
	require.Equal(t, []pageRange{{0x1000, 0x2000, 4 << 10}}, got)
}

// TestRunReleasesStartupPages runs `canary run` as a process and checks,
// from its debug log, that it releases its start-up pages after package
// init and then each second of start-up, and that it still serves its
// API after.
// The site's broker and device are unreachable: the gateway runs on
// regardless.
func TestRunReleasesStartupPages(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site.yaml")
	httpPort := testenv.FreePort(t)
	// The SIGKILL test's site, with its broker and device unreachable.
	require.NoError(t, os.WriteFile(site, []byte(fmt.Sprintf(restartSite,
		fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t)), filepath.Join(dir, "outbox"), httpPort, testenv.FreePort(t))), 0o600))

	cmd := canaryProcess(t, "run", "-c", site, "--log-level", "debug", "--log-format", "json")
	logFile := cmd.Stdout.(*os.File).Name()

	want := 1 + int(startupSettle/startupReleaseEvery)
	var lines []string
	deadline := time.Now().Add(startupSettle + 15*time.Second)
	for len(lines) < want && time.Now().Before(deadline) {
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
	require.Len(t, lines, want, "want a release after init and one each second of start-up")
	require.Contains(t, lines[0], `"when":"after init"`)
	for i, l := range lines[1:] {
		require.Contains(t, l, fmt.Sprintf(`"when":"start-up, %s"`, time.Duration(i+1)*startupReleaseEvery))
	}
	for _, l := range lines {
		require.NotContains(t, l, `"bytes":0,`, "nothing was released: %s", l)
	}
	// Before the first release, fault-around was turned off for the
	// executable, or the log says why not (faultAroundOff).
	logged, err := os.ReadFile(logFile)
	require.NoError(t, err)
	off := strings.Index(string(logged), `"fault-around off for the executable`)
	on := strings.Index(string(logged), `"fault-around stays on for the executable"`)
	require.True(t, off >= 0 || on >= 0, "fault-around not logged")
	require.Less(t, max(off, on), strings.Index(string(logged), `"start-up pages released"`), "fault-around logged after the first release")
	if off >= 0 {
		// Every mapping the gateway could release (releasableRanges, as
		// it reads them) is registered: `uw` in its VmFlags.
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		require.NoError(t, err)
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", cmd.Process.Pid))
		require.NoError(t, err)
		var inExe uintptr
		for _, line := range strings.Split(string(b), "\n") {
			if fields := strings.Fields(line); len(fields) == 6 && fields[5] == exe {
				m, err := parseMapping(fields)
				require.NoError(t, err)
				inExe = m.lo
				break
			}
		}
		require.NotZero(t, inExe, "no mapping of %s", exe)
		ranges, err := releasableRanges(bytes.NewReader(b), inExe)
		require.NoError(t, err)
		require.NotEmpty(t, ranges)
		for _, r := range ranges {
			_, flags := smapsMappingAt(t, b, r.lo)
			require.Contains(t, flags, "uw", "mapping %#x-%#x of the executable not registered", r.lo, r.hi)
		}
	} else {
		t.Logf("fault-around stays on here: %s", string(logged)[on:min(len(logged), on+200)])
	}
	// The gateway goes on running the code it released: it serves its
	// API, with the device it could not reach.
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/devices", httpPort))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), `"face-gas"`)
}

// mappingAt reads /proc/self/smaps for the mapping that starts at lo: its
// resident bytes and its VmFlags.
func mappingAt(t *testing.T, lo uintptr) (rss int64, flags []string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	require.NoError(t, err)
	return smapsMappingAt(t, b, lo)
}

// smapsMappingAt finds the mapping that starts at lo in smaps text b.
func smapsMappingAt(t *testing.T, b []byte, lo uintptr) (rss int64, flags []string) {
	t.Helper()
	all, err := parseSmaps(bytes.NewReader(b))
	require.NoError(t, err)
	for _, m := range all {
		if m.lo == lo {
			return m.rss, m.flags
		}
	}
	require.Failf(t, "no mapping", "no mapping at %#x", lo)
	return 0, nil
}

// cachedFileMapping maps a file of n pages, read once so that its pages
// are in the page cache, privately and read-only, as the executable's
// read-only segments are mapped.
func cachedFileMapping(t *testing.T, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pages")
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte{0xA5}, n*os.Getpagesize()), 0o600))
	_, err := os.ReadFile(path)
	require.NoError(t, err)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, n*os.Getpagesize(), unix.PROT_READ, unix.MAP_PRIVATE)
	require.NoError(t, err)
	t.Cleanup(func() { _ = unix.Munmap(m) })
	return m
}

func rangeOf(m []byte) pageRange {
	lo := uintptr(unsafe.Pointer(&m[0]))
	return pageRange{lo: lo, hi: lo + uintptr(len(m))}
}

// TestMapTouchedPagesOnly maps the same cached file twice, registers one
// mapping, and touches one page of each: the registered mapping holds
// that page alone, where the kernel maps its cached neighbours into the
// other (fault-around). Closing the descriptor unregisters the mapping.
// On a kernel that refuses asynchronous write-protection (before Linux
// 6.7, or a seccomp profile without userfaultfd) the call must fail and
// leave the mapping as it was.
func TestMapTouchedPagesOnly(t *testing.T) {
	const pages = 64
	page := os.Getpagesize()
	on, off := cachedFileMapping(t, pages), cachedFileMapping(t, pages)
	fd, err := mapTouchedPagesOnly([]pageRange{rangeOf(off)})
	closed := false
	t.Cleanup(func() {
		if err == nil && !closed {
			_ = unix.Close(fd)
		}
	})
	if err != nil {
		t.Logf("this kernel refuses it: %v", err)
		require.ErrorContains(t, err, "userfaultfd")
		_, flags := mappingAt(t, rangeOf(off).lo)
		require.NotContains(t, flags, "uw", "a failed registration stayed")
		return
	}
	_, flags := mappingAt(t, rangeOf(off).lo)
	require.Contains(t, flags, "uw", "the mapping is not registered for write-protection")

	var sum byte
	sum += on[40*page] + off[40*page]
	require.Equal(t, byte(0x4A), sum) // 0xA5 + 0xA5, mod 256
	rssOn, _ := mappingAt(t, rangeOf(on).lo)
	rssOff, _ := mappingAt(t, rangeOf(off).lo)
	t.Logf("one page touched: %d KiB resident with fault-around, %d KiB without", rssOn>>10, rssOff>>10)
	require.Equal(t, int64(page), rssOff, "more than the touched page was mapped")
	if rssOn == int64(page) {
		t.Logf("this kernel does not fault around here (fault_around_bytes set to one page?): the registration is all that can be checked")
	}

	closed = true
	require.NoError(t, unix.Close(fd))
	_, flags = mappingAt(t, rangeOf(off).lo)
	require.NotContains(t, flags, "uw", "closing the descriptor did not unregister the mapping")
}

// TestMapTouchedPagesOnlyAllOrNothing registers a mapping and then a range
// the kernel refuses (its length is not a whole number of pages): the
// call fails, naming that range, and the mapping it had registered is not
// left registered. With no range at all it fails too: "off" must mean
// something was registered.
func TestMapTouchedPagesOnlyAllOrNothing(t *testing.T) {
	fd, err := mapTouchedPagesOnly(nil)
	require.Equal(t, -1, fd)
	require.EqualError(t, err, "userfaultfd: no mapping to register")

	m, other := cachedFileMapping(t, 4), cachedFileMapping(t, 4)
	bad := rangeOf(other)
	bad.hi = bad.lo + uintptr(os.Getpagesize()/2)
	fd, err = mapTouchedPagesOnly([]pageRange{rangeOf(m), bad})
	require.Equal(t, -1, fd)
	require.ErrorContains(t, err, "userfaultfd")
	if probe, perr := mapTouchedPagesOnly([]pageRange{rangeOf(other)}); perr == nil {
		require.NoError(t, unix.Close(probe))
		// This kernel registers: the failure was the bad range's.
		require.ErrorContains(t, err, fmt.Sprintf("userfaultfd: register %#x-%#x", bad.lo, bad.hi))
	}
	_, flags := mappingAt(t, rangeOf(m).lo)
	require.NotContains(t, flags, "uw", "the mapping registered before the error stayed registered")
}

func TestKeepFaultAround(t *testing.T) {
	for _, c := range []struct {
		env  string
		keep bool
		err  string
	}{
		{"", false, ""},
		{"off", false, ""},
		{"on", true, ""},
		{"yes", false, `CANARY_FAULT_AROUND="yes": want on or off`},
	} {
		t.Setenv("CANARY_FAULT_AROUND", c.env)
		keep, err := keepFaultAround()
		require.Equal(t, c.keep, keep, c.env)
		if c.err == "" {
			require.NoError(t, err, c.env)
		} else {
			require.EqualError(t, err, c.err)
		}
	}
}
