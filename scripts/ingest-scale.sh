#!/usr/bin/env bash
# Scale-out of `canary ingest` against InfluxDB's own ceiling, measured in
# one run against one InfluxDB 1.8.10 and one Mosquitto on loopback.
#
# On a small machine InfluxDB takes every core at once, so replicas that may
# use the whole machine cannot show how throughput grows with replicas. Here
# every replica is a real `canary ingest` process (the release build) in a
# cgroup v1 cpu group of its own with a fixed budget (QUOTA_PCT of one core),
# so N replicas ask for N budgets and, until InfluxDB runs out of CPU,
# throughput should grow N-fold.
#
# For every replica count N in REPLICAS:
#   1. N replicas subscribe once to one $share/ group (durable sessions) and
#      stop: the broker keeps their shares of what follows;
#   2. N × MSGS messages of SENSORS readings (DEVICES devices of a site of
#      its own, one database of its own) are published at QoS 1, so
#      Mosquitto queues the backlog split between the N sessions (MSGS each:
#      every run lasts about as long, start-up weighs the same);
#   3. the N replicas start, each in its cgroup, and the drain is timed
#      until their /metrics count every point; then InfluxDB counts the
#      points (every one must be there) and each replica's CPU time and
#      throttling are read.
# The rate is the steady one, between the samples past 10 % and past 90 % of
# the points (the whole drain, start-up included, is printed too).
# InfluxDB's ceiling is MSGS messages' points posted as raw line protocol in
# BATCH-point requests from 1 and from 2 concurrent clients (bodies built
# beforehand, not timed), before the replica runs and again after them; the
# best of the four is "the ceiling" (other work on the machine only ever
# lowers a figure), printed with each run's share of it at the end.
# QUOTA_PCT=0 runs the replicas without a budget (the cgroup only counts).
#
#   QUOTA_PCT=10 REPLICAS="1 2 3 4 5 6" MSGS=25000 SENSORS=20 scripts/ingest-scale.sh
#
# Needs root (or a writable /sys/fs/cgroup/cpu); it says so and exits 1
# otherwise. Prints one line per raw figure and per run, then one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-services.sh

QUOTA_PCT="${QUOTA_PCT:-10}"
PERIOD_US="${PERIOD_US:-100000}"
REPLICAS="${REPLICAS:-1 2 3 4 5 6}"
MSGS="${MSGS:-25000}"
SENSORS="${SENSORS:-20}"
DEVICES="${DEVICES:-32}"
BATCH="${BATCH:-5000}"
INFLUXD="${CANARY_INFLUXD:-$(go env GOPATH)/bin/influxd}"
MOSQUITTO="${MOSQUITTO:-/usr/sbin/mosquitto}"
CGROOT="${CGROOT:-/sys/fs/cgroup/cpu}"
# INFLIGHT is the broker's max_inflight_messages: how many messages a
# replica may hold unacknowledged (docs/delivery.md, broker settings).
INFLIGHT="${INFLIGHT:-1000}"
# PROFILE=DIR writes a CPU profile of every replica there (rN-I.cpu).
# CANARY_BIN runs that canary executable instead of building this checkout.
PROFILE="${PROFILE:-}"
[ -n "$PROFILE" ] && mkdir -p "$PROFILE" && PROFILE="$(cd "$PROFILE" && pwd)"

for bin in "$MOSQUITTO" mosquitto_pub curl python3 bc; do
	command -v "$bin" >/dev/null || { echo "ingest-scale: $bin missing (apt-get install -y mosquitto mosquitto-clients curl)" >&2; exit 1; }
done
[ -x "$INFLUXD" ] || { echo "ingest-scale: $INFLUXD missing (InfluxDB 1.8.10: scripts/install-deps.sh)" >&2; exit 1; }
quota_us() { if [ "$QUOTA_PCT" -gt 0 ]; then echo $((PERIOD_US * QUOTA_PCT / 100)); else echo -1; fi; }
MAXN=0
for n in $REPLICAS; do [ "$n" -gt "$MAXN" ] && MAXN=$n; done

