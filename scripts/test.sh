#!/usr/bin/env bash
# The project's test command (README "Testing"): installs what the tests need,
# then runs every test against real services, then briefly runs each fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
export PATH="$(go env GOPATH)/bin:/usr/sbin:$PATH"
export CANARY_INFLUXD="$(go env GOPATH)/bin/influxd"

go vet ./...
# One package at a time: several packages assert on poll counts and drive a
# real browser, and on a 2-core box parallel packages only starve each other.
go test -count=1 -p 1 -timeout 25m ./...

# Each fuzz target runs briefly so that CI keeps its corpus honest; longer
# runs are for developers (docs/testing.md).
FUZZTIME="${FUZZTIME:-10s}"
go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz $pkg $f ($FUZZTIME)"
		go test -run '^$' -fuzz "^${f}\$" -fuzztime "$FUZZTIME" "$pkg"
	done
done
echo "fuzz: all targets ran"
