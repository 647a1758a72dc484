#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# memcache_vs_memcached.sh - tallyd's memcached port against a real memcached,
# same load, same run, printed as one table.
#
# Both servers run at once on free loopback ports.  tallyd keeps its data on
# a real disk (under the repo's build/, never tmpfs) with --fsync P; memcached
# keeps nothing at all, so the ratio is the price of durability plus the
# price of tally itself.  For each config (-c 1, -c 50, -c 50 -P 16),
# bench_mcload sends "incr" on R random keys for D seconds against tally, then
# memcached, REPEATS times alternating; the table shows medians of ops/s and
# of p50/p99 latency (us), each server's CPU per operation (utime+stime of
# all its threads from /proc/PID/stat around the run, us) and share of one
# core, and tally/memcached for ops/s and for CPU per operation.
#
# Usage: bench/memcache_vs_memcached.sh [-d SECONDS] [-r REPEATS] [-k KEYS]
#                                       [-p "always everysec"]
#   defaults: -d 5, 3 repeats, 100000 keys, policy "always".
# Env: TALLYD (default <repo>/build/tallyd), BENCH_MCLOAD (default
# <repo>/build/bench/bench_mcload), MEMCACHED.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tallyd=${TALLYD:-$repo/build/tallyd}
load=${BENCH_MCLOAD:-$repo/build/bench/bench_mcload}
memcached=${MEMCACHED:-memcached}

secs=5
repeats=3
keys=100000
policies="always"
while getopts "d:r:k:p:h" opt; do
  case $opt in
    d) secs=$OPTARG ;;
    r) repeats=$OPTARG ;;
    k) keys=$OPTARG ;;
    p) policies=$OPTARG ;;
    *) bench_usage ;;
  esac
done

[[ -x $tallyd ]] || { echo "memcache_vs_memcached: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
[[ -x $load ]] || { echo "memcache_vs_memcached: no bench_mcload at $load (build target bench_mcload)" >&2; exit 1; }
bench_need "$memcached"

work=$(bench_workdir mc)
fs=$(stat -f -c %T "$work")

bench_on_exit "$work"

# answers_mn PORT: does PORT answer "mn" with "MN"?
answers_mn() {
  "$python" - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)
s.sendall(b"mn\r\n")
assert s.recv(16).startswith(b"MN")
PY
}

start_servers() { # policy
  rm -rf "$work/tally"
  mkdir -p "$work/tally"
  tally_port=$(bench_free_port)
  tally_mc=$(bench_free_port)
  mc_port=$(bench_free_port)
  "$tallyd" --dir "$work/tally" --bind 127.0.0.1 --port "$tally_port" \
    --http-port 0 --memcache-port "$tally_mc" --fsync "$1" --log-level warn \
    2>"$work/tallyd.log" &
  tally_pid=$!
  bench_started "$tally_pid"
  bench_wait_for "$work/tallyd.log" "$tally_pid" answers_mn "$tally_mc"
  local user=()
  [[ $(id -u) == 0 ]] && user=(-u nobody) # memcached refuses to run as root
  "$memcached" -l 127.0.0.1 -p "$mc_port" -U 0 "${user[@]}" 2>"$work/memcached.log" &
  mc_pid=$!
  bench_started "$mc_pid"
  bench_wait_for "$work/memcached.log" "$mc_pid" answers_mn "$mc_port"
}

# run PORT ARGS... -> "ops p50 p99"
run() {
  local port=$1
  shift
  "$load" -p "$port" -r "$keys" -d "$secs" "$@" |
    sed -n 's/.*ops\/s=\([0-9.]*\).*p50_us=\([0-9.]*\).*p99_us=\([0-9.]*\).*/\1 \2 \3/p'
}

configs=("-c 1 -P 1" "-c 50 -P 1" "-c 50 -P 16")
echo "tallyd vs $("$memcached" -V), data on $fs ($work)"
echo "bench_mcload: incr on $keys random keys, ${secs}s per run, median of $repeats runs; latency in us"
echo "cpu: server utime+stime per operation in us, and % of one core over the run"
for policy in $policies; do
  start_servers "$policy"
  echo
  echo "tallyd --fsync $policy; memcached (in memory, no persistence)"
  printf '%-12s | %9s %7s %7s %7s %5s | %9s %7s %7s %7s %5s | %6s %6s\n' config "tally/s" p50 p99 "cpu us" "%cpu" "mc/s" p50 p99 "cpu us" "%cpu" "ops" "cpu"
  printf '%.0s-' {1..110}
  echo
  for cfg in "${configs[@]}"; do
    t=() m=()
    for ((i = 0; i < repeats; i++)); do
      # shellcheck disable=SC2086 # cfg is a list of flags on purpose
      t+=("$(bench_cpu_run "$tally_pid" 0 run "$tally_mc" $cfg)") || { echo "memcache_vs_memcached: run against tallyd failed ($cfg)" >&2; exit 1; }
      # shellcheck disable=SC2086
      m+=("$(bench_cpu_run "$mc_pid" 0 run "$mc_port" $cfg)") || { echo "memcache_vs_memcached: run against memcached failed ($cfg)" >&2; exit 1; }
    done
    to=$(bench_median_col 1 "${t[@]}") mo=$(bench_median_col 1 "${m[@]}")
    tc=$(bench_median_col 4 "${t[@]}") mc=$(bench_median_col 4 "${m[@]}")
    printf '%-12s | %9.0f %7.1f %7.1f %7.2f %5.1f | %9.0f %7.1f %7.1f %7.2f %5.1f | %5.2fx %5.2fx\n' "$cfg" \
      "$to" "$(bench_median_col 2 "${t[@]}")" "$(bench_median_col 3 "${t[@]}")" "$tc" "$(bench_median_col 5 "${t[@]}")" \
      "$mo" "$(bench_median_col 2 "${m[@]}")" "$(bench_median_col 3 "${m[@]}")" "$mc" "$(bench_median_col 5 "${m[@]}")" \
      "$(bench_ratio "$to" "$mo")" "$(bench_ratio "$tc" "$mc")"
  done
  bench_stop_all
done
