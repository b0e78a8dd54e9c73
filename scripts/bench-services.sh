# Sourced by scripts/load.sh and scripts/ingest-scale.sh: the configuration
# files of the private Mosquitto and InfluxDB 1.8 they start for a
# measurement (loopback only, everything under the work directory).

# write_mosquitto_conf FILE PORT INFLIGHT: no persistence (the gateway's
# outbox is the durable store), unbounded queues so that nothing is dropped
# for a slow subscriber, an in-flight window of INFLIGHT messages a client.
write_mosquitto_conf() {
	cat >"$1" <<CONF
user root
persistence false
max_queued_messages 0
max_inflight_messages $3
log_dest stderr
log_type error
log_type warning
listener $2 127.0.0.1
allow_anonymous true
CONF
}

# write_influxd_conf DIR HTTP_PORT RPC_PORT: DIR/influxdb.conf with meta,
# data and WAL under DIR, the HTTP API on 127.0.0.1:HTTP_PORT.
write_influxd_conf() {
	mkdir -p "$1"
	cat >"$1/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$3"
[meta]
  dir = "$1/meta"
[data]
  dir = "$1/data"
  wal-dir = "$1/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$2"
  log-enabled = false
[logging]
  level = "warn"
[monitor]
  store-enabled = false
CONF
}
