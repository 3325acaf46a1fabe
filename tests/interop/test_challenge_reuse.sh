#!/usr/bin/env bash
# One-time means one time: a challenge that paid for a certificate is
# refused to a second, different enrollment (another key, another
# transactionID) with a signed CertRep FAILURE badRequest, and the first
# certificate is untouched.
. "$(dirname "$0")/lib.sh"
interop_init challenge_reuse
server_start
fetch_ca_chain

check "first enrollment with a fresh challenge succeeds"
pw=$(challenge)
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=first device" "$WORK/first.pem" || rc=$?
[ $rc = 0 ] || fail "first enrollment: iOS client exit $rc, want 0"
verify_cert "$WORK/first.pem"

check "a second device presenting the same challenge gets FAILURE badRequest"
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=second device" "$WORK/second.pem" || rc=$?
[ $rc = 2 ] || fail "second enrollment with a used challenge: exit $rc, want 2 (CertRep FAILURE)"
grep -q "^failInfo: badRequest" "$WORK/second.pem.log" ||
	fail "the FAILURE does not carry failInfo badRequest: $(grep '^failInfo' "$WORK/second.pem.log" || echo none)"
[ ! -s "$WORK/second.pem" ] || fail "a certificate was written for the refused request"

check "the first certificate still verifies"
verify_cert "$WORK/first.pem"

check "a kept key asking another subject with a new password is refused, not handed its old certificate, and the password serves a new key; the same request sent again with a new password gets its certificate and leaves that password free"
# RFC 8894's transactionID is the key's: strongSwan's pki and sscep with
# a kept key file, or a router re-enrolling without a new key, come back
# under the first certificate's transaction.
rc=0
ios_enroll "$(challenge)" "O=Fabrikam,CN=kept key" "$WORK/kept.pem" "$URL" --key "$WORK/kept.key" > /dev/null || rc=$?
[ $rc = 0 ] || fail "the kept key's first enrollment: exit $rc, want 0"
kept_serial=$(openssl x509 -in "$WORK/kept.pem" -noout -serial | cut -d= -f2)
pw=$(challenge)
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=renamed" "$WORK/renamed.pem" "$URL" --key "$WORK/kept.key" > /dev/null || rc=$?
[ $rc = 2 ] && grep -q "^failInfo: badRequest" "$WORK/renamed.pem.log" &&
	grep -q "holds another subject, subjectAltNames or template than this request asks: enroll with a new key" "$WORK/renamed.pem.log" ||
	fail "the kept key asking another subject: exit $rc, want 2 (FAILURE badRequest naming the other subject)"
[ ! -s "$WORK/renamed.pem" ] || fail "the kept key asking another subject was handed a certificate ($(openssl x509 -in "$WORK/renamed.pem" -noout -subject))"
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=renamed" "$WORK/renamed-new.pem" "$URL" > /dev/null || rc=$?
[ $rc = 0 ] || fail "the refused request's password with a new key: exit $rc, want 0"
verify_cert "$WORK/renamed-new.pem"
pw=$(challenge)
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=kept key" "$WORK/kept-again.pem" "$URL" --key "$WORK/kept.key" > /dev/null || rc=$?
[ $rc = 0 ] || fail "the kept key's same request with a new password: exit $rc, want 0"
[ "$(openssl x509 -in "$WORK/kept-again.pem" -noout -serial | cut -d= -f2)" = "$kept_serial" ] ||
	fail "the same request sent again got another certificate than serial $kept_serial"
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=after a retry" "$WORK/after-retry.pem" "$URL" > /dev/null || rc=$?
[ $rc = 0 ] || fail "the password a retry presented, with a new key: exit $rc, want 0 (the retry was paid for before)"
# A password refused (used up) with the kept key: answered as a CertPoll
# of its transaction, which is the certificate only for what it holds.
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=renamed twice" "$WORK/renamed-used.pem" "$URL" --key "$WORK/kept.key" > /dev/null || rc=$?
[ $rc = 2 ] && grep -q "holds another subject, subjectAltNames or template than this request asks" "$WORK/renamed-used.pem.log" ||
	fail "the kept key asking another subject with a used password: exit $rc, want 2 (FAILURE naming the other subject)"
