#!/usr/bin/env bash
# The limits libmicrohttpd does not set by default: a POST body over
# MaxBodySize gets 413, an idle connection is closed after
# ConnectionTimeout, a request dribbled in slower than RequestDeadline gets
# 408, and one address cannot hold more than PerIPConnectionLimit
# connections; after all of it a device still enrolls.
. "$(dirname "$0")/lib.sh"
interop_init http_limits
server_start
server_stop
set_conf frontend MaxBodySize 65536
set_conf frontend ConnectionTimeout 2
set_conf frontend RequestDeadline 3
set_conf frontend PerIPConnectionLimit 4
server_start

check "a POST body over MaxBodySize gets 413"
head -c 100000 /dev/urandom > "$WORK/big.bin"
code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$WORK/big.bin" \
	-H 'Content-Type: application/x-pki-message' "$URL?operation=PKIOperation")
[ "$code" = 413 ] || fail "100 kB body with MaxBodySize = 65536: HTTP $code, want 413"

# Shared by the Python checks below: dribble(s, piece, seconds) sends
# `piece` about once a second until the server closes the connection
# (then the seconds it took) or `seconds` pass (then None).
cat > "$WORK/dribble.py" <<'PY'
import socket, time

def dribble(s, piece, seconds):
    s.settimeout(1)
    t = time.time()
    try:
        while time.time() - t < seconds:
            try:
                s.sendall(piece)
                if s.recv(4096) == b"":
                    return time.time() - t
            except socket.timeout:
                pass
    except OSError:
        return time.time() - t
    finally:
        s.close()
    return None
PY

python3 - "$PORT" "$WORK" <<'PY' || fail "connection limits (see above)"
import socket, sys, time
port = int(sys.argv[1])
sys.path.insert(0, sys.argv[2])
from dribble import dribble

def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s

def closed_within(s, seconds):
    """True if the server closes (or answers) within `seconds`."""
    s.settimeout(seconds)
    try:
        data = s.recv(4096)
        return True, data
    except socket.timeout:
        return False, b""
    except ConnectionResetError:
        return True, b""

print("-- an idle connection is closed after ConnectionTimeout (2 s)")
s = conn()
t = time.time()
closed, _ = closed_within(s, 8)
s.close()
if not closed:
    sys.exit("idle connection still open after 8 s")
print("   closed after %.1f s" % (time.time() - t))

print("-- headers completed after RequestDeadline (3 s) get 408")
s = conn()
t = time.time()
s.sendall(b"GET /certsrv/mscep/mscep.dll?operation=GetCACaps HTTP/1.1\r\nHost: x\r\n")
for i in range(3):           # a line every 1.1 s: never idle for 2 s
    time.sleep(1.1)
    s.sendall(b"X-Slow-%d: a\r\n" % i)
s.sendall(b"\r\n")
s.settimeout(5)
try:
    first = s.recv(4096).split(b"\r\n")[0]
except OSError:
    first = b""
s.close()
if b" 408 " not in first:
    sys.exit("late request: got %r after %.1f s, want 408" % (first, time.time() - t))
print("   %s after %.1f s" % (first.decode(), time.time() - t))

print("-- headers that never end are cut off (slowloris)")
s = conn()
s.sendall(b"GET /certsrv/mscep/mscep.dll?operation=GetCACaps HTTP/1.1\r\n")
took = dribble(s, b"X-Slow: a\r\n", 15)
if took is None:
    sys.exit("a connection dribbling headers for 15 s was never closed")
print("   closed after %.1f s" % took)

print("-- one address holds at most PerIPConnectionLimit (4) connections")
held = [conn() for _ in range(4)]
extra = conn()
closed, data = closed_within(extra, 3)
for s in held:
    s.close()
extra.close()
if not closed or data:
    sys.exit("the 5th connection from one address was served")
print("   5th connection refused")
# Reconnecting at once, over and over: refused each time, said seldom.
held = [conn() for _ in range(4)]
for _ in range(300):
    conn().close()
for s in held:
    s.close()
PY
# 301 refusals: said once or twice (at most every 10 s), under its name.
said=$(grep -c "scepd-frontend.*security: PerIPConnectionLimit = 4: [0-9]* connections\? of an address holding that many closed" "$SERVER_LOG" || true)
[ "$said" -ge 1 ] && [ "$said" -le 2 ] ||
	fail "PerIPConnectionLimit's refusals said $said times, want once or twice"
! grep -q "libmicrohttpd: Server reached connection limit" "$SERVER_LOG" ||
	fail "libmicrohttpd's 'Server reached connection limit' logged (each refusal a line, naming no setting)"
