//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// releaseStartupPages unmaps the pages of this process's own executable
// that are mapped now, so that only those it touches again count against
// it, much as the kernel frees its own init code once it has booted.
//
// Why it matters (docs/performance.md, "Memory"; docs/performance-history.md, item 47): the one binary
// holds every command, and every package's init runs in every process. By
// the time `canary run` or `canary ingest` starts its work, package init
// has touched about 9 MB of the executable, and the kernel maps each file
// fault's whole 64 KiB neighbourhood when those pages are cached
// (fault-around). Most of those pages are never used again, but they stay
// in the process's resident set. Released once after package init and once
// after start-up, the gateway's peak RSS at the reference load went from
// 23.4–24.0 to 20.7–20.8 MB and the ingest's from 16.6–16.9 to 13.2–13.3.
//
// Only mappings whose pages can only be the file's are released: private,
// never writable (a relocated RELRO mapping of a PIE or cgo build was
// writable once: the kernel marks it "ac" in VmFlags), with no
// copy-on-write page of their own, in memory or in swap (Anonymous and
// Swap both present and 0 kB). The next touch maps a page again from the
// page cache, as at start-up. Nothing leaves the page cache, so other
// processes running the binary lose nothing. The executable is the file
// of the mapping that holds this function's code (by device and inode as
// smaps shows them: on overlayfs before Linux 6.8, stat of /proc/self/exe
// gives other numbers). A debugger's breakpoint set between reading smaps
// and the release would be lost. It returns the resident bytes released,
// as smaps counted them.
func releaseStartupPages() (int64, error) {
	ranges, err := executableRanges()
	if err != nil {
		return 0, fmt.Errorf("release start-up pages: %w", err)
	}
	var released int64
	var errs []error
	for _, r := range ranges {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.lo, r.hi-r.lo, unix.MADV_DONTNEED); errno != 0 {
			errs = append(errs, fmt.Errorf("release start-up pages: madvise %#x-%#x: %w", r.lo, r.hi, errno))
			continue
		}
		released += r.rss
	}
	return released, errors.Join(errs...)
}

// executableRanges reads /proc/self/smaps for the releasable mappings of
// this process's executable.
func executableRanges() ([]pageRange, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return releasableRanges(f, reflect.ValueOf(executableRanges).Pointer())
}

// faultAroundOff makes the kernel map only the pages of the executable
// this process touches, one page per fault, instead of each fault's whole
// 64 KiB neighbourhood of pages already in the page cache (fault-around).
//
// Why (docs/performance.md, "Memory"; docs/performance-history.md, item
// 52): the gateway touches code and runtime tables all over its 13 MB
// executable (the garbage collector reads the stack maps of every
// function on a goroutine's stack, and Go lays code out package by
// package), and with fault-around about 9 MB of it was resident, half of
// `canary run`'s peak RSS at the reference load; mapped page by page,
// 3.5–4 MB. The pages left unmapped stay in the page cache, shared with
// any other process running the binary, and cost a minor fault each when
// they are touched: what changes is that the process holds only what it
// uses. The trade-off: under memory pressure the kernel reclaims cached
// pages no process maps more readily than mapped ones, so a rarely run
// path (the first alarm after a quiet spell) may find its page evicted and
// read it from disk. Since the start-up release (releaseStartupPages) that
// was already so for every page not touched since, and fault-around mapped
// a rare path only when it happened to lie near one in use.
//
// How: Linux turns fault-around off for a mapping registered with a
// userfaultfd for write-protection (mm/memory.c, should_fault_around),
// and since Linux 6.7 the asynchronous write-protect mode
// (UFFD_FEATURE_WP_ASYNC) may be registered on any memory, a file's
// private mapping included, where the architecture supports userfaultfd
// write-protection (x86-64 does). Nothing more is asked of it: no page is
// ever write-protected (UFFDIO_WRITEPROTECT is never called; the
// WP_UNPOPULATED behaviour the kernel turns on with WP_ASYNC only matters
// to it), these
// mappings are not writable anyway (a write is a SIGSEGV before any
// userfault), and in asynchronous mode the kernel resolves a
// write-protect fault itself, so no fault ever waits for a reader of the
// descriptor. UFFD_USER_MODE_ONLY needs no privilege (Linux 5.11). Where
// it is not available (Linux before 6.7, or without write-protect support,
// fails UFFDIO_API with EINVAL; a seccomp profile that refuses the call
// with an error, such as Docker's default without CAP_SYS_PTRACE), it
// returns the error, nothing stays registered, and the process runs as
// before. A seccomp profile that kills on userfaultfd kills the process
// at start: CANARY_FAULT_AROUND=on (keepFaultAround) leaves the kernel's
// default alone.
//
// It must run before the start-up pages are released (releaseStartupPages),
// so that what the process touches again comes back page by page. It
// registers once per process (the descriptor stays open for the life of
// the process: closing it would unregister the mappings); a later call
// returns the first call's result.
var faultAroundOff = sync.OnceValue(func() error {
	ranges, err := executableRanges()
	if err != nil {
		return fmt.Errorf("fault-around off: %w", err)
	}
	if _, err := mapTouchedPagesOnly(ranges); err != nil {
		return fmt.Errorf("fault-around off: %w", err)
	}
	return nil
})

// The userfaultfd ABI (include/uapi/linux/userfaultfd.h); golang.org/x/sys
// has only the system call's number.
const (
	uffdUserModeOnly   = 1          // UFFD_USER_MODE_ONLY
	uffdAPI            = 0xAA       // UFFD_API
	uffdioAPI          = 0xC018AA3F // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdioRegister     = 0xC020AA00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	uffdFeatureWPAsync = 1 << 15    // UFFD_FEATURE_WP_ASYNC
	uffdModeWP         = 1 << 1     // UFFDIO_REGISTER_MODE_WP
)

