# shellcheck shell=bash
# The `presence` phase of load-tests/run.sh (sourced by it: uses its helpers, knobs and
# $SRV_PID): time from a hook-state change to the SIP NOTIFY (dialog and presence
# packages, docs/presence.md) and to the portal's `presence` message (docs/events.md),
# with 10,000 watched users and 50,000 subscriptions on one node.
#
#   PHASES=presence load-tests/run.sh                                  # full: ~20 min
#   PHASES=presence PR_TENANTS=2 PR_USERS=100 PR_CALL_RATES=10 PR_CALL_SECONDS=5 \
#     PR_IDLE_S=3 PR_SETTLE_S=2 QUIET_MAX_WAIT=0 HOST_WAIT_MAX=0 load-tests/run.sh   # tooling check
#
# 1. tsps with PR_TENANTS tenants (t<k>.pr.test) x PR_USERS users (one device each);
#    every user registers (presence/caller.py) with a Contact on the callee phones' port.
# 2. presence/subscriber.py (one Python process) holds the SIP subscriptions: at level
#    m (each of PR_LEVELS, cumulative, 0 = none: the baseline) user i of each tenant
#    subscribes from its device to users i+1..i+m (dialog, presence, dialog, ...), so
#    m = 5 is 5 watchers per watched user, 50,000 subscriptions for 10,000 users.
#    presence/watch.mjs opens PR_PORTAL_SESSIONS WebSocket sessions (with the first
#    level > 0), each watching PR_PORTAL_WATCH colleagues (PUT .../watch).
# 3. At each level: PR_IDLE_S s idle (tsps RSS and CPU, after PR_SETTLE_S s so that the
#    32-s transaction window of the subscriptions has passed), then for each rate of
#    PR_CALL_RATES, PR_CALL_SECONDS s of calls (presence/caller.py: caller i calls
#    i + users/2 of its tenant, the callee rings PR_RING_MS, the call is held
#    PR_HOLD_MS); after PR_DRAIN_S s the window's NOTIFYs and portal messages are
#    matched with the calls (presence/analyze.py: delays per stage, folded, lost) and
#    the subscriptions' last NOTIFY must show every watched user idle.
# 4. Every subscription is ended (Expires: 0; a final NOTIFY each), RSS after; with
#    PR_CHURN=n, n more rounds of subscribing the top level again and ending it (RSS
#    after each: memory reused or kept).
#
# Why a Python client and not SIPp: the delay needs, per NOTIFY, the receive time and
# the body (which call, which state), and the time of the SIP message that caused the
# change, on one clock. SIPp's logs give neither cheaply at 50,000 dialogs; the client
# here takes kernel receive timestamps (SO_TIMESTAMPNS), so its own event loop adds
# latency to answers but not to the measured delays (presence/sipua.py).
#
# Outputs in $OUTDIR: presence.csv (one row per window), presence-windows.jsonl (every
# JSON summary), presence-summary.txt (ratios), raw/ (per window: the calls' timeline,
# every NOTIFY and portal message; targets.json: the users' ids; gzip), subscriber.jsonl,
# watch.jsonl. Analyse a window again: presence/analyze.py --dir raw --label LABEL
# --level M --targets <(zcat raw/targets.json.gz).
# Every process is bounded (coreutils timeout and --max-seconds) and stopped by its PID.

