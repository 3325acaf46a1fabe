#!/usr/bin/env bash
# Where an enrollment's CPU goes, measured (issue 7: "where a target is
# missed, ... where the time goes"). Starts scepd on 127.0.0.1 (stopped at
# exit), warms it up, then samples the whole machine with `perf record`
# while tests/scep_load sends it COUNT enrollments at CONCURRENCY, every
# answer verified. Prints, per service, its CPU per enrollment (as the
# benchmark measures it) split by where the samples fell: libcrypto, the
# kernel (system calls, thread switches, disk flushes), libc, libzmq,
# LMDB, scepd's own code; its threads' shares; and the heaviest symbols.
# The crypto floor beside it: `openssl speed` for the key sizes used.
#
#   tests/bench/profile.sh [BUILD_DIR]        (default: build-bench)
#
# Environment:
#   COUNT=3000 CONCURRENCY=16 FREQ=1000 (samples/s per processor)
#   MODE=single   or otp: one-time passwords, as scepd comes
#   CA_BITS=2048  or 3072: the demo CA as scepd makes it
#   RESULTS=FILE  its "## Profile" section is replaced (default
#                 tests/bench/RESULTS.md; RESULTS= writes nothing)
#   KEEP=1        keep the work directory (perf.data)
#
# Needs perf (Debian package linux-perf) and root (system-wide sampling).
set -euo pipefail

SRC_DIR=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${1:-${BUILD_DIR:-$SRC_DIR/build-bench}}
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
COUNT=${COUNT:-3000}
CONCURRENCY=${CONCURRENCY:-16}
FREQ=${FREQ:-1000}
MODE=${MODE:-single}
CA_BITS=${CA_BITS:-2048}
RESULTS=${RESULTS-$SRC_DIR/tests/bench/RESULTS.md}
SCEPD=$BUILD_DIR/scepd
SCEPCTL=$BUILD_DIR/scepctl
. "$SRC_DIR/tests/bench/lib.sh"

command -v perf >/dev/null || fail "perf is not installed (Debian package linux-perf)"
bench_init profile
start_scepd p "$MODE" "$CA_BITS" > "$WORK/p.start" 2>&1
load p 500 "$CONCURRENCY" "$WORK/warm.out"
echo "warm-up: $(field "$WORK/warm.out" rate) enrollments/s"

# pid -> service, for the samples of every thread of each process.
for pid in $(pgrep -g "${SERVER_PIDS[p]}"); do
	echo "$pid $(cat "/proc/$pid/comm")"
done > "$WORK/pids"

# scep_load builds its requests first (the services idle meanwhile):
# the samples that count are the services', whenever they fall.
perf record -F "$FREQ" -a -o "$WORK/perf.data" > "$WORK/perf.log" 2>&1 &
PERF_PIDS=$!
# And each service's system calls and thread switches, all its threads.
while read -r pid name; do
	[ "$name" = scepd ] && continue
	perf stat -x, -e raw_syscalls:sys_enter -e syscalls:sys_enter_getpid \
		-e syscalls:sys_enter_poll -e context-switches -p "$pid" \
		-o "$WORK/stat.$name" > /dev/null 2>&1 &
	PERF_PIDS="$PERF_PIDS $!"
done < "$WORK/pids"
sleep 1
load p "$COUNT" "$CONCURRENCY" "$WORK/load.out"
# shellcheck disable=SC2086 # a list of pids
kill -INT $PERF_PIDS
for pid in $PERF_PIDS; do
	wait "$pid" || true
done
stop_server p

perf script -i "$WORK/perf.data" -F comm,pid,tid,ip,sym,dso -G 2> /dev/null > "$WORK/samples"
SIGN_2048=$(openssl speed -seconds 2 rsa2048 2> /dev/null | awk '/^rsa 2048/ { print $4 * 1000 }')
SIGN_CA=$SIGN_2048
if [ "$CA_BITS" != 2048 ]; then
	SIGN_CA=$(openssl speed -seconds 2 "rsa$CA_BITS" 2> /dev/null | awk -v b="$CA_BITS" '$1 == "rsa" && $2 == b { print $4 * 1000 }')
fi

python3 - "$WORK/pids" "$WORK/samples" "$WORK/load.out" "$SIGN_2048" "$SIGN_CA" "$WORK/stat" \
	"$MODE" "$CA_BITS" "$COUNT" "$CONCURRENCY" "$(git -C "$SRC_DIR" describe --always --dirty 2> /dev/null || echo unknown)" \
	> "$WORK/profile.md" <<'PY'
import collections, re, sys

(pids_file, samples_file, load_file, sign_2048, sign_ca, stat_prefix, mode,
 ca_bits, count, conc, version) = sys.argv[1:]
service = {}
for line in open(pids_file):
    pid, name = line.split()
    service[pid] = name
result = {}
for line in open(load_file):
    if line.startswith("RESULT "):
        result = dict(kv.split("=", 1) for kv in line.split()[1:])

