#!/usr/bin/env bash
# Manual approval (RFC 8894 PENDING and CertPoll): under a template with
# ApprovalRequired = 1 a PKCSReq gets PENDING; CertPoll (GetCertInitial)
# with the same transactionID gets PENDING until `scepctl approve`, then
# the certificate; `scepctl reject` makes the next poll a FAILURE with the
# operator's reason; a poll for an unknown transaction gets badCertId;
# `scepctl list --pending` shows what waits; after PendingDays a poll is
# told to enroll anew, 7 days later the record is purged (a rejected
# one 7 days after the decision).
# Clients: the iOS-like client and strongSwan's pki, which polls by itself.
# Also GetCert and GetCRL through SCEP.
. "$(dirname "$0")/lib.sh"
interop_init pending
server_start
fetch_ca_chain
server_stop
cat >> "$DATA/scepd.conf" <<'EOF'

[template.IPSECIntermediateOffline]
ApprovalRequired = 1
# Renewable at once: a renewal probes a rejected transaction below.
RenewalWindow = 100
EOF
# Passwords are issued ahead of the requests that use them, and some are
# never used (refused requests): more than the default 5 at times.
set_conf challenge PasswordMax 20
server_start

# txid_of LOG: the transactionID the client printed
pending_txid() {
	grep "pending an operator's approval" "$SERVER_LOG" | tail -1 | sed -n 's/.* txid=\([^ :]*\).*/\1/p'
}

# again NAME: the first PKCSReq (p1's key, its password) sent again into
# $WORK/NAME.pem; sets rc
again() {
	rc=0
	ios_enroll "$pw1" "O=Fabrikam,CN=needs approval" "$WORK/$1.pem" "$URL" --key "$WORK/p1.key" >/dev/null || rc=$?
}

# poll NAME KEY: a CertPoll for the transaction of KEY; sets rc
poll() {
	rc=0
	"$IOS_CLIENT" --url "$URL" --subject "$2" --out "$WORK/$1.pem" --key "$WORK/$3.key" \
		--message-type 20 > "$WORK/$1.log" 2>&1 || rc=$?
}

check "a PKCSReq under ApprovalRequired = 1 gets PENDING, and a poll too; its password is used"
rc=0
pw1=$(challenge)
ios_enroll "$pw1" "O=Fabrikam,CN=needs approval" "$WORK/p1.pem" "$URL" --key "$WORK/p1.key" >/dev/null || rc=$?
[ $rc = 3 ] || fail "PKCSReq: exit $rc, want 3 (PENDING)"
grep -q "^pkiStatus: PENDING" "$WORK/p1.pem.log" || fail "no PENDING pkiStatus"
txid=$(pending_txid)
[ -n "$txid" ] || fail "the CA did not log the pending transaction"
poll poll1 "O=Fabrikam,CN=needs approval" p1
[ $rc = 3 ] || { cat "$WORK/poll1.log"; fail "CertPoll before approval: exit $rc, want 3"; }
# Counted as PENDING in /metrics, not as FAILUREs (they were: badAlg).
[ "$(metric 'scepd_ra_pki_operations_total{outcome="pending"}')" = 2 ] || fail "/metrics: 2 PENDING answers expected"
[ "$(metric 'scepd_ra_pki_operations_total{outcome="failure"}')" = 0 ] || fail "/metrics: PENDING counted as a FAILURE"
[ "$(metric 'scepd_ra_failures_total{failinfo="badAlg"}')" = 0 ] || fail "/metrics: PENDING counted as badAlg"
# The password has done its work: used (it stayed reserved, and was later
# logged as "expired, never paid for a certificate").
[ "$(metric scepd_challenge_used_total)" = 1 ] || fail "/metrics: the pending request's password is not counted used"
grep -q "otp: password id=[0-9a-f]* (issued to scepctl) used" "$SERVER_LOG" || fail "the password was not marked used"
# The same PKCSReq sent again, with its password: still PENDING.
again p1b
[ $rc = 3 ] || { cat "$WORK/p1b.pem.log"; fail "the PKCSReq sent again: exit $rc, want 3 (PENDING)"; }
# Sent again with a new password (the user asked for another): PENDING
# for the request held, which the first paid for; the new one paid for
# nothing and stays the user's, for a new key.
pw2=$(challenge)
rc=0
ios_enroll "$pw2" "O=Fabrikam,CN=needs approval" "$WORK/p1c.pem" "$URL" --key "$WORK/p1.key" >/dev/null || rc=$?
[ $rc = 3 ] || { cat "$WORK/p1c.pem.log"; fail "the PKCSReq sent again with a new password: exit $rc, want 3 (PENDING)"; }
[ "$(metric scepd_challenge_used_total)" = 1 ] ||
	fail "/metrics: the new password of a request already pending was counted used ($(metric scepd_challenge_used_total) used)"
rc=0
ios_enroll "$pw2" "O=Fabrikam,CN=needs approval too" "$WORK/p5.pem" "$URL" --key "$WORK/p5.key" >/dev/null || rc=$?
[ $rc = 3 ] || { cat "$WORK/p5.pem.log"; fail "that password with a new key: exit $rc, want 3 (PENDING)"; }
"$SCEPCTL" --data-dir "$DATA" approve "$(pending_txid)" > /dev/null || fail "scepctl approve (p5)"
# ... also from an address WrongPasswordLimit throttles (a device behind
# a NAT whose neighbours guessed): its own transaction is no guess, and
# the RA had the CA's answer in hand. It got 429, logged as PENDING.
server_stop
set_conf challenge WrongPasswordLimit 2
server_start
for i in 1 2; do
	ios_enroll "wrong-password-$i" "CN=guess $i" "$WORK/guess$i.pem" > /dev/null 2>&1 || true
done
rc=0
ios_enroll "wrong-password-3" "CN=guess 3" "$WORK/guess3.pem" > /dev/null || rc=$?
grep -q "PKIOperation: HTTP 429" "$WORK/guess3.pem.log" || { cat "$WORK/guess3.pem.log"; fail "the address is not throttled: this case tests nothing"; }
again p1c
[ $rc = 3 ] || { cat "$WORK/p1c.pem.log"; fail "the PKCSReq sent again from a throttled address: exit $rc, want 3 (PENDING)"; }
server_stop
set_conf challenge WrongPasswordLimit 10
server_start

