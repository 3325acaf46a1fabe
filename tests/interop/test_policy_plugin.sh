#!/usr/bin/env bash
# Issuance-policy plugins in the CA: the shipped duplicate-subject plugin
# loads through the plugin ABI and refuses a second valid certificate for
# one subject (the device sees FAILURE badRequest with the policy's
# reason; the ledger records it), lets a renewal near the end through, and
# a plugin built against another ABI version stops the CA at start with a
# clear message.
. "$(dirname "$0")/lib.sh"
interop_init policy_plugin
server_start
fetch_ca_chain
server_stop

set_conf ca Policies one-per-device
cat >> "$DATA/scepd.conf" <<'EOF'

[policy.one-per-device]
Module = duplicate-subject
RenewWithinDays = 30
EOF

check "a plugin of another ABI version is refused at start, by name"
cp "$DATA/scepd.conf" "$WORK/good.conf"
cat >> "$DATA/scepd.conf" <<EOF

[policy.stale]
Module = $BUILD_DIR/tests/plugins/scepd-wrong-abi.so
EOF
set_conf ca Policies "one-per-device stale"
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-ca" --config "$DATA/scepd.conf" > "$WORK/ca.out" 2>&1 || rc=$?
[ $rc = 1 ] || { cat "$WORK/ca.out"; fail "scepd-ca with a wrong-ABI plugin: exit $rc, want 1"; }
grep -q "\[policy.stale\] Module = .*plugin ABI version 99, this server speaks 2" "$WORK/ca.out" ||
	{ cat "$WORK/ca.out"; fail "no clear ABI message"; }
echo "   ok: $(grep 'ABI version' "$WORK/ca.out")"

check "an unknown key of a plugin's section is a configuration error"
cp "$WORK/good.conf" "$DATA/scepd.conf"
echo "RenewWithinWeeks = 4" >> "$DATA/scepd.conf"
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-ca" --config "$DATA/scepd.conf" > "$WORK/ca.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "\[policy.one-per-device\] RenewWithinWeeks: unknown key" "$WORK/ca.out" ||
	{ cat "$WORK/ca.out"; fail "an unknown plugin key was not refused (exit $rc)"; }
cp "$WORK/good.conf" "$DATA/scepd.conf"

check "a [policy.NAME] section [ca] Policies does not list stops the CA at start (it judged nothing, silently)"
set_conf ca Policies ""
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-ca" --config "$DATA/scepd.conf" > "$WORK/ca.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "\[policy.one-per-device\] is not in \[ca\] Policies (now ''): add one-per-device there, or remove the section" "$WORK/ca.out" ||
	{ cat "$WORK/ca.out"; fail "an unlisted policy section: exit $rc, want 1 naming it"; }
cp "$WORK/good.conf" "$DATA/scepd.conf"

check "duplicate-subject: the first certificate for a subject is issued, a twin is refused"
server_start
grep -q "issuance policy one-per-device ready (duplicate-subject)" "$SERVER_LOG" || fail "the policy did not load"
ios_enroll "$(challenge)" "O=Fabrikam,CN=Robs IPad" "$WORK/first.pem" >/dev/null || fail "first enrollment"
verify_cert "$WORK/first.pem"
rc=0
ios_enroll "$(challenge)" "O=Fabrikam,CN=Robs IPad" "$WORK/twin.pem" >/dev/null || rc=$?
[ $rc = 2 ] || fail "a second certificate for the same subject: exit $rc, want 2 (FAILURE)"
grep -q "^failInfo: badRequest" "$WORK/twin.pem.log" || fail "not failInfo badRequest"
grep -q "policy one-per-device: .*already has a valid certificate" "$WORK/twin.pem.log" ||
	{ cat "$WORK/twin.pem.log"; fail "the failInfoText does not carry the policy's reason"; }
