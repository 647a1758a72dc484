#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# grow_vs_redis.sh - the latency of single requests while the counter set
# grows from 0 to N counters (default 10,000,000): tallyd beside
# redis-server in the same run, and an older tallyd if OLD_TALLYD is set (to
# show what incremental rehashing changed), printed as one table.
#
# Each row starts a fresh server, then bench_grow sends INCR of N new keys
# over one connection, each reply awaited before the next request (-w 1),
# timing every request; a one-shot rehash of a big table shows as one slow
# request, so the columns that matter are max and p99.9.  The fsync policy
# is "no" (tallyd --fsync no; redis --appendonly no --save '') so the
# latency is the table's, plus one row per server at "everysec" (redis
# --appendonly yes --appendfsync everysec).  Servers run one at a time, so
# each has both cores (shared with whatever else runs); RSS is read from
# /proc at the end of each row; "max at" is the count of keys when the
# slowest reply came (a one-shot rehash shows at a power of two).
#
# With -l it also prints libtally's own latency, in process (bench_growlib:
# no network, and a CPU-clock column that the scheduler's other tenants do
# not inflate), for this build and, if OLD_BENCH_GROWLIB is set, an older
# one (build bench/bench_growlib.c against that libtally.a).
#
# Usage: bench/grow_vs_redis.sh [-n COUNTERS] [-w WINDOW] [-r REPEATS]
#                               [-p "no everysec"] [-l]
#   -r: rounds, alternating servers; the table shows medians.
# Env: TALLYD (default <repo>/build/tallyd), OLD_TALLYD (none by default),
#      BENCH_GROW (default <repo>/build/bench/bench_grow), REDIS_SERVER,
#      BENCH_GROWLIB (default <repo>/build/bench/bench_growlib),
#      OLD_BENCH_GROWLIB (none by default).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tallyd=${TALLYD:-$repo/build/tallyd}
old_tallyd=${OLD_TALLYD:-}
bench_grow=${BENCH_GROW:-$repo/build/bench/bench_grow}
bench_growlib=${BENCH_GROWLIB:-$repo/build/bench/bench_growlib}
old_bench_growlib=${OLD_BENCH_GROWLIB:-}
redis_server=${REDIS_SERVER:-redis-server}

n=10000000
window=1
repeats=1
policies="no everysec"
lib=0
while getopts "n:w:r:p:lh" opt; do
  case $opt in
    n) n=$OPTARG ;;
    w) window=$OPTARG ;;
    r) repeats=$OPTARG ;;
    p) policies=$OPTARG ;;
    l) lib=1 ;;
    *) bench_usage ;;
  esac
done

[[ -x $tallyd ]] || { echo "$bench_name: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
[[ -x $bench_grow ]] || { echo "$bench_name: no bench_grow at $bench_grow (build it or set BENCH_GROW)" >&2; exit 1; }
[[ -z $old_tallyd || -x $old_tallyd ]] || { echo "$bench_name: OLD_TALLYD $old_tallyd is not executable" >&2; exit 1; }
bench_need "$redis_server" redis-cli

work=$(bench_workdir grow)
bench_on_exit "$work"

# run WHAT POLICY -> "n rps p50 p99 p999 max at slow rss_mib" (µs)
run() {
  local what=$1 policy=$2 port pid out rss
  rm -rf "$work/data"
  mkdir -p "$work/data"
  port=$(bench_free_port)
  case $what in
    tally | old)
      local bin=$tallyd
      [[ $what == old ]] && bin=$old_tallyd
      "$bin" --dir "$work/data" --bind 127.0.0.1 --port "$port" --http-port 0 \
        --memcache-port 0 --fsync "$policy" --log-level warn 2>"$work/$what.log" &
      pid=$!
      ;;
    redis)
      local aof=(--appendonly no)
      [[ $policy == no ]] || aof=(--appendonly yes --appendfsync "$policy")
      "$redis_server" --bind 127.0.0.1 --port "$port" --dir "$work/data" \
        "${aof[@]}" --save '' --daemonize no --logfile "$work/$what.log" &
      pid=$!
      ;;
  esac
  bench_started "$pid"
  bench_wait_for "$work/$what.log" "$pid" sh -c "redis-cli -p $port PING | grep -q PONG"
  out=$("$bench_grow" "$port" "$n" "$window") || { echo "$bench_name: bench_grow failed against $what" >&2; exit 1; }
  rss=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
  bench_stop_all
  echo "$out $rss"
}

