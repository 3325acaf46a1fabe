#!/usr/bin/env bash
# Backup and restore as README "Backup and restore" says: its commands run
# three times while devices enroll; the last copy, restored into another
# directory and put right as the README says (passwords not yet presented
# withdrawn, revocations since the backup done again from the log), serves
# the ledger as it was: its certificates listed and renewed, revocations on
# the CRL and refusing renewal; what came after the backup is not in it (a
# later certificate's renewal refused naming the ledger; it is revoked with
# --not-in-ledger); passwords issued before the backup are refused; enrollment works.
# A device whose subject reads "revoked serial <another's serial>" in the
# CA's log does not make the restore revoke that certificate.
# Another copy gets the revocations since the backup from the CRL served
# last (scepctl import-crl), with their dates.
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
# renew NAME: RenewalReq signed with NAME.pem and NAME.key, its output in
# NAME-renewed.log; returns the client's status.
renew() {
	"$IOS_CLIENT" --url "$URL" --subject "O=Backup,CN=$1" --out "$WORK/$1-renewed.pem" --message-type 17 \
		--renew-cert "$WORK/$1.pem" --renew-key "$WORK/$1.key" --key "$WORK/$1.key" > "$WORK/$1-renewed.log" 2>&1
}
enroll() { ios_enroll "$1" "O=Backup,CN=$2" "$WORK/$2.pem" "$URL" --key "$WORK/$2.key" >/dev/null || fail "enrollment of $2"; }

check "before the backup: certificates, one revoked, two passwords not yet presented"
enroll "$(challenge)" kept
enroll "$(challenge)" revoked
enroll "$(challenge)" late_revoked
"$SCEPCTL" --data-dir "$DATA" revoke "$(serial "$WORK/revoked.pem")" --reason keyCompromise >/dev/null 2>&1 ||
	fail "scepctl revoke"
unused=$(challenge)
later=$(challenge)

check "README's backup, three times while devices enroll"
rm -f "$WORK/enrolled" "$WORK/stop"
(
	i=0
	while [ ! -e "$WORK/stop" ]; do
		i=$((i + 1))
		ios_enroll "$(challenge)" "O=Backup,CN=during $i" "$WORK/during.pem" >/dev/null || { echo failed >> "$WORK/enrolled"; exit 1; }
		echo "$i" >> "$WORK/enrolled"
	done
) &
loop=$!
enrolled() { if [ -f "$WORK/enrolled" ]; then grep -c '^[0-9]' "$WORK/enrolled" || true; else echo 0; fi; }
for n in 1 2 3; do
	# After another enrollment, with the next under way.
	for _ in $(seq 100); do [ "$(enrolled)" -ge $n ] && break; sleep 0.1; done
	[ "$(enrolled)" -ge $n ] || fail "the devices' enrollments stopped"
	(
		# The README's lines, its paths set for this test.
		umask 077   # the copy holds keys, subjects and client addresses
		B=$WORK/backup-$n D=$DATA
		mkdir -p "$B/db/ca" "$B/db/challenge"
		mdb_copy -c "$D/db/ca" "$B/db/ca"
		mdb_copy -c "$D/db/challenge" "$B/db/challenge"
		cp -a "$D/scepd.conf" "$D/ca" "$D/ra" "$D/admin" "$D/secrets" "$B/"
		if [ -d "$D/keys" ]; then cp -a "$D/keys" "$B/"; fi
	) || fail "backup $n"
done
touch "$WORK/stop"
wait $loop || fail "an enrollment failed while the backups were taken: $(tr '\n' ' ' < "$WORK/enrolled")"
[ "$(stat -c %a "$WORK/backup-3/db/ca/data.mdb")" = 600 ] || fail "the ledger's copy is not mode 0600"
echo "   $(enrolled) enrollments while three copies were taken"
mark=$(log_mark)

check "after the backup: a certificate issued, one revoked, a password used; a device's subject reads as a revocation"
enroll "$(challenge)" after
# Its subject in the CA's line of its issuance reads "revoked serial
# <kept's> (keyCompromise)": the restore must not revoke kept.
victim=$(serial "$WORK/kept.pem")
ios_enroll "$(challenge)" "O=Backup,CN=revoked serial $victim (keyCompromise)" "$WORK/forger.pem" "$URL" >/dev/null ||
	fail "enrollment of the device whose subject reads as a revocation"