[ ! -s "$WORK/renamed-used.pem" ] || fail "the kept key asking another subject with a used password was handed a certificate"
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=kept key" "$WORK/kept-used.pem" "$URL" --key "$WORK/kept.key" > /dev/null || rc=$?
[ $rc = 0 ] && [ "$(openssl x509 -in "$WORK/kept-used.pem" -noout -serial | cut -d= -f2)" = "$kept_serial" ] ||
	fail "the kept key's same request with a used password: exit $rc, want 0 and serial $kept_serial"

check "a CA answering late (the RA sends its request again): the copy answered as a retry still leaves the password used"
# The copy reaches the CA after the first was issued and is answered
# from the ledger (paid_before), but the password of this very request
# paid for that certificate: released, it paid for a second device's.
server_stop
SCEPD_TEST_CA_HOLD=1:2000 server_start
from=$(log_mark)
pw=$(challenge)
rc=0
ios_enroll "$pw" "CN=late answer" "$WORK/late.pem" "$URL" > /dev/null || rc=$?
[ $rc = 0 ] || fail "the enrollment whose answer the CA held: exit $rc, want 0"
logged "$from" "retry (client .*): the same certificate" ||
	fail "the RA sent no copy, or the CA did not answer it from the ledger: this case tests nothing"
rc=0
ios_enroll "$pw" "CN=second device" "$WORK/late-second.pem" "$URL" > /dev/null || rc=$?
[ $rc = 2 ] || fail "a second device with the password that paid for the first's certificate: exit $rc, want 2"
! logged "$from" "issued serial .* to \"CN=second device\"" || fail "one password paid for two certificates"
server_stop
server_start

check "a request the CA refuses (an RSA 1024 key) leaves its password to the device's next key"
# The challenge service reserves a password to the transactionID that
# presents it, before the CA applies its rules; a refusal of the request
# itself releases it (it was "reserved by another transaction" to the
# device's next try, which has a new key and so a new transactionID).
pw=$(challenge)
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=weak key" "$WORK/weak.pem" "$URL" --keysize 1024 || rc=$?
[ $rc = 2 ] && grep -q "below MinRSABits" "$WORK/weak.pem.log" ||
	fail "an RSA 1024 request: exit $rc, want 2 (FAILURE naming MinRSABits)"
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=weak key" "$WORK/strong.pem" "$URL" || rc=$?
[ $rc = 0 ] || fail "the same password with a new RSA 2048 key: exit $rc, want 0"
verify_cert "$WORK/strong.pem"
grep -q "released: the CA refused this transaction" "$SERVER_LOG" || fail "the release is not logged"
# Used now: a third key is refused as any reuse.
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=third key" "$WORK/third.pem" "$URL" || rc=$?
[ $rc = 2 ] || fail "the password, used after its release: exit $rc, want 2"

check "the CA lets the RA release a password only for a transactionID that holds nothing"
# ca_sign NAME KEYBITS TXID: a CSR of a new key sent to the CA as the RA
# would hand it on; its output in $WORK/NAME.out, its exit status in rc.
ca_sign() {
	openssl req -new -newkey "rsa:$2" -nodes -keyout /dev/null -subj "/O=Fabrikam/CN=$1" \
		-out "$WORK/$1.csr" 2>/dev/null || fail "openssl req"
	rc=0
	"$BUILD_DIR/tests/ca_sign" --endpoint "ipc://$DATA/run/ca.sock" --csr "$WORK/$1.csr" --txid "$3" \
		> "$WORK/$1.out" 2>&1 || rc=$?
}
ca_sign bound 2048 tx-bound
[ $rc = 0 ] || { cat "$WORK/bound.out"; fail "a CSR at the CA: exit $rc"; }
# A refused copy under the issued transactionID (someone who knows the
# password and the transactionID, or a late copy): releasing the password
# then would let it pay for a second certificate.
ca_sign bound-copy 1024 tx-bound
[ $rc = 2 ] && grep -q "^nothing bound: no$" "$WORK/bound-copy.out" ||
	{ cat "$WORK/bound-copy.out"; fail "a refused request under an issued transactionID: exit $rc, want 2 and nothing bound: no"; }
