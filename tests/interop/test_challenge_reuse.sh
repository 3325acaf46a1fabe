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

pass "a used challenge is refused with badRequest; the first certificate stands"
