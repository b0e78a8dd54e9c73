#!/usr/bin/env python3
"""Once a second, from /proc, what a load run's processes and the machine did.

    python3 scripts/procmon.py OUT & scripts/load.sh; kill %1

It waits for `canary run` to start, then writes one line a second to OUT until
the gateway exits:

- seconds since the gateway started (as load.sh's TIMELINE counts them);
- each core's busy % / interrupt % and steal %;
- the CPU % of load.sh's processes (run, sim, ingest, mosq, sub, py);
- the gateway's RSS, its threads' run delay (runnable, waiting for a core),
  major faults and voluntary / involuntary context switches;
- after `||`, every other task that took 2 % or more, with the core it last
  ran on (`name@core`): kernel threads included, which is how the rig's own
  writeback on the gateway's pinned core was found (docs/performance-history.md,
  item 40).

It reads every task's stat once a second, which costs CPU of its own (a 10 s
reference run measured 7.8 ms per 1000 readings with it, about 6 without):
use it to find what happened, not for the CPU figures.
"""
import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def named():
    """The processes of a load run, by pid."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        cmd = read(f"/proc/{p}/cmdline")
        if not cmd:
            continue
        cmd = cmd.replace("\0", " ")
        name = None
        if "canary" in cmd and " run " in cmd:
            name = "run"
        elif "canary" in cmd and " sim " in cmd:
            name = "sim"
        elif "canary" in cmd and " ingest " in cmd:
            name = "ingest"
        elif "mosquitto_sub" in cmd:
            name = "sub"
        elif cmd.startswith("/usr/sbin/mosquitto") or cmd.startswith("mosquitto "):
            name = "mosq"
        elif cmd.startswith("python3 -c"):
            name = "py"
        if name:
            out[int(p)] = name
    return out


def stat_fields(path):
    s = read(path)
    if not s:
        return None, None
    comm = s[s.index("(") + 1 : s.rindex(")")]
    return comm, s.rsplit(")", 1)[1].split()


def cpu_seconds(fields):
    return (int(fields[11]) + int(fields[12])) / HZ


def cores():
    """Per core: (idle, steal, irq, total) jiffies."""
    out = {}
    for line in (read("/proc/stat") or "").splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            f = line.split()
            v = list(map(int, f[1:]))
            out[f[0]] = (v[3] + v[4], v[7], v[5] + v[6], sum(v))
    return out


def gateway(pids):
    """RSS (MB), run delay (ns), major faults, voluntary and involuntary switches."""
    rss = delay = maj = vcs = ics = 0
    for pid in pids:
        for t in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
            ss = read(f"/proc/{pid}/task/{t}/schedstat")
            if ss:
                delay += int(ss.split()[1])
            for line in (read(f"/proc/{pid}/task/{t}/status") or "").splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    vcs += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    ics += int(line.split()[1])
        _, f = stat_fields(f"/proc/{pid}/stat")
        if f:
            maj += int(f[9])
        for line in (read(f"/proc/{pid}/status") or "").splitlines():
            if line.startswith("VmRSS"):
                rss += int(line.split()[1]) // 1000
    return rss, delay, maj, vcs, ics


def others(skip):
    """CPU seconds of every task not in skip, by (pid, tid), with name@core."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) in skip:
            continue
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            comm, f = stat_fields(f"/proc/{p}/task/{t}/stat")
            if f:
                out[(p, t)] = (f"{comm}@{f[36]}", cpu_seconds(f))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = open(sys.argv[1], "w")
    while "run" not in named().values():
        time.sleep(0.2)
    t0 = time.time()
    out.write("# s core busy/irq steal ... | process cpu% | gateway | other tasks >= 2%\n")
    prev_cores, prev_proc, prev_gw, prev_other = cores(), {}, None, {}
    while True:
        time.sleep(1)
        procs = named()
        if "run" not in procs.values():
            break
        cols = []
        now_cores = cores()
        for k in sorted(now_cores):
            idle, steal, irq, total = (a - b for a, b in zip(now_cores[k], prev_cores[k]))
            total = total or 1
            cols.append(f"{100 * (total - idle - steal) / total:.0f}/{100 * irq / total:.0f} {100 * steal / total:.0f}")
        prev_cores = now_cores
        cpu = {}
        for pid, name in procs.items():
            _, f = stat_fields(f"/proc/{pid}/stat")
            if not f:
                continue
            v = cpu_seconds(f)
            if pid in prev_proc:
                cpu[name] = cpu.get(name, 0) + v - prev_proc[pid]
            prev_proc[pid] = v
        gw = gateway([p for p, n in procs.items() if n == "run"])
        gwtext = ""
        if prev_gw:
            gwtext = (f" rss={gw[0]}MB rundelay={(gw[1] - prev_gw[1]) / 1e6:.0f}ms majflt={gw[2] - prev_gw[2]}"
                      f" vcs={gw[3] - prev_gw[3]} ics={gw[4] - prev_gw[4]}")
        prev_gw = gw
        now_other, busy = others(procs), {}
        for key, (name, v) in now_other.items():
            if key in prev_other and v > prev_other[key][1]:
                busy[name] = busy.get(name, 0) + v - prev_other[key][1]
        prev_other = now_other
        top = sorted(busy.items(), key=lambda kv: -kv[1])[:4]
        out.write(f"{time.time() - t0:.1f} " + " ".join(cols) + " | "
                  + " ".join(f"{k}={100 * v:.0f}" for k, v in sorted(cpu.items())) + gwtext + " || "
                  + " ".join(f"{k}={100 * v:.0f}" for k, v in top if v >= 0.02) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
