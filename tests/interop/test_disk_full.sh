#!/usr/bin/env bash
# A full disk under LMDB: the data directory sits on a small tmpfs the test
# mounts. When it is full, enrollment is our own outage (HTTP 503 with
# Retry-After, never a FAILURE that makes the device give up) and the logs
# say why; nothing is corrupted, and once space returns the same device
# retrying its transaction completes, with one certificate in the ledger.
# The ledger's map full ([ca] DatabaseMaxMiB): the same 503, the log names
# the key, and raised it takes certificates again; a pending request that
# cannot be written leaves the CA answering.
. "$(dirname "$0")/lib.sh"
interop_init disk_full
command -v mdb_stat >/dev/null || fail "mdb_stat not installed (Debian package lmdb-utils)"
mkdir -p "$DATA"
mount -t tmpfs -o size=48m tmpfs "$DATA" || fail "cannot mount a tmpfs (the test needs root)"
on_exit "umount -l '$DATA' 2>/dev/null || true"
server_start
fetch_ca_chain

check "a first enrollment while there is room"
# The next password is issued first, so that the first one's "used" mark
# is still held (written with the next write, services/challenge/used.c)
# when the disk fills.
pw=$(challenge)
ios_enroll "$(challenge)" "CN=before" "$WORK/before.pem" >/dev/null || fail "enrollment before the disk filled"

check "disk full: HTTP 503 with Retry-After, and the reason in the log"
dd if=/dev/zero of="$DATA/filler" bs=1M 2>/dev/null || true
df -h "$DATA" | tail -1 | sed 's/^/   /'
rc=0
ios_enroll "$pw" "CN=during" "$WORK/during.pem" "$URL" --key "$WORK/during.key" >/dev/null || rc=$?
[ $rc = 1 ] || fail "enrollment on a full disk: exit $rc, want 1 (an HTTP error, not a CertRep)"
grep -q "PKIOperation: HTTP 503" "$WORK/during.pem.log" || { cat "$WORK/during.pem.log"; fail "not a 503"; }
grep -q "Retry-After:" "$WORK/during.pem.log" || fail "503 without Retry-After"
grep -qi "No space left on device\|MDB_MAP_FULL\|ENOSPC" "$SERVER_LOG" ||
	{ tail -20 "$SERVER_LOG"; fail "the log does not say the disk is full"; }
grep -i "No space left on device" "$SERVER_LOG" | tail -1 | cut -c1-200 | sed 's/^/   /'

check "space returns: the device's retry completes; the databases are sound"
rm -f "$DATA/filler"
ios_enroll "$pw" "CN=during" "$WORK/during.pem" "$URL" --key "$WORK/during.key" >/dev/null ||
	{ cat "$WORK/during.pem.log"; fail "the retry after space returned"; }
verify_cert "$WORK/during.pem"
for db in ca challenge; do
	mdb_stat -a "$DATA/db/$db" > "$WORK/$db.stat" 2>&1 || { cat "$WORK/$db.stat"; fail "mdb_stat $db"; }
done
"$SCEPCTL" --data-dir "$DATA" list --json > "$WORK/ledger.json"
n=$(python3 -c 'import json,sys; print(sum(1 for e in json.load(open(sys.argv[1])) if e["subject"] == "CN=during"))' "$WORK/ledger.json")
[ "$n" = 1 ] || fail "$n certificates for the device in the ledger, want 1"
ios_enroll "$(challenge)" "CN=after" "$WORK/after.pem" >/dev/null || fail "a new enrollment after space returned"

check "every password that paid for a certificate is counted used"
outstanding=$(curl -s "$BASE/metrics" | awk '$1 == "scepd_challenge_passwords_outstanding" { print $2 }')
[ "$outstanding" = 0 ] || fail "$outstanding passwords outstanding after three enrollments, want 0 (a lost 'used' mark?)"