# column NAME I: the median of field I over the rounds of NAME
column() {
  local -n _rows=$1
  local v=() r
  for r in "${_rows[@]}"; do
    read -ra f <<<"$r"
    v+=("${f[$2]}")
  done
  bench_median "${v[@]}"
}

servers=(tally redis)
[[ -n $old_tallyd ]] && servers=(old tally redis)
echo "INCR of $n new keys, one connection, window $window (1: each reply awaited); latency in µs; median of $repeats round(s)"
echo "tally: $tallyd${old_tallyd:+; old: $old_tallyd}; redis-server $("$redis_server" --version | awk '{print $3}' | sed 's/^v=//')"
printf '%-8s %-16s | %9s %6s %6s %7s %9s %9s %7s %8s\n' fsync server rps p50 p99 p99.9 max "max at" ">=1ms" "RSS MiB"
printf '%.0s-' {1..94}
echo
for policy in $policies; do
  declare -A results=()
  for ((i = 0; i < repeats; i++)); do
    for s in "${servers[@]}"; do
      results[$s.$i]=$(run "$s" "$policy")
    done
  done
  for s in "${servers[@]}"; do
    rows=()
    for ((i = 0; i < repeats; i++)); do rows+=("${results[$s.$i]}"); done
    label=$s
    [[ $s == old ]] && label="tally (old)"
    printf '%-8s %-16s | %9.0f %6.0f %6.0f %7.0f %9.0f %9.0f %7.0f %8.0f\n' "$policy" "$label" \
      "$(column rows 1)" "$(column rows 2)" "$(column rows 3)" "$(column rows 4)" \
      "$(column rows 5)" "$(column rows 6)" "$(column rows 7)" "$(column rows 8)"
  done
  unset results
done

((lib)) || exit 0
echo
echo "libtally in process (bench_growlib, TALLY_SYNC_NO, log in $work): tally_incr of $n new keys; µs"
printf '%-12s | %9s %6s %6s %7s %9s %7s %9s | %9s %9s %9s %7s | %8s | %9s %9s %7s\n' build "calls/s" p50 p99 p99.9 max ">=1ms" "max at" "cpu p99.9" "cpu max" "at" ">=1ms" "RSS MiB" "step p99.9" "step max" ">=1ms"
printf '%.0s-' {1..160}
echo
libs=("new:$bench_growlib")
[[ -n $old_bench_growlib ]] && libs=("old:$old_bench_growlib" "${libs[@]}")
for l in "${libs[@]}"; do
  [[ -x ${l#*:} ]] || { echo "$bench_name: no bench_growlib at ${l#*:}" >&2; exit 1; }
  read -ra f < <(TMPDIR=$work "${l#*:}" "$n")
  # The CPU columns after RSS (calls and tally_step slices of 1 ms or more)
  # are missing from a bench_growlib older than them: shown as "-".
  printf '%-12s | %9.0f %6.0f %6.0f %7.0f %9.0f %7.0f %9.0f | %9.0f %9.0f %9.0f %7s | %8.0f | %9s %9s %7s\n' "${l%%:*}" \
    "${f[1]}" "${f[2]}" "${f[3]}" "${f[4]}" "${f[5]}" "${f[6]}" "${f[7]}" "${f[8]}" "${f[9]}" "${f[10]}" "${f[12]:--}" "${f[11]}" \
    "${f[13]:--}" "${f[14]:--}" "${f[15]:--}"
done
