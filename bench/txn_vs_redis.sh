#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# txn_vs_redis.sh - transactions and scripts, tallyd against redis-server
# with the same durability (fsync always), in the same run.
#
# Both servers run at once on free loopback ports with their data on the
# same disk (under the repo's build/, never tmpfs): tallyd --fsync always,
# redis-server --appendonly yes --appendfsync always --save ''.  For each of
# MULTI + 10 INCRs + EXEC and an EVALSHA fixed-window rate limiter (INCR,
# EXPIRE if new), at 1 and 50 connections with one request in flight each,
# bench_txn drives tally then Redis for SECONDS, REPEATS times alternating;
# the table shows the median requests/s (a transaction or a script call is
# one request), each server's CPU per request (utime+stime of all its
# threads from /proc/PID/stat around the run, us) and tally/Redis for both.
#
# Usage: bench/txn_vs_redis.sh [-d SECONDS] [-r REPEATS]
#   defaults: -d 3, 1 repeat.
# Env: TALLYD (default <repo>/build/tallyd), BENCH_TXN (<repo>/build/bench/
#   bench_txn), REDIS_SERVER.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tallyd=${TALLYD:-$repo/build/tallyd}
bench_txn=${BENCH_TXN:-$repo/build/bench/bench_txn}
redis_server=${REDIS_SERVER:-redis-server}
secs=3
repeats=1
while getopts "d:r:h" opt; do
  case $opt in
    d) secs=$OPTARG ;;
    r) repeats=$OPTARG ;;
    *) bench_usage ;;
  esac
done
[[ -x $tallyd && -x $bench_txn ]] || { echo "txn_vs_redis: build tallyd and bench_txn first" >&2; exit 1; }
bench_need "$redis_server" redis-cli

work=$(bench_workdir txn)
bench_on_exit "$work"
mkdir -p "$work/tally" "$work/redis"
tally_port=$(bench_free_port)
redis_port=$(bench_free_port)
"$tallyd" --dir "$work/tally" --bind 127.0.0.1 --port "$tally_port" \
  --http-port 0 --memcache-port 0 --fsync always --log-level warn 2>"$work/tallyd.log" &
tally_pid=$!
bench_started "$tally_pid"
bench_wait_for "$work/tallyd.log" "$tally_pid" sh -c "redis-cli -p $tally_port PING | grep -q PONG"
"$redis_server" --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" \
  --appendonly yes --appendfsync always --save '' --daemonize no --logfile "$work/redis.log" &
redis_pid=$!
bench_started "$redis_pid"
bench_wait_for "$work/redis.log" "$redis_pid" sh -c "redis-cli -p $redis_port PING | grep -q PONG"

rate() { # port mode conns -> "req/s p50 p99"
  "$bench_txn" -p "$1" -m "$2" -c "$3" -d "$secs" | awk '{print $4, $7, $10}'
}

echo "tallyd vs redis-server $("$redis_server" --version | awk '{print $3}' | sed 's/^v=//'), fsync always, data on $(stat -f -c %T "$work"); ${secs}s per run, median of $repeats"
printf '%-24s | %10s %7s | %10s %7s | %6s %6s\n' request "tally r/s" "cpu us" "redis r/s" "cpu us" "r/s" "cpu"
printf '%.0s-' {1..80}
echo
for mode in multi script; do
  for conns in 1 50; do
    t=() r=()
    for ((i = 0; i < repeats; i++)); do
      t+=("$(bench_cpu_run "$tally_pid" 0 rate "$tally_port" "$mode" "$conns")")
      r+=("$(bench_cpu_run "$redis_pid" 0 rate "$redis_port" "$mode" "$conns")")
    done
    tm=$(bench_median_col 1 "${t[@]}") rm_=$(bench_median_col 1 "${r[@]}")
    tc=$(bench_median_col 4 "${t[@]}") rc=$(bench_median_col 4 "${r[@]}")
    name="MULTI+10 INCR+EXEC"
    [[ $mode == script ]] && name="EVALSHA rate limiter"
    printf '%-24s | %10.0f %7.1f | %10.0f %7.1f | %5.2fx %5.2fx\n' "$name -c $conns" "$tm" "$tc" "$rm_" "$rc" \
      "$(bench_ratio "$tm" "$rm_")" "$(bench_ratio "$tc" "$rc")"
  done
done
