#!/usr/bin/env bash
# The services' sandboxes (README "Sandboxing"). After start every service
# and every one of its threads runs under a seccomp filter (Seccomp: 2)
# with NoNewPrivs, no core dumps, and Landlock where the kernel has it.
# Through the test-only SandboxProbe (a build with SCEPD_TEST_HOOKS) the
# CA gets EACCES opening /etc/passwd and keeps serving; creating a socket
# or running a program kills it by SIGSYS, which the launcher logs and
# recovers from; in a sanitizer build LeakSanitizer still reports a leak
# from inside the sandbox. Sandbox = log starts, says it only logs, and
# lets the open through. A CA key or passphrase file that group or others
# may use stops the CA naming the file and its mode. A webhook validator
# reached by host name works from the challenge service's sandbox. With
# User = nobody the CA runs as nobody, and is not dumpable: its /proc
# files belong to root and a process of its own user cannot ptrace it
# (one that is dumpable can).
. "$(dirname "$0")/lib.sh"
interop_init sandbox
PROBE="$BUILD_DIR/tests/sandbox_probe"
[ -x "$PROBE" ] || fail "$PROBE is not built"
CA_EP="ipc://$DATA/run/ca.sock"

svc_pid() {
	pgrep -P "$SERVER_PID" -x "$1"
}

# Waits until a scepd-ca other than $1 serves, and prints its pid.
wait_new_ca() {
	local old=$1 pid
	for _ in $(seq 100); do
		pid=$(svc_pid scepd-ca || true)
		if [ -n "$pid" ] && [ "$pid" != "$old" ] &&
			grep -q "scepd-ca\[$pid\] info: serving on" "$SERVER_LOG"; then
			echo "$pid"
			return 0
		fi
		sleep 0.1
	done
	fail "no new scepd-ca serving after pid $old"
}

enroll() { # CN
	ios_enroll "$(challenge)" "CN=$1" "$WORK/$1.pem" || fail "enrollment of CN=$1"
	verify_cert "$WORK/$1.pem"
}

# What PTRACE_ATTACH to pid $1 gives, run as nobody: "attached" or the
# error.
PTRACE_PY='
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
pid = int(sys.argv[1])
if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
    print(os.strerror(ctypes.get_errno()))
    sys.exit(0)
os.waitpid(pid, 0x40000000)  # __WALL
libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
print("attached")
'
ptrace_as_nobody() {
	# The system's python: a user's (pyenv) may not be nobody's to run.
	local py=/usr/bin/python3
	[ -x "$py" ] || py=$(command -v python3)
	setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
		"$py" -c "$PTRACE_PY" "$1"
}

landlock_abi() {
	python3 -c 'import ctypes; print(ctypes.CDLL(None).syscall(444, None, 0, 1))'
}

# Test builds: each frontend pauses 2 s between its HTTP threads and its
# seccomp filter (see the check after the next).
SCEPD_TEST_FRONTEND_LOCK_DELAY_MS=2000 server_start

