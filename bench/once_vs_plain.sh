#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# once_vs_plain.sh - what idempotency costs: INCRBY.ONCE with an id never
# used before against plain INCRBY over RESP (bench_txn -m once / -m incrby),
# and POST .../increment with an Idempotency-Key against the same without
# (wrk, bench/http_incr.lua with ONCE set), on one tallyd, at 1 and 50
# connections with one request in flight each.  Each pair runs REPEATS
# times alternating; the table shows medians of requests/s, p50/p99 (ms)
# and tallyd's CPU per request (utime+stime of all its threads from
# /proc/PID/stat around the run, us), and once/plain.  Issue 15 aims at
# 0.8x or better at 50 connections.
#
# Usage: bench/once_vs_plain.sh [-d SECONDS] [-r REPEATS] [-p POLICY] [-k KEYS]
#   defaults: -d 3, 3 repeats, policy always, 100000 keys.
# Env: TALLYD (default <repo>/build/tallyd), BENCH_TXN (<repo>/build/bench/
#   bench_txn), WRK.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tallyd=${TALLYD:-$repo/build/tallyd}
bench_txn=${BENCH_TXN:-$repo/build/bench/bench_txn}
wrk=${WRK:-wrk}
lua=$repo/bench/http_incr.lua

secs=3
repeats=3
policy=always
keys=100000
while getopts "d:r:p:k:h" opt; do
  case $opt in
    d) secs=$OPTARG ;;
    r) repeats=$OPTARG ;;
    p) policy=$OPTARG ;;
    k) keys=$OPTARG ;;
    *) bench_usage ;;
  esac
done

[[ -x $tallyd ]] || { echo "once_vs_plain: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
[[ -x $bench_txn ]] || { echo "once_vs_plain: no bench_txn at $bench_txn (build target bench_txn)" >&2; exit 1; }
have_wrk=1
command -v "$wrk" >/dev/null || have_wrk=0

work=$(bench_workdir once)
bench_on_exit "$work"
mkdir -p "$work/data"
port=$(bench_free_port)
http_port=$(bench_free_port)
"$tallyd" --dir "$work/data" --bind 127.0.0.1 --port "$port" --http-port "$http_port" \
  --memcache-port 0 --fsync "$policy" --log-level warn 2>"$work/tallyd.log" &
pid=$!
bench_started "$pid"
bench_wait_for "$work/tallyd.log" "$pid" sh -c "redis-cli -p $port PING | grep -q PONG"

# resp MODE CONNS -> "rps p50 p99"
resp() {
  "$bench_txn" -p "$port" -m "$1" -c "$2" -d "$secs" -r "$keys" | awk '{print $4, $7, $10}'
}

# http ONCE CONNS -> "rps p50 p99" (ONCE empty: no Idempotency-Key)
http() {
  local threads=$(( $2 < 2 ? 1 : 2 ))
  ONCE=$1 KEYS=$keys "$wrk" -t "$threads" -c "$2" -d "${secs}s" --latency -s "$lua" \
    "http://127.0.0.1:$http_port" |
    awk '/^RESULT / { print $2, $3, $4; found = 1 } END { if (!found) exit 1 }'
}

echo "$("$tallyd" --version | head -1); fsync $policy; data on $(stat -f -c %T "$work"); ${secs}s per run, median of $repeats; latency in ms"
printf '%-24s | %9s %7s %7s %7s | %9s %7s %7s %7s | %6s %6s\n' "" "plain/s" p50 p99 "cpu us" "once/s" p50 p99 "cpu us" "rps" "cpu"
printf '%.0s-' {1..104}
echo
row() { # label plain-command... -- once-command...
  local label=$1 i p=() o=() plain=() once=()
  shift
  while [[ $1 != -- ]]; do plain+=("$1"); shift; done
  shift
  once=("$@")
  for ((i = 0; i < repeats; i++)); do
    p+=("$(bench_cpu_run "$pid" 0 "${plain[@]}")") || { echo "once_vs_plain: $label failed" >&2; exit 1; }
    o+=("$(bench_cpu_run "$pid" 0 "${once[@]}")") || { echo "once_vs_plain: $label (once) failed" >&2; exit 1; }
  done
  local pr oc pc or_
  pr=$(bench_median_col 1 "${p[@]}") or_=$(bench_median_col 1 "${o[@]}")
  pc=$(bench_median_col 4 "${p[@]}") oc=$(bench_median_col 4 "${o[@]}")
  printf '%-24s | %9.0f %7.3f %7.3f %7.1f | %9.0f %7.3f %7.3f %7.1f | %5.2fx %5.2fx\n' "$label" \
    "$pr" "$(bench_median_col 2 "${p[@]}")" "$(bench_median_col 3 "${p[@]}")" "$pc" \
    "$or_" "$(bench_median_col 2 "${o[@]}")" "$(bench_median_col 3 "${o[@]}")" "$oc" \
    "$(bench_ratio "$or_" "$pr")" "$(bench_ratio "$oc" "$pc")"
}
for conns in 1 50; do
  row "RESP INCRBY(.ONCE) -c $conns" resp incrby "$conns" -- resp once "$conns"
  ((have_wrk)) && row "HTTP increment -c $conns" http "" "$conns" -- http 1 "$conns"
done
