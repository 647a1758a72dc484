#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# expire_tallyd.sh - what active expiry costs a running tallyd: 1,000,000
# counters loaded with `SET k v PX t` (t random in 5-10 s, via redis-cli
# --pipe), then
#   1. tallyd's CPU (utime + stime from /proc) over the 12 s in which they
#      all expire with no client connected, against the same 12 s with
#      1,000,000 counters that never expire;
#   2. redis-benchmark INCR (-c 50, 10,000 keys) run while a fresh million
#      expires, against the same run with nothing expiring.
# The server runs with --fsync everysec on a real disk (bench_workdir).
#
# Usage: bench/expire_tallyd.sh
# Env: TALLYD (default <repo>/build/tallyd).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ ${1:-} == -h ]] && bench_usage
bench_need redis-cli redis-benchmark awk
tallyd=${TALLYD:-$repo/build/tallyd}
[[ -x $tallyd ]] || { echo "$bench_name: no tallyd at $tallyd" >&2; exit 1; }
work=$(bench_workdir expire)
bench_on_exit "$work"
port=$(bench_free_port)
n=1000000
hz=$(getconf CLK_TCK)

"$tallyd" --dir "$work/data" --bind 127.0.0.1 --port "$port" --http-port 0 \
  --memcache-port 0 --fsync everysec --log-level warn 2>"$work/tallyd.log" &
pid=$!
bench_started "$pid"
bench_wait_for "$work/tallyd.log" "$pid" sh -c "redis-cli -p $port PING | grep -q PONG"

# load PREFIX TTL: n SETs of PREFIX:i, with PX 5000-9999 ms or, for TTL
# "none", no expiry; as raw RESP through redis-cli --pipe.
load() {
  awk -v n="$n" -v p="$1" -v ttl="$2" 'BEGIN {
    srand(1)
    for (i = 0; i < n; i++) {
      k = p ":" i; v = i ""
      if (ttl == "none") {
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
      } else {
        t = int(5000 + rand() * 5000) ""
        printf "*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nPX\r\n$%d\r\n%s\r\n", length(k), k, length(v), v, length(t), t
      }
    }
  }' | redis-cli -p "$port" --pipe >/dev/null
}

cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$pid/stat"
}

expired() {
  redis-cli -p "$port" INFO stats | tr -d '\r' | awk -F: '/^expired_keys:/ { print $2 }'
}

# idle_cpu: tallyd's CPU share of one core (%) over 12 s without clients.
idle_cpu() {
  local a b
  a=$(cpu_ticks)
  sleep 12
  b=$(cpu_ticks)
  awk -v a="$a" -v b="$b" -v hz="$hz" 'BEGIN { printf "%.2f", 100 * (b - a) / hz / 12 }'
}

incr_run() {
  redis-benchmark -p "$port" -t incr -n 300000 -c 50 -r 10000 --csv 2>/dev/null | bench_incr_csv
}

echo "1. tallyd CPU over 12 s, no clients ($n counters)"
load plain none
base_cpu=$(idle_cpu)
e0=$(expired)
load exp1 ttl
exp_cpu=$(idle_cpu)
e1=$(expired)
printf '   %-34s %6s%% of a core\n' "1M counters, none expiring" "$base_cpu"
printf '   %-34s %6s%% of a core (%s expired)\n' "1M counters expiring in 5-10 s" "$exp_cpu" "$((e1 - e0))"

echo "2. redis-benchmark INCR -c 50 (rps p50 p99, ms)"
read -r b_rps b_p50 b_p99 < <(incr_run)
load exp2 ttl
read -r x_rps x_p50 x_p99 < <(incr_run)
sleep 11
e2=$(expired)
printf '   %-34s %8s %6s %6s\n' "nothing expiring" "$b_rps" "$b_p50" "$b_p99"
printf '   %-34s %8s %6s %6s  (%s expired by the end)\n' "1M counters expiring meanwhile" "$x_rps" "$x_p50" "$x_p99" "$((e2 - e1))"
redis-cli -p "$port" INFO keyspace | tr -d '\r' | grep db0 | sed 's/^/   /'