check "the CA keeps the pending CSR without its challengePassword (not at rest on its disk), its subject and key as sent"
# pending_csr TXID OUT: the CSR of TXID's pending record as DER in OUT.
pending_csr() {
	mdb_dump -p -s pending "$DATA/db/ca" > "$WORK/pending.dump" || fail "mdb_dump of the CA's pending requests"
	python3 - "$1" "$2" "$WORK/pending.dump" <<'PY' || fail "no readable pending record of $1"
import base64, json, sys
txid, out, dump = sys.argv[1:]
lines = [l[1:].rstrip("\n") for l in open(dump) if l.startswith(" ")]
for k, v in zip(lines[0::2], lines[1::2]):
    if k == txid:
        rec = json.loads(v)
        assert rec.get("csr_without_challenge") is True, rec
        open(out, "wb").write(base64.b64decode(rec["csr"]))
        sys.exit(0)
sys.exit(1)
PY
}
pending_csr "$txid" "$WORK/kept.der"
openssl req -inform DER -in "$WORK/kept.der" -noout -text > "$WORK/kept.txt" || fail "the kept CSR does not parse"
grep -q "CN *= *needs approval" "$WORK/kept.txt" || fail "the kept CSR lost its subject: $(cat "$WORK/kept.txt")"
! grep -qi "challengePassword" "$WORK/kept.txt" || fail "the kept CSR holds a challengePassword"
! grep -qaF -- "$pw1" "$WORK/kept.der" || fail "the kept CSR holds the password"
cmp -s <(openssl req -inform DER -in "$WORK/kept.der" -noout -pubkey) <(openssl pkey -in "$WORK/p1.key" -pubout) ||
	fail "the kept CSR holds another key"

check "the pending transactionID is not taken by another key, whatever its password; approval issues the first"
# At the CA, as the RA would hand it on once a password passed:
# at_the_ca NAME KEY SUBJECT sends a CSR of KEY for SUBJECT under $txid;
# its exit status in rc, its output in $WORK/NAME.out.
at_the_ca() {
	openssl req -new -key "$WORK/$2.key" -subj "$3" -out "$WORK/$1.csr" 2>/dev/null
	rc=0
	"$BUILD_DIR/tests/ca_sign" --endpoint "ipc://$DATA/run/ca.sock" --csr "$WORK/$1.csr" --txid "$txid" \
		> "$WORK/$1.out" 2>&1 || rc=$?
}
# refused NAME TEXT: FAILURE badRequest saying TEXT
refused() {
	[ $rc = 2 ] && grep -q "failInfo: badRequest" "$WORK/$1.out" && grep -q "$2" "$WORK/$1.out"
}
openssl genrsa -out "$WORK/intruder.key" 2048 2>/dev/null
at_the_ca intruder intruder "/CN=intruder"
refused intruder "transactionID already used with another key" ||
	{ cat "$WORK/intruder.out"; fail "another key under the pending transactionID: exit $rc, want 2"; }
# The device's own request again (a resend) stays pending.
at_the_ca p1again p1 "/O=Fabrikam/CN=needs approval"
[ $rc = 4 ] || { cat "$WORK/p1again.out"; fail "the same key's request again: exit $rc, want 4 (PENDING)"; }
# The same key asking another subject under it: what the operator sees is
# what gets approved, so it is refused while the first waits.
at_the_ca p1other p1 "/O=Fabrikam/CN=portal"
refused p1other "transactionID already pending approval with another CSR" ||
	{ cat "$WORK/p1other.out"; fail "another subject of the same key under the pending transactionID: exit $rc, want 2"; }
# Nor when its key usage picks a template that needs no approval
# (digitalSignature alone: SignatureTemplate): it was issued at once,
# the operator's queue still showing the first.
server_stop
set_conf ca SignatureTemplate ClientAuth
server_start
openssl req -new -key "$WORK/p1.key" -subj "/O=Fabrikam/CN=needs approval" \
	-addext "keyUsage=critical,digitalSignature" -out "$WORK/p1sig.csr" 2>/dev/null || fail "openssl req"
rc=0
"$BUILD_DIR/tests/ca_sign" --endpoint "ipc://$DATA/run/ca.sock" --csr "$WORK/p1sig.csr" --txid "$txid" \
	--out "$WORK/p1sig.pem" > "$WORK/p1sig.out" 2>&1 || rc=$?
refused p1sig "transactionID already pending approval with another CSR or template" ||
	{ cat "$WORK/p1sig.out"; fail "another CSR of the same key, for a template without approval, under the pending transactionID: exit $rc, want 2"; }
"$SCEPCTL" --data-dir "$DATA" list --pending | grep -q "$txid" || fail "the pending request left the queue"
server_stop
set_conf ca SignatureTemplate IPSECIntermediateOffline
server_start

check "a CertPoll for an unknown transaction gets FAILURE badCertId"
poll poll_unknown "CN=nobody" unknown
[ $rc = 2 ] && grep -q "^failInfo: badCertId" "$WORK/poll_unknown.log" ||
	{ cat "$WORK/poll_unknown.log"; fail "unknown transaction: exit $rc"; }
# The pending transaction polled with another key: the same answer as an
# unknown one (it said "belongs to another key": whoever holds a device's
# certificate could learn whether it has a request waiting).
rc=0
"$IOS_CLIENT" --url "$URL" --subject "O=Fabrikam,CN=needs approval" --out "$WORK/poll_other.pem" \
	--key "$WORK/unknown.key" --txid "$txid" --message-type 20 > "$WORK/poll_other.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "^failInfo: badCertId" "$WORK/poll_other.log" ||
	{ cat "$WORK/poll_other.log"; fail "a poll of the pending transaction by another key: exit $rc"; }
[ "$(grep "^failInfoText" "$WORK/poll_other.log")" = "$(grep "^failInfoText" "$WORK/poll_unknown.log")" ] ||
	fail "a poll by another key is told more than one of an unknown transaction"

