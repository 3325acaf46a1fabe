#!/usr/bin/env bash
# Every service under valgrind's memcheck while devices enroll, renew and
# send what the server must refuse: no invalid read or write, no decision
# on uninitialised memory, no leak. The sanitizer build cannot see reads
# of uninitialised memory; this checks the plain build's executables as
# they run (registered for the plain build only: valgrind and
# AddressSanitizer do not mix).
#
# scepd starts the services from SCEPD_LIBEXEC_DIR: a directory of
# wrappers that exec each under valgrind. Valgrind implements neither
# seccomp nor Landlock, so the services run with Sandbox = log, which
# then says that nothing is logged (a service with Sandbox = enforce
# refuses to start there).
. "$(dirname "$0")/lib.sh"
interop_init valgrind
command -v valgrind >/dev/null || fail "valgrind not installed (Debian package valgrind)"
SERVICES="scepd-frontend scepd-ra scepd-challenge scepd-ca"
# Under memcheck a start takes seconds (the CA times four signatures), and
# a stop too (each service's leak check: the CA's took more than the
# launcher's 10 s on a slow host): lib.sh's limits and the launcher's,
# widened.
# shellcheck disable=SC2034 # read by server_start and server_stop
START_TIMEOUT=120 STOP_TIMEOUT=200
export SCEPD_STOP_TIMEOUT=45

check "first start without valgrind: the data directory and demo CA"
server_start
server_stop

mkdir -p "$WORK/libexec" "$WORK/vg"
for s in $SERVICES; do
	cat > "$WORK/libexec/$s" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \\
	--track-origins=yes --num-callers=30 --log-file=$WORK/vg/$s.%p.log \\
	"$BUILD_DIR/$s" "\$@"
EOF
	chmod +x "$WORK/libexec/$s"
done
ln -s "$BUILD_DIR/scepd-init" "$WORK/libexec/scepd-init"

check "Sandbox = enforce under valgrind: the service refuses to start, and says why"
from=$(log_mark)
SCEPD_LIBEXEC_DIR="$WORK/libexec" setsid "$SCEPD" --data-dir "$DATA" \
	--listen "127.0.0.1:$PORT" >> "$SERVER_LOG" 2>&1 &
# shellcheck disable=SC2034 # server_stop (lib.sh) stops it
SERVER_PID=$!
await_logged "$from" "scepd-ca\[[0-9]*\] error: sandbox: seccomp_init failed" 60 ||
	fail "the CA did not refuse to start without seccomp"
server_stop
rm -f "$WORK"/vg/*.log

for section in frontend ra challenge ca; do
	set_conf "$section" Sandbox log
done
# Renewals at any time, so that one goes through the CA's renewal path.
add_conf_section template.IPSECIntermediateOffline
set_conf template.IPSECIntermediateOffline RenewalWindow 100
check "the four services under memcheck (Sandbox = log)"
from=$(log_mark)
SCEPD_LIBEXEC_DIR="$WORK/libexec" server_start
for s in $SERVICES; do
	await_logged "$from" "$s\[[0-9]*\] warn: sandbox: Sandbox = log: seccomp is not available here" 120 ||
		fail "$s did not say that seccomp is unavailable and nothing is logged"
	[ "$(find "$WORK/vg" -name "$s.*.log" | wc -l)" = 1 ] ||
		fail "$s: not one valgrind log: $(ls "$WORK/vg")"
done
fetch_ca_chain

check "a device enrolls, then renews with its certificate"
ios_enroll "$(challenge)" "O=Fabrikam,CN=valgrind 1" "$WORK/c1.pem" "$URL" --key "$WORK/c1.key" ||
	fail "enrollment under valgrind"
verify_cert "$WORK/c1.pem"
rc=0
"$IOS_CLIENT" --url "$URL" --subject "O=Fabrikam,CN=valgrind 1" --out "$WORK/c2.pem" \
	--renew-cert "$WORK/c1.pem" --renew-key "$WORK/c1.key" --message-type 17 \
	--key "$WORK/c1.key" > "$WORK/c2.log" 2>&1 || rc=$?
[ $rc = 0 ] || { cat "$WORK/c2.log"; fail "RenewalReq: exit $rc"; }
verify_cert "$WORK/c2.pem"

check "refused requests: FAILURE (exit 2) each"
refused() {
	local name=$1 pw=$2 rc=0
	shift 2
	ios_enroll "$pw" "O=Fabrikam,CN=valgrind $name" "$WORK/$name.pem" "$URL" "$@" > /dev/null || rc=$?
	[ $rc = 2 ] || { cat "$WORK/$name.pem.log"; fail "$name: exit $rc, want 2 (FAILURE)"; }
	[ ! -s "$WORK/$name.pem" ] || fail "$name: a certificate was issued"
}
refused wrong-password "not-a-password"
refused single-des "$(challenge)" --cipher des-cbc
refused bad-csr-signature "$(challenge)" --bad-csr-signature
refused san "$(challenge)" --san DNS:a.example.com
refused signer-mismatch "$(challenge)" --signer-mismatch
refused message-type-99 "$(challenge)" --message-type 99

check "the other operations, a broken message, the operator's tool"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL?operation=GetCACaps")" = 200 ] || fail "GetCACaps"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL?operation=GetNextCACert")" != 000 ] || fail "GetNextCACert: no answer"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL?operation=PKIOperation&message=bm90IGEgbWVzc2FnZQ")" = 400 ] ||
	fail "a PKIOperation that is no pkiMessage is not a 400"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")" = 200 ] || fail "/metrics"
serial=$(openssl x509 -in "$WORK/c1.pem" -noout -serial | cut -d= -f2)
"$SCEPCTL" --data-dir "$DATA" revoke "$serial" --reason keyCompromise > "$WORK/revoke.out" 2>&1 ||
	{ cat "$WORK/revoke.out"; fail "scepctl revoke"; }
"$SCEPCTL" --data-dir "$DATA" list > "$WORK/list.out" 2>&1 || { cat "$WORK/list.out"; fail "scepctl list"; }
grep -qi "$serial" "$WORK/list.out" || fail "scepctl list does not show $serial"

check "a clean stop; memcheck's verdict on each service"
server_stop
for s in $SERVICES; do
	log=$(find "$WORK/vg" -name "$s.*.log" | head -1)
	grep -q "ERROR SUMMARY: 0 errors" "$log" ||
		{ cat "$log"; fail "$s: memcheck found errors"; }
	grep -qE "definitely lost: 0 bytes|All heap blocks were freed" "$log" ||
		{ cat "$log"; fail "$s: memcheck found a leak"; }
	echo "   $s: $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$log"), $(grep -oE 'definitely lost: [0-9,]* bytes|All heap blocks were freed' "$log"), $(grep -o 'total heap usage: [0-9,]* allocs' "$log")"
done
logged "$from" "exited with status 0" || fail "no service said it exited cleanly"
! logged "$from" "exited with status [1-9]\|killed by signal" ||
	fail "a service under valgrind failed: $(grep -m1 'exited with status [1-9]\|killed by signal' "$WORK/log.since")"
pass "enrollment, renewal, six refusals and the operator's tool under memcheck: no error, no leak in any service"
