#!/usr/bin/env bash
# CA rollover (RFC 8894 4.7): without a next CA certificate GetNextCACert is
# not in GetCACaps and the operation answers 404 with a clear text; with
# [ra] NextCACertificate it is advertised and answered with the next CA
# certificate inside a SignedData that the current RA signed, answered
# from the frontend's copy as GetCACaps is; a NextCACertificate the RA
# cannot use stops it at start.
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

check "the RA stopped (SIGSTOP): GetNextCACert and GetCACaps answered at once from the frontend's copy, and agree"
ra=$(service_pid scepd-ra)
[ -n "$ra" ] || fail "no scepd-ra"
on_exit "kill -CONT $ra 2>/dev/null"
kill -STOP "$ra"
read -r code secs < <(curl -s -m 10 -o "$WORK/next-stopped.der" -w '%{http_code} %{time_total}\n' \
	"$URL?operation=GetNextCACert&message=CA")
[ "$code" = 200 ] && cmp -s "$WORK/next-stopped.der" "$WORK/next.der" ||
	fail "GetNextCACert with the RA stopped: HTTP $code, want 200 and the same answer"
awk -v s="$secs" 'BEGIN { exit !(s < 1.0) }' || fail "GetNextCACert with the RA stopped took $secs s: it waited on the RA"
curl -s -m 10 "$URL?operation=GetCACaps" | tr -d '\r' | grep -qx "GetNextCACert" ||
	fail "GetCACaps with the RA stopped does not advertise GetNextCACert"
kill -CONT "$ra"
echo "   GetNextCACert in $secs s"

# bad_next NAME WHAT: NextCACertificate holding $WORK/NAME.pem stops the RA
# at start, its error saying WHAT.
bad_next() {
	local rc=0
	cp "$WORK/$1.pem" "$DATA/ca/next-ca.pem"
	timeout -s KILL 20 "$BUILD_DIR/scepd-ra" --config "$DATA/scepd.conf" > "$WORK/$1.out" 2>&1 || rc=$?
	[ $rc = 1 ] && grep -q "NextCACertificate: .*$2" "$WORK/$1.out" ||
		{ cat "$WORK/$1.out"; fail "NextCACertificate $1: exit $rc, want 1 and '$2'"; }
	echo "   $1: $(grep NextCACertificate "$WORK/$1.out")"
}

check "a NextCACertificate the RA cannot use stops it at start: no certificate, a certificate block after the first that cannot be read, the first not a CA or the CA in use"
cp "$DATA/ca/next-ca.pem" "$WORK/good-next.pem"
echo "not a certificate" > "$WORK/empty.pem"
bad_next empty "holds no PEM certificate"
{ cat "$WORK/good-next.pem"; printf -- '-----BEGIN CERTIFICATE-----\nbm90IGJhc2U2NCBvZiBhIGNlcnQ=\n-----END CERTIFICATE-----\n'; } > "$WORK/truncated.pem"
bad_next truncated "certificate 2 cannot be read"
cp "$RA_SIG_PEM" "$WORK/not-ca.pem"
bad_next not-ca "not a CA certificate"
cp "$CA_PEM" "$WORK/in-use.pem"
bad_next in-use "the CA certificate in use"

pass "GetNextCACert: 404 without a next CA; advertised and RA-signed with one, answered with the RA stopped; bad NextCACertificate files refused"