ca_sign free 1024 tx-free
[ $rc = 2 ] && grep -q "^nothing bound: yes$" "$WORK/free.out" ||
	{ cat "$WORK/free.out"; fail "a refused request under a new transactionID: exit $rc, want 2 and nothing bound: yes"; }

check "a certificate the CA signed as the device's time ran out still marks its password used"
# The RA asked the challenge service with what was left of the device's
# time: a CA answer in its last 50 ms left 0, no mark was sent, and a
# release deferred for another request of the transaction could then free
# the password for a second certificate.
server_stop
SCEPD_TEST_RA_CA_LATE=1 server_start
from=$(log_mark)
pw=$(challenge)
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=late device" "$WORK/late.pem" || rc=$?
[ $rc = 0 ] || fail "enrollment as the CA answers late: iOS client exit $rc, want 0"
grep -q "test hook: every CA answer comes as the device's deadline passes" "$SERVER_LOG" ||
	fail "the RA did not take the test hook"
sleep 0.3 # the mark is written with the challenge service's next commit
! logged "$from" "challenge not marked used" || fail "the RA did not mark the password used: $(grep 'not marked used' "$WORK/log.since")"
logged "$from" "otp: password id=[0-9a-f]* (issued to [^)]*) used" ||
	fail "the challenge service did not mark the password used"
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=after the late one" "$WORK/after-late.pem" >/dev/null || rc=$?
[ $rc = 2 ] || fail "the late certificate's password, presented again: exit $rc, want 2"

# two_requests TXID NAME1 BITS1 NAME2 BITS2: two enrollments of one
# transaction with the same password ($pw), keys of BITS made first, the
# second presenting it while the first waits at the CA (stopped for a
# moment, less than a third of the RA's RPCTimeout: a copy sent again
# would make the first's outcome unknown), so that the CA answers the
# first one first. Their exit statuses in rc1 and rc2.
two_requests() {
	local txid=$1 name1=$2 name2=$4 ca from p1 p2 stopped
	openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$3" -out "$WORK/$name1.key" 2> /dev/null &&
		openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$5" -out "$WORK/$name2.key" 2> /dev/null ||
		fail "openssl genpkey"
	ca=$(service_pid scepd-ca)
	[ -n "$ca" ] || fail "no scepd-ca running"
	from=$(log_mark)
	kill -STOP "$ca"
	stopped=$(date +%s%N)
	ios_enroll "$pw" "CN=$name1" "$WORK/$name1.pem" "$URL" --txid "$txid" --key "$WORK/$name1.key" --keysize "$3" > /dev/null &
	p1=$!
	await_logged "$from" "txid=$txid: otp: password id=[0-9a-f]* (issued to [^)]*) reserved" 5 ||
		{ kill -CONT "$ca"; fail "$name1's password was not reserved"; }
	ios_enroll "$pw" "CN=$name2" "$WORK/$name2.pem" "$URL" --txid "$txid" --key "$WORK/$name2.key" --keysize "$5" > /dev/null &
	p2=$!
	await_logged "$from" "txid=$txid: otp: password id=[0-9a-f]* presented again by its transaction" 5 ||
		{ kill -CONT "$ca"; fail "$name2 did not present the password again"; }
	kill -CONT "$ca"
	stopped=$((($(date +%s%N) - stopped) / 1000000))
	echo "   the CA stopped for $stopped ms"
	[ "$stopped" -lt 1300 ] ||
		fail "the CA stopped for $stopped ms, more than a third of the RA's RPCTimeout: the RA sent copies, and its requests' outcomes are not known (test too slow here)"
	rc1=0
	wait "$p1" || rc1=$?
	rc2=0
	wait "$p2" || rc2=$?
}

