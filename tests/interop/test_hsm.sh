#!/usr/bin/env bash
# The CA key in a PKCS#11 token: SoftHSM2 with a token of the test's own
# (SOFTHSM2_CONF, which scepd passes on to the CA), the demo CA's key
# imported into it and deleted from the data directory, `Signer = hsm`
# with the pkcs11 plugin; then the RA's two keys too. Under the CA's usual sandbox the token signs a
# certificate for the iOS-like client and a CRL; the log says where the
# key is and what the sandbox allows for the token; a wrong PIN, a PIN
# file others may read and a certificate of another key stop the CA at
# start naming [signer.hsm]; two sections of the RA with another module
# or PIN stop it (one engine per process).
. "$(dirname "$0")/lib.sh"
interop_init hsm

SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
for need in softhsm2-util "$SOFTHSM_MODULE" /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so; do
	command -v "$need" >/dev/null 2>&1 || [ -e "$need" ] ||
		fail "$need is missing (scripts/deps.sh --test: softhsm2, libengine-pkcs11-openssl)"
done
[ -x "$BUILD_DIR/plugins/scepd-pkcs11.so" ] || [ -f "$BUILD_DIR/plugins/scepd-pkcs11.so" ] ||
	fail "$BUILD_DIR/plugins/scepd-pkcs11.so is not built"

server_start
fetch_ca_chain
server_stop

check "a SoftHSM2 token of the test's own holds the demo CA's key; ca/ca.key is removed"
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
mkdir -p "$WORK/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$WORK/tokens" > "$SOFTHSM2_CONF"
PIN=4711-scepd
softhsm2-util --init-token --free --label scepd --pin "$PIN" --so-pin 0815-so > "$WORK/init-token.log" 2>&1 ||
	{ cat "$WORK/init-token.log"; fail "softhsm2-util --init-token"; }
openssl pkcs8 -topk8 -nocrypt -in "$DATA/ca/ca.key" -out "$WORK/ca.p8" ||
	fail "openssl pkcs8 of the demo CA key"
softhsm2-util --import "$WORK/ca.p8" --token scepd --label ca --id 01 --pin "$PIN" > "$WORK/import.log" 2>&1 ||
	{ cat "$WORK/import.log"; fail "softhsm2-util --import"; }
shred -u "$WORK/ca.p8" 2>/dev/null || rm -f "$WORK/ca.p8"
rm -f "$DATA/ca/ca.key"
# And no [ca] Key line, as README's example has none (it was required).
sed -i '/^Key = /d' "$DATA/scepd.conf"
! grep -q "^Key = " "$DATA/scepd.conf" || fail "a Key line is left"
printf '%s\n' "$PIN" > "$WORK/token.pin"
chmod 600 "$WORK/token.pin"

set_conf ca Signer hsm
add_conf_section signer.hsm
set_conf signer.hsm Module pkcs11
set_conf signer.hsm ModulePath "$SOFTHSM_MODULE"
set_conf signer.hsm KeyURI "pkcs11:token=scepd;object=ca;type=private"
set_conf signer.hsm PINFile "$WORK/token.pin"
# SoftHSM2 re-reads its token's generation file and the key's object file
# before each signature: the CA's sandbox lets it read there, nowhere else.
set_conf signer.hsm SandboxReadPaths "$WORK/tokens"
CRL_URL="$BASE/crl/ca.crl"
set_conf ca CRLURL "$CRL_URL"
# Asked for, but a signer plugin's key is used by one thread only.
set_conf ca SignThreads 2
: > "$SERVER_LOG"
server_start

check "the CA's log: the key is in the token, the sandbox's allowance for it"
for _ in $(seq 100); do
	grep -q "scepd-ca.*serving on" "$SERVER_LOG" && break
	sleep 0.1
done
grep -q 'signer hsm: key pkcs11:token=scepd;object=ca;type=private (RSA 3072 bits) is in the token' "$SERVER_LOG" ||
	fail "the log does not say the key is in the token"
grep -q 'scepd-ca.*\[ca\] Signer: signer hsm (pkcs11): private key operations happen there, no key file is read' "$SERVER_LOG" ||
	fail "the log does not name the signer"
grep -q "sandbox: signer hsm: file opens stay allowed, read-only beneath $WORK/tokens (Landlock)" "$SERVER_LOG" ||
	fail "the sandbox does not say what it allows the token"
grep -q 'seccomp filter loaded' "$SERVER_LOG" || fail "no seccomp filter in the CA"
grep -q 'scepd-ca.*\[ca\] SignThreads = 2 not applied: the key is \[signer.hsm\]'"'"'s, which signs on one thread' "$SERVER_LOG" ||
	fail "the CA did not say that SignThreads is not applied to the token's key"
