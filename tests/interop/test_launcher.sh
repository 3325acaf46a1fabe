#!/usr/bin/env bash
# scepd, the one-machine launcher: a service killed with SIGKILL is
# restarted (logged, with back-off) and enrollment works again; a CA and a
# frontend that hang (SIGSTOP) are found by the liveness checks, killed
# and restarted, and enrollment works again ([scepd] HealthCheck*); one
# that never answers gets a growing back-off, one that served resets it
# (SCEPD_TEST_STABLE_MS); SIGTERM
# stops every service and scepd exits 0; a configuration error stops scepd
# with status 1 naming the service; a non-empty directory that is not a
# scepd data directory is never touched; the keys are made by scepd-init,
# so the launcher itself never loads OpenSSL.
. "$(dirname "$0")/lib.sh"
interop_init launcher
server_start

check "first start made the data directory"
for f in ca/ca.pem ca/ca.key ra/ra-sign.pem ra/ra-enc.pem scepd.conf admin/admin.passwd admin.credentials; do
	[ -f "$DATA/$f" ] || fail "$f missing"
done
[ "$(stat -c %a "$DATA/admin.credentials")" = 600 ] || fail "admin.credentials is not mode 0600"
[ "$(stat -c %a "$DATA/ca/ca.key")" = 600 ] || fail "ca.key is not mode 0600"
openssl x509 -in "$DATA/ca/ca.pem" -noout -text | grep -q "Public-Key: (3072 bit)" || fail "demo CA is not RSA 3072"
openssl x509 -in "$DATA/ra/ra-sign.pem" -noout -subject | grep -q "MSCEP-RA" || fail "RA is not named <host>-MSCEP-RA"
grep -q "Admin URL: http://127.0.0.1:$PORT/certsrv/mscep_admin/" "$SERVER_LOG" || fail "admin URL not printed"
grep -q "SCEP URL:  http://127.0.0.1:$PORT/certsrv/mscep/mscep.dll" "$SERVER_LOG" || fail "SCEP URL not printed"
grep -q "admin:$(cut -d: -f2 "$DATA/admin.credentials")" "$SERVER_LOG" || fail "admin credentials not printed"

check "a build with test hooks says so in each process's log; the start command's build holds no such hooks"
for s in scepd scepd-init scepd-frontend scepd-ra scepd-challenge scepd-ca; do
	grep -q "$s\[[0-9]*\] warn: built with test hooks (SCEPD_TEST_HOOKS)" "$SERVER_LOG" ||
		fail "$s does not warn that it was built with test hooks"
done
# build-run is what scripts/run.sh builds (scripts/test.sh builds it too).
if [ -x "$BUILD_DIR/../build-run/scepd-ca" ]; then
	! grep -l "built with test hooks" "$BUILD_DIR"/../build-run/scepd* ||
		fail "the start command's build holds test hooks"
fi

check "the keys were made by scepd-init, which has exited: the launcher maps no OpenSSL"
if grep -q libcrypto "/proc/$SERVER_PID/maps"; then
	fail "scepd (the launcher, pid $SERVER_PID) has libcrypto mapped"
fi
if pgrep -P "$SERVER_PID" -x scepd-init > /dev/null; then
	fail "scepd-init still runs"
fi

check "a descriptor open when scepd starts reaches none of its services"
# A descriptor left open is writable whatever a service's sandbox says.
# holds PID FILE: whether process PID has FILE open
holds() {
	local fd
	# A service is not dumpable: its descriptors are root's to list.
	[ -e "/proc/$1/fd/0" ] || fail "cannot list the descriptors of $1 (not root?)"
	for fd in "/proc/$1/fd/"*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "$2" ] && return 0
	done
	return 1
}
server_stop
server_start 9>> "$WORK/outside.txt"
holds "$SERVER_PID" "$WORK/outside.txt" || fail "the launcher does not hold the descriptor: this case tests nothing"
for s in scepd-frontend scepd-ra scepd-challenge scepd-ca; do
	pid=$(service_pid "$s")
	[ -n "$pid" ] || fail "no $s"
	! holds "$pid" "$WORK/outside.txt" || fail "$s holds the descriptor scepd was started with"
done

check "a second scepd on the same directory refuses to start, and the first keeps serving"
# Its services would take the first's sockets and, stopping, unlink them.
rc=0
timeout -s KILL 60 "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$((PORT + 1))" > "$WORK/second.log" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "another scepd serves this directory; stop it first" "$WORK/second.log" ||
	{ cat "$WORK/second.log"; fail "a second scepd on DIR: exit $rc, want 1 saying another serves it"; }
sleep 1
ios_enroll "$(challenge)" "CN=after a second scepd" "$WORK/second.pem" >/dev/null ||
	fail "the first scepd no longer enrolls after a second one was started on its directory"
verify_cert "$WORK/second.pem"

check "the same for a directory that was empty at the first start (made beside it and renamed over it)"
mkdir "$WORK/empty"
setsid "$SCEPD" --data-dir "$WORK/empty" --listen "127.0.0.1:$((PORT + 2))" > "$WORK/empty-first.log" 2>&1 &
empty_pid=$!
on_exit "kill -TERM -- -$empty_pid 2>/dev/null"
await_healthz "http://127.0.0.1:$((PORT + 2))" 30 ||
	{ cat "$WORK/empty-first.log"; fail "scepd on an empty directory did not start"; }
rc=0
timeout -s KILL 60 "$SCEPD" --data-dir "$WORK/empty" --listen "127.0.0.1:$((PORT + 3))" > "$WORK/empty-second.log" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "another scepd serves this directory; stop it first" "$WORK/empty-second.log" ||
	{ cat "$WORK/empty-second.log"; fail "a second scepd on a directory the first made from empty: exit $rc, want 1 saying another serves it"; }
kill -TERM -- "-$empty_pid"
wait "$empty_pid" || true

check "a data directory whose sockets would not fit a Unix socket's path is refused before any key is made"
long_dir="$WORK/$(head -c 100 /dev/zero | tr '\0' d)"
rc=0
timeout -s KILL 30 "$SCEPD" --data-dir "$long_dir" > "$WORK/long.log" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "would be longer than a Unix socket's 107" "$WORK/long.log" && [ ! -e "$long_dir" ] ||
	{ cat "$WORK/long.log"; fail "a data directory of a too long path: exit $rc"; }

check "the frontend's sandbox reads DIR/admin (its accounts), not DIR (the keys)"
abs_data=$(realpath "$DATA")
if grep -q "scepd-frontend.*Landlock ABI" "$SERVER_LOG"; then
	grep -q "scepd-frontend.*Landlock .*files only beneath $abs_data/admin (read)" "$SERVER_LOG" ||
		{ grep "scepd-frontend.*Landlock" "$SERVER_LOG"; fail "the frontend's Landlock rule is not DIR/admin"; }
else
	echo "   (this kernel has no Landlock: the rule is not logged)"
fi
if grep -q "sandbox: AdminPasswordFile .* so the frontend may read everything" "$SERVER_LOG"; then
	fail "a warning about AdminPasswordFile's directory with scepd's own layout"
