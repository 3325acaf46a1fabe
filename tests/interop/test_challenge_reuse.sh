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

pass "a used challenge is refused with badRequest; the first certificate stands; a refused request's password serves the device's next key"
