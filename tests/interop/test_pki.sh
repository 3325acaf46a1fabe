#!/usr/bin/env bash
# strongSwan's `pki --scepca` / `pki --scep` (Debian strongswan-pki 5.9.8)
# against scepd: fetch CA and RA certificates, enroll a key, verify; and
# README.md's strongSwan example, run as written.
#
# Quirks found while writing this test:
#  - pki fetches over HTTP only through its curl plugin, which Debian ships
#    in libstrongswan-extra-plugins (without it: "no capable fetcher
#    found", HTTP 0). It prints "plugin '...': failed to load" lines for
#    plugins built in as static; they are noise.
#  - --scepca writes nothing without --caout/--raout; it writes the root CA
#    to --caout and RA certificates to --raout as a template (ra.pem,
#    ra-2.pem, ...; no ra-1.pem) in the reverse of GetCACert's order: ra.pem
#    is our RA encryption certificate, ra-2.pem the signing one. The roles
#    are told apart here by keyUsage, as a user would; README.md's example
#    names the files.
#  - --cacert-sig is the certificate that verifies the CertRep (our RA
#    signing certificate), --cacert the CA it chains to; --cacert-enc the
#    envelope's recipient (our RA encryption certificate).
#  - Default cipher AES (-128-CBC), digest SHA-256; --cipher des3 and
#    --digest sha1 are the legacy choices (allowed by AllowDES3/AllowSHA1).
#    It POSTs when the caps say POSTPKIOperation or SCEPStandard.
#  - strongSwan 5.9.8 (Debian 12) reads GetCACaps into bit flags (1 << i
#    in the order AES, DES3, SHA-256, SHA-384, SHA-512, SHA-224, SHA-1,
#    POSTPKIOperation, SCEPStandard, GetNextCACert, Renewal) but tests them
#    against the enum's plain indexes (SCEP_CAPS_AES = 0, ... ,
#    SCEPStandard = 8). So its default AES is accepted only when the caps
#    hold the SHA-384 line (bit 3 = "SCEPStandard" = 8), and fails with
#    "AES_CBC encryption algorithm not supported by CA" otherwise; 3DES is
#    accepted when AES is advertised (bit 0 = 1), SHA-256 when DES3 or
#    SHA-384 is. scepd therefore advertises SHA-384 (and accepts it) so
#    that Debian 12's pki uses AES. Lines are also matched by prefix
#    (strncasecmp over the line's length).
. "$(dirname "$0")/lib.sh"
interop_init pki
command -v pki >/dev/null || fail "pki not installed (Debian package strongswan-pki)"
server_start

# pki CMD...: strongSwan pki without the plugin-loading noise; status kept.
run_pki() {
	local out=$1
	shift
	pki_rc=0
	pki "$@" > "$out" 2> "$out.err" || pki_rc=$?
	grep -v "failed to load\|could not load" "$out.err" | sed 's/^/   | /' || true
}

check "pki --scepca fetches the CA and RA certificates"
mkdir -p "$WORK/pki"
run_pki "$WORK/pki/scepca.out" --scepca --url "$URL" --caout "$WORK/pki/ca.pem" \
	--raout "$WORK/pki/ra.pem" --outform pem
[ "$pki_rc" = 0 ] || fail "pki --scepca exit $pki_rc"
[ -s "$WORK/pki/ca.pem" ] || fail "pki --scepca wrote no CA certificate"
ra_sig='' ra_enc=''
for f in "$WORK"/pki/ra*.pem; do
	[ -f "$f" ] || continue
	ku=$(openssl x509 -in "$f" -noout -ext keyUsage 2>/dev/null || true)
	echo "   $(basename "$f"): $(openssl x509 -in "$f" -noout -subject) [$(echo "$ku" | tail -n +2 | xargs)]"
	echo "$ku" | grep -q 'Digital Signature' && [ -z "$ra_sig" ] && ra_sig=$f
	echo "$ku" | grep -q 'Key Encipherment' && [ -z "$ra_enc" ] && ra_enc=$f
done
[ -n "$ra_sig" ] || fail "pki --scepca gave no RA signing certificate (digitalSignature)"
[ -n "$ra_enc" ] || fail "pki --scepca gave no RA encryption certificate (keyEncipherment)"
fetch_ca_chain
cmp -s <(openssl x509 -in "$WORK/pki/ca.pem" -outform DER) <(openssl x509 -in "$CA_PEM" -outform DER) ||
	fail "pki's CA certificate is not the one in GetCACert"

# enroll NAME [pki args...]: a new key and an enrollment; cert in NAME.pem.
enroll() {
	local name=$1 pw
	shift
	pw=$(challenge)
	run_pki "$WORK/pki/$name.key" --gen --type rsa --size 2048 --outform pem
	[ "$pki_rc" = 0 ] || fail "pki --gen exit $pki_rc"
	run_pki "$WORK/pki/$name.pem" --scep --url "$URL" --in "$WORK/pki/$name.key" \
		--dn "C=US, O=Test, CN=pki $name" --password "$pw" \
		--cacert-enc "$ra_enc" --cacert-sig "$ra_sig" --cacert "$WORK/pki/ca.pem" \
		--outform pem --interval 2 --maxpolltime 20 "$@"
	[ "$pki_rc" = 0 ] || fail "pki --scep ($name) exit $pki_rc: $(grep -v 'failed to load\|could not load' "$WORK/pki/$name.pem.err" | tail -n 1)"
	grep -q "Issued certificate" "$WORK/pki/$name.pem.err" || fail "pki did not report an issued certificate"
	verify_cert "$WORK/pki/$name.pem"
	openssl x509 -in "$WORK/pki/$name.pem" -noout -subject | grep -q "CN = pki $name" ||
		fail "issued subject: $(openssl x509 -in "$WORK/pki/$name.pem" -noout -subject)"
}

check "pki --scep with the legacy choices --cipher des3 --digest sha1"
enroll legacy --cipher des3 --digest sha1

check "pki --scep with its defaults (AES, SHA-256; needs SHA-384 in GetCACaps, see above)"
enroll client

check "pki --scep --rsa-padding pss: the pkiMessage and the CSR signed with RSASSA-PSS (RFC 4056)"
enroll pss --rsa-padding pss

check "README.md's strongSwan example runs as written (its URL pointed here)"
readme="$WORK/pki/readme"
mkdir -p "$readme"
sed -n '/^# strongSwan/,/^$/p' "$SRC_DIR/README.md" | sed "s|http://127.0.0.1:8080|$BASE|g" > "$readme/example.sh"
grep -q -- '--scepca' "$readme/example.sh" || fail "README.md has no strongSwan example (# strongSwan ... pki --scepca)"
sed 's/^/   | /' "$readme/example.sh"
PW=$(challenge)
(cd "$readme" && PW=$PW bash -e example.sh) > "$readme/out" 2>&1 ||
	{ grep -v "failed to load\|could not load" "$readme/out" | tail -n 5; fail "README.md's strongSwan example failed"; }
verify_cert "$readme/cert.pem"
for f in raCert raCert-2; do
	echo "   $f.der: $(openssl x509 -inform DER -in "$readme/$f.der" -noout -ext keyUsage | tail -n +2 | xargs)"
done

pass "strongSwan pki: --scepca and --scep (AES/SHA-256, 3DES/SHA-1, RSASSA-PSS) enroll and verify; so does README.md's example"