fi

for svc in scepd-ra scepd-ca scepd-challenge; do
	check "$svc killed with SIGKILL is restarted and enrollment works again"
	old=$(pgrep -P "$SERVER_PID" -x "$svc") || fail "no $svc child"
	kill -KILL "$old"
	new=
	for _ in $(seq 50); do
		new=$(pgrep -P "$SERVER_PID" -x "$svc" || true)
		[ -n "$new" ] && [ "$new" != "$old" ] && break
		sleep 0.2
	done
	[ -n "$new" ] && [ "$new" != "$old" ] || fail "$svc was not restarted"
	grep -q "$svc killed by signal 9 (Killed).*restarting" "$SERVER_LOG" || fail "restart of $svc not logged"
	sleep 0.5
	pw=$(challenge)
	"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=after $svc" \
		--out "$WORK/$svc.pem" > "$WORK/$svc.log" 2>&1 || { cat "$WORK/$svc.log"; fail "enrollment after $svc restart"; }
	verify_cert "$WORK/$svc.pem"
done

# hung_replaced SERVICE: SERVICE stopped with SIGSTOP (as a deadlock or
# an HSM that never answers leaves it: running, silent) is named by the
# liveness checks, killed and replaced by a new process within 20 s.
# Sets HUNG_NEW to the new pid.
hung_replaced() {
	local svc=$1 old from
	old=$(service_pid "$svc")
	[ -n "$old" ] || fail "no $svc child"
	from=$(log_mark)
	# Whatever happens, nothing stays stopped behind the test.
	on_exit "kill -CONT $old"
	kill -STOP "$old"
	HUNG_NEW=
	for _ in $(seq 100); do
		HUNG_NEW=$(service_pid "$svc")
		[ -n "$HUNG_NEW" ] && [ "$HUNG_NEW" != "$old" ] && break
		sleep 0.2
	done
	if [ -z "$HUNG_NEW" ] || [ "$HUNG_NEW" = "$old" ]; then
		fail "$svc (pid $old) stopped with SIGSTOP: not replaced within 20 s"
	fi
	logged "$from" "scepd\[[0-9]*\] error: $svc (pid $old) has not answered for [0-9.]* s (2 liveness checks missed in a row, the last: no answer within 2 s): hung; SIGKILL, to restart it" ||
		fail "the launcher did not say that $svc was hung and killed"
	logged "$from" "$svc killed by signal 9 (Killed).*restarting" ||
		fail "the restart of the hung $svc is not logged"
	grep "scepd\[.*$svc.*\(liveness\|hung\|restarting\)" "$WORK/log.since" | sed 's/^/   /'
}

check "the launcher says what its liveness checks ask, and of whom"
add_conf_section scepd
set_conf scepd HealthCheckInterval 1
set_conf scepd HealthCheckTimeout 2
set_conf scepd HealthCheckMisses 2
server_restart
abs_run=$(realpath "$DATA")/run
for what in "scepd-ca: a HealthRequest over ipc://$abs_run/ca.sock" \
	"scepd-ra: a HealthRequest over ipc://$abs_run/ra.sock" \
	"scepd-challenge: a HealthRequest over ipc://$abs_run/challenge.sock" \
	"scepd-frontend: GET http://127.0.0.1:$PORT/healthz"; do
	grep -qF "info: liveness check of $what" "$SERVER_LOG" || fail "not logged: liveness check of $what"
done
grep -q "liveness checks every 1 s, 2 s to answer; a service that misses 2 in a row is killed (SIGKILL) and restarted" "$SERVER_LOG" ||
	fail "the liveness checks' settings are not logged"
sleep 3 # answered, each of them, a few times
! grep -q "missed a liveness check\|refuses the liveness check" "$SERVER_LOG" ||
	{ grep "liveness" "$SERVER_LOG"; fail "a service that runs well missed or refused a check"; }
# Every second the frontend answers the launcher's GET /healthz: no access
# line for it (it would bury the devices'), while others' are logged.
curl -sf "$BASE/healthz" > /dev/null || fail "GET /healthz"
sleep 1
! grep -q 'ua="scepd (liveness check)"' "$SERVER_LOG" ||
	fail "the launcher's liveness checks fill the frontend's access log"
grep -q 'GET /healthz .*ua="curl/' "$SERVER_LOG" || fail "another client's GET /healthz is not logged"

check "a CA stopped with SIGSTOP (hung) is killed and restarted by the liveness checks; enrollment works again"
hung_replaced scepd-ca
sleep 0.5
ios_enroll "$(challenge)" "CN=after a hung CA" "$WORK/hung-ca.pem" >/dev/null ||
	fail "enrollment after the hung CA was replaced"
verify_cert "$WORK/hung-ca.pem"

check "a CA hung under load: the RA, whose workers all wait on it, is not killed with it"
ios_enroll "$(challenge)" "CN=renews under load" "$WORK/load.pem" "$URL" --key "$WORK/load.key" >/dev/null ||
	fail "enrollment of the load's certificate"
ra=$(service_pid scepd-ra)
# Renewal requests go to the CA without a password (it refuses them, out
# of RenewalWindow, but only once it answers): eight at a time hold the
# RA's workers for their RPCTimeout each while the CA is stopped.
rm -f "$WORK/load.stop"
load_pids=()
for i in $(seq 8); do
	( while [ ! -e "$WORK/load.stop" ]; do
		"$IOS_CLIENT" --url "$URL" --subject "CN=renews under load" --out "$WORK/load$i.pem" \
			--renew-cert "$WORK/load.pem" --renew-key "$WORK/load.key" > /dev/null 2>&1 || true
	done ) &
	load_pids+=($!)
done
on_exit "touch $WORK/load.stop"
sleep 1
hung_replaced scepd-ca
sleep 4
touch "$WORK/load.stop"
wait "${load_pids[@]}" 2> /dev/null || true
[ "$(service_pid scepd-ra)" = "$ra" ] || {
	grep "scepd-ra" "$SERVER_LOG" | grep "liveness\|hung\|killed" | tail -5
	fail "the RA (pid $ra) was killed with the hung CA"
}
# Printed, not asserted (none when the RA's checks were answered in time);
# grep -c finding none exits 1, which ended the test under pipefail.
{ grep -c "scepd-ra missed a liveness check .* while a service it waits on does not answer either: not counted" \
	"$SERVER_LOG" || true; } | sed 's/^/   RA checks missed and not counted: /'

check "a frontend stopped with SIGSTOP (hung) is killed and restarted by the liveness checks; it serves again"
hung_replaced scepd-frontend
await_healthz "$BASE" 10 || fail "/healthz does not answer after the hung frontend was replaced"
ios_enroll "$(challenge)" "CN=after a hung frontend" "$WORK/hung-fe.pem" >/dev/null ||
	fail "enrollment after the hung frontend was replaced"
verify_cert "$WORK/hung-fe.pem"

