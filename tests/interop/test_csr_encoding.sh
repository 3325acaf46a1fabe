#!/usr/bin/env bash
# What the CA signs is DER (RFC 5280) whatever encoding the request used:
# a subject read from BER (an indefinite length, a length in long form) is
# written anew in the certificate, which strict readers (Python's
# cryptography, Go) then accept; a subject value that is no string (a
# SEQUENCE as CN) is refused with a reason naming it.
. "$(dirname "$0")/lib.sh"
interop_init csr_encoding
server_start
fetch_ca_chain

# forge MODE: a CSR from tests/tools/csr_forge.py sent to the CA as the RA
# would; its subject in $subj, the CA's answer in $WORK/MODE.out, its
# exit status in rc, the certificate in $WORK/MODE.pem.
forge() {
	subj=$(python3 "$SRC_DIR/tests/tools/csr_forge.py" "$1" "$WORK/$1") || fail "csr_forge.py $1"
	rc=0
	"$BUILD_DIR/tests/ca_sign" --endpoint "ipc://$DATA/run/ca.sock" --csr "$WORK/$1.csr" \
		--txid "tx-$1-$RANDOM" --out "$WORK/$1.pem" > "$WORK/$1.out" 2>&1 || rc=$?
}

# strict_subject PEM SUBJECT: the certificate read by a strict DER reader,
# its subject SUBJECT and encoded as DER encodes it.
strict_subject() {
	python3 - "$1" "$2" <<'PY'
import sys
from cryptography import x509
cert = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
want = sys.argv[2].lstrip("/").split("=", 1)[1]
cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
again = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]).public_bytes()
if cn != want or cert.subject.public_bytes() != again:
    sys.exit("subject %r (%s), want CN=%s as DER" % (cn, cert.subject.public_bytes().hex(), want))
PY
}

for mode in long-length indefinite; do
	check "a subject written in BER ($mode) is issued, written in DER"
	forge "$mode"
	[ $rc = 0 ] || { cat "$WORK/$mode.out"; fail "$mode: exit $rc, want 0"; }
	# the request really is not DER: a strict reader refuses it
	python3 -c 'import sys; from cryptography import x509; x509.load_pem_x509_csr(open(sys.argv[1], "rb").read()).subject' \
		"$WORK/$mode.csr" 2> /dev/null && fail "$mode: the forged request is DER after all (the check proves nothing)"
	strict_subject "$WORK/$mode.pem" "$subj" || fail "$mode: the certificate's subject is not DER"
	openssl verify -CAfile "$CA_PEM" "$WORK/$mode.pem" > /dev/null || fail "$mode: the certificate does not verify"
	echo "   $subj: issued, its subject DER"
done

check "a subject whose CN is a SEQUENCE, not a string, is refused, the reason naming it"
forge cn-sequence
[ $rc = 2 ] && grep -q "the subject's CN is a SEQUENCE, not a string" "$WORK/cn-sequence.out" ||
	{ cat "$WORK/cn-sequence.out"; fail "a CN that is a SEQUENCE: exit $rc, want 2 naming it"; }
sed 's/^/   /' "$WORK/cn-sequence.out"

pass "BER subjects issued as DER, a CN that is no string refused"
