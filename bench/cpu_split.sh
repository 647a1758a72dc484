#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# cpu_split.sh - where a server's CPU per request goes: user time (its own
# code and libraries) and system time (the kernel working for it: sockets,
# epoll, the log's writes and fdatasyncs, thread wake-ups), per INCR, for
# one or more tallyd builds beside redis-server with the same durability.
#
# Every round starts each server afresh on an empty data directory on a real
# disk (tallyd --fsync P; redis-server --appendonly yes --appendfsync P
# --save ''), runs one redis-benchmark -t incr -r 100000 against it, reads
# its utime and stime from /proc/PID/stat around the run, and stops it.
# The servers take turns, and the order turns with the rounds, so that no
# build always runs first or after the same one: on a shared machine that
# order moved resp_vs_redis.sh's ratios by up to 0.2x (bench/README.md).
# The table shows the medians over the rounds and total/Redis.
#
# Usage: bench/cpu_split.sh [-c CLIENTS] [-P PIPELINE] [-n REQUESTS]
#                           [-r ROUNDS] [-p POLICY] [TALLYD ...]
#   defaults: -c 50, -P 1, -n 100000, 6 rounds, policy always, and
#   <repo>/build/tallyd.  Several TALLYD binaries compare builds (before
#   and after a change) in the same rounds.
# Env: REDIS_SERVER, REDIS_BENCHMARK.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

redis_server=${REDIS_SERVER:-redis-server}
redis_benchmark=${REDIS_BENCHMARK:-redis-benchmark}

clients=50
pipeline=1
n=100000
rounds=6
policy=always
while getopts "c:P:n:r:p:h" opt; do
  case $opt in
    c) clients=$OPTARG ;;
    P) pipeline=$OPTARG ;;
    n) n=$OPTARG ;;
    r) rounds=$OPTARG ;;
    p) policy=$OPTARG ;;
    *) bench_usage ;;
  esac
done
shift $((OPTIND - 1))
builds=("$@")
((${#builds[@]})) || builds=("$repo/build/tallyd")
for b in "${builds[@]}"; do
  [[ -x $b ]] || { echo "cpu_split: no tallyd at $b" >&2; exit 1; }
done
bench_need "$redis_server" "$redis_benchmark" redis-cli

work=$(bench_workdir split)
bench_on_exit "$work"

# start NAME BIN -> sets pid and port: one server on a fresh directory.
start() {
  local name=$1 bin=$2
  rm -rf "$work/data"
  mkdir -p "$work/data"
  port=$(bench_free_port)
  if [[ $name == redis ]]; then
    "$redis_server" --bind 127.0.0.1 --port "$port" --dir "$work/data" \
      --appendonly yes --appendfsync "$policy" --save '' --daemonize no \
      --logfile "$work/server.log" &
  else
    "$bin" --dir "$work/data" --bind 127.0.0.1 --port "$port" --http-port 0 \
      --memcache-port 0 --fsync "$policy" 2>"$work/server.log" &
  fi
  pid=$!
  bench_started "$pid"
  bench_wait_for "$work/server.log" "$pid" sh -c "redis-cli -p $port PING | grep -q PONG"
}

# run -> "rps user_us sys_us total_us" per request
run() {
  local c0u c0s c1u c1s rps
  read -r c0u c0s < <(bench_cpu_split "$pid")
  rps=$("$redis_benchmark" -h 127.0.0.1 -p "$port" -t incr -r 100000 --csv \
    -n "$n" -c "$clients" -P "$pipeline" | bench_incr_csv | awk '{ print $1 }') || return 1
  read -r c1u c1s < <(bench_cpu_split "$pid")
  echo "$rps $(bench_cpu_per_req $((c1u - c0u)) "$n") $(bench_cpu_per_req $((c1s - c0s)) "$n") $(bench_cpu_per_req $((c1u - c0u + c1s - c0s)) "$n")"
}

names=() bins=()
for b in "${builds[@]}"; do names+=("tally:$b") bins+=("$b"); done
names+=(redis) bins+=("")
k=${#names[@]}
declare -A rows
for ((r = 0; r < rounds; r++)); do
  for ((j = 0; j < k; j++)); do
    i=$(((r + j) % k))
    start "${names[i]}" "${bins[i]}"
    rows[$i]+="$(run)"$'\n' || { echo "cpu_split: run failed (${names[i]})" >&2; exit 1; }
    bench_stop_all
  done
done

echo "redis-benchmark -t incr -r 100000 -n $n -c $clients -P $pipeline; fsync $policy; data on $(stat -f -c %T "$work"); median of $rounds rounds"
echo "cpu: server utime and stime per request, us (all threads, /proc/PID/stat)"
printf '%-40s | %9s %8s %8s %8s | %8s %8s\n' server "req/s" "user" "sys" "total" "total" "user"
printf '%-40s | %9s %8s %8s %8s | %8s %8s\n' "" "" "" "" "" "/redis" "/redis"
printf '%.0s-' {1..100}
echo
ri=$((k - 1))
mapfile -t rr < <(printf '%s' "${rows[$ri]}")
redis_total=$(bench_median_col 4 "${rr[@]}") redis_user=$(bench_median_col 2 "${rr[@]}")
for ((i = 0; i < k; i++)); do
  mapfile -t v < <(printf '%s' "${rows[$i]}")
  name=${names[i]}
  [[ $name == tally:* ]] && name="tally $(basename "$(dirname "${name#tally:}")")/$(basename "${name#tally:}")"
  tot=$(bench_median_col 4 "${v[@]}") usr=$(bench_median_col 2 "${v[@]}")
  printf '%-40s | %9.0f %8.2f %8.2f %8.2f | %7.2fx %7.2fx\n' "$name" \
    "$(bench_median_col 1 "${v[@]}")" "$usr" "$(bench_median_col 3 "${v[@]}")" "$tot" \
    "$(bench_ratio "$tot" "$redis_total")" "$(bench_ratio "$usr" "$redis_user")"
done
