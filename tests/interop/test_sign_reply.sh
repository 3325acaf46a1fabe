#!/usr/bin/env bash
# The CA answers the RA's SignRequest with the certificate and, since
# SignReply.certs_only, with the CertRep's degenerate SignedData ready, so
# that the RA need not parse the certificate. A CA of an earlier version
# (the CA on its own host is upgraded separately) sends the certificate
# alone, and the RA wraps it itself: test hook SCEPD_TEST_CA_CERT_ALONE=1.
# A device gets the same answer from both: SUCCESS with exactly one
# certificate, its own, issued by the CA for its key and subject.
. "$(dirname "$0")/lib.sh"
interop_init sign_reply

pubkey() { openssl x509 -in "$1" -noout -pubkey; }

for form in ready alone; do
	check "the CA sends the certificate $([ $form = ready ] && echo "with its SignedData ready" || echo "alone (an earlier CA)"): the device gets its certificate"
	from=$(log_mark)
	if [ $form = alone ]; then
		SCEPD_TEST_CA_CERT_ALONE=1 server_start
		logged "$from" "test hook: certificates are sent without their SignedData" ||
			fail "the CA did not take SCEPD_TEST_CA_CERT_ALONE"
	else
		server_start
		if logged "$from" "test hook: certificates are sent without"; then
			fail "the test hook is on without being asked"
		fi
	fi
	fetch_ca_chain
	pw=$(challenge)
	ios_enroll "$pw" "O=Fabrikam,CN=sign reply $form" "$WORK/$form.pem" "$URL" \
		--key "$WORK/$form.key" > /dev/null || fail "the enrollment failed"
	grep -q "^CertRep: 1 certificate(s)$" "$WORK/$form.pem.log" ||
		fail "the CertRep does not hold exactly one certificate"
	verify_cert "$WORK/$form.pem"
	subject=$(openssl x509 -in "$WORK/$form.pem" -noout -subject -nameopt oneline)
	[ "$subject" = "subject=O = Fabrikam, CN = sign reply $form" ] ||
		fail "issued to \"$subject\""
	[ "$(pubkey "$WORK/$form.pem")" = "$(openssl pkey -in "$WORK/$form.key" -pubout)" ] ||
		fail "the certificate is not for the device's key"
	echo "   one certificate, for the device's key and subject"
	server_stop
done
pass "the device gets the same CertRep whether the CA sends the certificate with its SignedData ready or alone"
