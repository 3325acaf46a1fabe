#!/usr/bin/env bash
# The test command: installs what is missing, builds twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test in
# both builds: unit, fuzz-corpus regression, and interop with real clients;
# builds a third time as the run command does, without test hooks.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" --test

# Both with the test-only requests (SCEPD_TEST_HOOKS: the CA's
# SandboxProbe); scripts/run.sh turns them off again in build/.
"$top/scripts/build.sh" "$top/build" -DSCEPD_TEST_HOOKS=ON
"$top/scripts/build.sh" "$top/build-asan" -DSCEPD_SANITIZE=ON -DSCEPD_TEST_HOOKS=ON
# What scripts/run.sh builds (no test hooks) must build too: a test that
# used a hook unconditionally once broke the start command, not CI.
"$top/scripts/build.sh" "$top/build-run" -DSCEPD_TEST_HOOKS=OFF
# libFuzzer targets (clang), run below for a fixed number of runs each.
fuzz_targets=$(cd "$top/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
CC=clang cmake -S "$top" -B "$top/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DSCEPD_FUZZ=ON -DSCEPD_SANITIZE=ON >/dev/null
cmake --build "$top/build-fuzz" -j"$(nproc)" --target $fuzz_targets

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp:print_suppressions=0

status=0
echo "== tests, plain build"
(cd "$top/build" && ctest --output-on-failure -j2) || status=1
echo "== fuzz targets, 20000 runs each from their corpora (libFuzzer)"
scratch=$(mktemp -d)
# -close_fd_mask=2: what the code under test prints (the configuration
# loader's complaints, log lines) is dropped, which slowed the noisy
# targets; libFuzzer's and the sanitizers' reports still come.
for bin in "$top"/build-fuzz/tests/fuzz_*; do
	name=$(basename "$bin")
	mkdir -p "$scratch/$name"
	if (cd "$scratch/$name" && "$bin" -runs=20000 -max_len=65536 -print_final_stats=1 -close_fd_mask=2 \
		"$scratch/$name" "$top/tests/fuzz/corpus/${name#fuzz_}" > log 2>&1); then
		echo "$name: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$scratch/$name/log" || tail -1 "$scratch/$name/log")"
	else
		tail -40 "$scratch/$name/log"
		echo "$name: FAILED (the crashing input is in $scratch/$name)"
		status=1
	fi
done
echo "== tests, sanitizer build"
(cd "$top/build-asan" && ctest --output-on-failure -j2) || status=1
exit $status
