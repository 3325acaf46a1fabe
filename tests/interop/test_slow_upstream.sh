#!/usr/bin/env bash
# A slow or stopped service behind the frontend holds up only the requests
# that need it. With the CA stopped (SIGSTOP: a hung HSM, a CA host gone
# from the network) and more enrollments waiting on it than the frontend
# has HTTP threads, GetCACaps, GetCACert and /healthz are still answered
# at once, from a cache older than its lifetime too (the RA's workers all
# wait on the CA), but not an old CRL (a revocation must show within its
# minute): one request asks, the others meanwhile get the old CRL at once,
# and so does everyone for 10 s after the RA did not give one. The
# enrollments complete when the CA continues. With every UpstreamThread
# busy, a request that waited RPCTimeout for one gets 503 with
# Retry-After at once rather than a longer wait; on the MDM API that 503
# is JSON, as its other errors; a client that is not loopback is refused
# /metrics and the admin page at once, an admin POST's body unread. A
# frontend started while the RA is down, with nothing cached, lets one
# request at a time ask it and answers the others 503 at once rather
# than hold an UpstreamThread per device; with
# a copy too old to give unasked, one request at a time asks the RA that
# did not answer, the others get the copy at once. A frontend stopped
# with a request waiting on the RA sends the answer made meanwhile.
. "$(dirname "$0")/lib.sh"
interop_init slow_upstream
grep -q SCEPD_TEST_FRONTEND_CACHE_MS "$BUILD_DIR/scepd-frontend" ||
	fail "the frontend has no test hooks: build with -DSCEPD_TEST_HOOKS=ON (scripts/test.sh does)"
server_start
server_stop
set_conf frontend Threads 2
set_conf challenge PasswordMax 20
# Test hook: the cache's 60 s lifetime made 1.5 s.
SCEPD_TEST_FRONTEND_CACHE_MS=1500 server_start

n=8
declare -a pw client
for i in $(seq $((n + 4))); do # a key per device, four for the end
	openssl genrsa -out "$WORK/k$i.key" 2048 2>/dev/null
done
for i in $(seq $n); do
	pw[i]=$(challenge)
done
# The answers cached before the CA stops.
curl -sf -o /dev/null "$URL?operation=GetCACaps" || fail "GetCACaps"
curl -sf -o /dev/null "$URL?operation=GetCACert&message=CA" || fail "GetCACert"
curl -sf -o "$WORK/crl0.der" "$BASE/crl/ca.crl" || fail "the CRL"

ca=$(service_pid scepd-ca)
[ -n "$ca" ] || fail "no scepd-ca"
kill -STOP "$ca"
on_exit "kill -CONT $ca 2>/dev/null"
for i in $(seq $n); do
	"$IOS_CLIENT" --url "$URL" --challenge "${pw[i]}" --subject "CN=slow-$i" \
		--key "$WORK/k$i.key" --out "$WORK/c$i.pem" > "$WORK/c$i.log" 2>&1 &
	client[i]=$!
done
sleep 2 # each sends GetCACert, GetCACaps, then PKIOperation, and waits

check "with the CA stopped and $n enrollments waiting on it (Threads = 2), GetCACaps, GetCACert (older than the cache's lifetime) and /healthz come at once"
answered() { # what URL: "CODE SECONDS"
	curl -s -m 10 -o /dev/null -w '%{http_code} %{time_total}' "$2" || true
}
for what in "GetCACaps $URL?operation=GetCACaps" \
	"GetCACert $URL?operation=GetCACert&message=CA" "/healthz $BASE/healthz"; do
	# shellcheck disable=SC2086 # two words: the name and the URL
	read -r code secs <<< "$(answered $what)"
	echo "   ${what%% *}: HTTP $code in $secs s"
	[ "$code" = 200 ] || fail "${what%% *} while the CA is stopped: HTTP $code"
	awk -v s="$secs" 'BEGIN { exit !(s < 1.0) }' ||
		fail "${what%% *} took $secs s: it waited behind the stopped CA"
done

check "the CRL, older than its lifetime, is asked of the stopped CA, not answered old at once"
curl -s -m 20 -o "$WORK/crl.der" -w '%{http_code}' "$BASE/crl/ca.crl" > "$WORK/crl.code" &
crl_fetch=$!
sleep 1.2
kill -0 "$crl_fetch" 2>/dev/null || fail "the CRL came at once: an old one was answered without asking the CA"

