#!/usr/bin/env bash
# micromdm's scepclient (Debian package `scep`, /usr/bin/scepclient, 2.1.0)
# against scepd.
#
# Quirks of scepclient 2.1.0 found while writing this test:
#  - It encrypts with single DES-CBC whatever GetCACaps says (its pkcs7
#    library's default), so with AllowDES = 0 (our default, RFC 8894) it
#    gets CertRep FAILURE badAlg; it prints only
#    "PKCSReq request failed, failInfo: badAlg" on stdout and exits 1 (not
#    the failInfoText: that is checked in the server log).
#  - It encrypts the CSR to EVERY certificate of GetCACert (RA signing, RA
#    encryption and CA: three RecipientInfos); the server must pick the
#    one for its encryption certificate.
#  - With POSTPKIOperation in the caps it POSTs; without, it would GET with
#    URL-safe base64 ('-' '_'), which its own server cannot read.
#  - It needs GetCACert's Content-Type to be exactly
#    "application/x-x509-ca-ra-cert" (no parameters) to read a chain.
#  - transactionID is base64 of a SHA-1 ('/', '+', '=' in it), not hex.
#  - It writes csr.pem and self.pem next to -private-key and REUSES an
#    existing key.pem/csr.pem (with the old challenge inside), and sends a
#    RenewalReq if -certificate already exists: every enrollment below gets
#    a fresh directory.
#  - The -server-url path is used as given (/certsrv/mscep/mscep.dll,
#    /scep, /cgi-bin/pkiclient.exe all work if the server serves them).
#  - It sends C, O, OU and CN (defaults US, scep-client, MDM).
. "$(dirname "$0")/lib.sh"
interop_init scepclient
command -v scepclient >/dev/null || fail "scepclient not installed (Debian package 'scep')"
server_start
fetch_ca_chain

# sc_enroll NAME URL: scepclient in a fresh directory; status in $sc_rc.
sc_enroll() {
	local name=$1 url=$2 pw
	pw=$(challenge)
	mkdir -p "$WORK/$name"
	sc_rc=0
	scepclient -server-url "$url" -challenge "$pw" \
		-private-key "$WORK/$name/key.pem" -certificate "$WORK/$name/cert.pem" \
		-cn "scepclient $name" -organization "Fabrikam" -ou "IT" -debug \
		> "$WORK/$name/out.log" 2>&1 || sc_rc=$?
	sed 's/^/   | /' "$WORK/$name/out.log" | grep -v 'level=debug' || true
}

check "scepclient's single-DES request is refused: FAILURE badAlg naming AllowDES = 1"
sc_enroll des "$URL"
[ "$sc_rc" = 1 ] || fail "scepclient exit $sc_rc with AllowDES = 0, want 1 (refused)"
grep -q "failInfo: badAlg" "$WORK/des/out.log" ||
	fail "scepclient did not report failInfo badAlg"
[ ! -s "$WORK/des/cert.pem" ] || fail "a certificate was issued to a DES request"
grep -q "AllowDES = 1" "$SERVER_LOG" ||
	fail "the server log does not name 'AllowDES = 1' for the refused DES request"
echo "   refused with badAlg; server log: $(grep -m1 'AllowDES = 1' "$SERVER_LOG" | cut -c1-160)"

# A recording proxy between scepclient and scepd: the CertReps it passes
# are kept in $WORK/captured/ so their envelope cipher can be read.
start_capture_proxy() {
	mkdir -p "$WORK/captured"
	cat > "$WORK/proxy.py" <<'PY'
import http.server, sys, urllib.request, urllib.error, itertools
upstream, port, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
count = itertools.count()
class Proxy(http.server.BaseHTTPRequestHandler):
    def relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        hdrs = {"Content-Type": self.headers["Content-Type"]} if body else {}
        req = urllib.request.Request(upstream + self.path, data=body, method=self.command, headers=hdrs)
        try:
            r = urllib.request.urlopen(req, timeout=30)
        except urllib.error.HTTPError as e:
            r = e
        data = r.read()
        if "operation=PKIOperation" in self.path:
            with open("%s/%d.der" % (outdir, next(count)), "wb") as f:
                f.write(data)
        self.send_response(r.status)
        self.send_header("Content-Type", r.headers.get("Content-Type", "text/plain"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_POST = relay
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Proxy).serve_forever()
PY
	PROXY_PORT=$(free_port)
	python3 "$WORK/proxy.py" "$BASE" "$PROXY_PORT" "$WORK/captured" 2> "$WORK/proxy.log" &
	local pid=$!
	on_exit "kill $pid"
	for _ in $(seq 50); do
		curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/healthz" && return 0
		sleep 0.1
	done
	fail "the recording proxy did not start: $(cat "$WORK/proxy.log")"
}

# The content-encryption algorithm of a CertRep's envelope (no key needed).
certrep_cipher() {
	openssl cms -verify -noverify -inform DER -in "$1" -binary -out "$1.env" 2>/dev/null ||
		{ echo "unreadable"; return; }
	openssl cms -cmsout -print -inform DER -in "$1.env" 2>/dev/null |
		sed -n '/contentEncryptionAlgorithm:/{n;s/.*algorithm: *//;s/ .*//;p;q}'
}

check "AllowDES = 1 in [ra], restart: scepclient enrolls; the reply is 3DES, never DES"
set_conf ra AllowDES 1
server_restart
command -v python3 >/dev/null || fail "python3 is needed for the recording proxy"
start_capture_proxy
sc_enroll allowdes "http://127.0.0.1:$PROXY_PORT/certsrv/mscep/mscep.dll"
[ "$sc_rc" = 0 ] || fail "scepclient exit $sc_rc with AllowDES = 1"
verify_cert "$WORK/allowdes/cert.pem"
openssl x509 -in "$WORK/allowdes/cert.pem" -noout -subject | grep -q "CN = scepclient allowdes" ||
	fail "issued subject: $(openssl x509 -in "$WORK/allowdes/cert.pem" -noout -subject)"
[ -s "$WORK/captured/0.der" ] || fail "the proxy recorded no CertRep"
cipher=$(certrep_cipher "$WORK/captured/0.der")
echo "   CertRep envelope: $cipher"
[ "$cipher" = "des-ede3-cbc" ] || fail "the reply to a DES request is '$cipher', want des-ede3-cbc"

check "the same through /scep and /cgi-bin/pkiclient.exe"
sc_enroll scep-path "$BASE/scep"
[ "$sc_rc" = 0 ] || fail "scepclient via /scep: exit $sc_rc"
verify_cert "$WORK/scep-path/cert.pem"
sc_enroll cgi-path "$BASE/cgi-bin/pkiclient.exe"
[ "$sc_rc" = 0 ] || fail "scepclient via /cgi-bin/pkiclient.exe: exit $sc_rc"
verify_cert "$WORK/cgi-path/cert.pem"

pass "DES refused by default with a clear reason, enrolls with AllowDES = 1 on all three paths"
