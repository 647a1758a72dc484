#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Build the libFuzzer targets with clang into build/fuzz and run each for
# TALLY_FUZZ_SECONDS (default 60), TALLY_FUZZ_JOBS (default 2) at a time, on
# a copy of its checked-in corpus (tests/fuzz/corpus/<target>/ is never
# written to).  Prints per target: executions, exec/s, and the final corpus
# size.  Fails on any crash, leak, timeout or sanitizer report; the input
# that caused it is saved as build/fuzz/crashes/<target>-<kind>-<sha1>.
#   tests/fuzz/run.sh              every target
#   tests/fuzz/run.sh resp codec   some (names without the fuzz_ prefix)
# README.md says how to reproduce a crash.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${TALLY_FUZZ_SECONDS:-60}
jobs=${TALLY_FUZZ_JOBS:-2}
out=build/fuzz

cmake -S . -B "$out" -G "Unix Makefiles" -DCMAKE_C_COMPILER=clang -DTALLY_FUZZ=ON >/dev/null
cmake --build "$out" -j"$(nproc)" --target fuzz_all >/dev/null

if (($# > 0)); then
  targets=("$@")
else
  targets=()
  for f in tests/fuzz/fuzz_*.c; do
    f=${f##*/fuzz_}
    targets+=("${f%.c}")
  done
fi

rm -rf "$out/work"
mkdir -p "$out/work" "$out/crashes"
# Data directories of fuzz_resp, fuzz_memcache and fuzz_recover: on tmpfs
# when there is one, and removed below even after a crash.
tmp_base=/tmp
[[ -w /dev/shm ]] && tmp_base=/dev/shm
export TALLY_FUZZ_TMP
TALLY_FUZZ_TMP=$(mktemp -d "$tmp_base/tally-fuzz-run-XXXXXX")
trap 'rm -rf "$TALLY_FUZZ_TMP"' EXIT

# Run one target; its exit status and output go to work/<t>.{rc,log}.
run_one() {
  local t=$1 w=$out/work/$1
  mkdir -p "$w/corpus"
  cp -r "tests/fuzz/corpus/$t/." "$w/corpus/"
  local rc=0
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$out/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$out/crashes/$t-" \
      "$w/corpus" >"$w.log" 2>&1 || rc=$?
  echo "$rc" >"$w.rc"
}

running=0
for t in "${targets[@]}"; do
  [[ -d tests/fuzz/corpus/$t && -x $out/fuzz/fuzz_$t ]] || {
    echo "fuzz: no target or corpus named $t" >&2
    exit 2
  }
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait

failed=0
printf '%-12s %12s %10s %8s %10s  %s\n' target executions exec/s corpus bytes result
for t in "${targets[@]}"; do
  w=$out/work/$t
  rc=$(cat "$w.rc")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w.log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$w.log")
  files=$(find "$w/corpus" -type f | wc -l)
  bytes=$(du -sb "$w/corpus" | cut -f1)
  result=ok
  if [[ $rc != 0 ]] || grep -qE '^(==[0-9]+==ERROR|SUMMARY: )|runtime error:' "$w.log"; then
    result="FAILED (exit $rc; log $w.log)"
    failed=1
  fi
  printf '%-12s %12s %10s %8s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$files" "$bytes" "$result"
done
if ((failed)); then
  for t in "${targets[@]}"; do
    [[ $(cat "$out/work/$t.rc") == 0 ]] && continue
    echo "---- $t: the end of $out/work/$t.log"
    grep -vE '^#[0-9]+|^\s*(NEW_FUNC|"[^"]*" # Uses)' "$out/work/$t.log" | tail -40
  done
  echo "fuzz: crashing inputs in $out/crashes/:" >&2
  ls -1 "$out/crashes" >&2 || true
  exit 1
fi
