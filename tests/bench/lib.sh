# shellcheck shell=bash
# Shared by tests/bench/run.sh and tests/bench/soak.sh; `source` it after
# setting BUILD_DIR and SRC_DIR. It brings the interop tests' helpers
# (tests/interop/lib.sh: free_port, set_conf, fail) and:
#
#   bench_init NAME                  $WORK, traps that stop every server
#   wait_quiet MINUTES               until the machine is quiet, or not
#   start_scepd LABEL MODE CA_BITS   MODE otp | single; CA_BITS 3072 | 2048
#   mode_title MODE                  "one-time passwords", "single password"
#   start_micromdm LABEL CA_BITS     micromdm's scepserver, static challenge
#   stop_server LABEL
#   in_netns LABEL COMMAND...        run COMMAND where LABEL listens
#   netns_prefix LABEL               the same as words in NETNS_PREFIX
#   load LABEL COUNT CONCURRENCY OUT [scep_load options...]
#   field OUT KEY                    KEY's value in scep_load's RESULT line
#   calc EXPR                        awk arithmetic: calc '1.5 * 2'
#   results_section FILE HEADING     the section "## HEADING" of FILE
#   results_put_section FILE HEADING CONTENT   replace it by CONTENT
#
# Each server is the leader of its own process group (setsid), so its
# CPU and memory can be read per group and nothing of it outlives us.

# shellcheck source=tests/interop/lib.sh
. "$SRC_DIR/tests/interop/lib.sh"

SCEP_LOAD="$BUILD_DIR/tests/scep_load"
SCEPSERVER=${SCEPSERVER:-/usr/bin/scepserver}
SCEP_PATH=/certsrv/mscep/mscep.dll
# The single password of scepd and micromdm's static challenge.
PASSWORD="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

# label -> pid (the process group), SCEP URL, "otp" / "single" / "static",
# data directory, network namespace ("" for the host's).
declare -A SERVER_PIDS=() SERVER_URL=() SERVER_MODE=() SERVER_DATA=() SERVER_NETNS=()

bench_init() {
	# shellcheck disable=SC2034 # named by fail (tests/interop/lib.sh)
	TEST_NAME=$1
	WORK=$(mktemp -d "/tmp/scepd-$1.XXXXXX")
	trap _bench_exit EXIT
	trap 'exit 130' INT TERM
	if [ ! -x "$SCEPD" ] || [ ! -x "$SCEPCTL" ] || [ ! -x "$SCEP_LOAD" ]; then
		fail "scepd, scepctl or tests/scep_load is not built in $BUILD_DIR"
	fi
}

_bench_exit() {
	local rc=$? label
	set +e
	for label in "${!SERVER_PIDS[@]}"; do
		stop_server "$label"
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "(KEEP=1: work directory $WORK kept)"
	else
		rm -rf "$WORK"
	fi
	exit $rc
}

# Waits, checking every 30 s for up to MINUTES, until the 1-minute load
# average is below 0.6 and no ctest runs. Sets QUIET to what it found
# ("yes", or why not) for the results.
wait_quiet() {
	local minutes=$1 deadline load start=$SECONDS
	deadline=$((SECONDS + 60 * minutes))
	while :; do
		load=$(cut -d' ' -f1 /proc/loadavg)
		if awk -v l="$load" 'BEGIN { exit !(l < 0.6) }' && ! pgrep -x ctest >/dev/null; then
			QUIET="yes (after $(((SECONDS - start) / 60)) min of waiting: load average $load, no ctest)"
			return 0
		fi
		if [ $SECONDS -ge $deadline ]; then
			QUIET="no: after waiting $minutes min the load average was $load$(pgrep -x ctest >/dev/null && echo ', ctest running')"
			echo "bench: the machine is not quiet ($QUIET); measuring anyway" >&2
			return 0
		fi
		echo "   waiting for a quiet machine: load average $load$(pgrep -x ctest >/dev/null && echo ', ctest running')"
		sleep 30
	done
}

# SIGTERM, 10 s, SIGKILL; then whatever is left of its process group.
stop_server() {
	local label=$1 pid=${SERVER_PIDS[$1]:-}
	[ -n "$pid" ] || return 0
	unset "SERVER_PIDS[$label]"
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	kill -KILL -- "-$pid" 2>/dev/null || true
}

