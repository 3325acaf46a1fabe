#!/usr/bin/env bash
# Authorization is default-deny: the RA answers only the message types it
# implements, each with its own rule. A valid challenge and CSR sent under
# any other messageType get CertRep FAILURE and nothing is signed
# (step-ca's CVE-2026-30836 and an old micromdm bug issued certificates for
# message types that skipped the challenge check): RenewalReq needs a
# certificate of this CA, CertPoll a known transaction (badCertId),
# GetCert/GetCRL an IssuerAndSerialNumber (a GetCRL holding a CSR gets
# badMessageCheck, the one answer to an envelope that does not open to
# what its messageType needs), the rest are not SCEP. After each, the
# server still enrolls a good client.
. "$(dirname "$0")/lib.sh"
interop_init message_types
server_start

for type in 17 20 21 22 0 3 18 99 255; do
	check "messageType $type with a valid challenge: FAILURE, nothing issued"
	pw=$(challenge)
	set +e
	"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=type $type" \
		--message-type "$type" --out "$WORK/t$type.pem" > "$WORK/t$type.log" 2>&1
	rc=$?
	set -e
	[ $rc = 2 ] || { cat "$WORK/t$type.log"; fail "messageType $type: client exit $rc, want 2 (FAILURE)"; }
	want=badRequest
	[ "$type" = 20 ] && want=badCertId
	[ "$type" = 22 ] && want=badMessageCheck
	grep -q "^failInfo: $want" "$WORK/t$type.log" || { cat "$WORK/t$type.log"; fail "messageType $type: failInfo is not $want"; }
	[ ! -s "$WORK/t$type.pem" ] || fail "messageType $type: a certificate was written"
	# The password was never presented to the challenge service, so it
	# still enrolls a real PKCSReq.
	"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=after $type" \
		--out "$WORK/ok$type.pem" > "$WORK/ok$type.log" 2>&1 ||
		{ cat "$WORK/ok$type.log"; fail "enrollment after messageType $type"; }
	verify_cert "$WORK/ok$type.pem"
done
issued=$(grep -c "scepd-ca\[.*issued serial" "$SERVER_LOG" || true)
[ "$issued" = 9 ] || fail "the CA logged $issued issuances, want exactly the 9 PKCSReq"
pass "every other messageType refused with FAILURE, nothing signed"