check "meanwhile the CRL is asked once: other relying parties get the old one at once (they took every UpstreamThread)"
declare -a crl_client # not client[]: those enrollments are waited for below
for i in 1 2 3 4; do
	curl -s -m 10 -o "$WORK/crl-old$i.der" -w '%{http_code} %{time_total}' "$BASE/crl/ca.crl" > "$WORK/crl-old$i.code" &
	crl_client[i]=$!
done
for i in 1 2 3 4; do
	wait "${crl_client[i]}" || true
	read -r code secs <<< "$(cat "$WORK/crl-old$i.code")"
	[ "$code" = 200 ] && awk -v s="$secs" 'BEGIN { exit !(s < 1.0) }' ||
		fail "CRL request $i while another asks the stopped CA: HTTP $code in $secs s"
	cmp -s "$WORK/crl-old$i.der" "$WORK/crl0.der" || fail "CRL request $i: not the CRL fetched before"
done
echo "   four more CRL requests: the old CRL in $(cut -d' ' -f2 "$WORK"/crl-old*.code | sort -n | tail -1) s at most"

check "the CA continues: every waiting enrollment gets its certificate, and the CRL comes"
kill -CONT "$ca"
wait "$crl_fetch" || true
[ "$(cat "$WORK/crl.code")" = 200 ] || fail "the CRL: HTTP $(cat "$WORK/crl.code")"
openssl crl -inform DER -in "$WORK/crl.der" -noout 2>/dev/null || fail "the CRL is not a CRL"
for i in $(seq $n); do
	rc=0
	wait "${client[i]}" || rc=$?
	[ $rc = 0 ] || { cat "$WORK/c$i.log"; fail "enrollment $i: exit $rc"; }
	verify_cert "$WORK/c$i.pem"
done

check "UpstreamThreads = 1, RPCTimeout = 1000: requests that waited that long for the thread get 503 with Retry-After"
server_stop
set_conf frontend UpstreamThreads 1
set_conf frontend RPCTimeout 1000
server_start
curl -sf -o /dev/null "$URL?operation=GetCACaps" || fail "GetCACaps"
curl -sf -o /dev/null "$URL?operation=GetCACert&message=CA" || fail "GetCACert"
ca=$(service_pid scepd-ca)
on_exit "kill -CONT $ca 2>/dev/null"
from=$(log_mark)
kill -STOP "$ca"
start=$SECONDS
for i in 1 2 3 4; do
	pw[i]=$(challenge)
done
for i in 1 2 3 4; do
	"$IOS_CLIENT" --url "$URL" --challenge "${pw[i]}" --subject "CN=queued-$i" \
		--key "$WORK/k$((n + i)).key" --out "$WORK/q$i.pem" > "$WORK/q$i.log" 2>&1 &
	client[i]=$!
done
sleep 0.5
read -r code secs <<< "$(answered GetCACaps "$URL?operation=GetCACaps")"
[ "$code" = 200 ] && awk -v s="$secs" 'BEGIN { exit !(s < 1.0) }' ||
	fail "GetCACaps with the only UpstreamThread busy: HTTP $code in $secs s"
for i in 1 2 3 4; do
	rc=0
	wait "${client[i]}" || rc=$?
	[ $rc = 1 ] && grep -q 503 "$WORK/q$i.log" ||
		{ cat "$WORK/q$i.log"; fail "enrollment $i with the CA stopped: exit $rc, want HTTP 503"; }
done
logged "$from" "for one of the 1 UpstreamThreads in \[frontend\] (RPCTimeout = 1000): answered 503" ||
	fail "no request was answered 503 for its wait in the queue"
kill -CONT "$ca"
echo "   four enrollments answered 503 in $((SECONDS - start)) s"

check "the CA continues: a device's retry enrolls"
"$IOS_CLIENT" --url "$URL" --challenge "${pw[1]}" --subject "CN=queued-1" \
	--key "$WORK/k$((n + 1)).key" --out "$WORK/q1.pem" > "$WORK/q1.log" 2>&1 ||
	{ cat "$WORK/q1.log"; fail "the retry after the CA came back"; }
verify_cert "$WORK/q1.pem"

check "the MDM API with the challenge service stopped: every answer, the queue's 503 too, is JSON with Retry-After"
printf 'mdm-secret\n' | "$SCEPCTL" --data-dir "$DATA" passwd --rights mdm mdm1 2>/dev/null ||
	fail "scepctl passwd --rights mdm"
