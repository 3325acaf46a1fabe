/*
 * The request policy, applied to the CSR bytes as the RA forwarded them:
 * readable, self-signature valid, an accepted key, a subject, no
 * subjectAltName (no template allows SANs yet).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"

static int ca_refuse(struct ca_refusal *refusal, int fail_info, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static int
ca_refuse(struct ca_refusal *refusal, int fail_info, const char *fmt, ...)
{
	va_list ap;

	refusal->fail_info = fail_info;
	va_start(ap, fmt);
	vsnprintf(refusal->why, sizeof(refusal->why), fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return -1;
}

/* RSA of at least MinRSABits; EC on P-256 or P-384; nothing else. */
static int
ca_csr_check_key(const struct ca *ca, EVP_PKEY *key, struct ca_refusal *r)
{
	char group[80];
	int bits, nid;

	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(key);
		if (bits < ca->settings.min_rsa_bits)
			return ca_refuse(r,
			    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
			    "RSA key of %d bits is below MinRSABits = %ld in "
			    "[ca]",
			    bits, ca->settings.min_rsa_bits);
		return 0;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) !=
		    1)
			return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
			    "EC key without a named curve is not accepted "
			    "(P-256 or P-384)");
		nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1)
			return 0;
		return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
		    "EC curve %s is not accepted (P-256 or P-384)", group);
	default:
		return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
		    "%s keys are not accepted (RSA, EC P-256 or P-384)",
		    EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key)
		                                 : "these");
	}
}

/* A subjectAltName in the extensionRequest (PKCS#9 or Microsoft's). */
static int
ca_csr_check_extensions(X509_REQ *req, struct ca_refusal *r)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	int san, rc = -1;

	if (exts == NULL) {
		if (X509_REQ_get_attr_by_NID(req, NID_ext_req, -1) >= 0 ||
		    X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, -1) >= 0)
			return ca_refuse(r,
			    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
			    "the request's extensionRequest cannot be read");
		ERR_clear_error();
		return 0;
	}
	san = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);
	if (san >= 0) {
		ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    "subjectAltName in the request is refused: no template "
		    "allows SANs (see the template SAN policy)");
		goto out;
	}
	rc = 0;
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return rc;
}

int
ca_csr_check(const struct ca *ca, const uint8_t *der, size_t len,
    X509_REQ **out, struct ca_refusal *refusal)
{
	const unsigned char *p = der;
	X509_REQ *req = NULL;
	EVP_PKEY *key;
	int rc = -1;

	*out = NULL;
	if (len == 0 || len > LONG_MAX ||
	    (req = d2i_X509_REQ(NULL, &p, (long)len)) == NULL ||
	    p != der + len) {
		ca_refuse(refusal, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    "the CSR is not a readable PKCS#10 request");
		goto out;
	}
	if ((key = X509_REQ_get0_pubkey(req)) == NULL) {
		ca_refuse(refusal, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
		    "the CSR's public key cannot be read");
		goto out;
	}
	/* The key first: no signature work for keys we refuse anyway. */
	if (ca_csr_check_key(ca, key, refusal) != 0)
		goto out;
	if (X509_REQ_verify(req, key) != 1) {
		ca_refuse(refusal, SCEP__V1__FAIL_INFO__FAIL_BAD_MESSAGE_CHECK,
		    "the CSR's signature does not verify with its key");
		goto out;
	}
	if (X509_NAME_entry_count(X509_REQ_get_subject_name(req)) == 0) {
		ca_refuse(refusal, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    "the CSR has an empty subject");
		goto out;
	}
	if (ca_csr_check_extensions(req, refusal) != 0)
		goto out;
	*out = req;
	req = NULL;
	rc = 0;
out:
	X509_REQ_free(req);
	ERR_clear_error();
	return rc;
}
