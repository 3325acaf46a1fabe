#!/usr/bin/env bash
# Renewal (RFC 8894 RenewalReq, and a PKCSReq signed by a certificate of
# this CA): no password needed; the CA itself checks that the certificate
# to renew is its own, in its ledger, valid, with the same subject and
# template, inside the template's RenewalWindow, and with a new key when
# RenewalNewKey = 1.
# Clients: the iOS-like client (both message types) and strongSwan's pki
# (--cert/--key of the old certificate).
. "$(dirname "$0")/lib.sh"
interop_init renewal
server_start
fetch_ca_chain
server_stop
# Renew any time for the test; NDES's template keeps its usages.
cat >> "$DATA/scepd.conf" <<'EOF'

[template.IPSECIntermediateOffline]
RenewalWindow = 100
AllowedSANs = DNS:*.devices.example.com
EOF
server_start
grep -q "^Renewal$" <(curl -s "$URL?operation=GetCACaps" | tr -d '\r') || fail "GetCACaps does not list Renewal"

# renew NAME OLD SUBJECT [client args...]: signed with OLD.pem/OLD.key
renew() {
	local name=$1 old=$2 subject=$3
	shift 3
	local rc=0
	"$IOS_CLIENT" --url "$URL" --subject "$subject" --out "$WORK/$name.pem" \
		--renew-cert "$WORK/$old.pem" --renew-key "$WORK/$old.key" "$@" > "$WORK/$name.log" 2>&1 || rc=$?
	return $rc
}

check "a first certificate, with a password"
ios_enroll "$(challenge)" "O=Fabrikam,CN=laptop 7" "$WORK/c1.pem" "$URL" --key "$WORK/c1.key" >/dev/null ||
	fail "first enrollment"
serial1=$(openssl x509 -in "$WORK/c1.pem" -noout -serial | cut -d= -f2)

check "RenewalReq (17) signed with it, same key, no password: a new certificate"
renew c2 c1 "O=Fabrikam,CN=laptop 7" --message-type 17 --key "$WORK/c1.key" ||
	{ cat "$WORK/c2.log"; fail "RenewalReq was refused"; }
cp "$WORK/c1.key" "$WORK/c2.key"
verify_cert "$WORK/c2.pem"
serial2=$(openssl x509 -in "$WORK/c2.pem" -noout -serial | cut -d= -f2)
[ "$serial2" != "$serial1" ] || fail "the renewal returned the old certificate"
"$SCEPCTL" --data-dir "$DATA" show "$serial2" | grep -q "\"transaction_id\"" || fail "scepctl show $serial2"
grep -q "renewing $serial1" "$SERVER_LOG" || fail "the CA log does not say which certificate was renewed"

check "a PKCSReq signed with a certificate of this CA is a renewal too (new key, no password)"
renew c3 c2 "O=Fabrikam,CN=laptop 7" --key "$WORK/c3.key" || { cat "$WORK/c3.log"; fail "PKCSReq renewal refused"; }
verify_cert "$WORK/c3.pem"
cmp -s <(openssl x509 -in "$WORK/c3.pem" -noout -pubkey) <(openssl pkey -in "$WORK/c3.key" -pubout) ||
	fail "the renewed certificate does not hold the new key"

check "a certificate renews once (RenewOnce = 1): its holder renews the new one; RenewOnce = 0 allows more, logged"
rc=0
renew c1again c1 "O=Fabrikam,CN=laptop 7" --key "$WORK/c1again.key" || rc=$?
[ $rc = 2 ] && grep -q "certificate $serial1 was renewed already (serial $serial2): renew that one" "$WORK/c1again.log" ||
	{ cat "$WORK/c1again.log"; fail "a second renewal of the first certificate: exit $rc, want 2"; }
set_conf template.IPSECIntermediateOffline RenewOnce 0
server_restart
grep -q "scepd-ca.*\[template.IPSECIntermediateOffline\] RenewOnce = 0: a certificate may be renewed again and again" "$SERVER_LOG" ||
	fail "RenewOnce = 0 is not logged"
renew c1again c1 "O=Fabrikam,CN=laptop 7" --key "$WORK/c1again.key" ||
	{ cat "$WORK/c1again.log"; fail "a second renewal with RenewOnce = 0"; }