chal=$(service_pid scepd-challenge)
[ -n "$chal" ] || fail "no scepd-challenge"
on_exit "kill -CONT $chal 2>/dev/null"
from=$(log_mark)
kill -STOP "$chal"
# One runs for RPCTimeout; of the two behind it, one at least waits
# longer than that for the only UpstreamThread.
ADMIN="$BASE/certsrv/mscep_admin"
for i in 1 2 3; do
	curl -s -m 10 -D "$WORK/api$i.head" -o "$WORK/api$i.json" -u mdm1:mdm-secret \
		-X POST "$ADMIN/api/challenges" &
	client[i]=$!
done
for i in 1 2 3; do
	wait "${client[i]}" || fail "MDM API request $i: no answer"
	head -1 "$WORK/api$i.head" | grep -q ' 503' || { cat "$WORK/api$i.head"; fail "MDM API request $i: want 503"; }
	grep -qi '^Content-Type: application/json' "$WORK/api$i.head" &&
		grep -qi '^Retry-After:' "$WORK/api$i.head" &&
		python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["error"]' "$WORK/api$i.json" ||
		{ cat "$WORK/api$i.head" "$WORK/api$i.json"; fail "MDM API request $i: its 503 is not JSON with Retry-After"; }
	echo "   request $i: 503 $(tr -d '\n' < "$WORK/api$i.json")"
done
logged "$from" "POST /certsrv/mscep_admin/api/challenges from .* for one of the 1 UpstreamThreads" ||
	fail "no MDM API request was answered 503 for its wait in the queue"
kill -CONT "$chal"

check "an MDM that gives up while the challenge service is slow: the password made for it is withdrawn, not left to count against its MdmPasswordMax"
sleep 1.5 # the 503s' requests done
from=$(log_mark)
kill -STOP "$chal"
t0=$(date +%s%N)
curl -s -m 0.2 -o /dev/null -u mdm1:mdm-secret -X POST "$ADMIN/api/challenges" && fail "curl did not give up"
kill -CONT "$chal" # within RPCTimeout (1000 ms): the password is made
echo "   the challenge service continued $(( ($(date +%s%N) - t0) / 1000000 )) ms after the request (RPCTimeout 1000)"
await_logged "$from" "POST /certsrv/mscep_admin/api/challenges from 127.0.0.1: the client went away while its answer was made" 5 ||
	fail "the frontend did not see that the client had gone"
await_logged "$from" "admin: the password issued for the MDM API for mdm1, not handed out, is withdrawn" 5 ||
	fail "the password made for a client that left was not withdrawn"

# Stops the RA (SIGSTOP; SIGCONT at exit); its pid in $ra, the frontend's
# in $fe.
stop_ra() {
	ra=$(service_pid scepd-ra)
	fe=$(service_pid scepd-frontend)
	[ -n "$ra" ] && [ -n "$fe" ] || fail "no scepd-ra or scepd-frontend"
	on_exit "kill -CONT $ra 2>/dev/null"
	kill -STOP "$ra"
}

check "a client that is not loopback (X-Forwarded-For), the only UpstreamThread busy: /metrics and the admin page refuse it at once, an admin POST's body unread"
# They waited behind the busy thread for it to say 403; an admin POST's
# body was read and kept meanwhile.
stop_ra
# A loopback /metrics asks the stopped RA: the thread is busy RPCTimeout.
curl -s -m 10 -o /dev/null "$BASE/metrics" &
busy=$!
sleep 0.3
# refused WHAT URL [curl args]: 403 for loopback clients only, at once,
# and what curl sent of a body in $sent
refused() {
	local what=$1 url=$2 code secs
	shift 2
	read -r code sent secs <<< "$(curl -s -m 10 -o "$WORK/refused.txt" -w '%{http_code} %{size_upload} %{time_total}' \
		-H "X-Forwarded-For: 192.0.2.7" "$@" "$url" || true)"
	echo "   $what: HTTP $code in $secs s, $sent bytes sent: $(tr -d "\n" < "$WORK/refused.txt" | head -c 100)"
	[ "$code" = 403 ] && grep -q "loopback clients only" "$WORK/refused.txt" &&
		awk -v s="$secs" 'BEGIN { exit !(s < 0.5) }' ||
		fail "$what from a client that is not loopback: HTTP $code in $secs s, want its 403 at once"
}
refused /metrics "$BASE/metrics"
refused "the admin page" "$ADMIN/" -u mdm1:mdm-secret
# An NDES administrator opens it from a workstation: told the ways in.
grep -q "ssh -L" "$WORK/refused.txt" && grep -q "scepctl challenge" "$WORK/refused.txt" ||
	fail "the admin page's 403 does not say how to reach it (a tunnel, scepctl challenge)"
