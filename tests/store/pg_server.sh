#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A throwaway PostgreSQL 15 on loopback for the store tests, run as the
# `postgres` system user (initdb refuses root).
#   pg_server.sh start DIR PORT   - initdb DIR (if new) and start it
#   pg_server.sh stop DIR [MODE]  - pg_ctl stop (MODE fast|immediate)
#   pg_server.sh kill DIR         - SIGKILL the postmaster (a crash)
#   pg_server.sh run PORT CMD...  - start in a temp dir (PORT 0: a free one),
#                                    run CMD with TALLY_PG_URI, TALLY_PG_DIR,
#                                    TALLY_PG_PORT, TALLY_PG_SERVER set, stop
set -euo pipefail
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
as_pg() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi; }

start() {
  local dir=$1 port=$2
  if [[ ! -f $dir/PG_VERSION ]]; then
    mkdir -p "$dir"
    ((EUID == 0)) && chown postgres: "$dir"
    as_pg "$bin/initdb" -D "$dir" -U postgres -A trust --no-sync >"$dir.initdb.log" 2>&1 ||
      { cat "$dir.initdb.log" >&2; exit 1; }
  fi
  as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${PG_FSYNC:-on}" start >/dev/null
}

case ${1:-} in
start) start "$2" "$3" ;;
stop) as_pg "$bin/pg_ctl" -D "$2" -m "${3:-fast}" -w stop >/dev/null ;;
kill) # the postmaster and its backends, as a machine crash would
  pm=$(head -1 "$2/postmaster.pid")
  kids=$(ps -o pid= --ppid "$pm" || true)
  kill -9 "$pm" $kids 2>/dev/null || true
  while kill -0 "$pm" 2>/dev/null; do sleep 0.05; done ;;
run)
  port=$2; shift 2
  ((port)) || port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  tmp=$(mktemp -d /tmp/tally-pg.XXXXXX)
  chmod 755 "$tmp"
  ((EUID == 0)) && chown postgres: "$tmp"
  start "$tmp/data" "$port"
  export TALLY_PG_DIR=$tmp/data TALLY_PG_PORT=$port
  export TALLY_PG_URI="postgresql://postgres@127.0.0.1:$port/postgres"
  export TALLY_PG_SERVER=$0
  rc=0; "$@" || rc=$?
  as_pg "$bin/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
  exit $rc ;;
*) echo "usage: $0 start|stop|kill|run ..." >&2; exit 2 ;;
esac
