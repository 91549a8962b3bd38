#!/usr/bin/env bash
# tsps load test: SIPp against tsps, interleaved with the same-run baselines
# (SIPp alone, Kamailio). Method and pass rule from the Kamailio/SIPp anchor
# (shared/anchors/kamailio-baseline: RESULTS.md, run.sh), extended for tsps.
#
#   load-tests/run.sh                        # full run (long: ~1-2 h on a shared 2-vCPU VM)
#   STEP_SECONDS=3 QUIET_MAX_WAIT=0 HOST_WAIT_MAX=0 load-tests/run.sh   # quick, noisy
#   PHASES="direct kam" load-tests/run.sh    # subset; see PHASES below
#
# Phases (everything on 127.0.0.1 over UDP; every process bounded):
#   direct   SIPp uac (uac.xml) -> SIPp uas (-sn uas)                       generator ceiling
#   kam      SIPp uac -> Kamailio stateful proxy (tm + rr, anchor cfg) -> SIPp uas
#   kamauth  N users registered to Kamailio (usrloc, digest), then
#            SIPp uac_auth.xml (INVITE, 407, INVITE with credentials) -> Kamailio
#            (auth + lookup("location")) -> SIPp uas                 same work as tsps, as a proxy
#   tsps     N users provisioned and registered to tsps (REGISTER, 401, REGISTER with
#            credentials; Contact = the SIPp uas), then SIPp uac_auth.xml -> tsps (B2BUA) -> SIPp uas
#   regdirect REGISTER with digest (register_auth.xml) -> SIPp stand-in (reg_uas_auth.xml)
#            that challenges and then accepts without checking     REGISTER generator ceiling
#   regkam   REGISTER refreshes with digest (register_auth.xml) -> Kamailio registrar (usrloc, auth)
#   regtsps  the same -> tsps registrar
#   overload tsps driven past its maximum: OVL_FACTORS (default 1.25 1.5 2) x OVL_MAX
#            calls/s (default: the tsps maximum this run found), OVL_SECONDS s each, with
#            uac_auth_overload.xml (a 503 to either INVITE is an expected answer, ACKed and
#            counted): goodput (answered calls that were not refused, per second of
#            SIPp's run: the offered period plus the tail of late answers), refused (503),
#            failed and incomplete calls (set up but never ended: must be 0); results in
#            overload.csv
#   profile  where the CPU goes, in instructions (repeatable on a shared machine): Kamailio
#            (auth, usrloc), tsps and optionally an older tsps (PROF_BASE_BIN) under
#            valgrind's callgrind; calls and REGISTER refreshes counted apart; results in
#            profile/. Not in the default list; see load-tests/profile/phase.sh.
#   mem      tsps memory: RSS with 0 vs N registered users; with M live calls held vs none;
#            RSS before and after many short calls (memory kept per ended call)
#   udppps   raw UDP loopback packets/s (C, gcc), for scale
#   ws       live event push (docs/events.md): WS_TENANTS x WS_USERS users registered to
#            tsps, WS_SESSIONS WebSocket sessions (load-tests/ws/client.mjs, Node) while
#            SIPp places calls at WS_CALL_RATES; delay SIP event -> client, loss, tsps
#            RSS and CPU per session; a plain Node WebSocket server (ws/floor.mjs) at the
#            same message rate as the floor. Not in the default list; see load-tests/ws/phase.sh.
#            PHASES=ws alone writes to results/<UTC date>-ws/.
#   presence SIP presence and portal watchers (docs/presence.md, docs/events.md):
#            PR_TENANTS x PR_USERS users registered to tsps, 0 then PR_LEVELS x users SIP
#            subscriptions (load-tests/presence/subscriber.py, Python) and portal
#            watchers (presence/watch.mjs) while presence/caller.py places calls at
#            PR_CALL_RATES; delay hook change -> NOTIFY and -> portal message, lost
#            notifications, tsps RSS and CPU per subscription. Not in the default list;
#            see load-tests/presence/phase.sh. PHASES=presence alone writes to
#            results/<UTC date>-presence/.
#   media    conference bridges (docs/media.md): MEDIA_LEVELS conferences of
#            MEDIA_PARTICIPANTS parties on tsps's media engine, in one process with its
#            load generator (load-tests/media/main.rs, a cargo example), against a plain
#            UDP echo and the generator alone; CPU per participant, loss, jitter, memory.
#            Not in the default list; see load-tests/media/phase.sh. PHASES=media alone
#            writes to results/<UTC date>-media/.
# Each rate phase ramps the offered rate until a step fails, bisects BISECT_STEPS times,
# then confirms the best passing rate with a run twice as long (backing off 10% when the
# confirm fails). A step PASSES when failed calls < 0.1% of attempted, all attempted calls
# completed, and the achieved rate (successful calls / SIPp's own elapsed time) >= 97% of
# the offered rate. Between steps the script waits for an idle machine and a fast host
# (speed probe), as the anchor does: the VM is shared and its speed drifts.
# ROUNDS=2 runs the phase list twice, the second time in reverse order, so that slow
# drifts of the host hit every target alike ("interleaved").
#
# Outputs: $OUTDIR (default load-tests/results/<UTC date>/): summary.csv (one row per
# step), max.txt, mem.csv, machine.txt, run.log, steps/<label>-r<rate>-<secs>s/ (SIPp
# stats, screens, first 20 KB of error logs). Summarised in docs/benchmarks.md.
#
# Bounds: every SIPp run has -m (calls) and -timeout, and is wrapped in coreutils
# `timeout`; tsps and Kamailio are stopped by PID at the end of each phase and on exit;
# RUN_MAX_SECONDS caps the whole run (remaining steps are skipped). Only processes this
# script started are stopped, each by its PID.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUTDIR=${OUTDIR:-$HERE/results/$(date -u +%Y-%m-%d)$(case "${PHASES:-}" in ws) echo -ws;; presence) echo -presence;; media) echo -media;; esac)}
RUNDIR=${RUNDIR:-/tmp/tsps-load}
STEP_SECONDS=${STEP_SECONDS:-10}
COOLDOWN=${COOLDOWN:-3}
BISECT_STEPS=${BISECT_STEPS:-3}
ROUNDS=${ROUNDS:-1}
RUN_MAX_SECONDS=${RUN_MAX_SECONDS:-9000}
PHASES=${PHASES:-"direct kam kamauth tsps overload regdirect regkam regtsps mem udppps"}
# overload phase: multiples of the maximum call rate (OVL_MAX, else the tsps phase's)
OVL_FACTORS=${OVL_FACTORS:-"1.25 1.5 2"}
OVL_SECONDS=${OVL_SECONDS:-16}
OVL_MAX=${OVL_MAX:-}
# offered-rate ramps (calls/s or REGISTERs/s) per phase
DIRECT_RATES=${DIRECT_RATES:-"2000 4000 8000 12000 16000 20000"}
KAM_RATES=${KAM_RATES:-"1000 2000 3000 4000 5000 6000 8000"}
KAMAUTH_RATES=${KAMAUTH_RATES:-"500 1000 2000 3000 4000 5000 6000"}
TS_RATES=${TS_RATES:-"250 500 1000 1500 2000 3000 4000 6000 8000"}
REGDIRECT_RATES=${REGDIRECT_RATES:-"2000 4000 8000 12000 16000 20000"}
REGKAM_RATES=${REGKAM_RATES:-"1000 2000 4000 6000 8000 10000 15000"}
REGTSPS_RATES=${REGTSPS_RATES:-"500 1000 2000 4000 6000 8000 10000 15000"}
# users: extensions 1000 .. 1000+NUSERS-1 in tenant DOMAIN, password "loadpw<ext>"; user i
# calls user i+NUSERS/2 (mod NUSERS). Extensions stay 4 digits (5+ digits dial out).
NUSERS=${NUSERS:-2000}
DOMAIN=${DOMAIN:-a.test}
POP_RATE=${POP_RATE:-500}            # REGISTERs/s used to fill the location tables
# memory phase: MEM_CALLS calls set up at MEM_RATE/s and held MEM_HOLD_S seconds
MEM_CALLS=${MEM_CALLS:-2000}
MEM_RATE=${MEM_RATE:-200}
MEM_HOLD_S=${MEM_HOLD_S:-25}
MEM_SETTLE_S=${MEM_SETTLE_S:-5}
# then two rounds of MEM_CHURN_CALLS short calls at MEM_CHURN_RATE/s, each followed by
# MEM_CHURN_SETTLE_S s of quiet: memory still held per ended call after round 1, and what
# round 2 adds on top (about 0 when round 1's memory is reused rather than leaked).
# The settle time exceeds 64*T1 = 32 s, the longest a finished transaction may be kept.
MEM_CHURN_CALLS=${MEM_CHURN_CALLS:-30000}
MEM_CHURN_RATE=${MEM_CHURN_RATE:-1000}
MEM_CHURN_SETTLE_S=${MEM_CHURN_SETTLE_S:-45}
KAM_CHILDREN=${KAM_CHILDREN:-4}
KAM_SHM_MB=${KAM_SHM_MB:-1024}
KAM_PKG_MB=${KAM_PKG_MB:-16}
WARMUP_SECONDS=${WARMUP_SECONDS:-10}   # warm-up step per server phase (not counted); 0 = none
# Shared machine: wait (at most QUIET_MAX_WAIT s) for QUIET_SECS s with < QUIET_PCT % of
# one core busy before each step; repeat a failed step (up to MAX_ATTEMPTS) when other
# tenants used more than FOREIGN_MAX % of a core during it or the host slowed down.
QUIET_PCT=${QUIET_PCT:-10}
QUIET_SECS=${QUIET_SECS:-3}
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-60}
FOREIGN_MAX=${FOREIGN_MAX:-10}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-3}
NICE_LVL=${NICE_LVL:--19}
# Host speed gate (the anchor's probe): ALU Mops/s >= PROBE_MIN_ALU and ns per random
# memory access <= PROBE_MAX_NS, waiting up to HOST_WAIT_MAX s.
PROBE_MIN_ALU=${PROBE_MIN_ALU:-350}
PROBE_MAX_NS=${PROBE_MAX_NS:-200}
HOST_WAIT_MAX=${HOST_WAIT_MAX:-120}
# tsps: release binary (built here unless TS_BIN is given), extra TSPS_* settings
TS_BIN=${TS_BIN:-}
TS_ENV=${TS_ENV:-}               # e.g. "TSPS_SIP__WORKERS=2"
TS_WRAP=${TS_WRAP:-}             # a command tsps serve runs under (the profile phase: callgrind)
KAM_WRAP=${KAM_WRAP:-}           # the same for Kamailio
START_WAIT=${START_WAIT:-30}     # seconds a server may take to become ready
# More of tsps's configuration. SIPp signs every INVITE for the server's address (its
# -auth_uri is one value for all calls), which tsps refuses unless told otherwise.
TS_TOML_EXTRA=${TS_TOML_EXTRA:-'[security.auth]
allow_server_digest_uri = true'}
# ws phase (load-tests/ws/phase.sh): tenants t0.ws.test.., users 1000.. in each (user i
# calls user i + WS_USERS/2 of its tenant); session counts measured in turn (0 = tsps
# alone, the baseline; each count must divide WS_TENANTS*WS_USERS into a stride that
# divides WS_USERS/2); at each count: WS_IDLE_S s idle, then WS_CALL_SECONDS s of calls
# at each of WS_CALL_RATES (calls/s, each held WS_HOLD_MS); sessions open at WS_OPEN_RATE/s
WS_TENANTS=${WS_TENANTS:-10}
WS_USERS=${WS_USERS:-1000}
WS_SESSIONS=${WS_SESSIONS:-"0 100 1000 10000"}
WS_CALL_RATES=${WS_CALL_RATES:-"50 200"}
WS_CALL_SECONDS=${WS_CALL_SECONDS:-30}
WS_HOLD_MS=${WS_HOLD_MS:-2000}
WS_IDLE_S=${WS_IDLE_S:-35}
WS_OPEN_RATE=${WS_OPEN_RATE:-500}
WS_FLOOR=${WS_FLOOR:-1}          # 1 = measure the Node WebSocket floor after tsps
SIPP_BUF=${SIPP_BUF:-4194304}
SIPP_BEHAV="${SIPP_BEHAV:--default_behaviors all,-abortunexp} -buff_size $SIPP_BUF"

IP=127.0.0.1
UAC_PORT=${UAC_PORT:-5070}
KAM_PORT=${KAM_PORT:-5080}
UAS_PORT=${UAS_PORT:-5090}
TS_PORT=${TS_PORT:-5100}
TS_HTTP=${TS_HTTP:-8190}
CTL_SOCK="$RUNDIR/kamailio_ctl"
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
T_START=$(date +%s)

mkdir -p "$OUTDIR/steps" "$RUNDIR"
SUMMARY="$OUTDIR/summary.csv"
MEMCSV="$OUTDIR/mem.csv"
LOG="$OUTDIR/run.log"
exec > >(tee -a "$LOG") 2>&1

# ---------- servers under test (one at a time) ----------
SRV=""       # kam | tsps | "" (direct)
SRV_PID=""
stop_server() {
  if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
    kill "$SRV_PID" 2>/dev/null   # SIGTERM; Kamailio's main process stops its children
    local i
    for i in $(seq 1 150); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$SRV_PID" 2>/dev/null && { echo "  $SRV pid $SRV_PID ignored SIGTERM for 30 s; SIGKILL"; kill -9 "$SRV_PID" 2>/dev/null; }
    wait "$SRV_PID" 2>/dev/null
  fi
  SRV=""; SRV_PID=""
}
stop_all() { declare -F presence_stop > /dev/null && presence_stop; stop_server; }
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT TERM

srv_pids() {
  [ -n "$SRV_PID" ] || return 0
  echo "$SRV_PID"
  [ "$SRV" = kam ] && ps -o pid= --ppid "$SRV_PID" 2>/dev/null
  return 0
}
srv_port() { case $SRV in kam) echo "$KAM_PORT";; tsps) echo "$TS_PORT";; *) echo "$UAS_PORT";; esac; }
rss_kb() { awk '/^VmRSS:/{print $2; exit}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/{print $2; exit}' "/proc/$1/status" 2>/dev/null || echo 0; }

