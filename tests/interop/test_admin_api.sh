#!/usr/bin/env bash
# The admin page and its API against a client that guesses or forges:
# the 401 names Basic with charset="UTF-8"; five failed logins for one
# account get that account (and only it, from any address) 429 with
# Retry-After for the rest of the minute, even for credentials that passed
# lately, failures for 64 names lock out every login; at most
# two password checks (scrypt) run at once, any
# other login is answered 429 with Retry-After: 1 at once while a device
# still enrolls; api/single-password takes a body only as
# application/json (415 otherwise: a browser's text/plain form can carry
# JSON); another site's page (Sec-Fetch-Site, or an Origin not this
# server's) gets 403 for the Apple profile and for a text/plain post with
# only its Origin, no password issued or set; a refusal of the challenge
# service other than "The password cache is full." is a 409 (not a 429), a
# request it finds bad a 400 (not a 500);
# /metrics gives each name's HELP and TYPE once, its samples together.
. "$(dirname "$0")/lib.sh"
interop_init admin_api
grep -q SCEPD_TEST_ADMIN_CHECK_MS "$BUILD_DIR/scepd-frontend" ||
	fail "the frontend has no test hooks: build with -DSCEPD_TEST_HOOKS=ON (scripts/test.sh does)"
server_start

ADMIN="$BASE/certsrv/mscep_admin"
creds=$(head -n 1 "$DATA/admin.credentials" | tr -d '\r\n')
user=${creds%%:*}

# call NAME [curl args...]: the status; headers in $WORK/NAME.head, the
# body in $WORK/NAME.body.
call() {
	local name=$1 code
	shift
	code=$(curl -s -m 20 -D "$WORK/$name.head" -o "$WORK/$name.body" -w '%{http_code}' "$@" || true)
	# The admin page is UTF-16, as NDES serves it: read here as UTF-8.
	if grep -qi '^content-type:.*charset=utf-16' "$WORK/$name.head" 2>/dev/null; then
		iconv -f UTF-16 -t UTF-8 "$WORK/$name.body" > "$WORK/$name.body.utf8" ||
			fail "$name: not UTF-16 as its Content-Type says"
		mv "$WORK/$name.body.utf8" "$WORK/$name.body"
	fi
	echo "$code"
}
# header NAME HEADER: its value in $WORK/NAME.head.
header() {
	tr -d '\r' < "$WORK/$1.head" | sed -n "s/^$2: *//Ip" | sed -n 1p
}
# show NAME...: what came, for a failure.
show() {
	local n
	for n in "$@"; do
		cat "$WORK/$n.head" "$WORK/$n.body" 2>/dev/null
		echo
	done
}
json_error() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$WORK/$1.body"
}

check "/metrics: each name's HELP and TYPE once, before all of its samples (scepd_up's two together)"
curl -sf "$BASE/metrics" > "$WORK/metrics.txt" || fail "/metrics"
python3 - "$WORK/metrics.txt" <<'PY' || fail "/metrics is not well-formed Prometheus text"
import collections, re, sys
types, helps, order = collections.Counter(), collections.Counter(), []
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        types[line.split()[2]] += 1
    elif line.startswith("# HELP "):
        helps[line.split()[2]] += 1
    elif line and not line.startswith("#"):
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        if not order or order[-1] != name:
            order.append(name)
twice = sorted(n for n in set(types) | set(helps) if types[n] != 1 or helps[n] != 1)
assert not twice, "HELP or TYPE not once: %s" % ", ".join(f"{n} (TYPE {types[n]}, HELP {helps[n]})" for n in twice)
split = sorted(n for n, k in collections.Counter(order).items() if k > 1)
assert not split, "samples apart: " + ", ".join(split)
assert "scepd_up" in types and "scepd_ra_pki_operations_total" in types and \
    "scepd_challenge_issued_total" in types, sorted(types)
print(f"   {len(types)} names, each typed once, samples together")
PY
grep -c '^scepd_up{' "$WORK/metrics.txt" | grep -qx 2 || fail "not two scepd_up samples"

