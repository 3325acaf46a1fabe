#!/usr/bin/env bash
# After a CA switch, the CRL of the CA replaced: relying parties check an
# old certificate against a CRL its issuer signed, so with [ca]
# PreviousCAKey the CA signs that CA's CRL too (the same revocations),
# served at [frontend] PreviousCRLPath and to a SCEP GetCRL naming the old
# CA; a revocation of an old certificate after the switch then reaches
# them. Without the key: 404 and FAILURE naming the setting.
. "$(dirname "$0")/lib.sh"
interop_init previous_crl
# The frontend keeps a CRL 1.5 s instead of a minute (test builds): what
# the CA does shows without waiting.
export SCEPD_TEST_FRONTEND_CACHE_MS=1500
server_start
server_stop
# The old CA ends in 10 days: its CRL's nextUpdate is capped at its end,
# and past it its last CRL stands (libfaketime, below).
ca_replace "$DATA" 2048 "" 10
server_start
fetch_ca_chain

check "before the switch: three certificates of the old CA, one revoked"
for n in 1 2 3; do
	ios_enroll "$(challenge)" "O=Fabrikam,CN=old $n" "$WORK/old$n.pem" "$URL" --key "$WORK/old$n.key" > /dev/null ||
		fail "enrollment of old $n"
done
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
"$SCEPCTL" --data-dir "$DATA" revoke "$(serial "$WORK/old3.pem")" --reason keyCompromise > /dev/null 2>&1 ||
	fail "scepctl revoke old 3"
cp "$DATA/ca/ca.pem" "$WORK/old-ca.pem"
cp "$DATA/ca/ca.key" "$WORK/old-ca.key"
server_stop
# Another name, so that a SCEP GetCRL can name the old CA.
ca_replace "$DATA" 2048 "/O=scepd test/CN=scepd test CA 2"
cp "$WORK/old-ca.pem" "$DATA/ca/previous-ca.pem"
set_conf ra PreviousCACertificate ca/previous-ca.pem
set_conf ca PreviousCACertificate ca/previous-ca.pem
set_conf frontend PreviousCRLPath /crl/previous.crl
server_start
fetch_ca_chain
cmp -s <(openssl x509 -in "$CA_PEM" -outform DER) <(openssl x509 -in "$WORK/old-ca.pem" -outform DER) &&
	fail "GetCACert still gives the old CA"
ios_enroll "$(challenge)" "O=Fabrikam,CN=new 1" "$WORK/new1.pem" "$URL" --key "$WORK/new1.key" > /dev/null ||
	fail "enrollment under the new CA"

# getcrl NAME CERT: a SCEP GetCRL (22) naming CERT's issuer and serial.
getcrl() {
	local rc=0
	"$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/$1.pem" --message-type 22 \
		--issuer-serial "$2" > "$WORK/$1.log" 2>&1 || rc=$?
	return $rc
}
# getcrl_refused NAME CERT TEXT: GetCRL naming CERT answered FAILURE
# badCertId, its failInfoText matching TEXT.
getcrl_refused() {
	local rc=0
	getcrl "$1" "$2" || rc=$?
	[ $rc = 2 ] && grep -q "^failInfo: badCertId" "$WORK/$1.log" && grep -q "failInfoText: $3" "$WORK/$1.log" ||
		{ cat "$WORK/$1.log"; fail "GetCRL naming $2: exit $rc, want 2, badCertId and '$3'"; }
}
# crl_of CRL CAFILE WHAT: the CRL (PEM) is signed by CAFILE's key.
crl_of() {
	openssl crl -in "$1" -CAfile "$2" -noout 2>&1 | grep -q "verify OK" || fail "$3: not signed by $(basename "$2")"
}

check "without PreviousCAKey: PreviousCRLPath answers 404 naming it, a SCEP GetCRL naming the old CA FAILURE badCertId naming it"
code=$(curl -s -o "$WORK/previous.body" -w '%{http_code}' "$BASE/crl/previous.crl")
[ "$code" = 404 ] && grep -q "PreviousCAKey" "$WORK/previous.body" ||
	{ cat "$WORK/previous.body"; fail "PreviousCRLPath without the key: HTTP $code, want 404 naming PreviousCAKey"; }