time_left() { [ $(( $(date +%s) - T_START )) -lt "$RUN_MAX_SECONDS" ]; }

need() {
  local pkgs=""
  command -v sipp >/dev/null || pkgs="$pkgs sip-tester"
  local kam=0 t; echo "$PHASES" | grep -qwE 'kam|kamauth|regkam|profile' && kam=1
  [ "$kam" = 1 ] && { command -v kamailio >/dev/null || pkgs="$pkgs kamailio"; }
  echo "$PHASES" | grep -qwE 'ws|presence' && { command -v jq >/dev/null || pkgs="$pkgs jq"; }
  echo "$PHASES" | grep -qw profile && { command -v valgrind >/dev/null || pkgs="$pkgs valgrind"; }
  [ -x /usr/bin/time ] || pkgs="$pkgs time"
  command -v gcc >/dev/null || pkgs="$pkgs gcc"
  command -v curl >/dev/null || pkgs="$pkgs curl"
  if [ -n "$pkgs" ]; then
    echo "installing Debian packages:$pkgs"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs
  fi
  for t in sipp /usr/bin/time awk sort ss curl gcc timeout $([ "$kam" = 1 ] && echo kamailio kamcmd); do
    command -v "$t" >/dev/null || { echo "missing $t"; exit 1; }
  done
  echo "$PHASES" | grep -qw ws && ws_need
  echo "$PHASES" | grep -qw presence && presence_need
  local p
  for p in "$UAC_PORT" "$KAM_PORT" "$UAS_PORT" "$TS_PORT"; do
    if ss -Hlun | awk '{print $4}' | grep -qE "^(127\.0\.0\.1|0\.0\.0\.0|\*):$p\$"; then
      echo "UDP port $p is busy on loopback; aborting"; exit 1
    fi
  done
  if echo "$PHASES" | grep -qwE 'tsps|overload|regtsps|mem|ws|presence|profile'; then build_tsps; fi
}

