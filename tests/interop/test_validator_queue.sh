#!/usr/bin/env bash
# A validator plugin that does not export
# scepd_challenge_validator_v1_concurrent is asked one check at a time:
# one asked, one waiting its turn (until its request's deadline), and a
# third answered at once as unavailable (services/challenge/validators.c,
# validator_turn). /scep/slow is routed to tests/plugins/slow_validator.c,
# which takes SLEEP_MS per check; three devices enroll there at once: two
# get their certificates, the second after waiting for the first's check,
# and the third gets HTTP 503 with Retry-After before the first check
# ends. The plugin logs each check's start with how many others were in
# progress: never one. Then a fresh enrollment on /scep/slow passes. With
# two workers in the challenge service and checks of 3 s, checks that
# waited past their deadline are dropped and the workers still serve.
# With one thread, a password asked during a 3 s check is issued once.
# A consume waiting its turn behind a check that ends past its deadline
# still reaches the plugin.
. "$(dirname "$0")/lib.sh"
interop_init validator_queue
server_start

PLUGIN="$BUILD_DIR/tests/plugins/scepd-slow-validator.so"
SLOW_PW="SLOW-ALLOWED-5E1D0C"
SLOW_URL="$BASE/scep/slow"
# Well under a third of the frontend's RPCTimeout (5 s): it sends a
# PKIOperation again after that, and the copy of a request answered
# already would ask the plugin anew.
SLEEP_MS=1000
[ -f "$PLUGIN" ] || fail "$PLUGIN is not built"

check "[validator.slow] (the slow plugin, no _concurrent symbol) serves /scep/slow: one instance"
set_conf frontend Paths "/certsrv/mscep/mscep.dll /scep /cgi-bin/pkiclient.exe /scep/slow"
# Three enrollments at once reach the challenge service side by side
# whatever the cores (the default is four RA workers per core).
set_conf ra Workers 4
add_conf_section challenge.paths
set_conf challenge.paths /scep/slow slow
add_conf_section validator.slow
set_conf validator.slow Module "$PLUGIN"
set_conf validator.slow Password "$SLOW_PW"
set_conf validator.slow SleepMs "$SLEEP_MS"
from=$(log_mark)
server_restart
fetch_ca_chain
logged "$from" "validator slow ready (slow-validator, plugin)" ||
	fail "the challenge service did not load the slow plugin"
logged "$from" "SCEP path /scep/slow: validator slow" || fail "/scep/slow is not routed to slow"
logged "$from" "scepd-challenge.*serving on .* with 8 workers" ||
	fail "the challenge service does not serve a plugin with 8 workers"
! logged "$from" "validator slow: [0-9]* instances" ||
	fail "the service made an instance per worker of a plugin that did not ask for it"

for d in d1 d2 d3 d4; do
	openssl genrsa -out "$WORK/$d.key" 2048 2>/dev/null || fail "openssl genrsa"
done

# enroll NAME: the iOS-like client on /scep/slow with NAME.key. Writes
# NAME.rc (its exit status), NAME.ms (how long it took) and NAME.ends (how
# many of the plugin's checks had ended when it had its answer).
enroll() {
	local name=$1 start rc=0
	start=$(date +%s%N)
	ios_enroll "$SLOW_PW" "CN=slow $name" "$WORK/$name.pem" "$SLOW_URL" \
		--key "$WORK/$name.key" > /dev/null || rc=$?
	echo $((($(date +%s%N) - start) / 1000000)) > "$WORK/$name.ms"
	grep -c "slow: check of txid .* ends" "$SERVER_LOG" > "$WORK/$name.ends" || true
	echo $rc > "$WORK/$name.rc"
}

# enroll_at_once NAME...: enroll each at the same time; returns when all did.
enroll_at_once() {
	local d p pids=()
	for d in "$@"; do
		enroll "$d" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p"
	done
}

# The transactionID a client printed.
txid_of() {
	sed -n 's/^PKIOperation: .* txid \([0-9A-Za-z]*\)$/\1/p' "$WORK/$1.pem.log" | head -1
}

check "three devices enroll on /scep/slow at once (each check takes $SLEEP_MS ms)"
trio=$(log_mark)
enroll_at_once d1 d2 d3
enrolled=() busy=()
for d in d1 d2 d3; do
	rc=$(cat "$WORK/$d.rc")
	echo "   $d: exit $rc after $(cat "$WORK/$d.ms") ms, txid $(txid_of $d)"
	case $rc in
	0) enrolled+=("$d") ;;
	1) busy+=("$d") ;;
	*) cat "$WORK/$d.pem.log"; fail "$d: client exit $rc (want 0, or 1 for HTTP 503)" ;;
	esac
