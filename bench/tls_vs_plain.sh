#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# tls_vs_plain.sh - what TLS costs: RESP INCR (redis-benchmark) and HTTP
# increments (wrk, bench/http_incr.lua) over TLS against the same over plain
# TCP, at 1 and 50 clients, with redis-server serving TLS in the same run for
# RESP.  One tallyd listens on --port, --tls-port, --http-port and
# --https-port at once; redis-server on --port and --tls-port, with
# --appendonly yes --appendfsync P --save ''.  Certificates are made with
# openssl for the run (RSA 2048, TLS 1.3 negotiated).  Each cell is the
# median of REPEATS runs; the last column is TLS/plain for the same server.
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
bench_started $!
bench_wait_for "$work/tallyd.log" $! sh -c "redis-cli -p $t_port PING | grep -q PONG"
"$redis_server" --bind 127.0.0.1 --port "$r_port" --tls-port "$r_tls" "${tls_files[@]}" \
  --dir "$work/redis" --appendonly yes --appendfsync "$policy" --save '' \
  --daemonize no --logfile "$work/redis.log" &
bench_started $!
bench_wait_for "$work/redis.log" $! sh -c "redis-cli -p $r_port PING | grep -q PONG"

# resp PORT ARGS... -> requests/s (median of REPEATS)
resp() {
  local port=$1 i rps=() a b c
  shift
  for ((i = 0; i < repeats; i++)); do
    read -r a b c < <("$redis_benchmark" -h 127.0.0.1 -p "$port" -t incr -r 100000 \
      --csv "$@" | bench_incr_csv) || { echo "tls_vs_plain: redis-benchmark failed on $port" >&2; exit 1; }
    rps+=("$a")
  done
  bench_median "${rps[@]}"
}

# http URL CONNS -> requests/s (median of REPEATS)
http() {
  local url=$1 conns=$2 i rps=() threads=$(( $2 < 2 ? 1 : 2 ))
  for ((i = 0; i < repeats; i++)); do
    rps+=("$(KEYS=100000 "$wrk" -t "$threads" -c "$conns" -d "${secs}s" --latency \
      -s "$lua" "$url" | awk '/^RESULT / { print $2; found = 1 } END { if (!found) exit 1 }')")
  done
  bench_median "${rps[@]}"
}

row() { # label plain tls
  printf '%-28s | %11.0f | %11.0f | %8.2fx\n' "$1" "$2" "$3" "$(bench_ratio "$3" "$2")"
}

echo "$("$tallyd" --version | head -1) and redis-server $("$redis_server" --version | awk '{print $3}' | sed 's/^v=//'); fsync $policy; data on $(stat -f -c %T "$work")"
echo "requests/s, median of $repeats runs; RESP: redis-benchmark -t incr -r 100000 -n $n ($n_c1 at -c 1); HTTP: wrk ${secs}s"
printf '%-28s | %11s | %11s | %9s\n' "" plain TLS TLS/plain
printf '%.0s-' {1..68}
echo
tls_args=(--tls --cacert "$work/ca.crt")
for c in 1 50; do
  count=$n
  ((c == 1)) && count=$n_c1
  row "tally RESP INCR -c $c" "$(resp "$t_port" -n "$count" -c "$c")" \
    "$(resp "$t_tls" -n "$count" -c "$c" "${tls_args[@]}")"
  row "redis RESP INCR -c $c" "$(resp "$r_port" -n "$count" -c "$c")" \
    "$(resp "$r_tls" -n "$count" -c "$c" "${tls_args[@]}")"
  row "tally HTTP increment -c $c" "$(http "http://127.0.0.1:$h_port" "$c")" \
    "$(http "https://127.0.0.1:$h_tls" "$c")"
done
