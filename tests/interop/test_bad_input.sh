#!/usr/bin/env bash
# The bad-input battery (grows with each issue): hostile requests, each with
# the answer HTTP and RFC 8894 expect, and after each one a good client
# still enrolls. Other files cover messageTypes (test_message_types.sh),
# connection limits and slow clients (test_http_limits.sh) and reuse of
# challenges (test_challenge_*.sh).
. "$(dirname "$0")/lib.sh"
interop_init bad_input
server_start
server_stop
set_conf challenge PasswordMax 100
server_start

cases=0
enrolled=0
# A good client after every case: the server must still serve.
still_enrolls() {
	local pw
	pw=$(challenge)
	"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=good $cases" \
		--out "$WORK/good.pem" > "$WORK/good.log" 2>&1 ||
		{ cat "$WORK/good.log"; fail "after case $cases ($1) a good client no longer enrolls"; }
	enrolled=$((enrolled + 1))
}

# expect_http CODE "what" curl-arguments...
expect_http() {
	local want=$1 what=$2 code
	shift 2
	cases=$((cases + 1))
	code=$(curl -s -o "$WORK/body" -w '%{http_code}' -m 60 "$@" || true)
	[ "$code" = "$want" ] || { head -c 300 "$WORK/body"; echo; fail "case $cases, $what: HTTP $code, want $want"; }
	echo "   ok $cases: $what -> $code"
	still_enrolls "$what"
}

# expect_certrep EXIT FAILINFO "what" client-arguments...: the iOS-like
# client's exit (2 = FAILURE) and the failInfo it printed.
expect_certrep() {
	local want=$1 failinfo=$2 what=$3 rc=0
	shift 3
	cases=$((cases + 1))
	"$IOS_CLIENT" --url "$URL" --subject "CN=bad $cases" --out "$WORK/bad.pem" "$@" \
		> "$WORK/bad.log" 2>&1 || rc=$?
	[ "$rc" = "$want" ] || { cat "$WORK/bad.log"; fail "case $cases, $what: client exit $rc, want $want"; }
	grep -q "$failinfo" "$WORK/bad.log" || { cat "$WORK/bad.log"; fail "case $cases, $what: no $failinfo"; }
	echo "   ok $cases: $what -> FAILURE $failinfo"
	still_enrolls "$what"
}

# expect_raw CODE "what" PYTHON-EXPR: sends the bytes the expression makes
# (a whole HTTP request; too large for a command line) and reads the status.
expect_raw() {
	local want=$1 what=$2 code
	cases=$((cases + 1))
	code=$(python3 - "$PORT" "$3" <<'PY'
import socket, sys
port, expr = int(sys.argv[1]), sys.argv[2]
req = eval(expr)
s = socket.create_connection(("127.0.0.1", port), timeout=30)
try:
    s.sendall(req)
except OSError:
    pass        # the server may answer and close before reading it all
data = b""
try:
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
line = data.split(b"\r\n")[0].split()
print(line[1].decode() if len(line) > 1 else "closed")
PY
)
	[ "$code" = "$want" ] || fail "case $cases, $what: HTTP $code, want $want"
	echo "   ok $cases: $what -> $code"
	still_enrolls "$what"
}