set_conf template.IPSECIntermediateOffline RenewOnce 1
server_restart

check "a renewal must keep the subject"
rc=0
renew c4 c3 "O=Fabrikam,CN=someone else" --key "$WORK/c3.key" || rc=$?
[ $rc = 2 ] && grep -q "keeps the subject" "$WORK/c4.log" || { cat "$WORK/c4.log"; fail "another subject: exit $rc"; }
# The same name to OpenSSL's comparison (case and spaces aside), another
# to a system that reads the bytes (a VPN's rule, a RADIUS match).
rc=0
renew c4 c3 "O=Fabrikam,CN=LAPTOP 7" --key "$WORK/c3.key" || rc=$?
[ $rc = 2 ] && grep -q "keeps the subject of certificate .* as it is written" "$WORK/c4.log" ||
	{ cat "$WORK/c4.log"; fail "the subject in upper case: exit $rc"; }
# A template's fixed Subject is the operator's: rewritten since (its
# letters here), the device's renewal is not refused for it.
set_conf template.IPSECIntermediateOffline Subject "O=Fabrikam"
server_restart
ios_enroll "$(challenge)" "CN=fixed 1" "$WORK/f1.pem" "$URL" --key "$WORK/f1.key" > /dev/null || fail "enrollment under a fixed Subject"
set_conf template.IPSECIntermediateOffline Subject "O=FABRIKAM"
server_restart
openssl genrsa -out "$WORK/f2.key" 2048 2> /dev/null
renew f2 f1 "CN=fixed 1" --key "$WORK/f2.key" ||
	{ cat "$WORK/f2.log"; fail "a renewal refused after the template's Subject was rewritten"; }
openssl x509 -in "$WORK/f2.pem" -noout -subject | grep -q "O = FABRIKAM, CN = fixed 1" ||
	fail "the renewal's subject: $(openssl x509 -in "$WORK/f2.pem" -noout -subject)"
# Changed for real (another organization), the refusal names the
# template's Subject, not the device's request.
set_conf template.IPSECIntermediateOffline Subject "O=Contoso"
server_restart
openssl genrsa -out "$WORK/f3.key" 2048 2> /dev/null
rc=0
renew f3 f2 "CN=fixed 1" --key "$WORK/f3.key" || rc=$?
[ $rc = 2 ] && grep -q "template IPSECIntermediateOffline's Subject = O=Contoso gives it another now (changed since it was issued)" "$WORK/f3.log" ||
	{ cat "$WORK/f3.log"; fail "a renewal after the template's Subject changed: exit $rc, want 2 naming the Subject"; }
set_conf template.IPSECIntermediateOffline Subject request
server_restart

check "a multi-valued RDN sent unsorted is issued in DER's order; its renewal sending it unsorted again keeps the subject, another value in it does not"
# forge_subject NAME SUBJECT [PASSWORD]: $WORK/NAME.csr and its new key
# NAME.key from csr_forge.py, SUBJECT's RDN values written as given.
forge_subject() {
	python3 "$SRC_DIR/tests/tools/csr_forge.py" subject "$WORK/$1" "$2" ${3:+"$3"} > /dev/null ||
		fail "csr_forge.py subject $2"
}
# multi_rdn FILE: the types of each multi-valued RDN in FILE's (PEM)
# names, in the order written, as openssl asn1parse reads them.
multi_rdn() {
	openssl asn1parse -in "$1" | awk '
		/:d=3 .*SET/ { if (n > 1) print s; s = ""; n = 0; in_set = 1; next }
		/:d=[0-3] / { if (n > 1) print s; s = ""; n = 0; in_set = 0 }
		in_set && /:d=5 .*OBJECT/ { sub(/.*:/, ""); s = s (n++ ? "+" : "") $0 }
		END { if (n > 1) print s }'
}
# The RDN's values are of one length: DER sorts the SET by their types
# then (O 2.5.4.10 before OU 2.5.4.11); the device writes OU first.
sorted=organizationName+organizationalUnitName
unsorted=organizationalUnitName+organizationName
m_subj="/OU=Printers+O=Fabrikam/CN=printer 3"
forge_subject m1 "$m_subj" "$(challenge)"
[ "$(multi_rdn "$WORK/m1.csr")" = "$unsorted" ] || fail "the request's RDN is not $unsorted: $(multi_rdn "$WORK/m1.csr")"
# the password is in the request
ios_enroll "" "$m_subj" "$WORK/m1.pem" "$URL" --csr "$WORK/m1.csr" --key "$WORK/m1.key" > /dev/null ||
	fail "enrollment with an unsorted multi-valued RDN"