grep -q 'scepd-ca.*signing on 1 thread(s)' "$SERVER_LOG" || fail "the CA signs with the token's key on more than one thread"
ca_pid=$(service_pid scepd-ca)
if [ -n "$ca_pid" ]; then
	grep -q '^Seccomp:[[:space:]]*2' "/proc/$ca_pid/status" || fail "scepd-ca is not under seccomp"
	tr '\0' '\n' < "/proc/$ca_pid/environ" 2>/dev/null | grep -q "^SOFTHSM2_CONF=$SOFTHSM2_CONF\$" ||
		[ ! -r "/proc/$ca_pid/environ" ] || fail "SOFTHSM2_CONF did not reach the CA"
fi

check "an iOS-like client enrolls; the token signed its certificate"
ios_enroll "$(challenge)" "CN=hsm device,O=scepd tests" "$WORK/dev.pem" "$URL" --key "$WORK/dev.key" >/dev/null ||
	fail "enrollment with the CA key in the token"
verify_cert "$WORK/dev.pem"
ios_enroll "$(challenge)" "CN=hsm device 2" "$WORK/dev2.pem" >/dev/null || fail "a second enrollment"
verify_cert "$WORK/dev2.pem"

check "scepctl revoke; the CRL the token signed verifies and lists the serial"
serial=$(openssl x509 -in "$WORK/dev.pem" -noout -serial | cut -d= -f2)
"$SCEPCTL" --data-dir "$DATA" revoke "$serial" --reason keyCompromise 2> "$WORK/revoke.err" ||
	{ cat "$WORK/revoke.err"; fail "scepctl revoke"; }
code=$(curl -s -o "$WORK/ca.crl" -w '%{http_code} %{content_type}' "$CRL_URL")
[ "$code" = "200 application/pkix-crl" ] || fail "GET $CRL_URL: $code"
openssl crl -inform DER -in "$WORK/ca.crl" -out "$WORK/ca.crl.pem" 2>/dev/null || fail "not a DER CRL"
openssl crl -in "$WORK/ca.crl.pem" -CAfile "$CA_PEM" -noout 2>&1 | grep -q "verify OK" ||
	fail "the CRL's signature does not verify against the CA"
openssl crl -in "$WORK/ca.crl.pem" -noout -text | grep -q "Serial Number: $serial" ||
	fail "the revoked serial is not in the CRL"
rc=0
openssl verify -crl_check -CAfile "$CA_PEM" -CRLfile "$WORK/ca.crl.pem" "$WORK/dev.pem" > "$WORK/va.out" 2>&1 || rc=$?
[ $rc != 0 ] && grep -q "certificate revoked" "$WORK/va.out" || fail "verify -crl_check accepted the revoked certificate"

check "the CA is still the one process it was: nothing killed by the sandbox"
if grep -q 'scepd-ca killed by signal' "$SERVER_LOG"; then
	fail "the sandbox killed the CA while the token signed"
fi

check "another key imported into the CA's token while the CA runs (a next CA key made ready): the CA goes on signing"
# SoftHSM2 reads the token's directory again when it changes: refused by
# the sandbox, every object was gone, the CA key too (503 until a restart).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/other.key" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$WORK/other.key" -out "$WORK/other.p8"
softhsm2-util --import "$WORK/other.p8" --token scepd --label next-ca --id 09 --pin "$PIN" > "$WORK/import-other.log" 2>&1 ||
	{ cat "$WORK/import-other.log"; fail "softhsm2-util --import next-ca"; }
rm -f "$WORK/other.key" "$WORK/other.p8"
ios_enroll "$(challenge)" "CN=token changed" "$WORK/changed.pem" > /dev/null ||
	{ cat "$WORK/changed.pem.log"; fail "no enrollment after another key was imported into the token"; }
verify_cert "$WORK/changed.pem"

check "the token failing after start: 503 with Retry-After, the CA not killed; a restarted CA logs in again and signs"
mv "$WORK/tokens" "$WORK/tokens.away"
rc=0
ios_enroll "$(challenge)" "CN=token away" "$WORK/away.pem" > /dev/null || rc=$?
mv "$WORK/tokens.away" "$WORK/tokens"
[ $rc = 1 ] && grep -q "PKIOperation: HTTP 503" "$WORK/away.pem.log" && grep -q "^Retry-After: " "$WORK/away.pem.log" ||
	{ cat "$WORK/away.pem.log"; fail "with the token gone: exit $rc, want HTTP 503 with Retry-After"; }