refused "the MDM API" "$ADMIN/api/challenges" -X POST -u mdm1:mdm-secret
grep -qi '^Content-Type: application/json' <(curl -s -D - -o /dev/null -H "X-Forwarded-For: 192.0.2.7" \
	-u mdm1:mdm-secret -X POST "$ADMIN/api/challenges") || fail "the MDM API's 403 is not JSON"
# A client that asks first (Expect: 100-continue) is told 403, not to send.
head -c 600000 /dev/zero | tr '\0' 'a' > "$WORK/big.json"
refused "an admin POST of 600,000 bytes" "$ADMIN/api/single-password" -u mdm1:mdm-secret \
	-H "Content-Type: application/json" -H "Expect: 100-continue" --expect100-timeout 5 \
	--data-binary "@$WORK/big.json"
[ "$sent" = 0 ] || fail "the refused admin POST's body was read: curl sent $sent bytes"
# A path under the admin page that no page has: 404, as to anyone, at once
# and its body unread too.
read -r code sent secs <<< "$(curl -s -m 10 -o "$WORK/refused.txt" -w '%{http_code} %{size_upload} %{time_total}' \
	-H "X-Forwarded-For: 192.0.2.7" -u mdm1:mdm-secret -H "Content-Type: application/json" \
	-H "Expect: 100-continue" --expect100-timeout 5 --data-binary "@$WORK/big.json" "$ADMIN/no-such-page" || true)"
echo "   an admin POST of 600,000 bytes to no page: HTTP $code in $secs s, $sent bytes sent"
[ "$code" = 404 ] && [ "$sent" = 0 ] && awk -v s="$secs" 'BEGIN { exit !(s < 0.5) }' ||
	fail "a POST to no admin page from a client that is not loopback: HTTP $code in $secs s, $sent bytes sent; want 404 at once, the body unread"
wait "$busy" || true
kill -CONT "$ra"

check "the RA stopped, the CA certificates cached longer ago than they are given unasked: after an ask it did not answer, one request asks at a time, the others get the old copy at once"
# Each asked the RA and held an UpstreamThread for RPCTimeout (1000).
server_stop
set_conf frontend UpstreamThreads 8
# Test hook: the cache's 60 s made 0.3 s (its 600 s 3 s).
SCEPD_TEST_FRONTEND_CACHE_MS=300 server_start
curl -sf -o "$WORK/cacert0.der" "$URL?operation=GetCACert&message=CA" || fail "GetCACert"
stop_ra
sleep 3.2 # the copy is older than 3 s
# get_cacert NAME: GetCACert into $WORK/NAME.der, "CODE SECONDS" into
# $WORK/NAME.code
get_cacert() {
	curl -s -m 10 -o "$WORK/$1.der" -w '%{http_code} %{time_total}' \
		"$URL?operation=GetCACert&message=CA" > "$WORK/$1.code" || true
}
# old_copy NAME TEST: answered 200 with the copy fetched before, in
# SECONDS that pass TEST
old_copy() {
	local code secs
	read -r code secs <<< "$(cat "$WORK/$1.code")"
	echo "   $1: HTTP $code in $secs s"
	[ "$code" = 200 ] && awk -v s="$secs" "BEGIN { exit !(s $2) }" ||
		fail "GetCACert ($1) with the RA stopped: HTTP $code in $secs s, want 200 in $2 s"
	cmp -s "$WORK/$1.der" "$WORK/cacert0.der" || fail "GetCACert ($1): not the copy fetched before"
}
get_cacert asked
old_copy asked ">= 0.9"
sleep 0.5 # past the 0.3 s after a failed ask when everyone gets the copy
get_cacert probe &
probe=$!
sleep 0.3
crowd=()
for i in $(seq 6); do
	get_cacert "crowd$i" &
	crowd+=($!)
done
wait "${crowd[@]}"
for i in $(seq 6); do
	old_copy "crowd$i" "< 0.5"
