#!/usr/bin/env bash
# An MDM that mints its own challenges: /scep/mdm is routed to a
# [validator.mdm] instance of the webhook plugin, which asks a stand-in MDM
# (tests/tools/webhook_server.py over HTTPS on 127.0.0.1). The challenge the
# MDM allows gets a certificate; one it denies gets CertRep FAILURE
# badRequest with the MDM's reason; /scep/mdm/pkiclient.exe is routed as
# /scep/mdm; an MDM that is down is our outage (503), not the device's
# wrong password; the default path keeps using
# one-time passwords and never asks the MDM; an MDM that takes its time is
# asked about several devices at once, and once per request; with
# UseSinglePassword = 1 beside it, the single password serves a path
# mapped to static only.
. "$(dirname "$0")/lib.sh"
interop_init webhook
server_start
fetch_ca_chain

MDM_OK="MDM-ALLOWED-7F3A9C"
MDM_URL="$BASE/scep/mdm"
hook="$WORK/webhook"
mkdir -p "$hook"

check "a stand-in MDM on 127.0.0.1 over HTTPS, with its own CA"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2)
openssl req -x509 "${ec[@]}" -subj /CN=mdm-ca -keyout "$hook/ca.key" -out "$hook/ca.pem" 2>/dev/null ||
	fail "openssl: MDM CA"
openssl req -x509 "${ec[@]}" -subj /CN=127.0.0.1 -CA "$hook/ca.pem" -CAkey "$hook/ca.key" \
	-addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
	-keyout "$hook/server.key" -out "$hook/server.pem" 2>/dev/null || fail "openssl: MDM server certificate"
touch "$hook/release" # the MDM answers at once (see the held check below)
python3 "$SRC_DIR/tests/tools/webhook_server.py" --mode match --allow-challenge "$MDM_OK" \
	--cert "$hook/server.pem" --key "$hook/server.key" --hold-until "$hook/release" \
	--port-file "$hook/port" --record "$hook/requests.jsonl" 2> "$hook/server.log" &
HOOK_PID=$!
on_exit "kill $HOOK_PID"
for _ in $(seq 100); do
	[ -s "$hook/port" ] && break
	kill -0 "$HOOK_PID" 2>/dev/null || { cat "$hook/server.log"; fail "webhook_server.py exited"; }
	sleep 0.1
done
[ -s "$hook/port" ] || fail "webhook_server.py wrote no port"
hook_port=$(cat "$hook/port")
echo "   MDM webhook on https://127.0.0.1:$hook_port/challenge"

# requests: how many the MDM was asked so far.
requests() {
	if [ -f "$hook/requests.jsonl" ]; then wc -l < "$hook/requests.jsonl"; else echo 0; fi
}

check "[validator.mdm] Module = webhook serves /scep/mdm; the default stays otp"
set_conf frontend Paths "/certsrv/mscep/mscep.dll /scep /cgi-bin/pkiclient.exe /scep/mdm"
add_conf_section challenge.paths
set_conf challenge.paths /scep/mdm mdm
add_conf_section validator.mdm
set_conf validator.mdm Module webhook
set_conf validator.mdm URL "https://127.0.0.1:$hook_port/challenge"
set_conf validator.mdm CAFile "$hook/ca.pem"
set_conf validator.mdm Timeout 5
set_conf challenge ValidatorRest 10 # seconds: the MDM down, below
server_restart
grep -q "validator mdm ready (webhook, plugin)" "$SERVER_LOG" ||
	fail "the challenge service did not load the webhook plugin"
grep -q "validator mdm: 8 instances, one per worker: 8 checks at once" "$SERVER_LOG" &&
	grep -q "scepd-challenge.*serving on .* with 8 workers" "$SERVER_LOG" ||
	fail "the challenge service does not serve the plugin with 8 workers"

check "the challenge the MDM allows enrolls through /scep/mdm"
ios_enroll "$MDM_OK" "O=Fabrikam,CN=mdm device Zoë’s iPad" "$WORK/mdm.pem" "$MDM_URL" ||
	fail "enrollment with the MDM's challenge failed"
