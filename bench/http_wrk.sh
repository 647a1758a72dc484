#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# http_wrk.sh - the HTTP front end under load: wrk drives
# POST /v1/counters/bench:<random>/increment (bench/http_incr.lua) against a
# tallyd this script starts, at 1 and at 50 connections, and prints
# requests/s and p50/p99 latency beside the same increments sent over RESP
# (redis-benchmark -t incr) to the same server, so the cost of HTTP+JSON is
# visible, with tallyd's CPU per request for each (utime+stime of all its
# threads from /proc/PID/stat around the run, us).  bench/resp_vs_redis.sh
# compares RESP with Redis itself.
#
# Each row is the median of -r rounds, and HTTP and RESP take turns going
# first (HTTP, RESP, then RESP, HTTP, ...): one run of each swung http/resp
# from 0.71x to 1.05x on this 2-core machine, where the fdatasync and the
# other tenants pace both.  http/resp is the median of the rounds' own
# ratios, each of two runs next to each other; the line under the table
# lists them.
#
# The data directory is on a real disk (under the repo's build/, or /var/tmp
# if that is tmpfs): with --fsync always every answer waits for an fsync, and
# on tmpfs that would cost nothing.
#
# Usage: bench/http_wrk.sh [-d SECONDS] [-p "always everysec"] [-k KEYS]
#                         [-r ROUNDS]
#   defaults: 10 s per run, policy always, 100000 keys, 3 rounds.
# Env: TALLYD (default <repo>/build/tallyd), WRK, REDIS_BENCHMARK.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tallyd=${TALLYD:-$repo/build/tallyd}
wrk=${WRK:-wrk}
redis_benchmark=${REDIS_BENCHMARK:-redis-benchmark}
lua=$repo/bench/http_incr.lua

secs=10
policies=always
keys=100000
rounds=3
while getopts "d:p:k:r:h" opt; do
  case $opt in
    d) secs=$OPTARG ;;
    p) policies=$OPTARG ;;
    k) keys=$OPTARG ;;
    r) rounds=$OPTARG ;;
    *) bench_usage ;;
  esac
done

[[ -x $tallyd ]] || { echo "http_wrk: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
bench_need "$wrk"
have_resp=1
command -v "$redis_benchmark" >/dev/null || have_resp=0

work=$(bench_workdir http)

bench_on_exit "$work"

start_server() { # policy
  rm -rf "$work/data"
  mkdir -p "$work/data"
  port=$(bench_free_port)
  http_port=$(bench_free_port)
  "$tallyd" --dir "$work/data" --bind 127.0.0.1 --port "$port" \
    --http-port "$http_port" --memcache-port 0 --fsync "$1" \
    >"$work/tallyd.log" 2>&1 &
  pid=$!
  bench_started "$pid"
  bench_wait_for "$work/tallyd.log" "$pid" "$python" -c \
    "import urllib.request as u; u.urlopen('http://127.0.0.1:$http_port/readyz', timeout=1)"
}

# http_run CONNS -> "rps p50 p99 requests errors"
http_run() {
  local conns=$1 threads=$(( $1 < 2 ? 1 : 2 ))
  KEYS=$keys "$wrk" -t "$threads" -c "$conns" -d "${secs}s" --latency \
    -s "$lua" "http://127.0.0.1:$http_port" |
    awk '/^RESULT / { print $2, $3, $4, $5, $6; found = 1 } END { if (!found) exit 1 }'
}

# resp_run CONNS -> "rps p50 p99": as many INCRs as HTTP managed, so both
# run for about the same time.
resp_run() {
  local conns=$1 n=$2
  "$redis_benchmark" -h 127.0.0.1 -p "$port" -t incr -r "$keys" -c "$conns" \
    -n "$n" --csv | bench_incr_csv
}

echo "$("$tallyd" --version 2>/dev/null | head -1 || true); wrk $secs s per run, medians of $rounds rounds, $keys random keys; data on $(stat -f -c %T "$work") ($work)"
echo "HTTP: POST /v1/counters/bench:<n>/increment (wrk --latency); RESP: INCR (redis-benchmark), same server; latency in ms"
for policy in $policies; do
  start_server "$policy"
  echo
  echo "fsync $policy"
  printf '%-6s | %9s %7s %7s %6s %7s | %9s %7s %7s %7s | %9s\n' conns "http rps" p50 p99 errors "cpu us" "resp rps" p50 p99 "cpu us" "http/resp"
  printf '%.0s-' {1..98}
  echo
  ratios_line=
  for conns in 1 50; do
    hs=() rs=() ratios=() n=0
    for ((round = 1; round <= rounds; round++)); do
      # RESP sends as many INCRs as HTTP managed in the round before, so
      # both run for about the same time; the first round has HTTP first.
      for side in $( ((round % 2)) && echo "http resp" || echo "resp http"); do
        if [[ $side == http ]]; then
          read -r h_rps h_p50 h_p99 h_cpu _ h_n h_err < <(bench_cpu_run "$pid" 0 http_run "$conns") ||
            { echo "http_wrk: wrk failed at -c $conns; log:" >&2; cat "$work/tallyd.log" >&2; exit 1; }
          hs+=("$h_rps $h_p50 $h_p99 $h_cpu $h_err")
          n=$h_n
        elif ((have_resp)); then
          read -r r_rps r_p50 r_p99 r_cpu _ < <(bench_cpu_run "$pid" "$n" resp_run "$conns" "$n") ||
            { echo "http_wrk: redis-benchmark failed at -c $conns" >&2; exit 1; }
          rs+=("$r_rps $r_p50 $r_p99 $r_cpu")
        fi
      done
      if ((have_resp)); then
        ratios+=("$(bench_ratio "${hs[-1]%% *}" "${rs[-1]%% *}")")
      fi
    done
    r_med=(0 0 0 0) ratio=0
    if ((have_resp)); then
      for col in 1 2 3 4; do r_med[col - 1]=$(bench_median_col "$col" "${rs[@]}"); done
      ratio=$(bench_median "${ratios[@]}")
      ratios_line+="$(printf ' -c %s:' "$conns")$(printf ' %.2f' "${ratios[@]}")"
    fi
    errors=$(printf '%s\n' "${hs[@]}" | awk '{ e += $5 } END { print e + 0 }')
    printf '%-6s | %9.0f %7.3f %7.3f %6d %7.1f | %9.0f %7.3f %7.3f %7.1f | %8.2fx\n' "$conns" \
      "$(bench_median_col 1 "${hs[@]}")" "$(bench_median_col 2 "${hs[@]}")" \
      "$(bench_median_col 3 "${hs[@]}")" "$errors" "$(bench_median_col 4 "${hs[@]}")" \
      "${r_med[0]}" "${r_med[1]}" "${r_med[2]}" "${r_med[3]}" "$ratio"
  done
  [[ -n $ratios_line ]] && echo "http/resp by round:$ratios_line"
  bench_stop_all
done
