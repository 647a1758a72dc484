#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# callgrind_incr.sh - instructions per INCR request, all of tallyd's threads,
# counted by valgrind's callgrind: a figure that a shared, noisy machine does
# not move, for comparing two builds of the request path (the brief's rule:
# a change to it must not slow the engine).  For each binary, tallyd runs
# under callgrind twice, serving N1 and then N2 INCRs from one redis-benchmark
# client over R random keys; the difference divided by N2-N1 cancels the
# start-up and shutdown cost (dynamic linking, opening the data directory).
#
# Usage: bench/callgrind_incr.sh [-f FSYNC] [-r KEYS] [-q COMMAND] [-c CLIENTS]
#                                [-s redis] BIN [BIN ...]
#   defaults: --fsync no (the request path without the disk), 100 keys (no
#   table growth; -r 100000 shows incremental resizing too); N1 2000, N2
#   12000.  -q sends COMMAND (words split on spaces, redis-benchmark's
#   __rand_int__ replaced per request) instead of INCR, e.g.
#   -r 1000000000 -q 'INCRBY.ONCE k:__rand_int__ 1 id:__rand_int__' for an
#   idempotent increment with a fresh id (issue 15).  -c: redis-benchmark's
#   clients (1).  -s redis: tallyd --store redis:// on a redis-server
#   started for each run (appendonly yes, appendfsync everysec), to count
#   the request path of the Redis store (issue 12); Redis's own
#   instructions are not counted.  Needs valgrind and redis-benchmark.
set -euo pipefail

fsync=no
keys=100
n1=2000
n2=12000
query=""
clients=1
store=engine
usage="usage: $0 [-f FSYNC] [-r KEYS] [-q COMMAND] [-c CLIENTS] [-s redis] BIN [BIN ...]"
while getopts "f:r:q:c:s:" opt; do
    case $opt in
    f) fsync=$OPTARG ;;
    r) keys=$OPTARG ;;
    q) query=$OPTARG ;;
    c) clients=$OPTARG ;;
    s) store=$OPTARG ;;
    *) echo "$usage" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
case $store in
engine|redis) ;;
*) echo "$usage" >&2; exit 2 ;;
esac
if [ -n "$query" ]; then
    read -r -a what <<<"$query"
else
    what=(-t incr)
fi

# Total instructions of one tallyd run serving n INCRs.
count() {
    local bin=$1 n=$2 d port pid i served rport rpid="" extra=()
    d=$(mktemp -d)
    port=$((20000 + RANDOM % 20000))
    if [ "$store" = redis ]; then
        rport=$((port + 1))
        mkdir "$d/redis"
        redis-server --port "$rport" --bind 127.0.0.1 --dir "$d/redis" \
            --save "" --appendonly yes --appendfsync everysec \
            >"$d/redis.log" 2>&1 &
        rpid=$!
        for i in $(seq 50); do
            redis-cli -p "$rport" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
        extra=(--store "redis://127.0.0.1:$rport")
    fi
    valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" "$bin" \
        --dir "$d/data" --port "$port" --http-port 0 --fsync "$fsync" \
        "${extra[@]}" >"$d/log" 2>&1 &
    pid=$!
    for i in $(seq 150); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.2
    done
    # The port is random: check that the server there is this tallyd (its
    # process id is valgrind's) and that it served all n requests, so a
    # collision or a failed benchmark cannot print a figure.
    if ! redis-cli -p "$port" info server 2>/dev/null | tr -d '\r' |
            grep -qx "process_id:$pid"; then
        echo "callgrind_incr.sh: port $port is not this tallyd's" >&2
        kill -TERM "$pid" 2>/dev/null; wait "$pid" || true
        [ -z "$rpid" ] || { kill "$rpid"; wait "$rpid" || true; }
        rm -rf "$d"; return 1
    fi
    redis-benchmark -p "$port" -c "$clients" -n "$n" -r "$keys" -q "${what[@]}" >/dev/null 2>&1
    served=$(redis-cli -p "$port" info stats | tr -d '\r' |
             awk -F: '$1 == "total_commands_processed" { print $2 }')
    if [ "${served:-0}" -lt "$n" ]; then
        echo "callgrind_incr.sh: $bin served ${served:-0} of $n requests" >&2
        kill -TERM "$pid" 2>/dev/null; wait "$pid" || true
        [ -z "$rpid" ] || { kill "$rpid"; wait "$rpid" || true; }
        rm -rf "$d"; return 1
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    [ -z "$rpid" ] || { kill "$rpid"; wait "$rpid" || true; }
    callgrind_annotate "$d/cg.out" 2>/dev/null |
        awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
    rm -rf "$d"
}

printf '%-40s %14s\n' "binary ($store, fsync $fsync, $keys keys, -c $clients${query:+, $query})" "instr/request"
for bin in "$@"; do
    a=$(count "$bin" "$n1") || exit 1
    b=$(count "$bin" "$n2") || exit 1
    printf '%-40s %14d\n' "$bin" $(((b - a) / (n2 - n1)))
done