verify_cert "$WORK/mdm.pem"
[ "$(requests)" = 1 ] || fail "the MDM was asked $(requests) times, want 1"
python3 - "$hook/requests.jsonl" "$MDM_OK" <<'PY' || fail "the MDM got the wrong request"
import json, sys
rec = json.loads(open(sys.argv[1]).readline())
req = rec["request"]
assert rec["content_type"] == "application/json", rec
assert rec["user_agent"] == "scepd-webhook/1", rec
assert req["challenge"] == sys.argv[2], req
assert req["path"] == "/scep/mdm", req
assert req["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----"), req
# UTF-8 as the device wrote it (RFC 4514), not OpenSSL's \C3\AB escapes.
assert req["subject"] == "O=Fabrikam,CN=mdm device Zoë’s iPad", req["subject"]
assert len(req["transaction_id"]) > 0, req
assert req["requester"] == "127.0.0.1", req
assert isinstance(req["sans"], list), req
print("   ok: the MDM got challenge, transaction_id, csr, subject, sans, requester, path")
PY

check "/scep/mdm/pkiclient.exe is /scep/mdm: the MDM decides, and is told the configured path"
ios_enroll "$MDM_OK" "CN=mdm pkiclient" "$WORK/mdm-pkiclient.pem" "$MDM_URL/pkiclient.exe" ||
	fail "enrollment with the MDM's challenge through $MDM_URL/pkiclient.exe failed"
verify_cert "$WORK/mdm-pkiclient.pem"
[ "$(requests)" = 2 ] || fail "the MDM was asked $(requests) times, want 2"
tail -n 1 "$hook/requests.jsonl" | python3 -c '
import json, sys
req = json.loads(sys.stdin.readline())["request"]
assert req["path"] == "/scep/mdm", req["path"]
print("   ok: the MDM was asked, with path /scep/mdm")' || fail "the MDM got the wrong path"
rc=0
ios_enroll "$(challenge)" "CN=otp on mdm pkiclient" "$WORK/otp-on-mdm-pkiclient.pem" "$MDM_URL/pkiclient.exe" || rc=$?
[ $rc = 2 ] || fail "otp password on $MDM_URL/pkiclient.exe: exit $rc, want 2 (the MDM decides there)"

check "[challenge.paths] names a path as [frontend] Paths does, one trailing '/' aside; a key that is none of them stops the challenge service at start"
# routed_key FROM TO: [challenge.paths]' key FROM renamed TO.
routed_key() {
	sed -i "s|^$1 = mdm\$|$2 = mdm|" "$DATA/scepd.conf"
	grep -q "^$2 = mdm\$" "$DATA/scepd.conf" || fail "no [challenge.paths] key $2 in scepd.conf"
}
server_stop
routed_key /scep/mdm /scep/mdm/
server_start
asked=$(requests)
ios_enroll "$MDM_OK" "CN=mdm slash" "$WORK/mdm-slash.pem" "$MDM_URL" > /dev/null ||
	fail "[challenge.paths] /scep/mdm/ for Paths' /scep/mdm: the MDM's challenge was refused"
[ "$(requests)" = $((asked + 1)) ] || fail "the MDM was asked $(($(requests) - asked)) times, want once"
server_stop
# A typo: its devices would have been checked by the default validator
# (one-time passwords), each refusal counted against their address.
routed_key /scep/mdm/ /scep/mdn
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-challenge" --config "$DATA/scepd.conf" > "$WORK/typo.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "\[challenge.paths\] /scep/mdn: not one of \[frontend\] Paths (/certsrv/mscep/mscep.dll /scep /cgi-bin/pkiclient.exe /scep/mdm)" "$WORK/typo.out" ||
	{ cat "$WORK/typo.out"; fail "[challenge.paths] /scep/mdn, not among Paths: exit $rc, want 1 naming Paths"; }