check "scepctl approve: the next poll gets the certificate"
serial=$("$SCEPCTL" --data-dir "$DATA" approve "$txid") || fail "scepctl approve $txid"
[[ $serial =~ ^[0-9A-F]{32}$ ]] || fail "approve printed '$serial', not a serial"
poll poll2 "O=Fabrikam,CN=needs approval" p1
[ $rc = 0 ] || { cat "$WORK/poll2.log"; fail "CertPoll after approval: exit $rc, want 0"; }
verify_cert "$WORK/poll2.pem"
[ "$(openssl x509 -in "$WORK/poll2.pem" -noout -serial | cut -d= -f2)" = "$serial" ] ||
	fail "the polled certificate is not the approved serial"
cmp -s <(openssl x509 -in "$WORK/poll2.pem" -noout -pubkey) <(openssl pkey -in "$WORK/p1.key" -pubout) ||
	fail "the approved certificate does not hold the device's key"
openssl x509 -in "$WORK/poll2.pem" -noout -subject -nameopt compat | grep -q "CN=needs approval$" ||
	fail "the approved certificate is not for the subject first asked: $(openssl x509 -in "$WORK/poll2.pem" -noout -subject)"
# Kept without its password, a request's key stays as the device encoded
# it: an RSA key without its NULL parameters (test_ios_client.sh).
rc=0
ios_enroll "$(challenge)" "O=Fabrikam,CN=params absent" "$WORK/np.pem" "$URL" --key "$WORK/np.key" \
	--rsa-params-absent >/dev/null || rc=$?
[ $rc = 3 ] || fail "a PKCSReq whose RSA key has no NULL parameters: exit $rc, want 3 (PENDING)"
"$SCEPCTL" --data-dir "$DATA" approve "$(pending_txid)" > /dev/null || fail "scepctl approve of the key without NULL parameters"
poll np2 "O=Fabrikam,CN=params absent" np
[ $rc = 0 ] || { cat "$WORK/np2.log"; fail "CertPoll after approval (no NULL parameters): exit $rc, want 0"; }
verify_cert "$WORK/np2.pem"
openssl x509 -in "$WORK/np2.pem" -outform DER | od -An -tx1 -v | tr -d ' \n' | grep -q 300b06092a864886f70d01010103 ||
	fail "the approved certificate's key is not encoded as the CSR had it (rsaEncryption without parameters)"
rc=0
"$SCEPCTL" --data-dir "$DATA" approve "$txid" 2> "$WORK/again.err" || rc=$?
[ $rc = 1 ] || fail "approving twice: exit $rc"
# The PKCSReq sent again (certmonger's way, or an answer lost) after the
# template's rules were tightened: its certificate, as a CertPoll gets it
# (the rules of its day passed it); it got FAILURE, "below MinRSABits".
server_stop
set_conf template.IPSECIntermediateOffline MinRSABits 3072
server_start
again p1d
[ $rc = 0 ] || { cat "$WORK/p1d.pem.log"; fail "the approved PKCSReq sent again under tighter rules: exit $rc, want 0"; }
[ "$(openssl x509 -in "$WORK/p1d.pem" -noout -serial | cut -d= -f2)" = "$serial" ] ||
	fail "the PKCSReq sent again did not get the approved certificate"
# A new request under the tighter rules is refused by them.
rc=0
ios_enroll "$(challenge)" "CN=new under 3072" "$WORK/p1e.pem" "$URL" --key "$WORK/p1e.key" >/dev/null || rc=$?
[ $rc = 2 ] && grep -q "below MinRSABits = 3072" "$WORK/p1e.pem.log" ||
	{ cat "$WORK/p1e.pem.log"; fail "a new 2048-bit request under MinRSABits = 3072: exit $rc"; }
server_stop
set_conf template.IPSECIntermediateOffline MinRSABits 2048
# The ledger's transaction record unreadable (here: a serial of 9
# characters): the approved device's poll is 503, our fault, not FAILURE
# badCertId ("no such transaction"), which tells it to give up.
txid_record() {
	printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n %s\n %s\nDATA=END\n' "$txid" "$1" |
		mdb_load -s txids "$DATA/db/ca" || fail "mdb_load txids"
}
txid_record "BADSERIAL"
server_start
poll poll_unreadable "O=Fabrikam,CN=needs approval" p1
[ $rc = 1 ] && grep -q "PKIOperation: HTTP 503" "$WORK/poll_unreadable.log" ||
	{ cat "$WORK/poll_unreadable.log"; fail "a poll whose ledger record cannot be read: exit $rc, want HTTP 503"; }
server_stop
txid_record "$serial"
server_start
poll poll_readable "O=Fabrikam,CN=needs approval" p1
[ $rc = 0 ] || { cat "$WORK/poll_readable.log"; fail "a poll after the ledger record was put right: exit $rc"; }

check "scepctl reject: the next poll gets FAILURE with the operator's reason"
rc=0
ios_enroll "$(challenge)" "CN=not in inventory" "$WORK/p2.pem" "$URL" --key "$WORK/p2.key" >/dev/null || rc=$?
[ $rc = 3 ] || fail "second PKCSReq: exit $rc, want 3"
p2_txid=$(pending_txid)
# The reason goes to the device whole, or is refused: one not UTF-8 was
# dropped without a word ("no reason given"), one too long cut inside a
# character.
for bad in $'Ger\xe4t not in inventory' "$(head -c 201 /dev/zero | tr '\0' 'r')"; do
	rc=0
	"$SCEPCTL" --data-dir "$DATA" reject "$p2_txid" --reason "$bad" 2> "$WORK/reason.err" || rc=$?
	[ $rc = 1 ] && grep -q "the reason must be UTF-8 text without control characters, at most 200 bytes" "$WORK/reason.err" ||
		{ cat "$WORK/reason.err"; fail "reject with a reason not UTF-8 or of 201 bytes: exit $rc, want 1"; }
done
reason="not in the device inventory: Gerät $(printf '\u00e4%.0s' $(seq 80))"
"$SCEPCTL" --data-dir "$DATA" reject "$p2_txid" --reason "$reason" ||
	fail "scepctl reject"
