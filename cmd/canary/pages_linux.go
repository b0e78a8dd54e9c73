//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// releaseStartupPages unmaps the pages of this process's own executable
// that are mapped now, so that only those it touches again count against
// it. The kernel does the same with its own init code once it has booted.
//
// Why it matters (docs/performance.md, "Memory", item 47): the one binary
// holds every command, and every package's init runs in every process. By
// the time `canary run` or `canary ingest` starts its work, package init
// has touched about 9 MB of the executable, and the kernel maps each file
// fault's whole 64 KiB neighbourhood when those pages are cached
// (fault-around). Most of those pages are never used again, but they stay
// in the process's resident set. Released once after package init and once
// after start-up, the gateway's peak RSS at the reference load went from
// 23.5–23.7 to 20.6–20.9 MB and the ingest's from 16.5–16.8 to 13.6–13.8.
//
// Only read-only private mappings of the executable with no page of their
// own (no copy-on-write page, which a debugger's breakpoint or a
// relocation would make) are released: their pages are the file's, and the
// next touch maps them again from the page cache, as at start-up. Nothing
// leaves the page cache, so other processes running the binary lose
// nothing. It returns the resident bytes released.
func releaseStartupPages() (int64, error) {
	st, err := os.Stat("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("release start-up pages: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("release start-up pages: no device and inode for /proc/self/exe")
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("release start-up pages: %w", err)
	}
	ranges, err := releasableRanges(f, uint64(sys.Dev), sys.Ino)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("release start-up pages: %w", err)
	}
	var released int64
	for _, r := range ranges {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.lo, r.hi-r.lo, unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("release start-up pages: madvise %#x-%#x: %w", r.lo, r.hi, errno)
		}
		released += r.rss
	}
	return released, nil
}

// pageRange is one mapping that releaseStartupPages may release.
type pageRange struct {
	lo, hi uintptr
	rss    int64 // resident bytes when smaps was read
}

// releasableRanges reads /proc/PID/smaps and returns the mappings of the
// file with device dev and inode ino that are private, not writable, and
// hold no page of their own (Anonymous 0 kB). Private_Dirty says nothing
// here: it counts the file's own pages that are mapped once and not yet
// written back, as a binary just built or copied has.
func releasableRanges(smaps io.Reader, dev, ino uint64) ([]pageRange, error) {
	var (
		out  []pageRange
		cur  pageRange
		ok   bool // cur is a candidate so far
		seen bool // a mapping header has been read
	)
	flush := func() {
		if seen && ok {
			out = append(out, cur)
		}
	}
	sc := bufio.NewScanner(smaps)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") {
			// A mapping's header: range perms offset dev inode [path].
			flush()
			seen = true
			m, isExe, err := parseMapping(fields, dev, ino)
			if err != nil {
				return nil, err
			}
			cur, ok = m, isExe
			continue
		}
		if !ok || len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "Rss:", "Anonymous:":
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("smaps %s %q: %w", fields[0], fields[1], err)
			}
			if fields[0] == "Rss:" {
				cur.rss = kb * 1024
			} else if kb != 0 {
				ok = false
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read smaps: %w", err)
	}
	flush()
	return out, nil
}

// parseMapping parses a smaps header line and says whether the mapping is
// a private, read-only mapping of the file dev/ino.
func parseMapping(fields []string, dev, ino uint64) (pageRange, bool, error) {
	if len(fields) < 5 {
		return pageRange{}, false, fmt.Errorf("smaps mapping line %q: want range, perms, offset, device and inode", strings.Join(fields, " "))
	}
	lohi := strings.SplitN(fields[0], "-", 2)
	if len(lohi) != 2 {
		return pageRange{}, false, fmt.Errorf("smaps range %q: want LO-HI", fields[0])
	}
	lo, err := strconv.ParseUint(lohi[0], 16, 64)
	if err != nil {
		return pageRange{}, false, fmt.Errorf("smaps range %q: %w", fields[0], err)
	}
	hi, err := strconv.ParseUint(lohi[1], 16, 64)
	if err != nil || hi < lo {
		return pageRange{}, false, fmt.Errorf("smaps range %q: bad end", fields[0])
	}
	r := pageRange{lo: uintptr(lo), hi: uintptr(hi)}
	perms := fields[1]
	if len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' {
		return r, false, nil
	}
	majmin := strings.SplitN(fields[3], ":", 2)
	if len(majmin) != 2 {
		return pageRange{}, false, fmt.Errorf("smaps device %q: want MAJOR:MINOR", fields[3])
	}
	major, err1 := strconv.ParseUint(majmin[0], 16, 32)
	minor, err2 := strconv.ParseUint(majmin[1], 16, 32)
	inode, err3 := strconv.ParseUint(fields[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return pageRange{}, false, fmt.Errorf("smaps device %q inode %q: not numbers", fields[3], fields[4])
	}
	if inode != ino || unix.Mkdev(uint32(major), uint32(minor)) != dev {
		return r, false, nil
	}
	return r, true, nil
}
