#!/usr/bin/env bash
# IPv6 clients count by their /64: a host on an IPv6 network is given a
# /64 and may use any address of it, so PerIPConnectionLimit and
# WrongPasswordLimit, counted address by address, would not hold it. The
# test runs in a network namespace of its own (unshare), whose loopback
# answers for two /64s of unique local addresses (fd00:5cef:1::/64 and
# fd00:5cef:2::/64): its clients connect from any address of them, to
# the server listening on [::].
if [ -z "${SCEPD_TEST_OWN_NETNS:-}" ]; then
	command -v unshare > /dev/null || { echo "FAIL: ipv6_clients: unshare (util-linux) is not installed"; exit 1; }
	exec unshare --net env SCEPD_TEST_OWN_NETNS=1 bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
ip link set lo up || fail "cannot bring up the namespace's loopback"
for net in fd00:5cef:1::/64 fd00:5cef:2::/64; do
	ip -6 route add local "$net" dev lo || fail "cannot make $net local"
done
# Binding to an address of a local route (not one assigned to lo).
sysctl -q -w net.ipv6.ip_nonlocal_bind=1 || fail "cannot set net.ipv6.ip_nonlocal_bind in the namespace"
interop_init ipv6_clients
server_start
fetch_ca_chain
server_stop
set_conf frontend PerIPConnectionLimit 4
set_conf challenge WrongPasswordLimit 3
server_start --listen "[::]:$PORT"
URL6="http://[fd00:5cef:1::1]:$PORT/certsrv/mscep/mscep.dll"

check "PerIPConnectionLimit (4) holds a /64: the 5th connection from another address of it is closed; another /64 is served"
python3 - "$PORT" <<'PY' || fail "connections by /64 (see above)"
import socket, sys, time
port = int(sys.argv[1])
req = b"GET /certsrv/mscep/mscep.dll?operation=GetCACaps HTTP/1.1\r\nHost: x\r\n\r\n"

def conn(src):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("fd00:5cef:1::1", port))
    return s

def served(s):
    """The answer to a GetCACaps on s, or b"" once the server closes it."""
    try:
        s.sendall(req)
        data = b""
        while b"SCEPStandard" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk
        return data
    except (ConnectionResetError, BrokenPipeError):
        return b""

held = []
for i in range(4):
    s = conn("fd00:5cef:1::%x" % (0x10 + i))
    if not served(s):
        sys.exit("connection %d from the /64 was not served" % (i + 1))
    held.append(s)
extra = conn("fd00:5cef:1:0:ffff::20")
if served(extra):
    sys.exit("a 5th connection from the /64, from another address, was served")
print("   5th connection from fd00:5cef:1::/64 (another address) closed")
other = conn("fd00:5cef:2::10")
if not served(other):
    sys.exit("a connection from another /64 was not served")
print("   fd00:5cef:2::/64 served")
for s in held:
    s.close()
# Once the /64's connections close it is served again (the count is of
# open connections, not of a window).
deadline = time.time() + 10
while True:
    s = conn("fd00:5cef:1::30")
    if served(s):
        break
    s.close()
    if time.time() > deadline:
        sys.exit("the /64 is not served after its connections closed")
    time.sleep(0.2)
print("   served again after its connections closed")
PY
logged 0 "security: fd00:5cef:1::/64 holds PerIPConnectionLimit = 4 connections: more are closed" ||
	fail "the refused connection was not logged with its /64"

check "WrongPasswordLimit (3) holds a /64: wrong passwords from three addresses of it, the fourth address gets 429; another /64 is refused only"
for i in 1 2 3; do
	rc=0
	"$IOS_CLIENT" --url "$URL6" --challenge "WRONGWRONG$i" --subject "CN=guess $i" --out "$WORK/guess$i.pem" \
		--source "fd00:5cef:1::4$i" > "$WORK/guess$i.log" 2>&1 || rc=$?
	[ $rc = 2 ] || { cat "$WORK/guess$i.log"; fail "wrong password $i: exit $rc, want 2 (FAILURE)"; }
done
rc=0
"$IOS_CLIENT" --url "$URL6" --challenge WRONGWRONG4 --subject "CN=guess 4" --out "$WORK/guess4.pem" \
	--source "fd00:5cef:1::44" > "$WORK/guess4.log" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "429" "$WORK/guess4.log" ||
	{ cat "$WORK/guess4.log"; fail "a 4th wrong password from the /64: exit $rc, want HTTP 429"; }
logged 0 "client fd00:5cef:1::44 (counted as fd00:5cef:1::/64) is over WrongPasswordLimit = 3" ||
	fail "the 429 was not logged with the address and its /64"
rc=0
"$IOS_CLIENT" --url "$URL6" --challenge WRONGWRONG5 --subject "CN=guess 5" --out "$WORK/guess5.pem" \
	--source "fd00:5cef:2::44" > "$WORK/guess5.log" 2>&1 || rc=$?
[ $rc = 2 ] || { cat "$WORK/guess5.log"; fail "a wrong password from another /64: exit $rc, want 2 (FAILURE)"; }
"$IOS_CLIENT" --url "$URL6" --challenge "$(challenge)" --subject "CN=good v6" --out "$WORK/good.pem" \
	--source "fd00:5cef:2::45" > "$WORK/good.log" 2>&1 || { cat "$WORK/good.log"; fail "a device of another /64 does not enroll"; }
verify_cert "$WORK/good.pem"

pass "IPv6 clients count by their /64 for PerIPConnectionLimit and WrongPasswordLimit"
