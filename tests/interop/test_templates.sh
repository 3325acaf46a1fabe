#!/usr/bin/env bash
# Certificate templates in the CA: NDES's choice among SignatureTemplate,
# EncryptionTemplate and GeneralPurposeTemplate by the key usage a CSR asks
# for; key usage, EKU and validity from the template; key types and sizes;
# the SAN policy per template (refused by default, listed patterns allowed,
# a URI pattern's wildcard for a host kept in the host, userPrincipalName
# never by default); the subject order kept, or a fixed
# subject with the request's CN; a lint of every certificate; and clear
# configuration errors. CSRs go to the CA directly (tests/tools/ca_sign),
# and through SCEP with the iOS-like client.
. "$(dirname "$0")/lib.sh"
interop_init templates
CA_SIGN="$BUILD_DIR/tests/ca_sign"
server_start
fetch_ca_chain
server_stop

conf="$DATA/scepd.conf"
set_conf ca SignatureTemplate Signing
set_conf ca EncryptionTemplate Encrypting
set_conf ca GeneralPurposeTemplate Devices
cat >> "$conf" <<'EOF'

[template.Signing]
KeyUsage = digitalSignature
ExtendedKeyUsage = clientAuth
ValidityDays = 30

[template.Encrypting]
KeyUsage = keyEncipherment
ExtendedKeyUsage = emailProtection
Subject = O=Fixed Corp,OU=Devices