poll poll3 "CN=not in inventory" p2
[ $rc = 2 ] && grep -qxF "failInfoText: rejected by the CA operator: $reason" "$WORK/poll3.log" ||
	{ cat "$WORK/poll3.log"; fail "poll after reject: exit $rc"; }
# A renewal (no password: any holder of a certificate of this CA) under
# the rejected transactionID with another key learns nothing of it (it
# got the operator's reason).
rc=0
"$IOS_CLIENT" --url "$URL" --subject "O=Fabrikam,CN=needs approval" --out "$WORK/probe.pem" \
	--key "$WORK/probe.key" --txid "$p2_txid" --message-type 17 \
	--renew-cert "$WORK/poll2.pem" --renew-key "$WORK/p1.key" > "$WORK/probe.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "^failInfo: badRequest" "$WORK/probe.log" &&
	[ "$(grep "^failInfoText" "$WORK/probe.log")" = "failInfoText: transactionID already used with another key" ] ||
	{ cat "$WORK/probe.log"; fail "a renewal under a rejected transactionID by another key: exit $rc"; }

check "scepctl list --pending: what waits, with its transactionID, subject and expiry; a rejected one with its reason"
rc=0
ios_enroll "$(challenge)" "O=Fabrikam,CN=waits for the operator" "$WORK/p3.pem" "$URL" --key "$WORK/p3.key" >/dev/null || rc=$?
[ $rc = 3 ] || fail "third PKCSReq: exit $rc, want 3"
p3_txid=$(pending_txid)
"$SCEPCTL" --data-dir "$DATA" list --pending > "$WORK/pending.txt" 2> "$WORK/pending.err" || fail "scepctl list --pending"
grep -q "  pending  until [0-9T:-]*Z  IPSECIntermediateOffline  127.0.0.1  $p3_txid  \"O=Fabrikam,CN=waits for the operator\"  -$" "$WORK/pending.txt" ||
	{ cat "$WORK/pending.txt"; fail "the waiting request is not listed"; }
grep -q "  rejected  until .*\"CN=not in inventory\"  -  $reason$" "$WORK/pending.txt" ||
	{ cat "$WORK/pending.txt"; fail "the rejected request is not listed with its reason"; }
[ "$(wc -l < "$WORK/pending.txt")" = 2 ] || { cat "$WORK/pending.txt"; fail "the approved request is still listed"; }
"$SCEPCTL" --data-dir "$DATA" list --pending --json > "$WORK/pending.json" || fail "scepctl list --pending --json"
python3 - "$WORK/pending.json" "$p3_txid" <<'PY' || fail "the JSON listing"
import json, sys, time
entries = {e["transaction_id"]: e for e in json.load(open(sys.argv[1]))}
e = entries[sys.argv[2]]
assert e["status"] == "pending", e
expires = time.mktime(time.strptime(e["expires"], "%Y-%m-%dT%H:%M:%SZ"))
asked = time.mktime(time.strptime(e["time"], "%Y-%m-%dT%H:%M:%SZ"))
assert expires - asked == 7 * 86400, e  # PendingDays = 7
PY
rc=0
"$SCEPCTL" --data-dir "$DATA" list --pending --refused > /dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "--pending with --refused: exit $rc, want 2 (usage)"

check "scepctl reject TXID without --reason: the poll's FAILURE says none was given"
rc=0
ios_enroll "$(challenge)" "CN=rejected without a word" "$WORK/p4.pem" "$URL" --key "$WORK/p4.key" >/dev/null || rc=$?
[ $rc = 3 ] || fail "fourth PKCSReq: exit $rc, want 3"
"$SCEPCTL" --data-dir "$DATA" reject "$(pending_txid)" 2> "$WORK/reject4.err" ||
	{ cat "$WORK/reject4.err"; fail "scepctl reject without --reason"; }
poll poll4 "CN=rejected without a word" p4
[ $rc = 2 ] && grep -q "failInfoText: rejected by the CA operator: no reason given" "$WORK/poll4.log" ||
	{ cat "$WORK/poll4.log"; fail "poll after a reject without reason: exit $rc"; }

check "strongSwan pki polls by itself and gets the certificate once approved"
pending_before=$(grep -c "pending an operator's approval" "$SERVER_LOG")
pki --gen --type rsa --size 2048 --outform pem > "$WORK/pki.key" 2>/dev/null
( pki --scep --url "$URL" --in "$WORK/pki.key" --dn "O=Test, CN=pki pending" --password "$(challenge)" \
	--cacert-enc "$RA_ENC_PEM" --cacert-sig "$RA_SIG_PEM" --cacert "$CA_PEM" \
	--outform pem --interval 1 --maxpolltime 40 > "$WORK/pki.pem" 2> "$WORK/pki.err"; echo $? > "$WORK/pki.rc" ) &
