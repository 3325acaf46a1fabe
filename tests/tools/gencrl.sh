#!/usr/bin/env bash
# gencrl.sh OUT KEY CERT INDEX-LINES [CRL-EXTENSIONS]: OUT (PEM), a CRL
# `openssl ca -gencrl` signs with KEY (CERT's) from an index of revoked
# certificates as another CA's software keeps it (printf %b: "R\t...\n"
# lines, see openssl-ca(1); @FILE: FILE's lines as they are, for more than
# an argument holds), numbered 4096 (crlnumber 1000, hex), valid 30 days;
# CRL-EXTENSIONS (printf %b) go in its [crl_ext] section. For scepctl
# import-crl's test and fuzz corpus.
set -euo pipefail
out=$1 key=$2 cert=$3 index=$4 exts=${5:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
case $index in
@*) cp "${index#@}" "$dir/index.txt" ;;
*) printf '%b' "$index" > "$dir/index.txt" ;;
esac
echo 1000 > "$dir/crlnumber"
{
	printf '[ca]\ndefault_ca = old\n[old]\ndatabase = %s\ncrlnumber = %s\n' "$dir/index.txt" "$dir/crlnumber"
	printf 'default_md = sha256\ndefault_crl_days = 30\n'
	if [ -n "$exts" ]; then printf 'crl_extensions = crl_ext\n[crl_ext]\n%b\n' "$exts"; fi
} > "$dir/openssl.cnf"
openssl ca -gencrl -config "$dir/openssl.cnf" -keyfile "$key" -cert "$cert" -out "$out" 2> "$dir/err" ||
	{ cat "$dir/err" >&2; exit 1; }
