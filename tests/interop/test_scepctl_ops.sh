#!/usr/bin/env bash
# scepctl where the operator's situation is not the usual one: keygen
# beside another host's public key, a password that cannot be printed, the
# wrong user, a CA that does not answer, a subject made to drive the
# terminal, and arguments out of range.
. "$(dirname "$0")/lib.sh"
interop_init scepctl_ops
server_start
fetch_ca_chain

check "keygen NAME beside another host's NAME.pub (no NAME.key) refuses and leaves both as they were"
# The CA host holds keys/ra.pub copied from the RA: replacing it would
# shut the real RA out at the next start.
mkdir -p "$DATA/keys"
echo "the RA's public key, copied here" > "$DATA/keys/ra.pub"
cp "$DATA/keys/ra.pub" "$WORK/ra.pub.orig"
rm -f "$DATA/keys/ra.key"
rc=0
"$SCEPCTL" --data-dir "$DATA" keygen ra > "$WORK/keygen.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "ra.pub exists" "$WORK/keygen.out" ||
	{ cat "$WORK/keygen.out"; fail "keygen ra beside ra.pub: exit $rc, want 1 naming ra.pub"; }
cmp -s "$DATA/keys/ra.pub" "$WORK/ra.pub.orig" || fail "keygen ra replaced the existing ra.pub"
[ ! -e "$DATA/keys/ra.key" ] || fail "keygen ra left a new ra.key beside the refused ra.pub"
# An existing key alone is refused as before, and leaves no .pub.
"$SCEPCTL" --data-dir "$DATA" keygen frontend > /dev/null 2>&1 || fail "keygen frontend (a new pair)"
rm "$DATA/keys/frontend.pub"
rc=0
"$SCEPCTL" --data-dir "$DATA" keygen frontend > "$WORK/keygen2.out" 2>&1 || rc=$?
[ $rc = 1 ] && [ ! -e "$DATA/keys/frontend.pub" ] ||
	{ cat "$WORK/keygen2.out"; fail "keygen beside frontend.key: exit $rc, want 1 and no frontend.pub"; }
echo "   $(cat "$WORK/keygen.out")"

check "a password scepctl challenge cannot print (stdout on /dev/full, closed, or a pipe without a reader) is not left outstanding"
before=$(outstanding)
rc=0
"$SCEPCTL" --data-dir "$DATA" challenge > /dev/full 2> "$WORK/full.err" || rc=$?
[ $rc = 1 ] || { cat "$WORK/full.err"; fail "challenge > /dev/full: exit $rc, want 1"; }
after=$(outstanding)
[ "$after" = "$before" ] ||
	{ cat "$WORK/full.err"; fail "challenge > /dev/full: $before outstanding password(s) before, $after after"; }
grep -q "withdrawn" "$WORK/full.err" || { cat "$WORK/full.err"; fail "challenge > /dev/full does not say the password is withdrawn"; }
rc=0
"$SCEPCTL" --data-dir "$DATA" challenge >&- 2> "$WORK/closed.err" || rc=$?
[ $rc = 1 ] && [ "$(outstanding)" = "$before" ] ||
	{ cat "$WORK/closed.err"; fail "challenge with stdout closed: exit $rc, $(outstanding) outstanding, want 1 and $before"; }
# A pipe whose reader is gone (`scepctl challenge | ssh ...` failing): it
# died of SIGPIPE (141), said nothing and left the password outstanding.
rc=0
python3 - "$SCEPCTL" "$DATA" "$WORK/pipe.err" <<'PY' || rc=$?
import os, subprocess, sys
r, w = os.pipe()
os.close(r)
with open(sys.argv[3], "w") as err:
    sys.exit(subprocess.run([sys.argv[1], "--data-dir", sys.argv[2], "challenge"], stdout=w, stderr=err).returncode)
PY
[ $rc = 1 ] && [ "$(outstanding)" = "$before" ] && grep -q "withdrawn" "$WORK/pipe.err" ||
	{ cat "$WORK/pipe.err"; fail "challenge into a pipe without a reader: exit $rc, $(outstanding) outstanding, want 1, $before and the password withdrawn"; }
sed 's/^/   /' "$WORK/full.err"

