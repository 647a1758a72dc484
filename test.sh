#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Install what is missing, build, and run every test:
#   1. unit and crash tests (cmocka, ctest) on the normal -Werror build;
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the engine's tests under ThreadSanitizer (the engine syncs on a thread);
#   4. the unit tests on a gcc Release build (-O3, as distributions build);
#   5. the unit tests on a clang build under ASan+UBSan (clang warns, and
#      checks, what gcc does not);
#   6. black-box tests (pytest) against the real tallyd with real clients,
#      the test_pg_* scenarios on real PostgreSQL 15 servers among them;
#   7. the same black-box suite again with every tallyd on
#      --store postgresql://... (TALLY_TEST_STORE=postgresql), except the
#      tests about the engine's files (tests/e2e/README.md);
#   8. and again with every tallyd on --store redis://...
#      (TALLY_TEST_STORE=redis: one redis-server with appendfsync always,
#      a database per tallyd), except the engine-file tests and the
#      test_pg_*/test_redis_* files (tests/e2e/redis_known.py);
#   9. and again with every tallyd on --store redis+cluster://...
#      (TALLY_TEST_STORE=redis-cluster: one cluster of three masters with
#      appendfsync always, a --store-prefix per tallyd), the same files left
#      out and those about browsers, TLS listeners, the install, systemd,
#      config files and --version (tests/e2e/cluster_known.py);
#  10. the libFuzzer targets, TALLY_FUZZ_SECONDS (default 60) each
#      (tests/fuzz/run.sh; tests/fuzz/README.md).
# TALLY_CRASH_KILLS sets how many SIGKILLs the crash test deals (default 200;
# fewer on the extra builds).
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

echo "== unit tests on a gcc Release build"
build build/release -DCMAKE_BUILD_TYPE=Release
(cd build/release && TALLY_CRASH_KILLS=${TALLY_CRASH_KILLS_EXTRA:-20} ctest --output-on-failure -j"$jobs")

echo "== unit tests on a clang build under ASan+UBSan"
build build/clang -DCMAKE_C_COMPILER=clang -DTALLY_SANITIZE=ON
(cd build/clang && TALLY_CRASH_KILLS=${TALLY_CRASH_KILLS_EXTRA:-20} ctest --output-on-failure -j"$jobs")

echo "== black-box tests"
TALLYD=$PWD/build/tallyd TALLY_CLI=$PWD/build/tally \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e

echo "== black-box tests on --store postgresql://"
# The test_pg_* and test_redis_* files ran in the first pass: they start
# their own servers.
TALLYD=$PWD/build/tallyd TALLY_CLI=$PWD/build/tally TALLY_TEST_STORE=postgresql \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider \
  --ignore-glob='tests/e2e/test_pg_*' --ignore-glob='tests/e2e/test_redis_*' \
  tests/e2e

echo "== black-box tests on --store redis://"
# The test_pg_* and test_redis_* files ran in the first pass: they start
# their own servers.
TALLYD=$PWD/build/tallyd TALLY_CLI=$PWD/build/tally TALLY_TEST_STORE=redis \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider \
  --ignore-glob='tests/e2e/test_pg_*' --ignore-glob='tests/e2e/test_redis_*' \
  tests/e2e

echo "== black-box tests on --store redis+cluster://"
# The same files as on one Redis, less those about front ends, packaging
# and configuration that no store changes (browsers, TLS listeners, the
# install, systemd, config files, --version: 1.5 min of chromium, openssl
# and cmake, and they ran in the three passes before), to keep the pass
# near its 6 min budget: on the shared 2-core machine the whole suite took
# 7.8 min (load average 12-14), this 4.9 min (load 9-11) to 6.7 (16-19).
TALLYD=$PWD/build/tallyd TALLY_CLI=$PWD/build/tally TALLY_TEST_STORE=redis-cluster \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider \
  --ignore-glob='tests/e2e/test_pg_*' --ignore-glob='tests/e2e/test_redis_*' \
  --ignore-glob='tests/e2e/test_*browser.py' --ignore=tests/e2e/test_tls.py \
  --ignore=tests/e2e/test_install.py --ignore=tests/e2e/test_systemd.py \
  --ignore=tests/e2e/test_config.py --ignore=tests/e2e/test_version.py \
  tests/e2e

echo "== fuzzing, ${TALLY_FUZZ_SECONDS:-60} s per target"
tests/fuzz/run.sh
