#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# pg_hot.sh - tally over PostgreSQL against PostgreSQL's own hot-row limit,
# one server, one run, printed as one table.
#
# One PostgreSQL 15 server (fsync on, synchronous_commit on) runs on a free
# loopback port with its data on a real disk (under the repo's build/, never
# tmpfs).  Its database "pgb" holds counters(k bigint primary key, n bigint)
# with KEYS rows for pgbench; tally gets a database of its own, "tally".
# Each row runs the pgbench side and then the tally side, REPEATS times,
# alternating, and shows medians of requests/s and tally/pgbench:
#   - pgbench -M prepared -f a script of `UPDATE counters SET n = n + 1
#     WHERE k = $1` on one key (hot) or on a random one of KEYS (random),
#     each UPDATE its own transaction, as a client without tally would do;
#   - redis-benchmark -t incr (INCR; -r KEYS for random keys) through
#     tallyd --store postgresql://.../tally --fsync always;
#   - at random keys also tallyd on its own engine (--dir, --fsync always);
#   - then two tallyd instances on the one database, each driven by half
#     the clients at once, against one tallyd with all of them.
# us/req is the tallyds' CPU per request (utime+stime over the run), and
# incr/txn the increments per PostgreSQL transaction (INFO store_pg_ops /
# store_pg_transactions).
# The tally columns say n/a when the tallyd has no --store.
#
# Usage: bench/pg_hot.sh [-d SECONDS] [-r REPEATS] [-k KEYS]
#   defaults: -d 5 seconds per run, 3 repeats, 100000 keys.
# Env: TALLYD (default <repo>/build/tallyd), PG_BIN (default
# /usr/lib/postgresql/15/bin), REDIS_BENCHMARK.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tallyd=${TALLYD:-$repo/build/tallyd}
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
redis_benchmark=${REDIS_BENCHMARK:-redis-benchmark}

secs=5
repeats=3
keys=100000
while getopts "d:r:k:h" opt; do
  case $opt in
    d) secs=$OPTARG ;;
    r) repeats=$OPTARG ;;
    k) keys=$OPTARG ;;
    *) bench_usage ;;
  esac
done

[[ -x $pg_bin/postgres ]] || { echo "pg_hot: no PostgreSQL 15 at $pg_bin (scripts/deps.sh test installs it)" >&2; exit 1; }
bench_need "$redis_benchmark" redis-cli
have_tally=0
if [[ -x $tallyd && $("$tallyd" --help 2>&1 || true) == *--store* ]]; then
  have_tally=1
fi

work=$(bench_workdir pghot)
fs=$(stat -f -c %T "$work")
chmod 755 "$work"
pgdata=$work/pg
pgsock=$work/s
mkdir -p "$pgsock"

# PostgreSQL refuses to run as root: as root, run its programs as the
# postgres user the Debian package creates.
as_pg=()
if ((EUID == 0)); then
  as_pg=(runuser -u postgres --)
  chown postgres:postgres "$work" "$pgsock"
fi

pg_port=$(bench_free_port)
pg_started=0
stop_pg() {
  ((pg_started)) || return 0
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
  pg_started=0
}
# shellcheck disable=SC2064 # expanded now on purpose
trap "bench_stop_all; stop_pg; rm -rf $(printf %q "$work")" EXIT
trap 'exit 130' INT TERM

psql_q() { # db sql
  "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d "$1" -c "$2"
}

"${as_pg[@]}" "$pg_bin/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pgdata" -l "$work/postgres.log" -w -t 60 \
  -o "-p $pg_port -k $pgsock -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200 -c shared_buffers=128MB" \
  start >/dev/null
pg_started=1
psql_q postgres "CREATE DATABASE pgb" >/dev/null
psql_q postgres "CREATE DATABASE tally" >/dev/null
psql_q pgb "CREATE TABLE counters (k bigint PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
            INSERT INTO counters (k) SELECT g FROM generate_series(1, $keys) g" >/dev/null
