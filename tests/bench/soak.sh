#!/usr/bin/env bash
# The memory soak of issue 7: "no growth over a 100,000-request soak (RSS
# sampled, printed)". Starts scepd on 127.0.0.1 (stopped at exit) and
# sends it REQUESTS requests with tests/scep_load, in rounds of ROUND:
# full enrollments (PKCSReq, every answer verified as in the benchmark)
# with GET_PERCENT of GetCACaps and GetCACert mixed in (each checked to
# answer as before). After every round, every few seconds, it samples
# RssAnon and RssFile of each scepd process (/proc/PID/status) and prints
# a row. RssFile is mostly the CA's LMDB ledger mapped in memory, which
# grows with every certificate recorded. RssAnon counts the heap's pages
# and more: stacks, and free blocks, once touched, stay resident until
# glibc gives them back. So, with gdb installed (HEAP=1), each round also
# asks each service's glibc what its allocated blocks hold (malloc_stats,
# "in use bytes", called through gdb and written to the service's standard
# error, the log): live heap, which is what a leak grows.
#
# The verdicts compare the first sample at WARMUP requests (after
# warm-up: arenas, caches and thread stacks have reached their size) with
# the end, in KiB per 1000 requests, and fit a line through every sample
# from there: one for RssAnon, one for the bytes in use; "no growth" when
# the slope is at most ANON_SLOPE_MAX KiB per 1000 requests. RssAnon is
# the high-water mark of what each arena held at once, which rises ever
# more slowly as rarer peaks come: the slope over the last half of the
# window is printed too, and a longer WARMUP shows where it levels off.
#
#   tests/bench/soak.sh [BUILD_DIR]        (default: build-bench)
#
# Environment:
#   REQUESTS=100000 ROUND=2000 GET_PERCENT=10 CONCURRENCY=4
#   WARMUP=REQUESTS/10 requests before the verdicts' window (counted in
#                      REQUESTS: WARMUP=50000 REQUESTS=150000 judges 100,000)
#   MODE=single        scepd's passwords: single (UseSinglePassword) or otp
#                      (one-time passwords from scepctl before each round)
#   ANON_SLOPE_MAX=2   KiB per 1000 requests
#   HEAP=1             bytes in use from malloc_stats (needs gdb; each
#                      service stops for a moment after each round); 0: not
#   QUIET_WAIT=0       minutes to wait first for a quiet machine
#   RESULTS=FILE       its "## Memory soak" section is replaced (default
#                      tests/bench/RESULTS.md; RESULTS= writes nothing)
#   KEEP=1             keep the work directory
set -euo pipefail

SRC_DIR=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${1:-${BUILD_DIR:-$SRC_DIR/build-bench}}
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
REQUESTS=${REQUESTS:-100000}
ROUND=${ROUND:-2000}
GET_PERCENT=${GET_PERCENT:-10}
CONCURRENCY=${CONCURRENCY:-4}
MODE=${MODE:-single}
ANON_SLOPE_MAX=${ANON_SLOPE_MAX:-2}
QUIET_WAIT=${QUIET_WAIT:-0}
HEAP=${HEAP:-1}
WARMUP=${WARMUP:-$((REQUESTS / 10))}
RESULTS=${RESULTS-$SRC_DIR/tests/bench/RESULTS.md}
. "$SRC_DIR/tests/bench/lib.sh"

# The processes, in the table's order.
PROCS="scepd-frontend scepd-ra scepd-challenge scepd-ca scepd"
# Those whose bytes in use are asked (the launcher only waits on them).
SERVICES="scepd-frontend scepd-ra scepd-challenge scepd-ca"
if [ "$HEAP" = 1 ] && ! command -v gdb > /dev/null; then
	echo "soak: gdb is not installed (Debian package gdb): RssAnon only, no bytes in use (HEAP=0)"
	HEAP=0
fi

bench_init soak
QUIET="not checked (QUIET_WAIT=0)"
[ "$QUIET_WAIT" -gt 0 ] && wait_quiet "$QUIET_WAIT"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
# At start: commits made during a run are not what it ran.
SCEPD_VERSION=$(git -C "$SRC_DIR" describe --always --dirty 2>/dev/null || echo unknown)
start_scepd scepd "$MODE" 3072
PGID=${SERVER_PIDS[scepd]}
LEDGER="${SERVER_DATA[scepd]}/db/ca/data.mdb"

# "KEY: N kB" of /proc/PID/status.
status_kib() {
	awk -v k="$2:" '$1 == k { print $2; exit }' "/proc/$1/status" 2>/dev/null || echo 0
}

