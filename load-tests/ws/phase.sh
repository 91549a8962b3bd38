# shellcheck shell=bash
# The `ws` phase of load-tests/run.sh (sourced by it: uses its helpers, knobs and
# $SRV_PID): tsps's live event push under 10,000 WebSocket sessions.
#
#   PHASES=ws load-tests/run.sh                                   # full: ~20 min
#   PHASES=ws WS_SESSIONS="0 100" WS_CALL_SECONDS=5 WS_IDLE_S=5 QUIET_MAX_WAIT=0 \
#     HOST_WAIT_MAX=0 load-tests/run.sh                           # quick check of the tooling
#
# 1. tsps with WS_TENANTS tenants (t<k>.ws.test) x WS_USERS users (extensions 1000..,
#    one device each); every user REGISTERs (digest) with the SIPp UAS as its Contact.
# 2. For each count N in WS_SESSIONS (0 first: tsps alone, the baseline): the client
#    (ws/client.mjs) opens N sessions, one per user, spread evenly over the tenants; then
#      idle  WS_IDLE_S s without calls (longer than the 30-s server ping period):
#            tsps RSS and CPU;
#      calls at each rate of WS_CALL_RATES for WS_CALL_SECONDS s (ws/uac_auth.xml: user i
#            calls user i + WS_USERS/2 of its tenant, the SIPp UAS answers at once, the
#            call is held WS_HOLD_MS): per message the delay from the call actor's event
#            (`at`) to the client, seq gaps, resyncs, and whether every call's
#            `line_ended` reached both parties' sessions; tsps CPU and RSS (sampled 1/s).
#    then the client closes all sessions (RSS after close).
# 3. Floor (WS_FLOOR=1): tsps stopped, ws/floor.mjs (a plain Node WebSocket server)
#    sends messages of the same size, at the message rate tsps produced at the highest
#    call rate, to the largest session count: the delay of client + framing + loopback.
#
# Outputs in $OUTDIR: ws.csv (one row per window), ws-summary.txt (per-session costs and
# ratios), ws-client-*.jsonl (the client's summaries), ws-floor.jsonl, and the usual
# summary.csv / steps/ rows of the SIPp steps (labels ws-*).
# Every process is bounded (coreutils timeout + the client's --max-seconds) and stopped
# by its PID.

WS_CLIENT_PID=""
WS_FLOOR_PID=""
WS_TOKEN=load-test     # http.api_token of run.sh's start_tsps
WS_FLOOR_PORT=${WS_FLOOR_PORT:-$((TS_HTTP + 1))}
WS_MAX_S=${WS_MAX_S:-3600}   # bound of each Node process
WS_DRAIN_S=${WS_DRAIN_S:-3}  # after the last BYE: time for the last events to arrive
# 1 = another idle window after the calls of each count: with enough calls per user
# (WS_CALL_SECONDS x rate x 2 / users x 6 messages > the replay ring) it measures
# sessions whose streams are full, as after a busy day
WS_IDLE_AFTER=${WS_IDLE_AFTER:-0}
WS_COLS="label,server,sessions,call_rate,window_s,calls,calls_ok,calls_failed,messages,msgs_per_s,avg_bytes,delay_n,delay_p50_ms,delay_p90_ms,delay_p99_ms,delay_p999_ms,delay_max_ms,gaps,missing_seqs,dups,resyncs,errors,closes,lines_started,line_ended,line_ended_expected,open_lines,srv_pushed,srv_resyncs_lagged,srv_bus_lagged,sipp_p99_180_ms,srv_rss_kb,srv_rss_peak_kb,srv_cpu_pct,client_cpu_pct,client_loop_p99_ms,client_rss_kb,loadavg_1m,probe"

ws_need() {
  command -v node >/dev/null || { echo "missing node (Node 20)"; exit 1; }
  command -v python3 >/dev/null || echo "no python3: the clock check (ws/clock-check.mjs) is skipped"
  command -v jq >/dev/null || { echo "missing jq"; exit 1; }
  if [ ! -d "$HERE/ws/node_modules/ws" ]; then
    echo "installing the ws client's packages (npm ci in load-tests/ws)"
    ( cd "$HERE/ws" && npm ci --no-audit --no-fund ) || { echo "npm ci failed"; exit 1; }
  fi
}

