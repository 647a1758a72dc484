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
# --fsync everysec (it promises no more than the store gives).
#
# Usage: bench/redis_store_vs_redis.sh [-n REQUESTS] [-1 REQUESTS_AT_C1]
#                                      [-r REPEATS] [-p POLICY]
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
while getopts "n:1:r:p:h" opt; do
  case $opt in
    n) n=$OPTARG ;;
    1) n_c1=$OPTARG ;;
    r) repeats=$OPTARG ;;
    p) policy=$OPTARG ;;
    *) bench_usage ;;
  esac
done

[[ -x $tallyd ]] || { echo "redis_store_vs_redis: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
bench_need "$redis_server" "$redis_benchmark" redis-cli

work=$(bench_workdir redisstore)
bench_on_exit "$work"
mkdir -p "$work/tally" "$work/redis"
tally_port=$(bench_free_port)
redis_port=$(bench_free_port)
"$redis_server" --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" \
  --appendonly yes --appendfsync "$policy" --save '' --daemonize no \
  --logfile "$work/redis.log" &
bench_started $!
bench_wait_for "$work/redis.log" $! sh -c "redis-cli -p $redis_port PING | grep -q PONG"
"$tallyd" --dir "$work/tally" --bind 127.0.0.1 --port "$tally_port" \
  --http-port 0 --memcache-port 0 --fsync everysec \
  --store "redis://127.0.0.1:$redis_port" 2>"$work/tallyd.log" &
tally_pid=$!
bench_started "$tally_pid"
bench_wait_for "$work/tallyd.log" "$tally_pid" sh -c "grep -q 'redis: connected' '$work/tallyd.log'"

# bench PORT ARGS... -> "rps p50 p99" from redis-benchmark --csv: its one
# test's row, whatever the test's name (INCR, or the command given).
bench() {
  local port=$1
  shift
  "$redis_benchmark" -h 127.0.0.1 -p "$port" -r 100000 --csv "$@" |
    awk -F'","' 'NR > 1 && /^"/ { gsub(/"/, ""); n = split($0, f, ","); print f[n-6], f[n-3], f[n-1]; found = 1; exit }
                 END { if (!found) exit 1 }'
}

echo "tallyd --store redis:// vs redis-server $("$redis_server" --version | awk '{print $3}' | sed 's/^v=//') directly (appendfsync $policy)"
echo "redis-benchmark -r 100000 (INCRBY.ONCE rows: -r 10^9); -n $n (-n $n_c1 at -c 1); median of $repeats runs; latency in ms"
printf '%-22s | %11s %7s %7s | %11s %7s %7s | %11s\n' config "tally rps" p50 p99 "redis rps" p50 p99 "tally/redis"
printf '%.0s-' {1..97}
echo
# The idempotent increment on Redis directly, as a team without tally would
# write it; KEYS: counter, id record; ARGV: delta, the record's PX.
direct_once_sha=$(redis-cli -p "$redis_port" SCRIPT LOAD "local v = redis.call('GET', KEYS[2]) if v then return tonumber(v) end v = redis.call('INCRBY', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], v, 'PX', ARGV[2]) return v")
last_tally_rps=0 # the tally rps of the last row, for the ratio below
row() { # label count tally-args -- redis-args (redis-args empty: no redis column)
  local label=$1 count=$2 targs=$3 rargs=$4 i a b c
  local t_rps=() t_p50=() t_p99=() r_rps=() r_p50=() r_p99=()
  for ((i = 0; i < repeats; i++)); do
    # shellcheck disable=SC2086 # the args are lists of flags on purpose
    read -r a b c < <(bench "$tally_port" -n "$count" $targs) || { echo "redis_store_vs_redis: redis-benchmark failed against tallyd ($label)" >&2; exit 1; }
    t_rps+=("$a") t_p50+=("$b") t_p99+=("$c")
    if [[ -n $rargs ]]; then
      # shellcheck disable=SC2086
      read -r a b c < <(bench "$redis_port" -n "$count" $rargs) || { echo "redis_store_vs_redis: redis-benchmark failed against redis ($label)" >&2; exit 1; }
      r_rps+=("$a") r_p50+=("$b") r_p99+=("$c")
    fi
  done
  local tr rr
  tr=$(bench_median "${t_rps[@]}")
  last_tally_rps=$tr
  if [[ -n $rargs ]]; then
    rr=$(bench_median "${r_rps[@]}")
    printf '%-22s | %11.0f %7.3f %7.3f | %11.0f %7.3f %7.3f | %10.2fx\n' "$label" \
      "$tr" "$(bench_median "${t_p50[@]}")" "$(bench_median "${t_p99[@]}")" \
      "$rr" "$(bench_median "${r_p50[@]}")" "$(bench_median "${r_p99[@]}")" \
      "$(bench_ratio "$tr" "$rr")"
  else
    printf '%-22s | %11.0f %7.3f %7.3f | %11s %7s %7s | %11s\n' "$label" \
      "$tr" "$(bench_median "${t_p50[@]}")" "$(bench_median "${t_p99[@]}")" - - - -
  fi
}
row "INCR -c 1" "$n_c1" "-t incr -c 1" "-t incr -c 1"
row "INCR -c 50" "$n" "-t incr -c 50" "-t incr -c 50"
incr_c50=$last_tally_rps
row "INCR -c 50 -P 16" "$n" "-t incr -c 50 -P 16" "-t incr -c 50 -P 16"
row "INCRBY.ONCE -c 50" "$n" "-r 1000000000 -c 50 INCRBY.ONCE k:__rand_int__ 1 id:__rand_int__" \
  "-r 1000000000 -c 50 EVALSHA $direct_once_sha 2 k:__rand_int__ id:__rand_int__ 1 86400000"
printf 'INCRBY.ONCE / INCR through tally at -c 50: %.2fx\n' "$(bench_ratio "$last_tally_rps" "$incr_c50")"
bench_stop_all