grep -q "scepd-ca.*signing failed: .*PKCS#11" "$SERVER_LOG" || fail "the CA did not log the token's error"
grep -q 'scepd-ca killed by signal' "$SERVER_LOG" && fail "the token's failure killed the CA"
"$SCEPCTL" --data-dir "$DATA" list > "$WORK/ledger.txt" 2>&1 || { cat "$WORK/ledger.txt"; fail "scepctl list"; }
grep -q "hsm device 2" "$WORK/ledger.txt" || { cat "$WORK/ledger.txt"; fail "scepctl list does not list what was issued"; }
grep -q "token away" "$WORK/ledger.txt" && fail "the ledger lists a certificate the token never signed"
# The session's object handle stays invalid: the operator restarts the CA
# (here: SIGTERM, and the launcher starts it again).
ca_restart_alone
ios_enroll "$(challenge)" "CN=token back" "$WORK/back.pem" > /dev/null || fail "no enrollment once the token is back"
verify_cert "$WORK/back.pem"
server_stop

# ca_refuses WHAT PATTERN [STATUS]: scepd-ca stops at start with PATTERN in
# the log (and that exit status).
ca_refuses() {
	local what=$1 pattern=$2 want=${3:-}
	: > "$SERVER_LOG"
	rc=0
	timeout -s KILL 30 "$BUILD_DIR/scepd-ca" --config "$DATA/scepd.conf" > "$WORK/ca-alone.log" 2>&1 || rc=$?
	[ $rc != 0 ] || fail "$what: scepd-ca started"
	[ -z "$want" ] || [ $rc = "$want" ] || { cat "$WORK/ca-alone.log"; fail "$what: exit $rc, want $want"; }
	# A refusal after the engine was loaded still frees all it took
	# (libp11's methods leaked when its shared object was unloaded).
	sanitizer_check "$WORK/ca-alone.log"
	grep -q -- "$pattern" "$WORK/ca-alone.log" ||
		{ cat "$WORK/ca-alone.log"; fail "$what: no '$pattern' in its message"; }
	echo "   $what: $(grep -m1 -- "$pattern" "$WORK/ca-alone.log")"
}

check "a wrong PIN stops the CA at start, naming [signer.hsm], with the status no one restarts (78)"
printf 'not-the-pin\n' > "$WORK/token.pin"
ca_refuses "wrong PIN" 'scepd-ca: \[signer.hsm\] KeyURI: .*wrong PIN.*not restarted' 78

check "a wrong PIN under scepd: the CA is started once (the PIN tried once), and scepd stops saying why"
rc=0
timeout -s KILL 60 "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" > "$WORK/scepd-pin.log" 2>&1 || rc=$?
[ $rc = 1 ] || { cat "$WORK/scepd-pin.log"; fail "scepd with a wrong PIN: exit $rc, want 1"; }
tries=$(grep -c 'scepd-ca: \[signer.hsm\] KeyURI: .*wrong PIN' "$WORK/scepd-pin.log" || true)
[ "$tries" = 1 ] || { cat "$WORK/scepd-pin.log"; fail "the CA tried the PIN $tries times, want 1"; }
grep -q "scepd-ca exited with status 78: its key store refused it at start.*not restarted" "$WORK/scepd-pin.log" ||
	{ cat "$WORK/scepd-pin.log"; fail "scepd did not say why it stopped"; }
echo "   ok: one try, then: $(grep -m1 'its key store refused' "$WORK/scepd-pin.log" | sed 's/.*scepd-ca/scepd-ca/')"
# The others start once the CA serves: the RA, whose keys may be in the
# same token, never tried the PIN.
! grep -q "started scepd-ra" "$WORK/scepd-pin.log" || fail "scepd started the RA beside a CA its token refused"

