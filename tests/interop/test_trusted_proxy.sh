#!/usr/bin/env bash
# scepd behind a real reverse proxy (haproxy, `option forwardfor`): with
# [frontend] TrustedProxies the client is the address the proxy names, so
# WrongPasswordLimit limits one device, not everyone behind the proxy;
# what a client writes into X-Forwarded-For itself is never believed; a
# forwarded request is never "loopback" (admin page, /metrics); an unreadable X-Forwarded-For from a trusted proxy is a 400,
# and a bad TrustedProxies entry stops the start naming it.
. "$(dirname "$0")/lib.sh"
interop_init trusted_proxy
command -v haproxy > /dev/null || fail "haproxy is not installed (scripts/deps.sh --test)"

server_start
set_conf frontend TrustedProxies "127.0.0.1"
set_conf frontend PerIPConnectionLimit 0
set_conf challenge WrongPasswordLimit 3
set_conf challenge WrongPasswordWindow 120
server_restart
grep -q "TrustedProxies = 127.0.0.1: their X-Forwarded-For names the client" "$SERVER_LOG" ||
	fail "no start-up line for TrustedProxies"
fetch_ca_chain

# haproxy on its own port, in the foreground, connecting from 127.0.0.1.
HPORT=$(free_port)
HURL="http://127.0.0.1:$HPORT/certsrv/mscep/mscep.dll"
cat > "$WORK/haproxy.cfg" <<EOF
global
	tune.bufsize 65536
defaults
	mode http
	timeout connect 5s
	timeout client 35s
	timeout server 35s
frontend scep
	bind 127.0.0.1:$HPORT
	option forwardfor
	default_backend scepd
backend scepd
	server scepd 127.0.0.1:$PORT
EOF
haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
on_exit "kill $HAPROXY_PID; wait $HAPROXY_PID"
for _ in $(seq 50); do
	curl -s -o /dev/null "http://127.0.0.1:$HPORT/healthz" && break
	sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$HPORT/healthz" || { cat "$WORK/haproxy.log"; fail "haproxy does not answer"; }

check "an iOS-like device enrolls through haproxy; the log names the device and the proxy"
pw=$(challenge)
ios_enroll "$pw" "CN=behind the proxy" "$WORK/proxied.pem" "$HURL" --source 127.0.0.2 > /dev/null ||
	fail "enrollment through haproxy failed"
verify_cert "$WORK/proxied.pem"
# The access line is written as the answer completes, maybe after curl
# has it: waited for, not grepped at once.
await_logged 1 "op=PKIOperation status=200 client=127.0.0.2 via=127.0.0.1 " 5 ||
	{ grep "op=PKIOperation" "$SERVER_LOG"; fail "the access log does not say client=127.0.0.2 via=127.0.0.1"; }

check "WrongPasswordLimit = 3 through the proxy: device 127.0.0.3 gets 429, device 127.0.0.4 enrolls at once"
for i in 1 2 3; do
	rc=0
	ios_enroll "DEADBEEF0000000000000000000000$i$i" "CN=guess $i" "$WORK/guess$i.pem" "$HURL" --source 127.0.0.3 > /dev/null || rc=$?
	[ $rc = 2 ] || fail "wrong password $i through the proxy: exit $rc, want 2 (FAILURE)"
done
good=$(challenge)
rc=0
ios_enroll "$good" "CN=after guesses" "$WORK/limited.pem" "$HURL" --source 127.0.0.3 > /dev/null || rc=$?
[ $rc = 1 ] && grep -q "PKIOperation: HTTP 429" "$WORK/limited.pem.log" ||
	{ cat "$WORK/limited.pem.log"; fail "device 127.0.0.3 over the limit: exit $rc, want HTTP 429"; }
ios_enroll "$good" "CN=other device" "$WORK/other.pem" "$HURL" --source 127.0.0.4 > /dev/null ||
	fail "device 127.0.0.4 behind the same proxy was limited for 127.0.0.3's guesses"
verify_cert "$WORK/other.pem"
grep -q "client 127.0.0.3" "$SERVER_LOG" || fail "the challenge service never saw 127.0.0.3 as the client"

check "an X-Forwarded-For the device writes itself is not believed"
curl -s -o /dev/null --interface 127.0.0.5 -H "X-Forwarded-For: 198.51.100.7" \
	"$HURL?operation=GetCACaps&message=spoof" || fail "GetCACaps through haproxy"
await_logged 1 "op=GetCACaps status=200 client=127.0.0.5 via=127.0.0.1 " 5 ||
	{ grep "op=GetCACaps" "$SERVER_LOG" | tail -3; fail "the spoofed X-Forwarded-For was believed"; }
! grep -q "client=198.51.100.7" "$SERVER_LOG" || fail "198.51.100.7 appears as a client"