# A real request to cut up: the iPhone's, from the vectors.
req="$SRC_DIR/tests/vectors/micromdm-scep/PKCSReq.der"
b64() { base64 -w0 "$1" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g'; }

check "HTTP-level: answered with the right status, never a crash"
expect_http 400 "no operation" "$URL?message=MIIBAAAA"
expect_http 400 "unknown operation" "$URL?operation=GetEverything"
expect_http 400 "operation in the wrong case of a real one plus junk" "$URL?operation=PKIOperationX"
expect_http 400 "PKIOperation without message" "$URL?operation=PKIOperation"
expect_http 400 "message not base64" "$URL?operation=PKIOperation&message=%21%21%21%21"
head -c 3000 /dev/urandom > "$WORK/garbage"
expect_http 400 "base64 of garbage" "$URL?operation=PKIOperation&message=$(b64 "$WORK/garbage")"
head -c 200 "$req" > "$WORK/trunc"
expect_http 400 "truncated PKCS#7" "$URL?operation=PKIOperation&message=$(b64 "$WORK/trunc")"
expect_http 400 "bad percent escape" "$URL?operation=PKIOperation&message=%ZZ%0"
expect_http 400 "operation given twice" "$URL?operation=GetCACaps&operation=GetCACert"
python3 -c 'import sys; sys.stdout.buffer.write(b"\x30\x80" * 100000)' > "$WORK/deep"
expect_http 400 "BER nested 100,000 deep (POST)" --data-binary @"$WORK/deep" "$URL?operation=PKIOperation"
expect_http 400 "empty POST body" --data-binary "" "$URL?operation=PKIOperation"
{ printf '\x30'; head -c 1000 /dev/urandom; } > "$WORK/junk30"
expect_http 400 "DER-looking junk (POST)" --data-binary @"$WORK/junk30" "$URL?operation=PKIOperation"
expect_http 400 "an envelope where the SignedData should be" --data-binary @"$SRC_DIR/tests/fuzz/corpus/envelope/$(ls "$SRC_DIR/tests/fuzz/corpus/envelope" | head -1)" "$URL?operation=PKIOperation"
# One RDN of 50 values in the signer's certificate: OpenSSL sorts the
# RDN's set with glibc's qsort, whose first sort of 1 KiB asks sysinfo,
# which the sandbox killed the RA for (503, the RA killed three times).
subj="/CN=rdn"
for i in $(seq 2 50); do subj="$subj+OU=v$i"; done
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/rdn.key" -out "$WORK/rdn.pem" \
	-subj "$subj" -multivalue-rdn -days 1 2>/dev/null || fail "openssl req -multivalue-rdn"
echo hello | openssl smime -sign -signer "$WORK/rdn.pem" -inkey "$WORK/rdn.key" -outform DER -nodetach \
	-out "$WORK/rdn.der" || fail "openssl smime -sign"
from=$(log_mark)
expect_http 400 "a signer certificate with 50 values in one RDN (POST)" --data-binary @"$WORK/rdn.der" \
	"$URL?operation=PKIOperation"
! logged "$from" "killed by signal" || fail "a service was killed by a certificate's multi-valued RDN"
expect_raw 414 "1 MiB query string" \
	'b"GET /certsrv/mscep/mscep.dll?operation=PKIOperation&message=" + b"A" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n"'
head -c 1048577 /dev/zero > "$WORK/1m1"
expect_http 413 "1 MiB + 1 POST body" --data-binary @"$WORK/1m1" "$URL?operation=PKIOperation"
expect_http 413 "100 MiB POST body announced" -H "Content-Length: 104857600" --data-binary @"$WORK/junk30" "$URL?operation=PKIOperation"
for m in PUT DELETE OPTIONS TRACE PATCH; do
	expect_http 405 "method $m" -X "$m" "$URL?operation=GetCACaps"
done
expect_http 404 "unknown path" "$BASE/certsrv/mscep/other.dll?operation=GetCACaps"
expect_raw 414 "200 kB URL path" 'b"GET /" + b"a" * 200000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"'
expect_raw 431 "6,000 headers" \
	'b"GET /scep?operation=GetCACaps HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Flood-%d: %s\r\n" % (i, b"b" * 40) for i in range(6000)) + b"\r\n"'
# A TLS ClientHello on the plain port: nothing HTTP to answer; closed.
expect_raw closed "not HTTP at all (a TLS ClientHello)" 'b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 500 + b"\r\n\r\n"' 

check "SCEP-level: a CertRep FAILURE with the right failInfo"
expect_certrep 2 badRequest "wrong challenge" --challenge "0000000000000000000000000000000F"
expect_certrep 2 badRequest "no challenge at all"
expect_certrep 2 badRequest "RSA 1024 below MinRSABits" --keysize 1024 --challenge "$(challenge)"
expect_certrep 2 badAlg "single DES envelope (RFC 8894 forbids it)" --cipher des-cbc --challenge "$(challenge)"
grep -q "AllowDES = 1" "$WORK/bad.log" || { cat "$WORK/bad.log"; fail "the single-DES failInfoText does not name AllowDES = 1"; }
expect_certrep 2 badAlg "MD5 message digest" --digest md5 --challenge "$(challenge)"
expect_certrep 2 badMessageCheck "envelope for another certificate (the CA's)" \
	--recipient "$DATA/ca/ca.pem" --challenge "$(challenge)"
expect_certrep 2 badMessageCheck "signer key is not the CSR's key" --signer-mismatch --challenge "$(challenge)"
# micromdm's signer has keyUsage without keyCertSign: OpenSSL's
# X509_check_issued does not call it self-signed, and its key went unchecked.
expect_certrep 2 badMessageCheck "signer key is not the CSR's key, a signer with keyUsage (as micromdm's)" \
	--signer-mismatch --signer-key-usage --challenge "$(challenge)"
# RFC 8894 3.1: the reply is key transport to the signer, RSA only; refused
# before its signature is checked (OpenSSL 3.0 cannot check Ed25519's).
expect_certrep 2 badAlg "signer certificate with an EC key" --signer-type ec --challenge "$(challenge)"
expect_certrep 2 badAlg "signer certificate with an Ed25519 key" --signer-type ed25519 --challenge "$(challenge)"
grep -q "failInfoText: .*sign the request with an RSA key" "$WORK/bad.log" ||
	{ cat "$WORK/bad.log"; fail "the non-RSA signer's failInfoText does not say what to do"; }
# An EC CSR in a new enrollment: its signer holds the same key (RFC 8894),
# so no RSA signer can carry it: told how an EC key is certified (it was
# badMessageCheck 'does not hold the CSR's public key' with an RSA signer).
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ec-device.key" 2> /dev/null
expect_certrep 2 badAlg "new enrollment: an EC CSR, signed with another (RSA) key" \
	--key "$WORK/ec-device.key" --signer-mismatch --challenge "$(challenge)"
grep -q "failInfoText: a new enrollment's CSR must hold an RSA key.*renewal" "$WORK/bad.log" ||
	{ cat "$WORK/bad.log"; fail "an EC CSR's failInfoText does not say how an EC key is certified"; }
# The CSR's own signature: MD5 never (it was issued), SHA-1 as AllowSHA1 says
expect_certrep 2 badAlg "CSR signed with MD5" --csr-digest md5 --challenge "$(challenge)"
grep -q "failInfoText: the CSR is signed with MD5" "$WORK/bad.log" ||
	{ cat "$WORK/bad.log"; fail "the MD5 CSR's failInfoText"; }

expect_certrep 2 badMessageCheck "CSR with a bad signature" --bad-csr-signature --challenge "$(challenge)"
expect_certrep 2 badRequest "RSA 512" --keysize 512 --challenge "$(challenge)"
expect_certrep 2 badRequest "empty challenge" --challenge ""
expect_certrep 2 badRequest "challenge of 300 bytes" --challenge "$(head -c 300 /dev/zero | tr '\0' 'A')"
expect_certrep 2 badRequest "transactionID of 200 characters (more than the services keep)" \
	--txid "$(head -c 200 /dev/zero | tr '\0' 'T')" --challenge "$(challenge)"
grep -q "failInfoText: transactionID missing or longer than 127 characters" "$WORK/bad.log" ||
	{ cat "$WORK/bad.log"; fail "the long transactionID's failInfoText does not give the limit"; }
expect_certrep 2 badCertId "CertPoll for an unknown transaction" --message-type 20
expect_certrep 2 badCertId "CertPoll for a transactionID of 256 characters (longer than the CA keeps)" \
	--message-type 20 --txid "$(head -c 256 /dev/zero | tr '\0' 'P')"
expect_certrep 2 badRequest "GetCert from a requester that holds no certificate of ours" \
	--message-type 21 --issuer-serial "$DATA/ca/ca.pem"

# expect_unanswerable "what" client-arguments...: a request that cannot be
# addressed by a CertRep (no transactionID or a bad nonce): HTTP 400.
expect_unanswerable() {
	local what=$1 rc=0
	shift
	cases=$((cases + 1))
	"$IOS_CLIENT" --url "$URL" --subject "CN=bad $cases" --out "$WORK/bad.pem" --challenge "$(challenge)" "$@" \
		> "$WORK/bad.log" 2>&1 || rc=$?
	[ "$rc" = 1 ] && grep -q "PKIOperation: HTTP 400" "$WORK/bad.log" ||
		{ cat "$WORK/bad.log"; fail "case $cases, $what: client exit $rc, want HTTP 400"; }
	echo "   ok $cases: $what -> 400"
	still_enrolls "$what"
}
expect_unanswerable "no transactionID" --no-txid
expect_unanswerable "transactionID of 300 characters" --txid "$(head -c 300 /dev/zero | tr '\0' 'T')"
expect_unanswerable "no senderNonce" --no-nonce
expect_unanswerable "senderNonce of 0 bytes" --nonce-len 0
expect_unanswerable "senderNonce of 10 KiB" --nonce-len 10240

check "wrong content types: what matters is the body (as NDES)"
cases=$((cases + 1))
code=$(curl -s -o "$WORK/ct.body" -w '%{http_code} %{content_type}' -H "Content-Type: text/plain" \
	--data-binary @"$req" "$URL?operation=PKIOperation")
case "$code" in
"200 application/x-pki-message" | 400*) echo "   ok $cases: POST as text/plain -> $code (judged by its body)" ;;
*) fail "case $cases, POST as text/plain: $code" ;;
esac
still_enrolls "content type text/plain"