[ "$(multi_rdn "$WORK/m1.pem")" = "$sorted" ] || fail "the certificate's RDN is not $sorted: $(multi_rdn "$WORK/m1.pem")"
forge_subject m2 "$m_subj"
renew m2 m1 "$m_subj" --message-type 17 --csr "$WORK/m2.csr" --key "$WORK/m2.key" ||
	{ cat "$WORK/m2.log"; fail "a RenewalReq sending the multi-valued RDN unsorted again was refused"; }
grep -q "^pkiStatus: SUCCESS" "$WORK/m2.log" || { cat "$WORK/m2.log"; fail "the renewal's pkiStatus is not SUCCESS"; }
verify_cert "$WORK/m2.pem"
[ "$(openssl x509 -in "$WORK/m2.pem" -noout -serial)" != "$(openssl x509 -in "$WORK/m1.pem" -noout -serial)" ] ||
	fail "the renewal returned the old certificate"
[ "$(openssl x509 -in "$WORK/m2.pem" -noout -subject)" = "$(openssl x509 -in "$WORK/m1.pem" -noout -subject)" ] &&
	[ "$(multi_rdn "$WORK/m2.pem")" = "$sorted" ] ||
	fail "the renewed certificate's subject: $(openssl x509 -in "$WORK/m2.pem" -noout -subject), $(multi_rdn "$WORK/m2.pem")"
forge_subject m3 "/OU=Scanners+O=Fabrikam/CN=printer 3"
rc=0
renew m3 m2 "$m_subj" --message-type 17 --csr "$WORK/m3.csr" --key "$WORK/m3.key" || rc=$?
[ $rc = 2 ] && grep -q "^pkiStatus: FAILURE" "$WORK/m3.log" &&
	grep -q "^failInfoText: a renewal keeps the subject of certificate $(openssl x509 -in "$WORK/m2.pem" -noout -serial | cut -d= -f2); this request asks for another$" "$WORK/m3.log" ||
	{ cat "$WORK/m3.log"; fail "a renewal with another OU in the multi-valued RDN: exit $rc, want 2, another subject"; }

check "a renewal asks no subjectAltName the certificate does not hold (it needs no password, and no approval); fewer is fine"
ios_enroll "$(challenge)" "O=Fabrikam,CN=printer 12" "$WORK/s1.pem" "$URL" --key "$WORK/s1.key" \
	--san DNS:a.devices.example.com >/dev/null || fail "enrollment with a SAN"
rc=0
renew s2 s1 "O=Fabrikam,CN=printer 12" --key "$WORK/s2.key" --san DNS:b.devices.example.com || rc=$?
[ $rc = 2 ] && grep -q "a renewal asks no subjectAltName that certificate .* does not hold" "$WORK/s2.log" ||
	{ cat "$WORK/s2.log"; fail "a renewal asking another SAN: exit $rc"; }
rc=0
renew s3 s1 "O=Fabrikam,CN=printer 12" --key "$WORK/s3.key" --san DNS:a.devices.example.com \
	--san DNS:b.devices.example.com || rc=$?
[ $rc = 2 ] && grep -q "a renewal asks no subjectAltName that certificate .* does not hold" "$WORK/s3.log" ||
	{ cat "$WORK/s3.log"; fail "a renewal adding a SAN: exit $rc"; }
renew s4 s1 "O=Fabrikam,CN=printer 12" --key "$WORK/s4.key" --san DNS:a.devices.example.com ||
	{ cat "$WORK/s4.log"; fail "a renewal with the same SAN was refused"; }
openssl x509 -in "$WORK/s4.pem" -noout -ext subjectAltName | grep -q "DNS:a.devices.example.com" ||
	fail "the renewed certificate lost its SAN"
renew s5 s4 "O=Fabrikam,CN=printer 12" --key "$WORK/s5.key" ||
	{ cat "$WORK/s5.log"; fail "a renewal asking no SAN was refused"; }
