#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# redis_store_vs_redis.sh - the cost of tally's hop in front of a Redis:
# redis-benchmark INCR through tallyd --store redis:// and against the same
# redis-server directly, in the same run, at 1 and 50 clients (and 50 with
# -P 16), plus idempotent increments: INCRBY.ONCE through tally (one
# script with its id record, SET NX PX) against the same done on Redis
# directly the classic way (one script: GET the id's record, else INCRBY
# and SET the record PX 24 h), and against plain INCR through tally (the
# last line: what an id costs through tally).  The issue's goal: under 30 %
# extra at 50 clients, thanks to the store's pipelining (one write per loop
# pass).  Those rows draw keys and ids from 10^9 (-r), so nearly every id
# is new: what is measured is the first request, not a replay.
#
# Redis runs with --appendonly yes --appendfsync POLICY; tallyd with
# --fsync everysec (it promises no more than the store gives).  With -C the
# store is a Redis Cluster of three masters instead (no replicas): tallyd
# --store redis+cluster:// against redis-benchmark --cluster on the same
# servers.
#
# CPU: each run reads utime+stime (all threads, /proc, as lib.sh's
# bench_cpu_run) of tallyd and of the redis-server(s) around it, and
# prints the medians in microseconds per request: "t cpu" tallyd's and
# "r cpu" Redis's in the tally column, Redis's alone in the direct one.
# A clock tick is 10 ms, so a run wants a second of CPU for two digits.
#
# Usage: bench/redis_store_vs_redis.sh [-n REQUESTS] [-1 REQUESTS_AT_C1]
#                                      [-r REPEATS] [-p POLICY] [-C]
# Env: TALLYD (default <repo>/build/tallyd), REDIS_SERVER, REDIS_BENCHMARK.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tallyd=${TALLYD:-$repo/build/tallyd}
redis_server=${REDIS_SERVER:-redis-server}
redis_benchmark=${REDIS_BENCHMARK:-redis-benchmark}

n=100000
n_c1=20000
repeats=3
policy=everysec
cluster=0
while getopts "n:1:r:p:Ch" opt; do
  case $opt in
    n) n=$OPTARG ;;
    1) n_c1=$OPTARG ;;
    r) repeats=$OPTARG ;;
    p) policy=$OPTARG ;;
    C) cluster=1 ;;
    *) bench_usage ;;
  esac
done