echo "   $(grep "not one of" "$WORK/typo.out")"
routed_key /scep/mdn /scep/mdm
server_start

check "a challenge the MDM denies gets CertRep FAILURE badRequest with its reason"
rc=0
ios_enroll "MDM-DENIED-000000" "CN=denied device" "$WORK/denied.pem" "$MDM_URL" || rc=$?
[ $rc = 2 ] || fail "denied challenge: client exit $rc, want 2 (CertRep FAILURE)"
grep -q "^failInfo: badRequest" "$WORK/denied.pem.log" || fail "not failInfo badRequest"
grep -q "refused the challenge: unknown device" "$WORK/denied.pem.log" ||
	fail "the failInfoText does not carry the MDM's reason"
[ ! -s "$WORK/denied.pem" ] || fail "a certificate was written for the denied request"

check "a one-time password is no good on /scep/mdm: the MDM decides there"
rc=0
ios_enroll "$(challenge)" "CN=otp on mdm path" "$WORK/otp-on-mdm.pem" "$MDM_URL" || rc=$?
[ $rc = 2 ] || fail "otp password on /scep/mdm: exit $rc, want 2"

check "the default path still uses one-time passwords and never asks the MDM"
asked=$(requests)
ios_enroll "$(challenge)" "CN=otp device" "$WORK/otp.pem" || fail "otp enrollment on $URL failed"
verify_cert "$WORK/otp.pem"
rc=0
ios_enroll "$MDM_OK" "CN=mdm challenge on default path" "$WORK/mdm-on-otp.pem" || rc=$?
[ $rc = 2 ] || fail "the MDM's challenge on the otp path: exit $rc, want 2"
grep -q "^failInfo: badRequest" "$WORK/mdm-on-otp.pem.log" || fail "not failInfo badRequest"
[ "$(requests)" = "$asked" ] || fail "the MDM was asked about a request on the otp path"

check "an MDM that takes its time is asked about several devices at once, up to Workers - 1 (8 - 1), the next one 503 at once; one-time passwords go on meanwhile"
# Straight to the challenge service, as the RA asks it (the frontend's and
# the RA's threads have limits of their own).
ask() {
	"$BUILD_DIR/tests/challenge_check" --endpoint "ipc://$DATA/run/challenge.sock" --timeout 8000 "$@"
}
rm -f "$hook/release"
asked=$(requests)
pids=()
for i in 1 2 3 4 5 6 7; do
	ask --password "$MDM_OK" --txid "HELD-$i" --path /scep/mdm > "$WORK/held$i.out" 2>&1 &
	pids+=($!)
done
# One at a time, the MDM would hold the first and hear of no other
# before the webhook's Timeout (5 s) refused it.
for _ in $(seq 40); do
	[ "$(requests)" -ge $((asked + 7)) ] && break
	sleep 0.1
done
[ "$(requests)" = $((asked + 7)) ] || { touch "$hook/release"; fail "the MDM holds $(($(requests) - asked)) of 7 checks: not asked at once"; }
# The eighth would take the last worker, and a one-time password on
# another path would wait for the MDM (past the RA's timeout).
rc=0
start=$SECONDS
ask --password "$MDM_OK" --txid HELD-8 --path /scep/mdm > "$WORK/held8.out" 2>&1 || rc=$?
[ $rc != 0 ] && [ $((SECONDS - start)) -lt 2 ] && grep -q "7 checks of plugins under way, one worker kept for the other validators" "$WORK/held8.out" ||
	{ touch "$hook/release"; cat "$WORK/held8.out"; fail "the eighth MDM check with seven held: exit $rc after $((SECONDS - start)) s, want 503 at once"; }
ask --password "$(challenge)" --txid OTP-MEANWHILE --path /scep > "$WORK/otp-held.out" 2>&1 ||
	{ touch "$hook/release"; cat "$WORK/otp-held.out"; fail "a one-time password check waited behind the MDM"; }