check "forwarded by a trusted proxy: /metrics and the admin page refuse it, whatever address it names"
creds=$(head -n 1 "$DATA/admin.credentials" | tr -d '\r\n')
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Forwarded-For: 198.51.100.7" "$BASE/metrics")
[ "$code" = 403 ] || fail "/metrics for 198.51.100.7 forwarded by 127.0.0.1: HTTP $code, want 403"
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$creds" -H "X-Forwarded-For: 198.51.100.7" "$BASE/certsrv/mscep_admin/")
[ "$code" = 403 ] || fail "admin page for 198.51.100.7 forwarded by 127.0.0.1: HTTP $code, want 403"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Forwarded-For: 127.0.0.1" "$BASE/metrics")
[ "$code" = 403 ] || fail "/metrics for '127.0.0.1' forwarded by 127.0.0.1: HTTP $code, want 403 (forwarded is never loopback)"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")
[ "$code" = 200 ] || fail "/metrics from 127.0.0.1 itself: HTTP $code, want 200"

check "an untrusted peer's forwarding headers: the peer stays the client, and is not loopback; its X-Forwarded-For is logged once, naming TrustedProxies"
for h in "X-Forwarded-For: 127.0.0.1" "Forwarded: for=127.0.0.1" "X-Real-IP: 127.0.0.1"; do
	code=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.6 -H "$h" "$BASE/metrics")
	[ "$code" = 403 ] || fail "/metrics from untrusted 127.0.0.6 with '$h': HTTP $code, want 403"
done
code=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.6 "$BASE/metrics")
[ "$code" = 200 ] || fail "/metrics from 127.0.0.6 without forwarding headers: HTTP $code, want 200"
await_logged 1 "GET /metrics op=- status=403 client=127.0.0.6 query" 5 ||
	fail "the untrusted peer is not logged as the client"
# A proxy left out of TrustedProxies is said, once in ten minutes for
# each: the loop's request said it for 127.0.0.6, another does not; a
# client's own header (127.0.0.7) does not hide the proxy's.
untrusted() {
	grep -c "X-Forwarded-For from $1, which is not in \[frontend\] TrustedProxies: ignored" "$SERVER_LOG" || true
}
[ "$(untrusted 127.0.0.6)" = 1 ] || fail "the untrusted peer's X-Forwarded-For is not logged"
curl -s -o /dev/null --interface 127.0.0.7 -H "X-Forwarded-For: 192.0.2.8" "$BASE/metrics"
curl -s -o /dev/null --interface 127.0.0.6 -H "X-Forwarded-For: 192.0.2.9" "$BASE/metrics"
[ "$(untrusted 127.0.0.6)" = 1 ] || fail "127.0.0.6's X-Forwarded-For logged $(untrusted 127.0.0.6) times, want once"
[ "$(untrusted 127.0.0.7)" = 1 ] || fail "127.0.0.7's X-Forwarded-For logged $(untrusted 127.0.0.7) times, want once"

check "a trusted proxy's unreadable X-Forwarded-For: 400 naming the header, logged"
# "X-Forwarded-For;" is how curl sends the header empty.
for h in "X-Forwarded-For: unknown" "X-Forwarded-For: 198.51.100.7:99999" "X-Forwarded-For;" "X-Forwarded-For: 2001:db8::1]"; do
	code=$(curl -s -o "$WORK/bad.txt" -w '%{http_code}' -H "$h" "$URL?operation=GetCACaps")
	[ "$code" = 400 ] && grep -q "X-Forwarded-For" "$WORK/bad.txt" ||
		{ cat "$WORK/bad.txt"; fail "'$h' from a trusted proxy: HTTP $code, want 400"; }
done
grep -q "X-Forwarded-For from 127.0.0.1 (in TrustedProxies) does not name an address" "$SERVER_LOG" ||
	fail "the bad header was not logged"
pw=$(challenge)
ios_enroll "$pw" "CN=still serving" "$WORK/after.pem" "$HURL" --source 127.0.0.2 > /dev/null ||
	fail "no enrollment after the bad headers"

check "a bad TrustedProxies entry stops the frontend, naming it"
cp "$DATA/scepd.conf" "$WORK/bad.conf"
sed -i 's|^TrustedProxies = .*|TrustedProxies = 10.0.0.0/8 proxy.example.com|' "$WORK/bad.conf"
rc=0
(cd "$DATA" && "$BUILD_DIR/scepd-frontend" --config "$WORK/bad.conf" --listen "127.0.0.1:$(free_port)") \
	> "$WORK/bad.out" 2>&1 || rc=$?
[ $rc != 0 ] && grep -q "TrustedProxies: 'proxy.example.com' is not an address or a network" "$WORK/bad.out" ||
	{ cat "$WORK/bad.out"; fail "bad TrustedProxies: exit $rc"; }

pass "TrustedProxies with haproxy: the device's address for limits and logs, spoofing and bad headers refused"