grep -q "scepd-frontend.*/crl/previous.crl: no CRL: .*\[ca\] PreviousCAKey" "$SERVER_LOG" ||
	fail "the frontend does not log why no previous CRL is served"
getcrl_refused noprev "$WORK/old1.pem" "GetCRL names a CA this one replaced: .*(\[ca\] PreviousCAKey)"
# The refusal is kept for 10 s, as an outage is: relying parties polling
# the old distribution point do not each cost a round trip to the CA.
code=$(curl -s -o "$WORK/previous.body2" -w '%{http_code}' "$BASE/crl/previous.crl")
[ "$code" = 404 ] && grep -q "PreviousCAKey" "$WORK/previous.body2" || fail "PreviousCRLPath asked again: HTTP $code"
[ "$(grep -c "scepd-frontend.*/crl/previous.crl: no CRL" "$SERVER_LOG")" = 1 ] ||
	fail "PreviousCRLPath asked twice within 10 s: the CA asked twice (the refusal logged $(grep -c "scepd-frontend.*/crl/previous.crl: no CRL" "$SERVER_LOG") times)"

check "PreviousCAKey that is no key of a PreviousCACertificate, readable by others, or without PreviousCACertificate stops the CA at start, named"
server_stop
# refused_at_start SERVICE REGEX: the service started alone exits 1 with
# a line matching REGEX.
refused_at_start() {
	local rc=0
	timeout -s KILL 20 "$BUILD_DIR/$1" --config "$DATA/scepd.conf" > "$WORK/refused.out" 2>&1 || rc=$?
	[ $rc = 1 ] && grep -q -- "$2" "$WORK/refused.out" ||
		{ cat "$WORK/refused.out"; fail "$1: exit $rc, want 1 and a line matching: $2"; }
	echo "   $(grep -- "$2" "$WORK/refused.out")"
}
cp "$DATA/ca/ca.key" "$DATA/ca/previous-ca.key"
chmod 600 "$DATA/ca/previous-ca.key"
set_conf ca PreviousCAKey ca/previous-ca.key
refused_at_start scepd-ca "\[ca\] PreviousCAKey: .*previous-ca.key is the key of none of the certificates in PreviousCACertificate"
cp "$WORK/old-ca.key" "$DATA/ca/previous-ca.key"
chmod 644 "$DATA/ca/previous-ca.key"
refused_at_start scepd-ca "\[ca\] PreviousCAKey: .*previous-ca.key: mode 0644 gives group or others access"
chmod 600 "$DATA/ca/previous-ca.key"
set_conf ca PreviousCACertificate ""
refused_at_start scepd-ca "\[ca\] PreviousCAKey: set, but no PreviousCACertificate names the CA it is the key of"
set_conf ca PreviousCACertificate ca/previous-ca.pem
set_conf frontend PreviousCRLPath /crl/ca.crl
refused_at_start scepd-frontend "\[frontend\] PreviousCRLPath: '/crl/ca.crl' is CRLPath, the CA's own CRL"
set_conf frontend PreviousCRLPath /crl/previous.crl

check "with PreviousCAKey: an old certificate revoked after the switch is on the old CA's CRL, which openssl verify -crl_check uses"
server_start
grep -q "scepd-ca.*PreviousCAKey: the previous CA's CRL is signed with it" "$SERVER_LOG" ||
	fail "the CA does not log PreviousCAKey at start"
"$SCEPCTL" --data-dir "$DATA" revoke "$(serial "$WORK/old1.pem")" > /dev/null 2> "$WORK/revoke.err" ||
	{ cat "$WORK/revoke.err"; fail "scepctl revoke of an old certificate after the switch"; }
grep -q "scepd-ca.*issued CRL number [0-9]*, and the previous CA's (\[ca\] PreviousCAKey)" "$SERVER_LOG" ||
	fail "the CA does not log the previous CA's CRL issued with the revocation"
