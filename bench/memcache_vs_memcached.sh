#!/usr/bin/env bash
# memcache_vs_memcached.sh - tallyd's memcached port against a real memcached,
# same load, same run, printed as one table.
#
# Both servers run at once on free loopback ports.  tallyd keeps its data on
# a real disk (under the repo's build/, never tmpfs) with --fsync P; memcached
# keeps nothing at all, so the ratio is the price of durability plus the
# price of tally itself.  For each config (-c 1, -c 50, -c 50 -P 16),
# bench_mcload sends "incr" on R random keys for D seconds against tally, then
# memcached, REPEATS times alternating; the table shows medians of ops/s and
# of p50/p99 latency (us) and tally/memcached.
#
# Usage: bench/memcache_vs_memcached.sh [-d SECONDS] [-r REPEATS] [-k KEYS]
#                                       [-p "always everysec"]
#   defaults: -d 5, 3 repeats, 100000 keys, policy "always".
# Env: TALLYD (default <repo>/build/tallyd), BENCH_MCLOAD (default
# <repo>/build/bench/bench_mcload), MEMCACHED.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tallyd=${TALLYD:-$repo/build/tallyd}
load=${BENCH_MCLOAD:-$repo/build/bench/bench_mcload}
memcached=${MEMCACHED:-memcached}
python=/usr/bin/python3

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
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done

[[ -x $tallyd ]] || { echo "memcache_vs_memcached: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
[[ -x $load ]] || { echo "memcache_vs_memcached: no bench_mcload at $load (build target bench_mcload)" >&2; exit 1; }
command -v "$memcached" >/dev/null || { echo "memcache_vs_memcached: $memcached not found" >&2; exit 1; }

# An fsync on tmpfs costs nothing and would flatter tally.
mkdir -p "$repo/build"
work=$(mktemp -d "$repo/build/bench-mc.XXXXXX")
if [[ $(stat -f -c %T "$work") == tmpfs ]]; then
  rm -rf "$work"
  work=$(mktemp -d /var/tmp/tally-bench-mc.XXXXXX)
fi
fs=$(stat -f -c %T "$work")

tally_pid= mc_pid=
stop_servers() {
  local pid
  for pid in $tally_pid $mc_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $tally_pid $mc_pid; do wait "$pid" 2>/dev/null || true; done
  tally_pid= mc_pid=
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

# wait_port WHAT PID PORT: until PORT answers "mn" with "MN"; fail if PID died.
wait_port() {
  local what=$1 pid=$2 port=$3 i
  for ((i = 0; i < 1500; i++)); do
    "$python" - "$port" >/dev/null 2>&1 <<'PY' && return 0
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)
s.sendall(b"mn\r\n")
assert s.recv(16).startswith(b"MN")
PY
    kill -0 "$pid" 2>/dev/null || { echo "memcache_vs_memcached: $what exited; log:" >&2; cat "$work/$what.log" >&2; exit 1; }
    sleep 0.02
  done
  echo "memcache_vs_memcached: $what not ready after 30 s" >&2
  exit 1
}

start_servers() { # policy
  rm -rf "$work/tally"
  mkdir -p "$work/tally"
  tally_port=$(free_port)
  tally_mc=$(free_port)
  mc_port=$(free_port)
  "$tallyd" --dir "$work/tally" --bind 127.0.0.1 --port "$tally_port" \
    --http-port 0 --memcache-port "$tally_mc" --fsync "$1" --log-level warn \
    2>"$work/tallyd.log" &
  tally_pid=$!
  wait_port tallyd "$tally_pid" "$tally_mc"
  local user=()
  [[ $(id -u) == 0 ]] && user=(-u nobody) # memcached refuses to run as root
  "$memcached" -l 127.0.0.1 -p "$mc_port" -U 0 "${user[@]}" 2>"$work/memcached.log" &
  mc_pid=$!
  wait_port memcached "$mc_pid" "$mc_port"
}

median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
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
for policy in $policies; do
  start_servers "$policy"
  echo
  echo "tallyd --fsync $policy; memcached (in memory, no persistence)"
  printf '%-12s | %10s %8s %8s | %10s %8s %8s | %9s\n' config "tally op/s" p50 p99 "mc op/s" p50 p99 "tally/mc"
  printf '%.0s-' {1..86}
  echo
  for cfg in "${configs[@]}"; do
    t_ops=() t_p50=() t_p99=() m_ops=() m_p50=() m_p99=()
    for ((i = 0; i < repeats; i++)); do
      # shellcheck disable=SC2086 # cfg is a list of flags on purpose
      read -r a b c < <(run "$tally_mc" $cfg) || { echo "memcache_vs_memcached: run against tallyd failed ($cfg)" >&2; exit 1; }
      t_ops+=("$a") t_p50+=("$b") t_p99+=("$c")
      # shellcheck disable=SC2086
      read -r a b c < <(run "$mc_port" $cfg) || { echo "memcache_vs_memcached: run against memcached failed ($cfg)" >&2; exit 1; }
      m_ops+=("$a") m_p50+=("$b") m_p99+=("$c")
    done
    to=$(median "${t_ops[@]}") mo=$(median "${m_ops[@]}")
    printf '%-12s | %10.0f %8.1f %8.1f | %10.0f %8.1f %8.1f | %8.2fx\n' "$cfg" \
      "$to" "$(median "${t_p50[@]}")" "$(median "${t_p99[@]}")" \
      "$mo" "$(median "${m_p50[@]}")" "$(median "${m_p99[@]}")" \
      "$(awk -v a="$to" -v b="$mo" 'BEGIN { print (b > 0) ? a / b : 0 }')"
  done
  stop_servers
done