check "in a container (SCEPD_HOLD_ON_KEY_REFUSAL=1, which a restart policy needs) the CA and scepd hold after a wrong PIN; SIGTERM ends the hold"
# held LOG PID: the process waits, saying why, after one try of the PIN.
held() {
	for _ in $(seq 100); do
		grep -q "holding, not exiting (SCEPD_HOLD_ON_KEY_REFUSAL=1)" "$1" && break
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1
	kill -0 "$2" 2>/dev/null || { cat "$1"; fail "it exited instead of holding"; }
	grep -q "holding, not exiting (SCEPD_HOLD_ON_KEY_REFUSAL=1)" "$1" || { cat "$1"; fail "the hold is not logged"; }
	tries=$(grep -c '\[signer.hsm\] KeyURI: .*wrong PIN' "$1" || true)
	[ "$tries" = 1 ] || { cat "$1"; fail "the PIN was tried $tries times, want 1"; }
}
# ended PID STATUS: SIGTERM ends the hold with STATUS.
ended() {
	local rc=0
	kill -TERM "$1"
	timeout 10 tail --pid="$1" -f /dev/null || fail "SIGTERM did not end the hold"
	wait "$1" || rc=$?
	[ $rc = "$2" ] || fail "the hold ended with status $rc, want $2"
}
# Started allowed core files: the CA takes that away before any key or
# PIN is read, not only when its sandbox comes (a module's crash before
# it dumped the PIN).
(
	ulimit -S -c unlimited
	SCEPD_HOLD_ON_KEY_REFUSAL=1 exec "$BUILD_DIR/scepd-ca" --config "$DATA/scepd.conf"
) > "$WORK/ca-hold.log" 2>&1 &
hold_pid=$!
on_exit "kill $hold_pid 2>/dev/null || true"
held "$WORK/ca-hold.log" $hold_pid
core=$(prlimit --pid "$hold_pid" --core --noheadings --output SOFT | tr -d ' ')
[ "$core" = 0 ] || fail "the CA holding after reading its signer's PIN may dump core (RLIMIT_CORE $core)"
ended $hold_pid 78
sanitizer_check "$WORK/ca-hold.log"
SCEPD_HOLD_ON_KEY_REFUSAL=1 setsid "$SCEPD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" > "$WORK/scepd-hold.log" 2>&1 &
hold_pid=$!
on_exit "kill -- -$hold_pid 2>/dev/null || true"
held "$WORK/scepd-hold.log" $hold_pid
# The services were stopped: only scepd waits (its CA exited: the
# variable is not theirs).
grep -q "scepd-ca exited with status 78" "$WORK/scepd-hold.log" || { cat "$WORK/scepd-hold.log"; fail "the CA held under scepd"; }
! pgrep -f -- "scepd-(ca|ra|challenge|frontend) --config $DATA/scepd.conf" > /dev/null ||
	fail "services still run while scepd holds"
ended $hold_pid 1
sanitizer_check "$WORK/scepd-hold.log"
printf '%s\n' "$PIN" > "$WORK/token.pin"

check "a PIN file others may read is refused"
chmod 644 "$WORK/token.pin"
ca_refuses "PIN file 0644" 'scepd-ca: \[signer.hsm\] PINFile: .*mode 0644'
chmod 600 "$WORK/token.pin"

check "a PIN file whose first line is longer than a PIN may be is refused, not tried cut (the token counts wrong PINs)"
{ printf '%s' "$PIN"; head -c 300 /dev/zero | tr '\0' x; echo; } > "$WORK/token.pin"
ca_refuses "a 300-byte PIN line" 'scepd-ca: \[signer.hsm\] PINFile: .*its first line is longer than 255 bytes'
printf '%s\n' "$PIN" > "$WORK/token.pin"

check "a PIN inside KeyURI (pin-value) is refused, and not logged"
set_conf signer.hsm KeyURI "pkcs11:token=scepd;object=ca;type=private;pin-value=$PIN"
ca_refuses "pin-value in KeyURI" 'scepd-ca: \[signer.hsm\] KeyURI: holds pin-value or pin-source'
! grep -q -- "$PIN" "$WORK/ca-alone.log" || fail "the PIN is in the CA's log"
# Checked before anything that would echo the URI (a wrong scheme does).
set_conf signer.hsm KeyURI "PKCS11:token=scepd;object=ca;type=private;pin-value=$PIN"
ca_refuses "pin-value in a KeyURI of another case" 'scepd-ca: \[signer.hsm\] KeyURI: holds pin-value or pin-source'
! grep -q -- "$PIN" "$WORK/ca-alone.log" || fail "the PIN is in the CA's log"
set_conf signer.hsm KeyURI "pkcs11:token=scepd;object=ca;type=private"

check "a certificate of another key is refused"
cp "$DATA/ca/ca.pem" "$WORK/ca.pem.orig"
openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -subj "/CN=other CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
	-days 30 -out "$DATA/ca/ca.pem" 2>/dev/null || fail "openssl req"
ca_refuses "another certificate" 'scepd-ca: \[signer.hsm\]: .* does not match the key in \[signer.hsm\]'
cp "$WORK/ca.pem.orig" "$DATA/ca/ca.pem"

check "an unknown key in [signer.hsm] and a missing Module are refused"
set_conf signer.hsm Slot 3
ca_refuses "unknown key" '\[signer.hsm\] Slot: unknown key'
sed -i '/^Slot = 3$/d' "$DATA/scepd.conf"
set_conf ca Signer nowhere
ca_refuses "no section" '\[signer.nowhere\] Module: is required'
set_conf ca Signer file
ca_refuses "a key file, none named" '\[ca\] Key: is required (or Signer = NAME'
set_conf ca Signer hsm

