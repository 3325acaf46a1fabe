#!/usr/bin/env bash
# `scepd --service-users` (README "One machine, a user per service"): the
# first start writes User = scepd-NAME in each service's section and puts
# each server's socket in a directory of its own under run/, which the
# server makes when it starts: its own, mode 0750, its group's. Only the
# callers are in that group (scripts/users.sh), so the frontend, which
# faces the network, cannot connect to the CA's socket at all, while the
# RA can; before, every service ran as root and any of them taken over
# could ask the CA for a certificate as the RA does. Checked here: a data
# directory under a parent the users cannot pass is refused before any
# key is made, naming the parent; each service runs as its user with the
# groups the script gave it; a device enrolls, the admin page (frontend to
# challenge service) gives a password, scepctl (root) works; a process of
# the frontend's user gets EACCES connecting to the CA's socket and no
# certificate from it, one of the RA's user gets one; the challenge
# service, which both reach, refuses the RA's requests from the
# frontend's user (CallerUsers); --service-users on a directory made
# without it is refused; an account scepctl adds to a new password file
# logs in; a socket directory squatted by the frontend's user, a data
# directory of mode 0700, a password file the frontend cannot read or
# reach, and the RA's user out of group scepd-ca each stop scepd at start
# with the mend in the log; an RA killed -9 comes back into its own
# directory and serves again.
. "$(dirname "$0")/lib.sh"
interop_init service_users
[ "$(id -u)" = 0 ] || fail "needs root (adds the scepd-* users, starts the services as root)"
"$SRC_DIR/scripts/users.sh" || fail "scripts/users.sh failed"

PY=/usr/bin/python3 # the system's: a user's (pyenv) may not be theirs to run
[ -x "$PY" ] || PY=$(command -v python3)

# as USER CMD...: CMD as USER with the groups the group database gives it.
as() {
	local user=$1
	shift
	setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups "$@"
}

svc_pid() {
	pgrep -P "$SERVER_PID" -x "$1"
}

check "a data directory whose parent the services' users cannot pass is refused before any key is made"
# mktemp's directory is 0700: scepd-frontend could reach neither its
# sockets nor admin/ through it.
chmod 0700 "$WORK"
rc=0
"$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" --service-users > "$WORK/refused.log" 2>&1 || rc=$?
cat "$WORK/refused.log" | sed 's/^/   | /'
[ "$rc" = 1 ] || fail "scepd --service-users under a 0700 parent: exit $rc, want 1"
grep -q -- "--service-users: $WORK (mode 0700) does not let the services' users through" "$WORK/refused.log" ||
	fail "the refusal does not name $WORK and its mode"
grep -q "chmod o+x $WORK" "$WORK/refused.log" || fail "the refusal does not say how to mend it"
[ ! -e "$DATA" ] || fail "$DATA was made all the same"

check "--service-users on a directory made without it is refused, naming the sections that would run as root"
"$BUILD_DIR/scepd-init" --data-dir "$WORK/plain" > "$WORK/plain-init.log" 2>&1 || fail "scepd-init of $WORK/plain"
rc=0
"$SCEPD" --data-dir "$WORK/plain" --listen "127.0.0.1:$PORT" --service-users > "$WORK/plain.log" 2>&1 || rc=$?
sed 's/^/   | /' "$WORK/plain.log"
[ "$rc" = 1 ] || fail "scepd --service-users on a DIR made without it: exit $rc, want 1"
grep -q "was made without it: \[ca\] sets no User, and the service would run as root" "$WORK/plain.log" ||
	fail "the refusal does not name [ca]"
! grep -q "started scepd-" "$WORK/plain.log" || fail "services were started all the same"

check "a first start with --service-users: each service as its own user, sockets in directories of their own"
chmod 0711 "$WORK"
server_start --service-users
grep -q "Each service runs as a user of its own" "$SERVER_LOG" ||
	fail "the first start does not say the services run as users of their own"
