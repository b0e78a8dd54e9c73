#!/usr/bin/env bash
# Load scenario with every part as its own process: the reference scenario of
# docs/performance.md (Telegraf's: DEVICES Modbus TCP devices × SENSORS
# float32 readings in contiguous holding registers, ABCD, polled every POLL,
# every poll published at MQTT QoS 1 and written to InfluxDB 1.8.10), run as
#   canary sim  (the devices)   canary run (the gateway)   canary ingest
# against a real Mosquitto and a real InfluxDB on loopback. CPU is read from
# /proc/<pid>/task/*/schedstat (ns on a CPU), peak RSS from /proc/<pid>/status (VmHWM).
# Delivery is counted by a QoS 1 mosquitto_sub on the readings topics and,
# when the ingest runs, by counting the points in InfluxDB.
#
#   DEVICES=50 SENSORS=20 POLL=1s DURATION=30 WARMUP=5 scripts/load.sh
#
# Prints one line per process, each core's busy share over the window (is
# the rig itself saturated?), and one JSON line (so runs can be compared).
set -euo pipefail
# CANARY_BIN is the caller's path, not the repository's.
if [ -n "${CANARY_BIN:-}" ]; then
	CANARY_BIN="$(realpath "$CANARY_BIN")"
	[ -x "$CANARY_BIN" ] || { echo "load: CANARY_BIN $CANARY_BIN is not an executable" >&2; exit 1; }
fi
cd "$(dirname "$0")/.."
. scripts/bench-services.sh