check "the 401 asks for Basic credentials in UTF-8 (RFC 7617)"
code=$(call noauth "$ADMIN/")
[ "$code" = 401 ] || fail "no credentials: HTTP $code, want 401"
[ "$(header noauth WWW-Authenticate)" = 'Basic realm="scepd", charset="UTF-8"' ] ||
	fail "WWW-Authenticate: '$(header noauth WWW-Authenticate)'"
echo "   WWW-Authenticate: $(header noauth WWW-Authenticate)"

check "an account whose name is not UTF-8 (a passwd file written by hand): the page is served, the name's stray byte as U+FFFD"
# scepctl refuses such a name: the file is edited as an admin may.
printf 'latin-secret\n' | "$SCEPCTL" --data-dir "$DATA" passwd latinx 2>/dev/null || fail "scepctl passwd latinx"
sed -i $'s/^latinx:/j\xfcrgen:/' "$DATA/admin/admin.passwd"
code=$(call latin -u $'j\xfcrgen:latin-secret' "$ADMIN/")
[ "$code" = 200 ] && grep -q $'Issued to j\xef\xbf\xbdrgen' "$WORK/latin.body" ||
	{ show latin; fail "the page of an account whose name is not UTF-8: HTTP $code (it was 500 'Out of memory.')"; }

check "five failed logins for one account (from 127.0.0.2): its next login, even a right one, from any address gets 429 for the rest of the minute, credentials that passed lately too; other accounts do not"
printf 'mdm-secret\n' | "$SCEPCTL" --data-dir "$DATA" passwd --rights mdm mdm1 2>/dev/null ||
	fail "scepctl passwd --rights mdm"
printf 'guessed-secret\n' | "$SCEPCTL" --data-dir "$DATA" passwd guessed 2>/dev/null ||
	fail "scepctl passwd guessed"
code=$(call mdm-before -u mdm1:mdm-secret -X POST "$ADMIN/api/challenges")
[ "$code" = 200 ] || { show mdm-before; fail "mdm1's first login: HTTP $code, want 200"; }
from=$(log_mark)
for i in 1 2 3 4 5; do
	code=$(call guess$i --interface 127.0.0.2 -u "guessed:guess-$i" "$ADMIN/")
	[ "$code" = 401 ] || fail "wrong password $i from 127.0.0.2: HTTP $code, want 401"
done
code=$(call locked --interface 127.0.0.2 -u guessed:guessed-secret "$ADMIN/")
retry=$(header locked Retry-After)
[ "$code" = 429 ] && [[ "$retry" =~ ^[0-9]+$ ]] && [ "$retry" -ge 1 ] && [ "$retry" -le 60 ] ||
	{ show locked; fail "the right password after five wrong ones: HTTP $code, Retry-After '$retry', want 429 and 1 to 60"; }
echo "   right password from 127.0.0.2: HTTP 429, Retry-After: $retry"
code=$(call locked-other -u guessed:guessed-secret "$ADMIN/")
[ "$code" = 429 ] || { show locked-other; fail "the right password from 127.0.0.1: HTTP $code, want 429 (the account is locked out, not the address)"; }
code=$(call locked-api -u guessed:guessed-secret -X POST "$ADMIN/api/challenges")
[ "$code" = 429 ] && [ -n "$(header locked-api Retry-After)" ] &&
	grep -qi '^Content-Type: application/json' "$WORK/locked-api.head" && json_error locked-api > /dev/null ||
	{ show locked-api; fail "the API for the locked account: HTTP $code, want a JSON 429 with Retry-After"; }
echo "   the API for the locked account: JSON 429 \"$(json_error locked-api)\""
code=$(call other --interface 127.0.0.2 -u "$creds" "$ADMIN/")
[ "$code" = 200 ] || fail "another account from 127.0.0.2: HTTP $code, want 200"
for i in 1 2 3 4 5; do
	code=$(call mdm-guess$i --interface 127.0.0.2 -u "mdm1:guess-$i" -X POST "$ADMIN/api/challenges")
	[ "$code" = 401 ] || fail "wrong password $i for mdm1: HTTP $code, want 401"