for svc in ca challenge ra frontend; do
	grep -qx "User = scepd-$svc" "$DATA/scepd.conf" || fail "scepd.conf has no 'User = scepd-$svc'"
	pid=$(svc_pid "scepd-$svc") || fail "scepd-$svc is not running"
	uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
	[ "$uid" = "$(id -u "scepd-$svc")" ] || fail "scepd-$svc runs as uid $uid, not scepd-$svc's"
	grep -q "scepd-$svc\[$pid\] info: sandbox: running as user scepd-$svc" "$SERVER_LOG" ||
		fail "scepd-$svc does not log its user"
done
for svc in ca challenge ra; do
	stat -c '%U %G %a' "$DATA/run/$svc" | grep -qx "scepd-$svc scepd-$svc 750" ||
		fail "$DATA/run/$svc is $(stat -c '%U %G %a' "$DATA/run/$svc"), want scepd-$svc's, 0750"
	[ -S "$DATA/run/$svc/$svc.sock" ] || fail "no socket $DATA/run/$svc/$svc.sock"
done
groups_of() { # the supplementary groups of service $1, one a line
	awk '/^Groups:/ { for (i = 2; i <= NF; i++) print $i }' "/proc/$(svc_pid "$1")/status"
}
ca_gid=$(getent group scepd-ca | cut -d: -f3)
groups_of scepd-ra | grep -qx "$ca_gid" || fail "the RA is not in group scepd-ca: it could not reach the CA"
! groups_of scepd-frontend | grep -qx "$ca_gid" || fail "the frontend is in group scepd-ca"
stat -c '%U' "$DATA/admin/admin.passwd" | grep -qx scepd-frontend ||
	fail "admin/admin.passwd is not the frontend user's: it could not read it at a login"

check "a device enrolls; the admin page gives a password; scepctl, as root, lists the certificate"
ios_enroll "$(challenge)" "CN=users-1" "$WORK/users-1.pem" || fail "enrollment of CN=users-1"
verify_cert "$WORK/users-1.pem"
# UTF-16, as NDES serves it.
page=$(curl -s -u "$(cat "$DATA/admin.credentials")" "$BASE/certsrv/mscep_admin/" | iconv -f UTF-16 -t UTF-8) ||
	fail "the admin page: no answer, or not UTF-16"
pw=$(echo "$page" | grep -oE '\b[0-9A-F]{32}\b' | head -1)
[ -n "$pw" ] || { echo "$page" | head -20; fail "the admin page shows no one-time password"; }
ios_enroll "$pw" "CN=users-admin" "$WORK/users-admin.pem" || fail "enrollment with the admin page's password"
"$SCEPCTL" --data-dir "$DATA" list > "$WORK/list.txt" || fail "scepctl list failed"
grep -q "users-admin" "$WORK/list.txt" || fail "scepctl list does not show CN=users-admin"

check "the frontend's user cannot reach the CA's socket; the RA's can"
mkdir -m 0755 "$WORK/bin"
cp "$BUILD_DIR/tests/ca_sign" "$WORK/bin/ca_sign"
openssl req -new -newkey rsa:2048 -nodes -keyout "$WORK/bin/x.key" -subj "/CN=users-direct" \
	-out "$WORK/bin/x.csr" 2>/dev/null
chmod 0644 "$WORK/bin/x.csr" "$WORK/bin/x.key"
connect_py='
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print("connected")
except OSError as e:
    print(e.strerror)
'
res=$(as scepd-frontend "$PY" -c "$connect_py" "$DATA/run/ca/ca.sock")
[ "$res" = "Permission denied" ] || fail "scepd-frontend connecting to the CA's socket: '$res', want Permission denied"
res=$(as scepd-frontend "$PY" -c "$connect_py" "$DATA/run/ra/ra.sock")
[ "$res" = connected ] || fail "scepd-frontend connecting to the RA's socket: '$res' (test broken?)"
res=$(as scepd-ra "$PY" -c "$connect_py" "$DATA/run/ca/ca.sock")
[ "$res" = connected ] || fail "scepd-ra connecting to the CA's socket: '$res'"
rc=0
as scepd-frontend "$WORK/bin/ca_sign" --endpoint "ipc://$DATA/run/ca/ca.sock" --csr "$WORK/bin/x.csr" \
	--txid users-direct-1 --timeout 3000 > "$WORK/sign-frontend.log" 2>&1 || rc=$?