logged "$mark" "issued serial .* to \"O=Backup,CN=revoked serial $victim (keyCompromise)\"" ||
	fail "the CA's log does not show the device's subject as it was chosen"
enroll "$later" later
"$SCEPCTL" --data-dir "$DATA" revoke "$(serial "$WORK/late_revoked.pem")" --reason superseded >/dev/null 2>&1 ||
	fail "scepctl revoke after the backup"
# What the distribution point served last (the frontend's first GetCRL:
# nothing cached).
curl -sf "$BASE/crl/ca.crl" -o "$WORK/published.crl" || fail "the CRL"
server_stop

check "restored into another directory and put right as the README says"
mv "$DATA" "$WORK/lost"
DATA=$WORK/restored
mv "$WORK/backup-3" "$DATA"
server_start
"$SCEPCTL" --data-dir "$DATA" challenge --revoke-unused --pool all > "$WORK/withdrawn.out" 2>&1 ||
	{ cat "$WORK/withdrawn.out"; fail "challenge --revoke-unused --pool all"; }
# The revocations the old server's log shows since the backup, done again:
# README's pattern, the CA's own lines by their start.
tail -n "+$mark" "$SERVER_LOG" |
	grep -E '^[^ ]+ scepd-ca\[[0-9]+\] warn( req=[0-9]+)?: (revoked|released) serial ' |
	sed -En 's/^[^ ]+ scepd-ca\[[0-9]+\] warn( req=[0-9]+)?: revoked serial ([0-9A-F]+) \(([A-Za-z]+).*/\2 \3/p' > "$WORK/redo"
[ -s "$WORK/redo" ] || fail "the log names no revocation since the backup"
[ "$(wc -l < "$WORK/redo")" = 1 ] && grep -qix "0*$(serial "$WORK/late_revoked.pem" | sed 's/^0*//') superseded" "$WORK/redo" ||
	{ cat "$WORK/redo"; fail "the revocations to redo: want late_revoked's alone"; }
while read -r s reason; do
	"$SCEPCTL" --data-dir "$DATA" revoke "$s" --reason "$reason" >/dev/null 2>&1 || fail "revoke $s again"
done < "$WORK/redo"

check "the ledger as it was; both revocations on the CRL"
"$SCEPCTL" --data-dir "$DATA" list --json > "$WORK/list.json" || fail "scepctl list"
for c in kept revoked late_revoked; do
	grep -qi "$(serial "$WORK/$c.pem")" "$WORK/list.json" || fail "$c is not in the restored ledger"
done
! grep -qi "$(serial "$WORK/after.pem")" "$WORK/list.json" || fail "the certificate issued after the backup is in the copy"
curl -sf "$BASE/crl/ca.crl" -o "$WORK/ca.crl" || fail "the CRL"
for c in revoked late_revoked; do
	openssl crl -inform DER -in "$WORK/ca.crl" -noout -text | grep -qi "Serial Number: *$(serial "$WORK/$c.pem")" ||
		fail "$c is not on the restored CA's CRL"
done
! openssl crl -inform DER -in "$WORK/ca.crl" -noout -text | grep -qi "Serial Number: *$victim" ||
	fail "kept is on the restored CA's CRL: the restore took a device's subject for a revocation"

check "renewals: one of the copy renewed; one revoked since refused; one issued since refused, naming the ledger, and revoked by serial alone"
renew kept || { cat "$WORK/kept-renewed.log"; fail "the renewal of a certificate in the copy"; }
verify_cert "$WORK/kept-renewed.pem"
! renew late_revoked && grep -q "failInfoText: certificate .* is revoked: enroll anew" "$WORK/late_revoked-renewed.log" ||
	{ cat "$WORK/late_revoked-renewed.log"; fail "a certificate revoked after the backup, revoked again after the restore: want its renewal refused as revoked"; }
