# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
# bench/lib.sh - what the bench scripts (resp_vs_redis.sh,
# memcache_vs_memcached.sh, http_wrk.sh) share; sourced right after their
# `set -euo pipefail`, never run.  It owns the plumbing around a run: a work
# directory on a real disk, free loopback ports, waiting for a server to
# answer, stopping servers, cleanup on exit, medians and redis-benchmark's
# CSV.  What is measured, the options and the tables stay in each script.
#
# Sets: repo (the checkout), python (the interpreter with the test
# packages), bench_name (the script's name, for messages), bench_pids (the
# servers started and not yet stopped: bench_started, bench_stop_all).

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=/usr/bin/python3
bench_name=$(basename "$0" .sh)
bench_pids=()

# bench_usage: print the script's opening comment (up to `set -euo`) and
# exit 2, for -h and unknown options.
bench_usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
}

# bench_need TOOL...: exit 1 naming the first TOOL that is not on PATH.
bench_need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$bench_name: $tool not found" >&2; exit 1; }
  done
}

# bench_workdir TAG: make and print a fresh directory for this run's data.
# It must be on a real disk: an fsync on tmpfs costs nothing and would make
# "always" meaningless, so under the repo's build/ unless that is tmpfs,
# else under /var/tmp.
bench_workdir() {
  local dir
  mkdir -p "$repo/build"
  dir=$(mktemp -d "$repo/build/bench-$1.XXXXXX")
  if [[ $(stat -f -c %T "$dir") == tmpfs ]]; then
    rm -rf "$dir"
    dir=$(mktemp -d "/var/tmp/tally-bench-$1.XXXXXX")
  fi
  echo "$dir"
}

# bench_started PID: remember a server this script started in the
# background, for bench_stop_all.
bench_started() {
  bench_pids+=("$1")
}

# bench_stop_all: TERM every server started, then reap them all, so that
# they shut down in parallel.
bench_stop_all() {
  local pid
  for pid in "${bench_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${bench_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  bench_pids=()
}

# bench_on_exit DIR: however the script ends, stop its servers and remove
# DIR; ^C and TERM exit 130.
bench_on_exit() {
  # shellcheck disable=SC2064 # DIR is expanded now on purpose
  trap "bench_stop_all; rm -rf $(printf %q "$1")" EXIT
  trap 'exit 130' INT TERM
}

# bench_free_port: print a TCP port on 127.0.0.1 that nothing listens on.
# Drawn at random below the ephemeral range: bind(0) twice in a row can hand
# out the same port (a script's second port then clashed with its first,
# and tallyd refused to start), and clients' own ports come from that range.
bench_free_port() {
  "$python" -c '
import random, socket
while True:
    p = random.randrange(20000, 32768)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break'
}

# bench_wait_for LOG PID CHECK...: poll CHECK for up to 30 s until it
# succeeds; exit 1 showing LOG (the server's, named WHAT.log) if PID dies
# first or time runs out.
bench_wait_for() {
  local log=$1 pid=$2 what i
  what=$(basename "$log" .log)
  shift 2
  for ((i = 0; i < 1500; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$bench_name: $what exited; log:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.02
  done
  echo "$bench_name: $what not ready after 30 s; log:" >&2
  cat "$log" >&2
  exit 1
}

# bench_median NUMBER...: print their median (the mean of the middle two for an
# even count).
bench_median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_ratio A B: print A/B, or 0 when B is not positive.
bench_ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0) ? a / b : 0 }'
}

# bench_incr_csv: filter `redis-benchmark -t incr --csv` to "rps p50 p99" (ms);
# fails if there was no INCR row.
bench_incr_csv() {
  awk -F'","' '/^"INCR"/ { gsub(/"/, ""); split($0, f, ","); print f[2], f[5], f[7]; found = 1 }
               END { if (!found) exit 1 }'
}

# bench_cpu_ticks PID: print the CPU PID has used so far, all threads,
# utime+stime from /proc/PID/stat, in clock ticks (getconf CLK_TCK).  The
# command name in field 2 may hold spaces, so fields are counted after ')'.
bench_cpu_ticks() {
  sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# bench_cpu_split PID: as bench_cpu_ticks, but "utime stime" apart: what
# the process ran itself and what the kernel ran for it.
bench_cpu_split() {
  sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'
}

# bench_now_us: print the monotonic-enough wall clock in microseconds.
bench_now_us() {
  echo $(( $(date +%s%N) / 1000 ))
}

# bench_cpu_per_req TICKS REQUESTS: print microseconds of CPU per request.
bench_cpu_per_req() {
  awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { print (n > 0) ? t * 1e6 / hz / n : 0 }'
}

# bench_cpu_share TICKS MICROSECONDS: print the % of one core TICKS are over
# that wall time.
bench_cpu_share() {
  awk -v t="$1" -v us="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { print (us > 0) ? t * 1e8 / hz / us : 0 }'
}

# bench_cpu_run PID REQUESTS CMD...: run CMD, which prints "rps p50 p99
# [MORE...]", and print "rps p50 p99 cpu_us_per_req pct_core [MORE...]" with
# PID's CPU over the run.  REQUESTS 0: take the count from rps times the
# measured wall time.
bench_cpu_run() {
  local pid=$1 n=$2 c0 c1 t0 t1 rps p50 p99 more
  shift 2
  c0=$(bench_cpu_ticks "$pid") t0=$(bench_now_us)
  read -r rps p50 p99 more < <("$@") || return 1
  c1=$(bench_cpu_ticks "$pid") t1=$(bench_now_us)
  if ((n == 0)); then
    n=$(awk -v r="$rps" -v us=$((t1 - t0)) 'BEGIN { printf "%d", r * us / 1e6 }')
  fi
  echo "$rps $p50 $p99 $(bench_cpu_per_req $((c1 - c0)) "$n") $(bench_cpu_share $((c1 - c0)) $((t1 - t0)))${more:+ $more}"
}

# bench_median_col COLUMN ROW...: the median of one (1-based) column of rows
# of space-separated numbers, such as bench_cpu_run's.
bench_median_col() {
  local col=$1 vals
  shift
  mapfile -t vals < <(printf '%s\n' "$@" | awk -v c="$col" '{ print $c }')
  bench_median "${vals[@]}"
}