[ "$rc" = 3 ] || { cat "$WORK/sign-frontend.log"; fail "a SignRequest from scepd-frontend's user: exit $rc, want 3 (no answer)"; }
rc=0
as scepd-ra "$WORK/bin/ca_sign" --endpoint "ipc://$DATA/run/ca/ca.sock" --csr "$WORK/bin/x.csr" \
	--txid users-direct-2 --timeout 10000 > "$WORK/sign-ra.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/sign-ra.log"; fail "a SignRequest from scepd-ra's user: exit $rc, want 0 (issued)"; }
"$SCEPCTL" --data-dir "$DATA" list > "$WORK/list.txt" || fail "scepctl list failed"
grep -q "users-direct" "$WORK/list.txt" || fail "the RA user's certificate is not in the ledger"
[ "$(grep -c "users-direct" "$WORK/list.txt")" = 1 ] || fail "the frontend user's request was issued too"

check "the challenge service refuses the RA's requests from the frontend's user (CallerUsers), takes them from the RA's"
grep -qx "CallerUsers = frontend:scepd-frontend ra:scepd-ra" "$DATA/scepd.conf" ||
	fail "scepd.conf's [challenge] has no CallerUsers line"
cp "$BUILD_DIR/tests/challenge_check" "$WORK/bin/challenge_check"
rc=0
as scepd-frontend "$WORK/bin/challenge_check" --endpoint "ipc://$DATA/run/challenge/challenge.sock" \
	--password "$(challenge)" --txid users-check-1 --timeout 5000 > "$WORK/check-frontend.log" 2>&1 || rc=$?
cat "$WORK/check-frontend.log" | sed 's/^/   | /'
[ "$rc" != 0 ] || fail "a ChallengeCheck declared as the RA's from scepd-frontend's user was answered"
grep -q "not permitted: the caller does not run as the user CallerUsers names for it" "$WORK/check-frontend.log" ||
	fail "the frontend's user is not told why"
grep -q "security: request [0-9]* declares origin 'ra' from user $(id -u scepd-frontend), not CallerUsers' scepd-ra" "$SERVER_LOG" ||
	fail "the challenge service does not log the refusal as a security event"
rc=0
as scepd-ra "$WORK/bin/challenge_check" --endpoint "ipc://$DATA/run/challenge/challenge.sock" \
	--password "$(challenge)" --txid users-check-2 --timeout 5000 > "$WORK/check-ra.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/check-ra.log"; fail "a ChallengeCheck from scepd-ra's user: exit $rc, want 0"; }

check "an account added by scepctl to a new password file is the frontend's to read: its login works"
rm "$DATA/admin/admin.passwd"
echo "second-password-123" | "$SCEPCTL" --data-dir "$DATA" passwd --rights enroll admin2 > /dev/null ||
	fail "scepctl passwd admin2"
stat -c '%U %a' "$DATA/admin/admin.passwd" | grep -qx "scepd-frontend 600" ||
	fail "the new admin.passwd is $(stat -c '%U %a' "$DATA/admin/admin.passwd"), want scepd-frontend's, 0600"
code=$(curl -s -o /dev/null -w '%{http_code}' -u admin2:second-password-123 "$BASE/certsrv/mscep_admin/")
[ "$code" = 200 ] || fail "admin2's login after scepctl passwd: HTTP $code, want 200"

# stopped_with LOG WHAT: scepd started on $DATA stops by itself (a
# service fails at start three times), and LOG holds WHAT.
stopped_with() {
	local log=$1 what=$2 rc=0
	timeout 60 "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" > "$log" 2>&1 || rc=$?
	[ "$rc" = 1 ] || { tail -20 "$log"; fail "scepd: exit $rc, want 1 (a service that cannot start)"; }
	grep -qF -- "$what" "$log" || { grep sandbox "$log" | tail -5; fail "the log does not say: $what"; }
	grep -F -- "$what" "$log" | head -1 | sed 's/^/   | /'
}