# Name matching (RFC 5280 7.1) takes letter case and runs of spaces as
# nothing: these twins were issued. One password: each refusal releases it
# (PasswordMax here is 5).
pw=$(challenge)
for twin in "O=FABRIKAM,CN=robs ipad" "O=Fabrikam,CN=Robs  IPad " "O=Fabrikam,CN= Robs IPad"; do
	rc=0
	ios_enroll "$pw" "$twin" "$WORK/twin-case.pem" >/dev/null || rc=$?
	[ $rc = 2 ] && grep -q "policy one-per-device: .*already has a valid certificate" "$WORK/twin-case.pem.log" ||
		{ cat "$WORK/twin-case.pem.log"; fail "a twin '$twin' of O=Fabrikam,CN=Robs IPad: exit $rc, want 2 from the policy"; }
done
# A multi-valued RDN is a SET: O=x+CN=y is CN=y+O=x to relying parties.
# Straight to the CA (tests/tools/ca_sign, as the RA asks it): the
# iOS-like client writes one value per RDN. (openssl writes both orders
# as one sorted SET; a request encoding it unsorted follows.)
for m in "O=Fabrikam+CN=Multi IPad" "CN=Multi IPad+O=Fabrikam"; do
	openssl req -new -newkey rsa:2048 -nodes -keyout "$WORK/multi.key" -multivalue-rdn \
		-subj "/$m" -out "$WORK/multi.csr" 2> /dev/null || fail "openssl req -subj /$m"
	rc=0
	"$BUILD_DIR/tests/ca_sign" --endpoint "ipc://$DATA/run/ca.sock" --csr "$WORK/multi.csr" \
		--txid "multi-$RANDOM$RANDOM" --out "$WORK/multi.pem" > "$WORK/multi.out" 2>&1 || rc=$?
	case $m in
	O=*) [ $rc = 0 ] || { cat "$WORK/multi.out"; fail "$m: exit $rc, want issued"; } ;;
	*) [ $rc = 2 ] && grep -q "already has a valid certificate" "$WORK/multi.out" ||
		{ cat "$WORK/multi.out"; fail "$m, a twin of the other order: exit $rc, want refused by the policy"; } ;;
	esac
done
# The same SET encoded unsorted (DER sorts a SET OF; OpenSSL reads it
# either way and X509_NAME_cmp takes both as one name): its two values
# swapped in the bytes, the request signed again with its key.
unsorted_csr() { # SUBJECT NAME: $WORK/NAME.csr, the SET's values swapped
	openssl req -new -newkey rsa:2048 -nodes -keyout "$WORK/$2.key" -multivalue-rdn \
		-subj "/$1" -outform DER -out "$WORK/$2.sorted.der" 2> /dev/null || fail "openssl req -subj /$1"
	python3 - "$WORK/$2.sorted.der" "$WORK/$2.key" "$WORK/$2.der" <<'PY' || fail "$1: no unsorted request made"
import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
def tlv(b, i):  # a DER element at i: where its content begins and ends
    n, j = b[i + 1], i + 2
    if n & 0x80:
        n, j = int.from_bytes(b[j:j + (n & 0x7f)], "big"), j + (n & 0x7f)
    return j, j + n
der = open(sys.argv[1], "rb").read()
t, end = tlv(der, 0)             # CertificationRequest
s, tbs_end = tlv(der, t)         # CertificationRequestInfo, from t
_, c = tlv(der, s)               # past the version: the subject
c, _ = tlv(der, c)               # its first RDN, a SET
s, e = tlv(der, c)
_, m = tlv(der, s)
assert tlv(der, m)[1] == e, "not two values in the first RDN"
first, second = der[s:m], der[m:e]
assert first < second, "openssl's SET is not sorted: nothing to swap"
out = der[:s] + second + first + der[e:]
key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
sig = key.sign(out[t:tbs_end], padding.PKCS1v15(), hashes.SHA256())
assert len(sig) == 256 and der[-257:-256] == b"\0", "not an RSA-2048 signature at the end"
open(sys.argv[3], "wb").write(out[:-256] + sig)
PY
	openssl req -inform DER -in "$WORK/$2.der" -verify -out "$WORK/$2.csr" 2> "$WORK/$2.verify" ||
		{ cat "$WORK/$2.verify"; fail "$1: the unsorted request's signature"; }
	# The control: other bytes than openssl's, read in the other order.
	! cmp -s "$WORK/$2.der" "$WORK/$2.sorted.der" || fail "$1: the swapped request is openssl's"
	cmp -s "$WORK/$2.der" <(openssl req -in "$WORK/$2.csr" -outform DER) || fail "$1: PEM re-encoded it"
	[ "$(openssl req -in "$WORK/$2.csr" -noout -subject -nameopt RFC2253)" != \
	  "$(openssl req -inform DER -in "$WORK/$2.sorted.der" -noout -subject -nameopt RFC2253)" ] ||
		fail "$1: openssl reads the swapped SET in openssl's order"
}
unsorted_csr "O=Fabrikam+CN=Multi IPad" unsorted
rc=0
"$BUILD_DIR/tests/ca_sign" --endpoint "ipc://$DATA/run/ca.sock" --csr "$WORK/unsorted.csr" \
	--txid "unsorted-$RANDOM$RANDOM" --out "$WORK/unsorted.pem" > "$WORK/unsorted.out" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "already has a valid certificate" "$WORK/unsorted.out" ||
	{ cat "$WORK/unsorted.out"; fail "an unsorted SET of the issued O=Fabrikam+CN=Multi IPad: exit $rc, want refused by the policy"; }