curl -sf "$BASE/crl/previous.crl" -o "$WORK/previous.der" || fail "PreviousCRLPath"
openssl crl -inform DER -in "$WORK/previous.der" -out "$WORK/previous.crl" || fail "PreviousCRLPath: not a CRL"
crl_of "$WORK/previous.crl" "$WORK/old-ca.pem" "the previous CRL is not signed by the old CA"
# verify_crl CERT CAFILE CRL WANT: openssl verify -crl_check says WANT
# ("OK" or "certificate revoked").
verify_crl() {
	openssl verify -crl_check -CAfile "$2" -CRLfile "$3" "$1" > "$WORK/verify.out" 2>&1 || true
	grep -q "$4" "$WORK/verify.out" || { cat "$WORK/verify.out"; fail "$1 against $3: want '$4'"; }
	echo "   $(basename "$1"): $4"
}
verify_crl "$WORK/old1.pem" "$WORK/old-ca.pem" "$WORK/previous.crl" "certificate revoked"
verify_crl "$WORK/old3.pem" "$WORK/old-ca.pem" "$WORK/previous.crl" "certificate revoked"
verify_crl "$WORK/old2.pem" "$WORK/old-ca.pem" "$WORK/previous.crl" ": OK"
openssl crl -in "$WORK/previous.crl" -noout -text > "$WORK/previous.txt"
grep -A4 "Serial Number: $(serial "$WORK/old3.pem")" "$WORK/previous.txt" | grep -q "Key Compromise" ||
	fail "the previous CRL lost the reason of a revocation from before the switch"
old_end=$(date -d "$(openssl x509 -in "$WORK/old-ca.pem" -noout -enddate | cut -d= -f2)" +%s)
next=$(date -d "$(openssl crl -in "$WORK/previous.crl" -noout -nextupdate | cut -d= -f2)" +%s)
[ "$next" -le "$old_end" ] || fail "the previous CRL's nextUpdate is past the old CA's notAfter"

check "the CA's own CRL at CRLPath is the new CA's, with the same number"
curl -sf "$BASE/crl/ca.crl" -o "$WORK/ca.der" || fail "CRLPath"
openssl crl -inform DER -in "$WORK/ca.der" -out "$WORK/ca.crl" || fail "CRLPath: not a CRL"
crl_of "$WORK/ca.crl" "$CA_PEM" "the CRL at CRLPath is not signed by the new CA"
verify_crl "$WORK/new1.pem" "$CA_PEM" "$WORK/ca.crl" ": OK"
[ "$(openssl crl -in "$WORK/ca.crl" -noout -crlnumber)" = "$(openssl crl -in "$WORK/previous.crl" -noout -crlnumber)" ] ||
	fail "the two CRLs made together have different numbers"

check "a SCEP GetCRL naming the old CA gets the old CA's CRL; naming the new CA, the new CA's"
getcrl prev "$WORK/old2.pem" || { cat "$WORK/prev.log"; fail "GetCRL naming the old CA"; }
crl_of "$WORK/prev.pem" "$WORK/old-ca.pem" "GetCRL naming the old CA: not the old CA's CRL"
verify_crl "$WORK/old1.pem" "$WORK/old-ca.pem" "$WORK/prev.pem" "certificate revoked"
getcrl cur "$WORK/new1.pem" || { cat "$WORK/cur.log"; fail "GetCRL naming the new CA"; }
crl_of "$WORK/cur.pem" "$CA_PEM" "GetCRL naming the new CA: not the new CA's CRL"

check "a SCEP GetCRL naming another CA replaced (in [ra] PreviousCACertificate, not the one PreviousCAKey is of): FAILURE badCertId, not the wrong CA's CRL"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/other-ca.key" -subj "/O=Fabrikam Inc./OU=Public Key Services/CN=another CA replaced before this one" -days 30 \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$WORK/other-ca.pem" 2>/dev/null || fail "making another old CA"
openssl req -new -newkey rsa:2048 -nodes -keyout "$WORK/other.key" -subj "/CN=other" 2>/dev/null |
	openssl x509 -req -CA "$WORK/other-ca.pem" -CAkey "$WORK/other-ca.key" -set_serial 7 -days 30 \
		-out "$WORK/other.pem" 2>/dev/null || fail "a certificate of another old CA"
