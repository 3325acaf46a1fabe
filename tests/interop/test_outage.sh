#!/usr/bin/env bash
# Our own outage must look like one: when the RA or the CA does not answer
# within the deadline the device gets HTTP 503 with Retry-After (it will
# retry), never a hang and never a CertRep FAILURE (which tells it to give
# up). Service stopped with SIGSTOP so the launcher does not restart it.
set -euo pipefail
: "${BUILD_DIR:?}" "${SRC_DIR:?}"
work=$(mktemp -d /tmp/scepd-outage.XXXXXX)
server_pid=
stopped=
cleanup() {
	local rc=$?
	[ -n "$stopped" ] && kill -CONT $stopped 2>/dev/null
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	# Sanitizer builds: a report from any service fails the test.
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/server.log" 2>/dev/null; then
		grep -E -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/server.log" | head -60
		echo "FAIL: sanitizer report in the server log"
		rc=1
	fi
	[ "${KEEP:-0}" = 1 ] || rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -30 "$work/server.log"; exit 1; }

port=$(python3 "$(dirname "$0")/../tools/free_port.py")
base="http://127.0.0.1:$port"
url="$base/certsrv/mscep/mscep.dll"
"$BUILD_DIR/scepd" --data-dir "$work/data" --listen "127.0.0.1:$port" >> "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 150); do curl -sf "$base/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf "$base/healthz" >/dev/null || fail "server did not start"
# Short deadlines so the test is quick.
child() { pgrep -P "$server_pid" -x "$1"; }

echo "-- RA not answering: GetCACert gets 503 + Retry-After within the deadline"
ra=$(child scepd-ra) || fail "no scepd-ra child"
kill -STOP "$ra"; stopped=$ra
start=$(date +%s%N)
code=$(curl -s -m 30 -o /dev/null -D "$work/h" -w '%{http_code}' "$url?operation=GetCACert&message=CA")
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$code" = 503 ] || fail "GetCACert with the RA stopped: HTTP $code, want 503"
grep -qi '^retry-after:' "$work/h" || fail "503 without Retry-After"
[ "$ms" -lt 15000 ] || fail "503 came after $ms ms: past the deadline"
echo "   503 after $ms ms"
kill -CONT "$ra"; stopped=
code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' "$url?operation=GetCACert&message=CA")
[ "$code" = 200 ] || fail "GetCACert after the RA came back: HTTP $code"

echo "-- CA not answering: PKIOperation gets 503, not a FAILURE"
pw=$("$BUILD_DIR/scepctl" --data-dir "$work/data" challenge) || fail "no challenge"
ca=$(child scepd-ca) || fail "no scepd-ca child"
kill -STOP "$ca"; stopped=$ca
set +e
"$BUILD_DIR/tests/scep_ios_client" --url "$url" --challenge "$pw" --subject "CN=outage" \
	--key "$work/device.key" --out "$work/outage.pem" > "$work/client.out" 2>&1
rc=$?
set -e
cat "$work/client.out"
[ $rc = 1 ] || fail "client exit $rc with the CA stopped; want 1 (HTTP error), not a CertRep"
grep -q 503 "$work/client.out" || fail "the client did not see HTTP 503"
kill -CONT "$ca"; stopped=

echo "-- after recovery the device's retry of the same request completes"
# The password was reserved for this transaction when the CA stopped; the
# retry (same key, so same transactionID) is that transaction.
"$BUILD_DIR/tests/scep_ios_client" --url "$url" --challenge "$pw" --subject "CN=outage" \
	--key "$work/device.key" --out "$work/outage.pem" > "$work/client.out" 2>&1 ||
	{ cat "$work/client.out"; fail "the retry after recovery"; }
openssl verify -CAfile "$work/data/ca/ca.pem" "$work/outage.pem" >/dev/null || fail "certificate does not verify"
echo "PASS: outages answer 503 with Retry-After; the retry after recovery enrolls"