check "with the PIN right again the CA starts and signs"
server_start
ios_enroll "$(challenge)" "CN=hsm device 3" "$WORK/dev3.pem" >/dev/null || fail "enrollment after the restart"
verify_cert "$WORK/dev3.pem"
server_stop

check "SoftHSM2 without SandboxReadPaths: it cannot read its token while signing, 503; its syslog line gets EACCES, the CA is not killed"
set_conf signer.hsm SandboxReadPaths ""
from=$(log_mark)
server_start
rc=0
ios_enroll "$(challenge)" "CN=no read paths" "$WORK/noread.pem" > /dev/null || rc=$?
[ $rc = 1 ] && grep -q "PKIOperation: HTTP 503" "$WORK/noread.pem.log" ||
	{ cat "$WORK/noread.pem.log"; fail "no SandboxReadPaths: exit $rc, want HTTP 503"; }
! logged "$from" "scepd-ca killed by signal" || fail "the token's module killed the CA (a socket for syslog)"
server_stop
set_conf signer.hsm SandboxReadPaths "$WORK/tokens"

check "a CA with a User that cannot read the token's files (made by root, 0600) stops at start naming one, not at its first signature"
chmod 0711 "$WORK" "$DATA" "$DATA/run" # the socket's directory must be within reach first
set_conf ca User nobody
ca_refuses "User nobody, token root's" "sandbox: nobody cannot read $WORK/tokens/.*, which it reads after start (Permission denied): give it to that user (chown -R nobody $WORK/tokens)" 1
check "the token given to that user (the mend the refusal names): the CA runs as nobody and the token signs"
chown -R nobody "$WORK/tokens" "$DATA/run"
server_start
grep -q "scepd-ca\[[0-9]*\] info: sandbox: running as user nobody" "$SERVER_LOG" || fail "the CA does not run as nobody"
ios_enroll "$(challenge)" "CN=hsm as nobody" "$WORK/nobody.pem" > /dev/null || fail "enrollment with the CA as nobody"
verify_cert "$WORK/nobody.pem"
server_stop
chown -R root "$WORK/tokens" "$DATA/run"
set_conf ca User ""
chmod 0700 "$WORK" "$DATA" "$DATA/run"

check "an EncryptionSigner whose key decrypts but cannot sign (a token's key without CKA_SIGN): the RA starts and decrypts"
add_conf_section signer.deconly
set_conf signer.deconly Module "$BUILD_DIR/tests/plugins/scepd-decrypt-only.so"
set_conf signer.deconly KeyFile "$DATA/ra/ra-enc.key"
set_conf ra EncryptionSigner deconly
server_start
ios_enroll "$(challenge)" "CN=hsm decrypt-only" "$WORK/deconly.pem" >/dev/null ||
	{ cat "$WORK/deconly.pem.log"; fail "enrollment with a decrypt-only encryption key"; }
verify_cert "$WORK/deconly.pem"
server_stop
set_conf ra EncryptionSigner file
# As the signing key it is refused at start, by name.
set_conf signer.deconly KeyFile "$DATA/ra/ra-sign.key"
set_conf ra SigningSigner deconly
rc=0
timeout -s KILL 30 "$BUILD_DIR/scepd-ra" --config "$DATA/scepd.conf" > "$WORK/ra-deconly.log" 2>&1 || rc=$?
[ $rc != 0 ] && grep -q 'scepd-ra: \[signer.deconly\] the key of the decrypt-only plugin cannot sign' "$WORK/ra-deconly.log" ||
	{ cat "$WORK/ra-deconly.log"; fail "a signing key that cannot sign: exit $rc"; }
set_conf ra SigningSigner file

check "after a switch, the replaced CA's key left in the token signs its CRL (PreviousCASigner = hsm): an old certificate revoked after it is on it"
# Put back afterwards: the checks below use the CA in the token.
cp "$DATA/scepd.conf" "$WORK/scepd.conf.before-switch"
cp "$DATA/ca/ca.pem" "$WORK/hsm-old-ca.pem"
cp "$DATA"/ra/ra-sign.pem "$DATA"/ra/ra-enc.pem "$WORK/"
ca_replace "$DATA" 2048
cp "$WORK/hsm-old-ca.pem" "$DATA/ca/previous-ca.pem"
set_conf ca Signer file
set_conf ca Key ca/ca.key
set_conf ca PreviousCACertificate ca/previous-ca.pem
set_conf ra PreviousCACertificate ca/previous-ca.pem
set_conf ca PreviousCASigner hsm
set_conf frontend PreviousCRLPath /crl/previous.crl
: > "$SERVER_LOG"
server_start
grep -q "scepd-ca.*PreviousCASigner: the previous CA's CRL is signed with it, .*(\[signer.hsm\])" "$SERVER_LOG" &&
	grep -q "scepd-ca.*sandbox: signer hsm: file opens stay allowed, read-only beneath $WORK/tokens" "$SERVER_LOG" ||
	fail "the CA does not log the previous CA's key in the token and its sandbox allowance"
