#!/usr/bin/env bash
# Installs what is missing, builds (warnings are errors), and runs every test:
# the release build's full CTest suite, then the ASan+UBSan build's suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
JOBS=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTS_WERROR=ON >/dev/null
cmake --build build -j"$JOBS"
(cd build && ctest --output-on-failure -j"$JOBS")

if [[ "${TS_SKIP_SANITIZE:-0}" != 1 ]]; then
  # The sanitizer build runs the same executables; slow, size-heavy cases
  # scale themselves down when TS_SANITIZED=1.
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTS_WERROR=ON -DTS_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$JOBS"
  (cd build-asan && TS_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j"$JOBS")
fi
