# shellcheck shell=bash
# The `profile` phase of load-tests/run.sh (sourced by it: uses its helpers and knobs):
# where the CPU goes, counted in instructions rather than seconds. Each server runs
# under valgrind's callgrind; after its users are registered the counters are zeroed,
# PROF_CALLS calls (uac_auth.xml: INVITE, 407, INVITE with credentials, 180, 200, ACK,
# BYE) are placed at PROF_RATE/s and the counters dumped, then PROF_REGS REGISTER
# refreshes with digest, dumped again (and PROF_IDLE seconds of idle before both: the
# cost of doing nothing, included in the per-operation figures at PROF_RATE). Instruction counts are repeatable for the same
# binary and input whatever else the shared machine does (seconds are not), so this is
# the phase that compares binaries and says where the time goes; the rate phases say
# how fast.
#
#   PHASES=profile NUSERS=200 load-tests/run.sh                       # ~6 min
#   PHASES=profile NUSERS=200 PROF_BASE_BIN=/path/to/older/tsps load-tests/run.sh
#
# Servers, in this order: Kamailio with auth and usrloc (the kamauth set-up; PROF_KAM=0
# skips it), tsps (TS_BIN), and PROF_BASE_BIN if given (an older tsps: the same steps,
# for a before/after of code changes).
# Outputs in $OUTDIR/profile/: profile.csv (server, what, operations, instructions,
# instructions per operation; "idle_per_second" rows: seconds and instructions per second), <server>-<what>.txt (callgrind_annotate: the functions
# with the most instructions, self and inclusive), the raw callgrind files.

PROF_CALLS=${PROF_CALLS:-1000}
PROF_REGS=${PROF_REGS:-1000}
PROF_RATE=${PROF_RATE:-25}
PROF_KAM=${PROF_KAM:-1}
PROF_BASE_BIN=${PROF_BASE_BIN:-}
PROF_TOP=${PROF_TOP:-40}
PROF_IDLE=${PROF_IDLE:-20}   # seconds of idle counted first: what the server spends doing nothing

# Callgrind as the servers' wrapper: one output file per process and dump.
prof_wrap() {  # prof_wrap NAME
  echo "valgrind --tool=callgrind --trace-children=yes --dump-instr=no --collect-jumps=no --callgrind-out-file=$OUTDIR/profile/$1.%p.cg"
}

# Zero or dump the counters of every process under callgrind (one server runs at a time).
prof_ctl() { timeout 120 callgrind_control "$@" > /dev/null 2>&1; }

# Instructions counted in the dumps whose name ends in ".$2" (callgrind numbers a
# process's dumps .1, .2, ...), over every process of server $1.
prof_ir() {  # prof_ir NAME DUMP_NO
  local f total=0 n
  for f in "$OUTDIR/profile/$1".*.cg."$2"; do
    [ -e "$f" ] || continue
    n=$(awk '/^(summary|totals):/{print $2; exit}' "$f")
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

prof_annotate() {  # prof_annotate NAME DUMP_NO WHAT: the busiest process's functions
  local out="$OUTDIR/profile/$1-$3.txt" f best="" most=0 n
  for f in "$OUTDIR/profile/$1".*.cg."$2"; do
    [ -e "$f" ] || continue
    n=$(awk '/^(summary|totals):/{print $2; exit}' "$f")
    [ "${n:-0}" -gt "$most" ] && { most=$n; best=$f; }
  done
  [ -n "$best" ] || return 0
  {
    echo "# $(basename "$best"): $most of $(prof_ir "$1" "$2") instructions of all its processes"
    echo "## self (instructions in the function itself)"
    callgrind_annotate --auto=no --threshold=100 "$best" 2>/dev/null | sed -n "1,$((PROF_TOP + 25))p"
    echo; echo "## inclusive (the function and what it calls)"
    callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$best" 2>/dev/null | sed -n "1,$((PROF_TOP + 25))p"
  } > "$out"
}

# prof_measure NAME: the server is started (under callgrind) and its users registered
prof_measure() {
  local name=$1 csv="$OUTDIR/profile/profile.csv" ir ops
  # idle first: timers and housekeeping that the steps below pay whatever their load
  prof_ctl -z
  sleep "$PROF_IDLE"
  prof_ctl -d "idle"
  ir=$(prof_ir "$name" 1)
  echo "$name,idle_per_second,$PROF_IDLE,$ir,$(awk -v i="$ir" -v n="$PROF_IDLE" 'BEGIN{printf "%.0f", i/n}')" | tee -a "$csv"
  step_once acall "prof-$name-calls" "$PROF_RATE" "$(( (PROF_CALLS + PROF_RATE - 1) / PROF_RATE ))"
  ops=$STEP_SUCC
  prof_ctl -d "calls"
  ir=$(prof_ir "$name" 2)
  echo "$name,calls,$ops,$ir,$(awk -v i="$ir" -v n="$ops" 'BEGIN{printf "%.0f", (n>0)?i/n:0}')" | tee -a "$csv"
  prof_annotate "$name" 2 calls
  step_once areg "prof-$name-regs" "$PROF_RATE" "$(( (PROF_REGS + PROF_RATE - 1) / PROF_RATE ))"
  ops=$STEP_SUCC
  prof_ctl -d "regs"
  ir=$(prof_ir "$name" 3)
  echo "$name,regs,$ops,$ir,$(awk -v i="$ir" -v n="$ops" 'BEGIN{printf "%.0f", (n>0)?i/n:0}')" | tee -a "$csv"
  prof_annotate "$name" 3 regs
  stop_server
}

prof_populate() {  # register every user at PROF_RATE (a server under callgrind is slow)
  step_once areg "prof-$1-populate" "$PROF_RATE" "$(( (NUSERS + PROF_RATE - 1) / PROF_RATE ))"
  [ "$STEP_SUCC" -ge "$NUSERS" ] || echo "  profile: populate registered only $STEP_SUCC of $NUSERS users"
}

profile_phase() {
  command -v valgrind > /dev/null || { echo "profile: valgrind is missing (apt-get install valgrind)"; return 1; }
  mkdir -p "$OUTDIR/profile"
  local csv="$OUTDIR/profile/profile.csv"
  [ -s "$csv" ] || echo "server,what,operations,instructions,instructions_per_operation" > "$csv"
  local start_wait=$START_WAIT
  START_WAIT=600   # a server under callgrind starts ~50x slower
  if [ "$PROF_KAM" = 1 ]; then
    KAM_WRAP=$(prof_wrap kamauth) start_kamailio "prof" WITH_USRLOC WITH_AUTH
    prof_populate kamauth
    prof_measure kamauth
  fi
  TS_WRAP=$(prof_wrap tsps) start_tsps "prof"
  prof_populate tsps
  prof_measure tsps
  if [ -n "$PROF_BASE_BIN" ]; then
    local bin=$TS_BIN
    cp "$PROF_BASE_BIN" "$RUNDIR/tsps-base.bin" && TS_BIN="$RUNDIR/tsps-base.bin"
    # older binaries know neither the setting nor the check (PROF_BASE_TOML: theirs)
    TS_TOML_EXTRA=${PROF_BASE_TOML:-} TS_WRAP=$(prof_wrap tsps-base) start_tsps "prof-base"
    prof_populate tsps-base
    prof_measure tsps-base
    TS_BIN=$bin
  fi
  START_WAIT=$start_wait
  echo "profile: $csv"; column -s, -t < "$csv"
}
