#!/usr/bin/env bash
# certmonger (Debian 0.79.17) enrolling from scepd through its own SCEP
# helper, run privately: its own D-Bus bus, its own state directories, no
# system service touched.
#
# Quirks found while writing this test:
#  - The state goes where CERTMONGER_CONFIG_DIR, CERTMONGER_REQUESTS_DIR,
#    CERTMONGER_CAS_DIR, CERTMONGER_LOCAL_CA_DIR and CERTMONGER_TMPDIR
#    say. With -s it chdir()s to the config dir first: a relative -p
#    pidfile fails and the daemon exits.
#  - The stock session bus configuration can activate
#    /usr/lib/certmonger/certmonger-session by itself when getcert talks
#    before our daemon owns its name: the private bus here has no service
#    directories, so only the daemon this test started answers.
#  - Its helper (/usr/lib/certmonger/scep-submit) reads GetCACaps and
#    logs "Server supports AES, using AES256." and "Server supports
#    SHA-256, using that.": AES-256-CBC and SHA-256 (it prefers SHA-256
#    even when SHA-512 is offered).
#  - -N "CN=certmonger client,O=Fabrikam" is read as an RFC 4514 string:
#    the CSR holds O first, then CN.
#  - It sends PKIOperation by GET (never POST), and reads the reply only
#    if its Content-Type is exactly application/x-pki-message.
#  - It picks the GetCACert certificate that issued nothing, preferring
#    keyEncipherment, as the recipient; it verifies the CertRep with
#    OpenSSL's PKCS7_verify against the CA and RA certificates, so the RA
#    signing certificate must chain to the CA and pass the S/MIME purpose
#    check (micromdm's scepserver, which signs with a keyCertSign-only CA
#    certificate, fails here with "certificate verify error").
#  - The challenge goes in with -L (challengePassword in the CSR).
. "$(dirname "$0")/lib.sh"
interop_init certmonger
server_start
fetch_ca_chain

cm="$WORK/cm"
check "a private D-Bus session bus and certmonger on it"
certmonger_start "$cm"

check "getcert add-scep-ca"
getcert add-scep-ca -s -c scepd -u "$URL" > "$cm/add-ca.out" 2>&1 ||
	{ cat "$cm/add-ca.out"; fail "getcert add-scep-ca failed"; }
sed 's/^/   | /' "$cm/add-ca.out"

check "getcert request with a one-time challenge; wait for MONITORING (60 s at most)"
pw=$(challenge)
getcert request -s -c scepd -I cmtest -g 2048 -k "$cm/certs/key.pem" -f "$cm/certs/cert.pem" \
	-L "$pw" -N "CN=certmonger client,O=Fabrikam" > "$cm/request.out" 2>&1 ||
	{ cat "$cm/request.out"; fail "getcert request failed"; }
status=
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
	status=$(getcert list -s -i cmtest 2>/dev/null | sed -n 's/^[[:space:]]*status: //p')
	case "$status" in
	MONITORING | CA_REJECTED | NEED_GUIDANCE | CA_UNCONFIGURED) break ;;
	esac
	sleep 1
done
getcert list -s -i cmtest | sed 's/^/   | /'
grep -E "Server supports|using AES|using DES" "$cm/certmonger.log" | sed 's/.*\] /   certmonger: /' | sort -u
[ "$status" = MONITORING ] ||
	{ grep -iE "error|fail|reject" "$cm/certmonger.log" | tail -20; fail "certmonger request status $status, want MONITORING"; }

check "the certificate certmonger saved verifies"
verify_cert "$cm/certs/cert.pem"
openssl x509 -in "$cm/certs/cert.pem" -noout -subject | grep -q "CN = certmonger client" ||
	fail "issued subject: $(openssl x509 -in "$cm/certs/cert.pem" -noout -subject)"