check "the challenge service, killed while the disk is full, starts again and serves"
# Its password indexes are checked at start and made again only when they
# do not match the records: a start writes nothing (and needs no room).
dd if=/dev/zero of="$DATA/filler" bs=1M 2>/dev/null || true
from=$(log_mark)
kill -KILL "$(service_pid scepd-challenge)"
await_logged "$from" "scepd-challenge\[[0-9]*\] info: serving on" 10 ||
	{ tail -20 "$SERVER_LOG"; fail "scepd-challenge did not start again on the full disk"; }
[ "$(metric scepd_challenge_passwords_outstanding)" = 0 ] || fail "the restarted service does not count its passwords"
rm -f "$DATA/filler"

check "the ledger's map full ([ca] DatabaseMaxMiB = 1): 503, the log names the key; raised, enrollment goes on"
server_stop
set_conf ca DatabaseMaxMiB 1
set_conf challenge UseSinglePassword 1
set_conf challenge SinglePassword "map-full-$$"
from=$(log_mark)
server_start
rc=0
"$BUILD_DIR/tests/scep_load" --url "$URL" --challenge "map-full-$$" --count 800 --concurrency 4 \
	--subject-prefix mapfull --key-cache "$WORK/keys.pem" > "$WORK/load.out" 2>&1 || rc=$?
[ $rc = 2 ] || { tail -20 "$WORK/load.out"; fail "800 enrollments into a 1 MiB ledger: scep_load exit $rc, want 2 (some failed)"; }
sed -n 's/^RESULT \(count=[0-9]* ok=[0-9]* failures=[0-9]*\).*/   \1/p' "$WORK/load.out"
grep -q "HTTP 503" "$WORK/load.out" || { tail -20 "$WORK/load.out"; fail "the enrollments past the full ledger were not answered 503"; }
logged "$from" "scepd-ca.*the database is full: its 1 MiB (DatabaseMaxMiB in \[ca\]) are used up; raise it and restart the service" ||
	{ tail -20 "$SERVER_LOG"; fail "the log does not name DatabaseMaxMiB"; }

check "a pending request that cannot be written (the map full): 503, and the CA still answers the next"
server_stop
add_conf_section template.IPSECIntermediateOffline
set_conf template.IPSECIntermediateOffline ApprovalRequired 1
from=$(log_mark)
server_start
# Pending requests fill what room is left; the first that finds none gets
# 503, and so must the next.
full=0
for i in $(seq 60); do
	rc=0
	ios_enroll "map-full-$$" "CN=pending $i" "$WORK/pending.pem" >/dev/null || rc=$?
	[ $rc = 3 ] && continue
	[ $rc = 1 ] && grep -q "PKIOperation: HTTP 503" "$WORK/pending.pem.log" ||
		{ cat "$WORK/pending.pem.log"; fail "request $i pending on a full map: exit $rc, want PENDING or an HTTP 503"; }
	full=$((full + 1))
	[ $full = 2 ] && break
done
[ $full = 2 ] || fail "60 pending requests did not fill the 1 MiB map"
echo "   $((i - 2)) requests pending before the map was full"
# Each was refused by the CA itself, at once (test_pending: one whose
# record is refused before its commit).
[ "$(tail -n "+$from" "$SERVER_LOG" | grep -c "scepd-ca.*pending write: the database is full")" = 2 ] ||
	{ tail -20 "$SERVER_LOG"; fail "the CA did not refuse both pending requests itself"; }
server_stop
set_conf template.IPSECIntermediateOffline ApprovalRequired 0
set_conf ca DatabaseMaxMiB 64
server_start
ios_enroll "map-full-$$" "CN=after the map" "$WORK/aftermap.pem" >/dev/null || fail "an enrollment after DatabaseMaxMiB was raised"
verify_cert "$WORK/aftermap.pem"
mdb_stat -a "$DATA/db/ca" > "$WORK/ca.stat" 2>&1 || { cat "$WORK/ca.stat"; fail "mdb_stat ca after the map was full"; }

pass "full disk: 503 with the reason logged; retry completes once space returns; LMDB sound; no used mark lost; a full ledger map names DatabaseMaxMiB"