! renew after && grep -q "failInfoText: .*is not in this CA's ledger" "$WORK/after-renewed.log" ||
	{ cat "$WORK/after-renewed.log"; fail "the renewal of a certificate issued after the backup: want a FAILURE naming the ledger"; }
rc=0
"$SCEPCTL" --data-dir "$DATA" revoke "$(serial "$WORK/after.pem")" > "$WORK/revoke-after.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "no such serial in the ledger.*--not-in-ledger" "$WORK/revoke-after.out" ||
	{ cat "$WORK/revoke-after.out"; fail "revoking a certificate the copy does not know: exit $rc, want 1 naming --not-in-ledger"; }
"$SCEPCTL" --data-dir "$DATA" revoke "$(serial "$WORK/after.pem")" --not-in-ledger --reason keyCompromise > "$WORK/revoke-after.out" 2>&1 ||
	{ cat "$WORK/revoke-after.out"; fail "revoking it with --not-in-ledger"; }
# The frontend keeps the CRL a minute: a restart fetches it anew.
server_restart
curl -sf "$BASE/crl/ca.crl" -o "$WORK/ca2.crl" || fail "the CRL"
openssl crl -inform DER -in "$WORK/ca2.crl" -noout -text | grep -qi "Serial Number: *$(serial "$WORK/after.pem")" ||
	fail "the certificate issued after the backup, revoked with --not-in-ledger, is not on the CRL"

check "passwords: both issued before the backup refused (one presented since), a new one enrolls"
for pw in "$unused" "$later"; do
	rc=0
	"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "O=Backup,CN=old password" \
		--out "$WORK/old-pw.pem" > "$WORK/old-pw.log" 2>&1 || rc=$?
	[ $rc != 0 ] && grep -q "failInfoText: challenge password" "$WORK/old-pw.log" ||
		{ cat "$WORK/old-pw.log"; fail "a password issued before the backup: exit $rc, want its refusal"; }
done
enroll "$(challenge)" new
verify_cert "$WORK/new.pem"

check "another copy, its revocations put back from the CRL served last (scepctl import-crl): one since the backup at its date, one the copy had left as it was"
server_stop
DATA=$WORK/restored2
mv "$WORK/backup-2" "$DATA"
server_start
"$SCEPCTL" --data-dir "$DATA" import-crl "$WORK/published.crl" > "$WORK/import.out" 2>&1 ||
	{ cat "$WORK/import.out"; fail "import-crl of the CRL served last"; }
grep -q "2 entries: 1 put on the CRL, 0 made final from a hold, 1 there already" "$WORK/import.out" ||
	{ cat "$WORK/import.out"; fail "import-crl: want the revocation since the backup put back, the copy's left"; }
curl -sf "$BASE/crl/ca.crl" -o "$WORK/ca3.crl" || fail "the CRL"
# entry FILE SERIAL: its serial's entry, date and reason, on the CRL FILE.
entry() {
	openssl crl -inform DER -in "$1" -noout -text |
		awk -v s="$2" '/Serial Number:/ { on = (toupper($3) == toupper(s)) } /Signature Algorithm/ { on = 0 } on { $1 = $1; print }'
}
entry "$WORK/published.crl" "$(serial "$WORK/late_revoked.pem")" > "$WORK/entry-published"
entry "$WORK/ca3.crl" "$(serial "$WORK/late_revoked.pem")" > "$WORK/entry-restored"
[ -s "$WORK/entry-published" ] && cmp -s "$WORK/entry-published" "$WORK/entry-restored" ||
	{ diff "$WORK/entry-published" "$WORK/entry-restored"; fail "the revocation since the backup is not on the restored CRL as it was published (date, reason)"; }
! renew late_revoked && grep -q "failInfoText: certificate .* is revoked: enroll anew" "$WORK/late_revoked-renewed.log" ||
	{ cat "$WORK/late_revoked-renewed.log"; fail "a certificate revoked after the backup, imported from the CRL: want its renewal refused as revoked"; }
pass "backup while devices enroll, restore elsewhere put right: ledger, revocations and renewals as they were; later certificates and old passwords not; revocations back from the CRL served last"
