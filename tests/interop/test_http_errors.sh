#!/usr/bin/env bash
# The HTTP surface as curl sees it: clear errors for bad requests (400,
# 414 past MaxQueryString but not below it), a path or method written to
# forge log fields logged percent-encoded, /healthz, the exact
# GetCACaps lines (also at <path>/pkiclient.exe, another suffix 404),
# GetCACert's type and three certificates, and the NDES-style admin page
# behind Basic auth whose one-time password enrolls, also as scripts
# written for NDES read it; the frontend's pool of HTTP threads is there.
. "$(dirname "$0")/lib.sh"
interop_init http_errors
server_start

# code URL [curl args...]: the HTTP status.
code() {
	local u=$1
	shift
	curl -s -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@" "$u" || true
}
expect() { # WANT GOT WHAT
	[ "$2" = "$1" ] || fail "$3: HTTP $2, want $1 (body: $(head -c 200 "$WORK/body" 2>/dev/null))"
	echo "   $3: HTTP $2"
}

check "GET /healthz answers 200"
expect 200 "$(code "$BASE/healthz")" "/healthz"

check "the SCEP URL without a query (a browser, a probe copied from an NDES set-up): NDES's page, 200; a missing or unknown operation: 400"
expect 200 "$(code "$URL")" "no query at all"
grep -q "Network Device Enrollment Service allows you to obtain certificates" "$WORK/body" &&
	grep -q "/certsrv/mscep_admin/" "$WORK/body" || fail "the page without a query is not NDES's, naming the admin URL"
expect 200 "$(code "$URL" -I)" "HEAD without a query"
expect 400 "$(code "$URL?message=CA")" "no operation="
expect 400 "$(code "$URL?operation=GetCAFoo&message=CA")" "operation=GetCAFoo"

check "a 70 KiB query gets 414, a 60 KiB garbage message 400 (not 414)"
big=$(head -c 71680 /dev/zero | tr '\0' 'A')
expect 414 "$(code "$URL?operation=PKIOperation&message=$big")" "70 KiB query"
garbage=$(head -c 61440 /dev/zero | tr '\0' 'A')
expect 400 "$(code "$URL?operation=PKIOperation&message=${garbage}%21%21")" "60 KiB garbage message"
unset big garbage

