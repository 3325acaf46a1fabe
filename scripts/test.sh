#!/usr/bin/env bash
# The test command: installs what is missing, builds twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test in
# both builds: unit, fuzz-corpus regression, and interop with real clients.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" --test

"$top/scripts/build.sh" "$top/build"
"$top/scripts/build.sh" "$top/build-asan" -DSCEPD_SANITIZE=ON

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp:print_suppressions=0

status=0
echo "== tests, plain build"
(cd "$top/build" && ctest --output-on-failure -j2) || status=1
echo "== tests, sanitizer build"
(cd "$top/build-asan" && ctest --output-on-failure -j2) || status=1
exit $status