in_netns() {
	local label=$1
	shift
	if [ -n "${SERVER_NETNS[$label]:-}" ]; then
		nsenter --net="${SERVER_NETNS[$label]}" -- "$@"
	else
		"$@"
	fi
}

# The words that put a command into LABEL's namespace, in NETNS_PREFIX
# (for commands run under `timeout`, which cannot run a function).
netns_prefix() {
	NETNS_PREFIX=()
	if [ -n "${SERVER_NETNS[$1]:-}" ]; then
		NETNS_PREFIX=(nsenter --net="${SERVER_NETNS[$1]}" --)
	fi
}

# Waits until URL answers 200; 30 s at most: wait_http LABEL URL.
wait_http() {
	local label=$1 url=$2
	for _ in $(seq 150); do
		in_netns "$label" curl -sf -m 2 -o /dev/null "$url" && return 0
		if ! kill -0 "${SERVER_PIDS[$label]}" 2>/dev/null; then
			tail -20 "$WORK/$label.log" >&2
			fail "$label exited"
		fi
		sleep 0.2
	done
	fail "$label did not answer $url within 30 s"
}

mode_title() {
	case $1 in
	otp) echo "one-time passwords" ;;
	single) echo "single password" ;;
	esac
}

_scepd_launch() {
	local label=$1 port=$2
	setsid "$SCEPD" --data-dir "${SERVER_DATA[$label]}" --listen "127.0.0.1:$port" >> "$WORK/$label.log" 2>&1 &
	SERVER_PIDS[$label]=$!
	wait_http "$label" "http://127.0.0.1:$port/healthz"
}

