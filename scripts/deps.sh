#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Install the Debian 12 packages tally needs that this machine lacks.
#   scripts/deps.sh build   - what building needs
#   scripts/deps.sh test    - that, plus what the tests and benchmarks use
# Runs apt-get only when something is missing (as root, or through sudo).
set -euo pipefail

build_pkgs=(gcc libc6-dev make cmake pkg-config libevent-dev libhiredis-dev libjansson-dev libcmocka-dev
            libssl-dev scdoc liblua5.1-0-dev libpq-dev)
# clang builds the second compiler's stage and the libFuzzer targets; the
# fuzzer and sanitizer runtimes are only recommended by clang, and llvm
# brings llvm-symbolizer for readable sanitizer reports.  postgresql-15 is
# the server the tests start on loopback (tests/e2e/pgserver.py; it brings
# psql, pg_basebackup and pgbench) and libpq-dev the client library the
# PostgreSQL store is built on.
test_pkgs=(python3 python3-pytest python3-redis python3-requests python3-pymemcache python3-yaml
           redis-server redis-tools memcached wrk chromium chromium-driver python3-selenium
           systemd openssl curl clang libclang-rt-14-dev llvm postgresql-15 libpq-dev)

want=("${build_pkgs[@]}")
[[ ${1:-build} == test ]] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=()
((EUID == 0)) || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