n=$(metric 'scepd_http_connections_refused_total{limit="per_ip_connection_limit"}')
[ "$n" -ge 1 ] || fail "/metrics counts $n connections refused by PerIPConnectionLimit after 301, want some"
echo "   /metrics: $n connections refused by PerIPConnectionLimit"

check "RequestDeadline runs from a request's first line: a kept-alive connection idle longer than it (within ConnectionTimeout) is served; a request line never ended is cut"
server_stop
set_conf frontend ConnectionTimeout 6
set_conf frontend RequestDeadline 2
set_conf frontend RPCTimeout 600
server_start
grep -q "scepd-frontend.*RequestDeadline = 2 s is not above 4 times RPCTimeout = 600 ms in \[frontend\]: a profile" "$SERVER_LOG" ||
	fail "no warning that a profile may be cut off (RequestDeadline 2 s, RPCTimeout 600 ms)"
python3 - "$PORT" "$WORK" <<'PY' || fail "RequestDeadline on kept-alive connections (see above)"
import socket, sys, time
port = int(sys.argv[1])
sys.path.insert(0, sys.argv[2])
from dribble import dribble
req = b"GET /certsrv/mscep/mscep.dll?operation=GetCACaps HTTP/1.1\r\nHost: x\r\n\r\n"

def answer(s):
    data = b""
    while b"SCEPStandard" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk
    return data

s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(req)
if b" 200 " not in answer(s):
    sys.exit("the first request was not answered")
time.sleep(5)  # idle: more than RequestDeadline + 2 s, less than ConnectionTimeout
try:
    s.sendall(req)
    got = answer(s)
except OSError as e:
    got = repr(e).encode()
s.close()
if b" 200 " not in got:
    sys.exit("the request sent after 5 s idle on a kept-alive connection: %r" % got[:80])
print("   a request after 5 s idle (RequestDeadline 2, ConnectionTimeout 6): answered")

# A byte a second: never idle, never a whole line.
took = dribble(socket.create_connection(("127.0.0.1", port)), b"G", 20)
if took is None:
    sys.exit("a request line dribbled for 20 s was never cut")
print("   a request line never ended: cut after %.1f s" % took)
PY

check "after all of it a device still enrolls"
sleep 1
pw=$(challenge)
"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=after limits" \
	--out "$WORK/ok.pem" > "$WORK/ok.log" 2>&1 || { cat "$WORK/ok.log"; fail "enrollment"; }
verify_cert "$WORK/ok.pem"
check "MaxBodySize at its most (4 MiB): a body that large reaches the RA and is answered at once, not 503 after the RPCTimeout"
server_stop
set_conf frontend MaxBodySize 4194304
set_conf frontend RPCTimeout 5000
server_start
{ printf '\x30'; head -c 4194303 /dev/zero; } > "$WORK/4m"
start=$SECONDS
code=$(curl -s -o "$WORK/4m.out" -w '%{http_code}' -m 30 --data-binary @"$WORK/4m" "$URL?operation=PKIOperation" || true)
[ "$code" = 400 ] || { head -c 300 "$WORK/4m.out" 2>/dev/null || true; echo; fail "a 4 MiB body under MaxBodySize = 4194304: HTTP $code, want 400"; }
[ $((SECONDS - start)) -lt 4 ] || fail "a 4 MiB body took $((SECONDS - start)) s"
server_stop
# More than the RA reads is refused at start, naming the key.
set_conf frontend MaxBodySize 8388608
rc=0
timeout -s KILL 30 "$BUILD_DIR/scepd-frontend" --config "$DATA/scepd.conf" > "$WORK/fe-big.log" 2>&1 || rc=$?
[ $rc != 0 ] && grep -q "MaxBodySize" "$WORK/fe-big.log" ||
	{ cat "$WORK/fe-big.log"; fail "MaxBodySize = 8388608: exit $rc, want a refusal naming MaxBodySize"; }
echo "   MaxBodySize = 8388608: $(grep -m1 MaxBodySize "$WORK/fe-big.log")"
set_conf frontend MaxBodySize 4194304
server_start
pw=$(challenge)
"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=after 4 MiB" \
	--out "$WORK/ok2.pem" > "$WORK/ok2.log" 2>&1 || { cat "$WORK/ok2.log"; fail "enrollment after the 4 MiB body"; }

