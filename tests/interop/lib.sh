# shellcheck shell=bash
# Shared shell functions of the interop tests; `source` it first thing:
#
#   . "$(dirname "$0")/lib.sh"
#   interop_init NAME          work dir, traps; WORK DATA PORT URL BASE set
#   server_start               scepd on 127.0.0.1:$PORT, waits for /healthz
#   pw=$(challenge)            a fresh one-time password (scepctl)
#   fetch_ca_chain             GetCACert -> $CA_PEM $RA_SIG_PEM $RA_ENC_PEM
#   verify_cert FILE           openssl verify against the GetCACert CA
#   set_conf SECTION KEY VALUE edit $DATA/scepd.conf (restart to apply)
#   from=$(log_mark); logged "$from" PATTERN
#                              the server log has PATTERN since the mark
#   add_conf_section SECTION   add [SECTION] to it when missing
#   on_exit "COMMAND"          run at exit, before the server is stopped
#   check "what"               announce a check;  fail "why"  ends the test
#   pass "summary"             the closing PASS line
#
# Environment: BUILD_DIR (cmake build dir), SRC_DIR (repo root); KEEP=1
# keeps the work directory. The server is always stopped at exit.

set -euo pipefail
: "${BUILD_DIR:?set BUILD_DIR to the cmake build directory}"
: "${SRC_DIR:?set SRC_DIR to the repository root}"

SCEPD="$BUILD_DIR/scepd"
SCEPCTL="$BUILD_DIR/scepctl"
IOS_CLIENT="$BUILD_DIR/tests/scep_ios_client"
TEST_NAME=
WORK=
DATA=
PORT=
BASE=
URL=
SERVER_LOG=
SERVER_PID=
CA_PEM=
RA_SIG_PEM=
RA_ENC_PEM=
_EXIT_HOOKS=()

# A TCP port on 127.0.0.1 that nothing uses right now, below the
# kernel's ephemeral range (tests/tools/free_port.py says why).
free_port() {
	python3 "$SRC_DIR/tests/tools/free_port.py"
}

interop_init() {
	TEST_NAME=$1
	WORK=$(mktemp -d "/tmp/scepd-$TEST_NAME.XXXXXX")
	DATA="$WORK/data"
	SERVER_LOG="$WORK/server.log"
	PORT=$(free_port)
	BASE="http://127.0.0.1:$PORT"
	URL="$BASE/certsrv/mscep/mscep.dll"
	trap _interop_exit EXIT
	trap 'exit 130' INT TERM
	echo "== $TEST_NAME (work dir $WORK, port $PORT)"
	for bin in "$SCEPD" "$SCEPCTL"; do
		[ -x "$bin" ] || fail "$bin is not built"
	done
}

on_exit() {
	_EXIT_HOOKS+=("$1")
}

