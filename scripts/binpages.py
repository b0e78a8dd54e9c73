#!/usr/bin/env python3
"""Which of a running Go binary's own file pages are resident, by ELF section.

    scripts/binpages.py PID [--init-windows]

Reads /proc/PID/maps and /proc/PID/pagemap (the "present" bit; no root needed
for that bit) for the mappings of /proc/PID/exe and prints resident KiB per
ELF section, the runtime's pclntab split into its tables, and how many of the
64 KiB text windows (the kernel maps a file fault's 64 KiB neighbourhood
when those pages are cached: fault-around) are resident and how many hold a
package init function. Needs readelf (binutils) and `go tool nm`.
"""
import collections
import os
import re
import struct
import subprocess
import sys

PAGE = 4096
WINDOW = 65536


def resident_pages(pid, exe):
    pages = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pm:
        for line in maps:
            f = line.split()
            if len(f) < 6 or not os.path.exists(f[5]) or not os.path.samefile(f[5], exe):
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            pm.seek(lo // PAGE * 8)
            data = pm.read((hi - lo) // PAGE * 8)
            for i in range((hi - lo) // PAGE):
                if struct.unpack_from("<Q", data, i * 8)[0] >> 63:
                    pages.append(lo + i * PAGE)
    return pages


def sections(exe):
    out = subprocess.run(["readelf", "-SW", exe], capture_output=True, text=True, check=True).stdout
    secs = []
    for m in re.finditer(r"\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", out):
        name, addr, off, size = m.group(1), int(m.group(2), 16), int(m.group(3), 16), int(m.group(4), 16)
        if addr:
            secs.append((addr, addr + size, off, name))
    return sorted(secs)


def pcln_tables(exe, secs):
    for addr, end, off, name in secs:
        if name == ".gopclntab":
            with open(exe, "rb") as f:
                f.seek(off)
                hdr = f.read(72)
            _, _, _, fn, cu, ft, pc, ln = struct.unpack_from("<QQQQQQQQ", hdr, 8)
            names = ["funcnametab", "cutab", "filetab", "pctab", "functab+funcdata"]
            bounds = [addr + o for o in (fn, cu, ft, pc, ln)] + [end]
            return [(bounds[i], bounds[i + 1], names[i]) for i in range(5)]
    return []


def main():
    pid = sys.argv[1]
    exe = os.path.realpath(f"/proc/{pid}/exe")
    pages = resident_pages(pid, exe)
    secs = sections(exe)
    print(f"{exe}: {len(pages) * 4} KiB of its own file pages resident")
    by = collections.Counter()
    size = {}
    for lo, hi, _, name in secs:
        size[name] = (hi - lo) // 1024
    for p in pages:
        for lo, hi, _, name in secs:
            if lo <= p + PAGE - 1 and p < hi:
                by[name] += 4
                break
    for name, kib in by.most_common():
        print(f"  {name:22s} {kib:6d} of {size.get(name, 0):6d} KiB")
    for lo, hi, name in pcln_tables(exe, secs):
        kib = sum(4 for p in pages if lo <= p < hi)
        print(f"    pclntab {name:18s} {kib:6d} of {(hi - lo) // 1024:6d} KiB")
    text = next((s for s in secs if s[3] == ".text"), None)
    if text:
        nm = subprocess.run(["go", "tool", "nm", "-size", exe], capture_output=True, text=True, check=True).stdout
        init = set()
        for line in nm.splitlines():
            f = line.split(None, 3)
            if len(f) == 4 and f[2] in "Tt" and re.search(r"\.init(\.|$)", f[3]) and ").init" not in f[3]:
                a, s = int(f[0], 16), int(f[1])
                init.update(range(a // WINDOW, (a + max(s, 1) - 1) // WINDOW + 1))
        wins = {p // WINDOW for p in pages if text[0] <= p < text[1]}
        total = (text[1] - 1) // WINDOW - text[0] // WINDOW + 1
        print(f"  text: {len(wins)} of {total} 64 KiB windows resident; {len(init)} hold a package init "
              f"function, {len(wins & init)} of them resident")


if __name__ == "__main__":
    main()