! openssl x509 -in "$WORK/s5.pem" -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:" ||
	fail "a renewal asking no SAN got one"

check "a RenewalReq signed with a self-signed certificate is refused"
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=no cert" --out "$WORK/c5.pem" --message-type 17 > "$WORK/c5.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "must be signed with the certificate to renew" "$WORK/c5.log" ||
	{ cat "$WORK/c5.log"; fail "RenewalReq without a certificate: exit $rc"; }

check "a certificate made with the CA key but never issued through SCEP is not renewed"
openssl genrsa -out "$WORK/forged.key" 2048 2>/dev/null
openssl req -new -key "$WORK/forged.key" -subj "/O=Fabrikam/CN=laptop 7" -out "$WORK/forged.csr" 2>/dev/null
openssl x509 -req -in "$WORK/forged.csr" -CA "$DATA/ca/ca.pem" -CAkey "$DATA/ca/ca.key" -set_serial 0x1234 \
	-days 30 -out "$WORK/forged.pem" 2>/dev/null || fail "forging a certificate"
rc=0
renew c6 forged "O=Fabrikam,CN=laptop 7" --key "$WORK/forged.key" || rc=$?
[ $rc = 2 ] && grep -q "not in this CA's ledger" "$WORK/c6.log" || { cat "$WORK/c6.log"; fail "forged: exit $rc"; }

check "strongSwan pki renews with --cert/--key of its old certificate"
run_pki() {
	local out=$1
	shift
	pki_rc=0
	pki "$@" > "$out" 2> "$out.err" || pki_rc=$?
}
mkdir -p "$WORK/pki"
run_pki "$WORK/pki/old.key" --gen --type rsa --size 2048 --outform pem
run_pki "$WORK/pki/old.pem" --scep --url "$URL" --in "$WORK/pki/old.key" --dn "O=Test, CN=pki renew" \
	--password "$(challenge)" --cacert-enc "$RA_ENC_PEM" --cacert-sig "$RA_SIG_PEM" --cacert "$CA_PEM" \
	--outform pem --interval 2 --maxpolltime 20
[ "$pki_rc" = 0 ] || { cat "$WORK/pki/old.pem.err"; fail "pki enrollment exit $pki_rc"; }
run_pki "$WORK/pki/new.key" --gen --type rsa --size 2048 --outform pem
run_pki "$WORK/pki/new.pem" --scep --url "$URL" --in "$WORK/pki/new.key" --dn "O=Test, CN=pki renew" \
	--cert "$WORK/pki/old.pem" --key "$WORK/pki/old.key" \
	--cacert-enc "$RA_ENC_PEM" --cacert-sig "$RA_SIG_PEM" --cacert "$CA_PEM" \
	--outform pem --interval 2 --maxpolltime 20
[ "$pki_rc" = 0 ] || { grep -v "failed to load\|could not load" "$WORK/pki/new.pem.err"; fail "pki renewal exit $pki_rc"; }
verify_cert "$WORK/pki/new.pem"
[ "$(openssl x509 -in "$WORK/pki/new.pem" -noout -serial)" != "$(openssl x509 -in "$WORK/pki/old.pem" -noout -serial)" ] ||
	fail "pki got its old certificate back"
grep -q "renewing" "$SERVER_LOG" || fail "not handled as a renewal"

check "a key revoked for keyCompromise through one certificate renews through no other holding it (a renewal that kept the key)"
# Both certificates hold the key; its revocation named the first: the
# second signed a renewal to a new key, with no password, and got SUCCESS.
ios_enroll "$(challenge)" "O=Fabrikam,CN=laptop 8" "$WORK/kc1.pem" "$URL" --key "$WORK/kc1.key" >/dev/null ||
	fail "enroll laptop 8"
renew kc2 kc1 "O=Fabrikam,CN=laptop 8" --message-type 17 --key "$WORK/kc1.key" ||
	{ cat "$WORK/kc2.log"; fail "laptop 8 renewed keeping its key"; }
