#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# resp_vs_redis.sh - tallyd against redis-server with the same durability,
# driven over RESP, printed as one table per fsync policy, with the CPU each
# server burns per request.
#
# Both servers run at once on free loopback ports with their data on the same
# disk (a directory under the repo's build/, never tmpfs): tallyd with
# --fsync P, redis-server with --appendonly yes --appendfsync P --save ''.
# For P in "always" (the promise tally is built for) and "everysec" (context),
# each config runs against tally then Redis, REPEATS times, alternating:
#   "rate 700/s"   one client sending INCR at a fixed rate, each reply
#                  awaited (build/bench/bench_rate; a modest real service,
#                  where a server that spins while it waits shows it);
#   "-c 1", "-c 50", "-c 50 -P 16"   redis-benchmark -t incr -r 100000.
# The table shows the medians: requests/s, p50 and p99 latency (ms), the
# server's CPU per request (utime+stime of all its threads from
# /proc/PID/stat around the run, in us) and the share of one core it used,
# then tally/Redis for requests/s and for CPU per request (lower is better).
#
# Usage: bench/resp_vs_redis.sh [-n REQUESTS] [-1 REQUESTS_AT_C1] [-r REPEATS]
#                               [-p "always everysec"] [-R RATE] [-d SECONDS]
#   defaults: -n 100000 for the -c 50 configs, 20000 at -c 1, 3 repeats,
#   rate 700/s for 5 s (-R 0 leaves that row out).
# Env: TALLYD (default <repo>/build/tallyd), TALLYD_FLAGS (more flags for
# it, such as "--spin off"), BENCH_RATE (default
# <repo>/build/bench/bench_rate), REDIS_SERVER, REDIS_BENCHMARK.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tallyd=${TALLYD:-$repo/build/tallyd}
redis_server=${REDIS_SERVER:-redis-server}
redis_benchmark=${REDIS_BENCHMARK:-redis-benchmark}
bench_rate=${BENCH_RATE:-$repo/build/bench/bench_rate}

n=100000
n_c1=20000
repeats=3
policies="always everysec"
rate=700
rate_secs=5
while getopts "n:1:r:p:R:d:h" opt; do
  case $opt in
    n) n=$OPTARG ;;
    1) n_c1=$OPTARG ;;
    r) repeats=$OPTARG ;;
    p) policies=$OPTARG ;;
    R) rate=$OPTARG ;;
    d) rate_secs=$OPTARG ;;
    *) bench_usage ;;
  esac
done

