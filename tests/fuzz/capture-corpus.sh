#!/usr/bin/env bash
# Seeds the fuzz corpora with what the real clients send: each client
# enrolls once against a scepd of its own on 127.0.0.1, through
# tests/tools/capture_proxy.py, and its first PKIOperation becomes
#   tests/fuzz/corpus/pkimessage/captured-CLIENT.der  the pkiMessage
#   tests/fuzz/corpus/query/captured-CLIENT.txt       the query (GET clients)
#   tests/fuzz/corpus/csr/captured-CLIENT.der         the CSR in its envelope,
#                                                     opened with the RA key
#
#   tests/fuzz/capture-corpus.sh [CLIENT...]   (default: all of them)
#
# CLIENT: scepclient (micromdm, POST, single DES), pki (strongSwan, POST,
# AES-128), pkipss (the same, signed with RSASSA-PSS: --rsa-padding pss),
# certmonger (GET, AES-256), ios (tests/tools/scep_ios_client: GET with
# %0A and '+', BER). Existing seeds of a client are replaced.
# BUILD_DIR (default build/) must hold scepd, scepctl and scep_ios_client;
# KEEP=1 keeps the work directory with every capture.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
export SRC_DIR=${SRC_DIR:-$top} BUILD_DIR=${BUILD_DIR:-$top/build}
. "$SRC_DIR/tests/interop/lib.sh"

ALL_CLIENTS="scepclient pki pkipss certmonger ios"
clients=${*:-$ALL_CLIENTS}
for c in $clients; do
	case " $ALL_CLIENTS " in
	*" $c "*) ;;
	*) echo "unknown client '$c' (known: $ALL_CLIENTS)" >&2; exit 2 ;;
	esac
done
CORPUS="$SRC_DIR/tests/fuzz/corpus"
interop_init capture-corpus
command -v python3 >/dev/null || fail "python3 is needed for the capture proxy"
CAP="$WORK/captured"
mkdir -p "$CAP"
server_start
fetch_ca_chain

# proxy_start LABEL: a capture proxy to scepd for one client; its pid in
# $PROXY_PID, its URL in $PROXY_URL.
proxy_start() {
	local label=$1 portfile="$WORK/proxy-$1.port"
	python3 "$SRC_DIR/tests/tools/capture_proxy.py" --upstream "$BASE" \
		--out "$CAP" --label "$label" --port-file "$portfile" 2> "$WORK/proxy-$label.log" &
	PROXY_PID=$!
	on_exit "kill $PROXY_PID"
	for _ in $(seq 100); do
		[ -s "$portfile" ] && break
		kill -0 "$PROXY_PID" 2>/dev/null || { cat "$WORK/proxy-$label.log"; fail "capture_proxy.py exited"; }
		sleep 0.1
	done
	[ -s "$portfile" ] || fail "capture_proxy.py wrote no port"
	PROXY_URL="http://127.0.0.1:$(cat "$portfile")/certsrv/mscep/mscep.dll"
	echo "   capture proxy for $label on $PROXY_URL"
}

proxy_stop() {
	kill "$PROXY_PID" 2>/dev/null || true
	wait "$PROXY_PID" 2>/dev/null || true
}

capture_scepclient() {
	local pw
	# scepclient 2.1.0 encrypts with single DES whatever the caps say.
	set_conf ra AllowDES 1
	server_restart
	pw=$(challenge)
	mkdir -p "$WORK/scepclient"
	scepclient -server-url "$PROXY_URL" -challenge "$pw" \
		-private-key "$WORK/scepclient/key.pem" -certificate "$WORK/scepclient/cert.pem" \
		-cn "scepclient capture" -organization "Fabrikam" -ou "IT" \
		> "$WORK/scepclient/out.log" 2>&1 ||
		{ sed 's/^/   | /' "$WORK/scepclient/out.log"; fail "scepclient did not enroll"; }
	verify_cert "$WORK/scepclient/cert.pem"
	# Back to the default for the clients after it.
	set_conf ra AllowDES 0
	server_restart
}

