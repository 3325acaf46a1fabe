#!/usr/bin/env bash
# An existing CA in front of which scepd sits, as NDES sits in front of an
# enterprise CA: the CA key encrypted with a passphrase file, RA
# certificates issued by that CA; then the CA certificate itself serving as
# RA; then the start-up checks naming the file at fault.
set -euo pipefail
: "${BUILD_DIR:?}" "${SRC_DIR:?}"
work=$(mktemp -d /tmp/scepd-existing-ca.XXXXXX)
server_pid=
cleanup() {
	local rc=$?
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	# Sanitizer builds: a report from any service fails the test.
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/server.log" 2>/dev/null; then
		grep -E -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/server.log" | head -60
		echo "FAIL: sanitizer report in the server log"
		rc=1
	fi
	[ "${KEEP:-0}" = 1 ] || rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$work/server.log" ] && tail -30 "$work/server.log"; exit 1; }

cd "$work"
mkdir -p data/pki data/run data/db
# The enterprise CA: key encrypted with a passphrase kept in a file. It may
# also serve as RA (below), so it allows signing and key encipherment.
echo "correct horse battery staple" > data/pki/ca.pass
openssl req -x509 -newkey rsa:2048 -sha256 -days 3650 -subj "/O=Fabrikam/CN=Fabrikam Issuing CA1" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature,keyEncipherment" \
	-passout file:data/pki/ca.pass -keyout data/pki/ca.key -out data/pki/ca.pem 2>/dev/null
ra_cert() { # name keyusage
	openssl req -newkey rsa:2048 -nodes -subj "/CN=ndes01-MSCEP-RA" -keyout "data/pki/$1.key" \
		-out "$1.csr" 2>/dev/null
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,%s\n' "$2" > "$1.ext"
	openssl x509 -req -in "$1.csr" -CA data/pki/ca.pem -CAkey data/pki/ca.key \
		-passin file:data/pki/ca.pass -CAcreateserial -days 365 -sha256 \
		-extfile "$1.ext" -out "data/pki/$1.pem" 2>/dev/null
}
ra_cert ra-sign digitalSignature
ra_cert ra-enc keyEncipherment,dataEncipherment
ra_cert ra-noenc digitalSignature
chmod 600 data/pki/*.key data/pki/ca.pass # the CA refuses key files others may read

write_conf() { # sign-cert sign-key enc-cert enc-key passfile-for-ra
	sed -e "s|^CACertificate = .*|CACertificate = pki/ca.pem|" \
	    -e "s|^SigningCertificate = .*|SigningCertificate = $1|" \
	    -e "s|^SigningKey = .*|SigningKey = $2|" \
	    -e "s|^EncryptionCertificate = .*|EncryptionCertificate = $3|" \
	    -e "s|^EncryptionKey = .*|EncryptionKey = $4|" \
	    -e "s|^Certificate = ca/ca.pem|Certificate = pki/ca.pem|" \
	    -e "s|^Key = ca/ca.key|Key = pki/ca.key|" \
	    "$SRC_DIR/deploy/scepd.conf.example" > data/scepd.conf
	# KeyPassphraseFile appears in [ra] and [ca]: set it in [ca] always,
	# in [ra] only when the RA keys are the CA's.
	awk -v rapass="$5" '
		/^\[/ { sect = $0 }
		/^KeyPassphraseFile =/ {
			if (sect == "[ca]") { print "KeyPassphraseFile = pki/ca.pass"; next }
			if (sect == "[ra]") { print "KeyPassphraseFile = " rapass; next }
		}
		{ print }' data/scepd.conf > data/scepd.conf.new && mv data/scepd.conf.new data/scepd.conf
}

port=$(python3 "$(dirname "$0")/../tools/free_port.py")
url="http://127.0.0.1:$port/certsrv/mscep/mscep.dll"
start() {
	"$BUILD_DIR/scepd" --data-dir "$work/data" --listen "127.0.0.1:$port" >> "$work/server.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	fail "server did not start"
}
stop() { kill "$server_pid"; wait "$server_pid" || true; server_pid=; }
enroll() { # cn -> issued cert file
	pw=$("$BUILD_DIR/scepctl" --data-dir "$work/data" challenge) || fail "no challenge"
	"$BUILD_DIR/tests/scep_ios_client" --url "$url" --challenge "$pw" \
		--subject "O=Fabrikam,CN=$1" --out "$work/$1.pem" > "$work/$1.out" 2>&1 ||
		{ cat "$work/$1.out"; fail "enrollment of $1"; }
	openssl verify -CAfile data/pki/ca.pem "$work/$1.pem" >/dev/null || fail "$1 does not verify"
}

echo "-- RA certificates issued by an existing CA whose key is encrypted"
write_conf pki/ra-sign.pem pki/ra-sign.key pki/ra-enc.pem pki/ra-enc.key ""
start
curl -s "$url?operation=GetCACert" -D headers -o cacert.der
grep -qi "content-type: application/x-x509-ca-ra-cert" headers || fail "GetCACert content type"
n=$(openssl pkcs7 -inform DER -in cacert.der -print_certs | grep -c "BEGIN CERTIFICATE")
[ "$n" = 3 ] || fail "GetCACert has $n certificates, want RA signing, RA encryption and CA"
enroll device-existing-ca
# Before scepd, the CA issued its CRLs under other software (openssl ca,
# numbered from its crlnumber file): scepd's first CRL outnumbers them, or
# relying parties that keep the highest-numbered CRL (strongSwan) would
# not take it, nor see the revocations in it.
mkdir -p before
touch before/index.txt
echo 1000 > before/crlnumber
printf '[ca]\ndefault_ca = before\n[before]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 30\n' \
	"$work/before/index.txt" "$work/before/crlnumber" > before/ca.cnf
openssl ca -config before/ca.cnf -gencrl -keyfile data/pki/ca.key -cert data/pki/ca.pem \
	-passin file:data/pki/ca.pass -out before/crl.pem 2>/dev/null || fail "openssl ca -gencrl"
crl_number() { openssl crl "$@" -noout -text | awk '/X509v3 CRL Number/ { getline; gsub(/ /, ""); print }'; }
before=$(crl_number -in before/crl.pem)
curl -sf -o first.crl "http://127.0.0.1:$port/crl/ca.crl" || fail "GET /crl/ca.crl"
first=$(crl_number -inform DER -in first.crl)
# (openssl prints a number of up to 64 bits in decimal)
[[ "$before" =~ ^[0-9]+$ && "$first" =~ ^[0-9]+$ ]] && [ "$first" -gt "$before" ] ||
	fail "scepd's first CRL is number ${first:-none}, not above $before, the CA's last before scepd"
echo "   ok: the first CRL (number $first) outnumbers the CA's before scepd ($before)"
stop

echo "-- the CA certificate itself serving as RA"
write_conf pki/ca.pem pki/ca.key pki/ca.pem pki/ca.key pki/ca.pass
start
curl -s "$url?operation=GetCACert" -D headers -o cacert.der
grep -qi "content-type: application/x-x509-ca-cert" headers || fail "single-certificate GetCACert content type"
openssl x509 -inform DER -in cacert.der -noout || fail "GetCACert is not one DER certificate"
enroll device-ca-as-ra
stop

echo "-- a CA without subjectKeyIdentifier, a minute from its end: the CRL"
# Old CAs (and some HSM-made ones) carry no SKI: certificates and CRLs get
# the SHA-1 of its key as authorityKeyIdentifier all the same (RFC 5280
# method 1), so relying parties find the issuer. No CRL promises a next one
# past the CA's notAfter, and past it none is signed.
FAKETIME_LIB=$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime\.so\.1$' | head -1)
[ -n "$FAKETIME_LIB" ] || fail "libfaketime is missing: scripts/deps.sh --test installs faketime"
mkdir -p old
cp -a data/pki data/scepd.conf old/
# Made a day ago less a minute, for a day: it ends a minute from now.
LD_PRELOAD="$FAKETIME_LIB" FAKETIME="-86340s" openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 1 \
	-subj "/O=Fabrikam/CN=Old CA" -addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature,keyEncipherment" \
	-addext "subjectKeyIdentifier=none" -addext "authorityKeyIdentifier=none" \
	-keyout data/pki/ca.key -out data/pki/ca.pem 2>/dev/null
chmod 600 data/pki/ca.key
! openssl x509 -in data/pki/ca.pem -noout -text | grep -q "Key Identifier" || fail "the test CA has a key identifier"
end=$(date -d "$(openssl x509 -in data/pki/ca.pem -noout -enddate | cut -d= -f2)" +%s)
write_conf pki/ca.pem pki/ca.key pki/ca.pem pki/ca.key ""
sed -i "s|^KeyPassphraseFile = pki/ca.pass|KeyPassphraseFile =|" data/scepd.conf
crl_url="http://127.0.0.1:$port/crl/ca.crl"
awk -v u="$crl_url" '/^\[ca\]/ { print; print "CRLURL = " u; next } { print }' data/scepd.conf > conf.new &&
	mv conf.new data/scepd.conf
rm -rf data/db/*
start
enroll device-old-ca
# The CA serving as RA, ending in a minute: its end is logged once, as the
# CA's, not as an RA certificate's.
[ "$(grep -c "scepd-ra.*\[ra\] CACertificate: .*ca.pem expires on .*, in 1 day; see README \"CA rollover\"" server.log)" = 1 ] ||
	fail "the RA does not log once the end of the CA certificate serving as RA"
! grep -q "issue the RA a new one" server.log || fail "the CA serving as RA is warned of as an RA certificate"
keyid=$(openssl x509 -in data/pki/ca.pem -noout -pubkey | openssl pkey -pubin -outform DER |
	openssl asn1parse -inform DER -strparse 19 -noout -out /dev/stdout | openssl dgst -sha1 -r | cut -c1-40 |
	tr a-f A-F | sed 's/../&:/g; s/:$//')
openssl x509 -in device-old-ca.pem -noout -text | grep -A1 "Authority Key Identifier" | grep -q "$keyid" ||
	fail "the certificate's AKI is not the SHA-1 of the CA key ($keyid)"
curl -sf -o old.crl "$crl_url" || fail "GET $crl_url"
openssl crl -inform DER -in old.crl -noout -text > old.crl.txt || fail "not a DER CRL"
grep -A1 "Authority Key Identifier" old.crl.txt | grep -q "$keyid" ||
	{ cat old.crl.txt; fail "the CRL of a CA without SKI has no authorityKeyIdentifier (or another one)"; }
next=$(date -d "$(openssl crl -inform DER -in old.crl -noout -nextupdate | cut -d= -f2)" +%s)
[ "$next" = "$end" ] || fail "the CRL's nextUpdate is $(( next - end )) s from the CA's notAfter, want 0 (CRLValidityHours is a week)"
echo "   ok: AKI $keyid in certificate and CRL; nextUpdate is the CA's notAfter"
now=$(date +%s)
[ "$now" -lt "$end" ] || fail "the CA expired before the test came here: give it longer"
sleep $(( end - now + 1 ))
serial=$(openssl x509 -in device-old-ca.pem -noout -serial | cut -d= -f2)
rc=0
"$BUILD_DIR/scepctl" --data-dir "$work/data" revoke "$serial" --reason keyCompromise 2> revoke.err || rc=$?
grep -q "the CA certificate has expired" revoke.err && [ $rc != 0 ] ||
	{ cat revoke.err; fail "revoking under an expired CA: exit $rc, not refused with the reason"; }
curl -s -o late.crl "$crl_url"
if [ -s late.crl ] && openssl crl -inform DER -in late.crl -noout 2>/dev/null; then
	last=$(date -d "$(openssl crl -inform DER -in late.crl -noout -lastupdate | cut -d= -f2)" +%s)
	[ "$last" -lt "$end" ] || fail "a CRL was signed past the CA's notAfter"
fi
grep -q "issued CRL number" server.log || fail "no CRL issued"
stop
echo "   ok: past the CA's notAfter: revoke refused ($(head -1 revoke.err)), no CRL signed"
rm -rf data/pki data/db/* data/scepd.conf
cp -a old/pki old/scepd.conf data/

echo "-- start-up checks name the file at fault"
write_conf pki/ra-sign.pem pki/ra-enc.key pki/ra-enc.pem pki/ra-enc.key ""
set +e
"$BUILD_DIR/scepd-ra" --config data/scepd.conf 2> err.txt; rc=$?
set -e
[ $rc = 1 ] || fail "mismatched signing key: exit $rc, want 1"
grep -q "ra-sign.pem" err.txt || { cat err.txt; fail "mismatched key error does not name ra-sign.pem"; }

write_conf pki/ra-sign.pem pki/ra-sign.key pki/ra-noenc.pem pki/ra-noenc.key ""
set +e
"$BUILD_DIR/scepd-ra" --config data/scepd.conf 2> err.txt; rc=$?
set -e
[ $rc = 1 ] || fail "encryption cert without keyEncipherment: exit $rc, want 1"
grep -q "ra-noenc.pem" err.txt || { cat err.txt; fail "key usage error does not name ra-noenc.pem"; }

write_conf pki/ra-sign.pem pki/ra-sign.key pki/ra-enc.pem pki/ra-enc.key ""
sed -i "s|^KeyPassphraseFile = pki/ca.pass|KeyPassphraseFile = pki/missing.pass|" data/scepd.conf
set +e
"$BUILD_DIR/scepd-ca" --config data/scepd.conf 2> err.txt; rc=$?
set -e
[ $rc = 1 ] || fail "missing passphrase file: exit $rc, want 1"
grep -q "missing.pass\|ca.key" err.txt || { cat err.txt; fail "passphrase error names no file"; }
write_conf pki/ra-sign.pem pki/ra-sign.key pki/ra-enc.pem pki/ra-enc.key ""
chmod 644 data/pki/ra-enc.key
set +e
timeout -s KILL 20 "$BUILD_DIR/scepd-ra" --config data/scepd.conf 2> err.txt; rc=$?
set -e
chmod 600 data/pki/ra-enc.key
[ $rc = 1 ] || fail "an RA encryption key others may read: exit $rc, want 1"
grep -q "\[ra\] EncryptionKey: .*ra-enc.key: mode 0644 gives group or others access" err.txt ||
	{ cat err.txt; fail "the readable key is not named with its mode"; }
echo "PASS: existing CA, CA as RA, start-up checks"