cp "$WORK/kc1.key" "$WORK/kc2.key"
kc1=$(openssl x509 -in "$WORK/kc1.pem" -noout -serial | cut -d= -f2)
kc2=$(openssl x509 -in "$WORK/kc2.pem" -noout -serial | cut -d= -f2)
"$SCEPCTL" --data-dir "$DATA" revoke "$kc1" --reason keyCompromise 2> /dev/null || fail "scepctl revoke $kc1"
rc=0
renew kc3 kc2 "O=Fabrikam,CN=laptop 8" --message-type 17 --key "$WORK/kc3.key" || rc=$?
[ $rc = 2 ] && grep -q "^failInfoText: certificate $kc2 has the key of certificate $kc1, revoked for keyCompromise: enroll anew with a new key" "$WORK/kc3.log" ||
	{ cat "$WORK/kc3.log"; fail "a renewal signed with the compromised key's other certificate: exit $rc, want 2 naming both"; }
[ ! -s "$WORK/kc3.pem" ] || fail "a certificate was issued"

check "RenewalWindow = 30: a fresh certificate is not renewed yet, with the date it can be"
set_conf template.IPSECIntermediateOffline RenewalWindow 30
server_restart
rc=0
renew c7 c3 "O=Fabrikam,CN=laptop 7" --key "$WORK/c3.key" || rc=$?
[ $rc = 2 ] && grep -q "can be renewed from .* (its last 30%" "$WORK/c7.log" || { cat "$WORK/c7.log"; fail "window: exit $rc"; }

check "RenewalNewKey = 1: the same key is refused"
set_conf template.IPSECIntermediateOffline RenewalWindow 100
echo "RenewalNewKey = 1" >> "$DATA/scepd.conf"
server_restart
rc=0
renew c8 c3 "O=Fabrikam,CN=laptop 7" --key "$WORK/c3.key" || rc=$?
[ $rc = 2 ] && grep -q "must bring a new key" "$WORK/c8.log" || { cat "$WORK/c8.log"; fail "same key: exit $rc"; }
renew c9 c3 "O=Fabrikam,CN=laptop 7" --key "$WORK/c9.key" || { cat "$WORK/c9.log"; fail "a new key was refused"; }

check "a renewal keeps its template: other key usages may not reach another template's usages"
# Key usage 1 now goes to a template of its own; c9 was issued under
# IPSECIntermediateOffline (no key usage asked).
set_conf ca SignatureTemplate ServerSign
cat >> "$DATA/scepd.conf" <<'EOF2'

[template.ServerSign]
KeyUsage = digitalSignature
ExtendedKeyUsage = serverAuth
RenewalWindow = 100
EOF2
server_restart
rc=0
renew c10 c9 "O=Fabrikam,CN=laptop 7" --key "$WORK/c10.key" --key-usage 1 || rc=$?
[ $rc = 2 ] && grep -q "keeps the template of certificate .* (IPSECIntermediateOffline); this request's key usage asks template ServerSign" "$WORK/c10.log" ||
	{ cat "$WORK/c10.log"; fail "a renewal into another template: exit $rc"; }
renew c11 c9 "O=Fabrikam,CN=laptop 7" --key "$WORK/c11.key" ||
	{ cat "$WORK/c11.log"; fail "a renewal under its own template was refused"; }
verify_cert "$WORK/c11.pem"
"$SCEPCTL" --data-dir "$DATA" list > "$WORK/list.txt" || fail "scepctl list"
grep -q "IPSECIntermediateOffline" "$WORK/list.txt" || fail "scepctl list shows no template"
! grep -q "ServerSign" "$WORK/list.txt" || fail "a ServerSign certificate is in the ledger"

check "after a CA switch (a new key, the same name), a certificate of the old CA renews only with PreviousCACertificate in [ra] and [ca], and a revoked one never"
ios_enroll "$(challenge)" "O=Fabrikam,CN=laptop 8" "$WORK/r1.pem" "$URL" --key "$WORK/r1.key" >/dev/null ||
	fail "enrollment before the switch"
k_pw=$(challenge)
ios_enroll "$k_pw" "O=Fabrikam,CN=laptop 9" "$WORK/k1.pem" "$URL" --key "$WORK/k.key" >/dev/null ||
	fail "enrollment before the switch"
"$SCEPCTL" --data-dir "$DATA" revoke "$(openssl x509 -in "$WORK/r1.pem" -noout -serial | cut -d= -f2)" \
	> /dev/null 2> "$WORK/revoke.err" || { cat "$WORK/revoke.err"; fail "scepctl revoke"; }
