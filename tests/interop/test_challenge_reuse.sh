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

pass "a used challenge is refused with badRequest; the first certificate stands; a refused request's password serves the device's next key; one signed as the device's time ran out is marked used"
