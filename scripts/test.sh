#!/usr/bin/env bash
# The test command of tsps: installs what the tests need on a Debian 12 machine (as
# root), starts PostgreSQL and Redis on loopback if they are not running, then runs
# formatting, lint and every test. Exits non-zero on any failure.
#
#   scripts/test.sh            everything
#   TSPS_SKIP_SETUP=1 ...      skip the install/start steps (a ready developer machine)
#   TSPS_CLIPPY_WARN_ONLY=1    report clippy findings without failing the run
set -euo pipefail

cd "$(dirname "$0")/.."

section() {
    printf '\n===== %s =====\n' "$*"
}

have() {
    command -v "$1" >/dev/null 2>&1
}

# Answers when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

install_packages() {
    section "system packages"
    local missing=()
    have sipp || missing+=(sip-tester)
    have baresip || missing+=(baresip)
    have pg_ctlcluster || missing+=(postgresql)
    have redis-server || missing+=(redis-server)
    have timeout || missing+=(coreutils)
    # The portal's browser tests (tests/portal.rs): Debian's Chromium, driven from Node.
    have chromium || missing+=(chromium)
    have npm || missing+=(nodejs npm)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing: ${missing[*]}"
        apt_install "${missing[@]}"
    else
        echo "sipp, baresip, postgresql, redis-server, chromium and npm are installed"
    fi
}

start_postgres() {
    section "postgresql on 127.0.0.1:5432"
    if port_open 5432; then
        echo "already running"
        return
    fi
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$version" ]; then
        version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    fi
    if [ ! -d "/etc/postgresql/$version/main" ]; then
        echo "creating cluster $version/main"
        as_root pg_createcluster "$version" main
    fi
    # Trust local connections: the tests connect as postgres without a password.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q '^# tsps tests: trust local connections' "$hba"; then
        as_root sed -i -E 's/^(local|host)(\s+.*\s+)(peer|md5|scram-sha-256)$/\1\2trust/' "$hba"
        printf '# tsps tests: trust local connections\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' |
            as_root tee -a "$hba" >/dev/null
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 60); do
        port_open 5432 && { echo "started"; return; }
        sleep 0.5
    done
    echo "postgresql did not come up on 127.0.0.1:5432" >&2
    exit 1
}

start_redis() {
    section "redis on 127.0.0.1:6379"
    if port_open 6379; then
        echo "already running"
        return
    fi
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 40); do
        port_open 6379 && { echo "started"; return; }
        sleep 0.25
    done
    echo "redis did not come up on 127.0.0.1:6379" >&2
    exit 1
}

# playwright-core for the portal's browser tests, at the version its lock file pins.
install_portal_test_deps() {
    section "tests/portal: npm ci"
    if [ -d tests/portal/node_modules/playwright-core ]; then
        echo "tests/portal/node_modules is installed"
    else
        (cd tests/portal && npm ci --no-audit --no-fund)
    fi
}

# The API contract test (tests/openapi_contract.rs) runs schemathesis, at the version
# the test's configuration is written for, from a virtualenv of its own.
SCHEMATHESIS_VERSION=4.32.5
install_schemathesis() {
    section "schemathesis"
    local venv=target/schemathesis
    if "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
        "$venv/bin/schemathesis" --version
        return
    fi
    have python3 || apt_install python3
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian's python3 makes virtualenvs only with python3-venv (ensurepip).
        rm -rf "$venv"
        apt_install python3-venv
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
    "$venv/bin/schemathesis" --version
}

install_nextest() {
    section "cargo-nextest"
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest --version
    else
        cargo install cargo-nextest --locked
    fi
}

check_fmt() {
    section "cargo fmt --check"
    cargo fmt --all -- --check
}

# Separate so that it can be turned into a warning (TSPS_CLIPPY_WARN_ONLY=1) if a lint
# of a newer toolchain blocks unrelated work.
check_clippy() {
    section "cargo clippy"
    if [ "${TSPS_CLIPPY_WARN_ONLY:-0}" = "1" ]; then
        cargo clippy --workspace --all-targets || echo "WARNING: clippy failed (warn-only mode)"
    else
        cargo clippy --workspace --all-targets -- -D warnings
    fi
}

run_tests() {
    section "cargo nextest run"
    cargo nextest run --workspace --no-fail-fast
}

# nextest does not run doctests; run them only when some exist, so that the step is
# not a slow no-op.
run_doctests() {
    if grep -rqE '^\s*//[!/].*```' --include='*.rs' src actors/src 2>/dev/null; then
        section "cargo test --doc"
        cargo test --doc --workspace
    fi
}

main() {
    local started=$SECONDS
    if [ "${TSPS_SKIP_SETUP:-0}" != "1" ]; then
        install_packages
        start_postgres
        start_redis
        install_nextest
        install_portal_test_deps
        install_schemathesis
    fi
    check_fmt
    check_clippy
    run_tests
    run_doctests
    section "all checks passed in $((SECONDS - started)) s"
}

main "$@"