WORK="$(mktemp -d /tmp/canary-scale.XXXXXX)"
PIDS=()
CGROUPS=()
cleanup() {
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	for g in "${CGROUPS[@]}"; do [ ! -d "$g" ] || rmdir "$g" 2>/dev/null || echo "ingest-scale: could not remove cgroup $g" >&2; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# The cpu controller must be writable: without budgets this is not the
# measurement it claims to be.
probe="$CGROOT/canary-scale-$$-probe"
if ! mkdir "$probe" 2>/dev/null; then
	echo "ingest-scale: cannot create a cgroup under $CGROOT (cgroup v1 cpu controller not mounted or not writable; run as root): no CPU budgets, nothing measured" >&2
	exit 1
fi
CGROUPS+=("$probe")
if ! echo "$PERIOD_US" >"$probe/cpu.cfs_period_us" 2>/dev/null || ! echo "$(quota_us)" >"$probe/cpu.cfs_quota_us" 2>/dev/null; then
	echo "ingest-scale: cannot set cpu.cfs_quota_us under $CGROOT: no CPU budgets, nothing measured" >&2
	exit 1
fi

if [ -n "${CANARY_BIN:-}" ]; then
	cp "$CANARY_BIN" "$WORK/canary" # another build, to compare two (scripts/load.sh has the same)
else
	CGO_ENABLED="${CGO_ENABLED:-0}" go build -trimpath -o "$WORK/canary" ./cmd/canary
fi
ulimit -n 65536 2>/dev/null || true

PORTS=($(python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' $((MAXN + 3))))
MQ_PORT="${PORTS[0]}"
IN_PORT="${PORTS[1]}"
IN_BIND="${PORTS[2]}"
metrics_port() { echo "${PORTS[$((3 + $1))]}"; }

# Mosquitto as in scripts/load.sh: no persistence, unbounded queues, an
# in-flight window of INFLIGHT messages per client.
write_mosquitto_conf "$WORK/mosquitto.conf" "$MQ_PORT" "$INFLIGHT"
"$MOSQUITTO" -c "$WORK/mosquitto.conf" 2>"$WORK/mosquitto.log" &
PIDS+=($!)
MQ_PID=$!

write_influxd_conf "$WORK/influx" "$IN_PORT" "$IN_BIND"
"$INFLUXD" -config "$WORK/influx/influxdb.conf" >"$WORK/influx.log" 2>&1 &
PIDS+=($!)
INFLUX_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$IN_PORT/ping" && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$IN_PORT/ping" || { echo "ingest-scale: influxd did not start:" >&2; cat "$WORK/influx.log" >&2; exit 1; }
influxq() { curl -sf -XPOST "http://127.0.0.1:$IN_PORT/query" --data-urlencode "q=$1" >/dev/null; }

# The helper: payloads and line protocol (the ingest's own format, see
# gateway/ingest/lineproto.go), raw posting, waiting for /metrics, counting.
cat >"$WORK/helper.py" <<'PY'
import http.client, json, os, sys, threading, time, urllib.parse, datetime

BASE = int(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc).timestamp()) * 10**9

def gofloat(v):  # strconv.AppendFloat(v, 'g', -1, 64) for these values
    s = repr(v)
    return s[:-2] if s.endswith(".0") else s

def messages(site, msgs, devices, sensors):
    """Yield (device index, JSON payload, line protocol) per message."""
    msgs, devices, sensors = int(msgs), int(devices), int(sensors)
    for i in range(msgs):
        d, k = i % devices, i // devices
        dev, seq, ts = "d%03d" % d, k + 1, BASE + i * 10**6
        v = gofloat(float(seq % 100) / 10)
        t = datetime.datetime.fromtimestamp(ts // 10**9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        frac = "%09d" % (ts % 10**9)
        rs = ",".join('{"sensor":"s%02d","kind":"methane","value":%s,"unit":"%%vol","quality":"good"}' % (s, v) for s in range(sensors))
        payload = '{"site":"%s","device":"%s","seq":%d,"ts":"%s.%sZ","readings":[%s]}' % (site, dev, seq, t, frac, rs)
        lines = "".join('reading,device=%s,kind=methane,sensor=s%02d,site=%s,unit=%%vol value=%s,quality="good",seq=%di %d\n' % (dev, s, site, v, seq, ts) for s in range(sensors))
        yield d, payload, lines

def cmd_payloads(out, site, msgs, devices, sensors):
    files = [open(os.path.join(out, "d%03d" % d), "w") for d in range(int(devices))]
    for d, p, _ in messages(site, msgs, devices, sensors):
        files[d].write(p + "\n")
    for f in files:
        f.close()

def cmd_raw(port, db, site, msgs, devices, sensors, batch, clients):
    bodies, body, n = [], [], 0
    for _, _, lines in messages(site, msgs, devices, sensors):
        body.append(lines); n += int(sensors)
        if n >= int(batch):
            bodies.append("".join(body).encode()); body, n = [], 0
    if body:
        bodies.append("".join(body).encode())
    path = "/write?" + urllib.parse.urlencode({"db": db, "precision": "ns"})
    lock, next_i, errs = threading.Lock(), [0], []
    def post():
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
        while True:
            with lock:
                i = next_i[0]; next_i[0] += 1
            if i >= len(bodies):
                return
            c.request("POST", path, bodies[i], {"Content-Type": "text/plain"})
            r = c.getresponse(); r.read()
            if r.status != 204:
                errs.append("%d" % r.status); return
    ts = [threading.Thread(target=post) for _ in range(int(clients))]
    t0 = time.monotonic()
    for t in ts: t.start()
    for t in ts: t.join()
    el = time.monotonic() - t0
    if errs:
        sys.exit("raw write failed: status %s" % errs[0])
    print("%.6f" % el)

def cmd_wait(total, timeout, *ports):
    """Poll the replicas' /metrics until their points add up to total.
    Print the wall clock (ns) when they did, and the steady rate: points
    per second between the first samples past 10 % and past 90 % of total
    (start-up and the tail left out)."""
    total = int(total)
    conns = [http.client.HTTPConnection("127.0.0.1", int(p), timeout=5) for p in ports]
    deadline = time.monotonic() + float(timeout)
    first = last = None
    while True:
        n = 0
        for c in conns:
            try:
                c.request("GET", "/metrics"); body = c.getresponse().read().decode()
            except (OSError, http.client.HTTPException):
                c.close(); continue  # not listening yet
            for line in body.splitlines():
                if line.startswith("canary_ingest_points_total "):
                    n += int(line.split()[1])
        now = time.monotonic()
        if first is None and n >= total // 10:
            first = (now, n)
        if last is None and n >= total * 9 // 10:
            last = (now, n)
        if n >= total:
            steady = (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else 0
            print(time.time_ns(), "%.0f" % steady); return
        if now > deadline:
            sys.exit("ingest-scale: stalled at %d of %d points" % (n, total))
        time.sleep(0.02)

def cmd_healthy(port, timeout):
    deadline = time.monotonic() + float(timeout)
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200: return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("ingest-scale: replica on metrics port %s never subscribed" % port)

def cmd_count(port, db):
    q = urllib.parse.urlencode({"db": db, "q": "SELECT count(quality) FROM reading"})
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    c.request("GET", "/query?" + q)
    r = json.loads(c.getresponse().read())["results"][0]
    print(r["series"][0]["values"][0][1] if "series" in r else 0)

{"payloads": cmd_payloads, "raw": cmd_raw, "wait": cmd_wait, "healthy": cmd_healthy, "count": cmd_count}[sys.argv[1]](*sys.argv[2:])
PY
py() { python3 "$WORK/helper.py" "$@"; }

RAWTOTAL=$((MSGS * SENSORS))
HZ="$(getconf CLK_TCK)"
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# busy_ticks: the whole machine's busy time (user, nice, system, irq,
# softirq, steal), to see how much others (other work on the machine, this
# script's helper) took during a run.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# raw CLIENTS LABEL: InfluxDB's ceiling into a fresh database.
declare -A RAW
raw() {
	local db="raw_$2"
	influxq "CREATE DATABASE $db"
	local t0 el n
	t0="$(cpu_ticks "$INFLUX_PID")"
	el="$(py raw "$IN_PORT" "$db" "raw$2" "$MSGS" "$DEVICES" "$SENSORS" "$BATCH" "$1")"
	n="$(py count "$IN_PORT" "$db")"
	[ "$n" = "$RAWTOTAL" ] || { echo "ingest-scale: raw write stored $n of $RAWTOTAL points" >&2; exit 1; }
	RAW[$2]="$(echo "$RAWTOTAL / $el" | bc -l)"
	printf 'raw line protocol, %d client(s) (%s): %.0f points/s, influxd %.0f%% of a core\n' "$1" "$2" "${RAW[$2]}" \
		"$(echo "($(cpu_ticks "$INFLUX_PID") - $t0) / $HZ / $el * 100" | bc -l)"
}

# replica RUN I [CGROUP]: start replica I of run RUN (in CGROUP if given).
replica() {
	local run=$1 i=$2 cg="${3:-}" conf="$WORK/r$1-$2.yaml"
	cat >"$conf" <<CONF
mqtt: {url: tcp://127.0.0.1:$MQ_PORT, client_id: scale-r$run-$i, share_group: scale-r$run}
influxdb: {url: http://127.0.0.1:$IN_PORT, bucket: scale_r$run/autogen, batch_points: $BATCH}
sites: [r$run]
metrics: 127.0.0.1:$(metrics_port "$i")
CONF
	local env=()
	[ -n "$PROFILE" ] && [ -n "$cg" ] && env=(CANARY_CPUPROFILE="$PROFILE/r$run-$i.cpu")
	if [ -n "$cg" ]; then
		# The shell joins the cgroup, then becomes the ingest.
		env "${env[@]}" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" \
			"$WORK/canary" ingest -c "$conf" --log-level warn 2>>"$WORK/r$run-$i.log" &
	else
		"$WORK/canary" ingest -c "$conf" --log-level warn 2>>"$WORK/r$run-$i.log" &
	fi
	REPLICA_PID=$!
	PIDS+=($REPLICA_PID)
}

printf 'ingest-scale: %d messages × %d readings = %d points per replica, %d devices, %d-point batches, broker window %d messages, budget %d%% of a core per replica (0: none; period %d µs), %d cores\n' \
	"$MSGS" "$SENSORS" "$RAWTOTAL" "$DEVICES" "$BATCH" "$INFLIGHT" "$QUOTA_PCT" "$PERIOD_US" "$(nproc)"
raw 1 before1
raw 2 before2

json="{\"msgs_per_replica\":$MSGS,\"sensors\":$SENSORS,\"inflight\":$INFLIGHT,\"quota_pct\":$QUOTA_PCT,\"cores\":$(nproc)"
json+=",\"raw_before_1\":$(printf '%.0f' "${RAW[before1]}"),\"raw_before_2\":$(printf '%.0f' "${RAW[before2]}")"
runs=()
declare -A STEADY
for n in $REPLICAS; do
	influxq "CREATE DATABASE scale_r$n"
	TOTAL=$((n * RAWTOTAL))
	# 1. Durable sessions on the share group, then stopped.
	pids=()
	for ((i = 0; i < n; i++)); do replica "$n" "$i"; pids+=($REPLICA_PID); done
	for ((i = 0; i < n; i++)); do py healthy "$(metrics_port "$i")" 15; done
	for pid in "${pids[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
	# 2. The backlog, one publisher per device.
	mkdir -p "$WORK/pay$n"
	py payloads "$WORK/pay$n" "r$n" $((n * MSGS)) "$DEVICES" "$SENSORS"
	pubs=()
	for f in "$WORK/pay$n"/d*; do
		mosquitto_pub -p "$MQ_PORT" -q 1 -t "canary/v1/r$n/readings/$(basename "$f")" -l <"$f" &
		pubs+=($!)
	done
	for pid in "${pubs[@]}"; do wait "$pid" || { echo "ingest-scale: mosquitto_pub failed" >&2; exit 1; }; done
	rm -rf "$WORK/pay$n"
	# 3. The drain, every replica on its budget.
	groups=() pids=() ports=()
	for ((i = 0; i < n; i++)); do
		g="$CGROOT/canary-scale-$$-r$n-$i"
		mkdir "$g"
		CGROUPS+=("$g")
		echo "$PERIOD_US" >"$g/cpu.cfs_period_us"
		echo "$(quota_us)" >"$g/cpu.cfs_quota_us"
		groups+=("$g")
		ports+=("$(metrics_port "$i")")
	done
	mq0="$(cpu_ticks "$MQ_PID")"
	busy0="$(busy_ticks)"
	in0="$(cpu_ticks "$INFLUX_PID")"
	start="$(date +%s%N)"
	for ((i = 0; i < n; i++)); do replica "$n" "$i" "${groups[$i]}"; pids+=($REPLICA_PID); done
	read -r end steady < <(py wait "$TOTAL" 300 "${ports[@]}" || true)
	[ -n "${steady:-}" ] || { echo "ingest-scale: $n replica(s) did not drain the backlog; their logs:" >&2; tail -n 20 "$WORK"/r$n-*.log >&2; exit 1; }
	el="$(echo "($end - $start) / 1000000000" | bc -l)"
	busy1="$(busy_ticks)"
	cpu=0 thr=0 shares=""
	for ((i = 0; i < n; i++)); do
		# Each replica's part of the backlog, from its /metrics.
		got="$(curl -sf "http://127.0.0.1:$(metrics_port "$i")/metrics" | awk '/^canary_ingest_points_total / {print $2}')"
		shares+="${shares:+,}$(printf '%.3f' "$(echo "${got:-0} / $TOTAL" | bc -l)")"
		cpu=$((cpu + $(cpu_ticks "${pids[$i]}")))
		thr=$((thr + $(awk '/^nr_throttled/ {print $2}' "${groups[$i]}/cpu.stat")))
	done
	incpu="$(echo "($(cpu_ticks "$INFLUX_PID") - $in0) / $HZ" | bc -l)"
	mqcpu="$(echo "($(cpu_ticks "$MQ_PID") - $mq0) / $HZ" | bc -l)"
	# Share of the replicas' CFS periods in which the budget ran out: near
	# 100 % the budget is what bounds them, lower they wait for InfluxDB.
	thrpct="$(echo "$thr / ($n * $el * 1000000 / $PERIOD_US) * 100" | bc -l)"
	others="$(echo "(($busy1 - $busy0) / $HZ - $cpu / $HZ - $incpu - $mqcpu) / $el * 100" | bc -l)"
	for pid in "${pids[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
	for g in "${groups[@]}"; do rmdir "$g"; done
	stored="$(py count "$IN_PORT" "scale_r$n")"
	[ "$stored" = "$TOTAL" ] || { echo "ingest-scale: $n replica(s): InfluxDB holds $stored of $TOTAL points" >&2; exit 1; }
	rate="$(echo "$TOTAL / $el" | bc -l)"
	STEADY[$n]=$steady
	cpus="$(echo "$cpu / $HZ" | bc -l)"
	printf '%d replica(s): %.0f points/s steady (%.0f per replica; whole drain %.0f points/s, %.2f s); ingest CPU %.2f s = %.0f points per CPU-second, throttled in %.0f%% of the periods; influxd %.0f%%, mosquitto %.0f%%, others %.0f%% of a core; stored %d of %d; shares %s\n' \
		"$n" "$steady" "$(echo "$steady / $n" | bc -l)" "$rate" "$el" "$cpus" "$(echo "$TOTAL / $cpus" | bc -l)" "$thrpct" \
		"$(echo "$incpu / $el * 100" | bc -l)" "$(echo "$mqcpu / $el * 100" | bc -l)" "$others" "$stored" "$TOTAL" "$shares"
	runs+=("{\"replicas\":$n,\"points_per_s\":$steady,\"drain_points_per_s\":$(printf '%.0f' "$rate"),\"points\":$TOTAL,\"seconds\":$(printf '%.3f' "$el"),\"ingest_cpu_s\":$(printf '%.2f' "$cpus"),\"points_per_cpu_s\":$(printf '%.0f' "$(echo "$TOTAL / $cpus" | bc -l)"),\"throttled_periods\":$thr,\"throttled_pct\":$(printf '%.0f' "$thrpct"),\"influxd_cpu_pct\":$(printf '%.0f' "$(echo "$incpu / $el * 100" | bc -l)"),\"others_cpu_pct\":$(printf '%.0f' "$others"),\"stored\":$stored,\"shares\":[$shares]}")
done
raw 1 after1
raw 2 after2
CEIL=0
for k in before1 before2 after1 after2; do
	CEIL="$(echo "if (${RAW[$k]} > $CEIL) ${RAW[$k]} else $CEIL" | bc -l)"
done
printf 'ceiling (best raw figure): %.0f points/s\n' "$CEIL"
for r in "${!STEADY[@]}"; do
	printf '%d replica(s): %.0f%% of the ceiling\n' "$r" "$(echo "${STEADY[$r]} / $CEIL * 100" | bc -l)"
done | sort -n
json+=",\"ceiling\":$(printf '%.0f' "$CEIL")"
json+=",\"raw_after_1\":$(printf '%.0f' "${RAW[after1]}"),\"raw_after_2\":$(printf '%.0f' "${RAW[after2]}")"
json+=",\"runs\":[$(IFS=,; echo "${runs[*]}")]}"
echo "$json"