# From here the RA marks no password used (as if stopped after each of
# the CA's answers); refused requests report as ever.
server_stop
SCEPD_TEST_RA_NO_CONSUME=1 server_start
grep -q "test hook: no certificate's password is marked used" "$SERVER_LOG" ||
	fail "the RA did not take the test hook"

check "two requests of one transaction, both refused by the CA: the password serves the device's next key once both said so"
# Each refused request that passed the check reports to the challenge
# service; the release waits for the last one.
pw=$(challenge)
two_requests TXBOTHREFUSED weak-one 1024 weak-two 1024
[ "$rc1" = 2 ] && [ "$rc2" = 2 ] || fail "two RSA 1024 requests: exit $rc1 and $rc2, want 2 and 2"
logged 1 "txid=TXBOTHREFUSED: otp: password id=[0-9a-f]* (issued to [^)]*) to be released: the CA refused this transaction; 1 other request of it" &&
	logged 1 "txid=TXBOTHREFUSED: otp: password id=[0-9a-f]* (issued to [^)]*) released: the CA refused this transaction" ||
	fail "the first refusal's release did not wait for the other request's report"
rc=0
ios_enroll "$pw" "CN=strong after two" "$WORK/after-two.pem" "$URL" || rc=$?
[ $rc = 0 ] || fail "the password, after both requests of its transaction were refused: exit $rc, want 0"
verify_cert "$WORK/after-two.pem"

check "two requests of one transaction, the first refused, the other issued and its 'used' mark lost (its RA stopped): no second certificate for the password"
# Released when the first was refused and the other's answer was due,
# the password paid for another key's certificate too.
# The CA answers the first one first as a rule; when it took the other
# first (two sockets), the first is refused for the transaction being
# the other's and nothing waits: tried again, with a new password.
for try in 1 2 3; do
	pw=$(challenge)
	two_requests "TXMARKLOST$try" refused-one 1024 issued-one 2048
	[ "$rc1" = 2 ] && [ "$rc2" = 0 ] || fail "RSA 1024 then RSA 2048 under one transaction: exit $rc1 and $rc2, want 2 and 0"
	verify_cert "$WORK/issued-one.pem"
	logged 1 "txid=TXMARKLOST$try: otp: password id=[0-9a-f]* (issued to [^)]*) to be released: the CA refused this transaction; 1 other request of it" &&
		break
	[ "$try" != 3 ] || fail "the release never waited for the other request (the CA took the RSA 2048 request first three times?)"
	echo "   the CA took the RSA 2048 request first: again"
done
# Its report was due within [frontend] RPCTimeout (the device's time)
# and [ra] RPCTimeout (a late answer's report): 9 s.
sleep 9.5
from=$(log_mark)
rc=0
ios_enroll "$pw" "CN=second certificate" "$WORK/second.pem" "$URL" || rc=$?
[ $rc = 2 ] && grep -q "stays reserved until it expires" "$WORK/second.pem.log" ||
	fail "another key with the password: exit $rc, want 2 (FAILURE: it stays reserved until it expires)"
