#!/usr/bin/env bash
# Install what is missing, build, and run every test:
#   1. unit and crash tests (cmocka, ctest) on the normal -Werror build;
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the engine's tests under ThreadSanitizer (the engine syncs on a thread);
#   4. black-box tests (pytest) against the real tallyd with real clients.
# TALLY_CRASH_KILLS sets how many SIGKILLs the crash test deals (default 200).
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh test

jobs=$(nproc)
build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -G "Unix Makefiles" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
}

echo "== build (gcc, -Werror)"
build build
echo "== unit and crash tests"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== unit tests under ASan+UBSan"
build build/asan -DTALLY_SANITIZE=ON
(cd build/asan && TALLY_CRASH_KILLS=${TALLY_CRASH_KILLS_ASAN:-50} ctest --output-on-failure -j"$jobs")

echo "== engine tests under TSan"
build build/tsan -DTALLY_TSAN=ON
(cd build/tsan && TALLY_CRASH_KILLS=20 ctest --output-on-failure -j"$jobs" -L engine)

echo "== black-box tests"
TALLYD=$PWD/build/tallyd TALLY_CLI=$PWD/build/tally \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e