# And the other way: the unsorted one issued first, then openssl's twin.
unsorted_csr "O=Fabrikam+CN=Swapped IPad" swapped
"$BUILD_DIR/tests/ca_sign" --endpoint "ipc://$DATA/run/ca.sock" --csr "$WORK/swapped.csr" \
	--txid "swapped-$RANDOM$RANDOM" --out "$WORK/swapped.pem" > "$WORK/swapped.out" 2>&1 ||
	{ cat "$WORK/swapped.out"; fail "an unsorted SET of a new subject: not issued"; }
openssl req -inform DER -in "$WORK/swapped.sorted.der" -out "$WORK/swapped-twin.csr"
rc=0
"$BUILD_DIR/tests/ca_sign" --endpoint "ipc://$DATA/run/ca.sock" --csr "$WORK/swapped-twin.csr" \
	--txid "swapped-$RANDOM$RANDOM" --out "$WORK/swapped-twin.pem" > "$WORK/swapped-twin.out" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "already has a valid certificate" "$WORK/swapped-twin.out" ||
	{ cat "$WORK/swapped-twin.out"; fail "openssl's sorted twin of an issued unsorted SET: exit $rc, want refused by the policy"; }
echo "   ok: a multi-valued RDN's SET encoded unsorted is a twin of the sorted one, either way"
ios_enroll "$pw" "O=Fabrikam,CN=Other IPad" "$WORK/other.pem" >/dev/null ||
	fail "another subject was refused"
"$SCEPCTL" --data-dir "$DATA" list --refused --json > "$WORK/refused.json"
grep -q "policy one-per-device" "$WORK/refused.json" || fail "the policy's refusal is not in the ledger"

check "duplicate-subject: a subject longer than an LMDB key (500 bytes) is counted too"
long="O=Fabrikam"
for i in 1 2 3 4 5 6 7 8 9; do
	long="$long,OU=department $i of the long subject $(head -c 30 /dev/zero | tr '\0' x)"
