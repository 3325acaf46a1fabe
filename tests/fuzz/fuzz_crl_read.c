/*
 * libFuzzer target: a CRL as scepctl import-crl reads the operator's file
 * (another CA software's CRL, or one fetched from a distribution point):
 * crl_read (DER or PEM), crl_signed_by against the CA of the corpus's CRLs
 * (crl-ca.pem, whose key `openssl ca` signed them with), crl_entries.
 *
 * Checked: every entry taken has a serial of 1 to 40 upper-case hex
 * digits, not zero, that reads back as the entry's own serial, a
 * revocation date after 1970 (what the CA takes: one refused there would
 * stop an import halfway) and not after the date scepctl checks against
 * its clock (`newest`), and a reason the CA knows (never removeFromCRL);
 * a CRL refused says why.
 */
#include "../../tools/scepctl/crl_read.c"

#include <stdint.h>

#include <openssl/bn.h>

#ifndef CRL_CA
#error "CRL_CA: tests/fuzz/crl-ca.pem (tests/CMakeLists.txt)"
#endif

static X509 *fuzz_ca;

static void
check_entries(X509_CRL *crl, const struct crl_entries *e)
{
	STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);

	if ((int)e->n != (revoked ? sk_X509_REVOKED_num(revoked) : 0))
		abort();
	for (size_t i = 0; i < e->n; i++) {
		const struct crl_entry *x = &e->entry[i];
		const ASN1_INTEGER *sn = X509_REVOKED_get0_serialNumber(
		    sk_X509_REVOKED_value(revoked, (int)i));
		size_t len = strlen(x->serial);
		BIGNUM *bn = NULL, *want = ASN1_INTEGER_to_BN(sn, NULL);

		if (len < 1 || len > 40 ||
		    strspn(x->serial, "0123456789ABCDEF") != len ||
		    BN_hex2bn(&bn, x->serial) != (int)len || want == NULL ||
		    BN_cmp(bn, want) != 0 || BN_is_zero(bn) ||
		    x->revoked_at <= 0 || x->revoked_at > e->newest ||
		    x->reason == NULL ||
		    strcmp(x->reason, "removeFromCRL") == 0)
			abort();
		BN_free(bn);
		BN_free(want);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crl_entries e;
	X509_CRL *crl;
	char err[256] = "";

	if (fuzz_ca == NULL) {
		char why[256];

		if ((fuzz_ca = pki_load_cert(CRL_CA, why, sizeof(why))) ==
		    NULL) {
			fprintf(stderr, "fuzz_crl_read: %s\n", why);
			abort();
		}
	}
	if ((crl = crl_read(data, size, err, sizeof(err))) == NULL) {
		if (err[0] == '\0')
			abort();
		return 0;
	}
	err[0] = '\0';
	if (crl_signed_by(crl, fuzz_ca, err, sizeof(err)) != 0 &&
	    err[0] == '\0')
		abort();
	err[0] = '\0';
	if (crl_entries(crl, &e, err, sizeof(err)) == 0) {
		check_entries(crl, &e);
		crl_entries_free(&e);
	} else if (err[0] == '\0' || e.entry != NULL || e.n != 0)
		abort();
	X509_CRL_free(crl);
	return 0;
}