build_tsps() {
  if [ -z "$TS_BIN" ]; then
    echo "building tsps (cargo build --release --bin tsps)"
    ( cd "$REPO" && nice -n 10 cargo build --release --bin tsps ) || { echo "tsps build failed"; exit 1; }
    TS_BIN="$REPO/target/release/tsps"
  fi
  [ -x "$TS_BIN" ] || { echo "no tsps binary at $TS_BIN"; exit 1; }
  # run a private copy: a rebuild in the shared target directory must not swap the
  # binary between phases
  cp "$TS_BIN" "$RUNDIR/tsps.bin" && TS_BIN="$RUNDIR/tsps.bin"
}

machine_notes() {
  {
    echo "date_utc: $(date -u +%FT%TZ)"
    echo "kernel: $(uname -srm)"
    echo "os: $(. /etc/os-release; echo "$PRETTY_NAME")"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $NCPU (lscpu: $(lscpu | awk -F: '/^Hypervisor vendor/{gsub(/ /,"",$2);print "hypervisor="$2}'))"
    echo "mem: $(free -m | awk '/^Mem:/{print $2" MiB"}')"
    echo "sipp: $(sipp -v 2>&1 | grep -m1 SIPp | sed 's/^ *//')"
    echo "kamailio: $(command -v kamailio >/dev/null && kamailio -v 2>&1 | head -1)"
    [ -n "$TS_BIN" ] && echo "tsps: $("$TS_BIN" --version 2>&1 | head -1), git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+dirty')"
    echo "net.core.rmem_max=$(cat /proc/sys/net/core/rmem_max) net.core.rmem_default=$(cat /proc/sys/net/core/rmem_default)"
    echo "PHASES=$PHASES ROUNDS=$ROUNDS STEP_SECONDS=$STEP_SECONDS BISECT_STEPS=$BISECT_STEPS NUSERS=$NUSERS"
    echo "NICE_LVL=$NICE_LVL QUIET_PCT=$QUIET_PCT QUIET_SECS=$QUIET_SECS QUIET_MAX_WAIT=$QUIET_MAX_WAIT FOREIGN_MAX=$FOREIGN_MAX HOST_WAIT_MAX=$HOST_WAIT_MAX"
    echo "KAM_CHILDREN=$KAM_CHILDREN shm=${KAM_SHM_MB}MB pkg=${KAM_PKG_MB}MB WARMUP_SECONDS=$WARMUP_SECONDS TS_ENV=$TS_ENV"
    echo "MEM_CALLS=$MEM_CALLS MEM_RATE=$MEM_RATE MEM_HOLD_S=$MEM_HOLD_S MEM_CHURN_CALLS=$MEM_CHURN_CALLS MEM_CHURN_RATE=$MEM_CHURN_RATE"
  } | tee -a "$OUTDIR/machine.txt"
}

# ---------- CPU accounting (from the anchor) ----------
proc_ticks() {  # utime+stime (ticks) summed over the given pids (threads included)
  local t=0 p v
  for p in "$@"; do
    v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null) && t=$((t + v))
  done
  echo "$t"
}
udp_errs() { awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $4+0, $6+0; exit}' /proc/net/snmp; }
sys_ticks() { awk '/^cpu /{print $2+$3, $4, $5+$6, $7+$8, $9; exit}' /proc/stat; }
busy_total() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }
wait_quiet() {
  [ "$QUIET_MAX_WAIT" -gt 0 ] || return 0
  local run=0 waited=0 a b pct
  while [ "$waited" -lt "$QUIET_MAX_WAIT" ]; do
    a=$(busy_total); sleep 1; b=$(busy_total); waited=$((waited + 1))
    pct=$(echo "$a $b" | awk -v n="$NCPU" '{t=$4-$2; if(t<=0)t=1; printf "%d", ($3-$1)/t*100*n}')
    if [ "$pct" -lt "$QUIET_PCT" ]; then run=$((run + 1)); else run=0; fi
    [ "$run" -ge "$QUIET_SECS" ] && { [ "$waited" -gt "$QUIET_SECS" ] && echo "  (waited ${waited}s for an idle machine)"; return 0; }
  done
  echo "  (machine not idle after ${QUIET_MAX_WAIT}s; measuring anyway)"
}