sample = re.compile(r"^\s*(.+?)\s+(\d+)/(\d+)\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")
by_dso = collections.defaultdict(collections.Counter)
by_thread = collections.defaultdict(collections.Counter)
by_sym = collections.defaultdict(collections.Counter)
total = collections.Counter()
for line in open(samples_file):
    m = sample.match(line)
    if not m or m.group(2) not in service:
        continue
    comm, pid, _, sym, dso = m.groups()
    name = service[pid]
    base = dso.rsplit("/", 1)[-1]
    if base == "[kernel.kallsyms]":
        kind = "kernel"
    elif base.startswith("libcrypto"):
        kind = "libcrypto"
    elif base.startswith("libc.so") or base.startswith("ld-linux"):
        kind = "libc"
    elif base.startswith("libzmq"):
        kind = "libzmq"
    elif base.startswith("liblmdb"):
        kind = "LMDB"
    elif base.startswith("scepd"):  # the executables and plugins
        kind = "scepd"
    else:
        kind = "other"
    total[name] += 1
    by_dso[name][kind] += 1
    by_thread[name][comm] += 1
    if sym != "[unknown]":
        by_sym[name][f"{sym} ({base})"] += 1

order = ["scepd-frontend", "scepd-ra", "scepd-challenge", "scepd-ca"]
kinds = ["libcrypto", "kernel", "libc", "libzmq", "LMDB", "scepd", "other"]
ms = {s: float(result.get(f"cpu_ms.{s}", "0")) for s in order}
s2048, sca = float(sign_2048), float(sign_ca)
print(f"Written by `tests/bench/profile.sh` (scepd `{version}`): "
      f"{'single password' if mode == 'single' else 'one-time passwords'}, "
      f"RSA {ca_bits} CA, {count} enrollments at c={conc}, "
      f"{result.get('rate', '?')} enrollments/s, p99 {result.get('p99_ms', '?')} ms, "
      f"all verified; `perf record -a` at the machine's whole load, the "
      f"services' {sum(total.values())} samples split by where they fell. "
      f"CPU per enrollment as the benchmark measures it (the services' "
      f"own counters), in ms:")
print()
print("| service | CPU ms | " + " | ".join(kinds) + " |")
print("| --- | ---: | " + " | ".join("---:" for _ in kinds) + " |")
sums = collections.Counter()
for s in order:
    n = total[s] or 1
    row = [f"{ms[s] * by_dso[s][k] / n:.3f}" for k in kinds]
    for k in kinds:
        sums[k] += ms[s] * by_dso[s][k] / n
    print(f"| {s} | {ms[s]:.3f} | " + " | ".join(row) + " |")
print(f"| all | {sum(ms.values()):.3f} | " + " | ".join(f"{sums[k]:.3f}" for k in kinds) + " |")
print()
floor = 2 * s2048 + sca
print(f"Crypto floor (`openssl speed`, one core, at this hour): an RSA 2048 "
      f"private operation {s2048:.3f} ms, the CA's RSA {ca_bits} signature "
      f"{sca:.3f} ms; the three of an enrollment (the RA's envelope and "
      f"CertRep, the CA's certificate) {floor:.3f} ms, against "
      f"{sums['libcrypto']:.3f} ms in libcrypto and {sum(ms.values()):.3f} "
      f"ms in all.")
print()
print("System calls and thread switches per enrollment (`perf stat` of "
      "each service's threads over the same load; `getpid`, libzmq's check "
      "for a fork on each of its signals and OpenSSL's on each random "
      "draw, is a system call since glibc 2.25 unless lib/pid.c's cache "
      "answers it):")
print()
print("| service | system calls | of which getpid | poll | thread switches |")
print("| --- | ---: | ---: | ---: | ---: |")
events = ["raw_syscalls:sys_enter", "syscalls:sys_enter_getpid",
          "syscalls:sys_enter_poll", "context-switches"]
all_counts = collections.Counter()
for s in order:
    counts = {}
    try:
        for line in open(f"{stat_prefix}.{s}"):
            f = line.strip().split(",")
            if len(f) > 2 and f[2] in events and f[0].isdigit():
                counts[f[2]] = int(f[0])
    except OSError:
        pass
    for e in events:
        all_counts[e] += counts.get(e, 0)
    print(f"| {s} | " + " | ".join(
        f"{counts[e] / int(count):.1f}" if e in counts else "?" for e in events) + " |")
print("| all | " + " | ".join(f"{all_counts[e] / int(count):.1f}" for e in events) + " |")
print()
for s in order:
    n = total[s] or 1
    threads = ", ".join(f"{c} {100 * v / n:.0f} %" for c, v in by_thread[s].most_common(4))
    syms = ", ".join(f"{sym} {100 * v / n:.1f} %" for sym, v in by_sym[s].most_common(6))
    print(f"- {s}: threads {threads}; heaviest symbols: {syms}")
PY

echo
cat "$WORK/profile.md"
if [ -n "$RESULTS" ]; then
	{
		echo "## Profile"
		echo
		cat "$WORK/profile.md"
	} > "$WORK/section.md"
	results_put_section "$RESULTS" "Profile" "$WORK/section.md"
	echo
	echo "written: the \"Profile\" section of $RESULTS"
fi
