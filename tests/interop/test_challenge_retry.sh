#!/usr/bin/env bash
# One-time passwords as NDES issues them, and retries as devices make them:
# a device that lost the answer resends the same PKCSReq (same key, so the
# same transactionID) and gets the same certificate, not a second one; any
# other transaction presenting that password is refused; PasswordMax
# outstanding passwords fill the cache ("The password cache is full.")
# until one is used; scepctl challenge --list shows the cache and --revoke
# / --revoke-unused empty it; the database never holds a password in clear.
. "$(dirname "$0")/lib.sh"
interop_init challenge_retry
server_start
server_stop
set_conf challenge PasswordMax 3
server_start

check "first enrollment"
pw=$(challenge)
"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=retry" --key "$WORK/k1.pem" \
	--out "$WORK/a.pem" > "$WORK/a.log" 2>&1 || { cat "$WORK/a.log"; fail "first enrollment"; }
serial_a=$(openssl x509 -in "$WORK/a.pem" -noout -serial)

check "the same transaction retried gets the same certificate"
"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=retry" --key "$WORK/k1.pem" \
	--out "$WORK/b.pem" > "$WORK/b.log" 2>&1 || { cat "$WORK/b.log"; fail "retry"; }
serial_b=$(openssl x509 -in "$WORK/b.pem" -noout -serial)
[ "$serial_a" = "$serial_b" ] || fail "retry got $serial_b, first got $serial_a"
n=$(grep -c 'scepd-ca\[.*issued serial.*"CN=retry"' "$SERVER_LOG" || true)
[ "$n" = 1 ] || fail "the CA issued $n certificates for the transaction, want 1"

check "another transaction with the same password: FAILURE badRequest"
set +e
"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=thief" \
	--out "$WORK/c.pem" > "$WORK/c.log" 2>&1
rc=$?
set -e
[ $rc = 2 ] || { cat "$WORK/c.log"; fail "other transaction: exit $rc, want 2 (FAILURE)"; }
grep -q badRequest "$WORK/c.log" || fail "other transaction: failInfo is not badRequest"

check "PasswordMax = 3: the fourth outstanding password is refused"
p1=$(challenge); p2=$(challenge); p3=$(challenge)
set +e
out=$("$SCEPCTL" --data-dir "$DATA" challenge 2>&1)
rc=$?
set -e
[ $rc != 0 ] || fail "a fourth password was issued: $out"
echo "$out" | grep -q "The password cache is full." || fail "scepctl said: $out"
creds=$(cat "$DATA/admin.credentials")
code=$(curl -s -o "$WORK/full.json" -w '%{http_code}' -u "$creds" -H 'Accept: application/json' "$BASE/certsrv/mscep_admin/")
[ "$code" = 429 ] || fail "admin page JSON with a full cache: HTTP $code, want 429"
grep -q "The password cache is full." "$WORK/full.json" || fail "admin JSON: $(cat "$WORK/full.json")"
curl -s -u "$creds" "$BASE/certsrv/mscep_admin/" | iconv -f UTF-16 -t UTF-8 | grep -q "The password cache is full." ||
	fail "admin HTML page does not say the cache is full"

check "using one frees a place"
"$IOS_CLIENT" --url "$URL" --challenge "$p1" --subject "CN=frees" \
	--out "$WORK/d.pem" > "$WORK/d.log" 2>&1 || { cat "$WORK/d.log"; fail "enrollment with p1"; }
p4=$(challenge)
[ -n "$p4" ] || fail "no password after one was used"

check "scepctl challenge --list shows the cache (no password), --revoke ID and --revoke-unused (the admin pool) empty it, and survive a restart"
"$SCEPCTL" --data-dir "$DATA" challenge --list > "$WORK/list.txt" 2> "$WORK/list.err" || fail "challenge --list"
# pw and p1 used, p2 and p3 and p4 issued (unused).
[ "$(grep -c "  issued  " "$WORK/list.txt")" = 3 ] && [ "$(grep -c "  used  " "$WORK/list.txt")" = 2 ] ||
	{ cat "$WORK/list.txt"; fail "want 3 issued and 2 used passwords listed"; }