cat "$WORK/old-ca.pem" "$WORK/other-ca.pem" > "$DATA/ca/previous-cas.pem"
set_conf ra PreviousCACertificate ca/previous-cas.pem
server_restart
getcrl_refused other "$WORK/other.pem" "GetCRL names a CA this one replaced, whose CRL is not signed here (\[ca\] PreviousCAKey is another's)"
getcrl prev2 "$WORK/old2.pem" || { cat "$WORK/prev2.log"; fail "GetCRL naming the old CA, two CAs replaced"; }
cmp -s "$WORK/prev.pem" "$WORK/prev2.pem" || fail "GetCRL naming the old CA, two CAs replaced: another CRL"

check "two CAs replaced under one name (the key of one in PreviousCAKey), one certified twice: the ledger tells a serial's CA; a serial it does not hold FAILURE badCertId"
# The old CA's twin: its name, another key (AD CS renews a CA so).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/twin-ca.key" -days 30 \
	-subj "$(openssl x509 -in "$WORK/old-ca.pem" -noout -subject -nameopt compat | sed 's/^subject=//')" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$WORK/twin-ca.pem" 2>/dev/null || fail "making the old CA's twin"
openssl req -new -newkey rsa:2048 -nodes -keyout "$WORK/twin.key" -subj "/CN=twin" 2>/dev/null |
	openssl x509 -req -CA "$WORK/twin-ca.pem" -CAkey "$WORK/twin-ca.key" -set_serial 0x7A1B2C3D4E5F60718293A4B5C6D7E8F9 \
		-days 30 -out "$WORK/twin.pem" 2>/dev/null || fail "a certificate of the twin"
# And the old CA certified again with its key, listed first in [ra]
# only: its CRL is the old CA's all the same (name and key).
openssl req -x509 -new -key "$WORK/old-ca.key" -days 20 \
	-subj "$(openssl x509 -in "$WORK/old-ca.pem" -noout -subject -nameopt compat | sed 's/^subject=//')" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$WORK/old-ca-again.pem" 2>/dev/null || fail "certifying the old CA's key again"
cat "$WORK/twin-ca.pem" "$WORK/old-ca-again.pem" "$WORK/old-ca.pem" "$WORK/other-ca.pem" > "$DATA/ca/previous-cas.pem"
server_restart
getcrl prev3 "$WORK/old2.pem" || { cat "$WORK/prev3.log"; fail "GetCRL naming the old CA beside its twin"; }
crl_of "$WORK/prev3.pem" "$WORK/old-ca.pem" "GetCRL naming the old CA beside its twin: not the old CA's CRL"
getcrl_refused twin "$WORK/twin.pem" "GetCRL names CAs replaced that bear one name, and a serial the ledger holds no certificate of theirs under"

check "a restart serves the same two CRLs (stored, not made again)"
server_restart
curl -sf "$BASE/crl/previous.crl" -o "$WORK/previous2.der" || fail "PreviousCRLPath after a restart"
cmp -s "$WORK/previous.der" "$WORK/previous2.der" || fail "the previous CRL changed across a restart"
curl -sf "$BASE/crl/ca.crl" -o "$WORK/ca2.der" || fail "CRLPath after a restart"
cmp -s "$WORK/ca.der" "$WORK/ca2.der" || fail "the CA's CRL changed across a restart"

check "PreviousCAKey unset, an old certificate revoked, the key set again: the old CA's CRL lists it (the one stored before is not served)"
curl -sf "$BASE/crl/previous.crl" -o /dev/null || fail "PreviousCRLPath"
set_conf ca PreviousCAKey ""
# The CA alone restarted: the frontend's copy from before is not served
# once it is stale and the CA refuses.
ca_restart_alone
sleep 1.6
code=$(curl -s -o "$WORK/unset.body" -w '%{http_code}' "$BASE/crl/previous.crl")
[ "$code" = 404 ] && grep -q "PreviousCAKey" "$WORK/unset.body" ||
	fail "PreviousCAKey unset, the CA restarted: HTTP $code, want 404 (not the frontend's old copy)"
"$SCEPCTL" --data-dir "$DATA" revoke "$(serial "$WORK/old2.pem")" > /dev/null 2> "$WORK/revoke.err" ||
	{ cat "$WORK/revoke.err"; fail "scepctl revoke without PreviousCAKey"; }