done
# Known credentials are not let through a lock-out: that the right one
# passes and a guess gets 429 would tell a guesser which is right.
code=$(call mdm-after --interface 127.0.0.2 -u mdm1:mdm-secret -X POST "$ADMIN/api/challenges")
[ "$code" = 429 ] || { show mdm-after; fail "mdm1's credentials, passed a moment before, after five guesses at mdm1: HTTP $code, want 429"; }
code=$(call mdm-wrong --interface 127.0.0.2 -u mdm1:guess-6 -X POST "$ADMIN/api/challenges")
[ "$code" = 429 ] || { show mdm-wrong; fail "a sixth guess at mdm1: HTTP $code, want 429 as for the right password"; }
echo "   mdm1 after five guesses: 429 for its known credentials as for a guess"
logged "$from" "security: admin: 5 failed logins for account guessed within 60 s, the last from 127.0.0.2" ||
	fail "the fifth failure is not logged"
logged "$from" "admin: refused GET /certsrv/mscep_admin/ from 127.0.0.2: account guessed is locked out after failed logins: 429" ||
	fail "the refused login is not logged"

check "the challenge service's bad request (a 64-byte account name, written by hand) is a 400 with its text, not a 500, for the API and the profile"
pwfile=$(sed -n 's/^AdminPasswordFile *= *//p' "$DATA/scepd.conf")
case "$pwfile" in /*) ;; *) pwfile="$DATA/$pwfile" ;; esac
[ -f "$pwfile" ] || fail "no AdminPasswordFile at $pwfile"
printf 'long-secret\n' | "$SCEPCTL" --data-dir "$DATA" passwd --rights mdm,enroll shortname 2>/dev/null ||
	fail "scepctl passwd shortname"
long=$(head -c 64 /dev/zero | tr '\0' l)
sed -i "s/^shortname:/$long:/" "$pwfile"
code=$(call longname -u "$long:long-secret" -X POST "$ADMIN/api/challenges")
[ "$code" = 400 ] && json_error longname | grep -q "account name longer than 63 bytes" ||
	{ show longname; fail "api/challenges for a 64-byte account: HTTP $code, want a JSON 400 naming the length"; }
echo "   HTTP 400 \"$(json_error longname)\""
from=$(log_mark)
code=$(call longname-profile -u "$long:long-secret" "$ADMIN/profile.mobileconfig?subject=CN=long")
[ "$code" = 400 ] && grep -q "account name longer than 63 bytes" "$WORK/longname-profile.body" ||
	{ show longname-profile; fail "a profile for a 64-byte account: HTTP $code, want a 400 naming the length"; }
logged "$from" "profile: no challenge password for $long: account name longer than 63 bytes" ||
	fail "the profile's refusal is not logged"
echo "   the profile: HTTP 400 \"$(cat "$WORK/longname-profile.body")\""

check "the Apple profile fetched by another site's page (a link, an image, a script) is 403 before any credential is looked at, and costs no password; the admin's own fetch is 200"
host=${ADMIN#http://}
host=${host%%/*}
profile="$ADMIN/profile.mobileconfig?subject=CN=csrf%20IPad&keysize=2048"
n1=$(outstanding)
from=$(log_mark)
# (name, headers a browser sends): Sec-Fetch-Site (any browser since
# about 2020-2023) other than same-origin or none; an Origin of another
# site (a script's fetch; another port of this host is another origin).
while IFS='|' read -r name h1 h2; do
	set -- -H "$h1"
	[ -z "$h2" ] || set -- "$@" -H "$h2"
	code=$(call "cs-$name" -u "$creds" "$@" "$profile")
	[ "$code" = 403 ] && grep -q "from another site's page are refused" "$WORK/cs-$name.body" ||
		{ cat "$WORK/cs-$name.head"; fail "the profile fetched with $h1${h2:+ and $h2}: HTTP $code, want 403"; }
	! grep -q "PayloadContent\|Challenge" "$WORK/cs-$name.body" || fail "$name: a profile in the 403"
done <<HEADERS
cross-site|Sec-Fetch-Site: cross-site|Referer: http://evil.example/page
same-site|Sec-Fetch-Site: same-site|Referer: http://www.evil.example/
origin|Origin: http://evil.example|
port|Origin: http://${host%:*}:1|
HEADERS
# (the refusal comes first: no credentials, the same 403, not a 401)
code=$(call cs-nocreds -H "Sec-Fetch-Site: cross-site" "$profile")
[ "$code" = 403 ] || { show cs-nocreds; fail "a cross-site fetch without credentials: HTTP $code, want 403"; }
logged "$from" "admin: refused GET /certsrv/mscep_admin/profile.mobileconfig from 127.0.0.1: made by another site's page (Sec-Fetch-Site)" &&
	logged "$from" "admin: refused GET /certsrv/mscep_admin/profile.mobileconfig from 127.0.0.1: made by another site's page (Origin)" ||
	fail "the refusals are not logged, with the header that told"
n2=$(outstanding)
[ "$n2" = "$n1" ] || fail "outstanding passwords: $n1 before, $n2 after five refused fetches of the profile"
# The admin's own browser: the URL typed in (none), a link of the page
# itself (same-origin, and its Origin as a script's fetch sends it).
code=$(call cs-typed -u "$creds" -H "Sec-Fetch-Site: none" "$profile")
[ "$code" = 200 ] || { show cs-typed; fail "the profile fetched by the admin (Sec-Fetch-Site: none): HTTP $code, want 200"; }
code=$(call cs-same -u "$creds" -H "Sec-Fetch-Site: same-origin" -H "Origin: http://$host" \
	-H "Referer: http://$host/certsrv/mscep_admin/" "$profile")
[ "$code" = 200 ] && grep -qi '^Content-Type: application/x-apple-aspen-config' "$WORK/cs-same.head" ||
	{ show cs-same; fail "the profile fetched from the admin page (same-origin): HTTP $code, want a 200 profile"; }
n3=$(outstanding)
[ "$n3" = $((n1 + 2)) ] || fail "outstanding passwords: $n1 before the two profiles, $n3 after, want $((n1 + 2))"
echo "   cross-site, same-site, another Origin, another port: 403, $n1 outstanding after; same-origin and typed: 200, $n3"

check "UseSinglePassword = 1, none set: api/challenges and the page 409 with the service's reason, no 'wait until a password is used'"
set_conf challenge UseSinglePassword 1
server_restart
code=$(call nosingle-api -u mdm1:mdm-secret -X POST "$ADMIN/api/challenges")
[ "$code" = 409 ] && json_error nosingle-api | grep -q "no single password is set" ||
	{ show nosingle-api; fail "api/challenges without a single password: HTTP $code, want a JSON 409 naming it"; }
echo "   api/challenges: HTTP 409 \"$(json_error nosingle-api)\""
code=$(call nosingle-json -u "$creds" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 409 ] && json_error nosingle-json | grep -q "no single password is set" ||
	{ show nosingle-json; fail "the page as JSON without a single password: HTTP $code, want 409"; }
code=$(call nosingle-html -u "$creds" "$ADMIN/")
[ "$code" = 409 ] && grep -q "no single password is set" "$WORK/nosingle-html.body" ||
	{ show nosingle-html; fail "the page without a single password: HTTP $code, want 409 naming it"; }
! grep -q "wait until a password is used" "$WORK/nosingle-html.body" ||
	fail "the page tells to wait until a password is used, for a refusal no wait ends"
echo "   the page: HTTP 409 with the reason, no advice to wait"

check "api/single-password: a JSON body not sent as application/json is 415 and changes nothing"
forged='{"password":"forged-single-1"}'
code=$(call plain -u "$creds" -X POST -H 'Content-Type: text/plain' --data-binary "$forged" "$ADMIN/api/single-password")
[ "$code" = 415 ] && grep -qi '^Content-Type: application/json' "$WORK/plain.head" &&
	json_error plain | grep -q "application/json" ||
	{ show plain; fail "text/plain with a JSON body: HTTP $code, want a JSON 415"; }
echo "   text/plain: HTTP 415 \"$(json_error plain)\""
code=$(call form -u "$creds" -X POST -d "$forged" "$ADMIN/api/single-password")
[ "$code" = 415 ] || fail "application/x-www-form-urlencoded (curl -d): HTTP $code, want 415"
code=$(call multipart -u "$creds" -X POST -F "password=forged-single-1" "$ADMIN/api/single-password")
[ "$code" = 415 ] || fail "multipart/form-data: HTTP $code, want 415"
code=$(call notype -u "$creds" -X POST -H 'Content-Type:' --data-binary "$forged" "$ADMIN/api/single-password")
[ "$code" = 415 ] || fail "a body without Content-Type: HTTP $code, want 415"
code=$(call jsonlike -u "$creds" -X POST -H 'Content-Type: application/jsonx' --data-binary "$forged" "$ADMIN/api/single-password")
[ "$code" = 415 ] || fail "Content-Type: application/jsonx: HTTP $code, want 415"
echo "   urlencoded, multipart, none, application/jsonx: HTTP 415"
code=$(call unchanged -u "$creds" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 409 ] && json_error unchanged | grep -q "no single password is set" ||
	{ show unchanged; fail "after the refused posts: HTTP $code, want the 409 of no single password"; }
rc=0
ios_enroll "forged-single-1" "CN=forged single" "$WORK/forged.pem" > /dev/null || rc=$?
[ $rc != 0 ] || fail "the forged single password enrolls"
echo "   no single password was set"

check "api/single-password: a text/plain post with only another site's Origin (no Sec-Fetch-Site, no Referer) is 403, changes nothing; the admin's own post sets it"
# An older browser's form, Referer withheld (Referrer-Policy no-referrer):
# Origin alone tells. 403, not the 415 of its type: refused first.
from=$(log_mark)
code=$(call origin-only -u "$creds" -X POST -H "Origin: http://evil.example" -H 'Content-Type: text/plain' \
	--data-binary '{"password":"forged-single-2"}' "$ADMIN/api/single-password")
[ "$code" = 403 ] && grep -q "from another site's page are refused" "$WORK/origin-only.body" ||
	{ show origin-only; fail "a text/plain post with another Origin only: HTTP $code, want 403"; }
logged "$from" "admin: refused POST /certsrv/mscep_admin/api/single-password from 127.0.0.1: made by another site's page (Origin)" ||
	fail "the refusal is not logged as told by Origin"
code=$(call origin-only-after -u "$creds" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 409 ] && json_error origin-only-after | grep -q "no single password is set" ||
	{ show origin-only-after; fail "after the refused post: HTTP $code, want the 409 of no single password"; }
rc=0
ios_enroll "forged-single-2" "CN=forged single 2" "$WORK/forged2.pem" > /dev/null || rc=$?
[ $rc != 0 ] || fail "the single password another site's page posted enrolls"
# The admin page's own post: its Origin, as JSON.
code=$(call origin-same -u "$creds" -X POST -H "Origin: http://$host" -H 'Content-Type: application/json' \
	--data-binary '{"password":"the-admins-single-0"}' "$ADMIN/api/single-password")
[ "$code" = 200 ] || { show origin-same; fail "the admin's post with this server's Origin: HTTP $code, want 200"; }
ios_enroll "the-admins-single-0" "CN=single same origin" "$WORK/single0.pem" > /dev/null ||
	fail "the single password the admin's same-origin post set does not enroll"
echo "   another Origin alone: 403, nothing set; this server's Origin: 200, it enrolls"

check "api/single-password with application/json (a charset too) sets it"
code=$(call setjson -u "$creds" -X POST -H 'Content-Type: Application/JSON; charset=utf-8' \
	--data-binary '{"password":"the-admins-single-1"}' "$ADMIN/api/single-password")
[ "$code" = 200 ] || { show setjson; fail "application/json; charset=utf-8: HTTP $code, want 200"; }
code=$(call single -u "$creds" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 200 ] && grep -q '"single": true' "$WORK/single.body" ||
	{ show single; fail "the page after setting it: HTTP $code"; }
code=$(call nobody -u "$creds" -X POST "$ADMIN/api/single-password")
[ "$code" = 200 ] || { show nobody; fail "no body, no Content-Type (the server makes one): HTTP $code, want 200"; }
single=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$WORK/nobody.body")
ios_enroll "$single" "CN=single device" "$WORK/single.pem" > /dev/null || fail "the single password made does not enroll"
verify_cert "$WORK/single.pem"

check "every answer holding a password is kept by no cache and shown in no frame: Cache-Control no-store, CSP, X-Frame-Options DENY"
code=$(call page-html -u "$creds" "$ADMIN/")
[ "$code" = 200 ] || { show page-html; fail "the admin page: HTTP $code"; }
# mdm-before: api/challenges' 200, before UseSinglePassword.
for n in page-html single nobody mdm-before; do
	[ "$(header $n Cache-Control)" = no-store ] && [ "$(header $n X-Frame-Options)" = DENY ] &&
		header $n Content-Security-Policy | grep -q "default-src 'none'" ||
		{ show $n; fail "$n: Cache-Control '$(header $n Cache-Control)', X-Frame-Options '$(header $n X-Frame-Options)', CSP '$(header $n Content-Security-Policy)'"; }
done

check "two password checks at once (each made to take 1.5 s): ten more logins get 429 with Retry-After: 1 at once; a device enrolls meanwhile"
set_conf challenge UseSinglePassword 0
set_conf challenge PasswordMax 50 # each login that passes issues one
set_conf frontend UpstreamThreads 8
server_stop
SCEPD_TEST_ADMIN_CHECK_MS=1500 server_start
pw=$(challenge)
from=$(log_mark)
declare -a client
for i in $(seq 12); do
	# Each from an address of its own: no per-address limit is reached.
	curl -s -m 20 -D "$WORK/crowd$i.head" -o "$WORK/crowd$i.body" -w '%{http_code} %{time_total}\n' \
		--interface "127.0.0.$((20 + i))" -u "$creds" -H 'Accept: application/json' "$ADMIN/" \
		> "$WORK/crowd$i.code" &
	client[i]=$!
done
rc=0
ios_enroll "$pw" "CN=device among logins" "$WORK/crowd-device.pem" > /dev/null || rc=$?
ok=0 busy=0
for i in $(seq 12); do
	wait "${client[i]}" || fail "login $i: no answer"
	read -r code secs < "$WORK/crowd$i.code"
	case "$code" in
	200)
		ok=$((ok + 1))
		awk -v s="$secs" 'BEGIN { exit !(s >= 1.4) }' || fail "login $i: 200 in $secs s, without the check's 1.5 s"
		;;
	429)
		busy=$((busy + 1))
		[ "$(header "crowd$i" Retry-After)" = 1 ] || fail "login $i: 429 with Retry-After '$(header "crowd$i" Retry-After)', want 1"
		awk -v s="$secs" 'BEGIN { exit !(s < 1.0) }' || fail "login $i: 429 after $secs s, not at once"
		json_error "crowd$i" | grep -q "Too many logins at once" ||
			{ show "crowd$i"; fail "login $i: the 429 is not the JSON of too many logins at once"; }
		;;
	*) fail "login $i: HTTP $code" ;;
	esac
done
echo "   12 logins at once: $ok answered 200 (1.5 s each), $busy 429 at once"
[ $ok -ge 2 ] || fail "$ok logins got through, want the two places used"
[ $busy -ge 8 ] || fail "only $busy of 12 logins refused with two places for 1.5 s each: checks ran more than two at once"
[ $rc = 0 ] || fail "the device's enrollment among the logins: exit $rc"
verify_cert "$WORK/crowd-device.pem"
logged "$from" "admin: refused GET /certsrv/mscep_admin/ from 127.0.0.[0-9]*: 2 password checks under way: 429" ||
	fail "the refused logins are not logged"
code=$(call after -u "$creds" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 200 ] || fail "a login after the crowd: HTTP $code, want 200 (the places given back)"
code=$(call after2 -u "$creds" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 200 ] || fail "a second login after the crowd: HTTP $code, want 200"

check "the same credentials again (an MDM asking a password per device): six logins at once, all 200 without a check's 1.5 s; the password changed, the old one is checked in full and refused"
for i in $(seq 6); do
	curl -s -m 20 -o "$WORK/again$i.body" -w '%{http_code} %{time_total}\n' \
		-u "$creds" -H 'Accept: application/json' "$ADMIN/" > "$WORK/again$i.code" &
	client[i]=$!
done
for i in $(seq 6); do
	wait "${client[i]}" || fail "login $i: no answer"
	read -r code secs < "$WORK/again$i.code"
	[ "$code" = 200 ] || fail "known credentials, login $i of 6 at once: HTTP $code, want 200"
	awk -v s="$secs" 'BEGIN { exit !(s < 1.0) }' || fail "known credentials, login $i: $secs s, checked again"
done
rights=$(grep "^$user:" "$DATA/admin/admin.passwd" | cut -d: -f3)
printf 'changed-secret\n' | "$SCEPCTL" --data-dir "$DATA" passwd --rights "$rights" "$user" 2>/dev/null ||
	fail "scepctl passwd $user"
start=$SECONDS
code=$(call oldpw -u "$creds" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 401 ] || fail "the old password after it was changed: HTTP $code, want 401"
code=$(call newpw -u "$user:changed-secret" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 200 ] || fail "the new password: HTTP $code, want 200"
[ $((SECONDS - start)) -ge 2 ] || fail "the old and the new password were not checked in full ($((SECONDS - start)) s)"

check "a password issued for a page or an API answer that could not be made (no memory) is withdrawn: 500, logged, no more outstanding than before"
server_stop
SCEPD_TEST_ADMIN_RENDER_FAIL=1 server_start
n1=$(outstanding)
from=$(log_mark)
code=$(call norender-api -u mdm1:mdm-secret -X POST "$ADMIN/api/challenges")
[ "$code" = 500 ] || { show norender-api; fail "the API's answer not made: HTTP $code, want 500"; }
code=$(call norender-page -u "$user:changed-secret" "$ADMIN/")
[ "$code" = 500 ] || { show norender-page; fail "the page not made: HTTP $code, want 500"; }
logged "$from" "admin: the password issued for the MDM API for mdm1, not handed out, is withdrawn" ||
	fail "the API's password is not withdrawn"
logged "$from" "admin: the password issued for the admin page for $user, not handed out, is withdrawn" ||
	fail "the page's password is not withdrawn"
n2=$(outstanding)
[ "$n2" = "$n1" ] || fail "outstanding passwords: $n1 before, $n2 after two answers not made"
echo "   two 500s, $n1 outstanding before and after"

check "failed logins for 64 account names within a minute (someone trying names): every login gets 429, a known one too"
server_stop
server_start
code=$(call known -u "$user:changed-secret" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 200 ] || fail "a login before the names are tried: HTTP $code, want 200"
from=$(log_mark)
for i in $(seq 65); do
	code=$(call "name$i" -u "name-$i:guess" "$ADMIN/")
	[ "$code" = 401 ] || fail "name $i: HTTP $code, want 401"
done
code=$(call after-names -u guessed:guessed-secret "$ADMIN/")
[ "$code" = 429 ] || { show after-names; fail "an account not seen lately after 65 names were tried: HTTP $code, want 429"; }
code=$(call known-after -u "$user:changed-secret" -H 'Accept: application/json' "$ADMIN/")
[ "$code" = 429 ] || fail "the known login after 65 names were tried: HTTP $code, want 429"
logged "$from" "security: admin: failed logins for 64 account names within 60 s" ||
	fail "the lock-out of every login is not logged"

check "/metrics with two RAs (RAEndpoint = a b): each RA's samples under its endpoint, its own scepd_up; one stopped reads 0"
sed -e 's|^Listen = ipc://run/ra.sock|Listen = ipc://run/ra2.sock|' "$DATA/scepd.conf" > "$DATA/ra2.conf"
grep -q '^Listen = ipc://run/ra2.sock' "$DATA/ra2.conf" || fail "no [ra] Listen line to change in scepd.conf"
set_conf frontend RAEndpoint "ipc://run/ra.sock ipc://run/ra2.sock"
server_restart
"$BUILD_DIR/scepd-ra" --config "$DATA/ra2.conf" >> "$WORK/ra2.log" 2>&1 &
ra2=$!
on_exit "kill $ra2 2>/dev/null"
for _ in $(seq 50); do [ -S "$DATA/run/ra2.sock" ] && break; sleep 0.1; done
sleep 1 # the frontend's connections to it
# Unreadable PKIOperations, each one RA's "unanswerable": in turn.
for _ in $(seq 8); do
	curl -s -o /dev/null --data-binary 'MIIBAAAA' -H 'Content-Type: application/x-pki-message' \
		"$URL?operation=PKIOperation"
done
for n in 1 2 3; do curl -sf "$BASE/metrics" > "$WORK/metrics2-$n.txt" || fail "/metrics"; done
python3 - "$DATA/run" "$WORK"/metrics2-{1,2,3}.txt <<'PY' || fail "/metrics with two RAs: see above"
import re, sys
run, files = sys.argv[1], sys.argv[2:]
def samples(f):
    out = {}
    for line in open(f):
        m = re.match(r'(scepd_up|scepd_ra_pki_operations_total)\{(.*)\} (\S+)$', line.strip())
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out
got = [samples(f) for f in files]
# The endpoints as the frontend resolved them (ipc:// paths absolute).
ends = sorted(re.match(r'service="ra",endpoint="(.*)"$', k[1]).group(1)
              for k in got[0] if k[0] == "scepd_up" and "endpoint=" in k[1])
assert len(ends) == 2 and ends[0].endswith("run/ra.sock") and ends[1].endswith("run/ra2.sock"), \
    "scepd_up's RA endpoints: %r" % ends
for e in ends:
    key = ("scepd_up", 'service="ra",endpoint="%s"' % e)
    assert got[0].get(key) == 1, "%s: %r" % (key, got[0].get(key))
each = [got[0].get(("scepd_ra_pki_operations_total", 'endpoint="%s",outcome="unanswerable"' % e), 0) for e in ends]
assert sum(each) == 8 and min(each) > 0, "unanswerable by endpoint %r, want 8 in all, both some" % each
assert got[0] == got[1] == got[2], "three scrapes differ: a counter moved without requests"
print("   unanswerable by endpoint %s, the same in three scrapes; scepd_up 1 for both" % each)
PY
kill "$ra2"
wait "$ra2" 2>/dev/null || true
sleep 0.5 # its connections closed
t0=$(date +%s%N)
curl -sf "$BASE/metrics" > "$WORK/metrics3.txt" || fail "/metrics"
took=$((($(date +%s%N) - t0) / 1000000))
# Not RPCTimeout (5 s) per stopped endpoint: a scrape of several would
# pass Prometheus's own timeout (10 s) and lose every sample.
[ "$took" -lt 2000 ] || fail "/metrics with one RA stopped took $took ms"
grep -qx 'scepd_up{service="ra",endpoint="ipc://.*/run/ra2.sock"} 0' "$WORK/metrics3.txt" &&
	grep -qx 'scepd_up{service="ra",endpoint="ipc://.*/run/ra.sock"} 1' "$WORK/metrics3.txt" ||
	fail "the stopped RA's scepd_up: $(grep '^scepd_up' "$WORK/metrics3.txt" | tr '\n' ' ')"
echo "   $(grep '^scepd_up{service="ra"' "$WORK/metrics3.txt" | tr '\n' ' ')($took ms)"

pass "charset in the 401; 429 after five failures per account or for 64 account names, and beyond two checks at once (a device enrolls meanwhile); known credentials not checked again, a changed password checked; 415 for a non-JSON body; 403 for another site's profile fetch or Origin-only post; 409/400 for the challenge service's refusals; /metrics typed once per name, each of two RAs under its endpoint"