grep -q "allowed by otp" "$WORK/otp-held.out" || fail "the one-time password check: $(cat "$WORK/otp-held.out")"
touch "$hook/release"
for i in 1 2 3 4 5 6 7; do
	wait "${pids[$((i - 1))]}" || { cat "$WORK/held$i.out"; fail "held check $i"; }
	grep -q "allowed by mdm" "$WORK/held$i.out" || fail "held check $i: $(cat "$WORK/held$i.out")"
done
# Copies of one check (the frontend and the RA send a request again)
# wait for its verdict, each on a worker: counted as well, or eight of
# them held every worker as eight checks did.
rm -f "$hook/release"
asked=$(requests)
ask --password "$MDM_OK" --txid COPIED --path /scep/mdm > "$WORK/copied0.out" 2>&1 &
pids=($!)
for _ in $(seq 40); do
	[ "$(requests)" -ge $((asked + 1)) ] && break
	sleep 0.1
done
for i in 1 2 3 4 5 6 7; do
	ask --password "$MDM_OK" --txid COPIED --path /scep/mdm > "$WORK/copied$i.out" 2>&1 &
	pids+=($!)
done
sleep 1
pw=$(challenge)
start=$SECONDS
ask --password "$pw" --txid OTP-BESIDE-COPIES --path /scep > "$WORK/otp-copies.out" 2>&1 ||
	{ touch "$hook/release"; cat "$WORK/otp-copies.out"; fail "a one-time password check beside copies of an MDM check"; }
[ $((SECONDS - start)) -lt 3 ] ||
	{ touch "$hook/release"; fail "a one-time password check waited $((SECONDS - start)) s behind copies of an MDM check"; }
touch "$hook/release"
busy=0
for i in 0 1 2 3 4 5 6 7; do
	wait "${pids[$i]}" || true
	grep -q "allowed by mdm" "$WORK/copied$i.out" || { grep -q "checks of plugins under way" "$WORK/copied$i.out" && busy=$((busy + 1)); } ||
		{ cat "$WORK/copied$i.out"; fail "copy $i: neither allowed nor refused for the workers taken"; }
done
[ "$busy" = 1 ] || fail "$busy of 8 copies answered 503 for the workers taken, want 1 (seven workers)"
[ "$(requests)" = $((asked + 1)) ] || fail "the MDM was asked $(($(requests) - asked)) times about one check and its copies"

check "an MDM slower than the frontend's and the RA's patience (they send the request again) is asked once"
rm -f "$hook/release"
asked=$(requests)
ios_enroll "$MDM_OK" "CN=mdm slow" "$WORK/slow.pem" "$MDM_URL" > /dev/null &
slow_pid=$!
# The frontend and the RA send a request again after a third of their
# timeouts (rpc_call).
sleep 3
touch "$hook/release"
wait "$slow_pid" || { cat "$WORK/slow.pem.log"; fail "the slow MDM's enrollment"; }
verify_cert "$WORK/slow.pem"
[ "$(requests)" = $((asked + 1)) ] || fail "the MDM was asked $(($(requests) - asked)) times about one enrollment, want 1"
# A copy sent while the first is answered is answered once by the RA
# (the frontend's) and by the challenge service (the RA's): lib/rpc.c.
grep -q -e "mdm: the same check again (a request sent again): the answer of the first" \
	-e "scepd-ra.*request .* from frontend sent again while it is answered: one answer, to each" "$SERVER_LOG" ||
	fail "no request was sent again: this case tests nothing"

check "a slow CA after the MDM's answer (the request sent again once the check is answered) asks the MDM once"
# Test hook: the CA holds its first answer after this restart 2.5 s, past
# the frontend's sending again (a third of its 5 s RPCTimeout). One RA
# worker: the copy waits for the first's answer and then asks the
# challenge service (with several, the RA answers it with the first's:
# the case of a copy that went to another RA).
set_conf ra Workers 1
SCEPD_TEST_CA_HOLD="1:2500" server_restart
asked=$(requests)
from=$(log_mark)
ios_enroll "$MDM_OK" "CN=mdm slow CA" "$WORK/slowca.pem" "$MDM_URL" > /dev/null ||
	{ cat "$WORK/slowca.pem.log"; fail "the enrollment behind the slow CA"; }
