#!/usr/bin/env bash
# Makes the seeds of tests/fuzz/corpus/crl_read (fuzz_crl_read, scepctl
# import-crl's reader) and the CA they name, tests/fuzz/crl-ca.pem: CRLs
# `openssl ca` signs with a P-256 CA key made here and then thrown away,
# as another CA's software would make them:
#   entries.der/.pem  a 20-octet serial (keyCompromise), a short one
#                     without reason, a hold with its instruction, one
#                     superseded
#   empty.der         no entries
#   delta.der         a delta CRL (deltaCRLIndicator)
#   indirect.der      an indirect CRL (issuingDistributionPoint)
#   remove.der        an entry removeFromCRL
#   other-key.der     the same issuer name, another key
# Existing seeds and crl-ca.pem are replaced.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out="$top/tests/fuzz/corpus/crl_read"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
	-subj "/O=scepd fuzz/CN=CRL CA" -keyout "$work/ca.key" -out "$top/tests/fuzz/crl-ca.pem" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
	-subj "/O=scepd fuzz/CN=CRL CA" -keyout "$work/other.key" -out "$work/other.pem" 2>/dev/null

# gencrl NAME INDEX-LINES [CRL-EXTENSIONS] [KEY CERT]: $out/NAME.der
gencrl() {
	"$top/tests/tools/gencrl.sh" "$work/$1.pem" "${4:-$work/ca.key}" "${5:-$top/tests/fuzz/crl-ca.pem}" "$2" "${3:-}"
	openssl crl -in "$work/$1.pem" -outform DER -out "$out/$1.der"
}

r='R\t301231235959Z\t'
entries="${r}240501100000Z,keyCompromise\t7A1B2C3D4E5F60718293A4B5C6D7E8F901234567\tunknown\t/CN=a\n"
entries+="${r}230102030405Z\t1F\tunknown\t/CN=b\n"
entries+="${r}250303030303Z,certificateHold,holdInstructionReject\t2B\tunknown\t/CN=c\n"
entries+="${r}250404040404Z,superseded\t00C0FFEE\tunknown\t/CN=d\n"
gencrl entries "$entries" 'authorityKeyIdentifier = keyid:always'
openssl crl -inform DER -in "$out/entries.der" -out "$out/entries.pem"
gencrl empty ''
gencrl delta "${r}240501100000Z,keyCompromise\t0A\tunknown\t/CN=a\n" '2.5.29.27 = critical,DER:02:02:03:E7'
gencrl indirect "${r}240501100000Z\t0B\tunknown\t/CN=a\n" 'issuingDistributionPoint = critical,@idp\n[idp]\nindirectCRL = TRUE'
gencrl remove "${r}240501100000Z,removeFromCRL\t0C\tunknown\t/CN=a\n"
gencrl other-key "${r}240501100000Z\t0D\tunknown\t/CN=a\n" '' "$work/other.key" "$work/other.pem"
ls "$out"