psql_q pgb "VACUUM ANALYZE counters" >/dev/null

cat >"$work/hot.sql" <<'EOF'
\set k 1
UPDATE counters SET n = n + 1 WHERE k = :k;
EOF
cat >"$work/random.sql" <<EOF
\\set k random(1, $keys)
UPDATE counters SET n = n + 1 WHERE k = :k;
EOF

# pgbench_tps SCRIPT CLIENTS -> transactions/s (each one UPDATE)
pgbench_tps() {
  local jobs=$(($2 < 2 ? 1 : 2))
  "$pg_bin/pgbench" -n -h 127.0.0.1 -p "$pg_port" -U postgres -M prepared \
    -f "$work/$1.sql" -c "$2" -j "$jobs" -T "$secs" pgb 2>&1 |
    awk '/^tps = / { print $3; found = 1 } END { if (!found) exit 1 }'
}

tally_ports=()
# start_tally N [--store URI | --dir DIR]: start N tallyds with those
# arguments; their RESP ports go to tally_ports.
start_tally() {
  local n=$1 i port pid
  shift
  tally_ports=()
  for ((i = 0; i < n; i++)); do
    port=$(bench_free_port)
    mkdir -p "$work/t$i"
    "$tallyd" --dir "$work/t$i" --bind 127.0.0.1 --port "$port" --http-port 0 \
      --memcache-port 0 --fsync always --log-level warn "$@" 2>"$work/tallyd$i.log" &
    pid=$!
    bench_started "$pid"
    bench_wait_for "$work/tallyd$i.log" "$pid" sh -c "redis-cli -p $port PING | grep -q PONG"
    tally_ports+=("$port")
  done
}

# info_num PORT NAME: a number from tallyd's INFO (0 if absent).
info_num() {
  redis-cli -p "$1" INFO | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'
}