_interop_exit() {
	local rc=$?
	local i
	set +e
	# Last registered, first run: what was started last stops first.
	for ((i = ${#_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
		eval "${_EXIT_HOOKS[$i]}" >/dev/null 2>&1
	done
	server_stop
	[ "$_SANITIZER_FAILED" = 1 ] && [ "$rc" = 0 ] && rc=1
	if [ "${KEEP:-0}" = 1 ]; then
		echo "(KEEP=1: work directory $WORK kept)"
	elif [ -n "$WORK" ]; then
		rm -rf "$WORK"
	fi
	exit $rc
}

check() {
	echo "-- $*"
}

# Ends the test. Inside $(...) the message goes to stderr so that it is
# seen, and the caller's `set -e` ends the test.
fail() {
	if [ "$BASH_SUBSHELL" -gt 0 ]; then
		_fail_report "$@" >&2
	else
		_fail_report "$@"
	fi
	exit 1
}

_fail_report() {
	echo "FAIL: $TEST_NAME: $*"
	if [ -n "$SERVER_LOG" ] && [ -s "$SERVER_LOG" ]; then
		echo "---- last lines of the server log ($SERVER_LOG)"
		tail -n 40 "$SERVER_LOG"
		echo "----"
	fi
}

pass() {
	echo "PASS: $TEST_NAME: $*"
}

# Starts scepd (initialising $DATA on the first start) and waits until
# /healthz answers; START_TIMEOUT (30) s at most, then the log is shown and
# the test fails.
# /healthz is the frontend's alone: then it waits up to 10 s more for the
# CA, the RA and the challenge service to say they serve, so that what
# they log at start is in the log (a service a test makes fail at start
# never says it: that is for the test to see).
server_start() {
	[ -z "$SERVER_PID" ] || fail "server_start: the server is already running"
	echo "   starting scepd on 127.0.0.1:$PORT"
	local from
	from=$(log_mark)
	# Its own process group, so that no child outlives the test even if
	# scepd itself has to be killed.
	setsid "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" "$@" >> "$SERVER_LOG" 2>&1 &
	SERVER_PID=$!
	local deadline=$((SECONDS + ${START_TIMEOUT:-30}))
	while [ $SECONDS -lt $deadline ]; do
		if curl -sf -m 2 "$BASE/healthz" >/dev/null 2>&1; then
			_services_serving "$from"
			return 0
		fi
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			local rc=0
			wait "$SERVER_PID" 2>/dev/null || rc=$?
			SERVER_PID=
			fail "scepd exited (status $rc) before /healthz answered"
		fi
		sleep 0.2
	done
	fail "scepd: /healthz did not answer within ${START_TIMEOUT:-30} s"
}

_services_serving() {
	local from=$1 svc ready
	for _ in $(seq 100); do
		ready=1
		for svc in scepd-ca scepd-ra scepd-challenge; do
			tail -n "+$from" "$SERVER_LOG" | grep -q "^[^ ]* $svc\[[0-9]*\] info: serving on" ||
				{ ready=0; break; }
		done
		[ $ready = 1 ] && return 0
		sleep 0.1
	done
}

# SIGTERM, up to STOP_TIMEOUT (10) s for a clean stop, then SIGKILL; then
# whatever is left of scepd's process group (children it failed to stop)
# is killed.
server_stop() {
	[ -n "$SERVER_PID" ] || return 0
	local pid=$SERVER_PID
	SERVER_PID=
	if kill -TERM "$pid" 2>/dev/null; then
		for _ in $(seq $((5 * ${STOP_TIMEOUT:-10}))); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "   scepd did not stop within ${STOP_TIMEOUT:-10} s: SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	wait "$pid" 2>/dev/null || true
	if kill -0 -- "-$pid" 2>/dev/null; then
		echo "   processes of scepd's group outlived it: SIGKILL" >&2
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	sanitizer_check "$SERVER_LOG"
}

# In the sanitizer build every service reports leaks and undefined
# behaviour to its stderr, which is the server log: any report fails the
# test, even one that passed otherwise.
_SANITIZER_FAILED=0
sanitizer_check() {
	[ -f "$1" ] || return 0
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1"; then
		echo "FAIL: $TEST_NAME: sanitizer report in $1:" >&2
		grep -E -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1" | head -60 >&2
		_SANITIZER_FAILED=1
	fi
}

server_restart() {
	server_stop
	server_start "$@"
}

# A fresh one-time challenge password on stdout.
challenge() {
	local pw
	pw=$("$SCEPCTL" --data-dir "$DATA" challenge) || fail "scepctl challenge failed"
	[ -n "$pw" ] || fail "scepctl challenge printed nothing"
	echo "$pw"
}

# metric NAME_WITH_LABELS: its value in the frontend's /metrics (fails
# the test if absent).
metric() {
	curl -s "$BASE/metrics" > "$WORK/metrics.txt" || fail "/metrics: no answer"
	awk -v m="$1" '$1 == m { print $2; found = 1 } END { exit !found }' "$WORK/metrics.txt" ||
		{ cat "$WORK/metrics.txt"; fail "/metrics has no $1"; }
}

# GetCACert into $WORK/cacert.der, split into $WORK/getcacert-N.pem, and
# sorted by role: CA_PEM (CA:TRUE), RA_SIG_PEM (digitalSignature),
# RA_ENC_PEM (keyEncipherment). One certificate serves all roles alone.
fetch_ca_chain() {
	local url=${1:-$URL} ct f ku n
	ct=$(curl -s -o "$WORK/cacert.der" -w '%{content_type}' \
		"$url?operation=GetCACert&message=CA") || fail "GetCACert: no answer"
	rm -f "$WORK"/getcacert-*.pem
	case "$ct" in
	application/x-x509-ca-ra-cert*)
		openssl pkcs7 -inform DER -in "$WORK/cacert.der" -print_certs \
			-out "$WORK/getcacert-all.pem" 2>/dev/null ||
			fail "GetCACert: not a PKCS#7 certs-only message"
		awk -v dir="$WORK" '/-----BEGIN CERTIFICATE-----/ { n++ }
			n { print > (dir "/getcacert-" n ".pem") }' "$WORK/getcacert-all.pem"
		rm -f "$WORK/getcacert-all.pem"
		;;
	application/x-x509-ca-cert*)
		openssl x509 -inform DER -in "$WORK/cacert.der" -out "$WORK/getcacert-1.pem" ||
			fail "GetCACert: not one DER certificate"
		;;
	*) fail "GetCACert: content type '$ct'" ;;
	esac
	CA_PEM='' RA_SIG_PEM='' RA_ENC_PEM=''
	n=0
	for f in "$WORK"/getcacert-*.pem; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		if openssl x509 -in "$f" -noout -ext basicConstraints 2>/dev/null | grep -q 'CA:TRUE'; then
			[ -n "$CA_PEM" ] || CA_PEM=$f
			continue
		fi
		ku=$(openssl x509 -in "$f" -noout -ext keyUsage 2>/dev/null || true)
		if [ -z "$RA_SIG_PEM" ] && { [ -z "$ku" ] || echo "$ku" | grep -q 'Digital Signature'; }; then
			RA_SIG_PEM=$f
		fi
		if [ -z "$RA_ENC_PEM" ] && { [ -z "$ku" ] || echo "$ku" | grep -q 'Key Encipherment'; }; then
			RA_ENC_PEM=$f
		fi
	done
	[ $n -gt 0 ] || fail "GetCACert: no certificate"
	[ -n "$CA_PEM" ] || fail "GetCACert: no CA certificate (CA:TRUE) among $n"
	[ -n "$RA_SIG_PEM" ] || RA_SIG_PEM=$CA_PEM
	[ -n "$RA_ENC_PEM" ] || RA_ENC_PEM=$CA_PEM
	# shellcheck disable=SC2034 # for the tests
	GETCACERT_COUNT=$n
}