type uffdioAPIArg struct{ api, features, ioctls uint64 }

type uffdioRegisterArg struct{ start, len, mode, ioctls uint64 }

// mapTouchedPagesOnly registers ranges with a new userfaultfd in
// asynchronous write-protect mode (see faultAroundOff) and returns its
// descriptor. All or nothing: on an error the descriptor is closed, which
// unregisters whatever was registered.
func mapTouchedPagesOnly(ranges []pageRange) (int, error) {
	if len(ranges) == 0 {
		return -1, errors.New("userfaultfd: no mapping to register")
	}
	r, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|uffdUserModeOnly, 0, 0)
	if errno != 0 {
		return -1, fmt.Errorf("userfaultfd: %w", errno)
	}
	fd := int(r)
	api := uffdioAPIArg{api: uffdAPI, features: uffdFeatureWPAsync}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uffdioAPI, uintptr(unsafe.Pointer(&api))); errno != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("userfaultfd: asynchronous write-protect mode: %w", errno)
	}
	if api.features&uffdFeatureWPAsync == 0 {
		unix.Close(fd)
		return -1, errors.New("userfaultfd: no asynchronous write-protect mode")
	}
	for _, pr := range ranges {
		reg := uffdioRegisterArg{start: uint64(pr.lo), len: uint64(pr.hi - pr.lo), mode: uffdModeWP}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uffdioRegister, uintptr(unsafe.Pointer(&reg))); errno != 0 {
			unix.Close(fd)
			return -1, fmt.Errorf("userfaultfd: register %#x-%#x: %w", pr.lo, pr.hi, errno)
		}
	}
	return fd, nil
}

// pageRange is one mapping that releaseStartupPages may release.
type pageRange struct {
	lo, hi uintptr
	rss    int64 // resident bytes when smaps was read
}

// mapping is one entry of /proc/PID/smaps.
type mapping struct {
	pageRange
	perms, dev, inode string
	anon, swap        int64    // kB; -1 until the line is read
	flags             []string // VmFlags; nil until the line is read
}

// releasable: a private, never writable mapping of file dev/inode with
// no page of its own, in memory or in swap. VmFlags "ac": the mapping was
// writable at some time; "ht": hugetlbfs, whose copy-on-write pages are not
// counted in Anonymous. Without the lines that tell, it is kept.
func (m *mapping) releasable(dev, inode string) bool {
	return m.dev == dev && m.inode == inode && len(m.perms) == 4 && m.perms[1] != 'w' && m.perms[3] == 'p' &&
		m.anon == 0 && m.swap == 0 && m.flags != nil && !slices.Contains(m.flags, "ac") && !slices.Contains(m.flags, "ht")
}

// releasableRanges reads /proc/PID/smaps and returns the releasable
// mappings (see releaseStartupPages) of the file mapped at address pc.
func releasableRanges(smaps io.Reader, pc uintptr) ([]pageRange, error) {
	all, err := parseSmaps(smaps)
	if err != nil {
		return nil, err
	}
	var dev, inode string
	for _, m := range all {
		if m.lo <= pc && pc < m.hi {
			dev, inode = m.dev, m.inode
		}
	}
	if inode == "" || inode == "0" {
		return nil, fmt.Errorf("smaps: no file mapping holds the code at %#x", pc)
	}
	var out []pageRange
	for _, m := range all {
		if m.releasable(dev, inode) {
			out = append(out, m.pageRange)
		}
	}
	return out, nil
}

// parseSmaps reads /proc/PID/smaps: each mapping with its resident bytes,
// Anonymous and Swap (kB) and VmFlags.
func parseSmaps(smaps io.Reader) ([]mapping, error) {
	var all []mapping
	sc := bufio.NewScanner(smaps)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") {
			// A mapping's header: range perms offset dev inode [path].
			m, err := parseMapping(fields)
			if err != nil {
				return nil, err
			}
			all = append(all, m)
			continue
		}
		if len(all) == 0 || len(fields) < 2 {
			continue
		}
		m := &all[len(all)-1]
		switch fields[0] {
		case "Rss:", "Anonymous:", "Swap:":
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("smaps %s %q: %w", fields[0], fields[1], err)
			}
			switch fields[0] {
			case "Rss:":
				m.rss = kb * 1024
			case "Anonymous:":
				m.anon = kb
			default:
				m.swap = kb
			}
		case "VmFlags:":
			m.flags = append([]string{}, fields[1:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read smaps: %w", err)
	}
	return all, nil
}

// parseMapping parses a smaps header line.
func parseMapping(fields []string) (mapping, error) {
	if len(fields) < 5 {
		return mapping{}, fmt.Errorf("smaps mapping line %q: want range, perms, offset, device and inode", strings.Join(fields, " "))
	}
	lohi := strings.SplitN(fields[0], "-", 2)
	if len(lohi) != 2 {
		return mapping{}, fmt.Errorf("smaps range %q: want LO-HI", fields[0])
	}
	lo, err := strconv.ParseUint(lohi[0], 16, 64)
	if err != nil {
		return mapping{}, fmt.Errorf("smaps range %q: %w", fields[0], err)
	}
	hi, err := strconv.ParseUint(lohi[1], 16, 64)
	if err != nil || hi < lo {
		return mapping{}, fmt.Errorf("smaps range %q: bad end", fields[0])
	}
	return mapping{pageRange: pageRange{lo: uintptr(lo), hi: uintptr(hi)}, perms: fields[1], dev: fields[3], inode: fields[4],
		anon: -1, swap: -1}, nil
}