for p in "$pw" "$p1" "$p2" "$p3" "$p4"; do
	! grep -qiF "$p" "$WORK/list.txt" || fail "challenge --list shows a password"
done
"$SCEPCTL" --data-dir "$DATA" challenge --list --json > "$WORK/list.json" || fail "challenge --list --json"
python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); assert sorted(p["state"] for p in l) == ["issued"]*3 + ["used"]*2, l' "$WORK/list.json" ||
	fail "challenge --list --json"
used_id=$(grep "  used  " "$WORK/list.txt" | head -1 | cut -d' ' -f1)
rc=0
"$SCEPCTL" --data-dir "$DATA" challenge --revoke "$used_id" 2> "$WORK/revoke-used.err" || rc=$?
[ $rc = 1 ] && grep -q "held by a transaction" "$WORK/revoke-used.err" || fail "revoking a used password: exit $rc"
# The cache is full again (3 issued): revoking one frees a place.
set +e; "$SCEPCTL" --data-dir "$DATA" challenge > /dev/null 2>&1; rc=$?; set -e
[ $rc != 0 ] || fail "the cache is not full: this case tests nothing"
one=$(grep "  issued  " "$WORK/list.txt" | head -1 | cut -d' ' -f1)
"$SCEPCTL" --data-dir "$DATA" challenge --revoke "$one" 2> "$WORK/revoke.err" || { cat "$WORK/revoke.err"; fail "challenge --revoke"; }
grep -q "1 password(s) revoked" "$WORK/revoke.err" || fail "revoke: $(cat "$WORK/revoke.err")"
grep -q "password id=$one issued to scepctl revoked by scepctl (" "$SERVER_LOG" || fail "the revocation was not logged"
p5=$(challenge)
server_restart
"$SCEPCTL" --data-dir "$DATA" challenge --revoke-unused 2> "$WORK/unused.err" || fail "challenge --revoke-unused"
grep -q "3 password(s) revoked" "$WORK/unused.err" || fail "revoke-unused: $(cat "$WORK/unused.err")"
# The admin page's pool by default (the MDM accounts' with --pool mdm or
# all: test_challenge); a pool it does not know is refused, and --pool
# goes with --revoke-unused only.
rc=0
"$SCEPCTL" --data-dir "$DATA" challenge --revoke-unused --pool mdms 2> "$WORK/pool.err" || rc=$?
[ $rc = 1 ] && grep -q "unknown password pool (admin, mdm or all)" "$WORK/pool.err" ||
	fail "--pool mdms: exit $rc, $(cat "$WORK/pool.err")"
rc=0
"$SCEPCTL" --data-dir "$DATA" challenge --list --pool mdm > /dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "--pool with --list: exit $rc, want 2 (usage)"
"$SCEPCTL" --data-dir "$DATA" challenge --list > "$WORK/list2.txt" 2>/dev/null || fail "challenge --list"
! grep -q "  issued  " "$WORK/list2.txt" || { cat "$WORK/list2.txt"; fail "unused passwords left"; }
rc=0
"$IOS_CLIENT" --url "$URL" --challenge "$p5" --subject "CN=revoked" --out "$WORK/r.pem" > "$WORK/r.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "not valid or has expired" "$WORK/r.log" || { cat "$WORK/r.log"; fail "a revoked password enrolled: exit $rc"; }
# The cache has room for PasswordMax (3) again.
for _ in 1 2 3; do
	challenge > /dev/null
done

check "the challenge database holds no password in clear"
for p in "$pw" "$p1" "$p2" "$p3" "$p4"; do
	lower=$(echo "$p" | tr 'A-F' 'a-f')
	if grep -rqaF -e "$p" -e "$lower" "$DATA/db"; then
		fail "password $p found in clear under $DATA/db"
	fi
done
pass "retry gets the same certificate, reuse refused, cache full at PasswordMax, scepctl challenge --list/--revoke/--revoke-unused, no clear passwords"