# The certificate chains to the CA that GetCACert gave.
verify_cert() {
	local cert=$1
	[ -n "$CA_PEM" ] || fetch_ca_chain "$URL"
	[ -s "$cert" ] || fail "no certificate in $cert"
	openssl verify -CAfile "$CA_PEM" "$cert" > "$WORK/verify.out" 2>&1 ||
		{ cat "$WORK/verify.out"; fail "$cert does not verify against the GetCACert CA"; }
	echo "   $(openssl x509 -in "$cert" -noout -subject) verifies against the CA"
}

# The pid of the running server's service NAME (scepd-ca, ...): the
# launcher's child, or else a process started with our configuration;
# empty when there is none.
service_pid() {
	local pid
	pid=$(pgrep -P "$SERVER_PID" -x "$1" | head -1 || true)
	[ -n "$pid" ] || pid=$(pgrep -f -- "$1 --config $DATA/scepd.conf" | head -1 || true)
	echo "$pid"
}

# How many one-time passwords are issued and not yet presented (the
# challenge service's outstanding ones, as scepctl challenge --list says).
outstanding() {
	"$SCEPCTL" --data-dir "$DATA" challenge --list --json 2>/dev/null |
		python3 -c 'import json, sys; print(sum(p["state"] == "issued" for p in json.load(sys.stdin)))'
}

# The line the server log's next line will have (1 before it exists).
log_mark() {
	if [ -f "$SERVER_LOG" ]; then echo $(($(wc -l < "$SERVER_LOG") + 1)); else echo 1; fi
}

# logged FROM PATTERN: the server log has PATTERN from line FROM on (the
# whole log is read: grep -q would end a pipe early, tail dying of SIGPIPE).
logged() {
	tail -n "+$1" "$SERVER_LOG" > "$WORK/log.since"
	grep -q -- "$2" "$WORK/log.since"
}