[[ -x $tallyd ]] || { echo "redis_store_vs_redis: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
bench_need "$redis_server" "$redis_benchmark" redis-cli

work=$(bench_workdir redisstore)
bench_on_exit "$work"
mkdir -p "$work/tally" "$work/redis"
tally_port=$(bench_free_port)
# redis_start PORT DIR [FLAGS...]: one redis-server, waited for.
redis_start() {
  local port=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  "$redis_server" --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --appendonly yes --appendfsync "$policy" --save '' --daemonize no \
    --logfile "$dir/redis.log" "$@" &
  bench_started $!
  redis_pids+=($!)
  bench_wait_for "$dir/redis.log" $! sh -c "redis-cli -p $port PING | grep -q PONG"
}
rc=""  # redis-benchmark's extra flag for the direct column
redis_pids=()  # every redis-server, for the CPU columns
if ((cluster)); then
  # A cluster node's bus listens on port + 10000: keep both free and valid.
  ports=()
  while ((${#ports[@]} < 3)); do
    p=$(bench_free_port)
    ((p <= 55535)) && "$python" -c "import socket; socket.create_server(('127.0.0.1', $p + 10000))" 2>/dev/null && ports+=("$p")
  done
  for p in "${ports[@]}"; do
    redis_start "$p" "$work/redis/$p" --cluster-enabled yes --cluster-config-file nodes.conf
  done
  redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$work/create.log"
  bench_wait_for "$work/create.log" "${bench_pids[0]}" sh -c "redis-cli -p ${ports[0]} CLUSTER INFO | grep -q cluster_state:ok"
  redis_port=${ports[0]}
  store="redis+cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}"
  rc="--cluster"
else
  redis_port=$(bench_free_port)
  redis_start "$redis_port" "$work/redis"
  store="redis://127.0.0.1:$redis_port"
fi
"$tallyd" --dir "$work/tally" --bind 127.0.0.1 --port "$tally_port" \
  --http-port 0 --memcache-port 0 --fsync everysec \
  --store "$store" 2>"$work/tallyd.log" &
tally_pid=$!
bench_started "$tally_pid"
bench_wait_for "$work/tallyd.log" "$tally_pid" sh -c "grep -q 'redis: connected' '$work/tallyd.log' && redis-cli -p $tally_port INCR bench:ready | grep -Eq '^[0-9]+$'"

# bench PORT ARGS... -> "rps p50 p99" from redis-benchmark --csv: its one
# test's row, whatever the test's name (INCR, or the command given).
bench() {
  local port=$1
  shift
  "$redis_benchmark" -h 127.0.0.1 -p "$port" -r 100000 --csv "$@" |
    awk -F'","' '/^"/ && !/^"test"/ { gsub(/"/, ""); n = split($0, f, ","); print f[n-6], f[n-3], f[n-1]; found = 1; exit }
                 END { if (!found) exit 1 }'
}

echo "tallyd --store ${store%%:*}:// vs redis-server $("$redis_server" --version | awk '{print $3}' | sed 's/^v=//') directly (appendfsync $policy)"
echo "redis-benchmark -r 100000 (INCRBY.ONCE rows: -r 10^9); -n $n (-n $n_c1 at -c 1); median of $repeats runs; latency in ms; cpu: us per request"
printf '%-18s | %9s %6s %6s %6s %6s | %9s %6s %6s %6s | %7s\n' config "tally rps" p50 p99 "t cpu" "r cpu" "redis rps" p50 p99 "r cpu" "t/r rps"
printf '%.0s-' {1..101}
echo
# The idempotent increment on Redis directly, as a team without tally would
# write it; KEYS: counter, id record; ARGV: delta, the record's PX.
direct_once_sha=$(redis-cli -p "$redis_port" SCRIPT LOAD "local v = redis.call('GET', KEYS[2]) if v then return tonumber(v) end v = redis.call('INCRBY', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], v, 'PX', ARGV[2]) return v")
last_tally_rps=0 # the tally rps of the last row, for the ratio below
# redis_ticks: the CPU of every redis-server so far, in clock ticks.
redis_ticks() {
  local pid sum=0
  for pid in "${redis_pids[@]}"; do sum=$((sum + $(bench_cpu_ticks "$pid"))); done
  echo "$sum"
}
# measured PORT COUNT ARGS...: "rps p50 p99 tallyd_us redis_us" of one
# redis-benchmark run against PORT, with the CPU per request of tallyd and
# of Redis over it.
measured() {
  local port=$1 count=$2 t0 r0 t1 r1 a b c
  shift 2
  t0=$(bench_cpu_ticks "$tally_pid") r0=$(redis_ticks)
  read -r a b c < <(bench "$port" -n "$count" "$@") || return 1
  t1=$(bench_cpu_ticks "$tally_pid") r1=$(redis_ticks)
  echo "$a $b $c $(bench_cpu_per_req $((t1 - t0)) "$count") $(bench_cpu_per_req $((r1 - r0)) "$count")"
}
row() { # label count tally-args -- redis-args (redis-args empty: no redis column)
  local label=$1 count=$2 targs=$3 rargs=$4 i line
  local t=() r=()
  for ((i = 0; i < repeats; i++)); do
    # shellcheck disable=SC2086 # the args are lists of flags on purpose
    line=$(measured "$tally_port" "$count" $targs) || { echo "redis_store_vs_redis: redis-benchmark failed against tallyd ($label)" >&2; exit 1; }
    t+=("$line")
    if [[ -n $rargs ]]; then
      # shellcheck disable=SC2086
      line=$(measured "$redis_port" "$count" $rargs) || { echo "redis_store_vs_redis: redis-benchmark failed against redis ($label)" >&2; exit 1; }
      r+=("$line")
    fi
  done
  local tr rr
  tr=$(bench_median_col 1 "${t[@]}")
  last_tally_rps=$tr
  printf '%-18s | %9.0f %6.3f %6.3f %6.1f %6.1f | ' "$label" "$tr" \
    "$(bench_median_col 2 "${t[@]}")" "$(bench_median_col 3 "${t[@]}")" \
    "$(bench_median_col 4 "${t[@]}")" "$(bench_median_col 5 "${t[@]}")"
  if [[ -n $rargs ]]; then
    rr=$(bench_median_col 1 "${r[@]}")
    printf '%9.0f %6.3f %6.3f %6.1f | %6.2fx\n' "$rr" \
      "$(bench_median_col 2 "${r[@]}")" "$(bench_median_col 3 "${r[@]}")" \
      "$(bench_median_col 5 "${r[@]}")" "$(bench_ratio "$tr" "$rr")"
  else
    printf '%9s %6s %6s %6s | %7s\n' - - - - -
  fi
}
# On a cluster the direct idempotent row has no equivalent: its two keys
# are in two slots, and its script is loaded on one node only.
direct_once="-r 1000000000 -c 50 EVALSHA $direct_once_sha 2 k:__rand_int__ id:__rand_int__ 1 86400000"
((cluster)) && direct_once=""
row "INCR -c 1" "$n_c1" "-t incr -c 1" "$rc -t incr -c 1"
row "INCR -c 50" "$n" "-t incr -c 50" "$rc -t incr -c 50"
incr_c50=$last_tally_rps
row "INCR -c 50 -P 16" "$n" "-t incr -c 50 -P 16" "$rc -t incr -c 50 -P 16"
row "INCRBY.ONCE -c 50" "$n" "-r 1000000000 -c 50 INCRBY.ONCE k:__rand_int__ 1 id:__rand_int__" \
  "$direct_once"
printf 'INCRBY.ONCE / INCR through tally at -c 50: %.2fx\n' "$(bench_ratio "$last_tally_rps" "$incr_c50")"
bench_stop_all