# ---------- host speed probe (from the anchor) ----------
build_probe() {
  cat > "$RUNDIR/speedprobe.c" <<'CEOF'
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(void){
  uint64_t x=88172645463325252ULL; long n=60000000; double t0=now();
  for(long i=0;i<n;i++){ x^=x<<13; x^=x>>7; x^=x<<17; }
  double alu=n/(now()-t0)/1e6;
  size_t m=(32u<<20)/sizeof(size_t); size_t *a=malloc(m*sizeof(size_t));
  for(size_t i=0;i<m;i++) a[i]=i;
  for(size_t i=m-1;i>0;i--){ x^=x<<13; x^=x>>7; x^=x<<17; size_t j=x%i; size_t t=a[i]; a[i]=a[j]; a[j]=t; }
  size_t p=0; long k=3000000; t0=now(); for(long i=0;i<k;i++) p=a[p];
  double ns=(now()-t0)/k*1e9;
  printf("%.0f %.1f %lu\n", alu, ns, (unsigned long)(p+(x&1)));
  return 0; }
CEOF
  gcc -O2 -o "$RUNDIR/speedprobe" "$RUNDIR/speedprobe.c"
}
PROBE=","; PRE_PROBE=","
probe() {  # PROBE="alu_mops,mem_ns", the slowest of NCPU parallel runs
  [ -x "$RUNDIR/speedprobe" ] || { PROBE=","; return; }
  local i f="$RUNDIR/.probe" pids=""; : > "$f"
  for i in $(seq 1 "$NCPU"); do timeout 30 "$RUNDIR/speedprobe" >> "$f" & pids="$pids $!"; done
  for i in $pids; do wait "$i"; done
  PROBE=$(awk 'NR==1||$1<a{a=$1} NR==1||$2>m{m=$2} END{printf "%d,%.1f", a, m}' "$f")
}
host_fast() { echo "$PROBE" | awk -F, -v a="$PROBE_MIN_ALU" -v n="$PROBE_MAX_NS" '{exit !($1 >= a && $2 <= n)}'; }
host_gate() {
  local waited=0
  probe
  while ! host_fast; do
    if [ "$waited" -ge "$HOST_WAIT_MAX" ]; then echo "  (host slow, probe $PROBE; measuring anyway)"; return; fi
    sleep 15; waited=$((waited + 16)); probe
  done
  [ "$waited" -gt 0 ] && echo "  (waited ${waited}s for the host to speed up, probe $PROBE)"
  return 0
}

# ---------- users, Kamailio, tsps ----------
make_users() {
  [ "$NUSERS" -ge 2 ] && [ "$NUSERS" -le 8999 ] || { echo "NUSERS must be 2..8999 (4-digit extensions)"; exit 1; }
  awk -v n="$NUSERS" -v c="$IP:$UAS_PORT" 'BEGIN{ print "SEQUENTIAL";
      for (i = 0; i < n; i++) { u = 1000 + i; v = 1000 + (i + int(n / 2)) % n;
        printf "%d;loadpw%d;%d;%s;[authentication username=%d password=loadpw%d]\n", u, u, v, c, u, u } }' > "$RUNDIR/users.csv"
}

start_kamailio() {  # start_kamailio NAME [define...]
  stop_server
  local name=$1; shift
  rm -f "$CTL_SOCK"
  local defs=(-A "CHILDREN=$KAM_CHILDREN" -A "CTL_SOCK=\"unix:$CTL_SOCK\"" -A "UAS_ADDR=\"$IP:$UAS_PORT\"")
  local d; for d in "$@"; do defs+=(-A "$d"); done
  # shellcheck disable=SC2086  # KAM_WRAP is a command line
  nice -n "$NICE_LVL" $KAM_WRAP kamailio -f "$HERE/kamailio.cfg" "${defs[@]}" -m "$KAM_SHM_MB" -M "$KAM_PKG_MB" \
    -E -DD -w "$RUNDIR" -P "$RUNDIR/kamailio.pid" > "$OUTDIR/kamailio-$name.log" 2>&1 &
  SRV_PID=$!; SRV=kam
  local i
  for i in $(seq 1 $((START_WAIT * 5))); do
    ss -Hlun | grep -q "$IP:$KAM_PORT " && [ -S "$CTL_SOCK" ] && break
    sleep 0.2
  done
  ss -Hlun | grep -q "$IP:$KAM_PORT " || { echo "kamailio did not start"; cat "$OUTDIR/kamailio-$name.log"; exit 1; }
  echo "kamailio ($name) started pid=$SRV_PID ($(srv_pids | wc -l) processes): ${defs[*]}"
}
kamrpc() { timeout 10 kamcmd -s "unix:$CTL_SOCK" "$@" 2>/dev/null; }
kam_shm_used() { kamrpc core.shmmem | awk '/used/{print $2; exit}'; }

tsps_yaml() {  # provisioning document: one tenant, NUSERS users with one device each
  awk -v n="$NUSERS" -v d="$DOMAIN" 'BEGIN{
      print "tenants:"; print "  - domain: " d; print "    name: Load test"; print "    time_zone: UTC"; print "    users:";
      for (i = 0; i < n; i++) { u = 1000 + i;
        printf "      - extension: \"%d\"\n        display_name: User %d\n        devices:\n          - sip_username: \"%d\"\n            password: loadpw%d\n", u, u, u, u } }'
}
start_tsps() {  # start_tsps NAME [YAML_FN]: fresh database, provisioned (tsps_yaml), serving
  stop_server
  local name=$1 yaml_fn=${2:-tsps_yaml} dir="$RUNDIR/tsps-$1"
  rm -rf "$dir"; mkdir -p "$dir"
  cat > "$dir/tsps.toml" <<EOF
[sip]
udp_listen = "$IP:$TS_PORT"
tcp_listen = "$IP:$TS_PORT"
# SIPp 3.6 answers only the first challenge and knows only MD5
digest_algorithms = ["MD5", "SHA-256"]
$TS_TOML_EXTRA
[http]
listen = "$IP:$TS_HTTP"
api_token = "load-test"
[database]
url = "sqlite://$dir/tsps.db"
[log]
level = "warn"
EOF
  "$yaml_fn" > "$dir/provision.yaml"
  # tsps reads every TSPS_* variable as configuration: pass only TS_ENV's
  local env_args=() kv
  for kv in $(env | awk -F= '/^TSPS_/{print $1}'); do env_args+=(-u "$kv"); done
  for kv in $TS_ENV; do env_args+=("$kv"); done
  if ! env "${env_args[@]}" timeout 300 "$TS_BIN" --config "$dir/tsps.toml" provision apply "$dir/provision.yaml" > "$OUTDIR/tsps-$name-provision.log" 2>&1; then
    echo "tsps provision apply failed:"; tail -20 "$OUTDIR/tsps-$name-provision.log"; exit 1
  fi
  # shellcheck disable=SC2086  # TS_WRAP is a command line
  env "${env_args[@]}" nice -n "$NICE_LVL" $TS_WRAP "$TS_BIN" --config "$dir/tsps.toml" serve > "$OUTDIR/tsps-$name.log" 2>&1 &
  SRV_PID=$!; SRV=tsps
  local i
  for i in $(seq 1 $((START_WAIT * 5))); do
    curl -fsS -m 1 "http://$IP:$TS_HTTP/healthz" >/dev/null 2>&1 && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.2
  done
  curl -fsS -m 1 "http://$IP:$TS_HTTP/healthz" >/dev/null 2>&1 || { echo "tsps did not become ready"; tail -30 "$OUTDIR/tsps-$name.log"; exit 1; }
  echo "tsps ($name) started pid=$SRV_PID rss=$(rss_kb "$SRV_PID") KB"
}