"$SCEPCTL" --data-dir "$DATA" revoke "$(openssl x509 -in "$WORK/deconly.pem" -noout -serial | cut -d= -f2)" \
	> /dev/null 2> "$WORK/revoke-prev.err" || { cat "$WORK/revoke-prev.err"; fail "scepctl revoke after the switch"; }
# old_crl_revokes CERT WHAT: the old CA's CRL from PreviousCRLPath has
# openssl verify -crl_check refuse CERT as revoked.
old_crl_revokes() {
	local rc=0
	curl -sf "$BASE/crl/previous.crl" -o "$WORK/previous.der" || fail "PreviousCRLPath ($2)"
	openssl crl -inform DER -in "$WORK/previous.der" -out "$WORK/previous.crl" || fail "PreviousCRLPath: not a CRL ($2)"
	openssl verify -crl_check -CAfile "$WORK/hsm-old-ca.pem" -CRLfile "$WORK/previous.crl" "$1" \
		> "$WORK/vprev.out" 2>&1 || rc=$?
	[ $rc != 0 ] && grep -q "certificate revoked" "$WORK/vprev.out" || { cat "$WORK/vprev.out"; fail "$2"; }
}
old_crl_revokes "$WORK/deconly.pem" "the old CA's CRL, signed in the token, does not revoke its certificate"
grep -q 'scepd-ca killed by signal' "$SERVER_LOG" && fail "the sandbox killed the CA while the token signed the old CA's CRL"

check "the old key's token failing: a revocation still goes through and the CA's own CRL lists it; the old CA's CRL is made again once the token is back"
back_serial=$(openssl x509 -in "$WORK/back.pem" -noout -serial | cut -d= -f2)
mv "$WORK/tokens" "$WORK/tokens.away"
mark=$(log_mark)
rc=0
"$SCEPCTL" --data-dir "$DATA" revoke "$back_serial" > /dev/null 2> "$WORK/revoke-away.err" || rc=$?
mv "$WORK/tokens.away" "$WORK/tokens"
[ $rc = 0 ] || { cat "$WORK/revoke-away.err"; fail "with the old key's token gone, the revocation failed: exit $rc"; }
logged "$mark" "scepd-ca.*CRL: the previous CA's cannot be signed with \[ca\] PreviousCASigner now" ||
	fail "the CA does not log that the old CA's CRL could not be signed"
curl -sf "$BASE/crl/ca.crl" -o "$WORK/own.der" || fail "CRLPath with the old key's token gone"
openssl crl -inform DER -in "$WORK/own.der" -noout -text | grep -q "Serial Number: $back_serial" ||
	fail "the CA's own CRL does not list the revocation made while the old key's token was gone"
server_restart # the session's object handle stays invalid (above)
old_crl_revokes "$WORK/back.pem" "once the token is back, the old CA's CRL misses the revocation made meanwhile"
server_stop
cp "$WORK/scepd.conf.before-switch" "$DATA/scepd.conf"
cp "$WORK/hsm-old-ca.pem" "$DATA/ca/ca.pem"
cp "$WORK/ra-sign.pem" "$WORK/ra-enc.pem" "$DATA/ra/"
rm -f "$DATA/ca/ca.key"

check "the RA's two keys in the token too (SigningSigner, EncryptionSigner); ra/*.key removed"
for k in ra-sign ra-enc; do
	openssl pkcs8 -topk8 -nocrypt -in "$DATA/ra/$k.key" -out "$WORK/$k.p8" || fail "openssl pkcs8 of $k.key"
	softhsm2-util --import "$WORK/$k.p8" --token scepd --label "$k" --id "$([ $k = ra-sign ] && echo 02 || echo 03)" \
		--pin "$PIN" > "$WORK/import-$k.log" 2>&1 || { cat "$WORK/import-$k.log"; fail "softhsm2-util --import $k"; }
	cp -p "$DATA/ra/$k.key" "$WORK/$k.key.file" # for a check with one key in a file
	rm -f "$WORK/$k.p8" "$DATA/ra/$k.key"
	add_conf_section "signer.$k"
	set_conf "signer.$k" Module pkcs11
	set_conf "signer.$k" ModulePath "$SOFTHSM_MODULE"
	set_conf "signer.$k" KeyURI "pkcs11:token=scepd;object=$k;type=private"
	set_conf "signer.$k" PINFile "$WORK/token.pin"
	set_conf "signer.$k" SandboxReadPaths "$WORK/tokens"