ws_yaml() {  # provisioning: WS_TENANTS tenants x WS_USERS users with one device each
  awk -v t="$WS_TENANTS" -v n="$WS_USERS" 'BEGIN{ print "tenants:";
      for (k = 0; k < t; k++) {
        printf "  - domain: t%d.ws.test\n    name: WS load %d\n    time_zone: UTC\n    users:\n", k, k;
        for (i = 0; i < n; i++) { u = 1000 + i;
          printf "      - extension: \"%d\"\n        display_name: User %d\n        devices:\n          - sip_username: \"%d\"\n            password: loadpw%d\n", u, u, u, u } } }'
}

ws_users_csv() {  # row r: tenant r % T, extension 1000 + r / T, calling extension + WS_USERS/2
  awk -v t="$WS_TENANTS" -v n="$WS_USERS" -v c="$IP:$UAS_PORT" 'BEGIN{ print "SEQUENTIAL";
      for (r = 0; r < t * n; r++) { k = r % t; i = int(r / t); u = 1000 + i; v = 1000 + (i + int(n / 2)) % n;
        printf "%d;loadpw%d;%d;%s;[authentication username=%d password=loadpw%d];t%d.ws.test\n", u, u, v, c, u, u, k } }'
}

# line_ended messages expected for the first CALLS rows of ws-users.csv when N sessions
# watch every stride-th extension of each tenant (client.mjs's choice): one per watched party
ws_expected_ended() {  # ws_expected_ended CALLS N
  [ "$2" -gt 0 ] || { echo 0; return; }
  awk -v calls="$1" -v t="$WS_TENANTS" -v n="$WS_USERS" -v s=$(( WS_TENANTS * WS_USERS / $2 )) 'BEGIN{
      if (s < 1) s = 1; e = 0
      for (r = 0; r < calls; r++) { i = int(r / t) % n; v = (i + int(n / 2)) % n; e += (i % s == 0) + (v % s == 0) }
      print e }'
}

ws_client_start() {  # ws_client_start LABEL N BASE: N sessions; returns once all opened
  local label=$1 n=$2 base=$3
  WS_OUT="$OUTDIR/ws-client-$label.jsonl"
  rm -f "$RUNDIR/ws-client.ctl"; mkfifo "$RUNDIR/ws-client.ctl"
  nice -n "$NICE_LVL" timeout -k 5 "$((WS_MAX_S + 30))" node "$HERE/ws/client.mjs" run --base "$base" \
      --token "$WS_TOKEN" --targets "$RUNDIR/ws-targets.json" --sessions "$n" --open-rate "$WS_OPEN_RATE" \
      --max-seconds "$WS_MAX_S" < "$RUNDIR/ws-client.ctl" > "$WS_OUT" 2> "$OUTDIR/ws-client-$label.stderr" &
  WS_CLIENT_PID=$!
  exec 7> "$RUNDIR/ws-client.ctl"
  local i limit=$(( n / WS_OPEN_RATE * 5 + 300 ))   # 0.2-s polls: twice the open time + 60 s
  for i in $(seq 1 "$limit"); do
    grep -q '"event":"opened"' "$WS_OUT" && break
    kill -0 "$WS_CLIENT_PID" 2>/dev/null || break
    sleep 0.2
  done
  local opened; opened=$(jq -r 'select(.event == "opened") | "\(.sessions) opened, \(.failed) failed in \(.seconds) s, client rss \(.client_rss_kb) KB"' "$WS_OUT")
  echo "  ws client ($label): ${opened:-did not finish opening}"
  [ -n "$opened" ]
}
# (in a subshell: a write to a client that died must not SIGPIPE run.sh itself)
ws_client_cmd() { [ -n "$WS_CLIENT_PID" ] && ( echo "$*" >&7 ) 2>/dev/null; }
ws_client_mark() {  # ws_client_mark LABEL: prints the client's summary JSON of the window
  local before; before=$(wc -l < "$WS_OUT")
  ws_client_cmd mark "$1"
  local i
  for i in $(seq 1 100); do
    [ "$(wc -l < "$WS_OUT")" -gt "$before" ] && { tail -1 "$WS_OUT"; return; }
    sleep 0.1
  done
  echo "{}"
}
ws_client_stop() {
  [ -n "$WS_CLIENT_PID" ] || return 0
  ws_client_cmd quit; exec 7>&-
  local i
  for i in $(seq 1 100); do kill -0 "$WS_CLIENT_PID" 2>/dev/null || break; sleep 0.1; done
  kill "$WS_CLIENT_PID" 2>/dev/null
  wait "$WS_CLIENT_PID" 2>/dev/null
  WS_CLIENT_PID=""
}

