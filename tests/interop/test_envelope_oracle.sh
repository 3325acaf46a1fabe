#!/usr/bin/env bash
# Answers that leak nothing (issue 7): every way a request's envelope can
# fail to open or to hold a CSR (bad RSA padding, bad CBC padding, not a
# CSR, a bad CSR signature, a bogus RecipientInfo before ours, an envelope
# for another RA, a CSR key refused by size or curve, a device's envelope
# key copied into an envelope of other content) gets one identical
# FAILURE badMessageCheck, in the same time; the server's log alone says
# which step failed. Keys whose check would be expensive (RSA 16384,
# explicit EC curves) are refused in milliseconds, in the CSR and in the
# signer certificate (HTTP 400: nothing was verified).
#
# envelope_forge builds the messages and posts them round robin, so that
# the machine's noise falls on every class alike, and compares each
# envelope failure with the others of its round (median over the rounds):
# one off by more than the larger of ORACLE_TOLERANCE_MS (0.1) and
# ORACLE_TOLERANCE_PCT (10 %) of their median fails. Skipping the RA's
# RSA-2048 decryption, the early exit an oracle would show, is 0.2 ms
# (about 20 %) here; the classes agree within a few hundredths of a
# millisecond. ORACLE_ROUNDS (200) requests per class.
. "$(dirname "$0")/lib.sh"
interop_init envelope_oracle
FORGE="$BUILD_DIR/tests/envelope_forge"
[ -x "$FORGE" ] || fail "$FORGE is not built"
server_start
fetch_ca_chain

check "every class refused alike, and in the same time (${ORACLE_ROUNDS:-200} rounds)"
rc=0
"$FORGE" --url "$URL" --ra-enc "$RA_ENC_PEM" --ra-sig "$RA_SIG_PEM" \
	--challenge "$(challenge)" --rounds "${ORACLE_ROUNDS:-200}" \
	--tolerance-ms "${ORACLE_TOLERANCE_MS:-0.1}" \
	--tolerance-pct "${ORACLE_TOLERANCE_PCT:-10}" \
	--max-key-ms 200 > "$WORK/forge.log" 2>&1 || rc=$?
sed 's/^/   | /' "$WORK/forge.log"
case $rc in
0) ;;
2) fail "an answer was not the one expected (see above)" ;;
3) fail "a class stands apart by its time, or a key was not refused in milliseconds (see above)" ;;
*) fail "envelope_forge failed (exit $rc)" ;;
esac

check "the operator's log names the step that failed"
grep -F "envelope refused:" "$SERVER_LOG" > "$WORK/refused.log" || fail "no 'envelope refused' line in the log"
for why in "does not unwrap (RSA PKCS#1 v1.5)" "padding is wrong" \
	"not a PKCS#10 request" "self-signature does not verify" \
	"no RecipientInfo names the RA certificate" \
	"refused before any signature math" \
	"wrapped key came before with other content"; do
	grep -qF "$why" "$WORK/refused.log" || fail "the log never says '$why'"
done
grep -q "signer certificate's key is refused before its signature is checked" "$SERVER_LOG" ||
	fail "the log does not say why the signer keys were refused"

check "nothing was issued but the control's one certificate"
issued=$(grep -c "scepd-ca\[.*issued serial" "$SERVER_LOG" || true)
[ "$issued" = 1 ] || fail "the CA issued $issued certificates, want 1"
ios_enroll "$(challenge)" "CN=after the oracle" "$WORK/after.pem" >/dev/null ||
	fail "a good client no longer enrolls"
verify_cert "$WORK/after.pem"

check "EnvelopeKeyMemory too small for the traffic: keys forgotten within the hour are said, devices still enroll"
set_conf ra EnvelopeKeyMemory 4
server_stop
SCEPD_TEST_RA_KEYS_LOOK_S=1 server_start
for i in 1 2 3 4 5 6; do
	ios_enroll "$(challenge)" "CN=small memory $i" "$WORK/small-$i.pem" >/dev/null ||
		fail "enrollment $i with EnvelopeKeyMemory = 4"
done
for _ in $(seq 50); do
	grep -q "EnvelopeKeyMemory = 4 is full" "$SERVER_LOG" && break
	sleep 0.1
done
grep -E "scepd-ra\[[0-9]+\] warn: EnvelopeKeyMemory = 4 is full: an envelope's key was forgotten [0-9]+ s after it came \([1-9][0-9]* forgotten, [0-9]+ reused keys refused since start\); many requests, or a flood to make a device's key usable again: raise it" "$SERVER_LOG" ||
	fail "no warning that EnvelopeKeyMemory forgets keys younger than an hour"

pass "one answer to every envelope failure, no class apart by its time, big and explicit-curve keys refused in milliseconds; a too small EnvelopeKeyMemory said"
