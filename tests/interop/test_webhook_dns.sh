#!/usr/bin/env bash
# The webhook's Timeout holds while the MDM's host name is being
# resolved: with a name server that never answers, libcurl (7.88, its
# threaded resolver) waited for glibc's resolver to give up (10 s with
# its defaults) after its own timeout, a challenge worker held all that
# time past the device's 503. The test runs in a network and mount
# namespace of its own (unshare): /etc/resolv.conf names a server on the
# namespace's loopback that reads queries and answers none.
if [ -z "${SCEPD_TEST_OWN_NETNS:-}" ]; then
	command -v unshare > /dev/null || { echo "FAIL: webhook_dns: unshare (util-linux) is not installed"; exit 1; }
	exec unshare --net --mount env SCEPD_TEST_OWN_NETNS=1 bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
ip link set lo up || fail "cannot bring up the namespace's loopback"
interop_init webhook_dns
# A copy of /etc of the namespace's own, where resolv.conf is a link to
# a file of a directory that a resolvconf-like tool rewrites (below).
mkdir "$WORK/etc" "$WORK/resolvconf"
cp -a /etc/. "$WORK/etc/"
printf 'nameserver 127.0.0.1\noptions timeout:5 attempts:2\n' > "$WORK/resolvconf/resolv.conf"
rm -f "$WORK/etc/resolv.conf"
ln -s "$WORK/resolvconf/resolv.conf" "$WORK/etc/resolv.conf"
mount --make-rprivate / && mount --bind "$WORK/etc" /etc ||
	fail "cannot put a resolv.conf of the test's in its mount namespace"
# name_server ADDRESS COUNT_FILE: reads queries, answers none.
name_server() {
	python3 - "$1" "$2" > /dev/null 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
n = 0
while True:
    s.recvfrom(4096)
    n += 1
    open(sys.argv[2], "w").write("%d\n" % n)
PY
	on_exit "kill $!"
}
name_server 127.0.0.1 "$WORK/dns.count"
name_server 127.0.0.2 "$WORK/dns2.count"
server_start
server_stop
set_conf frontend Paths "/certsrv/mscep/mscep.dll /scep/mdm"
add_conf_section challenge.paths
set_conf challenge.paths /scep/mdm mdm
add_conf_section validator.mdm
set_conf validator.mdm Module webhook
set_conf validator.mdm URL "https://mdm.scepd.test/challenge"
set_conf validator.mdm Timeout 2
server_start

check "an MDM whose name is not resolved within Timeout (2 s): the check ends at Timeout, not when glibc's resolver gives up"
from=$(log_mark)
rc=0
ios_enroll "from the MDM" "CN=unresolved MDM" "$WORK/mdm.pem" "$BASE/scep/mdm" > /dev/null || rc=$?
[ $rc = 1 ] && grep -q "503" "$WORK/mdm.pem.log" || fail "an undecided check: exit $rc, want 1 (HTTP 503)"
[ -s "$WORK/dns.count" ] || fail "no query reached the test's name server: the name was resolved elsewhere"
await_logged "$from" "mdm: could not decide" 15 || fail "the challenge service never said the check ended"
line=$(grep "mdm: could not decide" "$WORK/log.since" | head -1)
echo "   ${line:0:250}"
ms=$(sed -n 's/.*(\([0-9]*\) ms).*/\1/p' <<< "$line")
[ -n "$ms" ] || fail "the line gives no duration"
[ "$ms" -le 2500 ] || fail "the check took $ms ms, past Timeout (2000 ms): it waited for the resolver"

check "resolv.conf's file replaced behind its link (resolvconf, NetworkManager): the sandboxed challenge service reads the new one"
# Landlock's rule covered the file found at start: the new one (another
# name server) was unreadable, and names stopped resolving with no word.
printf 'nameserver 127.0.0.2\noptions timeout:5 attempts:2\n' > "$WORK/resolvconf/resolv.conf.new"
mv "$WORK/resolvconf/resolv.conf.new" "$WORK/resolvconf/resolv.conf"
grep -q "scepd-challenge.*Landlock .*files only beneath .*$WORK/resolvconf (read)" "$SERVER_LOG" ||
	fail "the challenge service's Landlock rules do not name the link's directory"
from=$(log_mark)
rc=0
ios_enroll "from the MDM" "CN=unresolved MDM again" "$WORK/mdm2.pem" "$BASE/scep/mdm" > /dev/null || rc=$?
[ $rc = 1 ] && grep -q "503" "$WORK/mdm2.pem.log" || fail "an undecided check: exit $rc, want 1 (HTTP 503)"
await_logged "$from" "mdm: could not decide" 15 || fail "the challenge service never said the check ended"
[ -s "$WORK/dns2.count" ] || fail "no query reached the name server of the new resolv.conf: the service could not read it"

pass "a name server that never answers holds a webhook check no longer than its Timeout; resolv.conf replaced behind its link is read"
