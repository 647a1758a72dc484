#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# tls_vs_plain.sh - what TLS costs: RESP INCR (redis-benchmark) and HTTP
# increments (wrk, bench/http_incr.lua) over TLS against the same over plain
# TCP, at 1 and 50 clients, with redis-server serving TLS in the same run for
# RESP.  One tallyd listens on --port, --tls-port, --http-port and
# --https-port at once; redis-server on --port and --tls-port, with
# --appendonly yes --appendfsync P --save ''.  Certificates are made with
# openssl for the run (RSA 2048, TLS 1.3 negotiated).  Each cell is the
# median of REPEATS runs, requests/s and the server's CPU per request
# (utime+stime of all its threads from /proc/PID/stat around the run, us);
# the last columns are TLS/plain for the same server.
#
# Usage: bench/tls_vs_plain.sh [-n REQUESTS] [-d WRK_SECONDS] [-r REPEATS]
#                              [-p everysec]
#   defaults: -n 50000 (20000 at -c 1), -d 5, 3 repeats, policy everysec
#   (under "always" every reply waits for an fsync, which hides what TLS
#   costs; -p always shows that too).
# Env: TALLYD (default <repo>/build/tallyd), REDIS_SERVER, REDIS_BENCHMARK, WRK.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tallyd=${TALLYD:-$repo/build/tallyd}
redis_server=${REDIS_SERVER:-redis-server}
redis_benchmark=${REDIS_BENCHMARK:-redis-benchmark}
wrk=${WRK:-wrk}
lua=$repo/bench/http_incr.lua

n=50000
n_c1=20000
secs=5
repeats=3
policy=everysec
while getopts "n:d:r:p:h" opt; do
  case $opt in
    n) n=$OPTARG ;;
    d) secs=$OPTARG ;;
    r) repeats=$OPTARG ;;
    p) policy=$OPTARG ;;
    *) bench_usage ;;
  esac
done

[[ -x $tallyd ]] || { echo "tls_vs_plain: no tallyd at $tallyd (build it or set TALLYD)" >&2; exit 1; }
bench_need "$redis_server" "$redis_benchmark" "$wrk" redis-cli openssl

work=$(bench_workdir tls)
bench_on_exit "$work"

# A CA and a server certificate for 127.0.0.1.
(
  cd "$work"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
    -subj "/CN=bench CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
    -subj "/CN=127.0.0.1" 2>/dev/null
  echo "subjectAltName=IP:127.0.0.1" >ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out server.crt -days 2 -extfile ext 2>/dev/null
)
tls_files=(--tls-cert-file "$work/server.crt" --tls-key-file "$work/server.key"
           --tls-ca-cert-file "$work/ca.crt" --tls-auth-clients no)

mkdir -p "$work/tally" "$work/redis"
t_port=$(bench_free_port) t_tls=$(bench_free_port)
h_port=$(bench_free_port) h_tls=$(bench_free_port)
r_port=$(bench_free_port) r_tls=$(bench_free_port)
"$tallyd" --dir "$work/tally" --bind 127.0.0.1 --port "$t_port" --tls-port "$t_tls" \
  --http-port "$h_port" --https-port "$h_tls" --memcache-port 0 --fsync "$policy" \
  "${tls_files[@]}" >"$work/tallyd.log" 2>&1 &
tally_pid=$!
bench_started $!
bench_wait_for "$work/tallyd.log" $! sh -c "redis-cli -p $t_port PING | grep -q PONG"
"$redis_server" --bind 127.0.0.1 --port "$r_port" --tls-port "$r_tls" "${tls_files[@]}" \
  --dir "$work/redis" --appendonly yes --appendfsync "$policy" --save '' \
  --daemonize no --logfile "$work/redis.log" &
redis_pid=$!
bench_started $!
bench_wait_for "$work/redis.log" $! sh -c "redis-cli -p $r_port PING | grep -q PONG"

# incr PORT ARGS... -> "rps p50 p99" of one redis-benchmark run
incr() {
  local port=$1
  shift
  "$redis_benchmark" -h 127.0.0.1 -p "$port" -t incr -r 100000 --csv "$@" | bench_incr_csv
}

# resp PID PORT ARGS... -> "rps cpu_us" (medians of REPEATS)
resp() {
  local pid=$1 port=$2 i runs=()
  shift 2
  for ((i = 0; i < repeats; i++)); do
    runs+=("$(bench_cpu_run "$pid" 0 incr "$port" "$@")") || { echo "tls_vs_plain: redis-benchmark failed on $port" >&2; exit 1; }
  done
  echo "$(bench_median_col 1 "${runs[@]}") $(bench_median_col 4 "${runs[@]}")"
}

# wrk1 URL CONNS -> "rps p50 p99" of one wrk run
wrk1() {
  local threads=$(( $2 < 2 ? 1 : 2 ))
  KEYS=100000 "$wrk" -t "$threads" -c "$2" -d "${secs}s" --latency -s "$lua" "$1" |
    awk '/^RESULT / { print $2, $3, $4; found = 1 } END { if (!found) exit 1 }'
}

# http URL CONNS -> "rps cpu_us" of tallyd (medians of REPEATS)
http() {
  local i runs=()
  for ((i = 0; i < repeats; i++)); do
    runs+=("$(bench_cpu_run "$tally_pid" 0 wrk1 "$1" "$2")") || { echo "tls_vs_plain: wrk failed on $1" >&2; exit 1; }
  done
  echo "$(bench_median_col 1 "${runs[@]}") $(bench_median_col 4 "${runs[@]}")"
}

row() { # label "plain_rps plain_cpu" "tls_rps tls_cpu"
  local p t
  read -r -a p <<<"$2"
  read -r -a t <<<"$3"
  printf '%-28s | %9.0f %7.1f | %9.0f %7.1f | %8.2fx %6.2fx\n' "$1" "${p[0]}" "${p[1]}" "${t[0]}" "${t[1]}" \
    "$(bench_ratio "${t[0]}" "${p[0]}")" "$(bench_ratio "${t[1]}" "${p[1]}")"
}

echo "$("$tallyd" --version | head -1) and redis-server $("$redis_server" --version | awk '{print $3}' | sed 's/^v=//'); fsync $policy; data on $(stat -f -c %T "$work")"
echo "requests/s and server CPU per request (us), median of $repeats runs; RESP: redis-benchmark -t incr -r 100000 -n $n ($n_c1 at -c 1); HTTP: wrk ${secs}s"
printf '%-28s | %9s %7s | %9s %7s | %9s %7s\n' "" plain "cpu us" TLS "cpu us" "TLS/plain" cpu
printf '%.0s-' {1..88}
echo
tls_args=(--tls --cacert "$work/ca.crt")
for c in 1 50; do
  count=$n
  ((c == 1)) && count=$n_c1
  row "tally RESP INCR -c $c" "$(resp "$tally_pid" "$t_port" -n "$count" -c "$c")" \
    "$(resp "$tally_pid" "$t_tls" -n "$count" -c "$c" "${tls_args[@]}")"
  row "redis RESP INCR -c $c" "$(resp "$redis_pid" "$r_port" -n "$count" -c "$c")" \
    "$(resp "$redis_pid" "$r_tls" -n "$count" -c "$c" "${tls_args[@]}")"
  row "tally HTTP increment -c $c" "$(http "http://127.0.0.1:$h_port" "$c")" \
    "$(http "https://127.0.0.1:$h_tls" "$c")"
done