! logged "$from" "security:" || fail "the device's own password taken for a thief's: $(grep security: "$WORK/log.since")"
issued=$(grep -c "issued serial .* to \"CN=second certificate\"" "$SERVER_LOG" || true)
[ "$issued" = 0 ] || fail "the CA issued a second certificate for the password"
# The operator sees why: reserved to the transaction, its release waiting.
"$SCEPCTL" --data-dir "$DATA" challenge --list --json > "$WORK/list.json" || fail "scepctl challenge --list --json"
python3 - "$WORK/list.json" "TXMARKLOST$try" <<'PY' || fail "scepctl challenge --list does not show the password reserved, its release waiting"
import json, sys
mine = [p for p in json.load(open(sys.argv[1])) if p["transaction_id"] == sys.argv[2]]
assert len(mine) == 1 and mine[0]["state"] == "reserved" and mine[0]["release_waits"] is True, mine
PY
"$SCEPCTL" --data-dir "$DATA" challenge --list 2> /dev/null | grep -q "TXMARKLOST$try  release waits$" ||
	fail "scepctl challenge --list does not say 'release waits'"

check "a certificate whose 'used' mark was lost, then revoked: the kept key's retry is refused, and its password (still reserved to the transaction) pays for no other key"
# The retry's refusal releases only a password the retry brought new
# (SignReply.never_answered with ChallengeCheckReply.reserved_now): this
# one paid for the certificate.
pw=$(challenge)
ios_enroll "$pw" "CN=lost mark" "$WORK/lost-mark.pem" "$URL" --key "$WORK/lost-mark.key" > /dev/null ||
	fail "enroll with the 'used' mark lost"
lost_serial=$(openssl x509 -in "$WORK/lost-mark.pem" -noout -serial | cut -d= -f2)
"$SCEPCTL" --data-dir "$DATA" revoke "$lost_serial" 2> "$WORK/revoke-lost.err" ||
	fail "scepctl revoke: $(cat "$WORK/revoke-lost.err")"
rc=0
ios_enroll "$pw" "CN=lost mark" "$WORK/lost-mark-again.pem" "$URL" --key "$WORK/lost-mark.key" > /dev/null || rc=$?
[ $rc = 2 ] && grep -q "of this transactionID is revoked: enroll with a new key" "$WORK/lost-mark-again.pem.log" ||
	fail "the revoked certificate's key again: exit $rc, want 2 naming the revocation"
rc=0
ios_enroll "$pw" "CN=paid twice" "$WORK/paid-twice.pem" "$URL" --key "$WORK/paid-twice.key" > /dev/null || rc=$?
[ $rc = 2 ] || fail "another key with the password that paid for the revoked certificate: exit $rc, want 2"
issued=$(grep -c "issued serial .* to \"CN=paid twice\"" "$SERVER_LOG" || true)
[ "$issued" = 0 ] || fail "the CA issued a second certificate for the password"

check "a SignRequest whose checks outlast its deadline (a slow policy plugin) is not signed: 503 for the device, no certificate"
# The RA stopped waiting: signed after it, the certificate would go to no
# one, and its password would get no "used" mark.
server_stop
SCEPD_TEST_CA_CHECK_MS=4500 server_start
grep -q "test hook: each SignRequest's checks take 4500 ms more" "$SERVER_LOG" ||
	fail "the CA did not take the test hook"
from=$(log_mark)
rc=0
ios_enroll "$(challenge)" "CN=slow checks" "$WORK/slow.pem" "$URL" > /dev/null || rc=$?
[ $rc = 1 ] && grep -q "503" "$WORK/slow.pem.log" || fail "a request whose checks outlast its deadline: exit $rc, want 1 (HTTP 503)"
await_logged "$from" "not signed: past its deadline after its checks" 10 ||
	fail "the CA did not say it left the late request unsigned"
sleep 1 # the copies the RA sent again, dropped past their deadline
! logged "$from" "issued serial .* to \"CN=slow checks\"" || fail "the CA signed a request past its deadline"

pass "a used challenge is refused with badRequest; the first certificate stands; a kept key asking another subject is refused and its new password kept free; a refused request's password serves the device's next key (once every request of its transaction reported); one signed as the device's time ran out is marked used; one whose mark was lost is never released; one checked past its deadline is not signed"
