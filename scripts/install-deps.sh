#!/usr/bin/env bash
# Installs what the tests need on a bare Debian machine: Mosquitto, mbpoll,
# socat, pymodbus (Debian's, run with /usr/bin/python3), Chromium, and
# InfluxDB 1.8.10 built from the Go module proxy. Idempotent: it installs only
# what is missing.
set -euo pipefail

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto mosquitto-clients)
command -v mbpoll >/dev/null 2>&1 || need_apt+=(mbpoll)
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
/usr/bin/python3 -c 'import pymodbus' >/dev/null 2>&1 || need_apt+=(python3-pymodbus)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)

if [ ${#need_apt[@]} -gt 0 ]; then
	echo "install-deps: apt-get install ${need_apt[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

GOBIN_DIR="$(go env GOPATH)/bin"
if [ ! -x "$GOBIN_DIR/influxd" ]; then
	echo "install-deps: go install influxd@v1.8.10"
	go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10
fi