pki_pid=$!
on_exit "kill $pki_pid 2>/dev/null || true"
for _ in $(seq 150); do
	[ "$(grep -c "pending an operator's approval" "$SERVER_LOG")" -gt "$pending_before" ] && break
	sleep 0.2
done
pki_txid=$(pending_txid)
sleep 2 # at least one poll while pending
# Its serial unprintable (stdout on /dev/full): exit 1 saying where to
# find it; the approval is done all the same (pki gets its certificate).
rc=0
"$SCEPCTL" --data-dir "$DATA" approve "$pki_txid" > /dev/full 2> "$WORK/approve-full.err" || rc=$?
[ $rc = 1 ] && grep -q "approved, but its serial [0-9A-F]* could not be written out: see scepctl list" "$WORK/approve-full.err" ||
	{ cat "$WORK/approve-full.err"; fail "approve > /dev/full: exit $rc, want 1 naming the serial"; }
wait $pki_pid || true
[ "$(cat "$WORK/pki.rc")" = 0 ] || { grep -v "failed to load\|could not load" "$WORK/pki.err"; fail "pki exit $(cat "$WORK/pki.rc")"; }
verify_cert "$WORK/pki.pem"

check "GetCert (21) by issuer and serial, signed with a certificate of this CA"
cp "$WORK/p1.key" "$WORK/poll2.key"
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/got.pem" --message-type 21 \
	--issuer-serial "$WORK/pki.pem" --renew-cert "$WORK/poll2.pem" --renew-key "$WORK/poll2.key" \
	> "$WORK/getcert.log" 2>&1 || rc=$?
[ $rc = 0 ] || { cat "$WORK/getcert.log"; fail "GetCert: exit $rc"; }
cmp -s <(openssl x509 -in "$WORK/got.pem" -outform DER) <(openssl x509 -in "$WORK/pki.pem" -outform DER) ||
	fail "GetCert returned another certificate"
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/got2.pem" --message-type 21 \
	--issuer-serial "$WORK/pki.pem" > "$WORK/getcert2.log" 2>&1 || rc=$?
[ $rc = 2 ] || { cat "$WORK/getcert2.log"; fail "GetCert by a self-signed requester: exit $rc, want 2"; }
openssl req -new -x509 -key "$WORK/p2.key" -subj "/CN=stranger" -days 1 -set_serial 77 -out "$WORK/stranger.pem" 2>/dev/null
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/got3.pem" --message-type 21 \
	--issuer-serial "$WORK/stranger.pem" --renew-cert "$WORK/poll2.pem" --renew-key "$WORK/poll2.key" \
	> "$WORK/getcert3.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "^failInfo: badCertId" "$WORK/getcert3.log" || { cat "$WORK/getcert3.log"; fail "unknown serial: exit $rc"; }

check "GetCRL (22) through SCEP: the CA's CRL, listing a revoked serial"
"$SCEPCTL" --data-dir "$DATA" revoke "$serial" --reason superseded 2>/dev/null || fail "revoke"
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/scep.crl" --message-type 22 \
	--issuer-serial "$WORK/poll2.pem" > "$WORK/getcrl.log" 2>&1 || rc=$?
[ $rc = 0 ] || { cat "$WORK/getcrl.log"; fail "GetCRL: exit $rc"; }
openssl crl -in "$WORK/scep.crl" -CAfile "$CA_PEM" -noout 2>&1 | grep -q "verify OK" || fail "the SCEP CRL does not verify"
openssl crl -in "$WORK/scep.crl" -noout -text | grep -q "Serial Number: $serial" || fail "the SCEP CRL does not list $serial"
# GetCert signed by that revoked certificate: refused (it was answered)
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/got4.pem" --message-type 21 \
	--issuer-serial "$WORK/pki.pem" --renew-cert "$WORK/poll2.pem" --renew-key "$WORK/poll2.key" \
	> "$WORK/getcert4.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "failInfoText: the signer certificate is revoked" "$WORK/getcert4.log" ||
	{ cat "$WORK/getcert4.log"; fail "GetCert signed by a revoked certificate: exit $rc"; }

serial32() {
	local v
	v=$(openssl x509 -in "$1" -noout -serial | cut -d= -f2)
	printf '%32s' "$v" | tr ' ' 0
}

# The RA parses a CRL once, for as long as the CA gives the same bytes.
check "GetCRL again: the same CRL; after a hold made final, the CA's new one, as long as the old"
getcrl() {
	rc=0
	"$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/$1.pem" --message-type 22 \
		--issuer-serial "$WORK/poll2.pem" > "$WORK/$1.log" 2>&1 || rc=$?
	[ $rc = 0 ] || { cat "$WORK/$1.log"; fail "GetCRL ($1): exit $rc"; }
	openssl crl -in "$WORK/$1.pem" -outform DER -out "$WORK/$1.der" || fail "GetCRL ($1): not a CRL"
	openssl crl -in "$WORK/$1.pem" -noout -text > "$WORK/$1.txt"
}
getcrl again
cmp -s <(openssl crl -in "$WORK/scep.crl" -outform DER) "$WORK/again.der" ||
	fail "a second GetCRL gave another CRL, nothing revoked meanwhile"
p_serial=$(serial32 "$WORK/pki.pem")
# As openssl prints it: no leading zero bytes.
p_hex=$(openssl x509 -in "$WORK/pki.pem" -noout -serial | cut -d= -f2)
"$SCEPCTL" --data-dir "$DATA" revoke "$p_serial" --reason certificateHold || fail "hold $p_serial"
getcrl held
grep -A5 "Serial Number: $p_hex" "$WORK/held.txt" | grep -q "Certificate Hold" ||
	{ cat "$WORK/held.txt"; fail "GetCRL after a hold does not list $p_serial on hold"; }
"$SCEPCTL" --data-dir "$DATA" revoke "$p_serial" --reason keyCompromise || fail "revoke $p_serial for good"
getcrl final
# Only the entry's reason differs: a cache that looked at the length would
# give the held one.
[ "$(stat -c %s "$WORK/held.der")" = "$(stat -c %s "$WORK/final.der")" ] ||
	fail "the CRLs before and after the hold made final differ in length: this check needs them equal"
grep -A5 "Serial Number: $p_hex" "$WORK/final.txt" | grep -q "Key Compromise" &&
	grep -q "Serial Number: $serial" "$WORK/final.txt" ||
	{ cat "$WORK/final.txt"; fail "GetCRL after the hold made final does not list $p_serial as keyCompromise beside $serial"; }

check "a CertPoll for an approved certificate revoked since: FAILURE, not the revoked certificate"
poll poll_revoked "O=Fabrikam,CN=needs approval" p1
[ $rc = 2 ] && grep -q "^failInfo: badRequest" "$WORK/poll_revoked.log" &&
	grep -q "failInfoText: certificate $serial of this transactionID is revoked: enroll with a new key" "$WORK/poll_revoked.log" ||
	{ cat "$WORK/poll_revoked.log"; fail "poll after revocation: exit $rc"; }

check "approving or rejecting a transaction issued meanwhile (approval switched off, the device asked again): refused, the pending request removed, nothing signed"
rc=0
ios_enroll "$(challenge)" "CN=asked twice" "$WORK/q1.pem" "$URL" --key "$WORK/q1.key" >/dev/null || rc=$?
[ $rc = 3 ] || fail "PKCSReq: exit $rc, want 3 (PENDING)"
q_txid=$(pending_txid)
rc=0
ios_enroll "$(challenge)" "CN=asked twice too" "$WORK/r1.pem" "$URL" --key "$WORK/r1.key" >/dev/null || rc=$?
[ $rc = 3 ] || fail "PKCSReq: exit $rc, want 3 (PENDING)"
r_txid=$(pending_txid)
set_conf template.IPSECIntermediateOffline ApprovalRequired 0
server_restart
ios_enroll "$(challenge)" "CN=asked twice" "$WORK/q2.pem" "$URL" --key "$WORK/q1.key" >/dev/null ||
	fail "the same request without approval required was not issued"
q_serial=$(openssl x509 -in "$WORK/q2.pem" -noout -serial | cut -d= -f2)
ios_enroll "$(challenge)" "CN=asked twice too" "$WORK/r2.pem" "$URL" --key "$WORK/r1.key" >/dev/null ||
	fail "the same request without approval required was not issued"
r_serial=$(openssl x509 -in "$WORK/r2.pem" -noout -serial | cut -d= -f2)
# A rejection would not take the certificate back: it says how to.
rc=0
"$SCEPCTL" --data-dir "$DATA" reject "$r_txid" --reason "too late" > "$WORK/r_reject.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "already issued: serial $r_serial; the pending request is removed; to withdraw it: scepctl revoke $r_serial" "$WORK/r_reject.out" ||
	{ cat "$WORK/r_reject.out"; fail "rejecting an issued transaction: exit $rc"; }
issued_before=$(grep -c "issued serial" "$SERVER_LOG")
rc=0
"$SCEPCTL" --data-dir "$DATA" approve "$q_txid" > "$WORK/q_approve.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "already issued: serial $q_serial; the pending request is removed" "$WORK/q_approve.out" ||
	{ cat "$WORK/q_approve.out"; fail "approving an issued transaction: exit $rc"; }
rc=0
"$SCEPCTL" --data-dir "$DATA" approve "$q_txid" > "$WORK/q_again.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "already issued: serial $q_serial$" "$WORK/q_again.out" ||
	{ cat "$WORK/q_again.out"; fail "the pending request was not removed"; }
[ "$(grep -c "issued serial" "$SERVER_LOG")" = "$issued_before" ] || fail "the approval signed another certificate"
server_restart
! grep -q "journalled but not in the ledger" "$SERVER_LOG" || fail "the approval left a journal entry behind"

check "after PendingDays a poll is told to enroll anew and approval is refused; 7 days later the records are purged (a rejected one 7 days after the decision)"
set_conf template.IPSECIntermediateOffline ApprovalRequired 1
# Eight days on, for the CA's view of pending requests (test hook).
SCEPD_TEST_CA_PENDING_AGE=$((8 * 86400)) server_restart
grep -q "test hook: pending requests are 691200 s older" "$SERVER_LOG" ||
	fail "the CA has no test hooks: build with -DSCEPD_TEST_HOOKS=ON (scripts/test.sh does)"
poll poll_expired "O=Fabrikam,CN=waits for the operator" p3
[ $rc = 2 ] && grep -q "^failInfo: badRequest" "$WORK/poll_expired.log" &&
	grep -q "failInfoText: no operator approved the request within PendingDays = 7: enroll anew" "$WORK/poll_expired.log" ||
	{ cat "$WORK/poll_expired.log"; fail "poll of an expired request: exit $rc"; }
rc=0
"$SCEPCTL" --data-dir "$DATA" approve "$p3_txid" > "$WORK/p3_approve.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "expired (PendingDays)" "$WORK/p3_approve.out" ||
	{ cat "$WORK/p3_approve.out"; fail "approving an expired request: exit $rc"; }
"$SCEPCTL" --data-dir "$DATA" list --pending > "$WORK/pending2.txt" 2>/dev/null || fail "scepctl list --pending"
grep -q "  expired  until .*  $p3_txid  " "$WORK/pending2.txt" || { cat "$WORK/pending2.txt"; fail "not listed as expired"; }
! grep -q "pending request $p3_txid purged" "$SERVER_LOG" || fail "purged before PendingDays + 7 days"
# Rejected 8 days ago: kept 7 days after the operator's decision (the two
# rejected, with and without a reason).
[ "$(grep -c "pending request .* purged" "$SERVER_LOG")" = 2 ] || fail "the rejected requests were not purged"
! grep -q "  rejected  " "$WORK/pending2.txt" || { cat "$WORK/pending2.txt"; fail "the rejected request still listed"; }
# Fifteen days on: expired 8 days ago.
SCEPD_TEST_CA_PENDING_AGE=$((15 * 86400)) server_restart
grep -q "pending request $p3_txid purged" "$SERVER_LOG" || fail "the expired request was not purged"
"$SCEPCTL" --data-dir "$DATA" list --pending > "$WORK/pending3.txt" 2> "$WORK/pending3.err" || fail "scepctl list --pending"
[ ! -s "$WORK/pending3.txt" ] && grep -q "0 of 0 shown" "$WORK/pending3.err" || { cat "$WORK/pending3.txt"; fail "purged records still listed"; }
poll poll_purged "O=Fabrikam,CN=waits for the operator" p3
[ $rc = 2 ] && grep -q "^failInfo: badCertId" "$WORK/poll_purged.log" ||
	{ cat "$WORK/poll_purged.log"; fail "poll of a purged request: exit $rc"; }

check "a pending request whose record cannot be written: 503, and the CA answers the next one too"
from=$(log_mark)
SCEPD_TEST_CA_PENDING_PUT_FAILS=1 server_restart
for i in 1 2; do
	rc=0
	ios_enroll "$(challenge)" "CN=unwritten $i" "$WORK/u$i.pem" >/dev/null || rc=$?
	[ $rc = 1 ] && grep -q "PKIOperation: HTTP 503" "$WORK/u$i.pem.log" ||
		{ cat "$WORK/u$i.pem.log"; fail "pending request $i not written: exit $rc, want an HTTP 503"; }
done
# The second was refused by the CA itself: not left waiting on a write
# transaction the first one left open.
[ "$(tail -n "+$from" "$SERVER_LOG" | grep -c "scepd-ca.*pending write: ")" = 2 ] ||
	{ tail -20 "$SERVER_LOG"; fail "the CA did not refuse both pending requests itself"; }
server_restart
"$SCEPCTL" --data-dir "$DATA" list --pending > /dev/null 2>&1 || fail "scepctl list --pending after the failed writes"


# The serial as the CA writes it: 32 digits (openssl drops a leading 00).
check "approve, then approve again (scepctl gave up waiting) or reject: already issued, with its serial; reject says how to withdraw it"
rc=0
ios_enroll "$(challenge)" "CN=approved then rejected" "$WORK/d1.pem" "$URL" --key "$WORK/d1.key" >/dev/null || rc=$?
[ $rc = 3 ] || fail "PKCSReq: exit $rc, want 3 (PENDING)"
d_txid=$(pending_txid)
d_serial=$("$SCEPCTL" --data-dir "$DATA" approve "$d_txid") || fail "scepctl approve $d_txid"
rc=0
"$SCEPCTL" --data-dir "$DATA" approve "$d_txid" > "$WORK/d_again.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "$d_txid: already issued: serial $d_serial$" "$WORK/d_again.out" ||
	{ cat "$WORK/d_again.out"; fail "approving an approved transaction again: exit $rc"; }
rc=0
"$SCEPCTL" --data-dir "$DATA" reject "$d_txid" --reason "too late" > "$WORK/d_reject.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "$d_txid: already issued: serial $d_serial; to withdraw it: scepctl revoke $d_serial$" "$WORK/d_reject.out" ||
	{ cat "$WORK/d_reject.out"; fail "rejecting an approved transaction: exit $rc"; }
poll d_poll "CN=approved then rejected" d1
[ $rc = 0 ] && [ "$(serial32 "$WORK/d_poll.pem")" = "$d_serial" ] ||
	{ cat "$WORK/d_poll.log"; fail "the approved certificate is not handed out after the refused rejection: exit $rc"; }

check "approving or rejecting a transaction issued meanwhile whose pending record has expired: already issued, not expired"
rc=0
ios_enroll "$(challenge)" "CN=issued then expired" "$WORK/x1.pem" "$URL" --key "$WORK/x1.key" >/dev/null || rc=$?
[ $rc = 3 ] || fail "PKCSReq: exit $rc, want 3 (PENDING)"
x_txid=$(pending_txid)
set_conf template.IPSECIntermediateOffline ApprovalRequired 0
server_restart
ios_enroll "$(challenge)" "CN=issued then expired" "$WORK/x2.pem" "$URL" --key "$WORK/x1.key" >/dev/null ||
	fail "the same request without approval required was not issued"
x_serial=$(serial32 "$WORK/x2.pem")
set_conf template.IPSECIntermediateOffline ApprovalRequired 1
# Eight days on (test hook): its pending record, left, has expired.
SCEPD_TEST_CA_PENDING_AGE=$((8 * 86400)) server_restart
rc=0
"$SCEPCTL" --data-dir "$DATA" approve "$x_txid" > "$WORK/x_approve.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "$x_txid: already issued: serial $x_serial; the pending request is removed$" "$WORK/x_approve.out" ||
	{ cat "$WORK/x_approve.out"; fail "approving an issued transaction with an expired record: exit $rc"; }
rc=0
"$SCEPCTL" --data-dir "$DATA" reject "$x_txid" > "$WORK/x_reject.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "$x_txid: already issued: serial $x_serial; to withdraw it: scepctl revoke $x_serial$" "$WORK/x_reject.out" ||
	{ cat "$WORK/x_reject.out"; fail "rejecting an issued transaction: exit $rc"; }
server_restart

check "approval when the [ca] mapping picks another template than the request was made under: refused, nothing issued"
rc=0
ios_enroll "$(challenge)" "CN=template changed" "$WORK/m1.pem" "$URL" --key "$WORK/m1.key" >/dev/null || rc=$?
[ $rc = 3 ] || fail "PKCSReq: exit $rc, want 3 (PENDING)"
m_txid=$(pending_txid)
for key in SignatureTemplate EncryptionTemplate GeneralPurposeTemplate; do set_conf ca "$key" ClientAuth; done
server_restart
issued_before=$(grep -c "issued serial" "$SERVER_LOG" || true)
rc=0
"$SCEPCTL" --data-dir "$DATA" approve "$m_txid" > "$WORK/m_approve.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "asked under template IPSECIntermediateOffline, but \[ca\] now maps its key usage to template ClientAuth: not issued; reject it, or have the device enroll anew" "$WORK/m_approve.out" ||
	{ cat "$WORK/m_approve.out"; fail "approval under another template: exit $rc"; }
[ "$(grep -c "issued serial" "$SERVER_LOG" || true)" = "$issued_before" ] || fail "a certificate was issued under another template"
"$SCEPCTL" --data-dir "$DATA" list --pending 2>/dev/null | grep -q "  pending  .*  IPSECIntermediateOffline  .*  $m_txid  " ||
	fail "the request no longer waits after the refused approval"
"$SCEPCTL" --data-dir "$DATA" reject "$m_txid" --reason "template changed" 2>/dev/null || fail "scepctl reject $m_txid"
for key in SignatureTemplate EncryptionTemplate GeneralPurposeTemplate; do
	set_conf ca "$key" IPSECIntermediateOffline
done
server_restart

# asks_at OFFSET NAME SUBJECT KEY: a PKCSReq of SUBJECT with $WORK/KEY.key
# and a password made then, the clock OFFSET seconds ahead: PENDING.
asks_at() {
	local rc=0
	at_offset "$1" "$IOS_CLIENT" --url "$URL" --challenge "$(at_offset "$1" "$SCEPCTL" --data-dir "$DATA" challenge)" \
		--subject "$3" --out "$WORK/$2.pem" --force-plus --key "$WORK/$4.key" > "$WORK/$2.log" 2>&1 || rc=$?
	[ $rc = 3 ] || { cat "$WORK/$2.log"; fail "$2: exit $rc, want 3 (PENDING)"; }
}
# approval_crashes OFFSET TXID: the server restarted OFFSET seconds ahead
# with a CA that crashes after journalling its first certificate, and
# scepctl approve TXID, which it crashes in; the server left stopped.
approval_crashes() {
	local from rc=0
	server_stop
	from=$(log_mark)
	SCEPD_TEST_CA_CRASH=journal:1 at_offset "$1" server_start
	at_offset "$1" "$SCEPCTL" --data-dir "$DATA" approve "$2" > "$WORK/approve-crash.out" 2>&1 || rc=$?
	[ $rc = 1 ] || { cat "$WORK/approve-crash.out"; fail "the approval the CA crashed in: exit $rc"; }
	for _ in $(seq 100); do logged "$from" "test hook: crashing after 'journal'" && break; sleep 0.1; done
	logged "$from" "test hook: crashing after 'journal' of transaction $2" || fail "the CA did not crash after 'journal'"
	server_stop
}
# made_that_day PEM OFFSET: PEM is valid from the day OFFSET seconds ahead
# (its notBefore the CA's now less a few minutes), not backdated.
made_that_day() {
	local nb
	nb=$(date -d "$(openssl x509 -in "$1" -noout -startdate | cut -d= -f2)" +%s)
	[ $((nb + 3600)) -gt $(($(date +%s) + $2)) ] ||
		fail "$1, approved $2 s ahead, is valid from $(openssl x509 -in "$1" -noout -startdate): backdated"
}

check "rejected after an approval the CA crashed in (after the journal): no journal record left; enrolled again after the purge, the approval makes a certificate of that day"
asks_at 0 c1 "CN=crashed approval" c1
c_txid=$(pending_txid)
approval_crashes 0 "$c_txid"
from=$(log_mark)
server_start
logged "$from" "1 certificate(s) journalled but not in the ledger" || fail "the crash left no journal record"
"$SCEPCTL" --data-dir "$DATA" reject "$c_txid" --reason "changed my mind" 2>/dev/null || fail "scepctl reject $c_txid"
from=$(log_mark)
server_restart
! logged "$from" "journalled but not in the ledger" || fail "the rejection left the journal record behind"
# Fifteen days on the rejected record is purged; the same key asks again.
later() { at_offset $((15 * 86400)) "$@"; }
server_stop
from=$(log_mark)
later server_start
logged "$from" "pending request $c_txid purged" || fail "the rejected request was not purged"
asks_at $((15 * 86400)) c2 "CN=crashed approval" c1
later "$SCEPCTL" --data-dir "$DATA" approve "$c_txid" > /dev/null 2>&1 || fail "scepctl approve $c_txid"
later poll c_poll "CN=crashed approval" c1
[ $rc = 0 ] || { cat "$WORK/c_poll.log"; fail "CertPoll after the approval: exit $rc"; }
made_that_day "$WORK/c_poll.pem" $((15 * 86400))

check "a CertPoll for an approved certificate expired since: FAILURE, not the expired certificate"
# Approved on day 15 (the clock of the check above), polled on day 415.
asks_at $((15 * 86400)) e1 "CN=expires unpolled" e1
e_serial=$(later "$SCEPCTL" --data-dir "$DATA" approve "$(pending_txid)" 2>/dev/null) || fail "scepctl approve"
server_stop
at_offset $((415 * 86400)) server_start
at_offset $((415 * 86400)) poll e_poll "CN=expires unpolled" e1
[ $rc = 2 ] && grep -q "^failInfo: badRequest" "$WORK/e_poll.log" &&
	grep -q "failInfoText: certificate $e_serial of this transactionID has expired: enroll with a new key" "$WORK/e_poll.log" ||
	{ cat "$WORK/e_poll.log"; fail "poll after the certificate expired: exit $rc"; }
# GetCert signed by a certificate of this CA that has expired since
# (x2.pem, issued on day 0 for a year): refused, naming why.
rc=0
at_offset $((415 * 86400)) "$IOS_CLIENT" --url "$URL" --subject "CN=x" --out "$WORK/got5.pem" --message-type 21 \
	--issuer-serial "$WORK/x2.pem" --renew-cert "$WORK/x2.pem" --renew-key "$WORK/x1.key" \
	> "$WORK/getcert5.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "failInfoText: the signer certificate has expired" "$WORK/getcert5.log" ||
	{ cat "$WORK/getcert5.log"; fail "GetCert signed by an expired certificate: exit $rc, want 2 naming the expiry"; }

check "an approval the CA crashed in (after the journal), the request expired unpurged and asked again: its approval makes a certificate of that day"
# Day 415 (the clock above): PENDING, the approval crashes after the
# journal; on day 424 the record has expired (PendingDays = 7), not yet
# been purged (7 days later), and the same key asks again.
at424() { at_offset $((424 * 86400)) "$@"; }
asks_at $((415 * 86400)) xe1 "CN=crashed and expired" xe1
x_txid=$(pending_txid)
approval_crashes $((415 * 86400)) "$x_txid"
from=$(log_mark)
at424 server_start
logged "$from" "1 certificate(s) journalled but not in the ledger" || fail "the crash left no journal record"
! logged "$from" "pending request $x_txid purged" || fail "the expired request was purged already: this check needs it kept"
asks_at $((424 * 86400)) x2 "CN=crashed and expired" xe1
at424 "$SCEPCTL" --data-dir "$DATA" approve "$x_txid" > /dev/null 2>&1 || fail "scepctl approve $x_txid"
at424 poll x_poll "CN=crashed and expired" xe1
[ $rc = 0 ] || { cat "$WORK/x_poll.log"; fail "CertPoll after the approval: exit $rc"; }
made_that_day "$WORK/x_poll.pem" $((424 * 86400))
server_stop

pass "PENDING, CertPoll, approve, reject, badCertId; pki polling; GetCert and GetCRL; approval of a transaction issued meanwhile; scepctl list --pending; expiry and purge of pending requests; a record that cannot be written"