check "no memory for a body (the frontend's address space limited): 503 with Retry-After, not 413; then a device enrolls"
# The body's buffer grows to 4 MiB; the frontend's RLIMIT_AS set 1 MiB
# over what it maps leaves no room for it (one malloc arena, a fixed mmap
# threshold: else a thread's arena grows inside what it has reserved, and
# the sanitizer's allocator returns NULL only when told to). Not the
# client's fault: 413 told it to send less, forever.
server_stop
GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=131072 \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1:quarantine_size_mb=0" server_start
fe=$(service_pid scepd-frontend)
[ -n "$fe" ] || fail "no frontend"
# short_of_memory NAME FILE KIB WHAT LOGGED: FILE POSTed with the
# frontend's address space limited to KIB over what it maps: 503 with
# Retry-After, and LOGGED in the log.
short_of_memory() {
	local as_kb from code
	as_kb=$(awk '/^VmSize:/ { print $2 }' "/proc/$fe/status")
	from=$(log_mark)
	prlimit --pid "$fe" --as=$(((as_kb + $3) * 1024)):
	code=$(curl -s -D "$WORK/$1.hdr" -o "$WORK/$1.out" -w '%{http_code}' -m 30 --data-binary @"$2" "$URL?operation=PKIOperation" || true)
	prlimit --pid "$fe" --as=unlimited:
	[ "$code" = 503 ] && grep -qi '^Retry-After: ' "$WORK/$1.hdr" ||
		{ cat "$WORK/$1.hdr" "$WORK/$1.out"; fail "$4: HTTP $code, want 503 with Retry-After"; }
	logged "$from" "$5" || fail "$4: the 503 is not logged"
}
short_of_memory nomem "$WORK/4m" 1024 "a 4 MiB body with no memory for it" \
	"scepd-frontend.*no memory for a POST body of .* answered 503"
# A base64 body of 4 MiB read (8 MiB over what the frontend maps), its
# decoding finds no room: 503 too (it was 400, "neither DER nor base64").
head -c 4194300 /dev/zero | tr '\0' A > "$WORK/4m.b64"
short_of_memory nomem2 "$WORK/4m.b64" 8192 "a 4 MiB base64 body with no memory to decode it" \
	"scepd-frontend.*no memory for the POST body's base64; answered 503"
pw=$(challenge)
"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=after no memory" \
	--out "$WORK/ok3.pem" > "$WORK/ok3.log" 2>&1 || { cat "$WORK/ok3.log"; fail "enrollment after the 503"; }
server_stop

check "MaxBodiesHeld: a large body that would take the bodies held at once past it gets 503 with Retry-After, logged, while a device's small one is read; once the others go, the large one is read; below MaxBodySize it stops the frontend at start"
# Each connection may hold MaxBodySize for RequestDeadline: a thousand slow
# clients held a gigabyte of the frontend's memory. One client holds a
# 256 KiB buffer (140,000 bytes sent, the rest never); a second body of
# 100,000 bytes grows past 64 KiB to 128 KiB, past 300,000 bytes held in
# all; one of 20,000 bytes (a device's size) is read all the same.
set_conf frontend MaxBodySize 262144
set_conf frontend MaxBodiesHeld 300000
set_conf frontend RequestDeadline 20
server_start
head -c 100000 /dev/urandom > "$WORK/100k.bin"
head -c 20000 /dev/urandom > "$WORK/20k.bin"
from=$(log_mark)
python3 - "$PORT" "$URL" "$WORK" <<'PY' || fail "MaxBodiesHeld (see above)"
import socket, subprocess, sys, time
port, url, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def post(name):
    out = subprocess.run(["curl", "-s", "-D", work + "/held.hdr", "-o", work + "/held.out",
                          "-w", "%{http_code}", "-m", "10", "--data-binary", "@" + work + "/" + name,
                          "-H", "Content-Type: application/x-pki-message",
                          url + "?operation=PKIOperation"], capture_output=True, text=True).stdout
    return out, open(work + "/held.hdr").read().lower()

held = socket.create_connection(("127.0.0.1", port), timeout=10)
held.sendall(b"POST /certsrv/mscep/mscep.dll?operation=PKIOperation HTTP/1.1\r\n"
             b"Host: localhost\r\nContent-Type: application/x-pki-message\r\n"
             b"Content-Length: 200000\r\n\r\n" + b"0" * 140000)
time.sleep(0.5)
code, hdr = post("100k.bin")
if code != "503" or "retry-after:" not in hdr:
    print("   100,000 bytes while 256 KiB are held: HTTP %s, want 503 with Retry-After" % code)
    sys.exit(1)
print("   100,000 bytes while 256 KiB are held: HTTP 503 with Retry-After")
code, hdr = post("20k.bin")
if code != "400":
    print("   20,000 bytes while 256 KiB are held: HTTP %s, want 400 (read, refused by the RA)" % code)
    sys.exit(1)