cp "$DATA/ca/ca.pem" "$WORK/old-ca.pem"
cp "$DATA/ca/ca.key" "$WORK/old-ca.key"
cp "$RA_ENC_PEM" "$WORK/old-ra-enc.pem"
server_stop
ca_replace "$DATA" 2048
server_start
fetch_ca_chain
cmp -s <(openssl x509 -in "$CA_PEM" -outform DER) <(openssl x509 -in "$WORK/old-ca.pem" -outform DER) &&
	fail "GetCACert still gives the old CA"
# A device keeping its key keeps its transactionID (RFC 8894 derives it
# from the key): not answered the old CA's certificate (which it cannot
# verify with the CA certificate it fetched) as a retry, nor issued
# another: its password may be the used one, which the challenge service
# lets its transaction present again, and would pay for a second
# certificate of any subject. A new key enrolls.
# k_refused NAME PASSWORD SUBJECT: laptop 9's key after the switch
k_refused() {
	local rc=0
	ios_enroll "$2" "$3" "$WORK/$1.pem" "$URL" --key "$WORK/k.key" >/dev/null || rc=$?
	[ $rc = 2 ] && grep -q "^failInfo: badRequest" "$WORK/$1.pem.log" &&
		grep -q "failInfoText: certificate [0-9A-F]* of this transactionID was issued by a CA this one replaced: enroll with a new key, or renew that certificate (\[ca\] PreviousCACertificate)" "$WORK/$1.pem.log" ||
		{ cat "$WORK/$1.pem.log"; fail "the old CA's key after the switch ($1): exit $rc, want 2 naming a new key"; }
}
k2_pw=$(challenge)
k_refused k2 "$k2_pw" "O=Fabrikam,CN=laptop 9"
k_refused k3 "$k_pw" "O=Fabrikam,CN=ceo laptop"
# With a wrong password the RA asks the CA as for a CertPoll (RFC 8894
# 3.3.3: a PKCSReq sent again): the same answer, not the old CA's
# certificate as a SUCCESS.
k_refused k-wrong "not the password" "O=Fabrikam,CN=laptop 9"
# The password that paid for the old certificate pays for no other; a
# new one sent with the kept key paid for nothing: the new key uses it.
rc=0
ios_enroll "$k_pw" "O=Fabrikam,CN=ceo laptop" "$WORK/k5.pem" "$URL" --key "$WORK/k-other.key" >/dev/null || rc=$?
[ $rc = 2 ] && grep -q "^failInfo: badRequest" "$WORK/k5.pem.log" &&
	grep -q "failInfoText: challenge password was already used" "$WORK/k5.pem.log" ||
	fail "a new key with the password that paid for the old CA's certificate: exit $rc, want FAILURE"
ios_enroll "$k2_pw" "O=Fabrikam,CN=laptop 9" "$WORK/k4.pem" "$URL" --key "$WORK/k-new.key" >/dev/null ||
	fail "laptop 9 with a new key after the switch, and the password its kept key sent"
verify_cert "$WORK/k4.pem"
rc=0
renew c12 c11 "O=Fabrikam,CN=laptop 7" --key "$WORK/c12a.key" --message-type 17 || rc=$?
[ $rc = 2 ] && grep -q "issued by this CA (one of a CA it replaced, when listed in \[ra\] and \[ca\] PreviousCACertificate)" "$WORK/c12.log" ||
	{ cat "$WORK/c12.log"; fail "an old CA's certificate without PreviousCACertificate: exit $rc, want 2 naming the setting"; }
cp "$WORK/old-ca.pem" "$DATA/ca/previous-ca.pem"
# The CA checks for itself: the RA's word is not enough.
set_conf ra PreviousCACertificate ca/previous-ca.pem
server_restart
rc=0
renew c12 c11 "O=Fabrikam,CN=laptop 7" --key "$WORK/c12b.key" --message-type 17 || rc=$?
[ $rc = 2 ] && grep -q "not issued by this CA (one of a CA it replaced renews when listed in \[ca\] PreviousCACertificate)" "$WORK/c12.log" ||
	{ cat "$WORK/c12.log"; fail "PreviousCACertificate in [ra] only: exit $rc, want 2 from the CA naming [ca]"; }
