#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Build everything into build/ (installing missing Debian packages first) and
# start tallyd on ./data in the foreground.  Extra arguments go to tallyd,
# e.g. ./run.sh --port 7400 --fsync everysec
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh build
cmake -S . -B build -G "Unix Makefiles" >/dev/null
cmake --build build -j"$(nproc)"
mkdir -p data
exec build/tallyd --dir data "$@"