print("   20,000 bytes while 256 KiB are held: read (400 from the RA)")
held.close()
PY
logged "$from" "no memory for a POST body of .* (the bodies held at once would pass \\[frontend\\] MaxBodiesHeld); answered 503" ||
	fail "the 503 does not name MaxBodiesHeld in the log"
sleep 0.5 # the held connection's end frees its buffer
code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 --data-binary @"$WORK/100k.bin" \
	-H 'Content-Type: application/x-pki-message' "$URL?operation=PKIOperation")
[ "$code" = 400 ] || fail "the 100,000-byte body once the other is gone: HTTP $code, want 400 (read, refused by the RA)"
pw=$(challenge)
"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=after MaxBodiesHeld" \
	--out "$WORK/ok4.pem" > "$WORK/ok4.log" 2>&1 || { cat "$WORK/ok4.log"; fail "enrollment after the 503"; }
server_stop
set_conf frontend MaxBodiesHeld 200000
rc=0
timeout -s KILL 20 "$BUILD_DIR/scepd-frontend" --config "$DATA/scepd.conf" > "$WORK/fe.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "MaxBodiesHeld = 200000 is below MaxBodySize = 262144" "$WORK/fe.out" ||
	{ cat "$WORK/fe.out"; fail "MaxBodiesHeld below MaxBodySize: exit $rc, want 1 naming both"; }

check "MaxConnections: bursts of connections past it (and the 16 more a loopback client may open) from many addresses are answered 503 with Retry-After, and the frontend serves again once they close (libmicrohttpd 0.9.75 hung for good on reaching its own limit)"
set_conf frontend MaxBodiesHeld 67108864
set_conf frontend MaxConnections 40
set_conf frontend Threads 2
set_conf frontend ConnectionTimeout 15
server_start
python3 - "$PORT" "$BASE" > "$WORK/flood.out" 2>&1 <<'PY' || { cat "$WORK/flood.out"; fail "MaxConnections: see above"; }
import socket, sys, time, urllib.request, urllib.error
port, base = int(sys.argv[1]), sys.argv[2]
def healthz():
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
            return r.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Retry-After", "")
    except OSError as e:
        return 0, str(e)
for burst in range(4):
    held = []
    # 25 addresses x 4 (PerIPConnectionLimit), as fast as connect goes
    for a in range(25):
        for _ in range(4):
            s = socket.socket()
            s.bind(("127.0.0.%d" % (20 + a), 0))
            try:
                s.connect(("127.0.0.1", port))
                held.append(s)
            except OSError:
                s.close()
    time.sleep(0.5)
    refused = 0
    for s in held:
        s.setblocking(False)
        try:
            got = s.recv(4096)
        except BlockingIOError:
            continue
        if got.startswith(b"HTTP/1.1 503") and b"Retry-After: 5" in got:
            refused += 1
    status, why = healthz()
    # Loopback clients, all of these: MaxConnections and 16 more.
    if refused < len(held) - 56 or status != 503 or why != "5":
        sys.exit("burst %d: %d of %d connections answered 503 (want %d or more); /healthz meanwhile %s %s" %
                 (burst, refused, len(held), len(held) - 56, status, why))
    for s in held:
        s.close()
    for _ in range(50):
        status, why = healthz()
        if status == 200:
            break
        time.sleep(0.1)
    if status != 200:
        sys.exit("burst %d: /healthz once the connections closed: %s %s (hung?)" % (burst, status, why))
    print("burst %d: %d connections, %d answered 503 at once, /healthz 200 again" % (burst, len(held), refused))
PY
sed 's/^/   /' "$WORK/flood.out"
grep -q "security: MaxConnections = 40 connections held: more are answered 503 and closed" "$SERVER_LOG" ||
	fail "MaxConnections reached is not logged"
seen=$(awk '/^burst/ { n += $5 } END { print n + 0 }' "$WORK/flood.out")
refused=$(metric 'scepd_http_connections_refused_total{limit="max_connections"}')
answered=$(metric 'scepd_http_responses_total{code="503"}')
[ "$refused" -ge "$seen" ] && [ "$answered" -ge "$seen" ] ||
	fail "/metrics counts $refused connections refused by MaxConnections and $answered answers 503; the clients read $seen"
echo "   /metrics: $refused connections refused by MaxConnections, $answered answers 503 (the clients read $seen)"
server_stop

pass "413, idle timeout, 408 deadline, per-IP limit, MaxConnections, RequestDeadline from the request line, the largest MaxBodySize served, a larger one refused at start, 503 when a body finds no memory or a large one would pass MaxBodiesHeld"
