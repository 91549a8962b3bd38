#!/usr/bin/env bash
# The API contract check (tests/openapi_contract.rs): schemathesis generates requests
# from /api/v1/openapi.json and checks every answer against the document. Run inside a
# private network namespace (`unshare -n`): fuzzed trunks and click-to-dial with any
# host must not send SIP anywhere but this namespace's loopback.
#
#   tests/openapi/run.sh TSPS_BIN WORKDIR SCHEMATHESIS [schemathesis run options...]
#
# WORKDIR holds tsps.toml, a provisioned tsps.db and schemathesis.toml; the report goes
# to WORKDIR/report.xml, the server's log to WORKDIR/tsps.log. schemathesis runs in
# WORKDIR, so whatever it keeps between runs stays there (the configuration turns its
# caches off anyway: a run depends on its seed alone).
set -euo pipefail
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
bin=$(abs "$1") dir=$(cd "$2" && pwd) st=$(abs "$3")
shift 3
ip link set lo up
rm -f "$dir/ready.json"
"$bin" --config "$dir/tsps.toml" serve --ready-file "$dir/ready.json" > "$dir/tsps.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 150); do [ -s "$dir/ready.json" ] && break; sleep 0.1; done
http=$(sed -E 's/.*"http":"([^"]+)".*/\1/' "$dir/ready.json")
cd "$dir"
"$st" --config-file schemathesis.toml run "http://$http/api/v1/openapi.json" --url "http://$http" \
    --report junit --report-junit-path report.xml "$@"