check "every service and each of its threads: Seccomp 2, NoNewPrivs 1, no core dumps"
for svc in scepd-ca scepd-challenge scepd-ra scepd-frontend; do
	pid=$(svc_pid $svc) || fail "no $svc child"
	for st in /proc/"$pid"/task/*/status; do
		grep -qE '^Seccomp:[[:space:]]+2$' "$st" ||
			fail "$svc: $st says $(grep Seccomp: "$st")"
		grep -qE '^NoNewPrivs:[[:space:]]+1$' "$st" ||
			fail "$svc: $st says $(grep NoNewPrivs: "$st")"
	done
	grep -qE '^Max core file size +0 +0 ' "/proc/$pid/limits" ||
		fail "$svc: $(grep 'Max core' "/proc/$pid/limits")"
	echo "   $svc (pid $pid): $(ls /proc/"$pid"/task | wc -l) threads filtered"
	grep -q "$svc\[$pid\] info: sandbox: seccomp filter loaded" "$SERVER_LOG" ||
		fail "$svc did not log its seccomp filter"
	grep -q "$svc\[$pid\] warn: sandbox: running as root" "$SERVER_LOG" ||
		fail "$svc runs as root without saying so"
	abi=$(landlock_abi)
	if [ "$abi" -gt 0 ]; then
		grep -q "$svc\[$pid\] info: sandbox: Landlock ABI $abi" "$SERVER_LOG" ||
			fail "$svc did not log Landlock ABI $abi"
	else
		grep -q "$svc\[$pid\] warn: sandbox: Landlock is not available" "$SERVER_LOG" ||
			fail "$svc did not say Landlock is not available"
	fi
done

check "a request reaching a starting frontend is served only once its seccomp filter is loaded"
old=$(svc_pid scepd-frontend)
kill -KILL "$old"
new=""
for _ in $(seq 100); do
	new=$(svc_pid scepd-frontend || true)
	[ -n "$new" ] && [ "$new" != "$old" ] && break
	sleep 0.05
done
[ -n "$new" ] && [ "$new" != "$old" ] || fail "the launcher did not restart the frontend"
code=000
for _ in $(seq 100); do # until it listens
	! grep -q "scepd-frontend\[$new\] info: sandbox: seccomp filter loaded" "$SERVER_LOG" ||
		fail "the restarted frontend loaded its filter before a request could be sent: test broken"
	code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$URL?operation=GetCACaps" || true)
	[ "$code" != 000 ] && break
	sleep 0.02
done
[ "$code" = 200 ] || fail "GetCACaps to the starting frontend: HTTP $code"
await_logged 1 "scepd-frontend\[$new\] info: GET .*op=GetCACaps" 5 || # written as the answer completes
	fail "the restarted frontend's answer is not logged"
filter_line=$(grep -n "scepd-frontend\[$new\] info: sandbox: seccomp filter loaded" "$SERVER_LOG" | head -1 | cut -d: -f1)
answer_line=$(grep -n "scepd-frontend\[$new\] info: GET .*op=GetCACaps" "$SERVER_LOG" | head -1 | cut -d: -f1)
[ -n "$filter_line" ] && [ -n "$answer_line" ] && [ "$filter_line" -lt "$answer_line" ] ||
	fail "the request was answered (log line ${answer_line:-none}) before the filter (line ${filter_line:-none})"
echo "   filter at log line $filter_line, the answer at $answer_line"

check "SandboxProbe open: the CA gets EACCES and keeps serving"
ca=$(svc_pid scepd-ca)
out=$("$PROBE" --endpoint "$CA_EP" open) ||
	fail "open probe: exit $?: $out (scripts/test.sh builds with -DSCEPD_TEST_HOOKS=ON)"
[ "$out" = "errno 13 (Permission denied)" ] || fail "open probe: $out, want errno 13"
enroll after-open
[ "$(svc_pid scepd-ca)" = "$ca" ] || fail "the CA was restarted by an open"

for what in socket setown exec; do
	check "SandboxProbe $what: the CA dies by SIGSYS, the launcher says so and restarts it"
	before=$(grep -c "scepd-ca killed by signal 31 (Bad system call).*restarting" "$SERVER_LOG" || true)
	rc=0
	out=$("$PROBE" --endpoint "$CA_EP" --timeout 3000 "$what") || rc=$?
	[ $rc = 3 ] || fail "$what probe: exit $rc ($out), want no answer"
	ca=$(wait_new_ca "$ca")
	after=$(grep -c "scepd-ca killed by signal 31 (Bad system call).*restarting" "$SERVER_LOG" || true)
	[ "$after" = $((before + 1)) ] ||
		fail "the launcher did not log scepd-ca killed by signal 31 (Bad system call)"
	grep -qE '^Seccomp:[[:space:]]+2$' "/proc/$ca/status" || fail "the new CA is not filtered"
	enroll "after-$what"
done

if grep -q '^SCEPD_SANITIZE:BOOL=ON$' "$BUILD_DIR/CMakeCache.txt"; then
	check "sanitizer build: LeakSanitizer still works in the sandboxed CA"
	out=$("$PROBE" --endpoint "$CA_EP" leak) || fail "leak probe: $out"
	# Stopped here, not by server_stop: this report is the one wanted.
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID" || true
	SERVER_PID=
	mv "$SERVER_LOG" "$WORK/leak.log"
	grep -q "ERROR: LeakSanitizer: detected memory leaks" "$WORK/leak.log" &&
		grep -A3 "Direct leak of 4242 byte" "$WORK/leak.log" | grep -q "in ca_handle_sandbox_probe" ||
		{ tail -30 "$WORK/leak.log"; fail "no symbolized LeakSanitizer report of the probe's leak"; }
	server_start
fi

check "a bad Sandbox value stops the CA naming the key"
set_conf ca Sandbox maybe
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-ca" --config "$DATA/scepd.conf" > "$WORK/bad.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "\[ca\] Sandbox: 'maybe' is not enforce or log" "$WORK/bad.out" ||
	{ cat "$WORK/bad.out"; fail "Sandbox = maybe: exit $rc"; }

check "Sandbox = log: the CA starts, says it only logs, and the open goes through"
set_conf ca Sandbox log
server_restart
ca=$(svc_pid scepd-ca)
grep -q "scepd-ca\[$ca\] warn: sandbox: Sandbox = log: Landlock is not applied" "$SERVER_LOG" ||
	fail "Sandbox = log not announced"
grep -q "scepd-ca\[$ca\] warn: sandbox: seccomp filter loaded in log mode" "$SERVER_LOG" ||
	fail "log-mode filter not announced"
grep -qE '^Seccomp:[[:space:]]+2$' "/proc/$ca/status" || fail "no filter in log mode"
out=$("$PROBE" --endpoint "$CA_EP" open) || fail "open probe in log mode: $out"
[ "$out" = "errno 0 (allowed)" ] || fail "open probe in log mode: $out, want allowed"
enroll in-log-mode
set_conf ca Sandbox enforce

check "a CA key or passphrase file that group or others may use stops the CA"
server_stop
chmod 640 "$DATA/ca/ca.key"
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-ca" --config "$DATA/scepd.conf" > "$WORK/key.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "\[ca\] Key: $DATA/ca/ca.key: mode 0640 gives group or others access" "$WORK/key.out" ||
	{ cat "$WORK/key.out"; fail "key mode 0640: exit $rc"; }
chmod 600 "$DATA/ca/ca.key"
echo "not used" > "$DATA/ca/ca.pass"
chmod 604 "$DATA/ca/ca.pass"
set_conf ca KeyPassphraseFile ca/ca.pass
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-ca" --config "$DATA/scepd.conf" > "$WORK/pass.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "\[ca\] KeyPassphraseFile: $DATA/ca/ca.pass: mode 0604" "$WORK/pass.out" ||
	{ cat "$WORK/pass.out"; fail "passphrase file mode 0604: exit $rc"; }
set_conf ca KeyPassphraseFile ""

check "a webhook validator by host name works in the challenge service's sandbox"
# The plugin's policy: network, name resolution (/etc/hosts here) and the
# trust store stay allowed to the challenge service, which says so.
python3 "$SRC_DIR/tests/tools/webhook_server.py" --mode allow \
	--port-file "$WORK/hook.port" --record "$WORK/hook.jsonl" 2> "$WORK/hook.log" &
hook_pid=$!
on_exit "kill $hook_pid"
for _ in $(seq 100); do
	[ -s "$WORK/hook.port" ] && break
	sleep 0.1
done
[ -s "$WORK/hook.port" ] || { cat "$WORK/hook.log"; fail "webhook_server.py wrote no port"; }
set_conf frontend Paths "/certsrv/mscep/mscep.dll /scep/mdm"
add_conf_section challenge.paths
set_conf challenge.paths /scep/mdm mdm
add_conf_section validator.mdm
set_conf validator.mdm Module webhook
set_conf validator.mdm URL "http://localhost:$(cat "$WORK/hook.port")/challenge"
server_start
ch=$(svc_pid scepd-challenge)
grep -q "scepd-challenge\[$ch\] info: sandbox: validator plugin mdm loaded" "$SERVER_LOG" ||
	fail "the challenge service does not say its plugin keeps the network"
grep -qE '^Seccomp:[[:space:]]+2$' "/proc/$ch/status" || fail "the challenge service is not filtered"
ios_enroll "any-challenge-the-mdm-allows" "CN=via webhook" "$WORK/hook.pem" "$BASE/scep/mdm" ||
	fail "enrollment through the webhook by host name"
verify_cert "$WORK/hook.pem"
[ "$(svc_pid scepd-challenge)" = "$ch" ] || fail "the challenge service was restarted"
[ -s "$WORK/hook.jsonl" ] || fail "the MDM was not asked"
server_stop

check "under SCHED_BATCH (chrt -b, CPUSchedulingPolicy=batch) every service serves: libzmq's threads set that policy again inside the filter"
chrt -b -p 0 $$ || fail "chrt -b on the test's shell"
from=$(log_mark)
server_start
chrt -o -p 0 $$
[ "$(chrt -p "$(svc_pid scepd-ca)" | sed -n 's/.*policy: //p' | head -n 1)" = SCHED_BATCH ] ||
	fail "the CA does not run under SCHED_BATCH: $(chrt -p "$(svc_pid scepd-ca)")"
enroll batch
sleep 1
! logged "$from" "killed by signal 31" || { grep "signal 31" "$WORK/log.since"; fail "a service was killed by its filter under SCHED_BATCH"; }
server_stop

if [ "$(id -u)" = 0 ]; then
	check "User = nobody: the CA runs as nobody and cannot be ptraced or dumped"
	set_conf ca User nobody
	# It binds its socket after dropping root.
	chmod o+x "$WORK" "$DATA"
	chown nobody "$DATA/run"
	server_start
	ca=$(svc_pid scepd-ca)
	uid=$(id -u nobody)
	grep -qE "^Uid:[[:space:]]+${uid}[[:space:]]+${uid}[[:space:]]+${uid}[[:space:]]+${uid}$" "/proc/$ca/status" ||
		fail "the CA runs as $(grep Uid: "/proc/$ca/status")"
	grep -qE "^Groups:[[:space:]]+$(id -g nobody)[[:space:]]*$" "/proc/$ca/status" ||
		fail "the CA keeps groups: $(grep Groups: "/proc/$ca/status")"
	grep -q "scepd-ca\[$ca\] info: sandbox: running as user nobody" "$SERVER_LOG" ||
		fail "the user change is not logged"
	# Not dumpable: /proc/PID files belong to root, not to the process's
	# user, and ptrace by that same user is refused.
	[ "$(stat -c %U "/proc/$ca/environ")" = root ] ||
		fail "/proc/$ca/environ belongs to $(stat -c %U "/proc/$ca/environ"): dumpable"
	setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups sleep 30 &
	control=$!
	on_exit "kill $control"
	sleep 0.2
	res=$(ptrace_as_nobody "$control")
	[ "$res" = attached ] || fail "control: nobody cannot ptrace its own sleep ($res): test broken"
	res=$(ptrace_as_nobody "$ca")
	[ "$res" = "Operation not permitted" ] || fail "ptrace of the CA by nobody: $res"
	enroll as-nobody
	# The kernel clears the launcher's death signal when the CA changes
	# user; the CA sets it again.
	kill -KILL "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	for _ in $(seq 100); do
		[ -d "/proc/$ca" ] && [ "$(awk '{print $3}' "/proc/$ca/stat" 2>/dev/null)" != Z ] || break
		sleep 0.1
	done
	if [ -d "/proc/$ca" ] && [ "$(awk '{print $3}' "/proc/$ca/stat" 2>/dev/null)" != Z ]; then
		pkill -KILL -f "scepd-(ca|ra|frontend|challenge) --config $DATA/" || true
		fail "the CA running as nobody outlived the launcher's SIGKILL"
	fi
	pkill -KILL -f "scepd-(ra|frontend|challenge) --config $DATA/" || true
fi

pass "seccomp, NoNewPrivs and Landlock in every service; the CA's EACCES and SIGSYS; log mode; key modes; User and no dumps"