check "started with stdout and stderr closed, no service writes its log into a file it opens (the CA's ledger): they write to /dev/null, and serve"
server_stop
setsid "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" >&- 2>&- &
closed_pid=$!
on_exit "kill $closed_pid 2>/dev/null"
await_healthz "$BASE" 20 || fail "scepd started with stdout and stderr closed does not answer /healthz"
ios_enroll "$(challenge)" "CN=stdio closed" "$WORK/stdio.pem" > /dev/null ||
	fail "no enrollment with scepd started with stdout and stderr closed"
"$SCEPCTL" --data-dir "$DATA" list --limit 1 2> /dev/null | grep -q . || fail "scepctl list, stdio closed at start: the ledger cannot be read"
for svc in scepd scepd-frontend scepd-ra scepd-challenge scepd-ca; do
	pid=$(if [ $svc = scepd ]; then echo "$closed_pid"; else pgrep -P "$closed_pid" -x $svc; fi)
	[ -n "$pid" ] || fail "no $svc process under scepd started with stdio closed"
	for fd in 1 2; do
		[ "$(readlink "/proc/$pid/fd/$fd")" = /dev/null ] ||
			fail "$svc (pid $pid), started with stdio closed: descriptor $fd is $(readlink "/proc/$pid/fd/$fd"), not /dev/null"
	done
done
! grep -a -q "sandbox\|serving on" "$DATA"/db/*/*.mdb || fail "log lines were written into an LMDB file"
kill "$closed_pid"
wait "$closed_pid" || fail "scepd with stdio closed did not stop cleanly"
echo "   every process's descriptors 1 and 2 on /dev/null; enrolled; no log line in the LMDB files"
server_start

check "a frontend whose HTTP threads hang while devices hold every connection is restarted (its acceptor answering 503 is no answer of theirs); a proxy on this host holding PerIPConnectionLimit from 127.0.0.1 restarts nothing"
server_stop
set_conf frontend PerIPConnectionLimit 2
set_conf frontend ConnectionTimeout 120
set_conf frontend MaxConnections 16
set_conf frontend Threads 2
server_start
old=$(service_pid scepd-frontend)
# Two idle connections from 127.0.0.1 (PerIPConnectionLimit = 2), held
# 20 s: the checks come from another loopback address, and pass.
python3 - "$PORT" > "$WORK/held.out" 2>&1 <<'PY' &
import socket, sys, time
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(2)]
print("held", len(held), flush=True)
time.sleep(20)
PY
holder=$!
on_exit "kill $holder 2>/dev/null"
# Connected (a busy machine starts python3 slowly); the acceptor takes
# connections in order, so the next one is counted after them.
for _ in $(seq 100); do grep -q "^held 2" "$WORK/held.out" && break; sleep 0.1; done
grep -q "^held 2" "$WORK/held.out" || { cat "$WORK/held.out"; fail "two connections from 127.0.0.1 could not be opened"; }
curl -s -m 2 -o /dev/null "$BASE/healthz" && fail "a third connection from 127.0.0.1 was served: PerIPConnectionLimit = 2 not reached, the check proves nothing"
wait $holder || true
[ "$(service_pid scepd-frontend)" = "$old" ] ||
	fail "the frontend was restarted while a client held PerIPConnectionLimit from 127.0.0.1 (the checks' address is another)"
echo "   20 s of PerIPConnectionLimit held from 127.0.0.1: frontend $old kept"
# Its HTTP threads stopped (ptrace, the others run), and 20 connections
# from other addresses past MaxConnections = 16: the acceptor answers
# them 503, the checks go to the stopped threads, unanswered.
from=$(log_mark)
python3 - "$old" > "$WORK/stop.out" 2>&1 <<'PY' &
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
pid = int(sys.argv[1])
tids = [int(t) for t in os.listdir("/proc/%d/task" % pid)
        if open("/proc/%d/task/%s/comm" % (pid, t)).read().startswith("MHD")]
for t in tids:  # PTRACE_SEIZE, PTRACE_INTERRUPT
    if libc.ptrace(0x4206, t, None, None) != 0 or libc.ptrace(0x4207, t, None, None) != 0:
        sys.exit("ptrace %d: errno %d" % (t, ctypes.get_errno()))
print("stopped", len(tids), flush=True)
time.sleep(60)
PY
stopper=$!
on_exit "kill $stopper 2>/dev/null"
for _ in $(seq 50); do grep -q "^stopped [1-9]" "$WORK/stop.out" && break; sleep 0.1; done
grep -q "^stopped [1-9]" "$WORK/stop.out" || { cat "$WORK/stop.out"; fail "the frontend's HTTP threads could not be stopped"; }
python3 - "$PORT" > "$WORK/flood.out" 2>&1 <<'PY' &
import socket, sys, time
held = []
for a in range(20):
    s = socket.socket(); s.bind(("127.0.1.%d" % (20 + a), 0)); s.connect(("127.0.0.1", int(sys.argv[1]))); held.append(s)
time.sleep(60)
PY
flooder=$!
on_exit "kill $flooder 2>/dev/null"
await_logged "$from" "scepd\[[0-9]*\] error: scepd-frontend (pid $old) has not answered .*hung; SIGKILL" 40 ||
	fail "a frontend whose HTTP threads hang behind its acceptor's 503s was not killed within 40 s"
# The tracer lets it go: SIGKILL ends a traced process once it is let go.
kill $stopper $flooder 2>/dev/null || true
new=
for _ in $(seq 100); do
	new=$(service_pid scepd-frontend)
	[ -n "$new" ] && [ "$new" != "$old" ] && break
	sleep 0.2
done
[ -n "$new" ] && [ "$new" != "$old" ] || fail "the killed frontend was not restarted"
grep "scepd\[.*scepd-frontend.*\(liveness\|hung\|restarting\)" "$WORK/log.since" | sed 's/^/   /' | cut -c1-250
server_stop
set_conf frontend PerIPConnectionLimit 32
set_conf frontend ConnectionTimeout 15
set_conf frontend MaxConnections 1024
set_conf frontend Threads 0
server_start

check "a CA that exits before it serves, its exit and SIGCHLD both pending when the launcher looks: the others start all the same, and the CA again"
# The SIGCHLD was taken for a stop signal: the CA was restarted, the
# others never started.
mkdir -p "$WORK/once-libexec"
for s in scepd-init scepd-frontend scepd-ra scepd-challenge; do
	ln -sf "$BUILD_DIR/$s" "$WORK/once-libexec/$s"
done
cat > "$WORK/once-libexec/scepd-ca" << EOF
#!/usr/bin/env bash
# Exits at its first start, before it serves; the real CA after.
[ -e "$WORK/once-libexec/ran" ] || { touch "$WORK/once-libexec/ran"; exit 1; }
exec "$BUILD_DIR/scepd-ca" "\$@"
EOF
chmod +x "$WORK/once-libexec/scepd-ca"
server_stop
SCEPD_LIBEXEC_DIR="$WORK/once-libexec" SCEPD_TEST_FIRST_POLL_MS=500 \
	setsid "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" >> "$SERVER_LOG" 2>&1 &
SERVER_PID=$!
await_healthz "$BASE" 20 || true
[ -e "$WORK/once-libexec/ran" ] || fail "the stand-in CA never ran: this case tests nothing"
curl -sf -m 2 "$BASE/healthz" > /dev/null ||
	fail "after the CA exited before it served, the other services were never started"
ios_enroll "$(challenge)" "CN=after an early CA exit" "$WORK/early-exit.pem" >/dev/null ||
	fail "enrollment after the CA exited at its start"
verify_cert "$WORK/early-exit.pem"
server_stop

check "a CA that hangs from its start is restarted with a growing back-off: a run is stable only once it answered"
# A CA stuck in its HSM login was killed 71 s after each start, past the
# 60 s of a stable run, and restarted in 500 ms for ever. A stable run here
# is 1 s (SCEPD_TEST_STABLE_MS) and the stand-in CA is killed 2 s after its
# start: its back-off must grow all the same.
grep -q SCEPD_TEST_STABLE_MS "$SCEPD" ||
	fail "scepd has no test hooks: build with -DSCEPD_TEST_HOOKS=ON (scripts/test.sh does)"
mkdir -p "$WORK/hung-libexec"
for s in scepd-init scepd-frontend scepd-ra scepd-challenge; do
	ln -sf "$BUILD_DIR/$s" "$WORK/hung-libexec/$s"
done
cat > "$WORK/hung-libexec/scepd-ca" << 'EOF'
#!/usr/bin/env bash
# Says it serves (the others start at once), then never answers.
[ -z "${SCEPD_READY_FD:-}" ] || printf x >&"$SCEPD_READY_FD"
exec sleep 600
EOF
chmod +x "$WORK/hung-libexec/scepd-ca"
set_conf scepd HealthCheckTimeout 1
set_conf scepd HealthCheckMisses 1
set_conf scepd HealthCheckGrace 1
server_stop
from=$(log_mark)
SCEPD_LIBEXEC_DIR="$WORK/hung-libexec" SCEPD_TEST_STABLE_MS=1000 \
	setsid "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" >> "$SERVER_LOG" 2>&1 &
SERVER_PID=$!
# restart_delays SERVICE: the delays of its restarts logged since $from.
restart_delays() {
	tail -n "+$from" "$SERVER_LOG" | sed -n "s/.* $1 .* ms.*; restarting in \([0-9]*\) ms$/\1/p" | tr '\n' ' '
}
for _ in $(seq 100); do
	[ "$(restart_delays scepd-ca | wc -w)" -ge 3 ] && break
	sleep 0.2
done
[ "$(restart_delays scepd-ca | cut -d' ' -f1-3)" = "500 1000 2000" ] ||
	fail "a CA killed as hung before it ever answered: restarted in $(restart_delays scepd-ca)ms, want 500 1000 2000"
logged "$from" "scepd-ca killed by signal 9 (Killed) after [0-9]* ms, never having answered a liveness check; restarting in 1000 ms" ||
	fail "the restart of a CA that never answered does not say so"
grep "scepd\[.*scepd-ca.*restarting" "$WORK/log.since" | head -3 | sed 's/^/   /'

check "a service that answered and served a stable run restarts in 500 ms; one that dies before it answers, later"
# The challenge service, a real one: served 3 s, then at once, then 3 s.
for round in 1 2 3; do
	[ "$round" = 2 ] || sleep 3
	old=$(service_pid scepd-challenge)
	[ -n "$old" ] || fail "no scepd-challenge"
	kill -KILL "$old"
	for _ in $(seq 50); do
		new=$(service_pid scepd-challenge)
		[ -n "$new" ] && [ "$new" != "$old" ] && break
		sleep 0.1
	done
done
[ "$(restart_delays scepd-challenge)" = "500 1000 500 " ] ||
	fail "the challenge service: restarted in $(restart_delays scepd-challenge)ms, want 500 1000 500"
set_conf scepd HealthCheckGrace 60

check "HealthCheckInterval = 0: no checks, said at start; a stopped CA stays"
set_conf scepd HealthCheckInterval 0
server_restart
grep -q "liveness checks off (\[scepd\] HealthCheckInterval = 0)" "$SERVER_LOG" || fail "the checks being off is not said"
ca=$(service_pid scepd-ca)
on_exit "kill -CONT $ca"
kill -STOP "$ca"
sleep 6 # three times what found it hung above
[ "$(service_pid scepd-ca)" = "$ca" ] || fail "the CA was replaced with the checks off"
kill -CONT "$ca"

check "a service run by hand beside the launcher's, on its configuration, stops at once naming the one that serves; that one is still reached"
ca=$(service_pid scepd-ca)
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-ca" --config "$DATA/scepd.conf" > "$WORK/second-ca.log" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "another process serves ipc://.*/run/ca.sock: not serving" "$WORK/second-ca.log" ||
	{ cat "$WORK/second-ca.log"; fail "a second scepd-ca on the launcher's socket: exit $rc, want 1 saying another serves it"; }
