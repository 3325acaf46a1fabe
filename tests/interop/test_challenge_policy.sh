#!/usr/bin/env bash
# NDES's password settings and what scepd adds to them, end to end:
# PasswordLength, EnforcePassword / AllowNoPassword, WrongPasswordLimit
# (429 for one address, not for another), UseSinglePassword with the
# admin API, the MDM API with its own MdmPasswordMax, account rights, and
# the counters of /metrics.
. "$(dirname "$0")/lib.sh"
interop_init challenge_policy
server_start
fetch_ca_chain
creds=$(head -n 1 "$DATA/admin.credentials" | tr -d '\r\n')
ADMIN="$BASE/certsrv/mscep_admin"


check "PasswordLength: 16 bytes (32 hex digits) by default, 8 bytes when set"
pw=$(challenge)
[[ $pw =~ ^[0-9A-F]{32}$ ]] || fail "default password '$pw' is not 32 upper-case hex digits"
ios_enroll "$pw" "CN=long password" "$WORK/long.pem" >/dev/null || fail "a default password did not enroll"
set_conf challenge PasswordLength 8
server_restart
pw=$(challenge)
[[ $pw =~ ^[0-9A-F]{16}$ ]] || fail "PasswordLength = 8: password '$pw' is not 16 hex digits"
ios_enroll "$pw" "CN=short password" "$WORK/short.pem" || fail "a PasswordLength = 8 password did not enroll"

check "EnforcePassword = 0 alone still refuses a request without a password, naming AllowNoPassword = 1"
set_conf challenge EnforcePassword 0
server_restart
grep -q "EnforcePassword = 0 without AllowNoPassword = 1" "$SERVER_LOG" ||
	fail "no start-up warning for EnforcePassword = 0"
rc=0
"$IOS_CLIENT" --url "$URL" --subject "CN=no password" --out "$WORK/nopw.pem" > "$WORK/nopw.log" 2>&1 || rc=$?
[ $rc = 2 ] || { cat "$WORK/nopw.log"; fail "no password with EnforcePassword = 0 alone: exit $rc, want 2"; }
grep -q "^failInfo: badRequest" "$WORK/nopw.log" || fail "not failInfo badRequest"
grep -q "AllowNoPassword = 1" "$WORK/nopw.log" ||
	{ cat "$WORK/nopw.log"; fail "the failInfoText does not name AllowNoPassword = 1"; }

check "EnforcePassword = 0 with AllowNoPassword = 1 enrolls without a password, logged as unsafe"
set_conf challenge AllowNoPassword 1
server_restart
grep -q "unsafe: EnforcePassword = 0 and AllowNoPassword = 1" "$SERVER_LOG" ||
	fail "no 'unsafe' warning at start"
"$IOS_CLIENT" --url "$URL" --subject "CN=no password" --out "$WORK/nopw.pem" > "$WORK/nopw.log" 2>&1 ||
	{ cat "$WORK/nopw.log"; fail "AllowNoPassword = 1: enrollment without a password failed"; }
verify_cert "$WORK/nopw.pem"
grep -q "unsafe: no password checked" "$SERVER_LOG" || fail "the unchecked enrollment was not logged"
set_conf challenge EnforcePassword 1
set_conf challenge AllowNoPassword 0

check "WrongPasswordLimit = 3: three wrong passwords get FAILURE, the fourth request gets 429"
set_conf challenge WrongPasswordLimit 3
set_conf challenge WrongPasswordWindow 120
server_restart
for i in 1 2 3; do
	rc=0
	ios_enroll "DEADBEEF0000000000000000000000$i$i" "CN=guess $i" "$WORK/guess$i.pem" >/dev/null || rc=$?
	[ $rc = 2 ] || fail "wrong password $i: exit $rc, want 2 (FAILURE)"