# wait_status ID: until MONITORING (or a final state), 90 s at most
wait_status() {
	local deadline=$((SECONDS + 90))
	status=
	while [ $SECONDS -lt $deadline ]; do
		status=$(getcert list -s -i "$1" 2>/dev/null | sed -n 's/^[[:space:]]*status: //p')
		case "$status" in
		MONITORING | CA_REJECTED | NEED_GUIDANCE | CA_UNCONFIGURED) return ;;
		esac
		sleep 1
	done
}

check "getcert resubmit renews: signed with the certificate it has, a new certificate"
# certmonger signs with the certificate it holds ("Signing using
# previously-issued key and cert"): a renewal, allowed here at any time.
printf '\n[template.IPSECIntermediateOffline]\nRenewalWindow = 100\n' >> "$DATA/scepd.conf"
server_restart
old_serial=$(openssl x509 -in "$cm/certs/cert.pem" -noout -serial)
getcert resubmit -s -i cmtest > "$cm/resubmit.out" 2>&1 || { cat "$cm/resubmit.out"; fail "getcert resubmit"; }
for _ in $(seq 90); do
	[ "$(openssl x509 -in "$cm/certs/cert.pem" -noout -serial 2>/dev/null)" != "$old_serial" ] && break
	sleep 1
done
wait_status cmtest
getcert list -s -i cmtest | grep -E "status|ca-error" | sed 's/^/   | /'
[ "$(openssl x509 -in "$cm/certs/cert.pem" -noout -serial)" != "$old_serial" ] ||
	{ grep -iE "error|fail|reject" "$cm/certmonger.log" | tail -10; tail -20 "$SERVER_LOG"; fail "certmonger kept its old certificate"; }
verify_cert "$cm/certs/cert.pem"
grep -q "renewing" "$SERVER_LOG" || fail "the CA did not handle certmonger's resubmission as a renewal"

check "under ApprovalRequired = 1 certmonger waits (CA_WORKING) and gets the certificate once approved"
printf 'ApprovalRequired = 1\n' >> "$DATA/scepd.conf"
server_restart
getcert request -s -c scepd -I cmpending -g 2048 -k "$cm/certs/pkey.pem" -f "$cm/certs/pcert.pem" \
	-L "$(challenge)" -N "CN=certmonger pending" > "$cm/prequest.out" 2>&1 ||
	{ cat "$cm/prequest.out"; fail "getcert request (pending)"; }
for _ in $(seq 60); do
	grep -q "pending an operator's approval" "$SERVER_LOG" && break
	sleep 1
done
txid=$(grep "pending an operator's approval" "$SERVER_LOG" | tail -1 | sed -n 's/.* txid=\([^ :]*\).*/\1/p')
[ -n "$txid" ] || fail "certmonger's request did not become pending"
sleep 3
getcert list -s -i cmpending | grep -E "status|ca-error" | sed 's/^/   | /'
"$SCEPCTL" --data-dir "$DATA" approve "$txid" > /dev/null || fail "scepctl approve $txid"
# certmonger's own poll comes after a long delay; resubmit makes it ask now:
# it re-sends its PKCSReq, the same transaction, which gets the approved
# certificate (a CertPoll would too; test_pending.sh covers that path).
getcert resubmit -s -i cmpending > /dev/null 2>&1 || fail "getcert resubmit (pending)"
wait_status cmpending
getcert list -s -i cmpending | grep -E "status|ca-error" | sed 's/^/   | /'
[ "$status" = MONITORING ] || { tail -20 "$cm/certmonger.log"; fail "certmonger after approval: $status"; }
verify_cert "$cm/certs/pcert.pem"
grep -q "poll: approved\|retry (client .*): the same certificate, serial 0*$(openssl x509 -in "$cm/certs/pcert.pem" -noout -serial | cut -d= -f2)" "$SERVER_LOG" ||
	fail "certmonger's certificate did not come from the approved transaction"

pass "certmonger enrolled over SCEP on a private bus, renewed, and got a pending request once approved"
