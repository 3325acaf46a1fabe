#!/usr/bin/env bash
# Backup and restore as README "Backup and restore" says: the commands run
# while the server serves and a device enrolls; the copy restored into
# another directory serves the ledger as it was (its certificates listed
# and renewed, its revocation on the CRL); what came after the backup is
# not in it (a later certificate's renewal refused, naming the ledger);
# passwords are not restored (one outstanding at the backup is refused);
# enrollment works.
. "$(dirname "$0")/lib.sh"
interop_init backup
command -v mdb_copy >/dev/null || fail "mdb_copy is missing: scripts/deps.sh installs lmdb-utils"
server_start
server_stop
cat >> "$DATA/scepd.conf" <<'CONF'

[template.IPSECIntermediateOffline]
RenewalWindow = 100
CONF
server_start
fetch_ca_chain
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }

check "before the backup: a certificate, another revoked, a password not yet used"
ios_enroll "$(challenge)" "O=Backup,CN=kept" "$WORK/kept.pem" "$URL" --key "$WORK/kept.key" >/dev/null ||
	fail "enrollment before the backup"
ios_enroll "$(challenge)" "O=Backup,CN=revoked" "$WORK/revoked.pem" >/dev/null || fail "second enrollment"
revoked=$(serial "$WORK/revoked.pem")
"$SCEPCTL" --data-dir "$DATA" revoke "$revoked" --reason keyCompromise >/dev/null || fail "scepctl revoke $revoked"
unused=$(challenge)

check "the backup, README's commands, taken while a device enrolls"
pw=$(challenge)
ios_enroll "$pw" "O=Backup,CN=during" "$WORK/during.pem" >/dev/null &
during=$!
B=$WORK/backup D=$DATA
mkdir -p "$B/db/ca" && mdb_copy -c "$D/db/ca" "$B/db/ca" || fail "mdb_copy"
cp -a "$D/scepd.conf" "$D/ca" "$D/ra" "$D/admin" "$D/secrets" "$B/" || fail "cp"
[ ! -d "$D/keys" ] || cp -a "$D/keys" "$B/" || fail "cp keys"
wait $during || fail "the enrollment during the backup"

check "after the backup: a certificate the copy does not hold"
ios_enroll "$(challenge)" "O=Backup,CN=after" "$WORK/after.pem" "$URL" --key "$WORK/after.key" >/dev/null ||
	fail "enrollment after the backup"
server_stop

check "restored into another directory: the ledger as it was, its revocation on the CRL"
mv "$DATA" "$WORK/lost"
DATA=$WORK/restored
mv "$B" "$DATA"
server_start
"$SCEPCTL" --data-dir "$DATA" list --json > "$WORK/list.json" || fail "scepctl list"
for s in "$(serial "$WORK/kept.pem")" "$revoked"; do
	grep -qi "$s" "$WORK/list.json" || { cat "$WORK/list.json"; fail "serial $s is not in the restored ledger"; }
done
! grep -qi "$(serial "$WORK/after.pem")" "$WORK/list.json" || fail "the certificate issued after the backup is in the copy"
"$SCEPCTL" --data-dir "$DATA" show "$revoked" | grep -q '"revoked"' || fail "the revoked certificate is not revoked after the restore"
curl -sf "$BASE/crl/ca.crl" -o "$WORK/ca.crl" || fail "the CRL"
openssl crl -inform DER -in "$WORK/ca.crl" -noout -text | grep -qi "Serial Number: *$revoked" ||
	fail "the revocation made before the backup is not on the restored CA's CRL"

check "a certificate of the copy renews; one issued after the backup is refused, naming the ledger"
"$IOS_CLIENT" --url "$URL" --subject "O=Backup,CN=kept" --out "$WORK/kept2.pem" --message-type 17 \
	--renew-cert "$WORK/kept.pem" --renew-key "$WORK/kept.key" --key "$WORK/kept.key" > "$WORK/kept2.log" 2>&1 ||
	{ cat "$WORK/kept2.log"; fail "the renewal of a certificate in the copy"; }
verify_cert "$WORK/kept2.pem"
rc=0
"$IOS_CLIENT" --url "$URL" --subject "O=Backup,CN=after" --out "$WORK/after2.pem" --message-type 17 \
	--renew-cert "$WORK/after.pem" --renew-key "$WORK/after.key" --key "$WORK/after.key" > "$WORK/after2.log" 2>&1 || rc=$?
[ $rc != 0 ] && grep -q "is not in this CA's ledger" "$WORK/after2.log" ||
	{ cat "$WORK/after2.log"; fail "the renewal of a certificate issued after the backup: exit $rc, want a FAILURE naming the ledger"; }

check "passwords are not restored: one outstanding at the backup is refused; a new one enrolls"
rc=0
ios_enroll "$unused" "O=Backup,CN=old password" "$WORK/old-pw.pem" >/dev/null || rc=$?
[ $rc != 0 ] || fail "a password issued before the backup enrolled after the restore"
ios_enroll "$(challenge)" "O=Backup,CN=new" "$WORK/new.pem" >/dev/null || fail "enrollment after the restore"
verify_cert "$WORK/new.pem"
pass "backup while serving, restore elsewhere: ledger, revocations and renewals kept; later certificates and passwords not"