# await_logged FROM PATTERN SECONDS: waits until the server log has
# PATTERN from line FROM on (logged); fails (status 1) after SECONDS.
await_logged() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		logged "$1" "$2" && return 0
		sleep 0.1
	done
	logged "$1" "$2"
}

# await_healthz URL SECONDS: waits until URL/healthz answers 200; fails
# (status 1) after SECONDS.
await_healthz() {
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		curl -sf -m 2 "$1/healthz" > /dev/null 2>&1 && return 0
		sleep 0.2
	done
	curl -sf -m 2 "$1/healthz" > /dev/null 2>&1
}

# Sets KEY = VALUE in [SECTION] of $DATA/scepd.conf, adding it when absent.
set_conf() {
	local section=$1 key=$2 value=$3 conf="$DATA/scepd.conf"
	[ -f "$conf" ] || fail "no $conf (start the server once first)"
	awk -v sect="[$section]" -v key="$key" -v val="$value" '
		function flush() { if (in_sect && !done) { print key " = " val; done = 1 } }
		/^\[/ { flush(); in_sect = ($0 == sect) }
		in_sect && $0 ~ "^[ \t]*" key "[ \t]*=" { print key " = " val; done = 1; next }
		{ print }
		END { flush() }' "$conf" > "$conf.new" && mv "$conf.new" "$conf"
	grep -q "^$key = $value\$" "$conf" || fail "set_conf: could not set $key in [$section]"
}

# Appends an empty [SECTION] to $DATA/scepd.conf unless it is there, so
# set_conf can fill it ([challenge.paths], [validator.NAME]).
add_conf_section() {
	local conf="$DATA/scepd.conf"
	grep -qxF "[$1]" "$conf" || printf '\n[%s]\n' "$1" >> "$conf"
}

# The iOS-like client: ios_enroll CHALLENGE SUBJECT OUT [URL] [extra args];
# its output goes to OUT.log; returns its exit status.
ios_enroll() {
	local pw=$1 subject=$2 out=$3 url=${4:-$URL}
	shift 3
	[ $# -gt 0 ] && shift
	[ -x "$IOS_CLIENT" ] || fail "$IOS_CLIENT is not built"
	local rc=0
	"$IOS_CLIENT" --url "$url" --challenge "$pw" --subject "$subject" \
		--out "$out" --force-plus "$@" > "$out.log" 2>&1 || rc=$?
	sed 's/^/   | /' "$out.log"
	return $rc
}

# certmonger_start DIR: certmonger's own daemon on a private D-Bus session
# bus, its state under DIR (made, mode 0700), both stopped at exit. Exports
# DBUS_SESSION_BUS_ADDRESS and the CERTMONGER_* directories, so that
# getcert talks to it; sets CM_PID and CM_BUS_PID.
certmonger_start() {
	local cm=$1 bus_out bus_pid bin
	for bin in certmonger getcert dbus-daemon; do
		command -v "$bin" >/dev/null || fail "$bin not installed (Debian packages certmonger, dbus)"
	done
	mkdir -p "$cm"/{config,requests,cas,local,tmp,certs}
	chmod 700 "$cm"
	export CERTMONGER_CONFIG_DIR="$cm/config" CERTMONGER_REQUESTS_DIR="$cm/requests" \
		CERTMONGER_CAS_DIR="$cm/cas" CERTMONGER_LOCAL_CA_DIR="$cm/local" \
		CERTMONGER_TMPDIR="$cm/tmp"
	cat > "$cm/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$cm/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
	bus_out=$(dbus-daemon --config-file="$cm/bus.conf" --fork --print-address=1 --print-pid=1) ||
		fail "dbus-daemon did not start"
	DBUS_SESSION_BUS_ADDRESS=$(echo "$bus_out" | sed -n 1p)
	bus_pid=$(echo "$bus_out" | sed -n 2p)
	export DBUS_SESSION_BUS_ADDRESS
	[[ "$bus_pid" =~ ^[0-9]+$ ]] || fail "dbus-daemon pid: '$bus_pid'"
	on_exit "kill $bus_pid"
	CM_BUS_PID=$bus_pid
	echo "   bus $DBUS_SESSION_BUS_ADDRESS (pid $bus_pid)"
	certmonger -s -n -d 2 -p "$cm/certmonger.pid" > "$cm/certmonger.log" 2>&1 &
	CM_PID=$!
	on_exit "kill $CM_PID; sleep 0.5; kill -KILL $CM_PID"
	for _ in $(seq 50); do
		getcert list-cas -s > /dev/null 2>&1 && break
		kill -0 "$CM_PID" 2>/dev/null || { tail -20 "$cm/certmonger.log"; fail "certmonger exited"; }
		sleep 0.2
	done
	getcert list-cas -s > /dev/null 2>&1 || fail "certmonger does not answer on the private bus"
}

# ca_replace DIR BITS [SUBJECT [DAYS]]: a new CA of BITS bits, the same
# subject (or SUBJECT, as openssl req -subj takes it), valid 3650 days (or
# DAYS), in the data directory DIR (ca/ca.pem, ca/ca.key), and the RA's
# certificates reissued under it, their keys kept: a CA rollover that
# keeps db/ca.
ca_replace() {
	local dir=$1 bits=$2 t="$WORK/ca-replace.$$" subj rasubj r n ku
	mkdir -p "$t"
	subj=${3:-$(openssl x509 -in "$dir/ca/ca.pem" -noout -subject -nameopt compat | sed 's/^subject=//')}
	rasubj=$(openssl x509 -in "$dir/ra/ra-sign.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
	openssl req -x509 -new -newkey "rsa:$bits" -nodes -keyout "$t/ca.key" -out "$t/ca.pem" \
		-days "${4:-3650}" -subj "$subj" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" -addext "subjectKeyIdentifier=hash" 2>/dev/null ||
		fail "ca_replace: openssl req"
	for r in sign:digitalSignature enc:keyEncipherment,dataEncipherment; do
		n=${r%%:*}
		ku=${r#*:}
		openssl req -new -key "$dir/ra/ra-$n.key" -subj "$rasubj" -out "$t/$n.csr"
		printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,%s\nextendedKeyUsage=1.3.6.1.4.1.311.20.2.1\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' \
			"$ku" > "$t/$n.ext"
		openssl x509 -req -in "$t/$n.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
			-days 730 -extfile "$t/$n.ext" -out "$dir/ra/ra-$n.pem" 2>/dev/null || fail "ca_replace: RA $n"
	done
	cp "$t/ca.pem" "$dir/ca/ca.pem"
	cp "$t/ca.key" "$dir/ca/ca.key"
	chmod 600 "$dir/ca/ca.key"
	rm -rf "$t"
}

# ca_restart_alone: SIGTERM to the running server's CA, which the launcher
# starts again (reading the configuration anew); waits until it serves.
ca_restart_alone() {
	local served
	served=$(grep -c "scepd-ca.*serving on" "$SERVER_LOG")
	pkill -TERM -f -- "scepd-ca --config $DATA/scepd.conf" || fail "no CA process to restart"
	for _ in $(seq 100); do
		[ "$(grep -c "scepd-ca.*serving on" "$SERVER_LOG")" -gt "$served" ] && return 0
		sleep 0.1
	done
	fail "the launcher did not start the CA again"
}

# faketime_lib: sets FAKETIME_LIB to libfaketime's path, or fails.
faketime_lib() {
	: "${FAKETIME_LIB:=$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime\.so\.1$' | head -1)}"
	[ -n "$FAKETIME_LIB" ] || fail "libfaketime is missing: scripts/deps.sh --test installs faketime"
}

# at_offset OFFSET COMMAND...: COMMAND (a program, or a function such as
# server_start, whose children inherit it) with the clock OFFSET ahead
# (seconds, or libfaketime's 10d, 2h), or behind when negative
# (libfaketime; the sanitizer build is told the preload is wanted).
at_offset() {
	local off=$1
	shift
	case $off in -*) ;; *) off=+$off ;; esac
	faketime_lib
	LD_PRELOAD="$FAKETIME_LIB" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		FAKETIME="$off" FAKETIME_DONT_RESET=1 "$@"
}