PR_TENANTS=${PR_TENANTS:-10}
PR_USERS=${PR_USERS:-1000}
PR_LEVELS=${PR_LEVELS:-"0 1 5"}            # subscriptions per user (x tenants x users)
PR_CALL_RATES=${PR_CALL_RATES-"20 100 200"}  # empty: no calls (PR_CHURN memory runs)
PR_CALL_SECONDS=${PR_CALL_SECONDS:-30}
PR_HOLD_MS=${PR_HOLD_MS:-2000}
PR_RING_MS=${PR_RING_MS:-1000}
PR_IDLE_S=${PR_IDLE_S:-30}
PR_SETTLE_S=${PR_SETTLE_S:-35}
PR_DRAIN_S=${PR_DRAIN_S:-3}
PR_SUB_RATE=${PR_SUB_RATE:-1000}           # SUBSCRIBEs/s while filling a level
PR_REG_RATE=${PR_REG_RATE:-1000}
PR_PORTAL_SESSIONS=${PR_PORTAL_SESSIONS:-100}
PR_PORTAL_WATCH=${PR_PORTAL_WATCH:-100}
PR_SUB_PORT=${PR_SUB_PORT:-$((UAS_PORT + 1))}
PR_CHURN=${PR_CHURN:-0}                    # extra rounds: subscribe the top level again, end all
PR_MAX_S=${PR_MAX_S:-3600}                 # bound of each long-running client
PR_TOKEN=load-test                         # http.api_token of run.sh's start_tsps
PR_SUB_PID=""
PR_WATCH_PID=""
PR_ROW=0
PR_COLS="label,level,subscriptions,portal_sessions,call_rate,calls,calls_ok,notifies,notify_dups,cseq_gaps,subs_ended_by_server,last_not_idle,transitions_expected,lost,folded,notify_p50_ms,notify_p90_ms,notify_p99_ms,notify_p999_ms,notify_max_ms,dialog_p99_ms,presence_p99_ms,portal_expected,portal_lost,portal_p50_ms,portal_p99_ms,portal_max_ms,portal_rx_minus_at_p99_ms,relay_180_p99_ms,relay_bye_p99_ms,invite_to_180_p99_ms,udp_rcvbuf_errors,window_s,srv_cpu_pct,srv_rss_kb,srv_rss_peak_kb,sub_client_cpu_pct,loadavg_1m,probe"

presence_need() {
  command -v python3 >/dev/null || { echo "missing python3"; exit 1; }
  command -v node >/dev/null || { echo "missing node (Node 20)"; exit 1; }
  command -v jq >/dev/null || { echo "missing jq"; exit 1; }
  if ss -Hlun | awk '{print $4}' | grep -qE "^(127\.0\.0\.1|0\.0\.0\.0|\*):$PR_SUB_PORT\$"; then
    echo "UDP port $PR_SUB_PORT is busy on loopback; aborting"; exit 1
  fi
  if [ ! -d "$HERE/ws/node_modules/ws" ]; then
    echo "installing the ws client's packages (npm ci in load-tests/ws)"
    ( cd "$HERE/ws" && npm ci --no-audit --no-fund ) || { echo "npm ci failed"; exit 1; }
  fi
}

pr_yaml() {  # provisioning: PR_TENANTS tenants x PR_USERS users with one device each
  awk -v t="$PR_TENANTS" -v n="$PR_USERS" 'BEGIN{ print "tenants:";
      for (k = 0; k < t; k++) {
        printf "  - domain: t%d.pr.test\n    name: Presence load %d\n    time_zone: UTC\n    users:\n", k, k;
        for (i = 0; i < n; i++) { u = 1000 + i;
          printf "      - extension: \"%d\"\n        display_name: User %d\n        devices:\n          - sip_username: \"%d\"\n            password: loadpw%d\n", u, u, u, u } } }'
}

pr_py() {  # pr_py SCRIPT ARGS...: a bounded Python client
  nice -n "$NICE_LVL" timeout -k 5 "$((PR_MAX_S + 30))" python3 "$HERE/presence/$1" "${@:2}"
}