[[ -x $tallyd ]] || { echo "resp_vs_redis: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
bench_need "$redis_server" "$redis_benchmark" redis-cli
[[ $rate == 0 || -x $bench_rate ]] || { echo "resp_vs_redis: no bench_rate at $bench_rate (build target bench_rate, or -R 0)" >&2; exit 1; }

work=$(bench_workdir resp)
fs=$(stat -f -c %T "$work")

bench_on_exit "$work"

start_servers() { # policy
  local policy=$1
  rm -rf "$work/tally" "$work/redis"
  mkdir -p "$work/tally" "$work/redis"
  tally_port=$(bench_free_port)
  redis_port=$(bench_free_port)
  # shellcheck disable=SC2086 # TALLYD_FLAGS is a list of flags on purpose
  "$tallyd" --dir "$work/tally" --bind 127.0.0.1 --port "$tally_port" \
    --http-port 0 --memcache-port 0 --fsync "$policy" --log-level warn \
    ${TALLYD_FLAGS:-} 2>"$work/tallyd.log" &
  tally_pid=$!
  bench_started "$tally_pid"
  # --log-level warn may hide the ready line; a PING answered is as good.
  bench_wait_for "$work/tallyd.log" "$tally_pid" sh -c "grep -q ' ready' '$work/tallyd.log' || redis-cli -p $tally_port PING | grep -q PONG"
  "$redis_server" --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" \
    --appendonly yes --appendfsync "$policy" --save '' --daemonize no \
    --logfile "$work/redis.log" &
  redis_pid=$!
  bench_started "$redis_pid"
  bench_wait_for "$work/redis.log" "$redis_pid" sh -c "redis-cli -p $redis_port PING | grep -q PONG"
}

# incr PORT COUNT FLAGS... -> "rps p50 p99" from redis-benchmark --csv
incr() {
  local port=$1 count=$2
  shift 2
  "$redis_benchmark" -h 127.0.0.1 -p "$port" -t incr -r 100000 --csv -n "$count" "$@" |
    bench_incr_csv
}

# bench PID PORT COUNT CONFIG -> "rps p50 p99 cpu_us pct_core"
bench() {
  local pid=$1 port=$2 count=$3 cfg=$4
  if [[ $cfg == rate* ]]; then
    bench_cpu_run "$pid" "$count" "$bench_rate" -p "$port" -r "$rate" -d "$rate_secs"
  else
    # shellcheck disable=SC2086 # cfg is a list of flags on purpose
    bench_cpu_run "$pid" "$count" incr "$port" "$count" $cfg
  fi
}

configs=("-c 1" "-c 50" "-c 50 -P 16")
[[ $rate == 0 ]] || configs=("rate $rate/s" "${configs[@]}")
tally_version=$("$tallyd" --version 2>/dev/null | head -1 || true)
echo "${tally_version:-tallyd} vs redis-server $("$redis_server" --version | awk '{print $3}' | sed 's/^v=//'), data on $fs ($work)"
echo "redis-benchmark -t incr -r 100000; -n $n (-n $n_c1 at -c 1); bench_rate $rate/s for $rate_secs s; median of $repeats runs"
echo "latency in ms; cpu: server utime+stime per request in us, and % of one core over the run"
for policy in $policies; do
  start_servers "$policy"
  echo
  echo "fsync $policy (tallyd --fsync $policy; redis --appendonly yes --appendfsync $policy)"
  printf '%-12s | %8s %6s %6s %7s %5s | %8s %6s %6s %7s %5s | %6s %6s\n' config "tally/s" p50 p99 "cpu us" "%cpu" "redis/s" p50 p99 "cpu us" "%cpu" "rps" "cpu"
  printf '%.0s-' {1..104}
  echo
  for cfg in "${configs[@]}"; do
    count=$n
    [[ $cfg == "-c 1" ]] && count=$n_c1
    [[ $cfg == rate* ]] && count=$(awk -v r="$rate" -v d="$rate_secs" 'BEGIN { printf "%d", r * d }')
    t=() r=()
    for ((i = 0; i < repeats; i++)); do
      t+=("$(bench "$tally_pid" "$tally_port" "$count" "$cfg")") || { echo "resp_vs_redis: run failed against tallyd ($cfg)" >&2; exit 1; }
      r+=("$(bench "$redis_pid" "$redis_port" "$count" "$cfg")") || { echo "resp_vs_redis: run failed against redis ($cfg)" >&2; exit 1; }
    done
    tr=$(bench_median_col 1 "${t[@]}") rr=$(bench_median_col 1 "${r[@]}") tc=$(bench_median_col 4 "${t[@]}") rc=$(bench_median_col 4 "${r[@]}")
    printf '%-12s | %8.0f %6.3f %6.3f %7.1f %5.1f | %8.0f %6.3f %6.3f %7.1f %5.1f | %5.2fx %5.2fx\n' "$cfg" \
      "$tr" "$(bench_median_col 2 "${t[@]}")" "$(bench_median_col 3 "${t[@]}")" "$tc" "$(bench_median_col 5 "${t[@]}")" \
      "$rr" "$(bench_median_col 2 "${r[@]}")" "$(bench_median_col 3 "${r[@]}")" "$rc" "$(bench_median_col 5 "${r[@]}")" \
      "$(bench_ratio "$tr" "$rr")" "$(bench_ratio "$tc" "$rc")"
  done
  bench_stop_all
done