check "[frontend] ChallengeEndpoint unset: scepctl takes the frontend's default, as the frontend does"
cp "$DATA/scepd.conf" "$WORK/scepd.conf.orig"
on_exit "cp '$WORK/scepd.conf.orig' '$DATA/scepd.conf'"
python3 - "$DATA/scepd.conf" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
head, sep, rest = text.partition("[frontend]")
body, nxt, tail = rest.partition("\n[")
body, n = re.subn(r"\nChallengeEndpoint = [^\n]*", "", body)
assert n == 1, n
open(sys.argv[1], "w").write(head + sep + body + nxt + tail)
PY
rc=0
"$SCEPCTL" --data-dir "$DATA" challenge > "$WORK/default-ep.out" 2>&1 || rc=$?
[ $rc = 0 ] || { cat "$WORK/default-ep.out"; fail "scepctl challenge without [frontend] ChallengeEndpoint: exit $rc"; }
cp "$WORK/scepd.conf.orig" "$DATA/scepd.conf"

check "as another user: a socket it cannot write is named at once; one it can, the CA says who may ask"
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
chmod o+x "$WORK" "$DATA" "$DATA/run"
chmod o+r "$DATA/scepd.conf"
restore_modes() {
	chmod o-x "$WORK" "$DATA" "$DATA/run"
	chmod o-r "$DATA/scepd.conf"
	chmod o-w "$DATA/run/ca.sock"
}
on_exit restore_modes
[ $((8#$(stat -c %a "$DATA/run/ca.sock") & 2)) = 0 ] || fail "the CA's socket is writable by others: $(ls -l "$DATA/run/ca.sock")"
rc=0
start=$(date +%s%N)
$NOBODY "$SCEPCTL" --data-dir "$DATA" list > "$WORK/nobody.out" 2>&1 || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
{ [ $rc = 1 ] && grep -q "permission denied on $DATA/run/ca.sock" "$WORK/nobody.out"; } ||
	{ cat "$WORK/nobody.out"; fail "list as nobody, socket not writable: exit $rc, want 1 'permission denied'"; }
[ $ms -lt 2000 ] || fail "list as nobody, socket not writable: $ms ms, want the refusal at once"
echo "   $ms ms: $(cat "$WORK/nobody.out")"
chmod o+w "$DATA/run/ca.sock"
rc=0
$NOBODY "$SCEPCTL" --data-dir "$DATA" list > "$WORK/nobody2.out" 2>&1 || rc=$?
{ [ $rc = 1 ] && grep -q "neither root nor this service's user" "$WORK/nobody2.out"; } ||
	{ cat "$WORK/nobody2.out"; fail "list as nobody, socket writable: exit $rc, want 1 naming root or the service's user"; }
restore_modes
echo "   $(cat "$WORK/nobody2.out")"
# A data directory whose services are not running: no socket.
mkdir "$WORK/idle"
cp "$DATA/scepd.conf" "$WORK/idle/"
rc=0
"$SCEPCTL" --data-dir "$WORK/idle" list > "$WORK/idle.out" 2>&1 || rc=$?
{ [ $rc = 1 ] && grep -q "no socket at $WORK/idle/run/ca.sock: is scepd running?" "$WORK/idle.out"; } ||
	{ cat "$WORK/idle.out"; fail "list without a socket: exit $rc, want 1 'no socket at'"; }

check "scepctl list shows a subject's C1 controls and bidi characters escaped, not raw"
# U+009B (CSI: ESC [ for a terminal) and U+202E (right-to-left override).
subj=$(printf 'O=Fabrikam,CN=evil\xc2\x9b2J\xe2\x80\xaeabc')
ios_enroll "$(challenge)" "$subj" "$WORK/evil.pem" > /dev/null || fail "enrollment with a C1 and a bidi character"
"$SCEPCTL" --data-dir "$DATA" list > "$WORK/list.out" 2> /dev/null || fail "scepctl list"
if grep -q "$(printf '\xc2\x9b')" "$WORK/list.out" || grep -q "$(printf '\xe2\x80\xae')" "$WORK/list.out"; then
	od -c "$WORK/list.out" | head -20
	fail "scepctl list printed U+009B or U+202E raw"
fi
grep -qF 'CN=evil\u009b2J\u202eabc' "$WORK/list.out" ||
	{ cat "$WORK/list.out"; fail "scepctl list does not show \\u009b and \\u202e"; }
grep -F 'evil' "$WORK/list.out" | sed 's/^/   /'
# JSON too (scepctl show writes it to the terminal): \u escapes, the same
# name once parsed.
evil_serial=$(openssl x509 -in "$WORK/evil.pem" -noout -serial | cut -d= -f2)
"$SCEPCTL" --data-dir "$DATA" show "$evil_serial" > "$WORK/show.out" 2> /dev/null || fail "scepctl show"
"$SCEPCTL" --data-dir "$DATA" list --json > "$WORK/list.json" 2> /dev/null || fail "scepctl list --json"
for f in show.out list.json; do
	if grep -q "$(printf '\xc2\x9b')" "$WORK/$f" || grep -q "$(printf '\xe2\x80\xae')" "$WORK/$f"; then
		fail "scepctl's JSON ($f) holds U+009B or U+202E raw"
	fi
done
python3 - "$WORK/show.out" "$subj" <<'PY' || fail "scepctl show: the subject does not parse back"
import json, sys
assert json.load(open(sys.argv[1]))["subject"] == sys.argv[2], open(sys.argv[1]).read()
PY

check "a state-changing command the CA took and did not answer says it may have been done, and how to see; one no CA took, that nothing was done"
serial=$(openssl x509 -in "$WORK/evil.pem" -noout -serial | cut -d= -f2)
ca=$(service_pid scepd-ca)
[ -n "$ca" ] || fail "no scepd-ca process"
# Stopped, it takes no connection: the request is never sent.
kill -STOP "$ca"
on_exit "kill -CONT $ca"
rc=0
"$SCEPCTL" --data-dir "$DATA" revoke "$serial" > "$WORK/stopped.out" 2>&1 || rc=$?
kill -CONT "$ca"
{ [ $rc = 1 ] && grep -q "took no request within 5 s (not running, hung, or .*): nothing was sent, nothing was done" "$WORK/stopped.out" &&
	! grep -q "may or may not" "$WORK/stopped.out"; } ||
	{ cat "$WORK/stopped.out"; fail "revoke, CA stopped: exit $rc, want 1 saying nothing was sent"; }
"$SCEPCTL" --data-dir "$DATA" show "$serial" | grep -q '"status": "issued"' || fail "$serial was revoked all the same"
sed 's/^/   /' "$WORK/stopped.out"
# Busy (a request's checks taking 8 s: test hook), it takes the request
# and answers after scepctl's 5 s: the revocation is done, unanswered.
# A list asked at the same time with --timeout 30 waits behind the same
# check and is answered.
server_stop
SCEPD_TEST_CA_CHECK_MS=8000 server_start
ios_enroll "$(challenge)" "CN=slow checks" "$WORK/slow.pem" > /dev/null 2>&1 &
slow=$!
sleep 1
"$SCEPCTL" --data-dir "$DATA" revoke "$serial" > "$WORK/busy.out" 2>&1 &
revoking=$!
start=$(date +%s%N)
rc=0
"$SCEPCTL" --data-dir "$DATA" --timeout 30 list --limit 1 > "$WORK/busy-list.out" 2>&1 || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
listed=$rc
rc=0
wait $revoking || rc=$?
wait $slow || true
{ [ $rc = 1 ] && grep -q "may or may not have been done: see scepctl show $serial" "$WORK/busy.out"; } ||
	{ cat "$WORK/busy.out"; fail "revoke, CA busy: exit $rc, want 1 with how to check"; }
sed 's/^/   /' "$WORK/busy.out"
{ [ $listed = 0 ] && grep -q '"serial"\|^[0-9A-F]' "$WORK/busy-list.out"; } ||
	{ cat "$WORK/busy-list.out"; fail "list with --timeout 30, CA busy: exit $listed, want 0 and the listing"; }
[ $ms -gt 5000 ] || fail "list --timeout 30 answered in $ms ms: the CA was not busy past the default 5 s"
echo "   scepctl --timeout 30 list, behind the same check: answered in $ms ms"
for bad in "--timeout 0" "--timeout 3601" "--timeout 5s" "--timeout"; do
	rc=0
	# shellcheck disable=SC2086 # the words are separate arguments
	"$SCEPCTL" --data-dir "$DATA" $bad list > "$WORK/timeout.out" 2>&1 || rc=$?
	[ $rc = 2 ] || { cat "$WORK/timeout.out"; fail "scepctl $bad list: exit $rc, want 2"; }
done
server_restart
ca=$(service_pid scepd-ca)

check "health: each service answers over ipc://; a stopped CA fails within --timeout; the frontend and bad values are usage errors"
for s in ca ra challenge; do
	"$SCEPCTL" --data-dir "$DATA" health "$s" > "$WORK/health.out" 2>&1 ||
		{ cat "$WORK/health.out"; fail "health $s: not answered"; }
	grep -q "^scepd-$s at ipc://$DATA/run/$s.sock answered in [0-9]* ms$" "$WORK/health.out" ||
		{ cat "$WORK/health.out"; fail "health $s: unexpected output"; }
done
kill -STOP "$ca"
rc=0
start=$(date +%s%N)
"$SCEPCTL" --data-dir "$DATA" health ca --timeout 1 > "$WORK/health.out" 2>&1 || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
kill -CONT "$ca"
{ [ $rc = 1 ] && grep -q "scepd-ca at ipc://$DATA/run/ca.sock did not answer within 1 s" "$WORK/health.out"; } ||
	{ cat "$WORK/health.out"; fail "health ca, CA stopped: exit $rc, want 1 naming the timeout"; }
[ $ms -lt 3000 ] || fail "health ca --timeout 1, CA stopped: $ms ms"
echo "   CA stopped: $ms ms: $(cat "$WORK/health.out")"
"$SCEPCTL" --data-dir "$DATA" health ca > /dev/null 2>&1 || fail "health ca: not answered after SIGCONT"
for bad in "frontend" "bogus" "ca --timeout 0" "ca --timeout 301" "ca --timeout 2s" "ca ra"; do
	rc=0
	# shellcheck disable=SC2086 # the words are separate arguments
	"$SCEPCTL" --data-dir "$DATA" health $bad > "$WORK/health.out" 2>&1 || rc=$?
	[ $rc = 2 ] || { cat "$WORK/health.out"; fail "health $bad: exit $rc, want 2"; }
done
grep -q . "$WORK/health.out" || fail "health ca ra: no usage printed"

check "scepctl waiting for a password on stdin (passwd) can dump no core: what it reads is a secret"
mkfifo "$WORK/pw.fifo"
"$SCEPCTL" --data-dir "$DATA" passwd dumps-test < "$WORK/pw.fifo" > "$WORK/dumps.out" 2>&1 &
waiting=$!
exec 7> "$WORK/pw.fifo"
for _ in $(seq 50); do
	grep -q "^State:.*S (sleeping)" "/proc/$waiting/status" 2>/dev/null && break
	sleep 0.1
done
limits=$(grep 'Max core' "/proc/$waiting/limits")
echo "dumps-test-password-1" >&7
exec 7>&-
wait $waiting || { cat "$WORK/dumps.out"; fail "scepctl passwd from a FIFO failed"; }
grep -qE '^Max core file size +0 +0 ' <<< "$limits" || fail "scepctl passwd, reading its password: $limits"
echo "   $limits"

check "list --limit takes 1 to 4294967295 only; passwd says once that a password is too long"
for bad in -1 0 4294967296 " 5" +5 x; do
	rc=0
	"$SCEPCTL" --data-dir "$DATA" list --limit "$bad" > /dev/null 2>&1 || rc=$?
	[ $rc = 2 ] || fail "list --limit '$bad': exit $rc, want 2 (usage)"
done
"$SCEPCTL" --data-dir "$DATA" list --limit 1 > /dev/null 2>&1 || fail "list --limit 1"
rc=0
head -c 2000 /dev/zero | tr '\0' a | "$SCEPCTL" --data-dir "$DATA" passwd carol > /dev/null 2> "$WORK/long.err" || rc=$?
{ [ $rc = 1 ] && [ "$(wc -l < "$WORK/long.err")" = 1 ] && grep -q "longer than" "$WORK/long.err"; } ||
	{ cat "$WORK/long.err"; fail "passwd with 2000 bytes: exit $rc, want 1 and one message"; }

pass "keygen keeps another host's .pub, an unprinted password is withdrawn (a pipe without a reader too), ChallengeEndpoint's default, a request never sent said so, the wrong user is told at once, a timeout says how to check, health answers or times out, list escapes controls and bidi, --limit and passwd bounds"