done
wait "$probe"
old_copy probe ">= 0.9"
kill -CONT "$ra"
set_conf frontend UpstreamThreads 1

check "the RA did not give the CRL: for 10 s the old CRL is the answer at once"
server_stop
SCEPD_TEST_FRONTEND_CACHE_MS=1500 server_start
curl -sf -o "$WORK/crl1.der" "$BASE/crl/ca.crl" || fail "the CRL"
ca=$(service_pid scepd-ca)
on_exit "kill -CONT $ca 2>/dev/null"
kill -STOP "$ca"
sleep 1.6 # the cached CRL is old (test hook: 1.5 s)
for i in 1 2; do
	curl -s -m 10 -D "$WORK/crl-failed$i.headers" -o "$WORK/crl-failed$i.der" -w '%{http_code} %{time_total}' \
		"$BASE/crl/ca.crl" > "$WORK/crl-failed$i.code" || true
	read -r code secs <<< "$(cat "$WORK/crl-failed$i.code")"
	echo "   CRL request $i with the CA stopped: HTTP $code in $secs s"
	[ "$code" = 200 ] || fail "CRL request $i with the CA stopped: HTTP $code, want the old CRL"
	cmp -s "$WORK/crl-failed$i.der" "$WORK/crl1.der" || fail "CRL request $i: not the CRL fetched before"
	# Past its time: a cache on the way is to ask again, not keep it.
	tr -d '\r' < "$WORK/crl-failed$i.headers" | grep -qix 'cache-control: max-age=0' ||
		fail "CRL request $i: the old CRL went out with $(grep -i cache-control "$WORK/crl-failed$i.headers" || echo 'no Cache-Control')"
done
awk -v s="$(cut -d' ' -f2 "$WORK/crl-failed1.code")" 'BEGIN { exit !(s >= 0.9) }' ||
	fail "the first CRL request did not ask the RA (RPCTimeout = 1000)"
awk -v s="$(cut -d' ' -f2 "$WORK/crl-failed2.code")" 'BEGIN { exit !(s < 0.5) }' ||
	fail "the second CRL request asked the RA again right after it did not answer"
kill -CONT "$ca"

check "the CRL kept, past its nextUpdate, is not the answer when the RA gives none: 503, logged"
# The frontend's clock 9 days ahead of the others' (the CRL is valid 7,
# CRLValidityHours = 168): the copy it keeps is past its nextUpdate by its
# clock, as one kept through an outage that long. The RA's fresh one is
# served (the CA's own clock vouches for it).
faketime_lib
mkdir -p "$WORK/late-fe"
for s in scepd-init scepd-ra scepd-challenge scepd-ca; do
	ln -sf "$BUILD_DIR/$s" "$WORK/late-fe/$s"
done
cat > "$WORK/late-fe/scepd-frontend" << EOF
#!/usr/bin/env bash
export LD_PRELOAD="$FAKETIME_LIB" FAKETIME="+9d" FAKETIME_DONT_RESET=1
export ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}verify_asan_link_order=0"
exec "$BUILD_DIR/scepd-frontend" "\$@"
EOF
chmod +x "$WORK/late-fe/scepd-frontend"
server_stop
from=$(log_mark)
SCEPD_LIBEXEC_DIR="$WORK/late-fe" SCEPD_TEST_FRONTEND_CACHE_MS=1500 server_start
code=$(curl -s -m 10 -o "$WORK/crl-late.der" -w '%{http_code}' "$BASE/crl/ca.crl" || true)
[ "$code" = 200 ] || fail "the CRL from the RA, the frontend's clock ahead: HTTP $code, want 200"
ra=$(service_pid scepd-ra)
on_exit "kill -CONT $ra 2>/dev/null"
kill -STOP "$ra"
sleep 1.6 # the cached CRL is old (test hook: 1.5 s)
for i in 1 2; do
	code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$BASE/crl/ca.crl" || true)
	echo "   CRL request $i, the RA stopped, the copy kept expired: HTTP $code"
	[ "$code" = 503 ] || fail "CRL request $i with the RA stopped and the copy kept expired: HTTP $code, want 503"
done
logged "$from" "/crl/ca.crl: the RA gives no CRL, and the one kept expired at .* (its nextUpdate): answered 503" ||
	fail "the expired CRL's refusal was not logged"
