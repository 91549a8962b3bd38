# shellcheck shell=bash
# The `media` phase of load-tests/run.sh (sourced by it: uses its helpers and knobs):
# conference bridges of MEDIA_PARTICIPANTS parties on tsps's media engine, in-process
# (load-tests/media/main.rs, `cargo run --release --example media-load`), against a plain
# UDP echo of the same traffic and the load generator alone, at each of MEDIA_LEVELS
# conferences (stopping after the first level where a mode loses > 1 % of its packets,
# the mixer falls behind or the median spread exceeds 40 ms). docs/benchmarks.md,
# "Conference media".
#
#   PHASES=media load-tests/run.sh                                          # ~7 min
#   PHASES=media MEDIA_LEVELS=0,10,50 MEDIA_SECONDS=3 MEDIA_WARMUP=1 \
#     QUIET_MAX_WAIT=0 HOST_WAIT_MAX=0 load-tests/run.sh                    # tooling check
#
# Outputs in $OUTDIR: media.csv (one row per level and mode), media-summary.txt (the
# table and the ratios), media-run.log (progress lines). The binary is bounded by its
# --max-seconds and by coreutils timeout.

MEDIA_LEVELS=${MEDIA_LEVELS:-"0,10,50,100,200,400,800,1200,1600"}
MEDIA_PARTICIPANTS=${MEDIA_PARTICIPANTS:-3}
MEDIA_SECONDS=${MEDIA_SECONDS:-10}
MEDIA_WARMUP=${MEDIA_WARMUP:-3}
MEDIA_MAX_SECONDS=${MEDIA_MAX_SECONDS:-540}
MEDIA_ARGS=${MEDIA_ARGS:-}     # more media-load options, e.g. "--gen-threads 2"

media_phase() {
  local bin="$RUNDIR/media-load.bin"
  echo "building media-load (cargo build --release --example media-load)"
  ( cd "$REPO" && nice -n 10 cargo build --release --example media-load ) || { echo "media-load build failed"; return 1; }
  # a private copy: a rebuild in the shared target directory must not swap it mid-run
  cp "$REPO/target/release/examples/media-load" "$bin" || return 1
  wait_quiet
  host_gate
  local pre=$PROBE
  local note
  note="git $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+dirty'); loadavg at start $(cut -d' ' -f1-3 /proc/loadavg); host probe (ALU Mops/s, ns per memory access) before $pre"
  # shellcheck disable=SC2086  # MEDIA_ARGS is a list of options
  timeout -k 10 "$((${MEDIA_MAX_SECONDS%.*} + 120))" nice -n "$NICE_LVL" "$bin" \
    --conferences "$MEDIA_LEVELS" --participants "$MEDIA_PARTICIPANTS" \
    --seconds "$MEDIA_SECONDS" --warmup "$MEDIA_WARMUP" --max-seconds "$MEDIA_MAX_SECONDS" \
    --out "$OUTDIR" --note "$note" $MEDIA_ARGS 2> >(tee "$OUTDIR/media-run.log" >&2)
  local rc=$?
  probe
  echo "media: exit $rc; host probe after: $PROBE (before: $pre)" | tee -a "$OUTDIR/media-summary.txt"
}