# tsps's push counters (/api/v1/metrics): "messages resyncs_lagged bus_lagged"
ws_push_counters() {
  curl -fsS -m 5 -H "authorization: Bearer $WS_TOKEN" "http://$IP:$TS_HTTP/api/v1/metrics" 2>/dev/null | awk '
    /^tsps_push_total\{/ { split($1, a, "\""); v[a[2]] = $2 }
    END { printf "%d %d %d", v["messages"], v["resyncs_lagged"], v["bus_lagged"] }'
}
ws_counters_delta() {  # ws_counters_delta "BEFORE" "AFTER" -> "a,b,c"
  echo "$1 $2" | awk '{printf "%d,%d,%d", $4-$1, $5-$2, $6-$3}'
}

# one row of ws.csv from the client's window summary (JSON, may be "{}") and the measures
ws_row() {  # ws_row LABEL SERVER N RATE WINDOW_S CALLS OK FAILED EXPECTED P99_180 RSS PEAK CPU JSON PUSHED
  local j=${14:-"{}"} pushed=${15:-"-,-,-"}
  local c; c=$(echo "$j" | jq -r '[.messages // 0, .msgs_per_s // 0, .avg_bytes // 0, .delay_ms.n // 0,
      .delay_ms.p50 // "-", .delay_ms.p90 // "-", .delay_ms.p99 // "-", .delay_ms.p999 // "-", .delay_ms.max // "-",
      .gaps // 0, .missing_seqs // 0, .dups // 0, .resyncs // 0, .errors // 0, .closes // 0,
      .lines_started // 0, .line_ended // 0] | map(tostring) | join(",")')
  local e o k; e=$(echo "$j" | jq -r '.open_lines // 0')
  o=$(echo "$j" | jq -r '[.client.cpu_pct // "-", .client.loop_delay_p99_ms // "-", .client.rss_kb // "-"] | map(tostring) | join(",")')
  k=$(awk '{print $1}' /proc/loadavg)
  echo "$1,$2,$3,$4,$5,$6,$7,$8,$c,$9,$e,$pushed,${10},${11},${12},${13},$o,$k,${PROBE/,//}" >> "$OUTDIR/ws.csv"
}

# RSS is read at the end of the window: by then the REGISTER transactions of the
# population and the calls of the previous level are past their 32-s Timer J/K window.
ws_idle() {  # ws_idle N [WHEN]: tsps with N idle sessions for WS_IDLE_S s
  local n=$1 label="ws-idle${2:+-$2}-n$1"
  wait_quiet; host_gate
  local rss0 rss k0 k1 t0 t1
  local m0 m1; m0=$(ws_push_counters)
  rss0=$(rss_kb "$SRV_PID"); k0=$(proc_ticks "$SRV_PID"); t0=$(date +%s.%N)
  [ "$n" -gt 0 ] && ws_client_mark "pre-$label" > /dev/null
  sleep "$WS_IDLE_S"
  k1=$(proc_ticks "$SRV_PID"); t1=$(date +%s.%N)
  m1=$(ws_push_counters)
  rss=$(rss_kb "$SRV_PID")
  local peak=$(( rss0 > rss ? rss0 : rss ))
  local cpu; cpu=$(awk -v a="$k0" -v b="$k1" -v hz="$HZ" -v x="$t0" -v y="$t1" 'BEGIN{printf "%.2f", (b-a)/hz/(y-x)*100}')
  local j="{}"; [ "$n" -gt 0 ] && j=$(ws_client_mark "$label")
  local w; w=$(awk -v x="$t0" -v y="$t1" 'BEGIN{printf "%.1f", y-x}')
  ws_row "$label" tsps "$n" 0 "$w" 0 0 0 0 - "$rss" "$peak" "$cpu" "$j" "$(ws_counters_delta "$m0" "$m1")"
  echo "  $label: tsps rss $rss KB (at the start of the window $rss0 KB), cpu $cpu% of a core over ${w}s; client: $(echo "$j" | jq -c '{messages, resyncs, closes, errors}' 2>/dev/null)"
}

ws_calls() {  # ws_calls N RATE: calls at RATE/s for WS_CALL_SECONDS s under N sessions
  local n=$1 rate=$2 label="ws-calls-n$1-r$2"
  wait_quiet; host_gate; PRE_PROBE=$PROBE
  [ "$n" -gt 0 ] && ws_client_mark "pre-$label" > /dev/null
  local rss0 t0 t1 m0 m1; m0=$(ws_push_counters); rss0=$(rss_kb "$SRV_PID"); t0=$(date +%s.%N)
  SAMPLE_RSS=1 step_once acall "ws-n$n" "$rate" "$WS_CALL_SECONDS" "$WS_HOLD_MS"
  sleep "$WS_DRAIN_S"
  t1=$(date +%s.%N); m1=$(ws_push_counters)
  local j="{}"; [ "$n" -gt 0 ] && j=$(ws_client_mark "$label")
  local last; last=$(tail -1 "$SUMMARY")
  local col_cpu col_fail col_p99 col_calls
  col_cpu=$(echo "$COLS" | tr ',' '\n' | grep -nx srv_cpu_pct | cut -d: -f1)
  col_fail=$(echo "$COLS" | tr ',' '\n' | grep -nx failed | cut -d: -f1)
  col_p99=$(echo "$COLS" | tr ',' '\n' | grep -nx p99_180_ms | cut -d: -f1)
  col_calls=$(echo "$COLS" | tr ',' '\n' | grep -nx calls | cut -d: -f1)
  local cpu failed p99 calls
  cpu=$(echo "$last" | cut -d, -f"$col_cpu"); failed=$(echo "$last" | cut -d, -f"$col_fail")
  p99=$(echo "$last" | cut -d, -f"$col_p99"); calls=$(echo "$last" | cut -d, -f"$col_calls")
  local peak; peak=$(echo "$MEM_SAMPLES" | tr ' ' '\n' | awk -F: '$2>m{m=$2} END{print m+0}')
  local expected; expected=$(ws_expected_ended "$calls" "$n")
  local w; w=$(awk -v x="$t0" -v y="$t1" 'BEGIN{printf "%.1f", y-x}')
  local pushed; pushed=$(ws_counters_delta "$m0" "$m1")
  ws_row "$label" tsps "$n" "$rate" "$w" "$calls" "$STEP_SUCC" "$failed" "$expected" "$p99" "$rss0" "$peak" "$cpu" "$j" "$pushed"
  echo "  $label: calls $STEP_SUCC/$calls ok; tsps cpu $cpu%, rss peak $peak KB; tsps pushed,resyncs_lagged,bus_lagged = $pushed; client: $(echo "$j" | jq -c '{messages, msgs_per_s, delay_ms, gaps, resyncs, closes, errors, line_ended, open_lines}' 2>/dev/null) (line_ended expected $expected)"
  [ "$STEP_SUCC" = "$calls" ] || echo "  (not every call succeeded: line_ended_expected counts the first $calls rows)"
}

ws_level() {  # ws_level N: open N sessions, idle, calls at each rate, close
  local n=$1
  echo "== ws: $n sessions ($(date -u +%T)) =="
  if [ "$n" -gt 0 ]; then
    ws_client_start "n$n" "$n" "ws://$IP:$TS_HTTP" || { ws_client_stop; return 1; }
    sleep "$MEM_SETTLE_S"
  fi
  ws_idle "$n"
  local r
  for r in $WS_CALL_RATES; do time_left && ws_calls "$n" "$r"; done
  # idle again: each watched user's replay ring now holds what the calls pushed
  [ "$WS_IDLE_AFTER" = 1 ] && time_left && ws_idle "$n" after
  if [ "$n" -gt 0 ]; then
    ws_client_stop
    jq -c 'select(.label == "total") | {sessions_open, messages, gaps, resyncs, dups, errors, closes, lines_started, line_ended, open_lines}' "$WS_OUT" | sed 's/^/  whole run of the client: /'
    sleep "$MEM_SETTLE_S"
    echo "  tsps rss after the $n sessions closed: $(rss_kb "$SRV_PID") KB" | tee -a "$OUTDIR/ws-summary.txt"
  fi
}

ws_floor() {  # the same client against floor.mjs at tsps's message rate (highest call rate, most sessions)
  local n rate msgs size
  n=$(echo "$WS_SESSIONS" | tr ' ' '\n' | sort -n | tail -1)
  rate=$(echo "$WS_CALL_RATES" | tr ' ' '\n' | sort -n | tail -1)
  # the same number of messages over the time SIPp spent placing the calls
  msgs=$(awk -F, -v l="ws-calls-n$n-r$rate" -v s="$WS_CALL_SECONDS" '$1==l{m=$9} END{printf "%d", m/s}' "$OUTDIR/ws.csv")
  size=$(awk -F, -v l="ws-calls-n$n-r$rate" '$1==l{m=$11} END{printf "%d", m}' "$OUTDIR/ws.csv")
  [ "$n" -gt 0 ] && [ "${msgs:-0}" -gt 0 ] || { echo "  ws floor: no tsps window to match; skipped"; return 0; }
  echo "== ws floor: Node WebSocket server, $n sessions, $msgs messages/s of $size B ($(date -u +%T)) =="
  rm -f "$RUNDIR/ws-floor.ctl"; mkfifo "$RUNDIR/ws-floor.ctl"
  nice -n "$NICE_LVL" timeout -k 5 "$((WS_MAX_S + 30))" node "$HERE/ws/floor.mjs" --port "$WS_FLOOR_PORT" \
      --size "$size" --max-seconds "$WS_MAX_S" < "$RUNDIR/ws-floor.ctl" > "$OUTDIR/ws-floor.jsonl" 2>&1 &
  WS_FLOOR_PID=$!
  exec 6> "$RUNDIR/ws-floor.ctl"
  local i
  for i in $(seq 1 50); do grep -q listening "$OUTDIR/ws-floor.jsonl" && break; sleep 0.2; done
  if ws_client_start floor "$n" "ws://$IP:$WS_FLOOR_PORT"; then
    sleep "$MEM_SETTLE_S"
    wait_quiet; host_gate
    ws_client_mark pre-floor > /dev/null
    local k0 k1 t0 t1
    k0=$(proc_ticks "$WS_FLOOR_PID" $(ps -o pid= --ppid "$WS_FLOOR_PID")); t0=$(date +%s.%N)
    ( echo "rate $msgs" >&6 ) 2>/dev/null
    sleep "$WS_CALL_SECONDS"
    ( echo "rate 0" >&6 ) 2>/dev/null
    sleep 1
    k1=$(proc_ticks "$WS_FLOOR_PID" $(ps -o pid= --ppid "$WS_FLOOR_PID")); t1=$(date +%s.%N)
    local j; j=$(ws_client_mark ws-floor)
    local cpu w; cpu=$(awk -v a="$k0" -v b="$k1" -v hz="$HZ" -v x="$t0" -v y="$t1" 'BEGIN{printf "%.2f", (b-a)/hz/(y-x)*100}')
    w=$(awk -v x="$t0" -v y="$t1" 'BEGIN{printf "%.1f", y-x}')
    local rss; rss=$(rss_kb "$(ps -o pid= --ppid "$WS_FLOOR_PID" | head -1 | tr -d ' ')")
    ws_row ws-floor node-floor "$n" - "$w" 0 0 0 0 - "$rss" "$rss" "$cpu" "$j"
    echo "  ws-floor: $(echo "$j" | jq -c '{messages, msgs_per_s, delay_ms, gaps, resyncs, closes, errors}')"
  fi
  ws_client_stop
  ( echo quit >&6 ) 2>/dev/null; exec 6>&-
  for i in $(seq 1 50); do kill -0 "$WS_FLOOR_PID" 2>/dev/null || break; sleep 0.1; done
  kill "$WS_FLOOR_PID" 2>/dev/null; wait "$WS_FLOOR_PID" 2>/dev/null
  WS_FLOOR_PID=""
}

ws_report() {  # per-session costs and ratios from ws.csv
  local f="$OUTDIR/ws.csv" max rate
  max=$(echo "$WS_SESSIONS" | tr ' ' '\n' | sort -n | tail -1)
  rate=$(echo "$WS_CALL_RATES" | tr ' ' '\n' | sort -n | tail -1)
  awk -F, -v max="$max" -v rate="$rate" -v rates="$WS_CALL_RATES" '
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    { row[$1] = $0 }
    function v(label, col,   a) { if (!(label in row)) return ""; split(row[label], a, ","); return a[c[col]] }
    function ratio(x, y) { return (x != "" && y != "" && x != "-" && y != "-" && y + 0 > 0) ? sprintf("%.2f", x / y) : "-" }
    END {
      r0 = v("ws-idle-n0", "srv_rss_kb"); rn = v("ws-idle-n" max, "srv_rss_kb")
      c0 = v("ws-idle-n0", "srv_cpu_pct"); cn = v("ws-idle-n" max, "srv_cpu_pct")
      printf "idle: tsps rss %s KB with 0 sessions, %s KB with %d: %.1f KB per idle session (%.2fx the 0-session rss)\n", r0, rn, max, (rn - r0) / max, rn / r0
      ra0 = v("ws-idle-after-n0", "srv_rss_kb"); ran = v("ws-idle-after-n" max, "srv_rss_kb")
      if (ra0 != "" && ran != "") printf "idle after the calls: tsps rss %s KB with 0 sessions, %s KB with %d: %.1f KB per idle session with a filled stream\n", ra0, ran, max, (ran - ra0) / max
      printf "idle: tsps cpu %s%% of a core with 0 sessions, %s%% with %d: %.2f us of cpu per session per second\n", c0, cn, max, (cn - c0) / 100 * 1e6 / max
      n = split(rates, rr, " ")
      for (i = 1; i <= n; i++) {
        r = rr[i]; b = "ws-calls-n0-r" r; t = "ws-calls-n" max "-r" r
        printf "calls %s/s: tsps cpu %s%% with 0 sessions, %s%% with %d (%sx); rss peak %s KB vs %s KB: %.1f KB per session under calls\n", r, v(b, "srv_cpu_pct"), v(t, "srv_cpu_pct"), max, ratio(v(t, "srv_cpu_pct"), v(b, "srv_cpu_pct")), v(b, "srv_rss_peak_kb"), v(t, "srv_rss_peak_kb"), (v(t, "srv_rss_peak_kb") - v(b, "srv_rss_peak_kb")) / max
        m = v(t, "messages")
        if (m > 0) printf "calls %s/s: %d messages to %d sessions: %.1f us of tsps cpu per message above the 0-session run\n", r, m, max, (v(t, "srv_cpu_pct") - v(b, "srv_cpu_pct")) / 100 * v(t, "window_s") * 1e6 / m
      }
      for (l in row) if (l ~ /^ws-calls-n[1-9]/ || l == "ws-floor") {
        printf "delay %s: p50 %s ms, p90 %s, p99 %s, max %s (n=%s); gaps %s, resyncs %s, closes %s, errors %s; line_ended %s of %s expected, %s lines left open; received %s of %s pushed\n", l, v(l, "delay_p50_ms"), v(l, "delay_p90_ms"), v(l, "delay_p99_ms"), v(l, "delay_max_ms"), v(l, "delay_n"), v(l, "gaps"), v(l, "resyncs"), v(l, "closes"), v(l, "errors"), v(l, "line_ended"), v(l, "line_ended_expected"), v(l, "open_lines"), v(l, "delay_n"), v(l, "srv_pushed")
      }
      t = "ws-calls-n" max "-r" rate
      printf "ratios at %s calls/s: p99 delay with %d sessions / with fewer: ", rate, max
      for (l in row) if (l ~ ("^ws-calls-n[1-9][0-9]*-r" rate "$") && l != t) printf "%s %sx  ", l, ratio(v(t, "delay_p99_ms"), v(l, "delay_p99_ms"))
      printf "\nratios at %s calls/s: tsps vs the Node floor: p50 %sx, p99 %sx\n", rate, ratio(v(t, "delay_p50_ms"), v("ws-floor", "delay_p50_ms")), ratio(v(t, "delay_p99_ms"), v("ws-floor", "delay_p99_ms"))
    }' "$f" | sort | tee -a "$OUTDIR/ws-summary.txt"
}

ws_phase() {
  # one socket per session in tsps and in the client, plus their other descriptors
  ulimit -n "$(ulimit -Hn)" 2>/dev/null
  local max; max=$(echo "$WS_SESSIONS" | tr ' ' '\n' | sort -n | tail -1)
  [ "$(ulimit -n)" -gt $((max + 1000)) ] || { echo "ws: ulimit -n $(ulimit -n) is too low for $max sessions"; return 1; }
  local NUSERS=$((WS_TENANTS * WS_USERS))   # populate registers them all
  local n
  for n in $WS_SESSIONS; do
    if [ "$n" -gt "$NUSERS" ] || { [ "$n" -gt 0 ] && [ $((NUSERS % n)) != 0 -o $(( (WS_USERS / 2) % (NUSERS / n) )) != 0 ]; }; then
      echo "ws: $n sessions do not pair callers with callees (see WS_SESSIONS)"; return 1
    fi
  done
  ws_users_csv > "$RUNDIR/ws-users.csv"
  local save_csv=$USERS_CSV save_acall=$ACALL_SF save_areg=$AREG_SF
  USERS_CSV=$RUNDIR/ws-users.csv; ACALL_SF=$HERE/ws/uac_auth.xml; AREG_SF=$HERE/ws/register_auth.xml
  [ -s "$OUTDIR/ws.csv" ] || echo "$WS_COLS" > "$OUTDIR/ws.csv"
  echo "ws: $WS_TENANTS tenants x $WS_USERS users; sessions $WS_SESSIONS; calls/s $WS_CALL_RATES for ${WS_CALL_SECONDS}s, held ${WS_HOLD_MS}ms; idle ${WS_IDLE_S}s" | tee -a "$OUTDIR/machine.txt"
  echo "node: $(node --version), ws $(jq -r '.dependencies.ws' "$HERE/ws/package.json"); clock check (ws/clock-check.mjs): $(timeout 60 node "$HERE/ws/clock-check.mjs")" | tee -a "$OUTDIR/machine.txt"
  start_tsps ws ws_yaml
  populate ws
  if timeout 120 node "$HERE/ws/client.mjs" list --base "http://$IP:$TS_HTTP" --token "$WS_TOKEN" > "$RUNDIR/ws-targets.json"; then
    echo "ws: $(jq length "$RUNDIR/ws-targets.json") users listed"
    sleep "$MEM_SETTLE_S"
    for n in $WS_SESSIONS; do
      time_left || break
      ws_level "$n"
    done
  else
    echo "ws: listing the users failed"
  fi
  stop_server
  [ "$WS_FLOOR" = 1 ] && time_left && ws_floor
  ws_report
  USERS_CSV=$save_csv; ACALL_SF=$save_acall; AREG_SF=$save_areg
}
