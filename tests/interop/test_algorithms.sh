#!/usr/bin/env bash
# The algorithm policy end to end: 3DES envelopes and SHA-1 digests are
# accepted by default (logged and counted as legacy), refused with FAILURE
# badAlg naming the switch when AllowDES3 = 0 / AllowSHA1 = 0, and
# GetCACaps lists DES3 and SHA-1 only while they are allowed; a request
# signed with a key that cannot receive key transport is refused with a
# clear failInfoText; every messageType from 0 to 255 gets an answer and
# the server keeps serving.
. "$(dirname "$0")/lib.sh"
interop_init algorithms
server_start
fetch_ca_chain

caps() {
	curl -s "$URL?operation=GetCACaps" | tr -d '\r'
}

check "defaults: DES3 and SHA-1 advertised, accepted, logged and counted"
caps | grep -qx DES3 && caps | grep -qx SHA-1 || fail "caps: $(caps | tr '\n' ' ')"
"$IOS_CLIENT" --url "$URL" --challenge "$(challenge)" --subject "CN=3des" --cipher des-ede3-cbc \
	--out "$WORK/3des.pem" > "$WORK/3des.log" 2>&1 || { cat "$WORK/3des.log"; fail "3DES refused by default"; }
grep -q "reply cipher: DES-EDE3-CBC" "$WORK/3des.log" || fail "the 3DES request's reply is not 3DES"
"$IOS_CLIENT" --url "$URL" --challenge "$(challenge)" --subject "CN=sha1" --digest sha1 \
	--out "$WORK/sha1.pem" > "$WORK/sha1.log" 2>&1 || { cat "$WORK/sha1.log"; fail "SHA-1 refused by default"; }
grep -q "3DES envelope accepted: AllowDES3 = 1" "$SERVER_LOG" || fail "the 3DES use was not logged"
grep -q "SHA-1 message digest accepted: AllowSHA1 = 1" "$SERVER_LOG" || fail "the SHA-1 use was not logged"
[ "$(metric 'scepd_ra_legacy_total{switch="AllowDES3"}')" = 1 ] || fail "3DES not counted once"
[ "$(metric 'scepd_ra_legacy_total{switch="AllowSHA1"}')" = 1 ] || fail "SHA-1 not counted once"
openssl x509 -in "$WORK/sha1.pem" -noout -text | grep -q "Signature Algorithm: sha256WithRSAEncryption" ||
	fail "a SHA-1 request got a certificate not signed with SHA-256"
# A 3DES envelope that does not open (made for another certificate), with a
# SHA-1 digest: no legacy use, not counted (anyone could inflate them).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/other.key" -subj "/CN=not the RA" -days 1 \
	-out "$WORK/other.pem" 2> /dev/null
rc=0
"$IOS_CLIENT" --url "$URL" --challenge "$(challenge)" --subject "CN=3des garbage" --cipher des-ede3-cbc \
	--digest sha1 --recipient "$WORK/other.pem" --out "$WORK/garbage.pem" > "$WORK/garbage.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "^failInfo: badMessageCheck" "$WORK/garbage.log" ||
	{ cat "$WORK/garbage.log"; fail "an envelope for another certificate: exit $rc"; }
[ "$(metric 'scepd_ra_legacy_total{switch="AllowDES3"}')" = 1 ] &&
	[ "$(metric 'scepd_ra_legacy_total{switch="AllowSHA1"}')" = 1 ] ||
	fail "an envelope that does not open counted as a legacy use"

check "AllowDES3 = 0 and AllowSHA1 = 0: not advertised, refused with badAlg naming the switch"
set_conf ra AllowDES3 0
set_conf ra AllowSHA1 0
server_restart
caps | grep -qx DES3 && fail "DES3 still advertised"
caps | grep -qx SHA-1 && fail "SHA-1 still advertised"
rc=0
"$IOS_CLIENT" --url "$URL" --challenge "$(challenge)" --subject "CN=3des" --cipher des-ede3-cbc \
	--out "$WORK/no3des.pem" > "$WORK/no3des.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "^failInfo: badAlg" "$WORK/no3des.log" && grep -q "AllowDES3 = 1" "$WORK/no3des.log" ||
	{ cat "$WORK/no3des.log"; fail "3DES with AllowDES3 = 0: exit $rc"; }
rc=0
"$IOS_CLIENT" --url "$URL" --challenge "$(challenge)" --subject "CN=sha1" --digest sha1 \
	--out "$WORK/nosha1.pem" > "$WORK/nosha1.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "^failInfo: badAlg" "$WORK/nosha1.log" && grep -q "AllowSHA1 = 1" "$WORK/nosha1.log" ||
	{ cat "$WORK/nosha1.log"; fail "SHA-1 with AllowSHA1 = 0: exit $rc"; }
# Refused, not let in by a switch: neither counted nor logged as accepted.
[ "$(metric 'scepd_ra_legacy_total{switch="AllowDES3"}')" = 0 ] || fail "a refused 3DES request counted as legacy use"
[ "$(metric 'scepd_ra_legacy_total{switch="AllowSHA1"}')" = 0 ] || fail "a refused SHA-1 request counted as legacy use"
[ "$(grep -c "accepted: AllowDES3 = 1\|accepted: AllowSHA1 = 1" "$SERVER_LOG")" = 2 ] ||
	fail "a refused request logged as accepted"

check "every messageType 0-255: an answer each (FAILURE or HTTP 400), and the server keeps serving"
declare -A seen=()
pw=$(challenge) # presented by PKCSReq (19) only: the others never reach it
for t in $(seq 0 255); do
	rc=0
	timeout -s KILL 30 "$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=type $t" \
		--message-type "$t" --key "$WORK/sweep.key" --out "$WORK/t.pem" > "$WORK/t.log" 2>&1 || rc=$?
	# 19 issues; 20 (CertPoll) after it, with the same key and so the same
	# transaction, is then answered with that certificate.
	case $t in 19 | 20) want=0 ;; *) want=2 ;; esac
	if [ "$rc" != "$want" ]; then
		# A message the RA cannot authenticate enough to answer is an
		# HTTP 400; anything else is wrong.
		[ "$rc" = 1 ] && grep -q "HTTP 400" "$WORK/t.log" || { cat "$WORK/t.log"; fail "messageType $t: exit $rc"; }
	fi
	seen[$rc]=$(( ${seen[$rc]:-0} + 1 ))
done
echo "   exits: ${!seen[*]} -> ${seen[*]}"
issued=$(grep -c "scepd-ca\[.*issued serial" "$SERVER_LOG" || true)
# (PKCSReq 19 issues; so did the two default-policy enrollments above)
[ "$issued" = 3 ] || fail "the CA issued $issued certificates, want 3"
ios_enroll "$(challenge)" "CN=still serving" "$WORK/last.pem" >/dev/null || fail "no enrollment after the sweep"

pass "3DES/SHA-1 switches, caps, legacy counting; all 256 messageTypes answered"