# ---------- one measurement step ----------
# step KIND LABEL RATE [SECONDS] [HOLD_MS]
#   KIND call : uac.xml       -> $SRV or the SIPp uas directly; SIPp uas answers
#        acall: uac_auth.xml  -> $SRV (kam in WITH_AUTH mode, or tsps); SIPp uas answers
#        areg : register_auth.xml -> $SRV, or reg_uas_auth.xml directly
STEP_PASS=0; STEP_FOREIGN=0; STEP_SUCC=0
# scenarios and users of acall/areg steps (the ws phase swaps in its multi-tenant ones)
ACALL_SF=$HERE/uac_auth.xml; AREG_SF=$HERE/register_auth.xml; USERS_CSV=$RUNDIR/users.csv
SKIPPED=0
COLS="label,kind,target,rate,secs,calls,success,failed,retrans,wall_s,sipp_elapsed_s,eff_rate,n_180,p50_180_ms,p90_180_ms,p99_180_ms,p999_180_ms,max_180_ms,n_final,p50_final_ms,p90_final_ms,p99_final_ms,p999_final_ms,max_final_ms,uac_cpu_pct,uas_cpu_pct,srv_cpu_pct,uac_us_per_call,uas_us_per_call,srv_us_per_call,srv_rss_kb,srv_hwm_kb,sys_user_pct,sys_system_pct,sys_irq_softirq_pct,sys_idle_pct,foreign_cpu_pct,unexp_uac,unexp_uas,udp_rcvbuf_errors,probe_alu_mops,probe_mem_ns,post_alu_mops,post_mem_ns,uac_rc,pass"
step() {
  if ! time_left; then
    [ "$SKIPPED" = 0 ] && echo "RUN_MAX_SECONDS=$RUN_MAX_SECONDS reached: skipping the remaining steps"
    SKIPPED=1; STEP_PASS=0; return 0
  fi
  local a
  for a in $(seq 1 "$MAX_ATTEMPTS"); do
    wait_quiet
    host_gate
    PRE_PROBE=$PROBE
    step_once "$@"
    [ "$STEP_PASS" = 1 ] && return 0
    probe
    if ! host_fast && [ "$HOST_WAIT_MAX" -gt 0 ]; then
      echo "  failed step with the host slowed down afterwards (probe $PROBE; attempt $a/$MAX_ATTEMPTS), repeating"; continue
    fi
    awk -v f="$STEP_FOREIGN" -v m="$FOREIGN_MAX" 'BEGIN{exit !(f <= m)}' && return 0
    echo "  failed step disturbed: foreign CPU ${STEP_FOREIGN}% of a core > ${FOREIGN_MAX}% (attempt $a/$MAX_ATTEMPTS), repeating"
  done
}