check "a socket directory another service's user made before the CA starts: the CA refuses it, naming it"
server_stop
rm -rf "$DATA/run/ca"
mkdir -m 2770 "$DATA/run/ca"
chown scepd-frontend:scepd-frontend "$DATA/run/ca"
stopped_with "$WORK/squat.log" "sandbox: $DATA/run/ca (for User scepd-ca's sockets) is owner $(id -u scepd-frontend):$(id -g scepd-frontend), mode 2770: another user could put a socket of its own there"
[ ! -e "$DATA/run/ca/ca.sock" ] || fail "the CA bound its socket in the frontend user's directory"
rm -rf "$DATA/run/ca"
ln -s "$WORK" "$DATA/run/ca"
stopped_with "$WORK/link.log" "(a symbolic link or not a directory: remove it, the service makes it)"
grep -q "sandbox: $DATA/run/ca (for User scepd-ca's sockets): " "$WORK/link.log" || fail "the refusal does not name run/ca"
rm "$DATA/run/ca"

check "a password file the frontend's user cannot read: the frontend stops at start, saying so, not at every login"
chown root:root "$DATA/admin/admin.passwd"
stopped_with "$WORK/unreadable.log" "sandbox: scepd-frontend cannot read $DATA/admin/admin.passwd, which it reads after start (Permission denied): give it to that user (chown -R scepd-frontend $DATA/admin/admin.passwd)"
chown scepd-frontend:scepd-frontend "$DATA/admin/admin.passwd"
# The file the frontend's, its directory not: the file cannot be reached.
chown root:root "$DATA/admin"
stopped_with "$WORK/unreachable.log" "sandbox: scepd-frontend cannot read $DATA/admin/admin.passwd, which it reads after start (Permission denied)"
chown scepd-frontend:scepd-frontend "$DATA/admin"

check "a data directory restored as 0700: the CA, first to start, says it cannot pass through, and how to mend it"
chmod 0700 "$DATA"
stopped_with "$WORK/closed.log" "sandbox: User scepd-ca cannot pass through $DATA (mode 0700, owner 0:0) to its sockets in $DATA/run/ca: chmod o+x $DATA"
chmod 0711 "$DATA"

check "the RA's user left out of group scepd-ca: the RA stops at start saying it cannot reach the CA's socket, not a timeout per request"
gpasswd --delete scepd-ra scepd-ca > /dev/null
stopped_with "$WORK/reach.log" "sandbox: scepd-ra cannot reach $DATA/run/ca/ca.sock, the socket of a service it calls (Permission denied): put it in that service's group"
"$SRC_DIR/scripts/users.sh" > /dev/null || fail "scripts/users.sh"
id -nG scepd-ra | tr ' ' '\n' | grep -qx scepd-ca || fail "users.sh did not put scepd-ra back in scepd-ca"
server_start
ios_enroll "$(challenge)" "CN=users-again" "$WORK/users-again.pem" || fail "enrollment after the mends"
stat -c '%U %a' "$DATA/run/ca" | grep -qx "scepd-ca 750" || fail "run/ca was not made again, the CA's"

check "an RA killed -9 is started again, binds in its own directory, and serves"
old=$(svc_pid scepd-ra)
kill -KILL "$old"
for _ in $(seq 150); do
	pid=$(svc_pid scepd-ra || true)
	[ -n "$pid" ] && [ "$pid" != "$old" ] && grep -q "scepd-ra\[$pid\] info: serving on" "$SERVER_LOG" && break
	sleep 0.1
done
[ -n "$pid" ] && [ "$pid" != "$old" ] || fail "no new scepd-ra after the kill"
ios_enroll "$(challenge)" "CN=users-2" "$WORK/users-2.pem" || fail "enrollment after the RA's restart"
verify_cert "$WORK/users-2.pem"

pass "services as users of their own: the frontend cannot reach the CA, the RA can; enrollment, admin page, scepctl, restart"