"$SCEPCTL" --data-dir "$DATA" health ca > /dev/null 2>&1 || fail "the launcher's CA is no longer reached after a second one tried its socket"
[ "$(service_pid scepd-ca)" = "$ca" ] || fail "the launcher's CA was replaced"
sed -n 's/^.*error: /   /p' "$WORK/second-ca.log"

check "a challenge service admitting CurveZMQ clients only on ipc:// is left unchecked (said at start), not killed as hung; scepctl health checks it with its own key"
cp "$DATA/scepd.conf" "$WORK/scepd.conf.plain"
for k in challenge frontend ra scepctl; do
	"$SCEPCTL" --data-dir "$DATA" keygen "$k" > /dev/null 2>&1 || fail "scepctl keygen $k"
done
# No CurvePublicKeyFile: optional for the service, and so for the probe.
set_conf challenge CurveSecretKeyFile keys/challenge.key
set_conf challenge CurveClients "frontend:keys/frontend.pub ra:keys/ra.pub scepctl:keys/scepctl.pub"
set_conf frontend CurveSecretKeyFile keys/frontend.key
set_conf frontend ChallengeServerKey keys/challenge.pub
set_conf ra CurveSecretKeyFile keys/ra.key
set_conf ra ChallengeServerKey keys/challenge.pub
set_conf scepd HealthCheckInterval 1
set_conf scepd HealthCheckGrace 2
from=$(log_mark)
server_restart
logged "$from" "scepd-challenge is not checked for liveness: \[challenge\] CurveClients admits CurveZMQ clients only, and the launcher holds no key (scepctl health challenge can check it)" ||
	{ grep "liveness" "$WORK/log.since"; fail "the unchecked challenge service is not said at start"; }
ch=$(service_pid scepd-challenge)
sleep 6 # past the grace and three times what found the CA hung above
[ "$(service_pid scepd-challenge)" = "$ch" ] ||
	{ grep "scepd-challenge" "$SERVER_LOG" | tail -5; fail "the challenge service (CurveZMQ on ipc://) was killed"; }
"$SCEPCTL" --data-dir "$DATA" health challenge > "$WORK/health.out" 2>&1 &&
	grep -q "^scepd-challenge at ipc://.* answered in" "$WORK/health.out" ||
	{ cat "$WORK/health.out"; fail "scepctl health challenge over CurveZMQ on ipc://"; }
