#!/usr/bin/env bash
# The CA's journal: before it signs, the CA commits the serial and the
# SHA-256 of the TBSCertificate under the transactionID. The CA is made to
# crash (test hook SCEPD_TEST_CA_CRASH=POINT:N, its Nth issuance) after the
# journal's commit, after signing, and after the ledger's commit; scepd
# restarts it and the device's retry (same key, same password) gets the
# journalled certificate: the serial the CA had when it died and, after
# signing, the very bytes (RSA PKCS#1 v1.5 signatures are deterministic).
# The ledger holds exactly one certificate per device, the journal is left
# empty. A journalled certificate that can no longer be built as it was
# (the CA's ValidityDays changed in between) is never signed: the retry
# gets a new serial, and the operator is told. Requests that reach the CA
# together are journalled in one commit, and a crash after it leaves each
# of them journalled; two copies of one request at once get one
# certificate. A journalled certificate no retry came for within
# PendingDays + 7 days (faketime) is abandoned, logged once, and the late
# retry gets a new certificate, not one backdated by weeks; nor is one
# that would have expired by its retry.
. "$(dirname "$0")/lib.sh"
interop_init journal
server_start
fetch_ca_chain
server_stop

# As the CA writes serials: 32 digits (openssl drops a leading 00 byte,
# which one serial in 128 has).
serial_of() {
	local s
	s=$(openssl x509 -in "$1" -noout -serial | cut -d= -f2)
	printf '%32s' "$s" | tr ' ' 0
}
der_sha256() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }

# Enrolls SUBJECT with key KEY and password PW until it succeeds (up to
# 40 attempts, 0.5 s apart, each bounded in time); OUT gets the certificate
# and OUT.attempts one line per attempt (its exit status).
enroll_until_success() {
	local pw=$1 subject=$2 key=$3 out=$4 rc
	for _ in $(seq 40); do
		rc=0
		timeout -s KILL 40 "$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "$subject" \
			--key "$key" --out "$out" > "$out.log" 2>&1 || rc=$?
		echo "$rc" >> "$out.attempts"
		case $rc in
		0) return 0 ;;
		2 | 3) cat "$out.log"; fail "$subject: a FAILURE or PENDING answer" ;;
		esac
		sleep 0.5
	done
	cat "$out.log"
	fail "$subject: no certificate after 40 attempts"
}

# The ledger's certificates whose subject is $1.
ledger_count() {
	"$SCEPCTL" --data-dir "$DATA" list --json --limit 1000 > "$WORK/ledger.json" || fail "scepctl list"
	python3 -c 'import json,sys; print(sum(1 for e in json.load(open(sys.argv[1])) if e["subject"] == sys.argv[2]))' \
		"$WORK/ledger.json" "$1"
}

for point in journal signed recorded; do
	check "the CA crashes after '$point': the retry gets the certificate it had"
	from=$(log_mark)
	SCEPD_TEST_CA_CRASH="$point:2" server_start
	pw=$(challenge)
	ios_enroll "$pw" "CN=before $point" "$WORK/before-$point.pem" > /dev/null ||
		fail "the first enrollment (no crash yet)"
	pw=$(challenge)
	enroll_until_success "$pw" "CN=crash $point" "$WORK/$point.key" "$WORK/$point.pem"
	crash=$(tail -n "+$from" "$SERVER_LOG" | grep "test hook: crashing after '$point'" || true)
	[ -n "$crash" ] || fail "the CA did not crash after '$point'"
	echo "   $crash" | sed 's/.*test hook: /   CA: /'
	# The RA resends a request the CA did not answer (Lazy Pirate): the
	# restarted CA may answer the device's first attempt.
	echo "   the device's attempts (exit status): $(tr '\n' ' ' < "$WORK/$point.pem.attempts")"
	logged "$from" "scepd-ca .*restarting in" ||
		fail "scepd did not restart the CA"
	verify_cert "$WORK/$point.pem" > /dev/null
	want=$(echo "$crash" | sed -n 's/.*serial \([0-9A-F]*\),.*/\1/p')
	got=$(serial_of "$WORK/$point.pem")
	[ "$got" = "$want" ] || fail "the retry got serial $got, the CA had $want when it crashed"
	echo "   the retry got serial $got, the one the CA had when it crashed"
	if [ "$point" != journal ]; then
		signed=$(echo "$crash" | sed -n 's/.*certificate SHA-256 \([0-9a-f]*\).*/\1/p')
		hash=$(der_sha256 "$WORK/$point.pem")
		[ "$hash" = "$signed" ] || fail "the retry got a certificate of SHA-256 $hash, the CA had signed $signed"
		echo "   and the very certificate it had signed (SHA-256 ${hash:0:16}...)"
	fi
	if [ "$point" = recorded ]; then
		logged "$from" "retry (client .*): the same certificate, serial $want" ||
			fail "the ledger did not answer the retry"
	else
		logged "$from" "certificate(s) journalled but not in the ledger" ||
			fail "the restarted CA did not report the journalled certificate"
		logged "$from" "the CA stopped after journalling serial $want: that certificate is signed now" ||
			fail "the CA did not say it signed the journalled certificate"
	fi
	count=$(ledger_count "CN=crash $point")
	[ "$count" = 1 ] || fail "the ledger holds $count certificates of CN=crash $point, want 1"
	echo "   the ledger holds exactly one"
	server_stop