pr_sub_start() {
  rm -f "$RUNDIR/pr-sub.ctl"; mkfifo "$RUNDIR/pr-sub.ctl"
  pr_py subscriber.py --server "$IP:$TS_PORT" --tenants "$PR_TENANTS" --users "$PR_USERS" \
      --port "$PR_SUB_PORT" --rate "$PR_SUB_RATE" --log-dir "$PR_RAW" --max-seconds "$PR_MAX_S" \
      < "$RUNDIR/pr-sub.ctl" > "$OUTDIR/subscriber.jsonl" 2> "$OUTDIR/subscriber.stderr" &
  PR_SUB_PID=$!
  exec 8> "$RUNDIR/pr-sub.ctl"
  local i
  for i in $(seq 1 50); do grep -q '"ready"' "$OUTDIR/subscriber.jsonl" && return 0; sleep 0.2; done
  echo "presence: the subscriber did not start"; cat "$OUTDIR/subscriber.stderr"; return 1
}
# (in a subshell: a write to a client that died must not SIGPIPE run.sh itself)
pr_sub_cmd() { [ -n "$PR_SUB_PID" ] && ( echo "$*" >&8 ) 2>/dev/null; }
pr_sub_wait() {  # pr_sub_wait LINES EVENT LIMIT_S: the first line after LINES with "event":EVENT
  local before=$1 ev=$2 limit=$3 i
  for i in $(seq 1 $((limit * 10))); do
    local l; l=$(tail -n +"$((before + 1))" "$OUTDIR/subscriber.jsonl" | grep -m1 "\"event\": \"$ev\"")
    [ -n "$l" ] && { echo "$l"; return 0; }
    kill -0 "$PR_SUB_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "{}"
}
pr_sub_do() {  # pr_sub_do EVENT LIMIT_S CMD...: send a command, wait for its answer
  local ev=$1 limit=$2; shift 2
  local before; before=$(wc -l < "$OUTDIR/subscriber.jsonl")
  pr_sub_cmd "$@"
  pr_sub_wait "$before" "$ev" "$limit"
}
pr_sub_stop() {
  [ -n "$PR_SUB_PID" ] || return 0
  pr_sub_cmd quit; exec 8>&-
  local i
  for i in $(seq 1 100); do kill -0 "$PR_SUB_PID" 2>/dev/null || break; sleep 0.1; done
  kill "$PR_SUB_PID" 2>/dev/null; wait "$PR_SUB_PID" 2>/dev/null
  PR_SUB_PID=""
}

pr_watch_start() {  # portal sessions watching colleagues; returns once all watch
  [ "$PR_PORTAL_SESSIONS" -gt 0 ] || return 0
  rm -f "$RUNDIR/pr-watch.ctl"; mkfifo "$RUNDIR/pr-watch.ctl"
  nice -n "$NICE_LVL" timeout -k 5 "$((PR_MAX_S + 30))" node "$HERE/presence/watch.mjs" \
      --base "ws://$IP:$TS_HTTP" --http "http://$IP:$TS_HTTP" --token "$PR_TOKEN" \
      --targets "$RUNDIR/pr-targets.json" --sessions "$PR_PORTAL_SESSIONS" --watch "$PR_PORTAL_WATCH" \
      --log-dir "$PR_RAW" --max-seconds "$PR_MAX_S" \
      < "$RUNDIR/pr-watch.ctl" > "$OUTDIR/watch.jsonl" 2> "$OUTDIR/watch.stderr" &
  PR_WATCH_PID=$!
  exec 9> "$RUNDIR/pr-watch.ctl"
  local i
  for i in $(seq 1 600); do
    grep -q '"event":"watching"' "$OUTDIR/watch.jsonl" && break
    kill -0 "$PR_WATCH_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "  portal: $(grep -m1 '"event":"watching"' "$OUTDIR/watch.jsonl" || echo 'did not finish watching')"
}
pr_watch_cmd() { [ -n "$PR_WATCH_PID" ] && ( echo "$*" >&9 ) 2>/dev/null; }
pr_watch_mark() {  # pr_watch_mark LABEL: prints the window's summary JSON ("{}" without sessions)
  [ -n "$PR_WATCH_PID" ] || { echo "{}"; return; }
  local before; before=$(wc -l < "$OUTDIR/watch.jsonl")
  pr_watch_cmd mark "$1"
  local i
  for i in $(seq 1 100); do
    [ "$(wc -l < "$OUTDIR/watch.jsonl")" -gt "$before" ] && { tail -n +"$((before + 1))" "$OUTDIR/watch.jsonl" | grep -m1 '"event":"mark"'; return; }
    sleep 0.1
  done
  echo "{}"
}
pr_watch_stop() {
  [ -n "$PR_WATCH_PID" ] || return 0
  pr_watch_cmd quit; exec 9>&-
  local i
  for i in $(seq 1 50); do kill -0 "$PR_WATCH_PID" 2>/dev/null || break; sleep 0.1; done
  kill "$PR_WATCH_PID" 2>/dev/null; wait "$PR_WATCH_PID" 2>/dev/null
  PR_WATCH_PID=""
}