pw=$(challenge)
ios_enroll "$pw" "CN=launcher curve" "$WORK/curve.pem" > /dev/null || fail "enrollment with the challenge service on CurveZMQ"
cp "$WORK/scepd.conf.plain" "$DATA/scepd.conf"

check "a service started anew is checked where its configuration now says (a Listen moved): not killed as hung for the old address"
cp "$DATA/scepd.conf" "$WORK/scepd.conf.before-move"
set_conf scepd HealthCheckInterval 1
set_conf scepd HealthCheckTimeout 2
set_conf scepd HealthCheckMisses 2
set_conf scepd HealthCheckGrace 2
server_restart
set_conf challenge Listen ipc://run/challenge-moved.sock
from=$(log_mark)
pkill -TERM -f -- "scepd-challenge --config $DATA/scepd.conf" || fail "no challenge service"
await_logged "$from" "liveness check of scepd-challenge, its configuration changed: a HealthRequest over ipc://.*/run/challenge-moved.sock" 10 ||
	{ grep "scepd-challenge\|liveness" "$WORK/log.since"; fail "the launcher did not take the moved Listen"; }
moved=$(service_pid scepd-challenge)
sleep 6 # past the grace, and two misses
[ -n "$moved" ] && [ "$(service_pid scepd-challenge)" = "$moved" ] ||
	{ grep "scepd-challenge" "$WORK/log.since" | tail -5; fail "the moved challenge service was killed (asked at its old address)"; }
! logged "$from" "scepd-challenge missed a liveness check" || fail "the moved challenge service missed checks"
cp "$WORK/scepd.conf.before-move" "$DATA/scepd.conf"
server_restart

check "a fork that fails at the first start is tried again after its back-off, not the end of scepd"
server_stop
from=$(log_mark)
SCEPD_TEST_FORK_FAILS=scepd-ra server_start
logged "$from" "scepd\[[0-9]*\] error: cannot fork scepd-ra: Resource temporarily unavailable" ||
	fail "the failed fork is not logged"
await_logged "$from" "scepd-ra\[[0-9]*\] info: serving on" 10 || fail "the RA was not started after its failed fork"
ios_enroll "$(challenge)" "CN=after a failed fork" "$WORK/fork.pem" > /dev/null || fail "no enrollment after the RA's failed fork"
server_stop
server_start

check "a bad [scepd] value stops scepd with status 1 before any service starts, naming the key"
set_conf scepd HealthCheckMisses 0
server_stop
rc=0
timeout 30 "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" > "$WORK/bad-scepd.log" 2>&1 || rc=$?
if [ $rc != 1 ] || ! grep -q "\[scepd\] HealthCheckMisses: 0 is outside 1..100" "$WORK/bad-scepd.log" ||
	grep -q "started scepd-" "$WORK/bad-scepd.log"; then
	cat "$WORK/bad-scepd.log"
	fail "a bad [scepd] HealthCheckMisses: exit $rc"
fi
# The defaults again, for what follows.
set_conf scepd HealthCheckInterval 5
set_conf scepd HealthCheckTimeout 5
set_conf scepd HealthCheckMisses 3
server_start

# stopped_by SIGNAL: scepd, sent SIGNAL, exits 0 within 15 s and no
# service outlives it.
stopped_by() {
	local sig=$1 children rc=0
	children=$(pgrep -P "$SERVER_PID" | tr '\n' ' ')
	[ -n "$children" ] || fail "no children"
	kill -"$sig" "$SERVER_PID"
	for _ in $(seq 150); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	! kill -0 "$SERVER_PID" 2>/dev/null || fail "scepd still runs 15 s after SIG$sig"
	wait "$SERVER_PID" || rc=$?
	SERVER_PID=
	[ $rc = 0 ] || fail "scepd exited $rc after SIG$sig, want 0"
	for pid in $children; do
		kill -0 "$pid" 2>/dev/null && fail "service pid $pid outlived scepd"
	done
	return 0
}

check "AdminPasswordFile in DIR itself (an older layout): a warning that the frontend may read DIR"
mv "$DATA/admin/admin.passwd" "$DATA/admin.passwd"
set_conf frontend AdminPasswordFile admin.passwd
server_restart
grep -q "sandbox: AdminPasswordFile .*admin.passwd is in $abs_data, so the frontend may read everything beneath it, $abs_data/ca/ca.key too" "$SERVER_LOG" ||
	fail "no warning for AdminPasswordFile in DIR"
# The CA's and the RA's keys in a token (not in DIR): the challenge
# service's key is still there. The frontend alone, which says it at start.
server_stop
mkdir "$WORK/keys-aside"
mv "$DATA/ca/ca.key" "$DATA/ra/ra-sign.key" "$DATA/ra/ra-enc.key" "$WORK/keys-aside/"
timeout -s KILL 5 "$BUILD_DIR/scepd-frontend" --config "$DATA/scepd.conf" --listen "127.0.0.1:$((PORT + 4))" \
	> "$WORK/frontend-alone.log" 2>&1 || true
mv "$WORK/keys-aside/ca.key" "$DATA/ca/"
mv "$WORK/keys-aside/ra-sign.key" "$WORK/keys-aside/ra-enc.key" "$DATA/ra/"
grep -q "sandbox: AdminPasswordFile .*admin.passwd is in $abs_data, so the frontend may read everything beneath it, $abs_data/secrets/challenge.key too" "$WORK/frontend-alone.log" ||
	{ cat "$WORK/frontend-alone.log"; fail "no warning for AdminPasswordFile in DIR with the CA's and RA's keys elsewhere"; }
server_start
mv "$DATA/admin.passwd" "$DATA/admin/admin.passwd"
set_conf frontend AdminPasswordFile admin/admin.passwd

check "SIGTERM stops every service; scepd exits 0"
stopped_by TERM
grep -q "scepd-ca exited with status 0" "$SERVER_LOG" || fail "scepd-ca did not stop cleanly"

check "SIGTERM with the RA hung (SIGSTOP): the RA is killed after the grace, the challenge service and the CA still stop cleanly"
server_start
ra=$(service_pid scepd-ra)
log_from=$(($(wc -l < "$SERVER_LOG") + 1))
kill -STOP "$ra"
kill -TERM "$SERVER_PID"
for _ in $(seq 250); do
	kill -0 "$SERVER_PID" 2>/dev/null || break
	sleep 0.1
done
! kill -0 "$SERVER_PID" 2>/dev/null || fail "scepd still runs 25 s after SIGTERM"
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
stop_log=$(tail -n +"$log_from" "$SERVER_LOG")
grep -q "scepd-ra did not stop in time: SIGKILL" <<< "$stop_log" ||
	{ echo "$stop_log" | tail -20; fail "the hung RA was not killed"; }
# Stopped (SIGSTOP), it dies of SIGKILL: not one held in the kernel.
[ $rc = 0 ] && ! grep -q "left behind" <<< "$stop_log" ||
	{ echo "$stop_log" | tail -20; fail "scepd exited $rc after killing the hung RA, want 0 and none left behind"; }