# capture_pki [DIR [pki --scep options...]]
capture_pki() {
	local pw out=${1:-$WORK/pki}
	[ $# -gt 0 ] && shift
	pw=$(challenge)
	mkdir -p "$out"
	pki --gen --type rsa --size 2048 --outform pem > "$out/key.pem" 2> "$out/gen.err" ||
		{ cat "$out/gen.err"; fail "pki --gen"; }
	pki --scep --url "$PROXY_URL" --in "$out/key.pem" --dn "C=US, O=Fabrikam, CN=pki capture" \
		--password "$pw" --cacert-enc "$RA_ENC_PEM" --cacert-sig "$RA_SIG_PEM" \
		--cacert "$CA_PEM" --outform pem --interval 2 --maxpolltime 20 "$@" \
		> "$out/cert.pem" 2> "$out/scep.err" ||
		{ grep -v "failed to load\|could not load" "$out/scep.err" | sed 's/^/   | /'; fail "pki --scep did not enroll"; }
	verify_cert "$out/cert.pem"
}

capture_pkipss() {
	capture_pki "$WORK/pkipss" --rsa-padding pss
}

# As tests/interop/test_certmonger.sh: its own daemon on a private bus,
# its state in the work directory.
capture_certmonger() {
	local cm="$WORK/cm" status=
	certmonger_start "$cm"
	getcert add-scep-ca -s -c scepd -u "$PROXY_URL" > "$cm/add-ca.out" 2>&1 ||
		{ cat "$cm/add-ca.out"; fail "getcert add-scep-ca failed"; }
	getcert request -s -c scepd -I capture -g 2048 -k "$cm/certs/key.pem" -f "$cm/certs/cert.pem" \
		-L "$(challenge)" -N "CN=certmonger capture,O=Fabrikam" > "$cm/request.out" 2>&1 ||
		{ cat "$cm/request.out"; fail "getcert request failed"; }
	for _ in $(seq 60); do
		status=$(getcert list -s -i capture 2>/dev/null | sed -n 's/^[[:space:]]*status: //p')
		case "$status" in
		MONITORING | CA_REJECTED | NEED_GUIDANCE | CA_UNCONFIGURED) break ;;
		esac
		sleep 1
	done
	[ "$status" = MONITORING ] ||
		{ grep -iE "error|fail|reject" "$cm/certmonger.log" | tail -20; fail "certmonger: status $status, want MONITORING"; }
	verify_cert "$cm/certs/cert.pem"
	# Stopped now: a later renewal or poll of its own is not wanted here.
	kill "$CM_PID" 2>/dev/null || true
	wait "$CM_PID" 2>/dev/null || true
	kill "$CM_BUS_PID" 2>/dev/null || true
}

capture_ios() {
	ios_enroll "$(challenge)" "O=Fabrikam,OU=IT,CN=iOS capture" "$WORK/ios.pem" "$PROXY_URL" ||
		fail "the iOS-like client did not enroll"
	verify_cert "$WORK/ios.pem"
}

# The pkiMessage of a GET: `message` URL-decoded ('+' is base64's own, as
# the iOS client sends it unescaped), then base64 without its line breaks.
query_message() {
	python3 - "$1" "$2" <<'PY'
import base64, sys, urllib.parse
q = open(sys.argv[1], "rb").read().decode("latin-1")
for part in q.split("&"):
    name, _, value = part.partition("=")
    if name == "message":
        value = urllib.parse.unquote(value, encoding="latin-1")
        open(sys.argv[2], "wb").write(base64.b64decode(value))
        sys.exit(0)
sys.exit("no message= in the query")
PY
}

# seeds CLIENT: the client's first PKIOperation into the three corpora.
seeds() {
	local c=$1 name method dir
	dir="$WORK/seeds/$c"
	read -r name method _ < <(grep "^$c-[0-9]* " "$CAP/index" 2>/dev/null | head -n 1) ||
		fail "the proxy saw no PKIOperation from $c"
	mkdir -p "$dir"
	if [ "$method" = GET ]; then
		cp "$CAP/$name.query" "$dir/query.txt"
		query_message "$dir/query.txt" "$dir/pkimessage.der" ||
			fail "$c: no pkiMessage in the query"
	else
		cp "$CAP/$name.body" "$dir/pkimessage.der"
	fi
	openssl cms -verify -noverify -inform DER -in "$dir/pkimessage.der" -binary \
		-out "$dir/envelope.der" 2> "$dir/verify.err" ||
		{ cat "$dir/verify.err"; fail "$c: the pkiMessage is not a readable SignedData"; }
	# Single DES (scepclient) is in OpenSSL 3's legacy provider only.
	openssl cms -decrypt -inform DER -binary -in "$dir/envelope.der" \
		-recip "$DATA/ra/ra-enc.pem" -inkey "$DATA/ra/ra-enc.key" -out "$dir/csr.der" 2> "$dir/decrypt.err" ||
		openssl cms -decrypt -inform DER -binary -in "$dir/envelope.der" \
			-recip "$DATA/ra/ra-enc.pem" -inkey "$DATA/ra/ra-enc.key" -out "$dir/csr.der" \
			-provider legacy -provider default 2> "$dir/decrypt.err" ||
		{ cat "$dir/decrypt.err"; fail "$c: the envelope does not open with the RA key"; }
	openssl req -inform DER -in "$dir/csr.der" -noout -verify > /dev/null 2>&1 ||
		fail "$c: the envelope does not hold a CSR with a good signature"

	cp "$dir/pkimessage.der" "$CORPUS/pkimessage/captured-$c.der"
	cp "$dir/csr.der" "$CORPUS/csr/captured-$c.der"
	echo "   pkimessage/captured-$c.der $(wc -c < "$dir/pkimessage.der") bytes ($method)"
	echo "   csr/captured-$c.der $(wc -c < "$dir/csr.der") bytes: $(openssl req -inform DER -in "$dir/csr.der" -noout -subject)"
	if [ "$method" = GET ]; then
		cp "$dir/query.txt" "$CORPUS/query/captured-$c.txt"
		echo "   query/captured-$c.txt $(wc -c < "$dir/query.txt") bytes"
	fi
}

for c in $clients; do
	check "$c enrolls through the capture proxy"
	proxy_start "$c"
	"capture_$c"
	proxy_stop
	seeds "$c"
done
pass "seeds captured from: $clients"
