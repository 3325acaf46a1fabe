#!/usr/bin/env bash
# An iPad enrolling through the NDES path, as in the blog post
# (shared/seed): subject "O=Fabrikam,OU=IT,CN=Robs IPad" in Apple's order,
# PKIOperation by GET with a query over 2,700 characters (IIS's 1,024
# default is what broke iPads), BER with indefinite lengths, base64 with
# %0A every 76 characters and '+' and '/' unescaped ('+' must not turn
# into a space: the client makes sure the base64 holds one).
#
# Quirks of iOS that the client reproduces (tests/tools/scep_ios_client.c):
#  - GET for PKIOperation even when POSTPKIOperation is advertised;
#  - GetCACert carries the CA name from the payload as message=;
#  - the signer is self-signed with CN = an upper-case UUID;
#  - AES-128 when the caps say AES, SHA-512 when the caps say SHA-512.
. "$(dirname "$0")/lib.sh"
interop_init ios_client
server_start
fetch_ca_chain

check "enrolling \"O=Fabrikam,OU=IT,CN=Robs IPad\" by GET through /certsrv/mscep/mscep.dll"
pw=$(challenge)
rc=0
ios_enroll "$pw" "O=Fabrikam,OU=IT,CN=Robs IPad" "$WORK/ipad.pem" || rc=$?
[ $rc = 0 ] || fail "the iOS client exited $rc, want 0 (SUCCESS)"

check "enrolling through /certsrv/mscep/mscep.dll/pkiclient.exe (IIS passes the extra path on to NDES)"
rc=0
ios_enroll "$(challenge)" "CN=NDES client" "$WORK/pkiclient.pem" "$URL/pkiclient.exe" || rc=$?
[ $rc = 0 ] || fail "the iOS client exited $rc through $URL/pkiclient.exe, want 0 (SUCCESS)"
verify_cert "$WORK/pkiclient.pem"
await_logged 1 "GET /certsrv/mscep/mscep.dll/pkiclient.exe op=PKIOperation status=200" 5 ||
	fail "the access log has no PKIOperation on /certsrv/mscep/mscep.dll/pkiclient.exe"

check "the client sent a query over 2,700 characters"
qlen=$(sed -n 's/.*query length \([0-9]*\).*/\1/p' "$WORK/ipad.pem.log")
{ [ -n "$qlen" ] && [ "$qlen" -gt 2700 ]; } || fail "query length '$qlen' is not over 2700"
echo "   query length $qlen"

check "the reply used AES and SHA-512 (our caps offer both; the client asked for them)"
grep -q "cipher AES-128-CBC, digest SHA512" "$WORK/ipad.pem.log" ||
	fail "the client did not pick AES-128/SHA-512 from GetCACaps"
grep -q "^reply cipher: AES-128-CBC" "$WORK/ipad.pem.log" ||
	fail "the CertRep envelope is not AES-128-CBC: $(grep 'reply cipher' "$WORK/ipad.pem.log")"

check "the certificate subject keeps Apple's RDN order O, OU, CN"
subject=$(openssl x509 -in "$WORK/ipad.pem" -noout -subject -nameopt RFC2253,-esc_msb |
	sed 's/^subject=//')
# RFC 2253 prints the last RDN first: CN,OU,O means O,OU,CN in the DER.
[ "$subject" = "CN=Robs IPad,OU=IT,O=Fabrikam" ] ||
	fail "subject is '$subject' (RFC 2253), want CN=Robs IPad,OU=IT,O=Fabrikam"
oneline=$(openssl x509 -in "$WORK/ipad.pem" -noout -subject -nameopt oneline | sed 's/^subject=//')
echo "   subject (DER order): $oneline"
[ "$oneline" = "O = Fabrikam, OU = IT, CN = Robs IPad" ] || fail "subject order: $oneline"

check "openssl verify against the CA from GetCACert"
verify_cert "$WORK/ipad.pem"

check "the server log shows the long query (length over 2,700)"
# The frontend logs each request's query length; accept the usual spellings.
logged=$(grep -oiE '(query([ _-]?(len|length|bytes))?|qlen)[=: ]+[0-9]+' "$SERVER_LOG" |
	grep -oE '[0-9]+$' | sort -n | tail -1 || true)
[ -n "$logged" ] || fail "the server log has no query length"
[ "$logged" -gt 2700 ] || fail "largest query length in the server log is $logged, not over 2700"
echo "   server logged query length $logged"

check "the server log shows iOS's User-Agent"
grep -qF "Settings/1.0 CFNetwork/467.12 Darwin/10.3.1" "$SERVER_LOG" ||
	fail "the server log does not show the iOS User-Agent"

check "a CSR whose RSA key comes without its NULL parameters: enrolled, the key kept as sent"
# The RA passes on the CSR's own bytes (it attaches the key it read only
# after the signature check, which makes OpenSSL re-encode a request), and
# the CA copies the SubjectPublicKeyInfo into the certificate as it is.
ios_enroll "$(challenge)" "CN=params absent" "$WORK/noparams.pem" "$URL" --rsa-params-absent ||
	fail "the enrollment failed"
verify_cert "$WORK/noparams.pem"
spki_alg=$(openssl x509 -in "$WORK/noparams.pem" -outform DER | od -An -tx1 -v | tr -d ' \n')
# AlgorithmIdentifier { rsaEncryption } with nothing after the OID, then
# the key's BIT STRING (with NULL: 300d06092a864886f70d0101010500).
case $spki_alg in
*300b06092a864886f70d01010103*) echo "   the certificate's key: rsaEncryption without parameters, as the CSR had it" ;;
*) fail "the certificate's SubjectPublicKeyInfo is not the CSR's (no parameters)" ;;
esac

pass "iOS-style enrollment: long GET query, Apple RDN order, certificate verifies; a CSR's key without NULL parameters kept"