# percentiles of one timer from SIPp's *_rtt.csv files: "n,p50,p90,p99,p99.9,max" (ms)
rtt_stats() {  # rtt_stats DIR REGEX_ON_NAME
  cat "$1"/*_rtt.csv 2>/dev/null | awk -F';' -v re="$2" 'NR>0 && $2 ~ /^[0-9.]+$/ && $3 ~ re {print $2}' | sort -n | awk '
      {v[NR]=$1}
      END{n=NR; if(n==0){print "0,-,-,-,-,-"; exit}
        i50=int(n*0.50); i90=int(n*0.90); i99=int(n*0.99); i999=int(n*0.999);
        if (i50 < 1) i50 = 1; if (i90 < 1) i90 = 1; if (i99 < 1) i99 = 1; if (i999 < 1) i999 = 1;
        printf "%d,%s,%s,%s,%s,%s", n, v[i50], v[i90], v[i99], v[i999], v[n]}'
}

step_once() {
  local kind=$1 label=$2 rate=$3 secs=${4:-$STEP_SECONDS} hold_ms=${5:-0}
  local calls=$((rate * secs))
  local d="$OUTDIR/steps/${label}-r${rate}-${secs}s"
  rm -rf "$d"; mkdir -p "$d"
  local hold_s=$(( (hold_ms + 999) / 1000 ))
  local tmo=$((secs * 3 + 15 + hold_s)) port; port=$(srv_port)
  local target="$IP:$port" tname=${SRV:-direct}

  # responder: the SIPp UAS for calls; reg_uas_auth.xml for REGISTER without a server
  local rpid="" rtime="$d/uas.time" rscen=()
  case $kind in
    call|acall|ocall) rscen=(-sn uas) ;;
    areg) [ -z "$SRV" ] && rscen=(-sf "$HERE/reg_uas_auth.xml") ;;
  esac
  if [ ${#rscen[@]} -gt 0 ]; then
    ( cd "$d" && exec nice -n "$NICE_LVL" /usr/bin/time -f '%e %U %S' -o "$rtime" \
        timeout -k 5 "$((tmo + 35))" sipp "${rscen[@]}" -i $IP -p "$UAS_PORT" -m "$calls" -timeout "$((tmo + 10))" -nostdin $SIPP_BEHAV \
             -trace_screen -screen_file uas_screen.log -trace_err -error_file uas_err.log \
             > /dev/null 2> uas.stderr ) &
    rpid=$!
    sleep 0.3
  fi

  local sp; sp=$(srv_pids | tr '\n' ' ')
  local k0 s0 t0 t1 k1 s1 u0 u1
  u0=$(udp_errs); k0=$(proc_ticks $sp); s0=$(sys_ticks); t0=$(date +%s.%N)

  local scen=()
  case $kind in
    call)  scen=(-sf "$HERE/uac.xml" -s service) ;;
    acall) scen=(-sf "$ACALL_SF" -inf "$USERS_CSV" -key domain "$DOMAIN") ;;
    ocall) scen=(-sf "$HERE/uac_auth_overload.xml" -inf "$USERS_CSV" -key domain "$DOMAIN") ;;
    areg)  scen=(-sf "$AREG_SF" -inf "$USERS_CSV" -key domain "$DOMAIN" -key expires 3600 -auth_uri "$DOMAIN") ;;
  esac
  ( cd "$d" && exec nice -n "$NICE_LVL" /usr/bin/time -f '%e %U %S' -o "$d/uac.time" \
      timeout -k 5 "$((tmo + 25))" sipp "$target" "${scen[@]}" -i $IP -p "$UAC_PORT" -r "$rate" -rp 1000 -m "$calls" -d "$hold_ms" $SIPP_BEHAV \
           -timeout "$tmo" -nostdin -trace_stat -stf uac_stat.csv -fd 1 \
           -trace_rtt -rtt_freq 100 -trace_screen -screen_file uac_screen.log \
           -trace_err -error_file uac_err.log > /dev/null 2> uac.stderr ) &
  local upid=$!
  MEM_SAMPLES=""
  if [ -n "${SAMPLE_RSS:-}" ] && [ "$SRV" = tsps ]; then
    # memory phase: one RSS sample per second while the calls are set up and held
    while kill -0 "$upid" 2>/dev/null; do
      MEM_SAMPLES="$MEM_SAMPLES $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}'):$(rss_kb "$SRV_PID")"
      sleep 1
    done
  fi
  wait "$upid"; local uac_rc=$?
  t1=$(date +%s.%N); k1=$(proc_ticks $sp); s1=$(sys_ticks); u1=$(udp_errs)
  local rss=0 hwm=0
  if [ -n "$SRV_PID" ]; then
    rss=$(rss_kb "$SRV_PID"); hwm=$(hwm_kb "$SRV_PID")
    [ "$SRV" = kam ] && { kamrpc core.shmmem > "$d/kam_shmmem.txt"; kamrpc tm.stats > "$d/kam_tm_stats.txt"; }
  fi

  # let the responder finish (SIPp waits ~4 s for retransmissions), stop it by pid if it hangs
  if [ -n "$rpid" ]; then
    local i
    for i in $(seq 1 40); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$rpid" 2>/dev/null; then
      local cp; cp=$(ps -o pid= --ppid "$rpid" | head -1)
      [ -n "$cp" ] && kill "$cp" 2>/dev/null
    fi
    wait "$rpid" 2>/dev/null
  fi

  probe; local post_probe=$PROBE
  local last; last=$(tail -1 "$d/uac_stat.csv" 2>/dev/null)
  local succ failed retrans
  succ=$(echo "$last" | awk -F';' '{print $16+0}')
  failed=$(echo "$last" | awk -F';' '{print $18+0}')
  retrans=$(echo "$last" | awk -F';' '{print $58+0}')
  STEP_SUCC=$succ
  local rcvbuf_err; rcvbuf_err=$(echo "$u0 $u1" | awk '{print $4-$2}')
  local unexp_uac unexp_uas
  unexp_uac=$(grep -c 'unexpected message' "$d/uac_err.log" 2>/dev/null); unexp_uac=${unexp_uac:-0}
  unexp_uas=$(grep -c 'unexpected message' "$d/uas_err.log" 2>/dev/null); unexp_uas=${unexp_uas:-0}
  local wall; wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  # achieved rate = successful calls / SIPp's own run time (start -> final statistics dump)
  local sipp_el; sipp_el=$(echo "$last" | awk -F';' '{split($1,a,"\t"); split($3,b,"\t"); printf "%.3f", b[3]-a[3]}')
  awk -v e="$sipp_el" 'BEGIN{exit !(e > 0)}' || sipp_el=$wall
  # a held call (memory phase) adds its hold time to SIPp's elapsed time
  local eff; eff=$(awk -v s="$succ" -v w="$sipp_el" -v h="$hold_ms" 'BEGIN{w -= h/1000; printf "%.1f", (w>0)?s/w:0}')
  # timers: inv180 = INVITE -> 180; "final" = INVITE -> 200 (calls) or REGISTER -> 200
  local rt180 rtfin
  rt180=$(rtt_stats "$d" '^inv180$')
  rtfin=$(rtt_stats "$d" '^(inv200|reg|1)$')
  local uac_t uas_t
  uac_t=$(tail -1 "$d/uac.time" 2>/dev/null | awk '{print $2+$3}'); uac_t=${uac_t:-0}
  uas_t=$(tail -1 "$rtime" 2>/dev/null | awk '{print $2+$3}'); uas_t=${uas_t:-0}
  local cpu; cpu=$(awk -v u="$uac_t" -v s="$uas_t" -v k0="$k0" -v k1="$k1" -v hz="$HZ" -v w="$wall" -v n="$succ" 'BEGIN{
        kk=(k1-k0)/hz; if (n<1) n=1;
        printf "%.1f,%.1f,%.1f,%.1f,%.1f,%.1f", u/w*100, s/w*100, kk/w*100, u/n*1e6, s/n*1e6, kk/n*1e6}')
  local sysline; sysline=$(echo "$s0 $s1" | awk -v n="$NCPU" '{tot=0; for(i=1;i<=5;i++){d[i]=$(i+5)-$i; tot+=d[i]} if(tot==0)tot=1;
        printf "%.1f,%.1f,%.1f,%.1f", d[1]/tot*100*n, d[2]/tot*100*n, d[4]/tot*100*n, d[3]/tot*100*n}')
  # CPU used by anything else during the step (other tenants of a shared machine), % of
  # one core: machine-wide busy time minus this step's SIPp and server processes.
  # Caveat: on the Firecracker VM of 2026-11 /proc/stat's busy time came out far below
  # the sum of the per-process times, so this read 0 and the sys_* columns are not
  # trustworthy there (see docs/benchmarks.md); per-process CPU (/proc/PID/stat and
  # /usr/bin/time) is what the results use.
  local foreign; foreign=$(echo "$s0 $s1" | awk -v hz="$HZ" -v w="$wall" -v u="$uac_t" -v s="$uas_t" -v k0="$k0" -v k1="$k1" '{
        busy=($6-$1)+($7-$2)+($9-$4); f=busy/hz-u-s-(k1-k0)/hz; if (f<0) f=0; printf "%.1f", f/w*100}')
  STEP_FOREIGN=$foreign
  local pass=0
  awk -v s="$succ" -v f="$failed" -v c="$calls" -v e="$eff" -v r="$rate" \
     'BEGIN{exit !((f < 0.001*c) && (s >= c - 0.001*c) && (e >= 0.97*r))}' && pass=1
  STEP_PASS=$pass
  rm -f "$d"/*_rtt.csv
  local f; for f in "$d"/*_err.log; do [ -f "$f" ] && { head -c 20000 "$f" > "$f.tmp"; mv "$f.tmp" "$f"; }; done
  echo "$label,$kind,$tname,$rate,$secs,$calls,$succ,$failed,$retrans,$wall,$sipp_el,$eff,$rt180,$rtfin,$cpu,$rss,$hwm,$sysline,$foreign,$unexp_uac,$unexp_uas,$rcvbuf_err,$PRE_PROBE,$post_probe,$uac_rc,$pass" >> "$SUMMARY"
  printf '%-16s %-5s rate=%-6s calls=%-7s ok=%-7s fail=%-5s retr=%-6s eff=%-8s 180(n,p50,p90,p99,p99.9,max)=%s final=%s cpu(uac%%,uas%%,srv%%,uac_us,uas_us,srv_us)=%s rss=%sKB foreign=%s%% unexp=%s/%s rcvbuf_err=%s probe=%s pass=%s\n' \
    "$label" "$kind" "$rate" "$calls" "$succ" "$failed" "$retrans" "$eff" "$rt180" "$rtfin" "$cpu" "$rss" "$foreign" "$unexp_uac" "$unexp_uas" "$rcvbuf_err" "$PRE_PROBE/$post_probe" "$pass"
  [ -n "$SRV" ] && sleep "$COOLDOWN"
  return 0
}

# ramp, bisect, confirm; appends "MAX label rate" to max.txt
find_max() {  # find_max KIND LABEL "rates"
  local kind=$1 label=$2 rates=$3 lo=0 hi=0 r
  for r in $rates; do
    step "$kind" "$label" "$r"
    [ "$SKIPPED" = 1 ] && { echo "MAX $label skipped (time budget)" | tee -a "$OUTDIR/max.txt"; return; }
    if [ "$STEP_PASS" = 1 ]; then lo=$r; else hi=$r; break; fi
  done
  local i mid
  if [ "$hi" != 0 ]; then
    for i in $(seq 1 "$BISECT_STEPS"); do
      mid=$(( (lo + hi) / 2 / 50 * 50 ))
      [ "$mid" -le "$lo" ] && break
      step "$kind" "$label" "$mid"
      if [ "$STEP_PASS" = 1 ]; then lo=$mid; else hi=$mid; fi
    done
  fi
  for i in 1 2 3 4 5; do
    [ "$lo" -gt 0 ] || break
    step "$kind" "$label-confirm" "$lo" $((STEP_SECONDS * 2))
    [ "$STEP_PASS" = 1 ] && break
    hi=$lo   # the longer run failed here: the maximum is below
    lo=$(( lo * 9 / 10 / 50 * 50 ))
  done
  if [ "$hi" = 0 ]; then
    echo "MAX $label >= $lo (ramp list exhausted)" | tee -a "$OUTDIR/max.txt"
  else
    echo "MAX $label $lo (first failing step $hi)" | tee -a "$OUTDIR/max.txt"
  fi
}

warmup() {  # warmup KIND LABEL RATE
  [ "$WARMUP_SECONDS" -gt 0 ] || return 0
  step "$1" "$2-warmup" "$3" "$WARMUP_SECONDS"
}
first_rate() { echo "$1" | awk '{print $1}'; }

populate() {  # populate LABEL: register every user once (REGISTER + digest) to $SRV
  local secs=$(( (NUSERS + POP_RATE - 1) / POP_RATE ))
  step areg "$1-populate" "$POP_RATE" "$secs"
  if [ "$STEP_SUCC" -lt "$NUSERS" ]; then
    echo "  populate registered only $STEP_SUCC of $NUSERS users"
  fi
}

# ---------- overload phase (tsps) ----------
# One column of SIPp's last statistics line, by its header name (e.g. "FailedCall(C)").
sipp_col() {  # sipp_col STATFILE NAME
  awk -F';' -v n="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==n) c=i} END{if(c) print $c+0; else print 0}' "$1" 2>/dev/null
}
overload_phase() {
  local max=$OVL_MAX
  if [ -z "$max" ]; then
    max=$(awk '/^MAX tsps(-round[0-9]+)? [0-9]+/{m=$3} END{print m+0}' "$OUTDIR/max.txt" 2>/dev/null)
  fi
  if [ -z "$max" ] || [ "$max" = 0 ]; then echo "overload: no maximum (run the tsps phase first or set OVL_MAX)"; return; fi
  start_tsps overload
  populate tsps-overload
  warmup acall tsps-overload "$(first_rate "$TS_RATES")"
  local csv="$OUTDIR/overload.csv"
  [ -s "$csv" ] || echo "max_rate,factor,offered_rate,secs,created,answered,refused_503,failed,incomplete,goodput_per_s,goodput_vs_max,p99_180_ms,srv_us_per_call,srv_rss_kb" > "$csv"
  local f rate d st created ok refused failed incomplete goodput
  for f in $OVL_FACTORS; do
    rate=$(awk -v m="$max" -v f="$f" 'BEGIN{printf "%d", m*f}')
    step_once ocall "tsps-overload-x$f" "$rate" "$OVL_SECONDS"
    d="$OUTDIR/steps/tsps-overload-x$f-r$rate-${OVL_SECONDS}s"; st="$d/uac_stat.csv"
    created=$(sipp_col "$st" "OutgoingCall(C)")
    ok=$(sipp_col "$st" "SuccessfulCall(C)")
    refused=$(sipp_col "$st" "GenericCounter1(C)")
    failed=$(sipp_col "$st" "FailedCall(C)")
    incomplete=$(( created - ok - failed ))
    local row; row=$(tail -1 "$SUMMARY")
    # per second of SIPp's own run (the offered period plus the tail of late answers)
    local el; el=$(echo "$row" | awk -F, '{print $11}')
    goodput=$(awk -v a="$ok" -v r="$refused" -v s="$el" 'BEGIN{printf "%.1f", (s>0)?(a-r)/s:0}')
    local p99 us rss
    p99=$(echo "$row" | awk -F, '{print $16}'); us=$(echo "$row" | awk -F, '{print $30}'); rss=$(echo "$row" | awk -F, '{print $31}')
    echo "$max,$f,$rate,$OVL_SECONDS,$created,$ok,$refused,$failed,$incomplete,$goodput,$(awk -v g="$goodput" -v m="$max" 'BEGIN{printf "%.2f", g/m}'),$p99,$us,$rss" | tee -a "$csv"
  done
  stop_server
}

# ---------- memory phase (tsps) ----------
mem_phase() {
  start_tsps mem
  sleep "$MEM_SETTLE_S"
  local rss0; rss0=$(rss_kb "$SRV_PID")
  populate tsps-mem
  sleep "$MEM_SETTLE_S"
  local rss1 nreg=$STEP_SUCC; rss1=$(rss_kb "$SRV_PID")
  local per_user; per_user=$(awk -v a="$rss0" -v b="$rss1" -v n="$nreg" 'BEGIN{printf "%.2f", (n>0)?(b-a)/n:0}')
  echo "mem: rss idle with 0 registered = $rss0 KB; with $nreg registered = $rss1 KB; $per_user KB per registered user"
  # M calls set up at MEM_RATE/s, each held MEM_HOLD_S s: all of them are live at once
  # between t = MEM_CALLS/MEM_RATE and t = MEM_HOLD_S
  local secs=$(( (MEM_CALLS + MEM_RATE - 1) / MEM_RATE ))
  if [ "$secs" -ge $((MEM_HOLD_S - 3)) ]; then echo "mem: MEM_HOLD_S must exceed MEM_CALLS/MEM_RATE + 3"; return; fi
  local rss2; rss2=$(rss_kb "$SRV_PID")
  SAMPLE_RSS=1 step_once acall tsps-mem-hold "$MEM_RATE" "$secs" $((MEM_HOLD_S * 1000))
  local ncalls=$STEP_SUCC
  # plateau: samples taken after the last call was set up (+1 s) and before the first BYE (-1 s)
  local peak; peak=$(echo "$MEM_SAMPLES" | tr ' ' '\n' | awk -F: -v a=$((secs + 1)) -v b=$((MEM_HOLD_S - 1)) '$1>=a && $1<=b && $2>m {m=$2} END{print m+0}')
  sleep "$MEM_SETTLE_S"
  local rss3; rss3=$(rss_kb "$SRV_PID")
  local per_call; per_call=$(awk -v a="$rss2" -v b="$peak" -v n="$ncalls" 'BEGIN{printf "%.2f", (n>0 && b>0)?(b-a)/n:0}')
  echo "mem: rss before calls = $rss2 KB; with $ncalls live calls = $peak KB; after they ended = $rss3 KB; $per_call KB per live call"
  echo "mem: samples (s:KB):$MEM_SAMPLES" >> "$OUTDIR/mem-samples.txt"
  # short calls, then a pause, twice: what stays allocated per call that has ended
  local csecs=$(( (MEM_CHURN_CALLS + MEM_CHURN_RATE - 1) / MEM_CHURN_RATE ))
  local rss4; rss4=$(rss_kb "$SRV_PID")
  step_once acall tsps-mem-churn1 "$MEM_CHURN_RATE" "$csecs"
  local nchurn=$STEP_SUCC rss5; rss5=$(rss_kb "$SRV_PID")
  sleep "$MEM_CHURN_SETTLE_S"
  local rss6; rss6=$(rss_kb "$SRV_PID")
  step_once acall tsps-mem-churn2 "$MEM_CHURN_RATE" "$csecs"
  local nchurn2=$STEP_SUCC rss7; rss7=$(rss_kb "$SRV_PID")
  sleep "$MEM_CHURN_SETTLE_S"
  local rss8; rss8=$(rss_kb "$SRV_PID")
  local per_ended per_ended2
  per_ended=$(awk -v a="$rss4" -v b="$rss6" -v n="$nchurn" 'BEGIN{printf "%.3f", (n>0)?(b-a)/n:0}')
  per_ended2=$(awk -v a="$rss6" -v b="$rss8" -v n="$nchurn2" 'BEGIN{printf "%.3f", (n>0)?(b-a)/n:0}')
  echo "mem: churn 1: rss before $nchurn short calls = $rss4 KB; right after = $rss5 KB; ${MEM_CHURN_SETTLE_S}s later = $rss6 KB; $per_ended KB kept per ended call"
  echo "mem: churn 2: $nchurn2 more calls: right after = $rss7 KB; ${MEM_CHURN_SETTLE_S}s later = $rss8 KB; $per_ended2 KB more per ended call"
  [ -s "$MEMCSV" ] || echo "server,users,rss_0_users_kb,rss_n_users_kb,kb_per_registered_user,live_calls,rss_before_calls_kb,rss_live_calls_kb,rss_after_calls_kb,kb_per_live_call,churn_calls,rss_before_churn_kb,rss_after_churn1_kb,rss_churn1_settled_kb,kb_kept_per_ended_call,rss_after_churn2_kb,rss_churn2_settled_kb,kb_more_per_ended_call_round2" > "$MEMCSV"
  echo "tsps,$nreg,$rss0,$rss1,$per_user,$ncalls,$rss2,$peak,$rss3,$per_call,$nchurn,$rss4,$rss5,$rss6,$per_ended,$rss7,$rss8,$per_ended2" >> "$MEMCSV"
  stop_server
}

udp_pps() {
  local src="$RUNDIR/udp_pps.c" bin="$RUNDIR/udp_pps"
  cat > "$src" <<'CEOF'
/* one-packet-per-syscall UDP loopback throughput: sender process + receiver process */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(int argc,char**argv){
  int secs=argc>1?atoi(argv[1]):5, size=argc>2?atoi(argv[2]):600, port=argc>3?atoi(argv[3]):5099;
  struct sockaddr_in a; memset(&a,0,sizeof a); a.sin_family=AF_INET; a.sin_port=htons(port); a.sin_addr.s_addr=htonl(0x7f000001);
  int r=socket(AF_INET,SOCK_DGRAM,0); int bs=4<<20; setsockopt(r,SOL_SOCKET,SO_RCVBUF,&bs,sizeof bs);
  if(bind(r,(void*)&a,sizeof a)){perror("bind");return 1;}
  struct timeval tv={1,0}; setsockopt(r,SOL_SOCKET,SO_RCVTIMEO,&tv,sizeof tv);
  pid_t p=fork();
  if(p==0){ int s=socket(AF_INET,SOCK_DGRAM,0); char buf[65536]; memset(buf,'x',size);
    long n=0; double t0=now(), end=t0+secs; while(now()<end){ for(int i=0;i<64;i++){ if(sendto(s,buf,size,0,(void*)&a,sizeof a)>0) n++; } }
    printf("sent %ld pkts in %.2fs = %.0f pps\n", n, now()-t0, n/(now()-t0)); fflush(stdout); _exit(0); }
  char buf[65536]; long n=0; double t0=0,t1=0;
  for(;;){ ssize_t k=recv(r,buf,sizeof buf,0); if(k<0) break; if(!n) t0=now(); n++; t1=now(); }
  waitpid(p,NULL,0);
  printf("received %ld pkts in %.2fs = %.0f pps (payload %d B)\n", n, t1-t0, n/(t1-t0), size);
  return 0; }
CEOF
  gcc -O2 -o "$bin" "$src" && {
    echo "== UDP loopback pps, 1 sender + 1 receiver process, 600 B payload, 5 s =="
    timeout 20 "$bin" 5 600 5099
    echo "== same, 100 B payload =="
    timeout 20 "$bin" 5 100 5099
  } | tee "$OUTDIR/udp_pps.txt"
}