pr_cpu() {  # pr_cpu TICKS0 TICKS1 T0 T1: % of one core
  awk -v a="$1" -v b="$2" -v hz="$HZ" -v x="$3" -v y="$4" 'BEGIN{printf "%.2f", (b-a)/hz/(y-x)*100}'
}

pr_idle() {  # pr_idle LEVEL: tsps RSS and CPU with the level's subscriptions, no calls
  local m=$1 label="pr-idle-m$1"
  wait_quiet; host_gate
  local k0 k1 t0 t1 rss
  k0=$(proc_ticks "$SRV_PID"); t0=$(date +%s.%N)
  sleep "$PR_IDLE_S"
  k1=$(proc_ticks "$SRV_PID"); t1=$(date +%s.%N); rss=$(rss_kb "$SRV_PID")
  local cpu; cpu=$(pr_cpu "$k0" "$k1" "$t0" "$t1")
  local subs=$((m * PR_TENANTS * PR_USERS))
  local w; w=$(awk -v x="$t0" -v y="$t1" 'BEGIN{printf "%.1f", y-x}')
  echo "$label,$m,$subs,$PR_PORTAL_NOW,0,0,0,,,,,,,,,,,,,,,,,,,,,,,,,,$w,$cpu,$rss,$rss,,$(awk '{print $1}' /proc/loadavg),${PROBE/,//}" >> "$OUTDIR/presence.csv"
  echo "  $label: $subs subscriptions, $PR_PORTAL_NOW portal sessions: tsps rss $rss KB, cpu $cpu% of a core over $(awk -v x="$t0" -v y="$t1" 'BEGIN{printf "%.0f", y-x}') s"
}