# incr_rps CLIENTS RANDOM(0|1): INCR through every tallyd in tally_ports at
# once, CLIENTS split between them; prints their summed requests/s, the
# tallyds' CPU per request (us, all of them over all requests) and the
# increments per PostgreSQL transaction (INFO store_pg_ops /
# store_pg_transactions; 0 on the engine).  The request count is sized
# from SECS at a guess of the rate, so each run lasts about as long as
# pgbench's.
incr_rps() {
  local clients=$1 random=$2 n per port out=() pids=() f total=0 rps i
  local ticks0=0 ticks1=0 ops0=0 ops1=0 tx0=0 tx1=0 pid
  n=${#tally_ports[@]}
  per=$((clients / n))
  local count=$((secs * (clients == 1 ? 1000 : 20000) / n))
  local r=()
  ((random)) && r=(-r "$keys")
  for pid in "${bench_pids[@]}"; do ticks0=$((ticks0 + $(bench_cpu_ticks "$pid"))); done
  for port in "${tally_ports[@]}"; do
    ops0=$((ops0 + $(info_num "$port" store_pg_ops)))
    tx0=$((tx0 + $(info_num "$port" store_pg_transactions)))
  done
  for port in "${tally_ports[@]}"; do
    f=$(mktemp "$work/rb.XXXXXX")
    out+=("$f")
    "$redis_benchmark" -h 127.0.0.1 -p "$port" -t incr -c "$per" -n "$count" "${r[@]}" --csv >"$f" 2>&1 &
    pids+=($!)
  done
  for f in "${pids[@]}"; do wait "$f" || true; done
  for pid in "${bench_pids[@]}"; do ticks1=$((ticks1 + $(bench_cpu_ticks "$pid"))); done
  for port in "${tally_ports[@]}"; do
    ops1=$((ops1 + $(info_num "$port" store_pg_ops)))
    tx1=$((tx1 + $(info_num "$port" store_pg_transactions)))
  done
  for f in "${out[@]}"; do
    read -r rps _ < <(bench_incr_csv <"$f") || { echo "pg_hot: redis-benchmark failed:" >&2; cat "$f" >&2; exit 1; }
    total=$(awk -v a="$total" -v b="$rps" 'BEGIN { print a + b }')
    rm -f "$f"
  done
  echo "$total $(bench_cpu_per_req $((ticks1 - ticks0)) $((count * n))) $(bench_ratio $((ops1 - ops0)) $((tx1 - tx0)))"
}

store="postgresql://postgres@127.0.0.1:$pg_port/tally"
echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') (fsync on, synchronous_commit on), data on $fs ($work)"
echo "${secs} s per run, median of $repeats alternating rounds; pgbench -M prepared, one UPDATE per transaction; $keys keys"
((have_tally)) || echo "tallyd at $tallyd has no --store: tally columns are n/a"
echo
printf '%-22s | %12s | %12s | %9s | %7s | %8s | %12s | %9s\n' load "pgbench tps" "tally-pg rps" "tally/pg" "us/req" "incr/txn" "engine rps" "pg/engine"
printf '%.0s-' {1..114}
echo

row() { # label script clients random
  local label=$1 script=$2 clients=$3 random=$4 i p=() t=() e=() pm tm em cm xm
  for ((i = 0; i < repeats; i++)); do
    p+=("$(pgbench_tps "$script" "$clients")") || { echo "pg_hot: pgbench failed" >&2; exit 1; }
    if ((have_tally)); then
      start_tally 1 --store "$store"
      t+=("$(incr_rps "$clients" "$random")")
      bench_stop_all
      if ((random)); then
        rm -rf "$work/t0"
        start_tally 1
        e+=("$(incr_rps "$clients" "$random")")
        bench_stop_all
      fi
    fi
  done
  pm=$(bench_median "${p[@]}")
  if ((have_tally)); then
    tm=$(bench_median_col 1 "${t[@]}") cm=$(bench_median_col 2 "${t[@]}") xm=$(bench_median_col 3 "${t[@]}")
    if ((random)); then
      em=$(bench_median_col 1 "${e[@]}")
      printf '%-22s | %12.0f | %12.0f | %8.1fx | %7.1f | %8.1f | %12.0f | %8.2fx\n' "$label" "$pm" "$tm" "$(bench_ratio "$tm" "$pm")" "$cm" "$xm" "$em" "$(bench_ratio "$tm" "$em")"
    else
      printf '%-22s | %12.0f | %12.0f | %8.1fx | %7.1f | %8.1f | %12s | %9s\n' "$label" "$pm" "$tm" "$(bench_ratio "$tm" "$pm")" "$cm" "$xm" "" ""
    fi
  else
    printf '%-22s | %12.0f | %12s | %9s | %7s | %8s | %12s | %9s\n' "$label" "$pm" n/a n/a "" "" "" ""
  fi
}

row "hot counter, 1 client" hot 1 0
row "hot counter, 50" hot 50 0
row "random keys, 50" random 50 1

((have_tally)) || exit 0
echo
printf '%-22s | %12s | %12s | %9s\n' "50 clients in all" "1 tallyd" "2 tallyds" "2/1"
printf '%.0s-' {1..64}
echo
scale() { # label random
  local label=$1 random=$2 i one=() two=() om tm
  for ((i = 0; i < repeats; i++)); do
    start_tally 1 --store "$store"
    one+=("$(incr_rps 50 "$random")")
    bench_stop_all
    start_tally 2 --store "$store"
    two+=("$(incr_rps 50 "$random")")
    bench_stop_all
  done
  om=$(bench_median_col 1 "${one[@]}") tm=$(bench_median_col 1 "${two[@]}")
  printf '%-22s | %12.0f | %12.0f | %8.2fx\n' "$label" "$om" "$tm" "$(bench_ratio "$tm" "$om")"
}
scale "hot counter" 0
scale "random keys" 1