# Once for both: not a line per relying party's request.
[ "$(grep -c "the one kept expired at" "$WORK/log.since")" = 1 ] ||
	fail "the expired CRL's refusal logged $(grep -c "the one kept expired at" "$WORK/log.since") times for two requests, want once"
kill -CONT "$ra"
server_stop
SCEPD_TEST_FRONTEND_CACHE_MS=1500 server_start # as before this check

check "a frontend started while the RA is stopped (nothing cached): after a wait of RPCTimeout, one request at a time asks, the others 503 at once; the MDM API answers meanwhile; the RA back, at once"
# Three UpstreamThreads: one for a GetCACaps/GetCACert ask, one for a CRL
# ask, one left for the MDM API.
set_conf frontend UpstreamThreads 3
stop_ra
kill -KILL "$fe" # scepd starts another, with this setting: its caches empty
for _ in $(seq 100); do
	new_fe=$(service_pid scepd-frontend)
	[ -n "$new_fe" ] && [ "$new_fe" != "$fe" ] && curl -sf -m 1 -o /dev/null "$BASE/healthz" && break
	sleep 0.1
done
[ -n "$new_fe" ] && [ "$new_fe" != "$fe" ] || fail "scepd did not restart the frontend"
# at CODE SECONDS-TEST WHAT URL: the answer's status and time
at() {
	local code secs
	read -r code secs <<< "$(answered "$3" "$4")"
	echo "   $3: HTTP $code in $secs s"
	[ "$code" = "$1" ] && awk -v s="$secs" "BEGIN { exit !(s $2) }" ||
		fail "$3 with the RA stopped and nothing cached: HTTP $code in $secs s, want $1 in $2 s"
}
at 503 ">= 0.9" "GetCACaps (asks the RA)" "$URL?operation=GetCACaps"
at 503 ">= 0.9" "the CRL (asks the RA)" "$BASE/crl/ca.crl"
# One of each asks again; meanwhile the rest, and a crowd of polls, are
# answered at once, and the MDM API has its UpstreamThread.
probes=()
curl -s -m 10 -o /dev/null "$URL?operation=GetCACaps" &
probes+=($!)
curl -s -m 10 -o /dev/null "$BASE/crl/ca.crl" &
probes+=($!)
sleep 0.2
at 503 "< 0.5" "GetCACert, while GetCACaps asks" "$URL?operation=GetCACert&message=CA"
at 503 "< 0.5" "the CRL, while another asks" "$BASE/crl/ca.crl"
crowd=()
for i in $(seq 6); do
	curl -s -m 10 -o /dev/null "$URL?operation=GetCACert&message=CA" &
	crowd+=($!)
	curl -s -m 10 -o /dev/null "$BASE/crl/ca.crl" &
	crowd+=($!)
done
code=$(curl -s -m 10 -o "$WORK/api-crowd.json" -w '%{http_code}' -u mdm1:mdm-secret -X POST "$ADMIN/api/challenges")
[ "$code" = 200 ] || { cat "$WORK/api-crowd.json"; fail "the MDM API among CA certificate and CRL polls: HTTP $code"; }
wait "${crowd[@]}" "${probes[@]}"
kill -CONT "$ra"
at 200 "< 5" "GetCACaps, the RA back" "$URL?operation=GetCACaps"
at 200 "< 5" "GetCACert" "$URL?operation=GetCACert&message=CA"
at 200 "< 5" "the CRL" "$BASE/crl/ca.crl"

check "the frontend stopped while a request waits on the RA: the answer made meanwhile is sent"
# libmicrohttpd stopped at once closed such connections without a word.
stop_ra
declare -a stop_client
for i in $(seq 8); do
	curl -s -m 10 -o /dev/null -w '%{http_code}' "$BASE/metrics" > "$WORK/stop$i.code" &
	stop_client[i]=$!
done
sleep 0.3
kill -TERM "$fe"
sleep 0.2
kill -CONT "$ra"
for i in $(seq 8); do
	rc=0
	wait "${stop_client[i]}" || rc=$?
	echo "   /metrics $i, asked before the stop: curl exit $rc, HTTP $(cat "$WORK/stop$i.code")"
	[ $rc = 0 ] && [ "$(cat "$WORK/stop$i.code")" != 000 ] ||
		fail "request $i in flight when the frontend stopped got no answer (curl exit $rc)"
done
pass "HTTP threads never wait on a service; a full queue answers 503"