done
# The same PIN in a file of its own: one PIN still, accepted.
cp -p "$WORK/token.pin" "$WORK/token-enc.pin"
set_conf signer.ra-enc PINFile "$WORK/token-enc.pin"
set_conf ra SigningSigner ra-sign
set_conf ra EncryptionSigner ra-enc
set_conf challenge PasswordMax 20
: > "$SERVER_LOG"
server_start
# /healthz is the frontend's: the RA may still be logging in to the token.
for _ in $(seq 100); do
	grep -q "scepd-ra.*serving on" "$SERVER_LOG" && break
	sleep 0.1
done
# One login at a time (two processes logging in to one SoftHSM2 token at
# once made one fail, "Failed to enumerate slots", 1 start in 6): the RA
# is started once the CA serves.
ca_serving=$(grep -n "scepd-ca.*serving on" "$SERVER_LOG" | head -1 | cut -d: -f1)
ra_started=$(grep -n "started scepd-ra" "$SERVER_LOG" | head -1 | cut -d: -f1)
[ -n "$ca_serving" ] && [ -n "$ra_started" ] && [ "$ra_started" -gt "$ca_serving" ] ||
	fail "the RA was started (log line ${ra_started:-none}) before the CA served (line ${ca_serving:-none})"
for k in ra-sign ra-enc; do
	grep -q "scepd-ra.*signer $k: key pkcs11:token=scepd;object=$k;type=private (RSA 2048 bits) is in the token" "$SERVER_LOG" ||
		fail "the RA's log does not say $k is in the token"
	grep -q "scepd-ra.*sandbox: signer $k: file opens stay allowed, read-only beneath $WORK/tokens" "$SERVER_LOG" ||
		fail "the RA's sandbox does not say what it allows the token for $k"
done

check "enrollments decrypted and answered by the token's RA keys (iOS-like client, strongSwan pki)"
ios_enroll "$(challenge)" "CN=hsm ra device" "$WORK/dev4.pem" >/dev/null || fail "enrollment with the RA keys in the token"
verify_cert "$WORK/dev4.pem"
openssl genrsa -out "$WORK/pki.key" 2048 2>/dev/null
pki --scep --url "$URL" --in "$WORK/pki.key" --dn "CN=hsm pki device" --password "$(challenge)" \
	--cacert-enc "$RA_ENC_PEM" --cacert-sig "$RA_SIG_PEM" --cacert "$CA_PEM" --outform pem \
	> "$WORK/pki.pem" 2> "$WORK/pki.err" || { cat "$WORK/pki.err"; fail "strongSwan pki with the RA keys in the token"; }
verify_cert "$WORK/pki.pem"

check "8 devices at once: every RA worker uses the token's keys concurrently"
pids=()
for i in $(seq 8); do
	pw=$(challenge)
	ios_enroll "$pw" "CN=hsm parallel $i" "$WORK/par$i.pem" > /dev/null &
	pids+=($!)
done
for i in $(seq 8); do
	wait "${pids[$((i - 1))]}" || { cat "$WORK/par$i.pem.log"; fail "parallel enrollment $i"; }
	verify_cert "$WORK/par$i.pem"
done
grep -q 'scepd-ra killed by signal' "$SERVER_LOG" && fail "the sandbox killed the RA while the token worked"
server_stop

check "the encryption key's token failing after start (the signing key a file): 503 once the RA has tried its key, not a FAILURE every device takes as final; a restarted RA decrypts again"
set_conf ra SigningSigner file
set_conf ra SigningKey "$WORK/ra-sign.key.file"
server_start
for _ in $(seq 100); do
	grep -q "scepd-ra.*serving on" "$SERVER_LOG" && break
	sleep 0.1
done
ios_enroll "$(challenge)" "CN=enc token before" "$WORK/enc-before.pem" > /dev/null || fail "enrollment with the encryption key in the token"
from=$(log_mark)
mv "$WORK/tokens" "$WORK/tokens.away"
on_exit "[ -d '$WORK/tokens.away' ] && mv '$WORK/tokens.away' '$WORK/tokens'"
# The first envelope fails as bad padding would (one answer to every
# failure); the RA then tries its key.
ios_enroll "$(challenge)" "CN=enc token first" "$WORK/enc-first.pem" > /dev/null 2>&1 || true
await_logged "$from" "scepd-ra.* error: \[signer.ra-enc\]: the RA's key no longer decrypts" 10 ||
	fail "the RA did not find its encryption key failing"