verify_cert "$WORK/slowca.pem"
logged "$from" "test hook: holding for 2500 ms" || fail "the CA did not hold: this case tests nothing"
logged "$from" "mdm: the same check again (a request sent again, after it was answered): the answer of the first" ||
	fail "the request sent again did not get the first check's answer"
[ "$(requests)" = $((asked + 1)) ] || fail "the MDM was asked $(($(requests) - asked)) times about one enrollment, want 1"

check "the MDM down: HTTP 503 with Retry-After (our outage), never a refusal counted against the device's address"
kill "$HOOK_PID" 2>/dev/null || true
wait "$HOOK_PID" 2>/dev/null || true
from=$(log_mark)
# From an address of its own, as many times as WrongPasswordLimit (10):
# were they refusals, its next request would get 429.
for i in $(seq 10); do
	rc=0
	ios_enroll "$MDM_OK" "CN=mdm down $i" "$WORK/down.pem" "$MDM_URL" --source 127.0.0.9 > /dev/null || rc=$?
	[ $rc = 1 ] || fail "MDM down, request $i: exit $rc, want 1 (HTTP 503)"
	grep -q "PKIOperation: HTTP 503" "$WORK/down.pem.log" || { cat "$WORK/down.pem.log"; fail "MDM down: not HTTP 503"; }
	grep -q "^Retry-After: " "$WORK/down.pem.log" || fail "MDM down: 503 without Retry-After"
done
logged "$from" "mdm: could not decide transaction .*: the MDM webhook could not be asked: .*127.0.0.1" ||
	fail "the log does not say why the MDM could not be asked"
# Refused at once (nothing listens): no worker waits on it, and one
# device's odd request may draw such an error: it does not rest.
asked_down=$(tail -n "+$from" "$SERVER_LOG" | grep -c "mdm: could not decide transaction" || true)
[ "$asked_down" = 10 ] && ! logged "$from" "validator mdm waited" ||
	fail "the MDM refusing connections at once: asked $asked_down times of 10, or it rested"
ios_enroll "$(challenge)" "CN=after the MDM was down" "$WORK/after-down.pem" "$URL" --source 127.0.0.9 ||
	fail "the address that met the MDM's outage was held back (429?) from a one-time password"
verify_cert "$WORK/after-down.pem"

check "the MDM hangs: three checks wait its Timeout, then it rests (503 at once, not asked); back, one check asks it"
# webhook_server: the MDM takes each request and answers none (until a
# file that never comes, or 30 s); the plugin's Timeout is 5 s.
python3 "$SRC_DIR/tests/tools/webhook_server.py" --mode match --allow-challenge "$MDM_OK" \
	--cert "$hook/server.pem" --key "$hook/server.key" --port "$hook_port" --hold-until "$hook/never" \
	--port-file "$hook/port2" --record "$hook/requests.jsonl" 2>> "$hook/server.log" &
HOOK_PID=$!
on_exit "kill $HOOK_PID"
for _ in $(seq 100); do [ -s "$hook/port2" ] && break; sleep 0.1; done
[ -s "$hook/port2" ] || fail "webhook_server.py did not come back on port $hook_port"
# Through the RA, which waits 4 s for a check: the plugin waits what the
# RA has left (host->time_left_ms), not its Timeout of 5 s, and its
# worker is free when the device is answered.
from=$(log_mark)
rc=0
ios_enroll "$MDM_OK" "CN=mdm hanging" "$WORK/hanging.pem" "$MDM_URL" > /dev/null || rc=$?
[ $rc = 1 ] && grep -q "503" "$WORK/hanging.pem.log" || fail "an enrollment the hanging MDM decides nothing about: exit $rc, want 1 (HTTP 503)"
await_logged "$from" "mdm: could not decide transaction .*did not answer within the [0-9]* ms its caller had left (Timeout = 5 s)" 10 ||
	fail "the check through the RA waited its Timeout, not the RA's time left"
