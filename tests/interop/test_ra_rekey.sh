#!/usr/bin/env bash
# The RA's certificates replaced with new keys (NDES's RA certificates
# renewed with new keys): devices that fetched the earlier ones (a
# network device keeps them until it authenticates the CA again, a
# frontend's cache serves them for minutes) still encrypt to the earlier
# encryption certificate. Without [ra] PreviousEncryptionCertificate
# their envelopes do not open (the answer is any envelope's that does not
# open; the RA's log names the setting); with it and its key they open
# with that key, logged. The reply, signed with the new signing key,
# carries its certificate: the client checks it against the CA.
# Client: strongSwan's pki, given the earlier certificates as files.
. "$(dirname "$0")/lib.sh"
interop_init ra_rekey
server_start
fetch_ca_chain
cp "$RA_ENC_PEM" "$WORK/old-ra-enc.pem"
cp "$RA_SIG_PEM" "$WORK/old-ra-sign.pem"
server_stop

# New keys and certificates; the earlier encryption pair kept aside. The
# new encryption certificate ends in 10 days: the RA warns at start.
mv "$DATA/ra/ra-enc.key" "$DATA/ra/previous-ra-enc.key"
cp "$DATA/ra/ra-enc.pem" "$DATA/ra/previous-ra-enc.pem"
serial=0x5eed
for r in sign:730:digitalSignature enc:10:keyEncipherment,dataEncipherment; do
	n=${r%%:*}
	days=${r#*:}
	days=${days%%:*}
	openssl genrsa -out "$DATA/ra/ra-$n.key" 2048 2>/dev/null
	chmod 600 "$DATA/ra/ra-$n.key"
	openssl req -new -key "$DATA/ra/ra-$n.key" -subj "/CN=scepd-MSCEP-RA" -out "$WORK/$n.csr"
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' \
		"${r##*:}" > "$WORK/$n.ext"
	openssl x509 -req -in "$WORK/$n.csr" -CA "$DATA/ca/ca.pem" -CAkey "$DATA/ca/ca.key" -set_serial $((serial++)) \
		-days "$days" -extfile "$WORK/$n.ext" -out "$DATA/ra/ra-$n.pem" 2>/dev/null || fail "the new RA $n certificate"
done
server_start
fetch_ca_chain
for n in enc sign; do
	cur=$RA_ENC_PEM
	[ $n = sign ] && cur=$RA_SIG_PEM
	cmp -s <(openssl x509 -in "$cur" -noout -pubkey) <(openssl x509 -in "$WORK/old-ra-$n.pem" -noout -pubkey) &&
		fail "GetCACert still gives the earlier RA $n key"
done

mkdir -p "$WORK/pki"
# stale_pki NAME: pki enrolls holding the earlier RA certificates.
stale_pki() {
	local rc=0
	pki --gen --type rsa --size 2048 --outform pem > "$WORK/pki/$1.key" 2>/dev/null
	pki --scep --url "$URL" --in "$WORK/pki/$1.key" --dn "O=Test, CN=$1" \
		--password "$(challenge)" --cacert-enc "$WORK/old-ra-enc.pem" --cacert-sig "$WORK/old-ra-sign.pem" \
		--cacert "$CA_PEM" --outform pem --interval 2 --maxpolltime 20 \
		> "$WORK/pki/$1.pem" 2> "$WORK/pki/$1.err" || rc=$?
	return $rc
}

check "without PreviousEncryptionCertificate an envelope to the replaced certificate does not open: badMessageCheck, the RA's log names the setting"
mark=$(log_mark)
rc=0
stale_pki refused || rc=$?
[ $rc != 0 ] && grep -q "badMessageCheck" "$WORK/pki/refused.err" ||
	{ cat "$WORK/pki/refused.err"; fail "pki to the replaced certificate: exit $rc, want a failure with badMessageCheck"; }
logged "$mark" "envelope refused: no RecipientInfo names the RA certificate.*\[ra\] PreviousEncryptionCertificate" ||
	fail "the RA's refusal does not name [ra] PreviousEncryptionCertificate"

check "a certificate ending within 30 days is logged at start; /metrics gives each end of validity"
logged 1 "scepd-ra.*\[ra\] EncryptionCertificate: .*ra-enc.pem expires on .*, in 10 days; issue the RA a new one" ||
	fail "the RA does not warn of its encryption certificate's end"
! logged 1 "SigningCertificate: .* expires on" || fail "the RA warns of a signing certificate two years from its end"
for c in ra_encryption:ra/ra-enc.pem ra_signing:ra/ra-sign.pem ca:ca/ca.pem; do
	want=$(date -u -d "$(openssl x509 -in "$DATA/${c#*:}" -noout -enddate | cut -d= -f2)" +%s)
	got=$(metric "scepd_certificate_expiry_timestamp_seconds{certificate=\"${c%%:*}\"}")
	[ "$got" = "$want" ] || fail "/metrics: ${c%%:*} ends at $got, want $want"
done

check "with it and its key the envelope opens with the earlier key (logged at start and for the request), the reply signed with the new key accepted; the new certificate still works"
set_conf ra PreviousEncryptionCertificate ra/previous-ra-enc.pem
set_conf ra PreviousEncryptionKey ra/previous-ra-enc.key
mark=$(log_mark)
server_restart
logged "$mark" "scepd-ra.*PreviousEncryptionCertificate: envelopes to the RA's earlier encryption certificate (.*previous-ra-enc.pem, valid until .*) still open with its key" ||
	fail "the RA does not log PreviousEncryptionCertificate at start"
stale_pki opened || { cat "$WORK/pki/opened.err"; fail "pki to the replaced certificate with PreviousEncryptionCertificate"; }
verify_cert "$WORK/pki/opened.pem"
[ "$(metric 'scepd_certificate_expiry_timestamp_seconds{certificate="ra_previous_encryption"}')" = \
	"$(date -u -d "$(openssl x509 -in "$DATA/ra/previous-ra-enc.pem" -noout -enddate | cut -d= -f2)" +%s)" ] ||
	fail "/metrics: the earlier certificate's end is not given"
logged "$mark" "envelope addressed to an earlier RA encryption certificate, opened with its key" ||
	fail "the RA does not log the envelope opened with the earlier key"
ios_enroll "$(challenge)" "O=Test,CN=current RA certificate" "$WORK/current.pem" "$URL" >/dev/null ||
	fail "enrollment to the current RA certificate"
verify_cert "$WORK/current.pem"

check "an earlier pair that does not match, that is the RA's own key, or a key without its certificate stops the RA at start naming it"
# bad_previous CERT KEY WHAT: scepd-ra alone exits 1 saying WHAT.
bad_previous() {
	local rc=0
	set_conf ra PreviousEncryptionCertificate "$1"
	set_conf ra PreviousEncryptionKey "$2"
	timeout -s KILL 20 "$BUILD_DIR/scepd-ra" --config "$DATA/scepd.conf" > "$WORK/bad.out" 2>&1 || rc=$?
	[ $rc = 1 ] && grep -q -- "$3" "$WORK/bad.out" ||
		{ cat "$WORK/bad.out"; fail "PreviousEncryptionCertificate $1 with $2: exit $rc, want 1 and '$3'"; }
}
server_stop
bad_previous ra/previous-ra-enc.pem ra/ra-enc.key "previous-ra-enc.pem does not match the key in .*/ra-enc.key"
bad_previous "" ra/previous-ra-enc.key "PreviousEncryptionKey or PreviousEncryptionSigner is set without PreviousEncryptionCertificate"
bad_previous ra/ra-enc.pem ra/ra-enc.key "PreviousEncryptionCertificate: .*ra-enc.pem holds the key of EncryptionCertificate"

check "an expired RA certificate is an error at start, naming it and when it ended; the RA serves all the same (GetCACert, the CRL)"
set_conf ra PreviousEncryptionCertificate ""
set_conf ra PreviousEncryptionKey ""
rc=0
at_offset 20d timeout -s TERM 5 "$BUILD_DIR/scepd-ra" --config "$DATA/scepd.conf" > "$WORK/expired.out" 2>&1 || rc=$?
[ $rc = 124 ] && grep -q "error: \[ra\] EncryptionCertificate: .*ra-enc.pem expired on .*: clients that check it refuse what it signs or is encrypted to; issue the RA a new one" "$WORK/expired.out" &&
	grep -q "serving on" "$WORK/expired.out" ||
	{ cat "$WORK/expired.out"; fail "scepd-ra 20 days on, its encryption certificate expired: exit $rc, want it serving (124) with the error"; }
# ra_sped_up START SECONDS OUT: scepd-ra alone, its clock starting at START
# (seconds since the epoch) and running 5,000 times fast (a day in 17.3
# s), stopped after SECONDS (timeout itself on the real clock: unlike
# at_offset, the preload is not timeout's); it must serve until then. Its
# log in OUT.
ra_sped_up() {
	local rc=0
	faketime_lib
	timeout -s TERM "$2" env LD_PRELOAD="$FAKETIME_LIB" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		FAKETIME="@$(date -u -d "@$1" '+%Y-%m-%d %H:%M:%S') x5000" \
		FAKETIME_DONT_RESET=1 FAKETIME_DONT_FAKE_MONOTONIC=1 \
		"$BUILD_DIR/scepd-ra" --config "$DATA/scepd.conf" > "$3" 2>&1 || rc=$?
	[ $rc = 124 ] && grep -q "serving on" "$3" ||
		{ cat "$3"; fail "scepd-ra sped up from $(date -u -d "@$1"): exit $rc, want it serving until stopped (124)"; }
}
not_after() { date -u -d "$(openssl x509 -in "$DATA/$1" -noout -enddate | cut -d= -f2)" +%s; }

check "while it runs, the RA logs an ending certificate again as each day passes and as it ends (time sped up 5,000 times)"
# From 1.25 days before the end: "in 2 days" at start (if within 4.3 s),
# "in 1 day" a day on (17.3 s), the end 6 hours later (21.6 s), the next
# day's log only after 34.6 s.
ra_sped_up $(($(not_after ra/ra-enc.pem) - 108000)) 28 "$WORK/ending.out"
days=$(sed -n 's/.*EncryptionCertificate: .*ra-enc.pem expires on .*, in \([0-9]* days*\);.*/\1/p' "$WORK/ending.out" | tr '\n' ,)
[ "$days" = "2 days,1 day," ] &&
	sed -n '/serving on/,$p' "$WORK/ending.out" | grep -q "error: \[ra\] EncryptionCertificate: .*ra-enc.pem expired on " ||
	{ cat "$WORK/ending.out"; fail "days left logged '$days' (want '2 days,1 day,'), want the end logged as an error while serving, within 28 s"; }

check "a certificate entering its last 30 days while the RA runs is logged then, not a day later"
# 6 hours before the signing certificate's last 30 days (4.3 s); the next
# day's log would come after 17.3 s.
ra_sped_up $(($(not_after ra/ra-sign.pem) - 30 * 86400 - 21600)) 11 "$WORK/entering.out"
sed -n '/serving on/,$p' "$WORK/entering.out" | grep -q "warn: \[ra\] SigningCertificate: .*ra-sign.pem expires on .*, in 30 days; " ||
	{ cat "$WORK/entering.out"; fail "the signing certificate entering its last 30 days is not logged within 11 s"; }
check "the clock stepped back while the RA runs: an ending certificate logged again at once, not a day after the later time"
# scepd-ra alone, its clock (a libfaketime file read at each call) 20
# days past the encryption certificate's end: the end logged as an error
# at start. Then stepped back to 1.25 days before the end (a host that
# booted ahead, then NTP): "in 2 days" within seconds, where the next
# look was due a day after the later time. With Sandbox = log: enforced,
# no file opens, and libfaketime could not read its file again.
faketime_lib
set_conf ra Sandbox log
end=$(not_after ra/ra-enc.pem)
echo "+$((end + 20 * 86400 - $(date +%s)))" > "$WORK/clock"
timeout -s TERM 20 env LD_PRELOAD="$FAKETIME_LIB" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	FAKETIME_TIMESTAMP_FILE="$WORK/clock" FAKETIME_CACHE_DURATION=1 FAKETIME_DONT_FAKE_MONOTONIC=1 \
	"$BUILD_DIR/scepd-ra" --config "$DATA/scepd.conf" > "$WORK/stepped.out" 2>&1 &
stepped=$!
on_exit "kill $stepped 2>/dev/null || true"
for ((i = 0; i < 100; i++)); do grep -q "serving on" "$WORK/stepped.out" && break; sleep 0.1; done
grep -q "error: \[ra\] EncryptionCertificate: .*ra-enc.pem expired on " "$WORK/stepped.out" ||
	{ cat "$WORK/stepped.out"; fail "scepd-ra 20 days past its encryption certificate's end: the end not logged at start"; }
echo "+$((end - 108000 - $(date +%s)))" > "$WORK/clock"
for ((i = 0; i < 50; i++)); do sed -n '/serving on/,$p' "$WORK/stepped.out" | grep -q "EncryptionCertificate: .*ra-enc.pem expires on .*, in 2 days;" && break; sleep 0.1; done
kill "$stepped" 2>/dev/null || true
wait "$stepped" 2>/dev/null || true
sed -n '/serving on/,$p' "$WORK/stepped.out" | grep -q "EncryptionCertificate: .*ra-enc.pem expires on .*, in 2 days;" ||
	{ cat "$WORK/stepped.out"; fail "the clock stepped back to 1.25 days before the end: 'in 2 days' not logged within 5 s"; }
set_conf ra Sandbox enforce
pass "an RA encryption key replaced: its envelopes refused by default, opened with PreviousEncryptionCertificate; certificates' ends warned, in /metrics, an expired one an error"