set_conf ca PreviousCAKey ca/previous-ca.key
server_restart
curl -sf "$BASE/crl/previous.crl" -o "$WORK/previous-again.der" || fail "PreviousCRLPath with the key set again"
openssl crl -inform DER -in "$WORK/previous-again.der" -out "$WORK/previous-again.crl" || fail "not a CRL"
verify_crl "$WORK/old2.pem" "$WORK/old-ca.pem" "$WORK/previous-again.crl" "certificate revoked"

check "past half its validity (CRLValidityHours = 168, four days on) the previous CA's CRL is made again, numbered higher, still the old CA's"
server_stop
at_offset 4d server_start
curl -sf "$BASE/crl/previous.crl" -o "$WORK/previous3.der" || fail "PreviousCRLPath four days on"
openssl crl -inform DER -in "$WORK/previous3.der" -out "$WORK/previous3.crl" || fail "four days on: not a CRL"
crl_of "$WORK/previous3.crl" "$WORK/old-ca.pem" "four days on, the previous CRL is not signed by the old CA"
n1=$(openssl crl -in "$WORK/previous.crl" -noout -crlnumber | cut -d= -f2)
n3=$(openssl crl -in "$WORK/previous3.crl" -noout -crlnumber | cut -d= -f2)
[ $((n3)) -gt $((n1)) ] || fail "four days on, the previous CRL's number $n3 is not above $n1"
openssl crl -in "$WORK/previous3.crl" -noout -text | grep -q "Serial Number: $(serial "$WORK/old1.pem")" ||
	fail "four days on, the previous CRL lost a revocation"
next=$(date -d "$(openssl crl -in "$WORK/previous3.crl" -noout -nextupdate | cut -d= -f2)" +%s)
[ "$next" = "$old_end" ] ||
	fail "four days on, the previous CRL's nextUpdate $(date -u -d "@$next") is not the old CA's notAfter $(date -u -d "@$old_end") (it ends 6 days on, within CRLValidityHours)"

check "past the old CA's notAfter (eleven days on): its key is not needed (one gone: the CA starts), its last CRL stands, served as it is, and a revocation makes the new CA's CRL only"
server_stop
set_conf ca PreviousCAKey ca/gone.key
at_offset 11d server_start
grep -q "scepd-ca.*PreviousCAKey: not loaded: every CA in PreviousCACertificate has expired" "$SERVER_LOG" ||
	fail "the CA does not log that the previous CA has expired and its key is not loaded"
curl -sf "$BASE/crl/previous.crl" -o "$WORK/previous4.der" || fail "PreviousCRLPath past the old CA's end"
cmp -s "$WORK/previous3.der" "$WORK/previous4.der" || fail "past the old CA's end, its last CRL is not the one served"
mark=$(log_mark)
at_offset 11d "$SCEPCTL" --data-dir "$DATA" revoke "$(serial "$WORK/new1.pem")" > /dev/null 2> "$WORK/revoke.err" ||
	{ cat "$WORK/revoke.err"; fail "scepctl revoke eleven days on"; }
logged "$mark" "scepd-ca.*issued CRL number [0-9]*$" || fail "eleven days on, a revocation did not make the CA's CRL alone"
sleep 1.6 # past the frontend's copy
curl -sf "$BASE/crl/previous.crl" -o "$WORK/previous5.der" || fail "PreviousCRLPath after the revocation"
cmp -s "$WORK/previous3.der" "$WORK/previous5.der" || fail "past the old CA's end, a revocation changed its CRL"
rc=0
at_offset 11d "$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/prev11.pem" --message-type 22 \
	--issuer-serial "$WORK/old2.pem" > "$WORK/prev11.log" 2>&1 || rc=$?
[ $rc = 0 ] || { cat "$WORK/prev11.log"; fail "GetCRL naming the old CA past its end: exit $rc"; }
cmp -s <(openssl crl -in "$WORK/prev11.pem" -outform DER) "$WORK/previous3.der" ||
	fail "GetCRL naming the old CA past its end: not its last CRL"

pass "the CA replaced keeps a CRL: PreviousCAKey signs it, PreviousCRLPath and SCEP GetCRL serve it, revocations after the switch reach its relying parties"
