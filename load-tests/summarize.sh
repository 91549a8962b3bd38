#!/usr/bin/env bash
# Prints the tables of docs/benchmarks.md from one run folder of run.sh:
#   load-tests/summarize.sh load-tests/results/<date>
# For each phase: the confirmed maximum (max.txt) and that confirm step's row
# (summary.csv); the steps at REF_RATE (default 1000/s) for latency at a fixed load;
# ratios of tsps against the same-run baselines; and mem.csv.
set -euo pipefail
DIR=${1:?usage: summarize.sh RESULTS_DIR}
REF_RATE=${REF_RATE:-1000}
S="$DIR/summary.csv"
[ -s "$S" ] || { echo "no $S"; exit 1; }

# column numbers by name, so that the table survives new columns
col() { head -1 "$S" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1; }
C_LABEL=$(col label); C_RATE=$(col rate); C_EFF=$(col eff_rate); C_PASS=$(col pass)
C_P50A=$(col p50_180_ms); C_P90A=$(col p90_180_ms); C_P99A=$(col p99_180_ms)
C_P50F=$(col p50_final_ms); C_P90F=$(col p90_final_ms); C_P99F=$(col p99_final_ms)
C_UACUS=$(col uac_us_per_call); C_UASUS=$(col uas_us_per_call); C_SRVUS=$(col srv_us_per_call)
C_SRVPCT=$(col srv_cpu_pct); C_RSS=$(col srv_rss_kb); C_FOREIGN=$(col foreign_cpu_pct)

row() {  # row LABEL RATE: the last step with that label and rate
  awk -F, -v l="$1" -v r="$2" -v cl="$C_LABEL" -v cr="$C_RATE" '$cl==l && $cr==r {line=$0} END{print line}' "$S"
}
fmt() {  # fmt NAME MAX ROW
  echo "$3" | awk -F, -v n="$1" -v m="$2" \
    -v e="$C_EFF" -v a50="$C_P50A" -v a90="$C_P90A" -v a99="$C_P99A" -v f50="$C_P50F" -v f90="$C_P90F" -v f99="$C_P99F" \
    -v u="$C_UACUS" -v s="$C_UASUS" -v k="$C_SRVUS" -v kp="$C_SRVPCT" -v rss="$C_RSS" -v fo="$C_FOREIGN" \
    '{printf "| %s | %s | %s | %s / %s / %s | %s / %s / %s | %s / %s / %s | %s | %s |\n", n, m, $e, $a50, $a90, $a99, $f50, $f90, $f99, $u, $s, $k, $kp, ($rss>0?$rss:"-")}'
}
# "1234", or ">=1234" when every ramp step passed (the true maximum is higher)
maxof() { awk -v l="$1" '$1=="MAX" && $2==l {print ($3==">=") ? ">=" $4 : $3}' "$DIR/max.txt" | tail -1; }

echo "### Maximum sustained rate (confirm step) and its costs"
echo
echo "| phase | max /s | achieved /s | INVITE->180 p50/p90/p99 ms | final p50/p90/p99 ms | CPU us per call: UAC / UAS / server | server % of a core | server RSS KB |"
echo "|---|---|---|---|---|---|---|---|"
for p in direct kam kamauth tsps regdirect regkam regtsps; do
  m=$(maxof "$p"); [ -n "$m" ] || continue
  n=${m#>=}
  case $n in ''|*[!0-9]*) echo "| $p | $m | | | | | | |"; continue ;; esac
  fmt "$p" "$m" "$(row "$p-confirm" "$n")"
done
echo
echo "### Highest passing rate with p99 INVITE->180 under ${P99_LIMIT_MS:=20} ms (any passing step)"
echo
for p in direct kam kamauth tsps; do
  awk -F, -v l="$p" -v lim="$P99_LIMIT_MS" -v cl="$C_LABEL" -v cr="$C_RATE" -v cp="$C_PASS" -v c99="$C_P99A" \
    '($cl==l || $cl==l "-confirm") && $cp==1 && $c99 != "-" && $c99+0 < lim && $cr+0 > best {best=$cr+0; p99=$c99}
     END{ if (best) printf "- %s: %d/s (p99 %s ms)\n", l, best, p99; else printf "- %s: none\n", l }' "$S"
done
echo
echo "### At $REF_RATE/s (first ramp step at that rate)"
echo
echo "| phase | rate | achieved /s | INVITE->180 p50/p90/p99 ms | final p50/p90/p99 ms | CPU us per call: UAC / UAS / server | server % of a core | server RSS KB |"
echo "|---|---|---|---|---|---|---|---|"
for p in direct kam kamauth tsps regdirect regkam regtsps; do
  r=$(awk -F, -v l="$p" -v r="$REF_RATE" -v cl="$C_LABEL" -v cr="$C_RATE" '$cl==l && $cr==r {print; exit}' "$S")
  [ -n "$r" ] && fmt "$p" "$REF_RATE" "$r"
done
echo
echo "### Ratios (same run)"
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ p=""; if (a ~ /^>=/) p=">="; sub(/^>=/, "", a);
  if (b ~ /^>=/) { p=(p=="") ? "<=" : "~"; sub(/^>=/, "", b) }
  if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b > 0) printf "%s%.2f", p, a/b; else printf "n/a" }'; }
t=$(maxof tsps); k=$(maxof kam); ka=$(maxof kamauth); d=$(maxof direct)
rt=$(maxof regtsps); rk=$(maxof regkam); rd=$(maxof regdirect)
echo "- calls/s: tsps / Kamailio proxy = $(ratio "$t" "$k"); tsps / Kamailio auth+usrloc = $(ratio "$t" "$ka"); tsps / direct SIPp = $(ratio "$t" "$d")"
echo "- REGISTER/s: tsps / Kamailio registrar = $(ratio "$rt" "$rk"); tsps / generator ceiling = $(ratio "$rt" "$rd")"
if [ -s "$DIR/mem.csv" ]; then
  echo
  echo "### Memory (mem.csv)"
  echo
  echo '```'
  cat "$DIR/mem.csv"
  echo '```'
fi