done
good=$(challenge)
rc=0
ios_enroll "$good" "CN=after guesses" "$WORK/limited.pem" >/dev/null || rc=$?
[ $rc = 1 ] || fail "over the limit: exit $rc, want 1 (an HTTP error, not a CertRep)"
grep -q "PKIOperation: HTTP 429" "$WORK/limited.pem.log" || { cat "$WORK/limited.pem.log"; fail "no HTTP 429"; }
ra=$(sed -n 's/^Retry-After: //p' "$WORK/limited.pem.log")
[[ $ra =~ ^[0-9]+$ ]] && [ "$ra" -gt 0 ] && [ "$ra" -le 120 ] ||
	fail "Retry-After '$ra' is not 1..120 seconds"
echo "   ok: 429 with Retry-After: $ra"

check "... while another client address enrolls at once with the same password"
ios_enroll "$good" "CN=other client" "$WORK/other.pem" "$URL" --source 127.0.0.2 >/dev/null ||
	fail "a client at 127.0.0.2 was slowed by 127.0.0.1's refusals"
verify_cert "$WORK/other.pem"

check "/metrics counts what happened (Prometheus text)"
[ "$(metric 'scepd_up{service="ra"}')" = 1 ] || fail "scepd_up for the RA is not 1"
[ "$(metric 'scepd_up{service="challenge"}')" = 1 ] || fail "scepd_up for the challenge service is not 1"
[ "$(metric 'scepd_challenge_refused_total{validator="otp"}')" = 3 ] || fail "otp refusals: want 3"
[ "$(metric 'scepd_challenge_rate_limited_total')" = 1 ] || fail "rate-limited checks: want 1"
[ "$(metric 'scepd_ra_pki_operations_total{outcome="rate_limited"}')" = 1 ] || fail "RA rate_limited: want 1"
[ "$(metric 'scepd_http_responses_total{code="429"}')" -ge 1 ] || fail "no 429 counted"
[ "$(metric 'scepd_challenge_issued_total')" -ge 1 ] || fail "no password issued counted"
# Every sample's name was announced by a # TYPE line before it.
awk '/^# TYPE / { typed[$3] = 1; next } /^#/ { next }
	{ n = $1; sub(/\{.*/, "", n); if (!typed[n]) { print "untyped: " $0; bad = 1 } }
	NF != 2 { print "bad line: " $0; bad = 1 } END { exit bad }' "$WORK/metrics.txt" ||
	fail "/metrics is not well-formed Prometheus text"

check "MDM API: its own MdmPasswordMax; PasswordMax still limits the admin page"
set_conf challenge PasswordMax 1
set_conf challenge MdmPasswordMax 3
set_conf challenge WrongPasswordLimit 10
server_restart
printf 'mdm-secret\n' | "$SCEPCTL" --data-dir "$DATA" passwd --rights mdm mdm1 2>/dev/null ||
	fail "scepctl passwd --rights mdm"
for i in 1 2 3; do
	code=$(curl -s -o "$WORK/mdm$i.json" -w '%{http_code}' -u mdm1:mdm-secret -X POST "$ADMIN/api/challenges")
	[ "$code" = 200 ] || { cat "$WORK/mdm$i.json"; fail "MDM password $i: HTTP $code"; }
done
code=$(curl -s -o "$WORK/mdm4.json" -w '%{http_code}' -u mdm1:mdm-secret -X POST "$ADMIN/api/challenges")
[ "$code" = 429 ] || fail "4th MDM password with MdmPasswordMax = 3: HTTP $code, want 429"
grep -q "The password cache is full." "$WORK/mdm4.json" || fail "the 429 does not say the cache is full"
code=$(curl -s -o "$WORK/page.json" -w '%{http_code}' -u "$creds" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 200 ] || fail "the admin page was refused (HTTP $code) while only the MDM pool is full"
# An API error is JSON, a wrong method too (with its Allow header).
code=$(curl -s -D "$WORK/get.head" -o "$WORK/get.json" -w '%{http_code}' -u mdm1:mdm-secret "$ADMIN/api/challenges")
[ "$code" = 405 ] && grep -qi "^Allow: POST" "$WORK/get.head" && grep -qi "^Content-Type: application/json" "$WORK/get.head" &&
	python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["error"]' "$WORK/get.json" ||
	{ cat "$WORK/get.head" "$WORK/get.json"; fail "GET api/challenges: HTTP $code, want a JSON 405 allowing POST"; }
mdm_pw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$WORK/mdm1.json")
ios_enroll "$mdm_pw" "CN=fleet device" "$WORK/fleet.pem" >/dev/null || fail "an MDM password did not enroll"
verify_cert "$WORK/fleet.pem"

check "rights: mdm1 has no enroll right, the first admin has no mdm right"
code=$(curl -s -o "$WORK/deny.txt" -w '%{http_code}' -u mdm1:mdm-secret "$ADMIN/")
[ "$code" = 403 ] || fail "mdm1 on the admin page: HTTP $code, want 403"
grep -q "You do not have sufficient permission to enroll with SCEP." "$WORK/deny.txt" ||
	fail "the 403 does not carry NDES's text"
code=$(curl -s -o "$WORK/deny.json" -w '%{http_code}' -u "$creds" -X POST "$ADMIN/api/challenges")
[ "$code" = 403 ] || fail "admin (no mdm right) on api/challenges: HTTP $code, want 403"
# The API's errors are JSON, as its answers (an MDM parses them).
python3 -c 'import json,sys; assert "permission" in json.load(open(sys.argv[1]))["error"]' "$WORK/deny.json" ||
	{ cat "$WORK/deny.json"; fail "the API's 403 is not JSON with an error"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -u mdm1:wrong -X POST "$ADMIN/api/challenges")
[ "$code" = 401 ] || fail "wrong MDM password: HTTP $code, want 401"

check "scepctl passwd --list shows the accounts and their rights (no hash); --delete takes one away at once"
"$SCEPCTL" --data-dir "$DATA" passwd --list > "$WORK/accounts.txt" 2>/dev/null || fail "passwd --list"
grep -qx "admin  enroll,admin" "$WORK/accounts.txt" && grep -qx "mdm1  mdm" "$WORK/accounts.txt" ||
	{ cat "$WORK/accounts.txt"; fail "passwd --list"; }
! grep -q 'scrypt' "$WORK/accounts.txt" || fail "passwd --list shows a hash"
"$SCEPCTL" --data-dir "$DATA" passwd --delete mdm1 2>/dev/null || fail "passwd --delete mdm1"
code=$(curl -s -o /dev/null -w '%{http_code}' -u mdm1:mdm-secret -X POST "$ADMIN/api/challenges")
[ "$code" = 401 ] || fail "a deleted MDM account on api/challenges: HTTP $code, want 401"
rc=0
"$SCEPCTL" --data-dir "$DATA" passwd --delete mdm1 2> "$WORK/del2.err" || rc=$?
[ $rc = 1 ] && grep -q "no account mdm1" "$WORK/del2.err" || fail "deleting twice: exit $rc"
"$SCEPCTL" --data-dir "$DATA" passwd --list 2>/dev/null | grep -q "^mdm1 " && fail "mdm1 still listed"

check "UseSinglePassword = 1: one password for every device"
set_conf challenge UseSinglePassword 1
set_conf challenge SinglePassword "Shared-Secret-42"
server_restart
grep -q "UseSinglePassword = 1: one password for every device" "$SERVER_LOG" || fail "no start-up warning"
ios_enroll "Shared-Secret-42" "CN=shared one" "$WORK/s1.pem" >/dev/null || fail "first device with the single password"
ios_enroll "Shared-Secret-42" "CN=shared two" "$WORK/s2.pem" >/dev/null || fail "second device with the single password"
rc=0
ios_enroll "Shared-Secret-43" "CN=shared wrong" "$WORK/s3.pem" >/dev/null || rc=$?
[ $rc = 2 ] || fail "a wrong single password: exit $rc, want 2"
rc=0
"$SCEPCTL" --data-dir "$DATA" challenge > "$WORK/ctl.out" 2> "$WORK/ctl.err" || rc=$?
[ $rc != 0 ] && grep -q "UseSinglePassword = 1" "$WORK/ctl.err" ||
	fail "scepctl challenge under UseSinglePassword: exit $rc, $(cat "$WORK/ctl.err")"
curl -s -u "$creds" -H 'Accept: application/json' "$ADMIN/" > "$WORK/single.json"
grep -q '"single": true' "$WORK/single.json" || { cat "$WORK/single.json"; fail "the admin page does not say single"; }
# An MDM asking for a password to push gets none: 409, not 200 without one
# (an MDM reading .password would push "null" to its devices).
printf 'mdm-single\n' | "$SCEPCTL" --data-dir "$DATA" passwd --rights mdm mdmsingle 2>/dev/null
code=$(curl -s -o "$WORK/mdm-single.json" -w '%{http_code}' -u mdmsingle:mdm-single -X POST "$ADMIN/api/challenges")
[ "$code" = 409 ] && grep -q '"error": "UseSinglePassword = 1' "$WORK/mdm-single.json" ||
	{ cat "$WORK/mdm-single.json"; fail "api/challenges under UseSinglePassword: HTTP $code, want a JSON 409 naming UseSinglePassword"; }
"$SCEPCTL" --data-dir "$DATA" passwd --delete mdmsingle 2>/dev/null

check "admin API: a new single password replaces the configured one; enroll-only accounts may not"
printf 'pw-enroll\n' | "$SCEPCTL" --data-dir "$DATA" passwd enrollonly 2>/dev/null
rc=0
printf 'pw\n' | "$SCEPCTL" --data-dir "$DATA" passwd "$(head -c 64 /dev/zero | tr '\0' m)" 2> "$WORK/longname.err" || rc=$?
[ $rc = 2 ] && grep -q "use 1 to 63 letters" "$WORK/longname.err" ||
	{ cat "$WORK/longname.err"; fail "a 64-byte account name: exit $rc, want 2 saying 1 to 63"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -u enrollonly:pw-enroll -X POST "$ADMIN/api/single-password")
[ "$code" = 403 ] || fail "api/single-password without the admin right: HTTP $code, want 403"
code=$(curl -s -o "$WORK/newsingle.json" -w '%{http_code}' -u "$creds" -X POST "$ADMIN/api/single-password")
[ "$code" = 200 ] || { cat "$WORK/newsingle.json"; fail "api/single-password: HTTP $code"; }
new=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$WORK/newsingle.json")
[[ $new =~ ^[0-9A-F]{16}$ ]] || fail "made single password '$new' is not PasswordLength = 8 bytes of hex"
rc=0
ios_enroll "Shared-Secret-42" "CN=old single" "$WORK/s4.pem" >/dev/null || rc=$?
[ $rc = 2 ] || fail "the replaced configured password still works (exit $rc)"
ios_enroll "$new" "CN=new single" "$WORK/s5.pem" >/dev/null || fail "the new single password does not enroll"
grep -q "$new" "$DATA"/db/challenge/data.mdb && fail "the single password is stored in clear"
# A mistyped key, or an empty password: 400, the single password kept (a
# random one replaced it, and every device's stopped working).
for body in '{"Password":"chosen-single-1"}' '{"password":""}' '{"password":"x","set_by":"y"}'; do
	code=$(curl -s -o "$WORK/badsingle.json" -w '%{http_code}' -u "$creds" -X POST \
		-H "Content-Type: application/json" --data-binary "$body" "$ADMIN/api/single-password")
	[ "$code" = 400 ] || { cat "$WORK/badsingle.json"; fail "api/single-password $body: HTTP $code, want 400"; }
done
ios_enroll "$new" "CN=new single kept" "$WORK/s5b.pem" >/dev/null ||
	fail "the single password was replaced by a refused request"

check "another site's page cannot use the admin's browser: a forged single password and minted passwords refused"
# What a page elsewhere makes the admin's browser send (its credentials
# cached): a text/plain form whose body parses as JSON, and an image.
code=$(curl -s -o "$WORK/csrf1.txt" -w '%{http_code}' -u "$creds" -X POST -H "Origin: http://evil.example" \
	-H "Sec-Fetch-Site: cross-site" -H "Content-Type: text/plain" \
	--data-binary '{"password":"attacker-pass-1","x":"="}' "$ADMIN/api/single-password")
[ "$code" = 403 ] || { cat "$WORK/csrf1.txt"; fail "a cross-site form post: HTTP $code, want 403"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$creds" -X POST -H "Origin: http://evil.example" \
	-d '{"password":"attacker-pass-2"}' "$ADMIN/api/single-password")
[ "$code" = 403 ] || fail "a post with another Origin (no Sec-Fetch-Site, older browsers): HTTP $code, want 403"
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$creds" -X POST -H "Origin: null" \
	-d '{"password":"attacker-pass-3"}' "$ADMIN/api/single-password")
[ "$code" = 403 ] || fail "a post with Origin null (a sandboxed frame): HTTP $code, want 403"
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$creds" -H "Sec-Fetch-Site: same-site" "$ADMIN/")
[ "$code" = 403 ] || fail "the admin page fetched by an image of another site: HTTP $code, want 403"
grep -q "admin: refused POST .* made by another site's page (Sec-Fetch-Site)" "$SERVER_LOG" ||
	fail "the refusal is not logged"
for n in 1 2 3; do
	rc=0
	ios_enroll "attacker-pass-$n" "CN=forged $n" "$WORK/f$n.pem" >/dev/null || rc=$?
	[ $rc = 2 ] || fail "the forged single password attacker-pass-$n enrolls (exit $rc)"
done
ios_enroll "$new" "CN=still the admin's" "$WORK/s6.pem" >/dev/null || fail "the admin's single password was replaced"
# The admin's own browser: the page typed in (none), its own requests
# (same-origin, Origin of this server).
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$creds" -H "Sec-Fetch-Site: none" "$ADMIN/")
[ "$code" = 200 ] || fail "the admin page opened by the admin: HTTP $code"
host=${ADMIN#http://}
host=${host%%/*}
code=$(curl -s -o "$WORK/sameorigin.json" -w '%{http_code}' -u "$creds" -X POST -H "Sec-Fetch-Site: same-origin" \
	-H "Origin: http://$host" "$ADMIN/api/single-password")
[ "$code" = 200 ] || { cat "$WORK/sameorigin.json"; fail "a same-origin post: HTTP $code"; }
new=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$WORK/sameorigin.json")
ios_enroll "$new" "CN=same origin single" "$WORK/s7.pem" >/dev/null || fail "the same-origin single password does not enroll"

check "a single password that cannot be read (its record damaged): the configured one it replaced does not come back"
server_stop
mdb_dump -p "$DATA/db/challenge" | grep -qx " single-password" || fail "no single password record"
# One record, in mdb_load's hex format, over the one there.
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
printf 'VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n %s\n %s\nDATA=END\n' \
	"$(hex single-password)" "$(hex damaged)" > "$WORK/damage.dump"
mdb_load -f "$WORK/damage.dump" "$DATA/db/challenge" || fail "mdb_load"
mdb_dump -p "$DATA/db/challenge" | grep -A1 -x " single-password" | grep -qx " damaged" ||
	fail "the single password's record is not the damaged one"
server_start
rc=0
ios_enroll "Shared-Secret-42" "CN=configured again" "$WORK/s8.pem" >/dev/null || rc=$?
[ $rc = 1 ] && grep -q "PKIOperation: HTTP 503" "$WORK/s8.pem.log" ||
	{ cat "$WORK/s8.pem.log"; fail "the configured password with the API's unreadable: exit $rc, want an HTTP 503"; }
grep -q "scepd-challenge.*the single password's record is malformed: set it again" "$SERVER_LOG" ||
	fail "the damaged record is not logged"
code=$(curl -s -o "$WORK/repaired.json" -w '%{http_code}' -u "$creds" -X POST "$ADMIN/api/single-password")
[ "$code" = 200 ] || { cat "$WORK/repaired.json"; fail "api/single-password over the damaged record: HTTP $code"; }
new=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$WORK/repaired.json")
ios_enroll "$new" "CN=set again" "$WORK/s9.pem" >/dev/null || fail "the single password set again does not enroll"

check "a used one-time password presented again is logged as a security event"
set_conf challenge UseSinglePassword 0
set_conf challenge PasswordMax 5
server_restart
pw=$(challenge)
ios_enroll "$pw" "CN=owner" "$WORK/o1.pem" >/dev/null || fail "owner enrollment"
rc=0
ios_enroll "$pw" "CN=thief" "$WORK/o2.pem" >/dev/null || rc=$?
[ $rc = 2 ] || fail "reuse: exit $rc, want 2"
grep -q "security: otp: password id=.* already used by" "$SERVER_LOG" || fail "no security event logged"
[ "$(metric 'scepd_challenge_security_events_total')" = 1 ] || fail "security events: want 1"

check "scepctl passwd writes the frontend's [frontend] AdminPasswordFile, not DIR/admin.passwd"
# Relative to scepd.conf's directory, as the frontend reads it; a stale
# copy stays where scepctl used to write whatever the setting.
mkdir -p "$DATA/accounts"
mv "$DATA/admin/admin.passwd" "$DATA/accounts/admin.passwd"
cp -p "$DATA/accounts/admin.passwd" "$DATA/admin.passwd"
set_conf frontend AdminPasswordFile accounts/admin.passwd
server_restart
printf 'mdm2-secret\n' | "$SCEPCTL" --data-dir "$DATA" passwd --rights mdm mdm2 2> "$WORK/mdm2.err" ||
	{ cat "$WORK/mdm2.err"; fail "scepctl passwd mdm2"; }
if ! grep -q "set in $DATA/accounts/admin.passwd\$" "$WORK/mdm2.err" || ! grep -q '^mdm2:' "$DATA/accounts/admin.passwd"; then
	cat "$WORK/mdm2.err"
	fail "scepctl passwd did not write AdminPasswordFile"
fi
! grep -q '^mdm2:' "$DATA/admin.passwd" || fail "scepctl passwd wrote DIR/admin.passwd, which the frontend does not read"
code=$(curl -s -o /dev/null -w '%{http_code}' -u mdm2:mdm2-secret -X POST "$ADMIN/api/challenges")
[ "$code" = 200 ] || fail "an account set by scepctl passwd in AdminPasswordFile: HTTP $code"
"$SCEPCTL" --data-dir "$DATA" passwd --list 2>/dev/null | grep -qx "mdm2  mdm" || fail "passwd --list does not read AdminPasswordFile"
"$SCEPCTL" --data-dir "$DATA" passwd --delete mdm2 2>/dev/null || fail "passwd --delete mdm2"
code=$(curl -s -o /dev/null -w '%{http_code}' -u mdm2:mdm2-secret -X POST "$ADMIN/api/challenges")
[ "$code" = 401 ] || fail "an account deleted by scepctl passwd --delete: HTTP $code, want 401"
set_conf frontend AdminPasswordFile ""
rc=0
"$SCEPCTL" --data-dir "$DATA" passwd --list > /dev/null 2> "$WORK/empty.err" || rc=$?
if [ $rc != 1 ] || ! grep -q "\[frontend\] AdminPasswordFile is empty" "$WORK/empty.err"; then
	cat "$WORK/empty.err"
	fail "an empty AdminPasswordFile: exit $rc, want 1 naming it"
fi
set_conf frontend AdminPasswordFile accounts/admin.passwd
# A directory without scepd.conf (make-secrets.sh's): DIR/admin.passwd.
mkdir -p "$WORK/secrets"
printf 'pw\n' | "$SCEPCTL" --data-dir "$WORK/secrets" passwd someone 2>/dev/null ||
	fail "scepctl passwd in a directory without scepd.conf"
grep -q '^someone:' "$WORK/secrets/admin.passwd" ||
	fail "scepctl passwd in a directory without scepd.conf did not write DIR/admin.passwd"

pass "PasswordLength, EnforcePassword/AllowNoPassword, WrongPasswordLimit, MDM API, rights, passwd --list/--delete (in AdminPasswordFile), UseSinglePassword, /metrics"