check "accepted variants: 3DES (reply 3DES, never DES), AES-256, SHA-1"
for v in "des-ede3-cbc sha256 DES-EDE3-CBC" "aes-256-cbc sha256 AES-256-CBC" "aes-128-cbc sha1 AES-128-CBC"; do
	set -- $v
	"$IOS_CLIENT" --url "$URL" --challenge "$(challenge)" --subject "CN=variant $1 $2" \
		--cipher "$1" --digest "$2" --out "$WORK/v.pem" > "$WORK/v.log" 2>&1 ||
		{ cat "$WORK/v.log"; fail "$1 with $2 was refused"; }
	grep -q "reply cipher: $3" "$WORK/v.log" || { cat "$WORK/v.log"; fail "$1 request: reply not $3"; }
	enrolled=$((enrolled + 1))
	echo "   ok: $1 + $2 accepted, reply $3"
done

pw=$(challenge)
"$IOS_CLIENT" --url "$URL" --challenge "$pw" --subject "CN=owner" --out "$WORK/owner.pem" > "$WORK/owner.log" 2>&1 ||
	{ cat "$WORK/owner.log"; fail "enrollment to set up the replay"; }
expect_certrep 2 badRequest "a challenge from another transaction replayed" --challenge "$pw"

check "a CSR larger than the challenge service reads: FAILURE at once, not 503 and retries"
# A 70,000-character DNS name: the password check would carry the CSR
# and its names, more than the 64 KiB the challenge service reads
# (libzmq would drop the RA's connection and the RA wait out its timeout).
server_stop
set_conf frontend MaxQueryString 262144
server_start
start=$(date +%s%N)
expect_certrep 2 badRequest "a CSR of 70 kB" --san "DNS:$(head -c 70000 /dev/zero | tr '\0' 'a').example.com" \
	--challenge "$(challenge)"
ms=$((($(date +%s%N) - start) / 1000000))
grep -q "failInfoText: the request is larger than the challenge service reads (64 KiB)" "$WORK/bad.log" ||
	{ cat "$WORK/bad.log"; fail "the failInfoText does not say the request is too large"; }
echo "   answered (and a good client enrolled after it) in $ms ms"

n=$(grep -c 'scepd-ca\[.*issued serial' "$SERVER_LOG" || true)
[ "$n" = $((enrolled + 1)) ] || fail "the CA issued $n certificates; only the $((enrolled + 1)) good enrollments may have one"
pass "$cases hostile requests answered as expected, a good client enrolled after each"