line=$(grep "mdm: could not decide transaction .*its caller had left" "$WORK/log.since" | head -1)
echo "   ${line:0:300}"
took=$(sed -n 's/.*(\([0-9]*\) ms): .*/\1/p' <<< "$line")
[ -n "$took" ] && [ "$took" -le 4100 ] || fail "the check through the RA took $took ms, past the RA's 4000"
asked=$(requests)
from=$(log_mark)
# Straight to the challenge service, three at once (through the frontend
# and the RA one client's requests meet limits of their own).
hang_pids=()
for i in 1 2 3; do
	ask --password "$MDM_OK" --txid "HANG-$i" --path /scep/mdm > "$WORK/hang$i.out" 2>&1 &
	hang_pids+=($!)
done
for i in 1 2 3; do
	rc=0
	wait "${hang_pids[$((i - 1))]}" || rc=$?
	[ $rc = 1 ] && grep -q "did not answer within 5 s" "$WORK/hang$i.out" ||
		{ cat "$WORK/hang$i.out"; fail "a check to the hanging MDM: exit $rc, want 1 (no verdict)"; }
done
logged "$from" "validator mdm waited 3 checks in a row for no verdict: not asked for 10 s" ||
	fail "the validator did not rest after three checks that waited its Timeout"
[ "$(requests)" = $((asked + 3)) ] || fail "the hanging MDM was asked $(($(requests) - asked)) times, want 3"
rc=0
ask --password "$MDM_OK" --txid "HANG-4" --path /scep/mdm > "$WORK/hang4.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "not asked again for up to 10 s" "$WORK/hang4.out" ||
	{ cat "$WORK/hang4.out"; fail "a check during the rest: exit $rc, want 1 with the reason"; }
rc=0
ios_enroll "$MDM_OK" "CN=mdm resting" "$WORK/resting.pem" "$MDM_URL" --source 127.0.0.9 > /dev/null || rc=$?
[ $rc = 1 ] || fail "during the rest: exit $rc, want 1 (HTTP 503 at once)"
[ "$(requests)" = $((asked + 3)) ] || fail "the MDM was asked while it rested"
echo "   ok: three checks waited, then 503 at once without asking the MDM"
# The MDM answers again: until the rest ends, 503 without asking; then
# the first check asks it and gets the verdict.
kill "$HOOK_PID" 2>/dev/null || true
wait "$HOOK_PID" 2>/dev/null || true
rm -f "$hook/port2"
python3 "$SRC_DIR/tests/tools/webhook_server.py" --mode match --allow-challenge "$MDM_OK" \
	--cert "$hook/server.pem" --key "$hook/server.key" --port "$hook_port" \
	--port-file "$hook/port2" --record "$hook/requests.jsonl" 2>> "$hook/server.log" &
HOOK_PID=$!
on_exit "kill $HOOK_PID"
for _ in $(seq 100); do [ -s "$hook/port2" ] && break; sleep 0.1; done
[ -s "$hook/port2" ] || fail "webhook_server.py did not come back on port $hook_port"
asked=$(requests)
for i in $(seq 30); do
	rc=0
	ios_enroll "$MDM_OK" "CN=mdm back" "$WORK/back.pem" "$MDM_URL" --source 127.0.0.9 > /dev/null || rc=$?
	[ $rc = 0 ] && break
	[ $rc = 1 ] || fail "the MDM back, try $i: exit $rc"
	[ "$(requests)" = "$asked" ] || fail "the MDM was asked (try $i) and gave no verdict"
	sleep 1
done
[ $rc = 0 ] || fail "the MDM back: no enrollment within 30 s"
verify_cert "$WORK/back.pem"
[ "$(requests)" = $((asked + 1)) ] || fail "the MDM back was asked $(($(requests) - asked)) times, want once"
echo "   ok: enrolled after $i tries, the MDM asked once"
logged "$from" "validator mdm gave a verdict again: its rest is over" ||
	fail "the end of the rest is not logged"