DEVICES="${DEVICES:-50}"
SENSORS="${SENSORS:-20}"
POLL="${POLL:-1s}"
# TIMEOUT per request (default: the driver's, min(500ms, POLL/2)).
TIMEOUT="${TIMEOUT:-}"
DURATION="${DURATION:-30}"
# STALL and STALL_AT are seconds (see the window below): checked here, as a
# bad one would leave the gateway paused.
for v in STALL STALL_AT RUN_QUOTA_UNTIL RUN_QUOTA_EVERY; do
	[ -z "${!v:-}" ] || [[ "${!v}" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
		{ echo "load: $v=${!v}: want seconds, e.g. 0.2" >&2; exit 1; }
done
if [ -n "${STALL_AT:-}" ] && awk -v a="$STALL_AT" -v d="$DURATION" 'BEGIN {exit !(a >= d)}'; then
	echo "load: STALL_AT=$STALL_AT is not inside the ${DURATION}s window" >&2
	exit 1
fi
WARMUP="${WARMUP:-5}"
INFLUXD="${CANARY_INFLUXD:-$(go env GOPATH)/bin/influxd}"
MOSQUITTO="${MOSQUITTO:-/usr/sbin/mosquitto}"
# PROFILE=DIR writes pprof CPU and heap profiles of `canary run` and
# `canary ingest` there (run.cpu, run.heap, ingest.cpu, ingest.heap).
PROFILE="${PROFILE:-}"
[ -n "$PROFILE" ] && mkdir -p "$PROFILE" && PROFILE="$(cd "$PROFILE" && pwd)"
# RUN_ENV adds environment variables to `canary run` only (RUN_ENV="GOMAXPROCS=2";
# it wins over RUN_CPU's GOMAXPROCS=1).
# RUN_CPU pins `canary run` to one core (and GOMAXPROCS=1) and everything
# else to the other cores: the gateway's one-core ceiling.
RUN_CPU="${RUN_CPU:-}"
# RUN_QUOTA=PCT gives `canary run` PCT % of one core (a cgroup v1 cpu
# group of its own, in 10 ms periods, so it is never held off for more
# than 10 ms at a time; needs root): a slower core, so the gateway can be
# taken past its ceiling while the rig's own core still has room. Read it
# with that in mind: the gateway judges itself saturated from the CPU its
# threads used against the wall clock, which a budget caps, so a timeout
# of its own making is found late only by its time (docs/modbus.md).
RUN_QUOTA="${RUN_QUOTA:-}"
# The kernel takes no quota under 1 ms of the 10 ms period: 10-99 %. Without
# RUN_CPU the gateway would share both cores with the rig, and the figures
# would say nothing about the gateway alone.
if [ -n "$RUN_QUOTA" ]; then
	[[ "$RUN_QUOTA" =~ ^[1-9][0-9]$ ]] || { echo "load: RUN_QUOTA=$RUN_QUOTA: want a percentage of one core, 10-99" >&2; exit 1; }
	[ -n "$RUN_CPU" ] || { echo "load: RUN_QUOTA needs RUN_CPU (the gateway alone on its core)" >&2; exit 1; }
fi
# RUN_QUOTA_UNTIL=SECONDS lifts RUN_QUOTA's budget that many seconds into
# the window (the whole core again): an overload that ends, and what the
# gateway does after it (the fault hold's end: docs/performance-history.md,
# item 54).
# RUN_QUOTA_EVERY=SECONDS instead lifts it and sets it again, every that
# many seconds from the window's start: an overload that comes and goes.
[ -z "${RUN_QUOTA_UNTIL:-}${RUN_QUOTA_EVERY:-}" ] || [ -n "$RUN_QUOTA" ] || { echo "load: RUN_QUOTA_UNTIL and RUN_QUOTA_EVERY need RUN_QUOTA" >&2; exit 1; }
[ -z "${RUN_QUOTA_UNTIL:-}" ] || [ -z "${RUN_QUOTA_EVERY:-}" ] || { echo "load: RUN_QUOTA_UNTIL or RUN_QUOTA_EVERY, not both" >&2; exit 1; }
pin_run=()
pin_rest=()
if [ -n "$RUN_CPU" ]; then
	rest="$(seq 0 $(($(nproc) - 1)) | grep -vx "$RUN_CPU" | paste -sd, -)"
	pin_run=(env GOMAXPROCS=1 taskset -c "$RUN_CPU")
	pin_rest=(taskset -c "$rest")
fi

for bin in "$MOSQUITTO" mosquitto_sub; do
	command -v "$bin" >/dev/null || { echo "load: $bin missing (apt-get install -y mosquitto mosquitto-clients)" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/canary-load.XXXXXX)"
# The counting subscriber's file (several GB at 600 000 readings/s) goes to
# tmpfs when there is one: on disk, the kernel's writeback of it (its
# dirty pages expire every 30 s) ran in unbound kworkers on whichever core,
# the gateway's pinned one too, and took 200-330 ms of it at a time: the
# gateway's reads then timed out (docs/performance-history.md, item 40).
COUNT="$WORK"
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ -w /dev/shm ]; then
	COUNT="$(mktemp -d /dev/shm/canary-count.XXXXXX)"
fi
PIDS=()
cleanup() {
	# Newest first: the gateway stops before its devices and its broker
	# (and STALL's pauser before the gateway).
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
	# A gateway paused by STALL must run again to stop.
	[ -n "${RUN_PID:-}" ] && kill -CONT "$RUN_PID" 2>/dev/null || true
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	# The gateway has exited (waited for above): its cgroup is empty.
	[ -z "${RUN_CG:-}" ] || rmdir "$RUN_CG" || echo "load: could not remove cgroup $RUN_CG" >&2
	rm -rf "$WORK" "$COUNT"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap 'for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done; [ -n "${RUN_PID:-}" ] && kill -CONT "$RUN_PID" 2>/dev/null; echo "load: kept $WORK and $COUNT" >&2; [ -z "${RUN_CG:-}" ] || { [ -z "${RUN_PID:-}" ] || wait "$RUN_PID" 2>/dev/null; rmdir "$RUN_CG" || echo "load: could not remove cgroup $RUN_CG" >&2; }' EXIT

# The release build (README): static, no C library mapped. CANARY_BIN runs
# a binary built elsewhere instead (an A/B comparison with another commit).
if [ -n "${CANARY_BIN:-}" ]; then
	cp "$CANARY_BIN" "$WORK/canary"
else
	CGO_ENABLED="${CGO_ENABLED:-0}" go build -trimpath -o "$WORK/canary" ./cmd/canary
fi
ulimit -n 65536 2>/dev/null || true

# Distinct free loopback ports: all bound at once, then released.
PORTS=($(python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' $((DEVICES + 8))))
NEXT_PORT=0
free_port() { echo "${PORTS[$NEXT_PORT]}"; }
take_port() { NEXT_PORT=$((NEXT_PORT + 1)); }

# Mosquitto: no persistence (the gateway's outbox is the durable store),
# unbounded queue so that nothing is dropped for a slow subscriber.
MQ_PORT="$(free_port)"; take_port
write_mosquitto_conf "$WORK/mosquitto.conf" "$MQ_PORT" 1000
"${pin_rest[@]}" "$MOSQUITTO" -c "$WORK/mosquitto.conf" 2>"$WORK/mosquitto.log" &
PIDS+=($!)
MQ_PID=$!

# The site: one file for the simulator and the gateway.
SITE="$WORK/site.yaml"
{
	echo "site: load"
	echo "mqtt: {url: tcp://127.0.0.1:$MQ_PORT, client_id: load-gw}"
	echo "outbox: {dir: $WORK/outbox}"
	HTTP_PORT="$(free_port)"; take_port
	echo "http: {listen: 127.0.0.1:$HTTP_PORT}"
	echo "devices:"
	for ((d = 0; d < DEVICES; d++)); do
		printf '  - id: d%03d\n    url: tcp://127.0.0.1:%s\n    unit: 1\n    poll: %s\n' "$d" "$(free_port)" "$POLL"
		[ -n "$TIMEOUT" ] && printf '    timeout: %s\n' "$TIMEOUT"
		printf '    sensors:\n'
		take_port
		for ((s = 0; s < SENSORS; s++)); do
			printf '      - {id: s%02d, kind: methane, table: holding, address: %d, type: float32, order: ABCD}\n' "$s" $((2 * s))
		done
	done
	echo "simulation: {seed: 1}"
} >"$SITE"

"${pin_rest[@]}" "$WORK/canary" sim -c "$SITE" --control "127.0.0.1:$(free_port)" >"$WORK/sim.out" 2>"$WORK/sim.log" &
PIDS+=($!)
SIM_PID=$!
take_port
for _ in $(seq 100); do grep -q "control api" "$WORK/sim.out" 2>/dev/null && break; sleep 0.1; done
kill -0 "$SIM_PID" 2>/dev/null || { echo "load: canary sim died:" >&2; cat "$WORK/sim.out" "$WORK/sim.log" >&2; exit 1; }

# InfluxDB and the ingest, when both are there. DIRECT=1: InfluxDB is
# written by the gateway itself, as Telegraf's outputs.influxdb_v2 does,
# and no ingest runs (run+ingest is then the gateway alone).
DIRECT="${DIRECT:-}"
INGEST_PID=""
INFLUX_PID=""
ingest_help="$("$WORK/canary" ingest --help 2>&1 || true)"
if [[ "$ingest_help" == *"not built yet"* ]]; then
	echo "load: canary ingest is not built yet in this version: MQTT → InfluxDB is not measured" >&2
elif [ -x "$INFLUXD" ]; then
	IN_PORT="$(free_port)"; take_port
	write_influxd_conf "$WORK/influx" "$IN_PORT" "${PORTS[$((NEXT_PORT + 1))]}"
	"${pin_rest[@]}" "$INFLUXD" -config "$WORK/influx/influxdb.conf" >"$WORK/influx.log" 2>&1 &
	PIDS+=($!)
	INFLUX_PID=$!
	INFLUXDB_PID=$INFLUX_PID
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$IN_PORT/ping" && break; sleep 0.1; done
	curl -sf -XPOST "http://127.0.0.1:$IN_PORT/query" --data-urlencode "q=CREATE DATABASE canary" >/dev/null
	if [ -n "$DIRECT" ]; then
		# The gateway writes InfluxDB itself (docs/delivery.md, "Writing
		# straight to InfluxDB from the edge"); the simulator has read the
		# file already and no ingest runs.
		echo "influxdb: {url: http://127.0.0.1:$IN_PORT, bucket: canary/autogen${BW:+, batch_wait: $BW}}" >>"$SITE"
	else
	cat >"$WORK/ingest.yaml" <<CONF
mqtt: {url: tcp://127.0.0.1:$MQ_PORT, client_id: load-ingest}
influxdb: {url: http://127.0.0.1:$IN_PORT, bucket: canary/autogen}
sites: [load]
CONF
	env ${PROFILE:+CANARY_CPUPROFILE=$PROFILE/ingest.cpu CANARY_MEMPROFILE=$PROFILE/ingest.heap} \
		"${pin_rest[@]}" "$WORK/canary" ingest -c "$WORK/ingest.yaml" 2>"$WORK/ingest.log" &
	PIDS+=($!)
	INGEST_PID=$!
	fi
else
	echo "load: $INFLUXD missing: MQTT → InfluxDB is not measured" >&2
fi

in_cg=()
if [ -n "$RUN_QUOTA" ]; then
	cg="/sys/fs/cgroup/cpu/canary-load-run-$$"
	mkdir "$cg" && RUN_CG="$cg" && echo 10000 >"$RUN_CG/cpu.cfs_period_us" && echo $((RUN_QUOTA * 100)) >"$RUN_CG/cpu.cfs_quota_us" ||
		{ echo "load: RUN_QUOTA: cannot set a CPU budget under /sys/fs/cgroup/cpu (cgroup v1, root): nothing measured" >&2; exit 1; }
	# The shell joins the cgroup, then becomes the gateway (same pid).
	in_cg=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$RUN_CG")
fi
env ${PROFILE:+CANARY_CPUPROFILE=$PROFILE/run.cpu CANARY_MEMPROFILE=$PROFILE/run.heap} \
	"${in_cg[@]}" "${pin_run[@]}" env ${RUN_ENV:-} "$WORK/canary" run -c "$SITE" --log-level warn 2>"$WORK/run.log" &
PIDS+=($!)
RUN_PID=$!

# TIMELINE=FILE writes the gateway's own counters once a second from its
# start to the end of the window (seconds since start, alarm events,
# skipped ticks, late polls, poll errors, readings batches dropped, readings
# shed, polls waiting for the core, polls started late, records in the
# outbox's alarm lane, the fault hold (0/1), the alarms it holds, and the
# gateway's RSS and anonymous RSS in KiB): where an overload began, what
# began it, and what it held (docs/performance-history.md, items 38, 49,
# 53 and 54).
if [ -n "${TIMELINE:-}" ]; then
	(
		t0="$(date +%s.%N)"
		echo "# s alarm_events skipped_ticks late_polls poll_errors dropped_readings shed_readings queued_polls late_starts alarm_records fault_hold held_alarms rss_kib rss_anon_kib" >"$TIMELINE"
		while kill -0 "$RUN_PID" 2>/dev/null; do
			rss="$(awk '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} END {printf "%d %d", r, a}' "/proc/$RUN_PID/status" 2>/dev/null || echo "0 0")"
			curl -sf --max-time 1 "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v now="$(date +%s.%N)" -v t0="$t0" -v rss="$rss" '
				/^canary_alarm_events_total/ {a += $2} /^canary_device_skipped_ticks_total/ {s += $2}
				/^canary_device_late_polls_total/ {l += $2} /^canary_device_poll_errors_total/ {e += $2}
				/^canary_outbox_dropped_readings_total/ {d += $2} /^canary_readings_shed_total/ {h += $2}
				/^canary_core_queued_polls/ {q += $2} /^canary_device_late_starts_total/ {ls += $2}
				/^canary_outbox_records\{.*lane="alarms"/ {ar += $2} /^canary_fault_hold[{ ]/ {ch += $2}
				/^canary_fault_held_alarms/ {hd += $2}
				END {if (NR) printf "%.1f %d %d %d %d %d %d %d %d %d %d %d %s\n", now - t0, a, s, l, e, d, h, q, ls, ar, ch, hd, rss}' >>"$TIMELINE" || true
			sleep 1
		done
	) &
	PIDS+=($!)
fi

# TELEGRAF=/path/to/telegraf runs Telegraf side by side on the same devices
# (a connection of its own to each), the issue's reference pipeline:
# inputs.modbus -> outputs.mqtt (QoS 1) + outputs.influxdb_v2, every poll.
TELEGRAF="${TELEGRAF:-}"
TELEGRAF_PID=""
if [ -n "$TELEGRAF" ]; then
	{
		echo '[agent]'
		echo "  interval = \"$POLL\""
		echo "  flush_interval = \"$POLL\""
		echo '  metric_batch_size = 1000'
		echo '  metric_buffer_limit = 100000'
		echo '  omit_hostname = true'
		echo '[[outputs.mqtt]]'
		echo "  servers = [\"127.0.0.1:$MQ_PORT\"]"
		echo '  topic = "telegraf/{{ .PluginName }}"'
		echo '  qos = 1'
		echo '  data_format = "influx"'
		echo '[[outputs.influxdb_v2]]'
		echo "  urls = [\"http://127.0.0.1:$IN_PORT\"]"
		echo '  token = ""'
		echo '  organization = ""'
		echo '  bucket = "canary/autogen"'
		sed -n 's/^    url: \(tcp:\/\/127.0.0.1:[0-9]*\)$/\1/p' "$SITE" | while read -r url; do
			echo '[[inputs.modbus]]'
			echo "  name = \"${url##*:}\""
			echo '  slave_id = 1'
			echo "  timeout = \"${TIMEOUT:-500ms}\""
			echo "  controller = \"$url\""
			echo '  holding_registers = ['
			for ((s = 0; s < SENSORS; s++)); do
				printf '    { name = "s%02d", byte_order = "ABCD", data_type = "FLOAT32-IEEE", scale = 1.0, address = [%d, %d] },\n' "$s" $((2 * s)) $((2 * s + 1))
			done
			echo '  ]'
		done
	} >"$WORK/telegraf.conf"
	"${pin_rest[@]}" "$TELEGRAF" --config "$WORK/telegraf.conf" >"$WORK/telegraf.log" 2>&1 &
	PIDS+=($!)
	TELEGRAF_PID=$!
fi

# cpu_time PID: nanoseconds on a CPU of all the process's threads so far
# (the first field of each thread's schedstat), not utime+stime, which
# count in 10 ms ticks: at 1 000 readings/s a 60 s window is only 30 ticks
# of canary run, too coarse to compare two builds.
cpu_time() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# csw PID: context switches of all the process's threads so far (each is a
# thread going to sleep or being put off the CPU: the wake-ups an idle edge
# box pays for).
# tids PID: the process's thread ids. A thread that exits inside the window
# takes its CPU time out of cpu_time's sum: load.sh warns when one did.
tids() { ls /proc/"$1"/task 2>/dev/null | sort; }
csw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches:/ {s += $2} END {printf "%.0f", s}'; }
# core_ticks: each core's ticks so far, one line a core: name, not idle
# (user, nice, system, irq, softirq, steal), all. Past the gateway's
# ceiling the other core (simulator, broker, subscriber) can be full too:
# then late answers are the simulated devices', not the gateway's.
core_ticks() { awk '/^cpu[0-9]/ {b = $2 + $3 + $4 + $7 + $8 + $9; print $1, b, b + $5 + $6}' /proc/stat; }

# The warm-up starts once the gateway answers its HTTP API (its config
# loaded, its outbox open), not when it was started: at 40 080 sensors on a
# 40 % budget of a slow hour's core that took 9 s (2026-12-01), and a window
# begun before it measured nothing.
run_alive() { kill -0 "$RUN_PID" 2>/dev/null || { echo "load: canary run died:" >&2; cat "$WORK/run.log" >&2; exit 1; }; }
up_by=$((SECONDS + 120))
until curl -sf --max-time 10 -o /dev/null "http://127.0.0.1:$HTTP_PORT/metrics"; do
	run_alive
	[ "$SECONDS" -lt "$up_by" ] || { echo "load: canary run's HTTP API did not answer within 120 s of its start" >&2; exit 1; }
	sleep 0.2
done
sleep "$WARMUP"
run_alive
"${pin_rest[@]}" mosquitto_sub -p "$MQ_PORT" -q 1 -t 'canary/v1/load/readings/+' -i load-count >"$COUNT/readings.out" &
SUB_PID=$!
PIDS+=($SUB_PID)
sleep 0.5
declare -A T0 C0 TIDS0
for name in sim run ingest mosquitto influxdb telegraf; do
	var="${name^^}_PID"; [ "$name" = run ] && var=RUN_PID; [ "$name" = mosquitto ] && var=MQ_PID
	pid="${!var:-}"; [ -n "$pid" ] && { T0[$name]="$(cpu_time "$pid")"; C0[$name]="$(csw "$pid")"; TIDS0[$name]="$(tids "$pid")"; }
done
# The gateway's own account of the window, from its /metrics: polls that
# failed, ticks it skipped, polls it abandoned for running late, readings
# it dropped at the outbox bound, answers it read late (their readings
# good), and what waits in the outbox at the end.
# One scrape per moment (SCRAPE): at 500 devices a scrape costs the gateway
# about 10 ms of CPU, and a scrape per figure, back to back, took 50–70 ms
# of a core that had 15 % to spare at 600 000 readings/s.
# A gateway held to a small CPU quota in a flood can take more than 10 s to
# answer: three tries before the run is given up.
scrape() {
	for try in 1 2 3; do
		SCRAPE="$(curl -sf --max-time 10 "http://127.0.0.1:$HTTP_PORT/metrics")" && return
		rc=$?
		if [ "$rc" = 28 ]; then
			echo "load: /metrics did not answer within 10 s (try $try of 3)" >&2
		else
			echo "load: /metrics failed, curl exit $rc (try $try of 3)" >&2
			sleep 1
		fi
	done
	echo "load: could not read the gateway's /metrics" >&2
	exit 1
}
metric() {
	awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%d", s}' <<<"$SCRAPE"
}
# metric_prefix sums the series whose name and labels start with $1.
metric_prefix() {
	awk -v m="$1" 'index($1, m) == 1 {s += $2} END {printf "%d", s}' <<<"$SCRAPE"
}
GW_METRICS=(canary_device_poll_errors_total canary_device_skipped_ticks_total canary_device_late_polls_total canary_device_late_answers_total canary_outbox_dropped_readings_total canary_readings_shed_total canary_alarm_events_total canary_device_late_starts_total canary_device_polls_total canary_fault_holds_total)
declare -A M0 M1
scrape
for m in "${GW_METRICS[@]}"; do M0[$m]="$(metric "$m")"; done
START="$(date +%s.%N)"
START_NS="$(date +%s%N)"
CORES0="$(core_ticks)"
# STALL=SECONDS pauses `canary run` (SIGSTOP, then SIGCONT) that long,
# STALL_AT seconds into the window (default: half of it): a process held
# up for a moment, as by a VM's steal or a storage stall. What it should
# cost is the polls of the pause, not a flood of comm alarms after it
# (docs/performance-history.md, item 39).
if [ -n "${STALL:-}" ]; then
	STALL_AT="${STALL_AT:-$(awk -v d="$DURATION" 'BEGIN {print d / 2}')}"
	(
		sleep "$STALL_AT"
		kill -STOP "$RUN_PID" || exit 0
		sleep "$STALL" || true
		kill -CONT "$RUN_PID"
		echo "load: canary run paused ${STALL}s, ${STALL_AT}s into the window" >&2
	) &
	PIDS+=($!)
fi
if [ -n "${RUN_QUOTA_UNTIL:-}" ]; then
	(
		sleep "$RUN_QUOTA_UNTIL"
		echo -1 >"$RUN_CG/cpu.cfs_quota_us"
		echo "load: canary run's CPU budget lifted ${RUN_QUOTA_UNTIL}s into the window" >&2
	) &
	PIDS+=($!)
fi
if [ -n "${RUN_QUOTA_EVERY:-}" ]; then
	(
		on=1
		while sleep "$RUN_QUOTA_EVERY"; do
			if [ "$on" = 1 ]; then q=-1 on=0; else q=$((RUN_QUOTA * 100)) on=1; fi
			echo "$q" >"$RUN_CG/cpu.cfs_quota_us" 2>/dev/null || exit 0
		done
	) &
	PIDS+=($!)
fi
sleep "$DURATION"
END="$(date +%s.%N)"
END_NS="$(date +%s%N)"
CORES1="$(core_ticks)"
scrape
for m in "${GW_METRICS[@]}"; do M1[$m]="$(metric "$m")"; done
BACKLOG="$(metric canary_outbox_records)"
ALARM_BACKLOG="$(metric_prefix 'canary_outbox_records{lane="alarms"')"
declare -A T1 C1 HWM
for name in sim run ingest mosquitto influxdb telegraf; do
	var="${name^^}_PID"; [ "$name" = run ] && var=RUN_PID; [ "$name" = mosquitto ] && var=MQ_PID
	pid="${!var:-}"; [ -n "$pid" ] && { T1[$name]="$(cpu_time "$pid")"; C1[$name]="$(csw "$pid")"; HWM[$name]="$(hwm_kb "$pid")"
		gone="$(comm -23 <(echo "${TIDS0[$name]}") <(tids "$pid") | wc -l)"
		[ "$gone" -eq 0 ] || echo "load: $gone thread(s) of $name exited in the window: its CPU figure is too low" >&2; }
done
# A second for the window's last polls to arrive (what is not there by then
# counts as not delivered).
sleep 1
kill "$SUB_PID" 2>/dev/null || true
# A subscriber far behind a broker with gigabytes queued for it (past the
# ceiling, the rig's core saturated) has been seen not to exit on TERM:
# what it wrote by now is what is counted.
for _ in $(seq 50); do kill -0 "$SUB_PID" 2>/dev/null || break; sleep 0.2; done
kill -KILL "$SUB_PID" 2>/dev/null || true
wait "$SUB_PID" 2>/dev/null || true

MSGS="$(wc -l <"$COUNT/readings.out")"
# The subscriber runs a little longer than the window: count the readings
# polled in it (by their ts), as InfluxDB's count below does. And nothing
# lost: every device's seqs the subscriber saw are contiguous (duplicates
# allowed: delivery is at least once).
read -r READINGS GAPS < <("${pin_rest[@]}" python3 -c '
import json, sys
start, end = int(sys.argv[2]), int(sys.argv[3])
def ns(ts):  # RFC 3339 with up to nanoseconds, UTC ("Z")
    from datetime import datetime, timezone
    day, frac = (ts[:-1].split(".") + ["0"])[:2]
    sec = datetime.strptime(day, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return int(sec) * 10**9 + int(frac.ljust(9, "0")[:9])
seqs, n = {}, 0
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    seqs.setdefault(m["device"], set()).add(m["seq"])
    if start <= ns(m["ts"]) < end:
        n += len(m["readings"])
print(n, sum(max(s) - min(s) + 1 - len(s) for s in seqs.values()))' "$COUNT/readings.out" "$START_NS" "$END_NS")
HZ=1000000000 # cpu_time is in ns
ELAPSED="$(echo "$END - $START" | bc -l)"
printf 'scenario   %d devices × %d sensors every %s, %ss measured on %s (%d cores)\n' "$DEVICES" "$SENSORS" "$POLL" "$DURATION" "$(uname -m)" "$(nproc)"
printf 'delivered  %d readings polled in the window reached a QoS 1 subscriber (%d messages in all) = %.0f readings/s\n' "$READINGS" "$MSGS" "$(echo "$READINGS / $ELAPSED" | bc -l)"
OFFERED="$(python3 -c '
import re, sys
m = re.fullmatch(r"([0-9.]+)(ms|s)", sys.argv[4])
poll = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
print(round(int(sys.argv[1]) * int(sys.argv[2]) / poll))' "$DEVICES" "$SENSORS" "$DURATION" "$POLL")"
d() { echo $((M1[$1] - M0[$1])); }
# Every poll begun: those that yielded readings and those abandoned late.
POLLS=$(($(d canary_device_polls_total) + $(d canary_device_late_polls_total)))
# A binary from before canary_device_late_starts_total (CANARY_BIN) has no
# such series: say so rather than print 0.
if grep -q '^canary_device_late_starts_total' <<<"$SCRAPE"; then
	LATE_STARTS="$(d canary_device_late_starts_total)" LATE_STARTS_JSON="$LATE_STARTS"
else
	LATE_STARTS=n/a LATE_STARTS_JSON=null
fi
# Likewise the fault hold (item 53): holds started in the window, and
# whether one was on at the end.
if grep -q '^canary_fault_holds_total' <<<"$SCRAPE"; then
	HOLDS="$(d canary_fault_holds_total)" HOLDS_JSON="$HOLDS"
	HELD="$(metric_prefix 'canary_fault_hold{')" HELD_JSON="$HELD"
else
	HOLDS=n/a HOLDS_JSON=null HELD=n/a HELD_JSON=null
fi
printf 'gateway    offered %d readings/s; in the window: %d seq gaps seen by the subscriber, %d poll errors, %d skipped ticks, %s polls of %d started late, %d late polls, %d answers read late, %d alarm events, %d readings batches dropped, %d readings shed, %s fault holds started (%s held at the end); %d records in the outbox at the end (%d of them alarm states and events)\n' \
	"$OFFERED" "$GAPS" "$(d canary_device_poll_errors_total)" "$(d canary_device_skipped_ticks_total)" "$LATE_STARTS" "$POLLS" "$(d canary_device_late_polls_total)" "$(d canary_device_late_answers_total)" "$(d canary_alarm_events_total)" "$(d canary_outbox_dropped_readings_total)" "$(d canary_readings_shed_total)" "$HOLDS" "$HELD" "$BACKLOG" "$ALARM_BACKLOG"
# Each core's busy share over the window, and where canary run was pinned.
CORES="$(paste -d' ' <(echo "$CORES0") <(echo "$CORES1") | awk '{printf "%s%s %.1f%%", (NR > 1 ? ", " : ""), $1, 100 * ($5 - $2) / ($6 - $3 + ($6 == $3))}')"
CORES_JSON="$(paste -d' ' <(echo "$CORES0") <(echo "$CORES1") | awk '{printf "%s\"%s\":%.1f", (NR > 1 ? "," : ""), $1, 100 * ($5 - $2) / ($6 - $3 + ($6 == $3))}')"
printf 'cores      busy in the window: %s%s%s\n' "$CORES" "${RUN_CPU:+ (canary run alone on cpu$RUN_CPU)}" "${RUN_QUOTA:+; canary run limited to $RUN_QUOTA % of one core}"
json="{\"devices\":$DEVICES,\"sensors\":$SENSORS,\"poll\":\"$POLL\",\"duration_s\":$DURATION,\"readings\":$READINGS,\"readings_per_s\":$(printf '%.1f' "$(echo "$READINGS / $ELAPSED" | bc -l)")"
json+=",\"offered_readings_per_s\":$OFFERED,\"seq_gaps\":$GAPS,\"poll_errors\":$(d canary_device_poll_errors_total),\"skipped_ticks\":$(d canary_device_skipped_ticks_total),\"polls\":$POLLS,\"late_starts\":$LATE_STARTS_JSON,\"late_polls\":$(d canary_device_late_polls_total),\"late_answers\":$(d canary_device_late_answers_total),\"alarm_events\":$(d canary_alarm_events_total),\"dropped\":$(d canary_outbox_dropped_readings_total),\"shed\":$(d canary_readings_shed_total),\"fault_holds\":$HOLDS_JSON,\"fault_held_at_end\":$HELD_JSON,\"outbox_records\":$BACKLOG,\"outbox_alarm_records\":$ALARM_BACKLOG,\"core_busy_pct\":{$CORES_JSON},\"run_quota_pct\":${RUN_QUOTA:-null}"
for name in run ingest sim mosquitto influxdb telegraf; do
	[ -n "${T1[$name]:-}" ] || continue
	cpu="$(echo "(${T1[$name]} - ${T0[$name]}) / $HZ" | bc -l)"
	per1000="$(echo "if ($READINGS > 0) $cpu / $READINGS * 1000 * 1000 else 0" | bc -l)"
	cswps="$(echo "(${C1[$name]} - ${C0[$name]}) / $ELAPSED" | bc -l)"
	printf '%-10s %.2f ms CPU per 1000 readings, %.1f%% of one core, peak RSS %.1f MB, %.0f context switches/s\n' \
		"$name" "$per1000" "$(echo "$cpu / $ELAPSED * 100" | bc -l)" "$(echo "${HWM[$name]} / 1000" | bc -l)" "$cswps"
	json+=",\"${name}_cpu_ms_per_1000\":$(printf '%.3f' "$per1000"),\"${name}_peak_rss_bytes\":$((HWM[$name] * 1024)),\"${name}_ctx_switches_per_s\":$(printf '%.1f' "$cswps")"
done
if [ -n "$INGEST_PID" ] || { [ -n "$DIRECT" ] && [ -n "$INFLUX_PID" ]; }; then
	# Readings of the measured window (by their poll time) in InfluxDB,
	# once the ingest has caught up (the count stops growing).
	q="SELECT count(quality) FROM reading WHERE time >= ${START_NS} AND time < ${END_NS}"
	count_window() {
		curl -sf -G "http://127.0.0.1:$IN_PORT/query" --data-urlencode db=canary --data-urlencode "q=$q" |
			python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(r["series"][0]["values"][0][1] if "series" in r else 0)'
	}
	last=-1
	for _ in $(seq 60); do
		n="$(count_window)"
		[ "$n" = "$last" ] && break
		last="$n"
		sleep 1
	done
	printf 'influxdb   %d readings polled in the window written (the subscriber got %d)\n' "$n" "$READINGS"
	total="$(echo "(${T1[run]} - ${T0[run]} + ${T1[ingest]:-0} - ${T0[ingest]:-0}) / $HZ / $READINGS * 1000 * 1000" | bc -l)"
	printf 'run+ingest %.2f ms CPU per 1000 readings\n' "$total"
	json+=",\"influxdb_readings\":$n,\"run_ingest_cpu_ms_per_1000\":$(printf '%.3f' "$total")"
fi
echo "$json}"
