#!/usr/bin/env bash
# CA rollover (RFC 8894 4.7): without a next CA certificate GetNextCACert is
# not in GetCACaps and the operation answers 404 with a clear text; with
# [ra] NextCACertificate it is advertised and answered with the next CA
# certificate inside a SignedData that the current RA signed.
. "$(dirname "$0")/lib.sh"
interop_init next_ca
server_start
fetch_ca_chain

check "no next CA: not advertised, and 404 naming NextCACertificate"
curl -s "$URL?operation=GetCACaps" | tr -d '\r' > "$WORK/caps1"
grep -qx "GetNextCACert" "$WORK/caps1" && fail "GetNextCACert advertised without a next CA"
code=$(curl -s -o "$WORK/none.txt" -w '%{http_code}' "$URL?operation=GetNextCACert&message=CA")
[ "$code" = 404 ] && grep -q "NextCACertificate in \[ra\]" "$WORK/none.txt" ||
	fail "GetNextCACert without a next CA: HTTP $code, $(cat "$WORK/none.txt")"

check "with NextCACertificate: advertised, signed by the current RA, holding the next CA"
openssl req -x509 -newkey rsa:3072 -nodes -keyout "$WORK/next.key" -subj "/O=scepd/CN=next CA" \
	-days 3650 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
	-out "$DATA/ca/next-ca.pem" 2>/dev/null || fail "making a next CA"
set_conf ra NextCACertificate ca/next-ca.pem
server_restart
curl -s "$URL?operation=GetCACaps" | tr -d '\r' | grep -qx "GetNextCACert" || fail "GetNextCACert not advertised"
ct=$(curl -s -o "$WORK/next.der" -w '%{http_code} %{content_type}' "$URL?operation=GetNextCACert&message=CA")
[ "$ct" = "200 application/x-x509-next-ca-cert" ] || fail "GetNextCACert: $ct"
openssl cms -verify -inform DER -in "$WORK/next.der" -CAfile "$CA_PEM" -purpose any \
	-out "$WORK/inner.der" 2> "$WORK/verify.err" || { cat "$WORK/verify.err"; fail "the answer does not verify against the current CA"; }
openssl cms -cmsout -inform DER -in "$WORK/next.der" -print 2>/dev/null | grep -q "$(openssl x509 -in "$RA_SIG_PEM" -noout -subject -nameopt RFC2253 | sed 's/^subject=//; s/CN=//')" ||
	fail "not signed by the RA signing certificate"
openssl pkcs7 -inform DER -in "$WORK/inner.der" -print_certs -out "$WORK/inner.pem" 2>/dev/null ||
	fail "the signed content is not a certs-only SignedData"
cmp -s <(openssl x509 -in "$WORK/inner.pem" -outform DER) <(openssl x509 -in "$DATA/ca/next-ca.pem" -outform DER) ||
	fail "the certificate inside is not the next CA"

check "a NextCACertificate that holds no certificate stops the RA at start"
echo "not a certificate" > "$DATA/ca/next-ca.pem"
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-ra" --config "$DATA/scepd.conf" > "$WORK/ra.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "NextCACertificate: .* holds no PEM certificate" "$WORK/ra.out" ||
	{ cat "$WORK/ra.out"; fail "a bad NextCACertificate: exit $rc"; }

pass "GetNextCACert: 404 without a next CA; advertised and RA-signed with one"