pr_calls() {  # pr_calls LEVEL RATE: one window of calls, matched with the notifications
  local m=$1 rate=$2 label="pr-calls-m$1-r$2"
  wait_quiet; host_gate
  pr_sub_do mark 10 mark "pre-$label" > /dev/null
  pr_watch_mark "pre-$label" > /dev/null
  local k0 k1 t0 t1 rss0 u0 u1
  rss0=$(rss_kb "$SRV_PID"); k0=$(proc_ticks "$SRV_PID"); t0=$(date +%s.%N); u0=$(udp_errs)
  pr_py caller.py calls --server "$IP:$TS_PORT" --tenants "$PR_TENANTS" --users "$PR_USERS" \
      --phone-port "$UAS_PORT" --uac-port "$UAC_PORT" --rate "$rate" --seconds "$PR_CALL_SECONDS" \
      --hold-ms "$PR_HOLD_MS" --ring-ms "$PR_RING_MS" --start-row "$PR_ROW" \
      --timeline "$PR_RAW/timeline-$label.csv" --max-seconds $((PR_CALL_SECONDS * 3 + 120)) \
      > "$RUNDIR/pr-calls.json" 2> "$OUTDIR/caller-$label.stderr" &
  local cpid=$! peak=$rss0 r
  while kill -0 "$cpid" 2>/dev/null; do
    r=$(rss_kb "$SRV_PID"); [ "$r" -gt "$peak" ] && peak=$r
    sleep 1
  done
  wait "$cpid"
  k1=$(proc_ticks "$SRV_PID"); t1=$(date +%s.%N)
  sleep "$PR_DRAIN_S"
  u1=$(udp_errs)
  local rcvbuf; rcvbuf=$(echo "$u0 $u1" | awk '{print $4-$2}')
  local calls; calls=$(grep '"event": "calls"' "$RUNDIR/pr-calls.json" || echo '{}')
  PR_ROW=$(echo "$calls" | jq -r ".next_row // $PR_ROW")
  local sub portal
  sub=$(pr_sub_do mark 10 mark "$label")
  portal=$(pr_watch_mark "$label"); portal=${portal:-"{}"}
  local an
  an=$(timeout 600 python3 "$HERE/presence/analyze.py" --dir "$PR_RAW" --label "$label" \
      --tenants "$PR_TENANTS" --users "$PR_USERS" --level "$m" --targets "$RUNDIR/pr-targets.json" 2> "$OUTDIR/analyze-$label.stderr" || echo '{}')
  local cpu; cpu=$(pr_cpu "$k0" "$k1" "$t0" "$t1")
  local w; w=$(awk -v x="$t0" -v y="$t1" 'BEGIN{printf "%.1f", y-x}')
  local rss; rss=$(rss_kb "$SRV_PID")
  jq -cn --arg lbl "$label" --argjson calls "$calls" --argjson sub "$sub" --argjson portal "$portal" \
      --argjson an "$an" --arg rcvbuf "$rcvbuf" --arg w "$w" --arg cpu "$cpu" --arg rss "$rss" --arg peak "$peak" \
      '{label: $lbl, window_s: ($w|tonumber), udp_rcvbuf_errors: ($rcvbuf|tonumber), srv_cpu_pct: ($cpu|tonumber), srv_rss_kb: ($rss|tonumber), srv_rss_peak_kb: ($peak|tonumber), calls: $calls, subscriber: $sub, portal: $portal, analysis: $an}' \
      >> "$OUTDIR/presence-windows.jsonl"
  local row; row=$(jq -r --arg m "$m" --arg subs "$((m * PR_TENANTS * PR_USERS))" --arg ps "$PR_PORTAL_NOW" --arg rate "$rate" \
      --arg rcvbuf "$rcvbuf" --arg w "$w" --arg cpu "$cpu" --arg rss "$rss" --arg peak "$peak" --arg load "$(awk '{print $1}' /proc/loadavg)" --arg probe "${PROBE/,//}" '
      def v(x): if x == null then "" else (x|tostring) end;
      [.label, $m, $subs, $ps, $rate, v(.calls.calls), v(.calls.ok), v(.subscriber.notifies), v(.subscriber.dups),
       v(.subscriber.cseq_gaps), v(.subscriber.subscriptions_ended_by_server), v(.subscriber.last_not_idle),
       v(.analysis.notify_all.expected), v(.analysis.notify_all.lost),
       v(((.analysis.dialog_all.folded // 0) + (.analysis.presence_all.folded // 0))),
       v(.analysis.notify_all.p50), v(.analysis.notify_all.p90), v(.analysis.notify_all.p99), v(.analysis.notify_all.p999), v(.analysis.notify_all.max),
       v(.analysis.dialog_all.p99), v(.analysis.presence_all.p99),
       v(.analysis.portal_all.expected), v(.analysis.portal_all.lost), v(.analysis.portal_all.p50), v(.analysis.portal_all.p99), v(.analysis.portal_all.max),
       v(.analysis.portal_rx_minus_at_ms.p99),
       v(.calls.relay_180_ms.p99), v(.calls.relay_bye_ms.p99), v(.calls.invite_to_180_ms.p99),
       $rcvbuf, $w, $cpu, $rss, $peak, v(.subscriber.client_cpu_pct), $load, $probe] | join(",")' \
      <<< "$(tail -1 "$OUTDIR/presence-windows.jsonl")")
  echo "$row" >> "$OUTDIR/presence.csv"
  echo "  $label: calls $(echo "$calls" | jq -c '{calls, ok, statuses}'); tsps cpu $cpu%, rss peak $peak KB"
  echo "    NOTIFY: $(echo "$an" | jq -c '.notify_all') dialog p99 $(echo "$an" | jq -c '.dialog_all.p99') presence p99 $(echo "$an" | jq -c '.presence_all.p99')"
  echo "    subscriber: $(echo "$sub" | jq -c '{notifies, dups, cseq_gaps, missing_notifies, subscriptions_active, subscriptions_ended_by_server, last_not_idle, never_notified, client_cpu_pct}')"
  echo "    portal: $(echo "$an" | jq -c '.portal_all // {}') rx-at $(echo "$an" | jq -c '.portal_rx_minus_at_ms // {}') at-sip $(echo "$an" | jq -c '.portal_at_minus_sip_ms // {}')"
  echo "    relay (SIP in -> SIP out of tsps): 180 $(echo "$calls" | jq -c '.relay_180_ms') bye $(echo "$calls" | jq -c '.relay_bye_ms')"
  [ "$(echo "$an" | jq -r '.lost_samples | length')" = 0 ] || echo "    lost samples: $(echo "$an" | jq -c '.lost_samples')"
  gzip -f "$PR_RAW/timeline-$label.csv" "$PR_RAW/notify-$label.log" 2>/dev/null
  [ -f "$PR_RAW/portal-$label.log" ] && gzip -f "$PR_RAW/portal-$label.log"
  rm -f "$PR_RAW/notify-pre-$label.log" "$PR_RAW/portal-pre-$label.log"
}

pr_report() {  # ratios from presence.csv
  local f="$OUTDIR/presence.csv" max rate
  max=$(echo "$PR_LEVELS" | tr ' ' '\n' | sort -n | tail -1)
  awk -F, -v max="$max" -v rates="$PR_CALL_RATES" -v levels="$PR_LEVELS" -v nu=$((PR_TENANTS * PR_USERS)) '
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    { row[$1] = $0 }
    function v(label, col,   a) { if (!(label in row)) return ""; split(row[label], a, ","); return a[c[col]] }
    function ratio(x, y) { return (x != "" && y != "" && y + 0 > 0) ? sprintf("%.2f", x / y) : "-" }
    END {
      r0 = v("pr-idle-m0", "srv_rss_kb"); nl = split(levels, L, " ")
      for (i = 1; i <= nl; i++) if (L[i] > 0) {
        rn = v("pr-idle-m" L[i], "srv_rss_kb")
        printf "idle: tsps rss %s KB with 0 subscriptions, %s KB with %d (%s portal sessions): %.2f KB per subscription (%sx); cpu %s%% vs %s%% of a core\n", r0, rn, L[i] * nu, v("pr-idle-m" L[i], "portal_sessions"), (rn - r0) / (L[i] * nu), ratio(rn, r0), v("pr-idle-m0", "srv_cpu_pct"), v("pr-idle-m" L[i], "srv_cpu_pct")
        if (i > 1 && L[i-1] > 0) printf "idle: %.2f KB per subscription between %d and %d subscriptions (same portal sessions)\n", (rn - v("pr-idle-m" L[i-1], "srv_rss_kb")) / ((L[i] - L[i-1]) * nu), L[i-1] * nu, L[i] * nu
      }
      nr = split(rates, R, " ")
      for (j = 1; j <= nr; j++) {
        b = "pr-calls-m0-r" R[j]; t = "pr-calls-m" max "-r" R[j]
        printf "calls %s/s: tsps cpu %s%% with 0 subscriptions, %s%% with %d (%sx); relay 180 p99 %s ms vs %s ms (%sx); INVITE->180 p99 %s vs %s ms\n", R[j], v(b, "srv_cpu_pct"), v(t, "srv_cpu_pct"), max * nu, ratio(v(t, "srv_cpu_pct"), v(b, "srv_cpu_pct")), v(b, "relay_180_p99_ms"), v(t, "relay_180_p99_ms"), ratio(v(t, "relay_180_p99_ms"), v(b, "relay_180_p99_ms")), v(b, "invite_to_180_p99_ms"), v(t, "invite_to_180_p99_ms")
        for (i = 1; i <= nl; i++) if (L[i] > 0) {
          l = "pr-calls-m" L[i] "-r" R[j]
          if (v(l, "notifies") > 0) printf "calls %s/s, %d subscriptions: %.1f us of tsps cpu per NOTIFY above the 0-subscription run (%s NOTIFYs/s)\n", R[j], L[i] * nu, (v(l, "srv_cpu_pct") - v(b, "srv_cpu_pct")) / 100 * v(l, "window_s") * 1e6 / v(l, "notifies"), sprintf("%.0f", v(l, "notifies") / v(l, "window_s"))
          printf "calls %s/s, %d subscriptions: NOTIFY delay p50 %s ms, p99 %s, max %s (%s transitions, %s lost, %s folded; %s NOTIFYs, %s retransmitted, %s cseq gaps, %s ended by tsps, %s not idle at the end); p99 / relay-180 p99 = %s; portal p99 %s ms (%s lost)\n", R[j], L[i] * nu, v(l, "notify_p50_ms"), v(l, "notify_p99_ms"), v(l, "notify_max_ms"), v(l, "transitions_expected"), v(l, "lost"), v(l, "folded"), v(l, "notifies"), v(l, "notify_dups"), v(l, "cseq_gaps"), v(l, "subs_ended_by_server"), v(l, "last_not_idle"), ratio(v(l, "notify_p99_ms"), v(l, "relay_180_p99_ms")), v(l, "portal_p99_ms"), v(l, "portal_lost")
        }
      }
    }' "$f" | tee -a "$OUTDIR/presence-summary.txt"
}

pr_unsubscribe_all() {  # Expires: 0 for every subscription; RSS PR_SETTLE_S s later
  local before u; before=$(wc -l < "$OUTDIR/subscriber.jsonl")
  pr_sub_cmd unsubscribe
  u=$(pr_sub_wait "$before" unsubscribed "$PR_MAX_S")
  echo "  unsubscribed: $u; $(pr_sub_wait "$before" unsubscribe-final 60)" | tee -a "$OUTDIR/presence-summary.txt"
  sleep "$PR_SETTLE_S"
  echo "  tsps rss after every subscription ended (${PR_SETTLE_S}s later): $(rss_kb "$SRV_PID") KB" | tee -a "$OUTDIR/presence-summary.txt"
}

presence_phase() {
  presence_need
  local NUSERS=$((PR_TENANTS * PR_USERS))
  [ "$PR_USERS" -ge 12 ] && [ $((PR_USERS % 2)) = 0 ] || { echo "presence: PR_USERS must be even and >= 12"; return 1; }
  # a pair (caller i, callee i + users/2) calls again after tenants * users / 2 calls: that
  # must take longer than a call, or calls are skipped and the analysis cannot tell
  # one call of a user from the next
  local r; for r in $PR_CALL_RATES; do
    awk -v n=$((NUSERS / 2)) -v r="$r" -v d=$(( (PR_RING_MS + PR_HOLD_MS) / 1000 + 2 )) 'BEGIN{exit !(n / r > d)}' ||
      echo "presence: warning: at $r calls/s a pair calls again within $(( (PR_RING_MS + PR_HOLD_MS) / 1000 + 2 )) s (fewer users or a lower rate)"
  done
  PR_RAW="$OUTDIR/raw"; mkdir -p "$PR_RAW"
  PR_PORTAL_NOW=0; PR_ROW=0
  [ -s "$OUTDIR/presence.csv" ] || echo "$PR_COLS" > "$OUTDIR/presence.csv"
  echo "presence: $PR_TENANTS tenants x $PR_USERS users; levels $PR_LEVELS subscriptions per user; calls/s $PR_CALL_RATES for ${PR_CALL_SECONDS}s (ring ${PR_RING_MS}ms, hold ${PR_HOLD_MS}ms); portal $PR_PORTAL_SESSIONS sessions x $PR_PORTAL_WATCH watched" | tee -a "$OUTDIR/machine.txt"
  echo "python: $(python3 --version 2>&1); node: $(node --version)" | tee -a "$OUTDIR/machine.txt"
  start_tsps presence pr_yaml
  local reg
  reg=$(pr_py caller.py register --server "$IP:$TS_PORT" --tenants "$PR_TENANTS" --users "$PR_USERS" \
        --phone-port "$UAS_PORT" --uac-port "$UAC_PORT" --rate "$PR_REG_RATE" --max-seconds 300 2> "$OUTDIR/register.stderr")
  echo "presence: $reg"
  if ! timeout 120 node "$HERE/ws/client.mjs" list --base "http://$IP:$TS_HTTP" --token "$PR_TOKEN" > "$RUNDIR/pr-targets.json"; then
    echo "presence: listing the users failed"; stop_server; return 1
  fi
  gzip -c "$RUNDIR/pr-targets.json" > "$PR_RAW/targets.json.gz"   # user ids of the portal logs
  pr_sub_start || { stop_server; return 1; }
  local m r k0 k1 t0 t1
  for m in $PR_LEVELS; do
    time_left || break
    echo "== presence: $m subscriptions per user ($(date -u +%T)) =="
    if [ "$m" -gt 0 ]; then
      local rss_before; rss_before=$(rss_kb "$SRV_PID")
      k0=$(proc_ticks "$SRV_PID"); t0=$(date +%s.%N)
      local lv; lv=$(pr_sub_do level $((PR_MAX_S)) level "$m")
      k1=$(proc_ticks "$SRV_PID"); t1=$(date +%s.%N)
      echo "  subscribed: $lv; tsps cpu $(pr_cpu "$k0" "$k1" "$t0" "$t1")% of a core meanwhile; rss before $rss_before KB" | tee -a "$OUTDIR/presence-summary.txt"
      if [ "$PR_PORTAL_NOW" = 0 ] && [ "$PR_PORTAL_SESSIONS" -gt 0 ]; then
        pr_watch_start; PR_PORTAL_NOW=$PR_PORTAL_SESSIONS
      fi
    fi
    sleep "$PR_SETTLE_S"
    pr_idle "$m"
    for r in $PR_CALL_RATES; do time_left && pr_calls "$m" "$r"; done
  done
  if [ -n "$PR_SUB_PID" ]; then
    pr_unsubscribe_all
    # memory reused or kept: the same subscriptions again (new dialogs), then ended again
    local top c; top=$(echo "$PR_LEVELS" | tr ' ' '\n' | sort -n | tail -1)
    for c in $(seq 1 "$PR_CHURN"); do
      time_left || break
      echo "  churn $c: $(pr_sub_do level "$PR_MAX_S" level "$top")" | tee -a "$OUTDIR/presence-summary.txt"
      sleep "$PR_SETTLE_S"
      echo "  churn $c: tsps rss with $((top * NUSERS)) subscriptions again (${PR_SETTLE_S}s later): $(rss_kb "$SRV_PID") KB" | tee -a "$OUTDIR/presence-summary.txt"
      pr_unsubscribe_all
    done
  fi
  pr_watch_stop
  pr_sub_stop
  rm -f "$PR_RAW"/notify-open-*.part "$PR_RAW"/portal-open-*.part
  for f in "$PR_RAW"/*.log; do [ -f "$f" ] && gzip -f "$f"; done
  stop_server
  pr_report
}

presence_stop() {  # run.sh's exit trap: the clients of an interrupted phase
  pr_watch_stop
  pr_sub_stop
}