set_conf ca PreviousCACertificate ca/previous-ca.pem
# and the old CA's key, to sign its CRL (test_previous_crl.sh)
cp -p "$WORK/old-ca.key" "$DATA/ca/previous-ca.key"
set_conf ca PreviousCAKey ca/previous-ca.key
server_restart
grep -q "scepd-ca.*PreviousCACertificate: certificates of 1 CA this one replaced renew" "$SERVER_LOG" &&
	grep -q "scepd-ra.*PreviousCACertificate: certificates of 1 CA this one replaced may sign renewals" "$SERVER_LOG" ||
	fail "PreviousCACertificate is not logged at start by the RA and the CA"
renew c12 c11 "O=Fabrikam,CN=laptop 7" --key "$WORK/c12.key" --message-type 17 ||
	{ cat "$WORK/c12.log"; fail "RenewalReq with an old CA's certificate and PreviousCACertificate was refused"; }
verify_cert "$WORK/c12.pem"
grep -q "certificate $(openssl x509 -in "$WORK/c11.pem" -noout -serial | cut -d= -f2), to renew, was issued by a CA this one replaced" "$SERVER_LOG" ||
	fail "the CA does not log the renewal of an old CA's certificate"
renew c13 c12 "O=Fabrikam,CN=laptop 7" --key "$WORK/c13.key" ||
	{ cat "$WORK/c13.log"; fail "the new CA's certificate does not renew"; }
# getcert NAME SIGNER [OF]: GetCert (21) of c13 (or OF), signed with
# SIGNER.pem/key.
getcert() {
	local rc=0
	"$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/$1.pem" --message-type 21 \
		--issuer-serial "$WORK/${3:-c13}.pem" --renew-cert "$WORK/$2.pem" --renew-key "$WORK/$2.key" \
		> "$WORK/$1.log" 2>&1 || rc=$?
	return $rc
}
getcert got-new c12 || { cat "$WORK/got-new.log"; fail "GetCert signed with a certificate of the new CA"; }
# The serial of a certificate of the old CA (which bears the same name),
# asked of this one: none of its certificates.
rc=0
getcert got-old-serial c12 c11 || rc=$?
[ $rc = 2 ] && grep -q "^failInfo: badCertId" "$WORK/got-old-serial.log" ||
	{ cat "$WORK/got-old-serial.log"; fail "GetCert of an old CA's serial, named as this CA's: exit $rc, want 2 badCertId"; }
rc=0
getcert got-old s5 || rc=$?
[ $rc = 2 ] && grep -q "GetCert is answered to holders of a certificate of this CA" "$WORK/got-old.log" ||
	{ cat "$WORK/got-old.log"; fail "GetCert signed with the old CA's certificate: exit $rc, want 2 (renewals only)"; }
# GetCRL names its issuer by name only, the same for both CAs here: the
# ledger tells whose certificate the serial is.
for c in c11:old-ca.pem c13:new-ca.pem; do
	n=${c%%:*}
	rc=0
	"$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/crl-$n.pem" --message-type 22 \
		--issuer-serial "$WORK/$n.pem" > "$WORK/crl-$n.log" 2>&1 || rc=$?
	[ $rc = 0 ] || { cat "$WORK/crl-$n.log"; fail "GetCRL naming $n: exit $rc"; }
	[ "${c#*:}" = new-ca.pem ] && cp "$CA_PEM" "$WORK/new-ca.pem"
	openssl crl -in "$WORK/crl-$n.pem" -CAfile "$WORK/${c#*:}" -noout 2>&1 | grep -q "verify OK" ||
		fail "GetCRL naming $n (the CAs' names alike): not the CRL of its issuer (${c#*:})"
done
openssl crl -in "$WORK/crl-c11.pem" -noout -text | grep -q "Serial Number: $(openssl x509 -in "$WORK/r1.pem" -noout -serial | cut -d= -f2)" ||
	fail "the old CA's CRL from GetCRL does not list its certificate revoked before the switch"
rc=0
renew r2 r1 "O=Fabrikam,CN=laptop 8" --key "$WORK/r2.key" || rc=$?
[ $rc = 2 ] && grep -q "is revoked: enroll anew, with a challenge password and the request signed by a self-signed certificate (one signed by this one is its renewal)" "$WORK/r2.log" ||
	{ cat "$WORK/r2.log"; fail "a revoked certificate of the old CA: exit $rc"; }