check "UseSinglePassword = 1 beside Validator = mdm: the MDM decides on the default paths, the single password is good on a path mapped to static, and the admin page says so instead of issuing a password"
SINGLE="single-beside-mdm-5E21"
set_conf frontend Paths "/certsrv/mscep/mscep.dll /scep /cgi-bin/pkiclient.exe /scep/mdm /scep/static"
set_conf challenge.paths /scep/static static
set_conf challenge UseSinglePassword 1
set_conf challenge SinglePassword "$SINGLE"
set_conf challenge Validator mdm
from=$(log_mark)
server_restart
logged "$from" "UseSinglePassword = 1 but Validator = mdm: the single password serves only paths mapped to static" ||
	fail "no start-up warning that the single password serves only /scep/static"
ios_enroll "$SINGLE" "CN=single on static" "$WORK/single-static.pem" "$BASE/scep/static" > /dev/null ||
	fail "the single password on /scep/static did not enroll"
verify_cert "$WORK/single-static.pem"
asked=$(requests)
rc=0
ios_enroll "$SINGLE" "CN=single on default" "$WORK/single-default.pem" > /dev/null || rc=$?
[ $rc = 2 ] && [ "$(requests)" = $((asked + 1)) ] ||
	fail "the single password on the default path: exit $rc, the MDM asked $(($(requests) - asked)) times; want the MDM's refusal (2), asked once"
ios_enroll "$MDM_OK" "CN=mdm on default" "$WORK/mdm-default.pem" > /dev/null ||
	fail "the MDM's challenge on the default path did not enroll"
creds=$(head -n 1 "$DATA/admin.credentials" | tr -d '\r\n')
code=$(curl -s -o "$WORK/single-admin.json" -w '%{http_code}' -u "$creds" -H 'Accept: application/json' \
	"$BASE/certsrv/mscep_admin/")
python3 - "$WORK/single-admin.json" "$SINGLE" <<'PY' && [ "$code" = 200 ] ||
import json, sys
page = json.load(open(sys.argv[1]))
assert page.get("single") is True and "password" not in page, page
assert sys.argv[2] not in json.dumps(page), "the single password is shown"
PY
	{ cat "$WORK/single-admin.json"; fail "the admin page: HTTP $code, want the single password's note, no password"; }
echo "   /scep/static takes the single password, the default path asks the MDM, the admin page issues none"

check "the MDM's validator on every path, no single password: the admin page issues no one-time password (every device would be refused it)"
set_conf challenge UseSinglePassword 0
set_conf challenge.paths /scep/static mdm
server_restart
code=$(curl -s -o "$WORK/no-otp-admin.json" -w '%{http_code}' -u "$creds" -H 'Accept: application/json' \
	"$BASE/certsrv/mscep_admin/")
python3 - "$WORK/no-otp-admin.json" <<'PY' ||
import json, sys
page = json.load(open(sys.argv[1]))
assert "password" not in page, page
assert "No SCEP path takes one-time passwords" in json.dumps(page), page
PY
	{ cat "$WORK/no-otp-admin.json"; fail "the admin page with no path of one-time passwords: HTTP $code"; }
[ "$code" != 200 ] || fail "the admin page with no path of one-time passwords answered 200"
echo "   HTTP $code: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error"))' "$WORK/no-otp-admin.json")"

check "no challenge in the server log"
if grep -qF -e "$MDM_OK" -e "MDM-DENIED-000000" -e "$SINGLE" "$SERVER_LOG"; then
	grep -nF -e "$MDM_OK" -e "MDM-DENIED-000000" -e "$SINGLE" "$SERVER_LOG"
	fail "a challenge was logged"
fi
grep -q "mdm: allowed transaction" "$SERVER_LOG" || fail "the plugin's decision was not logged"

pass "/scep/mdm asks the MDM (allow, deny with reason, down: 503, several at once while it takes its time); the default path stays otp"
