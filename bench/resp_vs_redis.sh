#!/usr/bin/env bash
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

repo=$(cd "$(dirname "$0")/.." && pwd)
tallyd=${TALLYD:-$repo/build/tallyd}
redis_server=${REDIS_SERVER:-redis-server}
redis_benchmark=${REDIS_BENCHMARK:-redis-benchmark}
python=/usr/bin/python3

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
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done

[[ -x $tallyd ]] || { echo "resp_vs_redis: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
for tool in "$redis_server" "$redis_benchmark" redis-cli; do
  command -v "$tool" >/dev/null || { echo "resp_vs_redis: $tool not found" >&2; exit 1; }
done

# The data directories must be on a real disk: an fsync on tmpfs costs
# nothing and would make "always" meaningless for both servers.
mkdir -p "$repo/build"
work=$(mktemp -d "$repo/build/bench-resp.XXXXXX")
if [[ $(stat -f -c %T "$work") == tmpfs ]]; then
  rm -rf "$work"
  work=$(mktemp -d /var/tmp/tally-bench-resp.XXXXXX)
fi
fs=$(stat -f -c %T "$work")

tally_pid= redis_pid=
stop_servers() {
  local pid
  for pid in $tally_pid $redis_pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $tally_pid $redis_pid; do
    wait "$pid" 2>/dev/null || true
  done
  tally_pid= redis_pid=
}
cleanup() {
  stop_servers
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for WHAT PID CHECK...: poll CHECK until it succeeds; fail if PID died.
wait_for() {
  local what=$1 pid=$2 i
  shift 2
  for ((i = 0; i < 1500; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { echo "resp_vs_redis: $what exited; log:" >&2; cat "$work/$what.log" >&2; exit 1; }
    sleep 0.02
  done
  echo "resp_vs_redis: $what not ready after 30 s; log:" >&2
  cat "$work/$what.log" >&2
  exit 1
}

start_servers() { # policy
  local policy=$1
  rm -rf "$work/tally" "$work/redis"
  mkdir -p "$work/tally" "$work/redis"
  tally_port=$(free_port)
  redis_port=$(free_port)
  "$tallyd" --dir "$work/tally" --bind 127.0.0.1 --port "$tally_port" \
    --http-port 0 --memcache-port 0 --fsync "$policy" --log-level warn \
    2>"$work/tallyd.log" &
  tally_pid=$!
  # --log-level warn may hide the ready line; a PING answered is as good.
  wait_for tallyd "$tally_pid" sh -c "grep -q ' ready' '$work/tallyd.log' || redis-cli -p $tally_port PING | grep -q PONG"
  "$redis_server" --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" \
    --appendonly yes --appendfsync "$policy" --save '' --daemonize no \
    --logfile "$work/redis.log" &
  redis_pid=$!
  wait_for redis "$redis_pid" sh -c "redis-cli -p $redis_port PING | grep -q PONG"
}

# bench PORT ARGS... -> "rps p50 p99" from redis-benchmark --csv
bench() {
  local port=$1
  shift
  "$redis_benchmark" -h 127.0.0.1 -p "$port" -t incr -r 100000 --csv "$@" |
    awk -F'","' '/^"INCR"/ { gsub(/"/, ""); split($0, f, ","); print f[2], f[5], f[7]; found = 1 }
                 END { if (!found) exit 1 }'
}

median() { # numbers... -> median
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
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
    tr=$(median "${t_rps[@]}") rr=$(median "${r_rps[@]}")
    printf '%-13s | %11.0f %7.3f %7.3f | %11.0f %7.3f %7.3f | %10.2fx\n' "$cfg" \
      "$tr" "$(median "${t_p50[@]}")" "$(median "${t_p99[@]}")" \
      "$rr" "$(median "${r_p50[@]}")" "$(median "${r_p99[@]}")" \
      "$(awk -v a="$tr" -v b="$rr" 'BEGIN { print (b > 0) ? a / b : 0 }')"
  done
  stop_servers
done