# scepd on 127.0.0.1, first started to make its data directory, then
# configured and started again: start_scepd LABEL MODE CA_BITS.
#   otp     one-time passwords (as it comes), PasswordMax = 100000 so that
#           a load's passwords can all be outstanding at once
#   single  UseSinglePassword with $PASSWORD
# WrongPasswordLimit stays on (its default, 10): the load comes from one
# address, but its passwords are all good, and the table's look-up per
# check costs 2.5 us (16 us with 4,096 addresses listed).
start_scepd() {
	local label=$1 mode=$2 bits=$3 port
	port=$(free_port)
	SERVER_DATA[$label]="$WORK/$label"
	SERVER_MODE[$label]=$mode
	echo "-- $label: first start in ${SERVER_DATA[$label]} (demo CA)"
	_scepd_launch "$label" "$port"
	stop_server "$label"
	# set_conf (tests/interop/lib.sh) edits $DATA/scepd.conf.
	DATA=${SERVER_DATA[$label]}
	if [ "$mode" = single ]; then
		set_conf challenge UseSinglePassword 1
		set_conf challenge SinglePassword "$PASSWORD"
	else
		set_conf challenge PasswordMax 100000
	fi
	# EXTRA_CONF="SECTION KEY VALUE[; SECTION KEY VALUE...]": more
	# settings (tests/bench/ab.sh).
	if [ -n "${EXTRA_CONF:-}" ]; then
		local setting settings
		IFS=';' read -ra settings <<< "$EXTRA_CONF"
		for setting in "${settings[@]}"; do
			# shellcheck disable=SC2086 # three words
			set_conf $setting
			setting=${setting# }
			echo "-- $label: [${setting%% *}] ${setting#* }"
		done
	fi
	if [ "$bits" = 2048 ]; then
		echo "-- $label: the demo CA replaced by an RSA 2048 CA"
		ca_replace "$DATA" 2048
	fi
	echo "-- $label: $(mode_title "$mode")"
	_scepd_launch "$label" "$port"
	SERVER_URL[$label]="http://127.0.0.1:$port$SCEP_PATH"
	echo "   processes: $(pgrep -g "${SERVER_PIDS[$label]}" | xargs -I{} cat /proc/{}/comm | tr '\n' ' ')"
}

# micromdm's scepserver with a static challenge: start_micromdm LABEL
# CA_BITS. It listens on every address (":PORT", it has no option to
# choose one), so it runs in a network namespace of its own with only a
# loopback interface; clients reach it there (in_netns).
start_micromdm() {
	local label=$1 bits=$2 port=8080 depot pid
	depot="$WORK/$label-depot"
	echo "-- $label: scepserver ca -init -keySize $bits"
	(cd "$WORK" && timeout -s KILL 300 "$SCEPSERVER" ca -init -depot "$depot" -keySize "$bits" > "$WORK/$label-init.log" 2>&1)
	# unshare and sh exec: the pid stays scepserver's.
	# shellcheck disable=SC2016 # $0 and $@ are the inner shell's
	setsid unshare --net sh -c 'ip link set lo up && exec "$0" "$@"' \
		"$SCEPSERVER" -depot "$depot" -port "$port" -challenge "$PASSWORD" > "$WORK/$label.log" 2>&1 &
	pid=$!
	SERVER_PIDS[$label]=$pid
	SERVER_MODE[$label]=static
	SERVER_URL[$label]="http://127.0.0.1:$port/scep"
	# The namespace exists once unshare has run; until then /proc/PID/ns/net
	# is ours.
	for _ in $(seq 50); do
		[ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
		sleep 0.1
	done
	SERVER_NETNS[$label]="/proc/$pid/ns/net"
	wait_http "$label" "${SERVER_URL[$label]}?operation=GetCACaps"
	echo "   GetCACaps: $(in_netns "$label" curl -s "${SERVER_URL[$label]}?operation=GetCACaps" | tr '\n' ' ')"
}

# N fresh one-time passwords of LABEL's scepd into FILE, through scepctl,
# 8 at a time (each waits on the challenge service's durable commit).
_challenges() {
	local label=$1 n=$2 file=$3
	seq "$n" | xargs -P8 -I{} "$SCEPCTL" --data-dir "${SERVER_DATA[$label]}" challenge > "$file"
	[ "$(wc -l < "$file")" = "$n" ] || fail "scepctl gave $(wc -l < "$file") of $n passwords"
}

# scep_load against a server: load LABEL COUNT CONCURRENCY OUT [OPTIONS].
# The key pool is cached in $WORK/keys.pem for every load. Exit status 2
# (some answers failed: micromdm's do under concurrency) is counted by
# the caller; anything else ends the run.
load() {
	local label=$1 n=$2 c=$3 out=$4 rc=0
	local -a pw
	shift 4
	if [ "${SERVER_MODE[$label]}" = otp ]; then
		_challenges "$label" "$n" "$WORK/$label.pw"
		pw=(--challenge-file "$WORK/$label.pw")
	else
		pw=(--challenge "$PASSWORD")
	fi
	netns_prefix "$label"
	timeout -s KILL 1800 "${NETNS_PREFIX[@]}" "$SCEP_LOAD" --url "${SERVER_URL[$label]}" "${pw[@]}" \
		--count "$n" --concurrency "$c" --subject-prefix "$label-c$c" \
		--key-cache "$WORK/keys.pem" --server-pgid "${SERVER_PIDS[$label]}" "$@" \
		> "$out" 2>&1 || rc=$?
	if { [ $rc != 0 ] && [ $rc != 2 ]; } || [ -z "$(field "$out" rate)" ]; then
		cat "$out"
		fail "scep_load against $label failed (exit status $rc)"
	fi
	# Every process of the server measured: scepd and its four services,
	# micromdm's one (a missing one would lower CPU and RSS).
	local want=5
	case $label in micromdm*) want=1 ;; esac
	[ "$(field "$out" server_procs)" = "$want" ] ||
		fail "scep_load against $label measured $(field "$out" server_procs) processes, want $want"
}

field() {
	sed -n 's/^RESULT //p' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

calc() {
	awk "BEGIN { printf \"%.6g\", $1 }"
}

# The section "## HEADING" of the markdown FILE, up to the next "## "
# heading, without trailing blank lines; nothing when there is none.
results_section() {
	awk -v h="## $2" '
		$0 == h { on = 1 }
		on && /^## / && $0 != h { exit }
		on { if ($0 == "") blank++; else { for (; blank > 0; blank--) print ""; print } }' "$1"
}

# Replaces the section "## HEADING" of the markdown FILE (up to the next
# "## " heading) by the file CONTENT, which starts with that heading; adds
# it at the end when FILE has no such section.
results_put_section() {
	local file=$1 heading=$2 content=$3
	touch "$file"
	awk -v h="## $heading" -v content="$content" '
		function put() { while ((getline l < content) > 0) print l; put_done = 1 }
		$0 == h { put(); skip = 1; next }
		skip && /^## / { skip = 0; print "" }
		!skip { print }
		END { if (!put_done) { print ""; put() } }' "$file" > "$file.new"
	mv "$file.new" "$file"
}