done

check "after the retries the journal is empty: a restarted CA reports nothing left"
from=$(log_mark)
server_start
if logged "$from" "journalled but not in the ledger"; then
	fail "the journal still holds records"
fi
server_stop

# die_in_journal CN STEM PW: a device enrolls as CN with PW and
# $WORK/STEM.key while the CA is set to crash after the journal's commit
# (the log read from $from). The whole server dies right after that commit
# (the RA would otherwise resend to the restarted CA at once): the process
# group is killed as soon as the CA says it crashed, before scepd restarts
# it. The journalled serial in $journalled; the server stopped.
die_in_journal() {
	local cn=$1 stem=$2 pw=$3 crash client
	"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=$cn" \
		--key "$WORK/$stem.key" --out "$WORK/$stem.pem" > "$WORK/$stem.first" 2>&1 &
	client=$!
	crash=
	for _ in $(seq 600); do
		crash=$(tail -n "+$from" "$SERVER_LOG" | grep "test hook: crashing after 'journal'" || true)
		[ -z "$crash" ] || break
		sleep 0.05
	done
	[ -n "$crash" ] || fail "the CA did not crash after 'journal'"
	kill -KILL -- "-$SERVER_PID"
	for _ in $(seq 100); do kill -0 -- "-$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
	wait "$client" && fail "the attempt the server died in succeeded"
	[ "$(tail -n "+$from" "$SERVER_LOG" | grep -c "started scepd-ca")" -le 1 ] || fail "scepd restarted the CA before it was killed"
	journalled=$(echo "$crash" | sed -n 's/.*serial \([0-9A-F]*\),.*/\1/p')
	server_stop
}

check "a journalled certificate that cannot be built again is never signed: a new serial"
from=$(log_mark)
SCEPD_TEST_CA_CRASH="journal:2" server_start
pw=$(challenge)
ios_enroll "$pw" "CN=before change" "$WORK/before-change.pem" > /dev/null || fail "the first enrollment"
pw=$(challenge)
die_in_journal "changed CA" changed "$pw"
set_conf ca ValidityDays 200
from=$(log_mark)
server_start
enroll_until_success "$pw" "CN=changed CA" "$WORK/changed.key" "$WORK/changed.pem"
verify_cert "$WORK/changed.pem" > /dev/null
got=$(serial_of "$WORK/changed.pem")
[ "$got" != "$journalled" ] || fail "the certificate journalled under another ValidityDays was signed"
logged "$from" "its journalled certificate (serial $journalled, template .*) cannot be built again" ||
	fail "the operator was not told that serial $journalled was abandoned"