done
[ ${#enrolled[@]} = 2 ] && [ ${#busy[@]} = 1 ] ||
	fail "${#enrolled[@]} enrolled and ${#busy[@]} got an error; want 2 and 1 (one asked, one waiting, the third turned away)"
tail -n "+$trio" "$SERVER_LOG" > "$WORK/trio.log"
# The first is the one the plugin checked first (not the first to finish:
# its answer waits for its consume, which waits for the second's check).
first=${enrolled[0]} second=${enrolled[1]}
b0=$(grep -n "slow: check of txid $(txid_of "$first") begins" "$WORK/trio.log" | cut -d: -f1 | head -1)
b1=$(grep -n "slow: check of txid $(txid_of "$second") begins" "$WORK/trio.log" | cut -d: -f1 | head -1)
[ -n "$b0" ] && [ -n "$b1" ] || fail "the plugin did not check both enrolled devices"
[ "$b0" -lt "$b1" ] || { first=${enrolled[1]} second=${enrolled[0]}; }
third=${busy[0]}
first_tx=$(txid_of "$first") second_tx=$(txid_of "$second") third_tx=$(txid_of "$third")
[ -n "$first_tx" ] && [ -n "$second_tx" ] && [ -n "$third_tx" ] || fail "a client printed no transactionID"

check "the plugin was asked about two of them, never about two at once"
grep "slow: check of txid" "$WORK/trio.log" | sed 's/^.*: slow: /   plugin: /'
[ "$(grep -c "slow: check of txid .* begins" "$WORK/trio.log")" = 2 ] ||
	fail "the plugin was asked $(grep -c "slow: check of txid .* begins" "$WORK/trio.log") times, want 2"
! grep -q "slow: check of txid .* begins, [1-9][0-9]* others in progress" "$WORK/trio.log" ||
	fail "the plugin was asked while it was checking another request"

check "the first gets its certificate after one check ($first)"
verify_cert "$WORK/$first.pem"
[ "$(cat "$WORK/$first.ms")" -ge "$SLEEP_MS" ] || fail "$first enrolled in $(cat "$WORK/$first.ms") ms: the plugin did not take its time"

check "the second waits for the first's check, then gets its certificate ($second)"
verify_cert "$WORK/$second.pem"
[ "$(cat "$WORK/$second.ms")" -ge $((2 * SLEEP_MS - 300)) ] ||
	fail "$second enrolled in $(cat "$WORK/$second.ms") ms: it did not wait for the first check ($SLEEP_MS ms)"
first_end=$(grep -n "slow: check of txid $first_tx ends: allowed" "$WORK/trio.log" | cut -d: -f1 | head -1)
second_begin=$(grep -n "slow: check of txid $second_tx begins" "$WORK/trio.log" | cut -d: -f1 | head -1)
[ -n "$first_end" ] && [ -n "$second_begin" ] && [ "$second_begin" -gt "$first_end" ] ||
	fail "the second check (log line ${second_begin:-none}) did not begin after the first ended (${first_end:-none})"

check "the third gets HTTP 503 with Retry-After at once, before the first check ended ($third)"
grep -q "^PKIOperation: HTTP 503" "$WORK/$third.pem.log" || { cat "$WORK/$third.pem.log"; fail "$third: not HTTP 503"; }
grep -q "^Retry-After: [0-9]" "$WORK/$third.pem.log" || fail "$third: 503 without Retry-After"
[ "$(cat "$WORK/$third.ends")" = 0 ] ||
	fail "$third was answered after $(cat "$WORK/$third.ends") check(s) had ended: it waited"
[ "$(cat "$WORK/$third.ms")" -lt "$SLEEP_MS" ] || fail "$third took $(cat "$WORK/$third.ms") ms"
[ ! -s "$WORK/$third.pem" ] || fail "a certificate was written for $third"
grep -q "txid=$third_tx .*validator slow unavailable: validator slow is busy (one request at a time): retry later" "$WORK/trio.log" ||
	fail "the challenge service did not log that slow was busy for $third"
! grep -q "slow: check of txid $third_tx" "$WORK/trio.log" || fail "the plugin was asked about $third"

check "/metrics: slow allowed 2, unavailable 1"
[ "$(metric 'scepd_challenge_unavailable_total{validator="slow"}')" = 1 ] ||
	fail "scepd_challenge_unavailable_total of slow: $(metric 'scepd_challenge_unavailable_total{validator="slow"}'), want 1"
[ "$(metric 'scepd_challenge_allowed_total{validator="slow"}')" = 2 ] ||
	fail "scepd_challenge_allowed_total of slow: $(metric 'scepd_challenge_allowed_total{validator="slow"}'), want 2"

check "then a fresh enrollment on /scep/slow gets its certificate"
enroll d4
[ "$(cat "$WORK/d4.rc")" = 0 ] || { cat "$WORK/d4.pem.log"; fail "the fresh enrollment: exit $(cat "$WORK/d4.rc")"; }
verify_cert "$WORK/d4.pem"
grep -q "slow: check of txid $(txid_of d4) begins, 0 others in progress" "$SERVER_LOG" ||
	fail "the fresh enrollment was not checked by the plugin alone"

check "[challenge] Workers = 2, each check 3 s: checks that waited past their deadline are dropped, and the workers take the next"
# Five devices at once: one check runs (3 s), one waits its turn and
# runs next (3-6 s, after the RA gave up at 4 s); the others wait for a
# worker past their deadlines and are dropped. A worker that said nothing
# after a dropped request was never given another one: once both had,
# every enrollment got 503.
set_conf challenge Workers 2
set_conf validator.slow SleepMs 3000
from=$(log_mark)
server_restart
logged "$from" "scepd-challenge.*serving on .* with 2 workers" ||
	fail "the challenge service does not serve with 2 workers"
for d in d5 d6 d7 d8 d9 d10; do
	openssl genrsa -out "$WORK/$d.key" 2048 2>/dev/null || fail "openssl genrsa"
done
enroll_at_once d5 d6 d7 d8 d9
for d in d5 d6 d7 d8 d9; do
	rc=$(cat "$WORK/$d.rc")
	echo "   $d: exit $rc after $(cat "$WORK/$d.ms") ms"
	[ "$rc" = 0 ] || [ "$rc" = 1 ] || { cat "$WORK/$d.pem.log"; fail "$d: client exit $rc (want 0, or 1 for HTTP 503)"; }
done
sleep 2 # the second check ends (6 s); what waited behind it is dropped
logged "$from" "scepd-challenge.*rpc: dropped request .* past its deadline" ||
	fail "the challenge service dropped no request: the scenario did not happen"
echo "   the challenge service dropped $(tail -n "+$from" "$SERVER_LOG" | grep -c "scepd-challenge.*rpc: dropped request .* past its deadline") requests past their deadlines"
enroll d10
[ "$(cat "$WORK/d10.rc")" = 0 ] || { cat "$WORK/d10.pem.log"; fail "an enrollment after the dropped checks: exit $(cat "$WORK/d10.rc") (the workers that dropped them no longer served)"; }
verify_cert "$WORK/d10.pem"

check "a password asked while the challenge service's only thread checks for 3 s is issued once"
# The frontend sends a request again after a third of RPCTimeout (5 s);
# copies of a ChallengeIssue each made a password nobody was shown,
# counted against PasswordMax for its validity.
set_conf challenge Workers 1
set_conf validator.slow SleepMs 3000
server_restart
printf 'mdm-secret\n' | "$SCEPCTL" --data-dir "$DATA" passwd --rights mdm mdm1 2>/dev/null ||
	fail "scepctl passwd --rights mdm"
openssl genrsa -out "$WORK/d11.key" 2048 2>/dev/null || fail "openssl genrsa"
from=$(log_mark)
enroll d11 &
enroller=$!
for _ in $(seq 50); do # the check has begun
	tail -n "+$from" "$SERVER_LOG" | grep -q "slow: check of txid .* begins" && break
	sleep 0.1
done
code=$(curl -s -m 10 -o "$WORK/pw.json" -w '%{http_code}' -u mdm1:mdm-secret -X POST "$BASE/certsrv/mscep_admin/api/challenges")
wait "$enroller"
[ "$code" = 200 ] || { cat "$WORK/pw.json"; fail "the password asked during the check: HTTP $code"; }
[ "$(cat "$WORK/d11.rc")" = 0 ] || { cat "$WORK/d11.pem.log"; fail "the enrollment during which a password was asked: exit $(cat "$WORK/d11.rc")"; }
issued=$(tail -n "+$from" "$SERVER_LOG" | grep -c "scepd-challenge.*issued password id=") || true
echo "   one request for a password, asked while a check took 3 s: $issued issued"
[ "$issued" = 1 ] || fail "$issued passwords issued for one request, want 1"

check "a consume behind a check that outlasts the RA's deadline still reaches the plugin"
# Two devices at once, checks of 3 s: the first's check ends at 3 s and
# the second's takes the plugin's turn until 6 s; the first's consume
# (the MDM told the password was used) waits for it, past its request's
# deadline (about 5 s): it was dropped then, and the MDM could allow the
# password again.
set_conf challenge Workers 0
from=$(log_mark)
server_restart
for d in d12 d13; do
	openssl genrsa -out "$WORK/$d.key" 2048 2>/dev/null || fail "openssl genrsa"
done
enroll_at_once d12 d13
for d in d12 d13; do
	echo "   $d: exit $(cat "$WORK/$d.rc") after $(cat "$WORK/$d.ms") ms, txid $(txid_of $d)"
done
if [ "$(cat "$WORK/d12.rc")" = 0 ]; then first=d12; else first=d13; fi
[ "$(cat "$WORK/$first.rc")" = 0 ] || fail "neither device enrolled"
first_tx=$(txid_of $first)
for _ in $(seq 60); do # the second check ends at about 6 s
	tail -n "+$from" "$SERVER_LOG" | grep -q "slow: consume of txid $first_tx" && break
	sleep 0.2
done
tail -n "+$from" "$SERVER_LOG" | grep "slow: \(check\|consume\) of txid" | sed 's/^.*: slow: /   plugin: /'
tail -n "+$from" "$SERVER_LOG" | grep -q "slow: consume of txid $first_tx" ||
	fail "the plugin was not told that $first's password was used"

check "two [validator.*] sections of the one plugin take turns too (one copy of its globals: it did not say it may be asked at once)"
set_conf frontend Paths "/certsrv/mscep/mscep.dll /scep /cgi-bin/pkiclient.exe /scep/slow /scep/slow2"
set_conf challenge.paths /scep/slow2 slow2
add_conf_section validator.slow2
set_conf validator.slow2 Module "$PLUGIN"
set_conf validator.slow2 Password "$SLOW_PW"
set_conf validator.slow2 SleepMs "$SLEEP_MS"
set_conf validator.slow SleepMs "$SLEEP_MS"
from=$(log_mark)
server_restart
for d in d14 d15; do
	openssl genrsa -out "$WORK/$d.key" 2048 2>/dev/null || fail "openssl genrsa"
done
start=$(date +%s%N)
ios_enroll "$SLOW_PW" "CN=slow d14" "$WORK/d14.pem" "$SLOW_URL" --key "$WORK/d14.key" > /dev/null &
p14=$!
ios_enroll "$SLOW_PW" "CN=slow d15" "$WORK/d15.pem" "${SLOW_URL}2" --key "$WORK/d15.key" > /dev/null &
p15=$!
wait "$p14" || { cat "$WORK/d14.pem.log"; fail "d14 on /scep/slow"; }
wait "$p15" || { cat "$WORK/d15.pem.log"; fail "d15 on /scep/slow2"; }
both_ms=$((($(date +%s%N) - start) / 1000000))
echo "   both enrolled in $both_ms ms (checks of $SLEEP_MS ms each)"
# Asked at once, one after the other: both took two checks' time (had
# they not been asked at once, this run would show nothing).
[ "$both_ms" -ge $((2 * SLEEP_MS - 300)) ] ||
	fail "both enrolled in $both_ms ms: the plugin's two checks ran side by side"
tail -n "+$from" "$SERVER_LOG" | grep "slow2\?: check of txid" | sed 's/^.*: \(slow2\?: \)/   plugin \1/'
[ "$(tail -n "+$from" "$SERVER_LOG" | grep -c "slow2\?: check of txid .* begins")" = 2 ] || fail "the plugin was not asked twice"
! tail -n "+$from" "$SERVER_LOG" | grep -q "slow2\?: check of txid .* begins, [1-9][0-9]* others in progress" ||
	fail "the plugin was asked through one section while it checked through the other"

check "no challenge in the server log"
! grep -qF "$SLOW_PW" "$SERVER_LOG" || fail "the password was logged"

pass "a plugin without _concurrent: one check at a time, one waiting (enrolled after), a third 503 with Retry-After at once; then enrollments go on, also after checks dropped for their deadline; a password asked meanwhile is issued once; a late consume is not lost"
