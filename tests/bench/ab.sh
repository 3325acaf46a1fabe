#!/usr/bin/env bash
# Interleaved A/B of two builds of scepd on this machine: single runs here
# vary by about 8 % from one hour to the next, more than most changes
# move, so a change is judged by alternating the two builds and comparing
# means. A first run of A warms up and is not counted. Each run starts a
# fresh scepd of one build (single password and
# an RSA 2048 CA unless told otherwise, a new data directory), sends it
# COUNT enrollments at
# CONCURRENCY with tests/scep_load (every answer verified) and stops it;
# the runs go A, B, A, B, ... ROUNDS times. Prints every run and, per
# build, the means of enrollments/s, p99, server CPU per enrollment (also
# per service) and peak summed VmRSS, and B's change against A.
#
#   tests/bench/ab.sh BUILD_DIR_A BUILD_DIR_B
#
# A build directory holds scepd and the four services: a cmake build, or
# a copy of its executables (scepctl and tests/scep_load are then taken
# from build-bench).
#
# Environment: ROUNDS=3 COUNT=1500 CONCURRENCY=16
#   MODE=single   or otp: one-time passwords, as scepd comes
#   CA_BITS=2048  or 3072: the demo CA as scepd makes it
#   A_CONF, B_CONF="SECTION KEY VALUE[; ...]": settings changed for A's
#                 or B's runs, e.g. B_CONF="ra Workers 4" with the same
#                 build twice compares two configurations
#   KEEP=1        keep the work directory
set -euo pipefail

SRC_DIR=$(cd "$(dirname "$0")/../.." && pwd)
[ $# = 2 ] || { echo "usage: $0 BUILD_DIR_A BUILD_DIR_B" >&2; exit 1; }
DIR_A=$(cd "$1" && pwd)
DIR_B=$(cd "$2" && pwd)
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-1500}
CONCURRENCY=${CONCURRENCY:-16}
MODE=${MODE:-single}
CA_BITS=${CA_BITS:-2048}
BUILD_DIR=$DIR_A
. "$SRC_DIR/tests/bench/lib.sh"

[ -x "$SCEPCTL" ] || SCEPCTL=$SRC_DIR/build-bench/scepctl
[ -x "$SCEP_LOAD" ] || SCEP_LOAD=$SRC_DIR/build-bench/tests/scep_load
SCEPD=$DIR_A/scepd
bench_init ab
for d in "$DIR_A" "$DIR_B"; do
	if [ ! -x "$d/scepd" ] || [ ! -x "$d/scepd-ca" ]; then
		fail "$d: no scepd and services"
	fi
done

# The processes whose CPU is shown, in this order.
PROCS="scepd-frontend scepd-ra scepd-challenge scepd-ca"
declare -A SUM=()

echo "A: $DIR_A${A_CONF:+, [${A_CONF%% *}] ${A_CONF#* }}"
echo "B: $DIR_B${B_CONF:+, [${B_CONF%% *}] ${B_CONF#* }}"
echo "$ROUNDS rounds of $COUNT enrollments at concurrency $CONCURRENCY, $(mode_title "$MODE"), RSA $CA_BITS CA"
# The first run of a series came out 20-60 % slow in every series of
# 2026-12-03 (the load's key pool made, caches cold): one run of A, not
# counted, goes first.
start_scepd warm "$MODE" "$CA_BITS" > "$WORK/warm.start" 2>&1
load warm 500 "$CONCURRENCY" "$WORK/warm.out"
stop_server warm
rm -rf "${SERVER_DATA[warm]}"
echo "warm-up (A, 500 enrollments, not counted): $(field "$WORK/warm.out" rate) enrollments/s"
printf '%-6s %8s %8s %8s %8s' run "enr/s" "p99 ms" "CPU ms" "RSS MiB"
for p in $PROCS; do printf ' %15s' "$p"; done
echo
for r in $(seq "$ROUNDS"); do
	for v in A B; do
		label="$v$r"
		if [ $v = A ]; then
			SCEPD="$DIR_A/scepd" EXTRA_CONF=${A_CONF:-}
		else
			SCEPD="$DIR_B/scepd" EXTRA_CONF=${B_CONF:-}
		fi
		start_scepd "$label" "$MODE" "$CA_BITS" > "$WORK/$label.start" 2>&1
		load "$label" "$COUNT" "$CONCURRENCY" "$WORK/$label.out"
		stop_server "$label"
		rm -rf "${SERVER_DATA[$label]}"
		out="$WORK/$label.out"
		[ "$(field "$out" failures)" = 0 ] || fail "$label: $(field "$out" failures) failed answers"
		printf '%-6s %8s %8s %8s %8.1f' "$label" "$(field "$out" rate)" \
			"$(field "$out" p99_ms)" "$(field "$out" cpu_ms_per_enrollment)" \
			"$(calc "$(field "$out" peak_rss_kib) / 1024")"
		for k in rate p99_ms cpu_ms_per_enrollment peak_rss_kib; do
			SUM[$v.$k]=$(calc "${SUM[$v.$k]:-0} + $(field "$out" "$k")")
		done
		for p in $PROCS; do
			printf ' %15s' "$(field "$out" "cpu_ms.$p")"
			SUM[$v.$p]=$(calc "${SUM[$v.$p]:-0} + $(field "$out" "cpu_ms.$p")")
		done
		echo
	done
done

mean() { calc "${SUM[$1]} / $ROUNDS"; }
for v in A B; do
	printf '%-6s %8.1f %8.1f %8.3f %8.1f' "mean $v" "$(mean $v.rate)" "$(mean $v.p99_ms)" \
		"$(mean $v.cpu_ms_per_enrollment)" "$(calc "$(mean $v.peak_rss_kib) / 1024")"
	for p in $PROCS; do printf ' %15.3f' "$(mean "$v.$p")"; done
	echo
done
echo "B against A: enrollments/s $(calc "100 * ($(mean B.rate) / $(mean A.rate) - 1)" | xargs printf '%+.1f') %," \
	"CPU per enrollment $(calc "100 * ($(mean B.cpu_ms_per_enrollment) / $(mean A.cpu_ms_per_enrollment) - 1)" | xargs printf '%+.1f') %"