days=$(( ($(date -d "$(openssl x509 -in "$WORK/changed.pem" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
[ "$days" -ge 198 ] && [ "$days" -le 200 ] || fail "the new certificate is valid for $days days, want 200 (today's ValidityDays)"
[ "$(ledger_count "CN=changed CA")" = 1 ] || fail "the ledger does not hold exactly one certificate of CN=changed CA"
echo "   journalled serial $journalled abandoned, issued $got valid $days days; the ledger holds one"
server_stop

# Waits until the server log has PATTERN from line FROM on (15 s at most).
wait_logged() {
	for _ in $(seq 300); do
		logged "$1" "$2" && return 0
		sleep 0.05
	done
	fail "the server never logged: $2"
}

check "requests that arrive together share the journal's commit: a crash after it, every retry gets its journalled certificate"
# After its first issuance, asked for by ca_sign as the RA would, the CA
# gathers the next SignRequests until the three devices' have come (test
# hook SCEPD_TEST_CA_HOLD=1:MS:3; a hold of 1 s, which a loaded machine's
# devices missed, got 2 of 3 in CI) and hands them over together, as
# under load. Meanwhile neither the RA nor the frontend may send a request
# again (a copy would start a batch of its own): here their first attempts
# (a third of RPCTimeout) are 6 s, and the CA gathers for 5 s at most
# from the first: the time the devices' requests may come apart. Their keys and passwords are made before, so that they are sent
# at once (the frontend's UpstreamThreads, four per core, wait on the RA
# side by side). The crash hook is armed again in the restarted CA,
# where the devices' retries rebuild their journalled certificates (no
# new journal record, no crash).
set_conf ra RPCTimeout 18000
set_conf frontend RPCTimeout 20000
set_conf frontend RequestDeadline 60
CA_SIGN="$BUILD_DIR/tests/ca_sign"
[ -x "$CA_SIGN" ] || fail "$CA_SIGN is not built"
# opener NAME: a SignRequest for CN=NAME straight to the CA, in the
# background ($opener its pid).
opener() {
	openssl req -new -newkey rsa:2048 -nodes -keyout "$WORK/$1.key" -subj "/CN=$1" \
		-out "$WORK/$1.csr" 2> /dev/null
	"$CA_SIGN" --endpoint "ipc://$DATA/run/ca.sock" --csr "$WORK/$1.csr" --txid "$1" \
		--out "$WORK/$1.pem" > "$WORK/$1.log" 2>&1 &
	opener=$!
}
# three_at_once NAME FROM: once the CA (SCEPD_TEST_CA_HOLD=1:MS:3) has
# answered ca_sign's first request and gathers the next three (logged
# after the log mark FROM), three devices enroll at once as CN=NAME 1 to
# 3 with the keys $WORK/NAME1.key to NAME3.key (made before), each into
# $WORK/NAMEi.pem, retrying until they get it. The three must have been
# handed over together.
three_at_once() {
	local name=$1 mark=$2 i pid
	local -a pws=() devices=()
	for i in 1 2 3; do pws[i]=$(challenge); done
	opener "$name-opener"
	wait_logged "$mark" "test hook: gathering 3 SignRequests"
	for i in 1 2 3; do
		enroll_until_success "${pws[i]}" "CN=$name $i" "$WORK/$name$i.key" "$WORK/$name$i.pem" > /dev/null &
		devices+=($!)
	done
	wait "$opener" || fail "the first enrollment, before the three ($name-opener)"
	for pid in "${devices[@]}"; do wait "$pid" || fail "a device of the batch got no certificate"; done
	# (the first of each after the mark: the CA's, not a restarted one's)
	gathered=$(tail -n "+$mark" "$SERVER_LOG" | grep -a "test hook: gathered" | head -n 1 | sed 's/.*test hook: //')
	tail -n "+$mark" "$SERVER_LOG" | grep -a "SignRequests handed over together" | head -n 1 |
		grep -q "test hook: 3 SignRequests" ||
		fail "the three requests did not reach the CA together (${gathered:-nothing gathered})"
	echo "   CA: $gathered"
}
for i in 1 2 3; do
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/batch$i.key" 2> /dev/null
done
from=$(log_mark)
SCEPD_TEST_CA_HOLD="1:5000:3" SCEPD_TEST_CA_CRASH="journal:2" server_start
three_at_once batch "$from"
tail -n "+$from" "$SERVER_LOG" > "$WORK/batch.log"
n=$(sed -n 's/.* \([0-9]*\) certificate(s) journalled but not in the ledger.*/\1/p' "$WORK/batch.log" | head -1)
echo "   the restarted CA found ${n:-no} certificate(s) journalled"
[ "${n:-0}" = 3 ] || fail "${n:-no} certificate(s) journalled at the crash, want the three devices': their requests were not journalled together"
crashes=$(grep -c "test hook: crashing after 'journal'" "$WORK/batch.log" || true)
[ "$crashes" = 1 ] || fail "the CA crashed $crashes times after 'journal', want once"
grep "test hook: crashing after 'journal'" "$WORK/batch.log" | sed 's/.*test hook: /   CA: /'
journalled=$(sed -n 's/.*the CA stopped after journalling serial \([0-9A-F]*\):.*/\1/p' "$WORK/batch.log" | sort -u)
for i in 1 2 3; do
	verify_cert "$WORK/batch$i.pem" > /dev/null
	got=$(serial_of "$WORK/batch$i.pem")
	[ "$(ledger_count "CN=batch $i")" = 1 ] || fail "the ledger does not hold exactly one certificate of CN=batch $i"
	if echo "$journalled" | grep -qx "$got"; then
		echo "   CN=batch $i: serial $got, journalled before the crash"
	fi
done
server_stop

check "the same request twice at once (a device that resent it): one certificate, the same to both"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/twice.key" 2> /dev/null
from=$(log_mark)
SCEPD_TEST_CA_HOLD="1:5000:2" server_start
pw2=$(challenge)
opener twice-opener
wait_logged "$from" "test hook: gathering 2 SignRequests"
for i in 1 2; do
	"$IOS_CLIENT" --url "$URL" --challenge "$pw2" --subject "CN=twice" --key "$WORK/twice.key" \
		--out "$WORK/twice$i.pem" > "$WORK/twice$i.log" 2>&1 &
	devices[i]=$!
done
wait "$opener" || fail "the first enrollment"
for i in 1 2; do wait "${devices[i]}" || { cat "$WORK/twice$i.log"; fail "copy $i of the request got no certificate"; }; done
logged "$from" "test hook: 2 SignRequests handed over together" ||
	fail "the two copies did not reach the CA together"
cmp -s "$WORK/twice1.pem" "$WORK/twice2.pem" || fail "the two copies got different certificates"
[ "$(ledger_count "CN=twice")" = 1 ] || fail "the ledger does not hold exactly one certificate of CN=twice"
logged "$from" "retry (client .*): the same certificate, serial $(serial_of "$WORK/twice1.pem")" ||
	fail "the second copy was not answered as a retry"
echo "   both got serial $(serial_of "$WORK/twice1.pem"); the ledger holds one"
server_stop

check "a batch's certificates signed on two threads (SignThreads 2): each device its own, one each in the ledger"
set_conf ca SignThreads 2
# The serving thread signs too, taking what the signing thread has not
# claimed yet: on a busy machine it can sign a whole batch before the
# other is scheduled. So up to three batches, each to a fresh CA, until
# the signing thread has signed.
ran=0
for attempt in 1 2 3; do
	name="pair$attempt"
	for i in 1 2 3; do
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/$name$i.key" 2> /dev/null
	done
	from=$(log_mark)
	SCEPD_TEST_CA_HOLD="1:5000:3" server_start
	wait_logged "$from" "scepd-ca.*signing on 2 thread(s)"
	ca_pid=$(service_pid scepd-ca)
	[ -n "$ca_pid" ] || fail "no scepd-ca process"
	signer_task=
	for task in /proc/"$ca_pid"/task/*; do
		[ "$(cat "$task/comm")" = scepd-ca-sign ] && signer_task=$task
	done
	[ -n "$signer_task" ] || fail "the CA has no signing thread (scepd-ca-sign)"
	# schedstat's first field: the thread's time on a processor, in ns.
	ran_before=$(cut -d' ' -f1 "$signer_task/schedstat")
	three_at_once "$name" "$from"
	ran=$(($(cut -d' ' -f1 "$signer_task/schedstat") - ran_before))
	serials=()
	for i in 1 2 3; do
		verify_cert "$WORK/$name$i.pem" > /dev/null
		openssl x509 -in "$WORK/$name$i.pem" -noout -pubkey | cmp -s - <(openssl pkey -in "$WORK/$name$i.key" -pubout) ||
			fail "CN=$name $i got a certificate for another key"
		[ "$(ledger_count "CN=$name $i")" = 1 ] || fail "the ledger does not hold exactly one certificate of CN=$name $i"
		serials+=("$(serial_of "$WORK/$name$i.pem")")
	done
	[ "$(printf '%s\n' "${serials[@]}" | sort -u | wc -l)" = 3 ] || fail "two devices got the same serial"
	server_stop
	echo "   batch $attempt: serials ${serials[*]}; the signing thread ran $((ran / 1000)) us"
	# One RSA 3072 signature (the demo CA's) takes more than 1 ms here; a
	# thread woken for nothing, microseconds.
	[ "$ran" -gt 500000 ] && break
done
[ "$ran" -gt 500000 ] || fail "the signing thread signed nothing of three batches"
set_conf ra RPCTimeout 4000
set_conf frontend RPCTimeout 5000
set_conf frontend RequestDeadline 30

check "a journalled certificate no retry came for within PendingDays + 7 days is abandoned, never signed backdated"
# crash_in_journal NAME: a server that crashes after the first journal
# commit, and CN=NAME enrolling with $WORK/NAME.key (die_in_journal).
crash_in_journal() {
	local from
	from=$(log_mark)
	SCEPD_TEST_CA_CRASH="journal:1" server_start
	die_in_journal "$1" "$1" "$(challenge)"
}
# late_retry NAME OFFSET: CN=NAME's device retries with a fresh password
# at that offset; it must get a certificate made now, not the journalled
# one (its notBefore is the CA's now less a few minutes of clock skew).
late_retry() {
	local name=$1 off=$2 rc=0 nb
	at_offset "$off" "$IOS_CLIENT" --url "$URL" \
		--challenge "$(at_offset "$off" "$SCEPCTL" --data-dir "$DATA" challenge)" \
		--subject "CN=$name" --key "$WORK/$name.key" --out "$WORK/$name.pem" > "$WORK/$name.log" 2>&1 || rc=$?
	[ $rc = 0 ] || { cat "$WORK/$name.log"; fail "CN=$name's late retry: exit $rc"; }
	nb=$(date -d "$(openssl x509 -in "$WORK/$name.pem" -noout -startdate | cut -d= -f2)" +%s)
	[ $((nb + 3600)) -gt $(($(date +%s) + off)) ] ||
		fail "CN=$name got a certificate valid from $(openssl x509 -in "$WORK/$name.pem" -noout -startdate): backdated"
}
crash_in_journal late1
late1=$journalled
built1=$(date +%s) # after its journalling: it is stale once this is 14 days old
crash_in_journal late2
late2=$journalled
# The CA starts 20 s before the first record is PendingDays + 7 = 14 days
# old (both are counted as journalled), and the device retries once it is.
off=$((built1 + 14 * 86400 - $(date +%s) - 20))
from=$(log_mark)
at_offset "$off" server_start
logged "$from" "2 certificate(s) journalled but not in the ledger" ||
	fail "the restarted CA did not count both journalled certificates"
! logged "$from" "abandoned" || fail "a record abandoned before PendingDays + 7 days"
while [ $(($(date +%s) + off)) -le $((built1 + 14 * 86400 + 1)) ]; do sleep 1; done
late_retry late1 "$off"
[ "$(serial_of "$WORK/late1.pem")" != "$late1" ] || fail "the stale journalled serial $late1 was signed"
logged "$from" "transaction .*: its journalled certificate (serial $late1, built [0-9T:-]*Z) is older than PendingDays + 7 days: never delivered, it is abandoned" ||
	fail "the abandoned serial $late1 was not logged"
server_stop
# A day later the one left is purged at start, not reported as waiting.
from=$(log_mark)
at_offset $((15 * 86400)) server_start
! logged "$from" "journalled but not in the ledger" || fail "a stale journal record still reported at start"
logged "$from" "(serial $late2, built .*) is older than PendingDays + 7 days" ||
	fail "the stale record of serial $late2 was not purged at start"
late_retry late2 $((15 * 86400))
[ "$(serial_of "$WORK/late2.pem")" != "$late2" ] || fail "the stale journalled serial $late2 was signed"
for s in "$late1" "$late2"; do
	[ "$(grep -c "(serial $s, built .*abandoned" "$SERVER_LOG")" = 1 ] || fail "serial $s abandoned not once"
done
echo "   serials $late1 and $late2 abandoned, new ones issued"
server_stop

check "a journalled certificate that would have expired by the retry (ValidityDays = 1, the retry 3 days later) is never signed: a new one, valid now"
# On day 15 (the clock above) the CA crashes after journalling; the
# device retries on day 18, within PendingDays + 7 days.
set_conf ca ValidityDays 1
from=$(log_mark)
SCEPD_TEST_CA_CRASH="journal:1" at_offset $((15 * 86400)) server_start
die_in_journal short short "$(at_offset $((15 * 86400)) "$SCEPCTL" --data-dir "$DATA" challenge)"
from=$(log_mark)
at_offset $((18 * 86400)) server_start
logged "$from" "1 certificate(s) journalled but not in the ledger" || fail "the crash left no journal record"
late_retry short $((18 * 86400))
[ "$(serial_of "$WORK/short.pem")" != "$journalled" ] || fail "the journalled serial $journalled was signed, expired"
at_offset $((18 * 86400)) openssl x509 -in "$WORK/short.pem" -noout -checkend 3600 > /dev/null ||
	fail "the retry got a certificate that has expired: $(openssl x509 -in "$WORK/short.pem" -noout -enddate)"
logged "$from" "its journalled certificate (serial $journalled, template .*) cannot be built again (it would have expired already)" ||
	fail "the operator was not told that serial $journalled was abandoned"
[ "$(at_offset $((18 * 86400)) ledger_count "CN=short")" = 1 ] || fail "the ledger does not hold exactly one certificate of CN=short"
echo "   journalled serial $journalled (expired by the retry) abandoned, issued $(serial_of "$WORK/short.pem")"
server_stop

pass "a crash between journal and reply: the retry gets the journalled certificate, never a second one; a journal record past any retry is abandoned"
