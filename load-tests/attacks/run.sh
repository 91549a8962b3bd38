#!/usr/bin/env bash
# The attacks of issue 10, re-run against tsps (docs/security.md "Attacks re-run"):
# each attack on a fresh `tsps serve` on loopback, its figures as JSON.
#
#   load-tests/attacks/run.sh                      # target/release/tsps (built if missing)
#   ATTACK_BIN_BEFORE=/path/to/old/tsps load-tests/attacks/run.sh   # and the same on another build
#   (not TSPS_*: tsps reads every TSPS_ variable as configuration)
#   ATTACKS="bruteforce replay" load-tests/attacks/run.sh
#
# Output: $OUTDIR (default load-tests/results/<UTC date>-attacks/): <label>.jsonl (one
# line per attack), <label>-<attack>.log (tsps's log). Bounded: each attack is wrapped in
# `timeout`, each tsps stopped by its PID.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUTDIR=${OUTDIR:-$REPO/load-tests/results/$(date -u +%Y-%m-%d)-attacks}
RUNDIR=${RUNDIR:-/tmp/tsps-attacks}
ATTACKS=${ATTACKS:-"bruteforce replay logflood fdflood capture ruri small"}
TOKEN=attack-token
mkdir -p "$OUTDIR" "$RUNDIR"

if [ -z "${ATTACK_BIN:-}" ]; then
    (cd "$REPO" && cargo build --release --quiet) || exit 1
    ATTACK_BIN=$REPO/target/release/tsps
fi

PROVISION='tenants:
  - domain: a.test
    name: Tenant A
    users:
      - extension: "1001"
        display_name: Alice A
        devices:
          - sip_username: "1001"
            password: secret1001
      - extension: "1002"
        display_name: Bob A
        devices:
          - sip_username: "1002"
            password: secret1002
  - domain: b.test
    name: Tenant B
    users:
      - extension: "2001"
        display_name: Mallory B
        role: tenant_admin
        password: mallory-secret-1
        devices:
          - sip_username: "2001"
            password: b-secret2001
      - extension: "1002"
        display_name: Bob B
        devices:
          - sip_username: "b1002"
            password: b-secret1002
'

# run_attack LABEL BIN ATTACK: a fresh database and tsps, the attack, the figures.
run_attack() {
    local label=$1 bin=$2 attack=$3
    local dir=$RUNDIR/$label-$attack
    rm -rf "$dir" && mkdir -p "$dir"
    cat > "$dir/tsps.toml" <<TOML
[sip]
udp_listen = "127.0.0.1:0"
tcp_listen = "127.0.0.1:0"
digest_algorithms = ["MD5", "SHA-256"]
[http]
listen = "127.0.0.1:0"
api_token = "$TOKEN"
[database]
url = "sqlite://$dir/tsps.db"
[log]
level = "info"
TOML
    printf '%s' "$PROVISION" > "$dir/provision.yaml"
    "$bin" --config "$dir/tsps.toml" provision apply "$dir/provision.yaml" > /dev/null || return 1
    local limit=()
    # The descriptor flood runs under a common limit of 1,024 (as found).
    [ "$attack" = fdflood ] && limit=(prlimit --nofile=1024:1024 --)
    "${limit[@]}" "$bin" --config "$dir/tsps.toml" serve --ready-file "$dir/ready.json" > "$dir/tsps.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 100); do [ -s "$dir/ready.json" ] && break; sleep 0.1; done
    local sip http
    sip=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sip_udp"])' "$dir/ready.json")
    http=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$dir/ready.json")
    echo "== $label $attack (tsps pid $pid, sip $sip)" >&2
    timeout 180 python3 "$HERE/attacks.py" "$attack" --sip "$sip" --http "http://$http" \
        --token "$TOKEN" --log "$dir/tsps.log" --pid "$pid" >> "$OUTDIR/$label.jsonl" \
        || echo "{\"$attack\": \"failed\"}" >> "$OUTDIR/$label.jsonl"
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    # Keep the start of the log (it can be huge before the fixes).
    head -c 20000 "$dir/tsps.log" > "$OUTDIR/$label-$attack.log"
    rm -rf "$dir"
}

for attack in $ATTACKS; do
    run_attack after "$ATTACK_BIN" "$attack"
    [ -n "${ATTACK_BIN_BEFORE:-}" ] && run_attack before "$ATTACK_BIN_BEFORE" "$attack"
done
echo "results in $OUTDIR" >&2
