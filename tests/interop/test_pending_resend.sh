#!/usr/bin/env bash
# A device that collects its certificate by sending its PKCSReq again (as
# certmonger does), after its password's time: a used password stays its
# transaction's for 7 days after it expires, a request may wait
# PendingDays (here 30) for an operator. The RA answers such a request as
# a CertPoll by the same key (PENDING, then the approved certificate);
# another key, or an unknown transaction, still gets the password's
# refusal.
. "$(dirname "$0")/lib.sh"
interop_init pending_resend
faketime_lib
server_start
fetch_ca_chain
server_stop
cat >> "$DATA/scepd.conf" <<'CONF'

[template.IPSECIntermediateOffline]
ApprovalRequired = 1
CONF
set_conf ca PendingDays 30
server_start

# resend NAME KEY: the PKCSReq of KEY with $pw sent again; sets rc
resend() {
	rc=0
	"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=resent" --out "$WORK/$1.pem" \
		--key "$WORK/$2.key" > "$WORK/$1.log" 2>&1 || rc=$?
}

check "day 0: the PKCSReq waits for an operator (PENDING)"
pw=$(challenge)
rc=0
ios_enroll "$pw" "CN=resent" "$WORK/day0.pem" "$URL" --key "$WORK/dev.key" > /dev/null || rc=$?
[ $rc = 3 ] || { cat "$WORK/day0.pem.log"; fail "PKCSReq: exit $rc, want 3 (PENDING)"; }
txid=$(grep "pending an operator's approval" "$SERVER_LOG" | tail -1 | sed -n 's/.* txid=\([^ :]*\).*/\1/p')
[ -n "$txid" ] || fail "the CA did not log the pending transaction"
server_stop

check "day 10 (the password expired 10 days ago, used): sent again it is still PENDING, not a password FAILURE"
at_offset 10d server_start
resend day10 dev
[ $rc = 3 ] && grep -q "^pkiStatus: PENDING" "$WORK/day10.log" ||
	{ cat "$WORK/day10.log"; fail "the PKCSReq sent again on day 10: exit $rc, want 3 (PENDING)"; }
grep -q "the password refused, the CA knows this key's transaction: answered as a CertPoll (PENDING)" "$SERVER_LOG" ||
	fail "the RA did not log why it answered PENDING"

check "another key sending that password under its own transaction gets the password's refusal"
resend day10other other
[ $rc = 2 ] && grep -q "^failInfo: badRequest" "$WORK/day10other.log" &&
	grep -q "challenge password" "$WORK/day10other.log" ||
	{ cat "$WORK/day10other.log"; fail "another key with the expired password: exit $rc, want 2 (the password's FAILURE)"; }

check "approved on day 10: the PKCSReq sent again gets the certificate"
at_offset 10d "$SCEPCTL" --data-dir "$DATA" approve "$txid" > "$WORK/serial" || fail "scepctl approve"
resend day10b dev
[ $rc = 0 ] || { cat "$WORK/day10b.log"; fail "the PKCSReq sent again after approval: exit $rc, want 0"; }
[ "$(openssl x509 -in "$WORK/day10b.pem" -noout -serial | cut -d= -f2)" = "$(cat "$WORK/serial")" ] ||
	fail "the certificate is not the approved serial"
cmp -s <(openssl x509 -in "$WORK/day10b.pem" -noout -pubkey) <(openssl pkey -in "$WORK/dev.key" -pubout) ||
	fail "the certificate does not hold the device's key"
server_stop

pass "a PKCSReq sent again after its password's time gets what a CertPoll gets: PENDING, then the approved certificate; another key the password's refusal"
