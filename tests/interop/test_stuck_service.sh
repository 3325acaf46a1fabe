#!/usr/bin/env bash
# A service that SIGKILL cannot end: one waiting on a disk or a network
# file system that stopped answering stays in the kernel (state D) until
# it answers. A FUSE file system that answers nothing (tests/tools/
# fuse_hang.py) holds the frontend at start. The liveness checks kill it;
# 10 s on, the launcher says it has not exited, its state and where it
# waits, and that it is restarted when it exits. On SIGTERM the launcher
# names it again and exits 1 leaving it behind, instead of waiting for
# ever without a word. When the file system goes, the frontend goes too.
. "$(dirname "$0")/lib.sh"
interop_init stuck_service
[ -c /dev/fuse ] || fail "no /dev/fuse: this test needs the kernel's FUSE"
server_start
server_stop

check "a frontend held in the kernel: killed by the liveness checks, logged 10 s later as not exited (state D and where it waits)"
mkdir "$WORK/hung"
python3 "$SRC_DIR/tests/tools/fuse_hang.py" "$WORK/hung" > "$WORK/fuse.out" 2>&1 &
fuse_pid=$!
on_exit "kill $fuse_pid; wait $fuse_pid; umount -l '$WORK/hung'"
for _ in $(seq 50); do
	grep -q mounted "$WORK/fuse.out" && break
	sleep 0.1
done
grep -q mounted "$WORK/fuse.out" || { cat "$WORK/fuse.out"; fail "fuse_hang.py did not mount"; }
set_conf frontend AdminPasswordFile "$WORK/hung/admin.passwd"
set_conf scepd HealthCheckInterval 1
# Room for the other three under a loaded machine: only the held one is
# to miss its checks.
set_conf scepd HealthCheckTimeout 3
set_conf scepd HealthCheckMisses 2
set_conf scepd HealthCheckGrace 5
from=$(log_mark)
SCEPD_STOP_TIMEOUT=2 setsid "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" >> "$SERVER_LOG" 2>&1 &
SERVER_PID=$!
await_logged "$from" "scepd-frontend (pid [0-9]*) has not exited 10 s after SIGKILL (state D (uninterruptible), waiting in [a-z_]*): held in the kernel, by a disk or a network file system that does not answer; it is restarted when it exits" 40 ||
	fail "the frontend held in the kernel after SIGKILL is not logged as such"
logged "$from" "scepd-frontend .* hung; SIGKILL, to restart it" || fail "the liveness checks did not kill the frontend"
grep "has not exited" "$WORK/log.since" | sed 's/^/   /'
# when PATTERN: seconds since the epoch of the first log line with it.
when() { date -u -d "$(grep -m1 -- "$1" "$WORK/log.since" | cut -d' ' -f1)" +%s; }
gap=$(($(when "has not exited") - $(when "scepd-frontend .* hung; SIGKILL")))
[ $gap -ge 9 ] && [ $gap -le 13 ] || fail "logged $gap s after the SIGKILL, want 10 (whole seconds in the log)"
frontend=$(service_pid scepd-frontend)
[ -n "$frontend" ] || fail "no frontend process"

check "SIGTERM: the launcher names it again and exits 1 leaving it behind, within the grace and 10 s"
from=$(log_mark)
kill -TERM "$SERVER_PID"
rc=0
for _ in $(seq 300); do
	kill -0 "$SERVER_PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$SERVER_PID" 2>/dev/null && fail "scepd still runs 30 s after SIGTERM, waiting on the frontend"
wait "$SERVER_PID" || rc=$?
SERVER_PID=
[ $rc = 1 ] || fail "scepd exit $rc with a service left behind, want 1"
logged "$from" "scepd-frontend (pid $frontend) has not exited 10 s after SIGKILL (state D (uninterruptible).*left behind, it holds its files and sockets until the kernel lets it go" ||
	fail "scepd's stop does not name the frontend left behind"
# Killed already by the liveness checks: no SIGTERM grace waited for it.
! logged "$from" "scepd-frontend did not stop in time" ||
	fail "the stop gave the frontend the liveness checks had killed a grace again"
for svc in scepd-ra scepd-challenge scepd-ca; do
	logged "$from" "$svc exited with status 0" || fail "$svc did not stop cleanly beside the held frontend"
done

check "the file system gone, the frontend is gone too"
kill "$fuse_pid"
wait "$fuse_pid" 2>/dev/null || true
for _ in $(seq 50); do
	[ -d "/proc/$frontend" ] && [ "$(awk '{print $3}' "/proc/$frontend/stat" 2>/dev/null)" != Z ] || break
	sleep 0.1
done
[ -d "/proc/$frontend" ] && [ "$(awk '{print $3}' "/proc/$frontend/stat" 2>/dev/null)" != Z ] &&
	fail "the frontend (pid $frontend) outlived the file system that held it"
pass "a service SIGKILL cannot end is named with its state, restarted when it exits, and left behind on stop"