run_phase() {
  local ph=$1 sfx=$2
  case $ph in
    direct)
      stop_server; find_max call "direct$sfx" "$DIRECT_RATES" ;;
    kam)
      start_kamailio "proxy$sfx"
      warmup call "kam$sfx" "$(first_rate "$KAM_RATES")"
      find_max call "kam$sfx" "$KAM_RATES"; stop_server ;;
    kamauth)
      start_kamailio "auth$sfx" WITH_USRLOC WITH_AUTH
      local shm0; shm0=$(kam_shm_used)
      populate "kamauth$sfx"
      local shm1; shm1=$(kam_shm_used)
      echo "kamailio usrloc: shm used $shm0 -> $shm1 bytes for $STEP_SUCC registrations" | tee -a "$OUTDIR/mem-samples.txt"
      warmup acall "kamauth$sfx" "$(first_rate "$KAMAUTH_RATES")"
      find_max acall "kamauth$sfx" "$KAMAUTH_RATES"; stop_server ;;
    tsps)
      start_tsps "calls$sfx"
      populate "tsps$sfx"
      warmup acall "tsps$sfx" "$(first_rate "$TS_RATES")"
      find_max acall "tsps$sfx" "$TS_RATES"
      echo "tsps rss after the call phase: $(rss_kb "$SRV_PID") KB (peak $(hwm_kb "$SRV_PID") KB)"
      stop_server ;;
    regdirect)
      stop_server; find_max areg "regdirect$sfx" "$REGDIRECT_RATES" ;;
    regkam)
      start_kamailio "reg$sfx" WITH_USRLOC WITH_AUTH
      populate "regkam$sfx"
      find_max areg "regkam$sfx" "$REGKAM_RATES"; stop_server ;;
    regtsps)
      start_tsps "reg$sfx"
      populate "regtsps$sfx"
      find_max areg "regtsps$sfx" "$REGTSPS_RATES"; stop_server ;;
    overload)
      overload_phase ;;
    mem)
      mem_phase ;;
    profile)
      profile_phase ;;
    udppps)
      udp_pps ;;
    ws)
      ws_phase ;;
    presence)
      presence_phase ;;
    media)
      media_phase ;;
    *)
      echo "unknown phase $ph"; exit 1 ;;
  esac
}

# the ws phase's functions (they use the helpers above)
. "$HERE/ws/phase.sh"
# the presence phase's functions
. "$HERE/presence/phase.sh"
# the media phase's functions
. "$HERE/media/phase.sh"
# the profile phase's functions
. "$HERE/profile/phase.sh"

# ---------------- main ----------------
need
machine_notes
build_probe
make_users
[ -s "$SUMMARY" ] || echo "$COLS" > "$SUMMARY"
for round in $(seq 1 "$ROUNDS"); do
  list=$PHASES
  [ $((round % 2)) = 0 ] && list=$(echo "$PHASES" | awk '{for(i=NF;i>0;i--) printf "%s ", $i}')
  sfx=""; [ "$ROUNDS" -gt 1 ] && sfx="-round$round"
  for ph in $list; do
    time_left || break
    echo "==== phase $ph$sfx ($(date -u +%T)) ===="
    run_phase "$ph" "$sfx"
  done
done
stop_server
echo "done. summary: $SUMMARY"
cat "$OUTDIR/max.txt" 2>/dev/null
[ -s "$MEMCSV" ] && cat "$MEMCSV"
exit 0
