#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# resp_vs_redis.sh - tallyd against redis-server with the same durability,
# driven by redis-benchmark over RESP, printed as one table per fsync policy.
#
# Both servers run at once on free loopback ports with their data on the same
# disk (a directory under the repo's build/, never tmpfs): tallyd with
# --fsync P, redis-server with --appendonly yes --appendfsync P --save ''.
# For P in "always" (the promise tally is built for) and "everysec" (context),
# each config (-c 1, -c 50, -c 50 -P 16) runs `redis-benchmark -t incr -r
# 100000` against tally then Redis, REPEATS times, alternating, and the table
# shows the medians: requests/s, p50 and p99 latency (ms), and tally/Redis.
#
# Usage: bench/resp_vs_redis.sh [-n REQUESTS] [-1 REQUESTS_AT_C1] [-r REPEATS]
#                               [-p "always everysec"]
#   defaults: -n 100000 for the -c 50 configs, 20000 at -c 1, 3 repeats.
# Env: TALLYD (default <repo>/build/tallyd), REDIS_SERVER, REDIS_BENCHMARK.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tallyd=${TALLYD:-$repo/build/tallyd}
redis_server=${REDIS_SERVER:-redis-server}
redis_benchmark=${REDIS_BENCHMARK:-redis-benchmark}

n=100000
n_c1=20000
repeats=3
policies="always everysec"
while getopts "n:1:r:p:h" opt; do
  case $opt in
    n) n=$OPTARG ;;
    1) n_c1=$OPTARG ;;
    r) repeats=$OPTARG ;;
    p) policies=$OPTARG ;;
    *) bench_usage ;;
  esac
done

[[ -x $tallyd ]] || { echo "resp_vs_redis: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
bench_need "$redis_server" "$redis_benchmark" redis-cli

work=$(bench_workdir resp)
fs=$(stat -f -c %T "$work")

bench_on_exit "$work"

start_servers() { # policy
  local policy=$1
  rm -rf "$work/tally" "$work/redis"
  mkdir -p "$work/tally" "$work/redis"
  tally_port=$(bench_free_port)
  redis_port=$(bench_free_port)
  "$tallyd" --dir "$work/tally" --bind 127.0.0.1 --port "$tally_port" \
    --http-port 0 --memcache-port 0 --fsync "$policy" --log-level warn \
    2>"$work/tallyd.log" &
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

# bench PORT ARGS... -> "rps p50 p99" from redis-benchmark --csv
bench() {
  local port=$1
  shift
  "$redis_benchmark" -h 127.0.0.1 -p "$port" -t incr -r 100000 --csv "$@" |
    bench_incr_csv
}

configs=("-c 1" "-c 50" "-c 50 -P 16")
tally_version=$("$tallyd" --version 2>/dev/null | head -1 || true)
echo "${tally_version:-tallyd} vs redis-server $("$redis_server" --version | awk '{print $3}' | sed 's/^v=//'), data on $fs ($work)"
echo "redis-benchmark -t incr -r 100000; -n $n (-n $n_c1 at -c 1); median of $repeats runs; latency in ms"
for policy in $policies; do
  start_servers "$policy"
  echo
  echo "fsync $policy (tallyd --fsync $policy; redis --appendonly yes --appendfsync $policy)"
  printf '%-13s | %11s %7s %7s | %11s %7s %7s | %11s\n' config "tally rps" p50 p99 "redis rps" p50 p99 "tally/redis"
  printf '%.0s-' {1..88}
  echo
  for cfg in "${configs[@]}"; do
    count=$n
    [[ $cfg == "-c 1" ]] && count=$n_c1
    t_rps=() t_p50=() t_p99=() r_rps=() r_p50=() r_p99=()
    for ((i = 0; i < repeats; i++)); do
      # shellcheck disable=SC2086 # cfg is a list of flags on purpose
      read -r a b c < <(bench "$tally_port" -n "$count" $cfg) || { echo "resp_vs_redis: redis-benchmark failed against tallyd ($cfg)" >&2; exit 1; }
      t_rps+=("$a") t_p50+=("$b") t_p99+=("$c")
      # shellcheck disable=SC2086
      read -r a b c < <(bench "$redis_port" -n "$count" $cfg) || { echo "resp_vs_redis: redis-benchmark failed against redis ($cfg)" >&2; exit 1; }
      r_rps+=("$a") r_p50+=("$b") r_p99+=("$c")
    done
    tr=$(bench_median "${t_rps[@]}") rr=$(bench_median "${r_rps[@]}")
    printf '%-13s | %11.0f %7.3f %7.3f | %11.0f %7.3f %7.3f | %10.2fx\n' "$cfg" \
      "$tr" "$(bench_median "${t_p50[@]}")" "$(bench_median "${t_p99[@]}")" \
      "$rr" "$(bench_median "${r_p50[@]}")" "$(bench_median "${r_p99[@]}")" \
      "$(bench_ratio "$tr" "$rr")"
  done
  bench_stop_all
done