[template.Devices]
KeyUsage = digitalSignature,keyEncipherment
; OpenSSL's long names, as openssl x509 -text prints them
ExtendedKeyUsage = TLS Web Server Authentication, TLS Web Client Authentication
EOF
# AllowedSANs in a line of 198 characters, which the INI reader takes
# whole (199 with its newline): the CA refused it once, writing the
# section out again with spaces around "=" and reading that.
sans="AllowedSANs=DNS:*.devices.example.com email:*@example.com"
sans="$sans URI:https://*.example.com/* URI:ftp://*@files.example.com/* URI:https://q.example.com\?d=*"
sans="$sans IP:2001:db8::*"
i=0
while [ $((${#sans} + 23 + 20)) -le 198 ]; do
	i=$((i + 1))
	sans="$sans DNS:*.pad$i.example.com"
done
fill=$((198 - ${#sans} - 19))
sans="$sans DNS:*.$(head -c "$fill" /dev/zero | tr '\0' x).example.com"
[ ${#sans} = 198 ] || fail "the AllowedSANs line is ${#sans} characters, want 198"
echo "$sans" >> "$conf"

check "an unknown template or key usage stops the CA at start with the reason"
cp "$conf" "$WORK/good.conf"
# ca_refuses_start PATTERN WHAT: scepd-ca with $conf stops at start (exit
# 1) saying PATTERN; $conf is put back as it was.
ca_refuses_start() {
	rc=0
	timeout -s KILL 20 "$BUILD_DIR/scepd-ca" --config "$conf" > "$WORK/ca.out" 2>&1 || rc=$?
	cp "$WORK/good.conf" "$conf"
	[ $rc = 1 ] && grep -q "$1" "$WORK/ca.out" ||
		{ cat "$WORK/ca.out"; fail "$2 did not stop the CA at start with the reason (exit $rc)"; }
}
set_conf ca SignatureTemplate Nope
ca_refuses_start "SignatureTemplate = Nope: no such template" "SignatureTemplate = Nope"
# A KeyUsage OpenSSL does not know, a CA's usages in a certificate of
# CA:FALSE (RFC 5280 4.2.1.3), a MinRSABits no key could meet (keys over
# 8192 bits are refused anyway).
for bad in "KeyUsage = flying|KeyUsage = flying" \
	"KeyUsage = digitalSignature,keyCertSign|keyCertSign is a CA's (RFC 5280 4.2.1.3)" \
	"KeyUsage = Digital Signature, CRL Sign|cRLSign is a CA's (RFC 5280 4.2.1.3)" \
	"MinRSABits = 9000|MinRSABits"; do
	sed -i "s/^KeyUsage = keyEncipherment$/${bad%%|*}/" "$conf"
	ca_refuses_start "\[template.Encrypting\] .*${bad#*|}" "${bad%%|*} in a template"
done
# OCSPSigning makes every device an OCSP responder of this CA: said.
sed -i "s/^ExtendedKeyUsage = emailProtection$/ExtendedKeyUsage = emailProtection,OCSPSigning/" "$conf"
timeout -s TERM 4 "$BUILD_DIR/scepd-ca" --config "$conf" > "$WORK/ca.out" 2>&1 || true
grep -q "warn: \[template.Encrypting\] ExtendedKeyUsage = emailProtection,OCSPSigning: every device enrolling under it becomes an OCSP responder for this CA" "$WORK/ca.out" ||
	{ cat "$WORK/ca.out"; fail "OCSPSigning in a template is not logged at start"; }
cp "$WORK/good.conf" "$conf"
# libinih keeps 48 characters of a section name: a longer [template.NAME]
# would silently be another template. Every service refuses it at start.
long_name=$(printf 'T%.0s' $(seq 1 60))
printf '\n[template.%s]\nKeyUsage = digitalSignature\n' "$long_name" >> "$conf"
ca_refuses_start "\[template.TTTT*\.\.\.\]: section names of 49 characters or more are cut by the INI reader" \
	"a template name of 60 characters"
server_start
CA_EP="ipc://$DATA/run/ca.sock"

# csr NAME SUBJECT KEYSPEC [openssl req -addext ...]: $WORK/NAME.csr
csr() {
	local name=$1 subj=$2 keyspec=$3
	shift 3
	case "$keyspec" in
	rsa:*) openssl genrsa -out "$WORK/$name.key" "${keyspec#rsa:}" 2>/dev/null ;;
	ec:*) openssl ecparam -name "${keyspec#ec:}" -genkey -noout -out "$WORK/$name.key" 2>/dev/null ;;
	esac
	openssl req -new -key "$WORK/$name.key" -subj "$subj" "$@" -out "$WORK/$name.csr" 2>/dev/null ||
		fail "openssl req for $name"
}

# issue NAME: the CA signs $WORK/NAME.csr into $WORK/NAME.pem
issue() {
	"$CA_SIGN" --endpoint "$CA_EP" --csr "$WORK/$1.csr" --txid "tx-$1" --out "$WORK/$1.pem" > "$WORK/$1.out" 2>&1 ||
		{ cat "$WORK/$1.out"; fail "$1 was not issued"; }
	openssl x509 -in "$WORK/$1.pem" -noout -text > "$WORK/$1.txt"
}

# refused NAME FAILINFO TEXT: the CA refuses with that failInfo and reason
refused() {
	local rc=0
	"$CA_SIGN" --endpoint "$CA_EP" --csr "$WORK/$1.csr" --txid "tx-$1" > "$WORK/$1.out" 2>&1 || rc=$?
	[ $rc = 2 ] || { cat "$WORK/$1.out"; fail "$1: exit $rc, want 2 (refused)"; }
	grep -q "failInfo: $2" "$WORK/$1.out" || { cat "$WORK/$1.out"; fail "$1: not failInfo $2"; }
	grep -q -- "$3" "$WORK/$1.out" || { cat "$WORK/$1.out"; fail "$1: the reason does not say '$3'"; }
	echo "   ok: $1 refused ($2): $(sed -n 's/^reason: //p' "$WORK/$1.out")"
}

# lint NAME: what every end-entity certificate must carry
lint() {
	local t="$WORK/$1.txt"
	grep -A1 "X509v3 Basic Constraints: critical" "$t" | grep -q "CA:FALSE" || fail "$1: no critical CA:FALSE"
	grep -q "X509v3 Subject Key Identifier" "$t" || fail "$1: no SKI"
	grep -q "X509v3 Authority Key Identifier" "$t" || fail "$1: no AKI"
	grep -q "X509v3 Key Usage: critical" "$t" || fail "$1: key usage not critical"
	grep -q "Signature Algorithm: sha256WithRSAEncryption" "$t" || fail "$1: not signed with SHA-256"
	openssl verify -CAfile "$CA_PEM" "$WORK/$1.pem" >/dev/null || fail "$1 does not verify"
}

# usages NAME: "KU | EKU" as openssl prints them
usages() {
	local ku eku
	ku=$(grep -A1 "X509v3 Key Usage" "$WORK/$1.txt" | tail -1 | sed 's/^ *//')
	eku=$(grep -A1 "X509v3 Extended Key Usage" "$WORK/$1.txt" | tail -1 | sed 's/^ *//')
	echo "$ku | $eku"
}

check "key usage 1 (digitalSignature) -> SignatureTemplate: its usages and 30 days"
csr sig "/CN=signer" rsa:2048 -addext "keyUsage=critical,digitalSignature"
issue sig
lint sig
[ "$(usages sig)" = "Digital Signature | TLS Web Client Authentication" ] || fail "sig: $(usages sig)"
days=$(( ($(date -d "$(openssl x509 -in "$WORK/sig.pem" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
[ "$days" -ge 29 ] && [ "$days" -le 30 ] || fail "Signing template: valid $days days, want 30"

check "key usage 4 (keyEncipherment) -> EncryptionTemplate, fixed subject with the request's CN"
csr enc "/O=Asked Corp/CN=encrypter" rsa:2048 -addext "keyUsage=critical,keyEncipherment"
issue enc
lint enc
[ "$(usages enc)" = "Key Encipherment | E-mail Protection" ] || fail "enc: $(usages enc)"
subj=$(openssl x509 -in "$WORK/enc.pem" -noout -subject -nameopt oneline)
[ "$subj" = "subject=O = Fixed Corp, OU = Devices, CN = encrypter" ] || fail "fixed subject: $subj"

check "key usage 5 (both) and no key usage -> GeneralPurposeTemplate; the request's usages are ignored"
csr both "/CN=both" rsa:2048 -addext "keyUsage=critical,digitalSignature,keyEncipherment"
issue both
lint both
[ "$(usages both)" = "Digital Signature, Key Encipherment | TLS Web Server Authentication, TLS Web Client Authentication" ] ||
	fail "both: $(usages both)"
csr none "/CN=none" rsa:2048 -addext "extendedKeyUsage=codeSigning"
issue none
[ "$(usages none)" = "Digital Signature, Key Encipherment | TLS Web Server Authentication, TLS Web Client Authentication" ] ||
	fail "no key usage asked, or codeSigning asked: $(usages none)"

check "Apple's subject order is kept exactly"
csr apple "/O=Fabrikam/OU=IT/CN=Robs IPad" rsa:2048
issue apple
subj=$(openssl x509 -in "$WORK/apple.pem" -noout -subject -nameopt oneline)
[ "$subj" = "subject=O = Fabrikam, OU = IT, CN = Robs IPad" ] || fail "subject order: $subj"

check "key types: RSA 1024 refused, EC P-256 issued without keyEncipherment, P-521 refused"
csr rsa1024 "/CN=weak" rsa:1024
refused rsa1024 badRequest "below MinRSABits"
csr ec256 "/CN=ec device" ec:prime256v1
issue ec256
openssl verify -CAfile "$CA_PEM" "$WORK/ec256.pem" >/dev/null || fail "ec256 does not verify"
[ "$(usages ec256)" = "Digital Signature | TLS Web Server Authentication, TLS Web Client Authentication" ] ||
	fail "EC certificate usages: $(usages ec256) (keyEncipherment is not for EC keys)"
csr ec521 "/CN=ec521" ec:secp521r1
refused ec521 badAlg "ECCurves"
# P-256 written out as explicit parameters: OpenSSL names the curve, but
# the certificate would carry them as written (it was a 503, for ever).
openssl ecparam -name prime256v1 -param_enc explicit -genkey -noout -out "$WORK/ec_explicit.key" 2> /dev/null &&
	openssl req -new -key "$WORK/ec_explicit.key" -subj "/CN=ec explicit" -out "$WORK/ec_explicit.csr" 2> /dev/null ||
	fail "openssl: an EC key with explicit parameters"
refused ec_explicit badAlg "EC key without a named curve"
# keyEncipherment only (EncryptionTemplate = Encrypting): nothing an EC key
# can do; the device is told to use RSA (it was the CA's internal error)
csr ec_enc "/CN=ec encrypter" ec:prime256v1 -addext "keyUsage=critical,keyEncipherment"
refused ec_enc badAlg "an EC key cannot do what template Encrypting is for"

check "SAN policy: allowed patterns issued, others refused with the rule, UPN never by default"
csr san_ok "/CN=printer" rsa:2048 -addext "subjectAltName=DNS:printer.devices.example.com,email:ops@example.com"
issue san_ok
lint san_ok
grep -q "DNS:printer.devices.example.com, email:ops@example.com" "$WORK/san_ok.txt" ||
	fail "the allowed SANs are not in the certificate"
csr san_bad "/CN=printer" rsa:2048 -addext "subjectAltName=DNS:www.evil.example.net"
refused san_bad badRequest "AllowedSANs"
# IPv6 as operators and OpenSSL write it (RFC 5952, "::"): the pattern
# IP:2001:db8::* matched no name, each read as 2001:db8:0:0:0:0:0:5.
csr san_ip6 "/CN=printer" rsa:2048 -addext "subjectAltName=IP:2001:db8::5"
issue san_ip6
grep -q "IP Address:2001:DB8:0:0:0:0:0:5" "$WORK/san_ip6.txt" || fail "the IPv6 SAN is not in the certificate"
csr san_ip6_bad "/CN=printer" rsa:2048 -addext "subjectAltName=IP:2001:db9::5"
refused san_ip6_bad badRequest "subjectAltName IP:2001:db9::5 is refused"
# A name, not a pattern: under DNS:*.devices.example.com the value
# "*.devices.example.com" would be a wildcard certificate for every device.
csr san_wild "/CN=printer" rsa:2048 -addext "subjectAltName=DNS:*.devices.example.com"
refused san_wild badRequest "subjectAltName DNS:\*.devices.example.com is a pattern, not a name"
csr san_two_at "/CN=printer" rsa:2048 -addext "subjectAltName=email:a@b@example.com"
refused san_two_at badRequest "subjectAltName email:a@b@example.com is a pattern, not a name"
csr san_upn "/CN=helpdesk" rsa:2048 -addext "subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:administrator@corp.example.com"
refused san_upn badRequest "UPN:administrator@corp.example.com is refused"
csr san_sig "/CN=signer" rsa:2048 -addext "keyUsage=critical,digitalSignature" -addext "subjectAltName=DNS:a.devices.example.com"
refused san_sig badRequest "refused by template Signing"
csr san_dir "/CN=dir" rsa:2048 -addext "subjectAltName=dirName:dir_sect" -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n[dir_sect]\nCN=x\n')
refused san_dir badRequest "of a kind no template allows"

check "a CN that is a host name passes AllowedSANs as a DNS SAN would, under a template serving TLS"
# Without a DNS SAN, TLS clients (OpenSSL's X509_check_host, Java, many
# embedded stacks) take the CN as the host name: CN=mail.corp.example.com
# was a server certificate for that host under Devices (serverAuth), whose
# AllowedSANs allows no such DNS name.
csr cn_host_ok "/CN=printer.devices.example.com" rsa:2048
issue cn_host_ok
csr cn_host_bad "/O=Fabrikam/CN=mail.corp.example.com" rsa:2048
refused cn_host_bad badRequest 'CN "mail.corp.example.com" is refused by template Devices'
grep -q "AllowedSANs must allow DNS:mail.corp.example.com" "$WORK/cn_host_bad.out" ||
	{ cat "$WORK/cn_host_bad.out"; fail "the refusal does not say what AllowedSANs must allow"; }
csr cn_wild "/CN=*.devices.example.com" rsa:2048
refused cn_wild badRequest 'CN "\*.devices.example.com" is a pattern, not a name'
# A device's name or a UDID is no host name; under a template whose
# certificates serve no TLS server (Signing: clientAuth) a dotted CN stays.
csr cn_udid "/CN=00008030-001A2D2E3C0B802E" rsa:2048
issue cn_udid
# An IP address is no host name to a TLS client (IP SANs only).
csr cn_ip "/CN=192.0.2.10" rsa:2048
issue cn_ip
# "mail.corp.example.com<NUL>.x": read as a C string, the name before the
# NUL. openssl req cannot write a NUL: the request built with asn1parse
# -genconf and signed with openssl dgst.
openssl genrsa -out "$WORK/cn_nul.key" 2048 2>/dev/null
pub=$(openssl rsa -in "$WORK/cn_nul.key" -RSAPublicKey_out -outform DER 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
cat > "$WORK/cn_nul.cnf" <<EOF
asn1=SEQUENCE:tbs
[tbs]
version=INTEGER:0
subject=SEQUENCE:name
spki=SEQUENCE:spki
attrs=IMPLICIT:0C,SET:empty
[name]
rdn=SET:rdn
[rdn]
cn=SEQUENCE:cn
[cn]
oid=OID:commonName
val=IMPLICIT:12U,FORMAT:HEX,OCTETSTRING:$(printf 'mail.corp.example.com\0.x' | od -An -v -tx1 | tr -d ' \n')
[spki]
alg=SEQUENCE:rsaalg
key=FORMAT:HEX,BITSTRING:$pub
[rsaalg]
oid=OID:rsaEncryption
null=NULL
[empty]
EOF
openssl asn1parse -genconf "$WORK/cn_nul.cnf" -out "$WORK/cn_nul.tbs" -noout &&
	openssl dgst -sha256 -sign "$WORK/cn_nul.key" -out "$WORK/cn_nul.sig" "$WORK/cn_nul.tbs" ||
	fail "cannot build the request with a NUL in its CN"
{
	echo "asn1=SEQUENCE:req"
	echo "[req]"
	echo "tbs=SEQUENCE:tbs"
	echo "alg=SEQUENCE:sigalg"
	echo "sig=FORMAT:HEX,BITSTRING:$(od -An -v -tx1 "$WORK/cn_nul.sig" | tr -d ' \n')"
	echo "[sigalg]"
	echo "oid=OID:sha256WithRSAEncryption"
	echo "null=NULL"
	tail -n +2 "$WORK/cn_nul.cnf"
} > "$WORK/cn_nul.req.cnf"
openssl asn1parse -genconf "$WORK/cn_nul.req.cnf" -out "$WORK/cn_nul.der" -noout &&
	openssl req -inform DER -in "$WORK/cn_nul.der" -verify -out "$WORK/cn_nul.csr" 2>/dev/null ||
	fail "the request with a NUL in its CN does not verify"
refused cn_nul badRequest "the subject's CN holds a NUL byte"
csr cn_client "/CN=laptop.corp.example.com" rsa:2048 -addext "keyUsage=critical,digitalSignature"
issue cn_client

check "a subjectAltName OpenSSL cannot read whole, or a second one, is refused, never copied unchecked"
# der_san NAME... : "DER:" and a SEQUENCE of dNSName [2] of each NAME,
# then the raw hex bytes of $TAIL (another parser may read what OpenSSL
# skips or fails on: a Go client reads the DNS names before a bad tag)
der_san() {
	TAIL=${TAIL:-} python3 -c '
import os, sys
tlv = lambda t, b: bytes([t, len(b)]) + b
seq = tlv(0x30, b"".join(tlv(0x82, n.encode()) for n in sys.argv[1:]) + bytes.fromhex(os.environ["TAIL"]))
print("DER:" + seq.hex(":"))' "$@"
}
# an unreadable registeredID [8] after an outside name
csr san_unreadable "/CN=printer" rsa:2048 -addext "subjectAltName=$(TAIL=880180 der_san victim.example.com)"
refused san_unreadable badRequest "subjectAltName cannot be read"
# a tag no GeneralName has [9]
csr san_tag9 "/CN=printer" rsa:2048 -addext "subjectAltName=$(TAIL=890100 der_san victim.example.com)"
refused san_tag9 badRequest "subjectAltName cannot be read"
# an allowed name, then bytes after the SEQUENCE
san_ok_der=$(der_san printer.devices.example.com)
csr san_trailing "/CN=printer" rsa:2048 -addext "subjectAltName=$san_ok_der:$(der_san victim.example.com | cut -c5-)"
refused san_trailing badRequest "subjectAltName cannot be read"
# an allowed one, and a second extension with an outside name
csr san_twice "/CN=printer" rsa:2048 -addext "subjectAltName=DNS:printer.devices.example.com" \
	-addext "2.5.29.17=$(der_san victim.example.com)"
refused san_twice badRequest "comes twice"
# the same allowed name as DER, marked critical: issued with its name, not
# critical (RFC 5280 4.2.1.6: the subject is not empty; a relying party that
# cannot read one name kind would refuse the whole certificate)
csr san_crit "/CN=printer" rsa:2048 -addext "subjectAltName=critical,$san_ok_der"
issue san_crit
grep -A1 "X509v3 Subject Alternative Name: *$" "$WORK/san_crit.txt" | grep -q "DNS:printer.devices.example.com$" ||
	{ cat "$WORK/san_crit.txt"; fail "a SAN asked critical was not issued, non-critical, with its name"; }

check "URI patterns: a host's wildcard stays in the host (not a path, query, fragment, port or userinfo)"
# Under URI:https://*.example.com/* and URI:ftp://*@files.example.com/*
# ('\#': openssl's -addext reads '#' as a comment)
csr uri_ok "/CN=uri" ec:prime256v1 -addext "subjectAltName=URI:https://mdm.example.com/devices/42,URI:https://a.b.example.com/x/y?id=1\#f,URI:ftp://ops@files.example.com/in/"
issue uri_ok
grep -A1 "X509v3 Subject Alternative Name: *$" "$WORK/uri_ok.txt" |
	grep -q "URI:https://mdm.example.com/devices/42, URI:https://a.b.example.com/x/y?id=1#f, URI:ftp://ops@files.example.com/in/$" ||
	{ cat "$WORK/uri_ok.txt"; fail "the allowed URIs are not in the certificate"; }
# of host evil.net (or one a URI parser may take as evil.net), and a
# userinfo the ftp pattern asks for missing
n=0
for uri in "https://evil.net/.example.com/" "https://evil.net?.example.com/" \
	"https://evil.net\#.example.com/" "https://evil.net:.example.com/" \
	"https://evil.net%2f.example.com/" "https://evil.net@a.example.com/" \
	"ftp://ops@evil.net@files.example.com/in/" "ftp://files.example.com/in/"; do
	n=$((n + 1))
	csr "uri_bad$n" "/CN=uri" ec:prime256v1 -addext "subjectAltName=URI:$uri"
	refused "uri_bad$n" badRequest "AllowedSANs"
done
# A query right after the host, as a pattern writes it with '\?'
# (URI:https://q.example.com\?d=*): allowed; another host refused.
csr uri_query "/CN=uri" ec:prime256v1 -addext "subjectAltName=URI:https://q.example.com?d=7"
issue uri_query
csr uri_query_bad "/CN=uri" ec:prime256v1 -addext "subjectAltName=URI:https://evil.net?q.example.com?d=7"
refused uri_query_bad badRequest "AllowedSANs"

check "through SCEP: the iOS-like client's Key Usage and SubjectAltName reach the templates"
pw=$(challenge)
ios_enroll "$pw" "O=Fabrikam,CN=ios signer" "$WORK/ios1.pem" "$URL" --key-usage 1 >/dev/null ||
	fail "iOS-like client with Key Usage 1"
openssl x509 -in "$WORK/ios1.pem" -noout -text > "$WORK/ios1.txt"
[ "$(usages ios1)" = "Digital Signature | TLS Web Client Authentication" ] || fail "ios1: $(usages ios1)"
pw=$(challenge)
rc=0
ios_enroll "$pw" "CN=ios san" "$WORK/ios2.pem" "$URL" --san "DNS:laptop.evil.example.net" >/dev/null || rc=$?
[ $rc = 2 ] || fail "a refused SAN through SCEP: exit $rc, want 2 (FAILURE)"
grep -q "AllowedSANs" "$WORK/ios2.pem.log" || fail "the device's failInfoText does not name AllowedSANs"
pw=$(challenge)
ios_enroll "$pw" "CN=ios san ok" "$WORK/ios3.pem" "$URL" --san "DNS:laptop.devices.example.com" >/dev/null ||
	fail "an allowed SAN through SCEP was refused"
openssl x509 -in "$WORK/ios3.pem" -noout -ext subjectAltName | grep -q "DNS:laptop.devices.example.com" ||
	fail "the allowed SAN is not in the SCEP-issued certificate"
# A second extensionRequest attribute: OpenSSL reads the first only, so the
# outside name in the second would be judged by no one (a policy plugin
# reading the CSR, another CA, may take it): refused.
pw=$(challenge)
rc=0
ios_enroll "$pw" "CN=ios two" "$WORK/ios4.pem" "$URL" --san "DNS:laptop.devices.example.com" \
	--second-ext-req-san "DNS:victim.example.net" >/dev/null || rc=$?
[ $rc = 2 ] || fail "two extensionRequest attributes: exit $rc, want 2 (FAILURE)"
grep -q "more than one extensionRequest" "$WORK/ios4.pem.log" ||
	{ cat "$WORK/ios4.pem.log"; fail "the device is not told why (two extensionRequests)"; }
# An email name with a byte that is not ASCII (an IA5String holds none)
# matched email:*@example.com and was issued, and the ledger, whose JSON
# takes UTF-8 only, listed the certificate without it: refused, and the
# refusal recorded.
pw=$(challenge)
rc=0
ios_enroll "$pw" "CN=ios latin1" "$WORK/ios5.pem" "$URL" --san $'email:a\xffb@example.com' >/dev/null || rc=$?
[ $rc = 2 ] && grep -q "subjectAltName email holds bytes such a name may not" "$WORK/ios5.pem.log" ||
	{ cat "$WORK/ios5.pem.log"; fail "an email name that is not ASCII: exit $rc, want 2 (FAILURE naming why)"; }

check "the ledger: scepctl list, list --refused and show SERIAL"
"$SCEPCTL" --data-dir "$DATA" list --json > "$WORK/list.json" || fail "scepctl list"
python3 - "$WORK/list.json" <<'PY' || fail "scepctl list does not hold what was issued"
import json, sys
entries = json.load(open(sys.argv[1]))
by_subject = {e["subject"]: e for e in entries}
assert by_subject["CN=signer"]["template"] == "Signing", by_subject["CN=signer"]
assert by_subject["O=Fixed Corp,OU=Devices,CN=encrypter"]["template"] == "Encrypting"
# Two certificates hold CN=printer (san_ok, san_ip6), issued within a
# second or not: the one asked about is found by its transactionID.
p = next(e for e in entries if e["transaction_id"] == "tx-san_ok")
assert p["subject"] == "CN=printer" and p["template"] == "Devices" and p["sans"] == ["DNS:printer.devices.example.com", "email:ops@example.com"], p
assert p["transaction_id"] == "tx-san_ok" and p["client"] == "192.0.2.7", p
assert all(e["status"] == "issued" for e in entries), "a status is not issued"
times = [e["time"] for e in entries]
assert times == sorted(times, reverse=True), "not newest first"
PY
# The newest few of a ledger: issued a second apart, the last two.
for i in 1 2 3; do
	[ $i = 1 ] || sleep 1.1
	ios_enroll "$(challenge)" "CN=newest $i" "$WORK/newest$i.pem" >/dev/null || fail "enrollment newest $i"
done
total=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))) + 3)' "$WORK/list.json")
"$SCEPCTL" --data-dir "$DATA" list --limit 2 > "$WORK/newest.txt" 2> "$WORK/newest.err" || fail "scepctl list --limit 2"
grep -q "CN=newest 3" <(sed -n 1p "$WORK/newest.txt") && grep -q "CN=newest 2" <(sed -n 2p "$WORK/newest.txt") &&
	[ "$(wc -l < "$WORK/newest.txt")" = 2 ] && grep -q "scepctl: 2 of $total shown" "$WORK/newest.err" ||
	{ cat "$WORK/newest.txt" "$WORK/newest.err"; fail "list --limit 2: not the two newest of $total"; }
"$SCEPCTL" --data-dir "$DATA" list --refused --json > "$WORK/refused.json" || fail "scepctl list --refused"
python3 - "$WORK/refused.json" <<'PY' || fail "the refusals are not in the ledger with their reasons"
import json, sys
entries = json.load(open(sys.argv[1]))
by_txid = {e["transaction_id"]: e for e in entries}
r = by_txid["tx-san_bad"]
assert r["status"] == "refused" and "AllowedSANs" in r["reason"], r
assert r["sans"] == ["DNS:www.evil.example.net"] and r["template"] == "Devices", r
assert "below MinRSABits" in by_txid["tx-rsa1024"]["reason"]
assert by_txid["tx-san_upn"]["sans"] == ["UPN:administrator@corp.example.com"]
latin1 = [e for e in entries if e["subject"] == "CN=ios latin1"]
assert len(latin1) == 1 and latin1[0]["sans"] == ["email:(not ASCII)"], latin1
PY
# --limit: the newest of them, read from the end of the time-ordered list
"$SCEPCTL" --data-dir "$DATA" list --refused --limit 2 --json > "$WORK/refused2.json" 2> "$WORK/refused2.err" ||
	fail "scepctl list --refused --limit 2"
python3 - "$WORK/refused.json" "$WORK/refused2.json" <<'PY' || fail "list --refused --limit 2 is not the two newest"
import json, sys
every, two = (json.load(open(f)) for f in sys.argv[1:])
assert len(every) > 2 and two == every[:2], (two, every[:3])
PY
# With --json too: a script reading the newest two knows there are more.
grep -q "scepctl: 2 of $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/refused.json") shown" \
	"$WORK/refused2.err" || { cat "$WORK/refused2.err"; fail "list --refused --limit 2 --json does not say how many there are"; }
"$SCEPCTL" --data-dir "$DATA" list --refused --limit 2 > /dev/null 2> "$WORK/refused2.err" ||
	fail "scepctl list --refused --limit 2 (text)"
grep -q "scepctl: 2 of $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/refused.json") shown" \
	"$WORK/refused2.err" || { cat "$WORK/refused2.err"; fail "list --refused --limit 2 does not say how many there are"; }
serial=$(openssl x509 -in "$WORK/san_ok.pem" -noout -serial | cut -d= -f2)
"$SCEPCTL" --data-dir "$DATA" show "$serial" > "$WORK/show.json" || fail "scepctl show $serial"
grep -q '"template": "Devices"' "$WORK/show.json" || { cat "$WORK/show.json"; fail "show: no template"; }
"$SCEPCTL" --data-dir "$DATA" show "$(echo "$serial" | tr A-F a-f)" --pem > "$WORK/show.pem" || fail "show --pem (lower case)"
cmp -s <(openssl x509 -in "$WORK/show.pem" -outform DER) <(openssl x509 -in "$WORK/san_ok.pem" -outform DER) ||
	fail "show --pem is not the issued certificate"
rc=0
"$SCEPCTL" --data-dir "$DATA" show 00112233445566778899AABBCCDDEEFF > /dev/null 2> "$WORK/show.err" || rc=$?
[ $rc = 1 ] && grep -q "no such serial" "$WORK/show.err" || fail "an unknown serial: exit $rc, $(cat "$WORK/show.err")"
"$SCEPCTL" --data-dir "$DATA" list | head -3

check "a transaction retried after its certificate expired: refused, not the expired certificate again"
# A client that keeps its key file (strongSwan's pki, sscep) re-enrolls with
# the same transactionID. The whole server, and the request, 400 days on.
csr expiring "/CN=expiring" rsa:2048
issue expiring
server_stop
at_offset 400d server_start
rc=0
at_offset 400d "$CA_SIGN" --endpoint "$CA_EP" --csr "$WORK/expiring.csr" --txid "tx-expiring" > "$WORK/expired.out" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "failInfo: badRequest" "$WORK/expired.out" &&
	grep -q "of this transactionID has expired: enroll with a new key" "$WORK/expired.out" ||
	{ cat "$WORK/expired.out"; fail "the retry of an expired certificate's transaction: exit $rc"; }
echo "   ok: $(sed -n 's/^reason: //p' "$WORK/expired.out")"

check "refusals kept bounded: a request with 40 SANs and a 3,000-byte subject is recorded with 16 SANs, how many more, and 1 KiB of its subject; RefusalsKept = 10 keeps the newest 10"
# Anyone may send a request the CA refuses (a renewal needs no password):
# one of 1,400 SANs wrote 115 KB to the ledger, and refusals were never
# deleted: a client could fill the ledger until enrollments got 503.
server_stop
set_conf ca RefusalsKept 10
server_start
sans="DNS:n1.evil.example.net"
for i in $(seq 2 40); do sans="$sans,DNS:n$i.evil.example.net"; done
subj=""
for i in $(seq 50); do subj="$subj/OU=unit $i $(head -c 52 /dev/zero | tr '\0' 'u')"; done
csr many_sans "$subj/CN=many" rsa:2048 -addext "subjectAltName=$sans"
refused many_sans badRequest "AllowedSANs"
for i in $(seq 12); do
	"$CA_SIGN" --endpoint "$CA_EP" --csr "$WORK/san_bad.csr" --txid "tx-bounded-$i" > /dev/null 2>&1 && fail "san_bad was issued"
done
"$SCEPCTL" --data-dir "$DATA" list --refused --limit 1000 --json > "$WORK/bounded.json" || fail "scepctl list --refused"
python3 - "$WORK/bounded.json" <<'PY' || fail "the refusals are not bounded"
import json, sys
entries = json.load(open(sys.argv[1]))
assert len(entries) == 10, len(entries)
txids = [e["transaction_id"] for e in entries]
assert txids == ["tx-bounded-%d" % i for i in range(12, 2, -1)], txids
PY
# The clock stepped back an hour: a new refusal is still the newest (its
# key was its time, the oldest, and the trim deleted it at once).
server_stop
at_offset -3600 server_start
"$CA_SIGN" --endpoint "$CA_EP" --csr "$WORK/san_bad.csr" --txid "tx-behind" > /dev/null 2>&1 && fail "san_bad was issued"
"$SCEPCTL" --data-dir "$DATA" list --refused --limit 1 --json > "$WORK/behind.json" || fail "scepctl list --refused"
python3 -c 'import json,sys; e = json.load(open(sys.argv[1])); assert e[0]["transaction_id"] == "tx-behind", e' "$WORK/behind.json" ||
	{ cat "$WORK/behind.json"; fail "a refusal made with the clock an hour back is not kept as the newest"; }
"$SCEPCTL" --data-dir "$DATA" list --refused --limit 100 --json > /dev/null || fail "scepctl list --refused"
server_stop
set_conf ca RefusalsKept 100
server_start
refused many_sans badRequest "AllowedSANs"
"$SCEPCTL" --data-dir "$DATA" list --refused --limit 1 --json > "$WORK/many.json" || fail "scepctl list --refused --limit 1"
python3 - "$WORK/many.json" <<'PY' || { cat "$WORK/many.json"; fail "the refusal of 40 SANs is not recorded bounded"; }
import json, sys
e = json.load(open(sys.argv[1]))[0]
assert e["transaction_id"] == "tx-many_sans", e["transaction_id"]
assert e["sans"][:16] == ["DNS:n%d.evil.example.net" % i for i in range(1, 17)], e["sans"]
assert e["sans"][16:] == ["(24 more)"], e["sans"][16:]
assert 1000 <= len(e["subject"].encode()) <= 1024 + 3 and e["subject"].endswith("..."), len(e["subject"])
PY

check "an emailAddress in the subject passes AllowedSANs as an email SAN would, under a template for mail"
server_stop
set_conf template.Devices ExtendedKeyUsage "serverAuth,clientAuth,E-mail Protection"
server_start
csr mail_ok "/CN=ops/emailAddress=ops@example.com" rsa:2048
issue mail_ok
csr mail_bad "/CN=ops/emailAddress=ceo@evil.example.net" rsa:2048
refused mail_bad badRequest 'emailAddress "ceo@evil.example.net" is refused by template Devices'

check "an EC key revoked for keyCompromise is certified no more, however its point is written (compressed: another SubjectPublicKeyInfo, one key)"
"$SCEPCTL" --data-dir "$DATA" revoke "$(openssl x509 -in "$WORK/ec256.pem" -noout -serial | cut -d= -f2)" \
	--reason keyCompromise 2>/dev/null || fail "revoke ec256"
openssl req -new -key "$WORK/ec256.key" -subj "/CN=ec device again" -out "$WORK/ec256again.csr" 2>/dev/null
refused ec256again badRequest "revoked for keyCompromise"
openssl ec -in "$WORK/ec256.key" -conv_form compressed -out "$WORK/ec256c.key" 2>/dev/null
openssl req -new -key "$WORK/ec256c.key" -subj "/CN=ec device compressed" -out "$WORK/ec256c.csr" 2>/dev/null
openssl req -in "$WORK/ec256c.csr" -noout -text | grep -q "pub:" && ! cmp -s \
	<(openssl req -in "$WORK/ec256c.csr" -noout -pubkey) <(openssl req -in "$WORK/ec256again.csr" -noout -pubkey) ||
	fail "the compressed CSR's key is encoded as the other's: this case tests nothing"
refused ec256c badRequest "revoked for keyCompromise"

pass "templates chosen by key usage, usages from the template, key types (a compromised EC key in either point form refused), SAN policy (in the subject's host-name CN and emailAddress too), subject order, lint, ledger, no expired certificate handed out again, refusals recorded bounded"