# glibc's bytes in use (all arenas and mmapped blocks) of process PID:
# malloc_stats() writes them to its standard error, the server's log.
heap_in_use() {
	local log="$WORK/scepd.log" before
	before=$(stat -c %s "$log")
	gdb -batch -p "$1" -ex 'call (void)malloc_stats()' > /dev/null 2>&1 || { echo 0; return; }
	tail -c +"$((before + 1))" "$log" |
		awk '/^Total \(incl. mmap\):/ { t = 1; next } t && /^in use bytes/ { print $NF; found = 1; exit } END { if (!found) print 0 }'
}

# "DONE B1 .. B4 SUM" (bytes in use of each of SERVICES) appended to
# $WORK/heap.
sample_heap() {
	local pid comm b sum=0 cells=""
	for comm in $SERVICES; do
		b=0
		for pid in $(pgrep -g "$PGID"); do
			[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || continue
			b=$(heap_in_use "$pid")
		done
		sum=$((sum + b))
		cells="$cells $b"
	done
	echo "$1$cells $sum" >> "$WORK/heap"
}

# One sample: "DONE SECONDS PIDS anon/file for each of PROCS ANON FILE
# VMRSS LEDGER_BYTES" appended to $WORK/samples, and a row printed.
sample() {
	local done=$1 pid comm anon file rss sum_anon=0 sum_file=0 sum_rss=0 cells="" pids=""
	for comm in $PROCS; do
		anon=0
		file=0
		for pid in $(pgrep -g "$PGID"); do
			[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || continue
			anon=$(status_kib "$pid" RssAnon)
			file=$(status_kib "$pid" RssFile)
			rss=$(status_kib "$pid" VmRSS)
			sum_rss=$((sum_rss + rss))
			pids="$pids$pid,"
		done
		sum_anon=$((sum_anon + anon))
		sum_file=$((sum_file + file))
		cells="$cells $anon/$file"
	done
	echo "$done $SECONDS ${pids:-none}$cells $sum_anon $sum_file $sum_rss $(stat -c %s "$LEDGER" 2>/dev/null || echo 0)" >> "$WORK/samples"
	# RSS first: the call runs inside each process.
	[ "$HEAP" = 1 ] && sample_heap "$done"
	printf '%9s %6s%s %9s %9s %9s %8.1f %9s\n' "$done" "$SECONDS" "$(for c in $cells; do printf ' %15s' "$c"; done)" \
		"$sum_anon" "$sum_file" "$sum_rss" "$(calc "$(tail -1 "$WORK/samples" | awk '{ print $NF }') / 1048576")" \
		"$([ "$HEAP" = 1 ] && tail -1 "$WORK/heap" | awk '{ printf "%d", $NF / 1024 }' || echo -)"
}

echo "== memory soak: $REQUESTS requests ($GET_PERCENT% GetCACaps/GetCACert, the rest enrollments), rounds of $ROUND, concurrency $CONCURRENCY, $(mode_title "$MODE"); judged after $WARMUP (warm-up)"
echo "   RSS in KiB, RssAnon/RssFile per process; sums; the ledger's data.mdb"
printf '%9s %6s%s %9s %9s %9s %8s %9s\n' requests s "$(for c in $PROCS; do printf ' %15s' "${c#scepd-}"; done)" anon file VmRSS 'mdb MiB' 'in use'
: > "$WORK/samples"
: > "$WORK/heap"
SECONDS_START=$SECONDS
sample 0
done=0
failed=0
round=0
while [ "$done" -lt "$REQUESTS" ]; do
	n=$((REQUESTS - done < ROUND ? REQUESTS - done : ROUND))
	gets=$((n * GET_PERCENT / 100))
	round=$((round + 1))
	out="$WORK/round$round.out"
	load scepd $((n - gets)) "$CONCURRENCY" "$out" --gets "$gets"
	f=$(($(field "$out" failures) + $(field "$out" gets_failed)))
	if [ "$f" != 0 ]; then
		failed=$((failed + f))
		grep -v '^RESULT' "$out" | grep -iv '^scep_load:' | sed 's/^/   | /' | head -8
	fi
	cat "$out" >> "$WORK/rounds.out"
	done=$((done + n))
	sample "$done"
done
ELAPSED=$((SECONDS - SECONDS_START > 0 ? SECONDS - SECONDS_START : 1))
ENROLLED=$(sed -n 's/^RESULT .* ok=\([0-9]*\) .*/\1/p' "$WORK/rounds.out" | awk '{ s += $1 } END { print s }')
RESTARTED=$(awk 'NR > 1 && $3 != first { print "yes"; exit } NR == 1 { first = $3 }' "$WORK/samples")

# The verdict, from the samples: columns 1 requests, 4..8 per process,
# then anon, file, VmRSS, ledger bytes.
awk -v warm_at="$WARMUP" -v max="$ANON_SLOPE_MAX" -v procs="$PROCS" -v failed="$failed" '
	{ done[NR] = $1; n = NR; for (i = 4; i <= NF; i++) v[NR, i] = $i }
	END {
		nf = NF; anon = nf - 3; file = nf - 2; rss = nf - 1; mdb = nf
		for (w = 1; w < n && done[w] < warm_at; w++) ;
		span = (done[n] - done[w]) / 1000
		# Least squares over the samples from warm-up on.
		for (i = w; i <= n; i++) { sx += done[i]; sy += v[i, anon]; k++ }
		for (i = w; i <= n; i++) { dx = done[i] - sx / k; sxx += dx * dx; sxy += dx * (v[i, anon] - sy / k) }
		slope = sxx > 0 ? 1000 * sxy / sxx : 0
		# The same over the last half of the window.
		for (h = w; h < n && done[h] < (done[w] + done[n]) / 2; h++) ;
		for (i = h; i <= n; i++) { hx += done[i]; hy += v[i, anon]; hk++ }
		for (i = h; i <= n; i++) { dx = done[i] - hx / hk; hxx += dx * dx; hxy += dx * (v[i, anon] - hy / hk) }
		half = hxx > 0 ? 1000 * hxy / hxx : 0
		printf "warm-up sample at %d requests, end at %d: %.1f thousand requests between\n", done[w], done[n], span
		printf "resident anonymous memory (RssAnon, all processes): %d -> %d KiB, %+d KiB, %+.2f KiB per 1000 requests; fitted slope %+.2f KiB per 1000 requests\n",
			v[w, anon], v[n, anon], v[n, anon] - v[w, anon], (v[n, anon] - v[w, anon]) / span, slope
		printf "RssAnon over the last half (%d -> %d requests): %+d KiB, fitted slope %+.2f KiB per 1000 requests\n",
			done[h], done[n], v[n, anon] - v[h, anon], half
		printf "file pages (RssFile, all processes): %d -> %d KiB, %+.2f KiB per 1000 requests; the ledger data.mdb %.1f -> %.1f MiB\n",
			v[w, file], v[n, file], (v[n, file] - v[w, file]) / span, v[w, mdb] / 1048576, v[n, mdb] / 1048576
		printf "VmRSS, all processes: %d -> %d KiB (%.1f -> %.1f MiB)\n", v[w, rss], v[n, rss], v[w, rss] / 1024, v[n, rss] / 1024
		split(procs, name, " ")
		printf "RssAnon per process, warm-up -> end:"
		for (i = 1; i <= 5; i++) {
			split(v[w, 3 + i], a, "/"); split(v[n, 3 + i], b, "/")
			printf " %s %+d KiB%s", name[i], b[1] - a[1], i < 5 ? "," : "\n"
		}
		# A failed request did less than a served one: no verdict.
		if (failed > 0)
			printf "VERDICT (RssAnon): none, %d requests failed (the services saw less work than the count says)\n", failed
		else if (slope <= max)
			printf "VERDICT (RssAnon): no growth (fitted %+.2f KiB per 1000 requests, at most %s allowed)\n", slope, max
		else
			printf "VERDICT (RssAnon): GROWS by %.2f KiB per 1000 requests (at most %s allowed)\n", slope, max
	}' "$WORK/samples" > "$WORK/verdict.txt"
# The same from the bytes in use: columns 1 requests, 2..5 per service,
# 6 their sum.
[ "$HEAP" = 1 ] && awk -v warm_at="$WARMUP" -v max="$ANON_SLOPE_MAX" -v procs="$SERVICES" -v failed="$failed" '
	{ done[NR] = $1; n = NR; for (i = 2; i <= NF; i++) v[NR, i] = $i / 1024 }
	END {
		sum = 6
		for (w = 1; w < n && done[w] < warm_at; w++) ;
		span = (done[n] - done[w]) / 1000
		for (i = w; i <= n; i++) { sx += done[i]; sy += v[i, sum]; k++ }
		for (i = w; i <= n; i++) { dx = done[i] - sx / k; sxx += dx * dx; sxy += dx * (v[i, sum] - sy / k) }
		slope = sxx > 0 ? 1000 * sxy / sxx : 0
		printf "bytes in use by malloc (malloc_stats, the four services): %.0f -> %.0f KiB, %+.0f KiB, %+.2f KiB per 1000 requests; fitted slope %+.2f KiB per 1000 requests\n",
			v[w, sum], v[n, sum], v[n, sum] - v[w, sum], (v[n, sum] - v[w, sum]) / span, slope
		split(procs, name, " ")
		printf "bytes in use per service, warm-up -> end:"
		for (i = 1; i <= 4; i++)
			printf " %s %+.1f KiB%s", name[i], v[n, 1 + i] - v[w, 1 + i], i < 4 ? "," : "\n"
		if (failed > 0)
			printf "VERDICT (bytes in use): none, %d requests failed\n", failed
		else if (slope <= max)
			printf "VERDICT (bytes in use): no growth (fitted %+.2f KiB per 1000 requests, at most %s allowed)\n", slope, max
		else
			printf "VERDICT (bytes in use): GROWS by %.2f KiB per 1000 requests (at most %s allowed)\n", slope, max
	}' "$WORK/heap" >> "$WORK/verdict.txt"
{
	echo "$ENROLLED enrollments verified, $failed failed requests, in $ELAPSED s of wall time, building the requests$([ "$HEAP" = 1 ] && echo " and the bytes-in-use samples") included ($(calc "$REQUESTS / $ELAPSED" | xargs printf '%.0f') requests/s)"
	[ "$RESTARTED" = yes ] && echo "WARNING: a scepd process restarted during the soak (its pid changed): see the samples"
	cat "$WORK/verdict.txt"
} > "$WORK/summary.txt"
echo
cat "$WORK/summary.txt"

# The lines of sample file $1 at every tenth of the run, its first and its
# last.
tenths() {
	awk -v step="$((REQUESTS / 10))" -v last="$(tail -1 "$1" | cut -d' ' -f1)" '
		NR == 1 || $1 >= next_at || $1 == last {
			print
			while (next_at <= $1) next_at += step
		}' "$1"
}

if [ -n "$RESULTS" ]; then
	{
		echo "## Memory soak"
		echo
		echo "Written by \`tests/bench/soak.sh\` on $DATE ($(nproc) cores; quiet machine: $QUIET; load average before $LOADAVG)."
		echo "scepd \`$SCEPD_VERSION\` ($(basename "$BUILD_DIR")), $(mode_title "$MODE"), demo CA RSA 3072;"
		echo "$REQUESTS requests by \`tests/scep_load\` at concurrency $CONCURRENCY in rounds of $ROUND: $((100 - GET_PERCENT))% enrollments (PKCSReq, each answer verified), $GET_PERCENT% GetCACaps and GetCACert; the verdicts judge those after the first $WARMUP (warm-up)."
		echo "RSS from \`/proc/PID/status\` after each round, in KiB; every tenth of the run shown (\`soak.sh\` prints every round)."
		echo
		printf '| requests | s |'
		for c in $PROCS; do printf ' %s RssAnon / RssFile |' "$c"; done
		printf ' RssAnon, all | RssFile, all | VmRSS, all | data.mdb (MiB) |\n| ---: | ---: |'
		for _ in $PROCS; do printf ' ---: |'; done
		printf ' ---: | ---: | ---: | ---: |\n'
		tenths "$WORK/samples" | awk -v t0="$SECONDS_START" '{
			printf "| %d | %d |", $1, $2 - t0
			for (i = 4; i <= NF - 4; i++) { sub("/", " / ", $i); printf " %s |", $i }
			printf " %d | %d | %d | %.1f |\n", $(NF - 3), $(NF - 2), $(NF - 1), $NF / 1048576
		}'
		if [ "$HEAP" = 1 ]; then
			echo
			echo "Bytes in use by malloc (glibc's malloc_stats through gdb after each round, all arenas and mmapped blocks), in KiB:"
			echo
			printf '| requests |'
			for c in $SERVICES; do printf ' %s |' "$c"; done
			printf ' all |\n| ---: |'
			for _ in $SERVICES; do printf ' ---: |'; done
			printf ' ---: |\n'
			tenths "$WORK/heap" | awk '{
				printf "| %d |", $1
				for (i = 2; i <= NF; i++) printf " %.1f |", $i / 1024
				printf "\n"
			}'
		fi
		echo
		sed 's/^/    /' "$WORK/summary.txt"
	} > "$WORK/section.md"
	results_put_section "$RESULTS" "Memory soak" "$WORK/section.md"
	echo
	echo "written: the \"Memory soak\" section of $RESULTS"
fi