done
long="$long,CN=Long IPad"
ios_enroll "$(challenge)" "$long" "$WORK/long.pem" >/dev/null || fail "the first certificate for a long subject"
verify_cert "$WORK/long.pem"
len=$(openssl x509 -in "$WORK/long.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//' | tr -d '\n' | wc -c)
[ "$len" -gt 500 ] || fail "the issued subject is $len bytes: this case tests nothing"
rc=0
ios_enroll "$(challenge)" "$long" "$WORK/long-twin.pem" >/dev/null || rc=$?
[ $rc = 2 ] || fail "a twin of a $len-byte subject: exit $rc, want 2 (FAILURE)"
# (the reason names the subject first: cut short in the failInfoText)
grep -q "^failInfoText: policy one-per-device: \"O=Fabrikam,OU=department 1" "$WORK/long-twin.pem.log" ||
	{ cat "$WORK/long-twin.pem.log"; fail "the long subject's twin was not refused by the policy"; }
echo "   ok: a twin of a $len-byte subject refused"

check "duplicate-subject: a revoked certificate does not count; its replacement is issued"
rc=0
ios_enroll "$(challenge)" "O=Fabrikam,CN=Other IPad" "$WORK/other2.pem" >/dev/null || rc=$?
[ $rc = 2 ] || fail "a twin of Other IPad before revocation: exit $rc, want 2"
"$SCEPCTL" --data-dir "$DATA" revoke "$(openssl x509 -in "$WORK/other.pem" -noout -serial | cut -d= -f2)" \
	--reason keyCompromise 2>/dev/null || fail "scepctl revoke"
ios_enroll "$(challenge)" "O=Fabrikam,CN=Other IPad" "$WORK/other3.pem" >/dev/null ||
	fail "the replacement of a revoked certificate was refused as a twin"
verify_cert "$WORK/other3.pem"

check "duplicate-subject: a certificate on hold still counts (scepctl unrevoke would make two)"
"$SCEPCTL" --data-dir "$DATA" revoke "$(openssl x509 -in "$WORK/other3.pem" -noout -serial | cut -d= -f2)" \
	--reason certificateHold 2>/dev/null || fail "scepctl revoke --reason certificateHold"
rc=0
ios_enroll "$(challenge)" "O=Fabrikam,CN=Other IPad" "$WORK/other4.pem" >/dev/null || rc=$?
[ $rc = 2 ] && grep -q "policy one-per-device: .*already has a valid certificate" "$WORK/other4.pem.log" ||
	{ cat "$WORK/other4.pem.log"; fail "a twin of a certificate on hold: exit $rc, want 2 (FAILURE) from the policy"; }
"$SCEPCTL" --data-dir "$DATA" unrevoke "$(openssl x509 -in "$WORK/other3.pem" -noout -serial | cut -d= -f2)" \
	2>/dev/null || fail "scepctl unrevoke"

check "duplicate-subject at an operator's approval: two requests pending for one subject, the second approval refused"
printf '\n[template.IPSECIntermediateOffline]\nApprovalRequired = 1\n' >> "$DATA/scepd.conf"
server_restart
for k in pa pb; do
	rc=0
	ios_enroll "$(challenge)" "O=Fabrikam,CN=Pending IPad" "$WORK/$k.pem" "$URL" --key "$WORK/$k.key" >/dev/null || rc=$?
	[ $rc = 3 ] || fail "request $k: exit $rc, want 3 (PENDING)"
done
mapfile -t pend < <(grep "pending an operator's approval" "$SERVER_LOG" | sed -n 's/.* txid=\([^ :]*\).*/\1/p')
[ "${#pend[@]}" = 2 ] || fail "want two pending transactions, got ${#pend[@]}"
"$SCEPCTL" --data-dir "$DATA" approve "${pend[0]}" > /dev/null || fail "approving the first"
rc=0
"$SCEPCTL" --data-dir "$DATA" approve "${pend[1]}" > "$WORK/approve2.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "policy one-per-device: .*already has a valid certificate" "$WORK/approve2.out" ||
	{ cat "$WORK/approve2.out"; fail "the second approval for one subject: exit $rc, want 1 with the policy's reason"; }
echo "   ok: $(cat "$WORK/approve2.out")"
sed -i '/^\[template.IPSECIntermediateOffline\]$/,/^ApprovalRequired = 1$/d' "$DATA/scepd.conf"
! grep -q "^ApprovalRequired" "$DATA/scepd.conf" || fail "ApprovalRequired is still set"

check "RenewWithinDays longer than the validity: a renewal-time second certificate is issued"
set_conf policy.one-per-device RenewWithinDays 400
server_restart
ios_enroll "$(challenge)" "O=Fabrikam,CN=Robs IPad" "$WORK/renewed.pem" >/dev/null ||
	fail "a second certificate inside the renewal window was refused"
verify_cert "$WORK/renewed.pem"

check "after a CA switch a certificate of the replaced CA does not count (its holders enroll anew), unless PreviousCACertificate vouches for it"
set_conf policy.one-per-device RenewWithinDays 30
cp "$DATA/ca/ca.pem" "$WORK/old-ca.pem"
server_stop
ca_replace "$DATA" 2048
server_start
fetch_ca_chain
ios_enroll "$(challenge)" "O=Fabrikam,CN=Other IPad" "$WORK/after-switch.pem" >/dev/null ||
	{ cat "$WORK/after-switch.pem.log"; fail "a subject whose certificate the replaced CA issued was refused as a twin"; }
verify_cert "$WORK/after-switch.pem"
cp "$WORK/old-ca.pem" "$DATA/ca/previous-ca.pem"
set_conf ca PreviousCACertificate ca/previous-ca.pem
server_restart
rc=0
ios_enroll "$(challenge)" "O=Fabrikam,CN=Pending IPad" "$WORK/vouched.pem" >/dev/null || rc=$?
[ $rc = 2 ] && grep -q "policy one-per-device: .*already has a valid certificate" "$WORK/vouched.pem.log" ||
	{ cat "$WORK/vouched.pem.log"; fail "a twin of a certificate PreviousCACertificate vouches for: exit $rc, want 2 from the policy"; }

check "a ledger whose subjects index an older build made (by the exact line) is made again at the first start"
server_stop
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
valid=$(openssl x509 -in "$WORK/after-switch.pem" -noout -serial | cut -d= -f2)
printf 'VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n %s\n %s\nDATA=END\n' \
	"$(hex subjects_index)" "$(hex exact)" > "$WORK/meta.dump"
mdb_load -s meta -f "$WORK/meta.dump" "$DATA/db/ca" || fail "mdb_load meta"
# A key no certificate holds: refuses a ghost's first certificate unless
# the index is made again from the certificates.
printf 'VERSION=3\nformat=bytevalue\ntype=btree\ndupsort=1\nHEADER=END\n %s\n %s\nDATA=END\n' \
	"$(hex "O=fabrikam,CN=ghost ipad")" "$(hex "$valid")" > "$WORK/subjects.dump"
mdb_load -s subjects -f "$WORK/subjects.dump" "$DATA/db/ca" || fail "mdb_load subjects"
set_conf challenge PasswordMax 50
server_start
grep -q "scepd-ca.*ledger: the subjects index made again from [0-9]* certificates" "$SERVER_LOG" ||
	fail "the CA did not say it made the subjects index again"
ios_enroll "$(challenge)" "O=Fabrikam,CN=Ghost IPad" "$WORK/ghost.pem" >/dev/null ||
	{ cat "$WORK/ghost.pem.log"; fail "a first certificate refused by an index entry no certificate holds"; }
rc=0
ios_enroll "$(challenge)" "O=FABRIKAM,CN=other ipad" "$WORK/twin-after.pem" >/dev/null || rc=$?
[ $rc = 2 ] || fail "a twin of Other IPad after the index was made again: exit $rc, want 2"
made=$(grep -c "subjects index made again" "$SERVER_LOG")
server_restart
[ "$(grep -c "subjects index made again" "$SERVER_LOG")" = "$made" ] ||
	fail "the subjects index was made again at a later start"

pass "duplicate-subject policy through the plugin ABI, twins by letter case and spaces, the index of an older ledger made again, at approval too, revoked certificates and those of a replaced CA not counted, held ones and those PreviousCACertificate vouches for counted; wrong ABI and unknown keys refused at start"