check "an envelope addressed to the RA's encryption certificate from before the switch (reissued with the same key) still opens: strongSwan pki with the old --cacert-enc"
[ "$(openssl x509 -in "$WORK/old-ra-enc.pem" -noout -serial)" != "$(openssl x509 -in "$RA_ENC_PEM" -noout -serial)" ] ||
	fail "the switch did not reissue the RA's encryption certificate"
mark=$(log_mark)
run_pki "$WORK/pki/stale.key" --gen --type rsa --size 2048 --outform pem
run_pki "$WORK/pki/stale.pem" --scep --url "$URL" --in "$WORK/pki/stale.key" --dn "O=Test, CN=stale RA certificate" \
	--password "$(challenge)" --cacert-enc "$WORK/old-ra-enc.pem" --cacert-sig "$RA_SIG_PEM" --cacert "$CA_PEM" \
	--outform pem --interval 2 --maxpolltime 20
[ "$pki_rc" = 0 ] || { cat "$WORK/pki/stale.pem.err"; fail "pki with the RA's earlier certificate: exit $pki_rc"; }
verify_cert "$WORK/pki/stale.pem"
logged "$mark" "envelope opened with the RA's key, though addressed to another certificate" ||
	fail "the RA does not log that the envelope named an earlier certificate"

check "the old CA's key, leaked, makes no renewal: a certificate it signs with the serial of one in the ledger (s5, renewable) and another subject is refused"
s5_serial=$(openssl x509 -in "$WORK/s5.pem" -noout -serial | cut -d= -f2)
openssl genrsa -out "$WORK/leak.key" 2048 2>/dev/null
openssl req -new -key "$WORK/leak.key" -subj "/O=Fabrikam/CN=intruder" -out "$WORK/leak.csr" 2>/dev/null
openssl x509 -req -in "$WORK/leak.csr" -CA "$WORK/old-ca.pem" -CAkey "$WORK/old-ca.key" -set_serial "0x$s5_serial" \
	-days 30 -out "$WORK/leak.pem" 2>/dev/null || fail "signing with the old CA's key"
rc=0
renew leak2 leak "O=Fabrikam,CN=intruder" --key "$WORK/leak2.key" --message-type 17 || rc=$?
[ $rc = 2 ] && grep -q "the certificate to renew is not the one this CA's ledger holds as serial" "$WORK/leak2.log" ||
	{ cat "$WORK/leak2.log"; fail "a certificate made with the old CA's key and a ledger serial: exit $rc, want 2"; }

check "a PreviousCACertificate that is not a CA's, or is the CA in use, stops the service at start"
# bad_previous SERVICE FILE WHAT
bad_previous() {
	local rc=0
	cp "$2" "$DATA/ca/previous-ca.pem"
	timeout -s KILL 20 "$BUILD_DIR/$1" --config "$DATA/scepd.conf" > "$WORK/bad-previous.out" 2>&1 || rc=$?
	[ $rc = 1 ] && grep -q "PreviousCACertificate: .*: certificate 1 $3" "$WORK/bad-previous.out" ||
		{ cat "$WORK/bad-previous.out"; fail "$1 with PreviousCACertificate $2: exit $rc, want 1 and '$3'"; }
	echo "   $(grep PreviousCACertificate "$WORK/bad-previous.out")"
}
server_stop
bad_previous scepd-ra "$CA_PEM" "is the CA in use"
bad_previous scepd-ca "$CA_PEM" "is the CA in use"
bad_previous scepd-ra "$WORK/c12.pem" "is not a CA certificate"
bad_previous scepd-ca "$WORK/c12.pem" "is not a CA certificate"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/nosign.key" -subj "/CN=no keyCertSign" -days 30 \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,digitalSignature" \
	-out "$WORK/nosign.pem" 2>/dev/null || fail "making a CA certificate without keyCertSign"
bad_previous scepd-ra "$WORK/nosign.pem" "may not sign certificates"
bad_previous scepd-ca "$WORK/nosign.pem" "may not sign certificates"

pass "RenewalReq and PKCSReq renewals (iOS-like client, strongSwan pki); subject (a multi-valued RDN sent unsorted too), SANs, once, ledger, template, window and new-key rules; an old CA's certificates after a switch with PreviousCACertificate"