check "at the edge: a query of exactly MaxQueryString (65536) bytes is read, one byte more gets the 414 naming MaxQueryString"
# libmicrohttpd answers a request line larger than a connection's memory
# pool with its own 414 and no log line; the pool (MaxQueryString + 16
# KiB) must leave the limit to the frontend.
prefix="operation=PKIOperation&message="
edge=$(head -c $((65536 - ${#prefix})) /dev/zero | tr '\0' 'A')
# With 4 KiB of headers, as a reverse proxy may add (X-Forwarded-For,
# Forwarded, Via and the like).
proxied=$(head -c 4000 /dev/zero | tr '\0' 'x')
expect 400 "$(code "$URL?$prefix$edge" -H "User-Agent: Settings/1.0 CFNetwork/1408.0.4 Darwin/22.5.0" \
	-H "X-Forwarded-For: 192.0.2.1" -H "Via: 1.1 proxy" -H "X-Padding: $proxied")" "query of 65536 bytes, 4 KiB of headers"
from=$(log_mark)
expect 414 "$(code "$URL?${prefix}A$edge")" "query of 65537 bytes"
logged "$from" "MaxQueryString = 65536" || fail "the 414 of 65537 bytes was not the frontend's (no log line naming MaxQueryString)"
echo "   the frontend's 414, logged with MaxQueryString"

check "a request line and headers that nearly fill the connection's pool: 431 before any work"
# libmicrohttpd's pool (MaxQueryString + 16 KiB) holds the answer's own
# headers too: with about 15,800 bytes of headers beside a query at the
# limit it closed the connection after the work was done (a PKIOperation
# answered by the RA, its answer lost, logged and counted as sent). The
# frontend answers 431 itself when less than 4 KiB would stay free, before
# any work; past the pool libmicrohttpd does. In the last hundred bytes
# or so even a 431 finds no room: the connection closes, nothing done.
from=$(log_mark)
expect 431 "$(code "$URL?$prefix$edge" -H "X-Padding: $(head -c 13000 /dev/zero | tr '\0' 'x')")" \
	"query of 65536 bytes, 13,000 bytes of headers"
logged "$from" "leave no room for the answer" || fail "that 431 was not the frontend's (no log line)"
[ "$(metric 'scepd_http_responses_total{code="431"}')" -ge 1 ] || fail "the 431 not counted"
from=$(log_mark)
closed=0
for pad in $(seq 15600 20 16000); do
	got=$(code "$URL?$prefix$edge" -H "X-Padding: $(head -c "$pad" /dev/zero | tr '\0' 'x')")
	case $got in
	431) ;;
	000) closed=$((closed + 1)) ;;
	*) fail "query of 65536 bytes, $pad bytes of headers: HTTP $got, want 431" ;;
	esac
done
# The message is no base64 (a 400 once read): any status but 431 is a
# request worked on whose answer could not be sent.
tail -n "+$from" "$SERVER_LOG" | grep "query=65536 " > "$WORK/padded.log" || true
! grep -v "status=431 \|status=- " "$WORK/padded.log" ||
	fail "requests with 15,600 to 16,000 bytes of headers were worked on (above)"
echo "   15,600 to 16,000 bytes of headers in steps of 20: 431, or closed unanswered ($closed) with nothing done"

check "a path, method or admin user name that writes log fields (spaces, client=, a terminal escape) is logged percent-encoded, a user agent without its backslash: one client= field, the real client"
# libmicrohttpd unescapes the path: written as it is, %20 made fields of
# it that fail2ban or a SIEM would read as the client 203.0.113.9.
forged="/x%20op=PKIOperation%20status=200%20client=203.0.113.9%1B[31m"
logged_as="/x%20op%3DPKIOperation%20status%3D200%20client%3D203.0.113.9%1B[31m"
from=$(log_mark)
expect 404 "$(code "$BASE$forged" -g)" "GET $forged"
# Lines logged with the path: the 431 of a request too large for the pool.
expect 431 "$(code "$BASE$forged?$prefix$edge" -g -H "X-Padding: $(head -c 13000 /dev/zero | tr '\0' 'x')")" \
	"GET $forged, 13,000 bytes of headers"
# libmicrohttpd takes any bytes before the first space for the method.
python3 - "$PORT" <<'PY' || fail "a request with the method 'client=203.0.113.9' got no answer"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"client=203.0.113.9 /m HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
assert s.recv(100).startswith(b"HTTP/1.1 ")
PY
# A failed admin login's user name, and a user agent ending in a backslash
# (which would escape the quote that ends its field).
expect 401 "$(code "$BASE/certsrv/mscep_admin/" -u 'x from 203.0.113.9:pw')" "a login as 'x from 203.0.113.9'"
# Five of them: the lock-out's line names the account too.
for i in 1 2 3 4 5; do
	expect 401 "$(code "$BASE/certsrv/mscep_admin/" -u "y within 60 s, the last from 203.0.113.9:pw$i")" "login $i as 'y within ... 203.0.113.9'"
done
expect 404 "$(code "$BASE/ua" -A 'agent\')" "GET /ua with the user agent 'agent\\'"
# An operation a client chose, and a Host /metrics refuses.
expect 400 "$(code "$URL?operation=x%20client=203.0.113.9")" "operation=x client=203.0.113.9"
expect 403 "$(code "$BASE/metrics" -H 'Host: x client=203.0.113.9')" "/metrics, Host 'x client=203.0.113.9'"
# An access line is written as its answer completes, maybe after curl
# has the answer: each line read below is waited for.
for line in "GET /ua op=- status=404 " "client%3D203.0. /m op=- status=404 " "op=- status=400 client=127.0.0.1 query=32 " "GET /metrics op=- status=403 "; do
	await_logged "$from" "$line" 5 || fail "no access line '$line'"
done
for _ in $(seq 50); do
	[ "$(tail -n "+$from" "$SERVER_LOG" | grep -c -F -- " $logged_as ")" -ge 3 ] && break
	sleep 0.1
done
tail -n "+$from" "$SERVER_LOG" | grep 'scepd-frontend\[' > "$WORK/forged.log" || true
grep -q -F -- "admin: failed login for x%20from%20203.0.113.9 from 127.0.0.1" "$WORK/forged.log" ||
	fail "the failed login's user name is not logged percent-encoded"
grep -q -F -- "5 failed logins for account y%20within%2060%20s,%20the%20last%20from%20203.0.113.9 within 60 s, the last from 127.0.0.1" "$WORK/forged.log" ||
	{ grep "failed logins" "$WORK/forged.log"; fail "the lock-out's line does not log the account name percent-encoded"; }
grep -q -F -- "GET /ua op=- status=404 client=127.0.0.1 " "$WORK/forged.log" &&
	grep -F -- "GET /ua op=- " "$WORK/forged.log" | grep -q -F -- "ua=\"agent'\"" ||
	fail "the user agent's backslash reached its quoted field"
sed 's/^/   | /' "$WORK/forged.log" | cut -c1-200
! grep -q $'\x1b' "$WORK/forged.log" || fail "the escape character reached the log"
[ "$(grep -c -F -- " $logged_as " "$WORK/forged.log")" = 3 ] ||
	fail "the path is not logged percent-encoded, as $logged_as, in the two access lines and the 431's warning"
grep -q -F -- "info: GET $logged_as op=- status=404 client=127.0.0.1 " "$WORK/forged.log" ||
	fail "the access log line of $forged does not read as GET, the path, 404, client=127.0.0.1"
grep -q -F -- "warn: GET $logged_as from 127.0.0.1: " "$WORK/forged.log" ||
	fail "the 431's warning does not name the path percent-encoded"
# Cut to the 15 bytes the method is kept in.
grep -q -F -- "info: client%3D203.0. /m op=- status=404 client=127.0.0.1 " "$WORK/forged.log" ||
	fail "the method client=203.0.113.9 is not logged percent-encoded"
# No line holds a second client (client=, or " from " in a warning).
while read -r line; do
	[ "$(grep -o -e 'client=' -e ' from ' <<< "$line" | wc -l)" = 1 ] ||
		fail "a log line names more than one client: $line"
done < "$WORK/forged.log"
echo "   one client per line, 127.0.0.1"
unset edge proxied

check "a body framed two ways (two Content-Length, or one beside Transfer-Encoding) gets 400 and the connection closed, a transfer coding other than chunked 501: what follows is never read as a request (smuggling)"
python3 - "$PORT" > "$WORK/framing.out" 2>&1 <<'PY' || { cat "$WORK/framing.out"; fail "ambiguous framing: see above"; }
import socket, sys
port = int(sys.argv[1])
after = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
cases = [
    ("two Content-Length", b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", b"400"),
    ("Content-Length beside chunked", b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
    ("Transfer-Encoding gzip", b"Transfer-Encoding: gzip\r\n\r\nxxxxx", b"501"),
]
for name, rest, want in cases:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /certsrv/mscep/mscep.dll?operation=PKIOperation HTTP/1.1\r\nHost: localhost\r\n"
              + rest + after)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    answers = got.count(b"HTTP/1.1 ")
    if not got.startswith(b"HTTP/1.1 " + want) or answers != 1:
        sys.exit("%s: %r, want one answer %s and the connection closed" % (name, got[:300], want.decode()))
    print("%s: %s, closed, the request after it not read" % (name, got.split(b"\r\n")[0].decode()))
PY
sed 's/^/   /' "$WORK/framing.out"

check "HEAD of a PKIOperation: 405 naming GET and POST (it would be done, its answer thrown away)"
from=$(log_mark)
expect 405 "$(code "$URL?operation=PKIOperation&message=MIIB" -I)" "HEAD PKIOperation"
grep -qi "^Allow: GET, POST" "$WORK/headers" || fail "the 405 does not say Allow: GET, POST"
! logged "$from" "scepd-ra\[" || fail "the RA was asked"
expect 200 "$(code "$URL?operation=GetCACaps" -I)" "HEAD GetCACaps"

check "GetCACaps lists POSTPKIOperation, SHA-256, SHA-512, AES, SCEPStandard, and no bare DES"
expect 200 "$(code "$URL?operation=GetCACaps&message=CA")" "GetCACaps"
tr -d '\r' < "$WORK/body" > "$WORK/caps"
sed 's/^/   | /' "$WORK/caps"
for cap in POSTPKIOperation SHA-256 SHA-512 AES SCEPStandard; do
	grep -qx "$cap" "$WORK/caps" || fail "GetCACaps lacks a '$cap' line"
done
! grep -qx "DES" "$WORK/caps" || fail "GetCACaps offers single DES"

check "IIS's extra path: .../mscep.dll/pkiclient.exe answers as .../mscep.dll (Windows' NDES client), another suffix 404; a request-target in absolute form is served"
expect 200 "$(code "$URL/pkiclient.exe?operation=GetCACaps&message=CA")" "GetCACaps on $URL/pkiclient.exe"
tr -d '\r' < "$WORK/body" | cmp -s - "$WORK/caps" || fail "GetCACaps on /pkiclient.exe differs from $URL's"
expect 200 "$(code "$BASE/scep/PKIClient.exe?operation=GetCACaps&message=CA")" "GetCACaps on /scep/PKIClient.exe"
expect 404 "$(code "$URL/other?operation=GetCACaps&message=CA")" "$URL/other"
expect 404 "$(code "$URL/pkiclient.exe/x?operation=GetCACaps&message=CA")" "$URL/pkiclient.exe/x"
expect 404 "$(code "$URL/pkiclient.exe2?operation=GetCACaps&message=CA")" "$URL/pkiclient.exe2"
expect 404 "$(code "${URL}pkiclient.exe?operation=GetCACaps&message=CA")" "${URL}pkiclient.exe"
# The request-target in absolute form (a client that talks to a proxy;
# RFC 9112 3.2.2: a server must accept it).
path=${URL#"$BASE"}
expect 200 "$(code "$URL" --request-target "http://scep.example.com$path?operation=GetCACaps&message=CA")" \
	"GetCACaps with the request-target http://scep.example.com$path?..."
tr -d '\r' < "$WORK/body" | cmp -s - "$WORK/caps" || fail "GetCACaps in absolute form differs from $URL's"

check "GetCACert: application/x-x509-ca-ra-cert with RA signing, RA encryption and CA"
expect 200 "$(code "$URL?operation=GetCACert&message=CA")" "GetCACert"
grep -qi '^content-type: application/x-x509-ca-ra-cert' "$WORK/headers" ||
	fail "GetCACert content type: $(grep -i '^content-type' "$WORK/headers")"
n=$(openssl pkcs7 -inform DER -in "$WORK/body" -print_certs 2>/dev/null | grep -c 'BEGIN CERTIFICATE' || true)
[ "$n" = 3 ] || fail "GetCACert holds $n certificates, want 3"
echo "   3 certificates"
fetch_ca_chain

check "caches keep the CA's answers no longer than the frontend (Cache-Control: max-age, at most 60 s), and no CertRep"
for op in GetCACert GetCACaps; do
	expect 200 "$(code "$URL?operation=$op")" "$op"
	age=$(tr -d '\r' < "$WORK/headers" | sed -n 's/^[Cc]ache-[Cc]ontrol: max-age=\([0-9]*\)$/\1/p')
	[ -n "$age" ] && [ "$age" -le 60 ] || fail "$op: Cache-Control '$(grep -i '^cache-control' "$WORK/headers")', want max-age of at most 60"
	echo "   $op: max-age=$age"
done
# A device's message (another run's, so a FAILURE CertRep): no-store.
expect 200 "$(code "$URL?operation=PKIOperation" --data-binary @"$SRC_DIR/tests/fuzz/corpus/pkimessage/captured-pki.der" -H 'Content-Type: application/x-pki-message')" "PKIOperation"
grep -qi '^cache-control: no-store' "$WORK/headers" || fail "PKIOperation's CertRep: $(grep -i '^cache-control' "$WORK/headers" || echo no Cache-Control)"

admin="$BASE/certsrv/mscep_admin/"
[ -s "$DATA/admin.credentials" ] || fail "no $DATA/admin.credentials"
creds=$(head -n 1 "$DATA/admin.credentials" | tr -d '\r\n')
user=${creds%%:*}

check "admin page: 401 without credentials and with a wrong password"
expect 401 "$(code "$admin")" "no credentials"
grep -qi $'^www-authenticate: basic realm="scepd", charset="UTF-8"\r$' "$WORK/headers" ||
	fail "401 without WWW-Authenticate: Basic realm=\"scepd\", charset=\"UTF-8\" (RFC 7617): $(grep -i '^www-authenticate' "$WORK/headers")"
expect 401 "$(code "$admin" -u "$user:wrong-password")" "wrong password"
expect 401 "$(code "$admin" -u "nobody:${creds#*:}")" "unknown user"

check "admin page with the right credentials: HTML with a password and the CA thumbprint"
expect 200 "$(code "$admin" -u "$creds")" "right credentials"
grep -qi '^content-type: text/html' "$WORK/headers" || fail "admin page is not text/html"
# UTF-16, as NDES serves it (below).
iconv -f UTF-16 -t UTF-8 "$WORK/body" > "$WORK/page.html" || fail "the admin page is not UTF-16"
# NDES shows the CA certificate's hash; accept SHA-1 or SHA-256, with or
# without separators, in any case.
thumbs=$(for md in sha1 sha256; do
	openssl x509 -in "$CA_PEM" -noout -fingerprint -"$md" | sed 's/.*=//; s/://g'
done)
flat=$(tr -d ' :\r\n' < "$WORK/page.html" | tr 'a-f' 'A-F')
found=
for t in $thumbs; do
	case "$flat" in *"$t"*) found=$t ;; esac
done
[ -n "$found" ] || fail "the admin page does not show the CA thumbprint (SHA-1 or SHA-256)"
echo "   CA thumbprint $found shown"
html_pw=$(grep -oE '\b[0-9A-Fa-f]{32}\b' "$WORK/page.html" | head -1 || true)
[ -n "$html_pw" ] || fail "the admin page shows no 32-hex-character password"
echo "   password shown"

check "admin page as JSON: a 32-hex-character password that enrolls"
expect 200 "$(code "$admin" -u "$creds" -H 'Accept: application/json')" "JSON"
grep -qi '^content-type: application/json' "$WORK/headers" || fail "JSON answer is not application/json"
pw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$WORK/body" 2>/dev/null ||
	sed -n 's/.*"password"[ ]*:[ ]*"\([^"]*\)".*/\1/p' "$WORK/body")
[[ "$pw" =~ ^[0-9A-Fa-f]{32}$ ]] || fail "JSON password '$pw' is not 32 hex characters"
[ "$pw" != "$html_pw" ] || fail "the JSON answer repeated the HTML page's password"
rc=0
ios_enroll "$pw" "O=Fabrikam,CN=admin page device" "$WORK/admin.pem" || rc=$?
[ $rc = 0 ] || fail "enrollment with the admin page's password: exit $rc"
verify_cert "$WORK/admin.pem"

check "scepctl challenge --json writes the admin page's fields as it writes them"
"$SCEPCTL" --data-dir "$DATA" challenge --json > "$WORK/ctl.json" || fail "scepctl challenge --json"
python3 - "$WORK/body" "$WORK/ctl.json" <<'PY' || fail "scepctl challenge --json differs from the admin page's JSON"
import json, re, sys
page, ctl = (json.load(open(f)) for f in sys.argv[1:3])
for k in ("password", "expires_at", "validity_minutes"):
    assert type(ctl[k]) is type(page[k]), (k, ctl[k], page[k])
iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
assert iso.match(ctl["expires_at"]) and iso.match(page["expires_at"]), (ctl, page)
assert ctl["validity_minutes"] == page["validity_minutes"], (ctl, page)
print("   ok:", sorted(ctl))
PY

check "scripts written for NDES: Fleet's regex reads a password that enrolls, the thumbprint line the CA's MD5"
expect 200 "$(code "$admin" -u "$creds")" "admin page for an NDES script"
# Fleet's NDES proxy (fleetdm/fleet ee/server/service/scep/scep_proxy.go,
# challengeRegex) and a script reading the thumbprint as NDES prints it:
# MD5, upper-case hex in 4 groups of 8 between "<B> " and " </B>".
ndes=$(python3 - "$WORK/body" <<'EOF'
import re
import sys

raw = open(sys.argv[1], "rb").read()
# As NDES serves it and Fleet decodes it (unicode.UTF16, BigEndian unless
# a byte-order mark says otherwise; others decode("UTF-16")): UTF-16LE
# after its mark.
assert raw[:2] == b"\xff\xfe", "no UTF-16LE byte-order mark: %r" % raw[:8]
page = raw.decode("utf-16")
pw = re.search(r"(?i)The enrollment challenge password is: <B> (?P<password>\S*)", page)
tp = re.search(r"The thumbprint \(hash value\) for the CA certificate is: "
               r"<B> ([0-9A-F]{8}(?: [0-9A-F]{8}){3}) </B>", page)
print(pw.group("password") if pw else "")
print(tp.group(1) if tp else "")
EOF
)
grep -qi '^Content-Type: text/html; charset=utf-16' "$WORK/headers" ||
	fail "the admin page's $(grep -i '^Content-Type' "$WORK/headers"), not NDES's UTF-16"
ndes_pw=$(sed -n 1p <<< "$ndes")
ndes_md5=$(sed -n 2p <<< "$ndes")
want_md5=$(openssl x509 -in "$CA_PEM" -noout -fingerprint -md5 |
	sed 's/.*=//; s/://g' | tr 'a-f' 'A-F' | sed -E 's/(.{8})/\1 /g; s/ $//')
[[ "$ndes_pw" =~ ^[0-9A-F]{32}$ ]] || fail "Fleet's regex read '$ndes_pw' from the admin page"
[ "$ndes_md5" = "$want_md5" ] || fail "the NDES thumbprint line reads '$ndes_md5', the CA's MD5 is '$want_md5'"
echo "   password $ndes_pw, thumbprint $ndes_md5"
rc=0
ios_enroll "$ndes_pw" "O=Fabrikam,CN=NDES script device" "$WORK/ndes.pem" || rc=$?
[ $rc = 0 ] || fail "enrollment with the password Fleet's regex read: exit $rc"
verify_cert "$WORK/ndes.pem"

check "the frontend runs its pool of HTTP threads (Threads = 0: one per core) beside its own acceptor"
# libmicrohttpd documents a pool as ignored without a listening socket of
# its own (services/frontend/http.c); 0.9.75 runs it: keep it that way.
fe=$(pgrep -P "$SERVER_PID" -x scepd-frontend) || fail "no scepd-frontend"
# One core: one thread and no pool (MHD-single).
workers=$(cat /proc/"$fe"/task/*/comm | grep -c '^MHD-[ws]' || true)
[ "$workers" = "$(nproc)" ] || fail "$workers libmicrohttpd worker threads, want $(nproc)"
echo "   $workers HTTP threads"

check "admin page and /metrics answer to this server's names only (DNS rebinding): 403 for another Host, AdminHosts adds one"
port=${BASE##*:}
expect 403 "$(code "$admin" -u "$creds" -H "Host: rebound.example:$port")" "admin page, Host rebound.example"
grep -q "AdminHosts" "$WORK/body" || fail "the 403 does not name AdminHosts: $(cat "$WORK/body")"
expect 403 "$(code "${admin}api/challenges" -X POST -u "$creds" -H "Host: rebound.example:$port")" "api/challenges, Host rebound.example"
grep -qi '^content-type: application/json' "$WORK/headers" || fail "the API's 403 is not JSON"
expect 403 "$(code "$BASE/metrics" -H "Host: rebound.example:$port")" "/metrics, Host rebound.example"
expect 403 "$(code "$BASE/metrics" -H "Host: localhost.rebound.example")" "/metrics, Host localhost.rebound.example"
expect 200 "$(code "$admin" -u "$creds" -H "Host: localhost:$port")" "admin page, Host localhost"
expect 200 "$(code "$admin" -u "$creds" -H "Host: $(hostname):$port")" "admin page, Host $(hostname) (this machine's name)"
expect 200 "$(code "$BASE/metrics" -H "Host: [::1]:$port")" "/metrics, Host [::1]"
expect 200 "$(code "$BASE/metrics" -H "Host:")" "/metrics, no Host (HTTP/1.0 style)"
grep -q "admin: refused GET .* Host rebound.example is not a name of this server" "$SERVER_LOG" ||
	fail "the refused Host is not logged"
cp "$DATA/scepd.conf" "$WORK/scepd.conf.good"
set_conf frontend AdminHosts "mdm-tunnel.example.com:9443"
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-frontend" --config "$DATA/scepd.conf" > "$WORK/fe.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "AdminHosts: 'mdm-tunnel.example.com:9443' is not a host name without a port" "$WORK/fe.out" ||
	{ cat "$WORK/fe.out"; fail "an AdminHosts entry with a port: exit $rc, want 1 naming it"; }
cp "$WORK/scepd.conf.good" "$DATA/scepd.conf"
set_conf frontend AdminHosts "scep.example.com mdm-tunnel.example.com"
set_conf frontend ExternalURL "https://enroll.example.com:8443/certsrv/mscep/mscep.dll"
server_restart
expect 200 "$(code "$admin" -u "$creds" -H "Host: MDM-Tunnel.example.com:9443")" "admin page, Host in AdminHosts"
expect 200 "$(code "$BASE/metrics" -H "Host: enroll.example.com")" "/metrics, ExternalURL's host"
expect 403 "$(code "$admin" -u "$creds" -H "Host: example.com")" "admin page, Host example.com (not listed)"

check "an RA that refuses this frontend: GetCACert and GetCACaps answer 500, the log says why (not 400, which tells a device its request was bad)"
# The challenge service at RAEndpoint serves no GetCACert: its refusal is
# what an RA of another version, or one not admitting this frontend, says.
cp "$WORK/scepd.conf.good" "$DATA/scepd.conf"
set_conf frontend RAEndpoint "ipc://run/challenge.sock"
server_restart
from=$(log_mark)
expect 500 "$(code "$URL?operation=GetCACert")" "GetCACert from a service that refuses it"
expect 500 "$(code "$URL?operation=GetCACaps")" "GetCACaps from a service that refuses it"
logged "$from" "GetCACert refused by the RA: .*a frontend the RA does not serve" ||
	fail "the log does not say the RA refused this frontend"
cp "$WORK/scepd.conf.good" "$DATA/scepd.conf"

pass "HTTP errors, GetCACaps (also at /pkiclient.exe), GetCACert, admin page (also as NDES scripts read it, to this server's names only), the HTTP threads"