for svc in scepd-challenge scepd-ca; do
	# When all shared one grace, the RA's wait used it up and they were
	# killed in the middle of their clean stop.
	grep -q "$svc exited with status 0" <<< "$stop_log" ||
		{ echo "$stop_log" | grep "scepd\[" | tail -10; fail "$svc did not stop cleanly after the hung RA"; }
done
echo "$stop_log" | grep "scepd\[.*\(SIGKILL\|exited\)" | sed 's/^/   /'

check "scepd killed with SIGKILL takes its services with it (none left holding sockets and databases)"
server_start
children=$(pgrep -P "$SERVER_PID" | tr '\n' ' ')
[ "$(echo $children | wc -w)" = 4 ] || fail "want four services, got: $children"
log_from=$(($(wc -l < "$SERVER_LOG") + 1))
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
for _ in $(seq 100); do
	left=""
	for pid in $children; do
		# A zombie has stopped: its reaper may be slow.
		[ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
			left="$left $pid"
	done
	[ -z "$left" ] && break
	sleep 0.1
done
[ -z "$left" ] || { kill -KILL $left; fail "services outlived the launcher's SIGKILL:$left"; }
tail -n +"$log_from" "$SERVER_LOG" | grep -q "scepd-ca\[[0-9]*\] info: stopping" ||
	{ tail -20 "$SERVER_LOG"; fail "the CA did not stop cleanly after the launcher died"; }
server_start
pw=$(challenge)
"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=after the launcher died" \
	--out "$WORK/after.pem" > "$WORK/after.log" 2>&1 || { cat "$WORK/after.log"; fail "enrollment after a new start"; }

check "SIGHUP (its terminal gone) stops every service in order; scepd exits 0"
stopped_by HUP

check "a hangup of scepd's whole process group (as its terminal's, not under nohup): every service stops cleanly, none killed by it"
server_start
log_from=$(($(wc -l < "$SERVER_LOG") + 1))
kill -HUP -- "-$SERVER_PID"
for _ in $(seq 150); do
	kill -0 "$SERVER_PID" 2>/dev/null || break
	sleep 0.1
done
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
[ $rc = 0 ] || { tail -n +"$log_from" "$SERVER_LOG"; fail "scepd exited $rc after its group's hangup, want 0"; }
! tail -n +"$log_from" "$SERVER_LOG" | grep -q "killed by signal" ||
	{ tail -n +"$log_from" "$SERVER_LOG"; fail "a service was killed by the hangup instead of stopping"; }
for s in scepd-frontend scepd-ra scepd-challenge scepd-ca; do
	tail -n +"$log_from" "$SERVER_LOG" | grep -q "$s exited with status 0" ||
		{ tail -n +"$log_from" "$SERVER_LOG"; fail "$s did not stop cleanly after the hangup"; }
done

check "started under nohup, a hangup of its whole process group (as a terminal's) stops nothing, restarts nothing"
printf '#!/bin/sh\ntrap "" HUP\nexec "%s" "$@"\n' "$SCEPD" > "$WORK/nohup-scepd"
chmod +x "$WORK/nohup-scepd"
SCEPD="$WORK/nohup-scepd" server_start
children=$(pgrep -P "$SERVER_PID" | sort | tr '\n' ' ')
[ "$(echo $children | wc -w)" = 4 ] || fail "want four services, got: $children"
grep -q "SIGHUP is ignored (nohup)" "$SERVER_LOG" || fail "the launcher did not say it keeps SIGHUP ignored"
log_from=$(($(wc -l < "$SERVER_LOG") + 1))
kill -HUP -- "-$SERVER_PID"
sleep 1
kill -0 "$SERVER_PID" 2>/dev/null || fail "scepd died of SIGHUP under nohup"
[ "$(pgrep -P "$SERVER_PID" | sort | tr '\n' ' ')" = "$children" ] ||
	{ tail -n +"$log_from" "$SERVER_LOG"; fail "services died or were restarted after SIGHUP under nohup"; }
! tail -n +"$log_from" "$SERVER_LOG" | grep -q "killed by signal\|stopping" ||
	{ tail -n +"$log_from" "$SERVER_LOG"; fail "a service stopped on SIGHUP under nohup"; }
pw=$(challenge)
"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=after a hangup" \
	--out "$WORK/hup.pem" > "$WORK/hup.log" 2>&1 || { cat "$WORK/hup.log"; fail "enrollment after the hangup"; }
stopped_by TERM

! grep -q "is read by no service" "$SERVER_LOG" || fail "the launcher warns of a section in the configuration scepd made"

check "a configuration error stops scepd with status 1, naming the service; a section no service reads is named first"
# MinRSABits below 2048 was accepted and logged, and did nothing: every
# template refuses less.
set_conf ca MinRSABits 1024
printf '\n[templates.Devices]\nKeyUsage = digitalSignature\n' >> "$DATA/scepd.conf"
set +e
timeout 30 "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" > "$WORK/bad.log" 2>&1
rc=$?
set -e
[ $rc = 1 ] || { cat "$WORK/bad.log"; fail "scepd exit $rc with a bad [ca] value, want 1"; }
grep -q "MinRSABits" "$WORK/bad.log" || fail "the error does not name the key"
grep -q "scepd-ca exited with status 1 3 times" "$WORK/bad.log" || { cat "$WORK/bad.log"; fail "scepd does not name the failing service"; }
grep -q "warning: \[templates.Devices\] is read by no service (a misspelled name?)" "$WORK/bad.log" ||
	{ cat "$WORK/bad.log"; fail "the launcher does not name the section no service reads"; }

check "a service whose section is misspelled ([frontent]) says so at start"
# (every key has a default: it started on them without a word)
sed 's/^\[frontend\]/[frontent]/' "$DATA/scepd.conf" > "$WORK/misspelled.conf"
(timeout -s KILL 3 "$BUILD_DIR/scepd-frontend" --config "$WORK/misspelled.conf" > "$WORK/misspelled.out" 2>&1) 2> /dev/null || true
grep -q "warning: no key in \[frontend\] (no such section, an empty one, or a misspelled name)" "$WORK/misspelled.out" ||
	{ cat "$WORK/misspelled.out"; fail "the frontend did not say its section is missing"; }
! grep -q "warning: no key in" "$SERVER_LOG" || fail "a service of the configuration scepd made warns that its section is missing"

check "a non-empty directory without scepd.conf is refused and left alone"
mkdir -p "$WORK/other" && echo precious > "$WORK/other/notes.txt"
set +e
"$SCEPD" --data-dir "$WORK/other" --listen "127.0.0.1:$PORT" > "$WORK/other.log" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "scepd exit $rc on a foreign directory, want 1"
[ "$(ls "$WORK/other")" = notes.txt ] || fail "scepd wrote into a foreign directory"

check "a first start interrupted while it makes the keys leaves the directory as it was; the next one makes it whole"
mkdir "$WORK/interrupted"
"$BUILD_DIR/scepd-init" --data-dir "$WORK/interrupted" > "$WORK/int1.log" 2>&1 &
init_pid=$!
for _ in $(seq 200); do
	grep -q "initialising" "$WORK/int1.log" && break
	sleep 0.01
done
# SIGTERM: a background job of a script ignores SIGINT (Ctrl-C's).
kill -TERM "$init_pid"
wait "$init_pid" 2>/dev/null || true
! grep -q "created in" "$WORK/int1.log" || fail "the keys were made before the interrupt: test broken"
[ -z "$(ls -A "$WORK/interrupted")" ] || fail "an interrupted first start left $(ls -A "$WORK/interrupted" | tr '\n' ' ')"
# What the interrupt left beside it (its demo CA key among it) the next
# start removes, and says so; a staging directory another start holds
# (locked) it leaves.
left=$(ls -d "$WORK"/interrupted.init.??????) && [ -d "$left" ] ||
	fail "the interrupted first start left no staging directory: test broken"
mkdir "$WORK/interrupted.init.HELD00"
exec 9< "$WORK/interrupted.init.HELD00"
flock 9
# An operator's copy named alike, without the mark a start puts in its
# stage, is not a start's leftover.
mkdir "$WORK/interrupted.init.backup"
echo "a copy of the CA key" > "$WORK/interrupted.init.backup/ca.key"
"$BUILD_DIR/scepd-init" --data-dir "$WORK/interrupted" > "$WORK/int2.log" 2>&1 ||
	{ cat "$WORK/int2.log"; fail "the next first start failed"; }
exec 9<&-
[ -f "$WORK/interrupted/scepd.conf" ] && [ -f "$WORK/interrupted/ca/ca.key" ] || fail "the next first start is not whole"
grep -q "removed $left, left by a first start that was interrupted" "$WORK/int2.log" && [ ! -e "$left" ] ||
	{ cat "$WORK/int2.log"; fail "the staging directory of the interrupted start stayed, or its removal was not said"; }
[ -d "$WORK/interrupted.init.HELD00" ] || fail "a staging directory another first start holds was removed"
! grep -q "HELD00" "$WORK/int2.log" || fail "the held staging directory is said removed"
rmdir "$WORK/interrupted.init.HELD00"
[ -f "$WORK/interrupted.init.backup/ca.key" ] || fail "an operator's DIR.init.backup (no stage mark in it) was removed"
rm -r "$WORK/interrupted.init.backup"

check "a first start made in place ('.') and interrupted is made again by the next (it left part of its files, which every start refused)"
mkdir "$WORK/dot-int"
(cd "$WORK/dot-int" && exec "$BUILD_DIR/scepd-init" --data-dir . > "$WORK/dint1.log" 2>&1) &
init_pid=$!
for _ in $(seq 200); do
	grep -q "initialising" "$WORK/dint1.log" && break
	sleep 0.01
done
kill -TERM "$init_pid"
wait "$init_pid" 2>/dev/null || true
! grep -q "created in" "$WORK/dint1.log" || fail "the keys were made before the interrupt: test broken"
[ -e "$WORK/dot-int/.scepd-init-unfinished" ] || fail "the interrupted start in place left no mark: $(ls -A "$WORK/dot-int" | tr '\n' ' ')"
(cd "$WORK/dot-int" && "$BUILD_DIR/scepd-init" --data-dir .) > "$WORK/dint2.log" 2>&1 ||
	{ cat "$WORK/dint2.log"; fail "the next first start in place failed"; }
grep -q "holds an interrupted first start: made again" "$WORK/dint2.log" || { cat "$WORK/dint2.log"; fail "not said"; }
[ -f "$WORK/dot-int/scepd.conf" ] && [ -f "$WORK/dot-int/ca/ca.key" ] && [ ! -e "$WORK/dot-int/.scepd-init-unfinished" ] ||
	fail "the first start in place made again is not whole: $(ls -A "$WORK/dot-int" | tr '\n' ' ')"
# Something else beside the mark: not ours to remove.
mkdir "$WORK/dot-foreign"
touch "$WORK/dot-foreign/.scepd-init-unfinished" "$WORK/dot-foreign/notes.txt"
rc=0
(cd "$WORK/dot-foreign" && "$BUILD_DIR/scepd-init" --data-dir .) > "$WORK/dforeign.log" 2>&1 || rc=$?
[ $rc != 0 ] && [ -e "$WORK/dot-foreign/notes.txt" ] && grep -q "is not empty and has no scepd.conf" "$WORK/dforeign.log" ||
	{ cat "$WORK/dforeign.log"; fail "a directory with another file beside the mark: exit $rc"; }
# A mark that outlived a finished start (a crash after scepd.conf, before
# the mark went) is dropped by the next start; a directory without
# scepd.conf whose databases exist is never taken for unfinished work:
# it removed keys and ledger.
touch "$WORK/dot-int/.scepd-init-unfinished"
(cd "$WORK/dot-int" && "$BUILD_DIR/scepd-init" --data-dir .) > "$WORK/dint3.log" 2>&1 ||
	{ cat "$WORK/dint3.log"; fail "a finished directory with a stale mark"; }
[ ! -e "$WORK/dot-int/.scepd-init-unfinished" ] || fail "the stale mark of a finished start stayed"
touch "$WORK/dot-int/.scepd-init-unfinished"
mkdir -p "$WORK/dot-int/db/ca"
echo ledger > "$WORK/dot-int/db/ca/data.mdb"
rm "$WORK/dot-int/scepd.conf"
rc=0
(cd "$WORK/dot-int" && "$BUILD_DIR/scepd-init" --data-dir .) > "$WORK/dint4.log" 2>&1 || rc=$?
[ $rc != 0 ] && [ -f "$WORK/dot-int/db/ca/data.mdb" ] && [ -f "$WORK/dot-int/ca/ca.key" ] ||
	{ cat "$WORK/dint4.log"; fail "a directory with a ledger, a mark and no scepd.conf: exit $rc, its files removed"; }

check "a data directory holding only lost+found (a volume of its own, freshly made) is initialised"
mkdir -p "$WORK/fresh-volume/lost+found"
"$BUILD_DIR/scepd-init" --data-dir "$WORK/fresh-volume" > "$WORK/fresh.log" 2>&1 ||
	{ cat "$WORK/fresh.log"; fail "first start on a directory holding only lost+found"; }
[ -f "$WORK/fresh-volume/scepd.conf" ] && [ -d "$WORK/fresh-volume/lost+found" ] ||
	fail "the fresh volume is not whole, or its lost+found is gone"

check "a data directory that is a mount point (a bind mount, a volume) or '.' is made in place"
mkdir -p "$WORK/bindsrc" "$WORK/bound" "$WORK/dot"
mount --bind "$WORK/bindsrc" "$WORK/bound" || fail "cannot bind-mount (the test needs root)"
on_exit "umount -l '$WORK/bound' 2>/dev/null || true"
"$BUILD_DIR/scepd-init" --data-dir "$WORK/bound" > "$WORK/bound.log" 2>&1 ||
	{ cat "$WORK/bound.log"; fail "first start on a bind mount"; }
[ -f "$WORK/bindsrc/scepd.conf" ] && [ -f "$WORK/bindsrc/ca/ca.key" ] || fail "the bind mount is not whole"
grep -q "making it in place" "$WORK/bound.log" || fail "the refused rename is not said"
umount "$WORK/bound"
# Two first starts at once on a mount point, both in place: one waits for
# the other's lock (they wrote the same files at once before).
mkdir -p "$WORK/bindsrc2" "$WORK/bound2"
mount --bind "$WORK/bindsrc2" "$WORK/bound2" || fail "cannot bind-mount (the test needs root)"
on_exit "umount -l '$WORK/bound2' 2>/dev/null || true"
"$BUILD_DIR/scepd-init" --data-dir "$WORK/bound2" > "$WORK/bound2a.log" 2>&1 &
bound_pid1=$!
"$BUILD_DIR/scepd-init" --data-dir "$WORK/bound2" > "$WORK/bound2b.log" 2>&1 &
bound_pid2=$!
rc1=0 rc2=0
wait "$bound_pid1" || rc1=$?
wait "$bound_pid2" || rc2=$?
[ $rc1 = 0 ] && [ $rc2 = 0 ] || { cat "$WORK"/bound2?.log; fail "two first starts on a mount point: exit $rc1 and $rc2"; }
[ "$(cat "$WORK"/bound2?.log | grep -c "created in")" = 1 ] &&
	grep -q "initialised by another scepd meanwhile: using it" "$WORK"/bound2?.log ||
	{ cat "$WORK"/bound2?.log; fail "two first starts on a mount point: want one that made it, one that uses it"; }
openssl x509 -in "$WORK/bindsrc2/ca/ca.pem" -noout -modulus > "$WORK/bound2.mod1"
openssl rsa -in "$WORK/bindsrc2/ca/ca.key" -noout -modulus > "$WORK/bound2.mod2" 2>/dev/null
cmp -s "$WORK/bound2.mod1" "$WORK/bound2.mod2" || fail "ca.pem and ca.key of two first starts in place do not belong together"
umount "$WORK/bound2"
(cd "$WORK/dot" && "$BUILD_DIR/scepd-init" --data-dir .) > "$WORK/dot.log" 2>&1 ||
	{ cat "$WORK/dot.log"; fail "first start with --data-dir ."; }
[ -f "$WORK/dot/scepd.conf" ] || fail "--data-dir . is not whole"
! ls -d "$WORK"/*.init.* "$WORK"/dot/*.init.* 2>/dev/null || fail "a staging directory was left behind"

check "two first starts at once: one whole directory, the same for both"
"$BUILD_DIR/scepd-init" --data-dir "$WORK/twice/" > "$WORK/twice1.log" 2>&1 &
twice_pid1=$!
"$BUILD_DIR/scepd-init" --data-dir "$WORK/twice/" > "$WORK/twice2.log" 2>&1 &
twice_pid2=$!
rc1=0 rc2=0
wait "$twice_pid1" || rc1=$?
wait "$twice_pid2" || rc2=$?
[ $rc1 = 0 ] && [ $rc2 = 0 ] || { cat "$WORK"/twice?.log; fail "two first starts: exit $rc1 and $rc2"; }
openssl x509 -in "$WORK/twice/ca/ca.pem" -noout -modulus > "$WORK/twice.mod1"
openssl rsa -in "$WORK/twice/ca/ca.key" -noout -modulus > "$WORK/twice.mod2" 2>/dev/null
cmp -s "$WORK/twice.mod1" "$WORK/twice.mod2" || fail "ca.pem and ca.key of two first starts do not belong together"
cut -d: -f2 "$WORK/twice/admin.credentials" > "$WORK/twice.pw"
grep -q "admin:$(cat "$WORK/twice.pw")" "$WORK"/twice?.log || fail "the admin password printed is not the directory's"
ls -d "$WORK"/twice.init.* 2>/dev/null && fail "a staging directory was left behind"
[ "$(cat "$WORK"/twice?.log | grep -c "created in")" = 1 ] &&
	[ "$(cat "$WORK"/twice?.log | grep -c "initialised by another scepd meanwhile: using it")" = 1 ] ||
	{ cat "$WORK"/twice?.log; fail "want one start that made it and one that says it uses it"; }

check "scepd on an empty directory that exists (a volume): its lock handed to scepd-init, which does not wait for it"
mkdir -p "$WORK/empty-volume"
rc=0
timeout -s KILL 60 "$SCEPD" --data-dir "$WORK/empty-volume" --listen "127.0.0.1:$PORT" > "$WORK/empty-volume.log" 2>&1 &
ev_pid=$!
for _ in $(seq 300); do
	curl -sf "$BASE/healthz" > /dev/null 2>&1 && break
	kill -0 "$ev_pid" 2>/dev/null || break
	sleep 0.1
done
curl -sf "$BASE/healthz" > /dev/null || { cat "$WORK/empty-volume.log"; fail "scepd on an existing empty directory did not start"; }
grep -q "created in $WORK/empty-volume" "$WORK/empty-volume.log" || fail "the first start on an empty directory is not said"
kill -TERM "$ev_pid"
wait "$ev_pid" || rc=$?
[ $rc = 0 ] || fail "scepd on the empty directory: exit $rc after SIGTERM"

check "without scepd-init beside it scepd says so and exits 1"
mkdir -p "$WORK/no-init"
set +e
SCEPD_LIBEXEC_DIR="$WORK/no-init" "$SCEPD" --data-dir "$WORK/new" --listen "127.0.0.1:$PORT" > "$WORK/no-init.log" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "scepd exit $rc without scepd-init, want 1"
grep -q "no-init/scepd-init: No such file" "$WORK/no-init.log" || { cat "$WORK/no-init.log"; fail "the error does not name scepd-init"; }
[ ! -e "$WORK/new" ] || fail "scepd made a data directory without scepd-init"

check "SCEPD_STOP_TIMEOUT that is not 1 to 3600 seconds: scepd says so and exits 1"
for bad in 0 abc 3601; do
	set +e
	SCEPD_STOP_TIMEOUT=$bad "$SCEPD" --data-dir "$WORK/new" --listen "127.0.0.1:$PORT" > "$WORK/stop-timeout.log" 2>&1
	rc=$?
	set -e
	[ $rc = 1 ] || fail "scepd exit $rc with SCEPD_STOP_TIMEOUT=$bad, want 1"
	grep -q "SCEPD_STOP_TIMEOUT wants seconds, 1 to 3600, not '$bad'" "$WORK/stop-timeout.log" ||
		{ cat "$WORK/stop-timeout.log"; fail "the error does not name SCEPD_STOP_TIMEOUT"; }
done
[ ! -e "$WORK/new" ] || fail "scepd made a data directory with a bad SCEPD_STOP_TIMEOUT"
pass "restart after SIGKILL, hung CA and frontend found and restarted, back-off of a CA hung from its start, clean stop (a hung RA too), configuration errors, foreign directories, scepd-init, interrupted and concurrent first starts, no inherited descriptor in a service"