rc=0
ios_enroll "$(challenge)" "CN=enc token away" "$WORK/enc-away.pem" > /dev/null || rc=$?
[ $rc = 1 ] && grep -q "PKIOperation: HTTP 503" "$WORK/enc-away.pem.log" && grep -q "^Retry-After: " "$WORK/enc-away.pem.log" ||
	{ cat "$WORK/enc-away.pem.log"; fail "with the encryption key's token gone: exit $rc, want HTTP 503 with Retry-After"; }
logged "$from" "not opened: a key of the RA in a token does not decrypt" || fail "the 503 is not logged"
mv "$WORK/tokens.away" "$WORK/tokens"
from=$(log_mark)
pkill -TERM -f -- "scepd-ra --config $DATA/scepd.conf" || fail "no RA to restart"
await_logged "$from" "scepd-ra\[[0-9]*\] info: serving on" 30 || fail "the RA was not started again"
ios_enroll "$(challenge)" "CN=enc token back" "$WORK/enc-back.pem" > /dev/null ||
	{ cat "$WORK/enc-back.pem.log"; fail "no enrollment once the token is back and the RA restarted"; }
verify_cert "$WORK/enc-back.pem"
server_stop
set_conf ra SigningSigner ra-sign

# ra_refuses WHAT PATTERN: scepd-ra stops at start with PATTERN in its message.
ra_refuses() {
	local what=$1 pattern=$2
	rc=0
	timeout -s KILL 30 "$BUILD_DIR/scepd-ra" --config "$DATA/scepd.conf" > "$WORK/ra-alone.log" 2>&1 || rc=$?
	[ $rc != 0 ] || fail "$what: scepd-ra started"
	sanitizer_check "$WORK/ra-alone.log"
	grep -q -- "$pattern" "$WORK/ra-alone.log" ||
		{ cat "$WORK/ra-alone.log"; fail "$what: exit $rc, no '$pattern' in its message"; }
	echo "   $what: $(grep -m1 -- "$pattern" "$WORK/ra-alone.log")"
}

check "two sections of one process with another ModulePath or PIN are refused (one pkcs11 engine per process)"
# libp11 starts once, with the first section's module: the second's was
# ignored, and its PIN replaced the first's.
cp "$SOFTHSM_MODULE" "$WORK/libsofthsm2-copy.so"
set_conf signer.ra-enc ModulePath "$WORK/libsofthsm2-copy.so"
ra_refuses "another ModulePath" \
	"scepd-ra: \[signer.ra-enc\] ModulePath: $WORK/libsofthsm2-copy.so: \[signer.ra-sign\] of this process uses $SOFTHSM_MODULE; .*one ModulePath and one PIN per process"
set_conf signer.ra-enc ModulePath "$SOFTHSM_MODULE"
printf 'another-pin\n' > "$WORK/token-enc.pin"
ra_refuses "another PIN" \
	"scepd-ra: \[signer.ra-enc\] PINFile: $WORK/token-enc.pin: not the PIN of \[signer.ra-sign\] of this process; .*one ModulePath and one PIN per process"
! grep -q -- "another-pin" "$WORK/ra-alone.log" || fail "the PIN is in the RA's log"
printf '%s\n' "$PIN" > "$WORK/token-enc.pin"

check "an RA key missing from the token stops the RA at start, naming its section"
set_conf signer.ra-enc KeyURI "pkcs11:token=scepd;object=nowhere;type=private"
rc=0
timeout -s KILL 30 "$BUILD_DIR/scepd-ra" --config "$DATA/scepd.conf" > "$WORK/ra-alone.log" 2>&1 || rc=$?
[ $rc != 0 ] && grep -q 'scepd-ra: \[signer.ra-enc\] KeyURI: pkcs11:token=scepd;object=nowhere' "$WORK/ra-alone.log" ||
	{ cat "$WORK/ra-alone.log"; fail "an unknown RA key: exit $rc"; }
set_conf ra EncryptionSigner file
rc=0
timeout -s KILL 30 "$BUILD_DIR/scepd-ra" --config "$DATA/scepd.conf" > "$WORK/ra-alone.log" 2>&1 || rc=$?
[ $rc != 0 ] && grep -q 'scepd-ra: .*ra-enc.key' "$WORK/ra-alone.log" ||
	{ cat "$WORK/ra-alone.log"; fail "EncryptionSigner = file without the key file: exit $rc"; }

pass "CA and RA keys in SoftHSM2 through the pkcs11 plugin: enrollments (also 8 at once) and a CRL under the sandbox, wrong PIN and bad settings refused at start"
