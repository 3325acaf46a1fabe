/*
 * Building and signing the end-entity certificate. The subject is the
 * request's name as sent (RDN order and string types preserved: Apple sends
 * O=,OU=,CN= and expects it back) or the template's fixed DN with the
 * request's CN; key usage, EKUs and validity are the template's, never the
 * request's; SANs are the request's, each already allowed by the template.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "clock.h"

int
ca_serial_new(unsigned char serial[CA_SERIAL_LEN], char hex[CA_SERIAL_HEX])
{
	/* Positive as a DER INTEGER (top bit clear), and a first byte that
	 * is not zero: DER drops a leading zero byte, and the certificate's
	 * serial would then print ("openssl x509 -serial") shorter than the
	 * 32 digits the ledger, the logs and scepctl show. */
	do {
		if (RAND_bytes(serial, CA_SERIAL_LEN) != 1)
			return -1;
		serial[0] &= 0x7f;
	} while (serial[0] == 0);
	for (int i = 0; i < CA_SERIAL_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02X", serial[i]);
	return 0;
}

static int
ca_add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	int ok;

	if (ext == NULL)
		return -1;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* The authorityKeyIdentifier of what the CA signs, certificates and CRLs
 * alike: its subjectKeyIdentifier, or the SHA-1 of its key (RFC 5280
 * method 1) when it has none. Made once, at start. */
X509_EXTENSION *
ca_akid_ext(X509 *ca_cert)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca_cert);
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	X509_EXTENSION *ext = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (akid == NULL)
		return NULL;
	if (ski != NULL)
		akid->keyid = ASN1_OCTET_STRING_dup(ski);
	else if (X509_pubkey_digest(ca_cert, EVP_sha1(), md, &md_len) == 1 &&
	    (akid->keyid = ASN1_OCTET_STRING_new()) != NULL &&
	    ASN1_OCTET_STRING_set(akid->keyid, md, (int)md_len) != 1) {
		ASN1_OCTET_STRING_free(akid->keyid);
		akid->keyid = NULL;
	}
	if (akid->keyid != NULL)
		ext = X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid);
	AUTHORITY_KEYID_free(akid);
	return ext;
}

/*
 * The request's subject written anew, RDN by RDN (a multi-valued one kept
 * together): a name OpenSSL read keeps the bytes it was read from, BER's
 * indefinite lengths or a length in long form, which X509_NAME_dup and
 * the signature would carry into the certificate (RFC 5280: DER), where
 * strict readers refuse it. Entries added to a new name are written DER.
 */
X509_NAME *
ca_issue_subject_der(const X509_NAME *asked)
{
	X509_NAME *name = X509_NAME_new();
	int set, last = -1;

	for (int i = 0; name != NULL && i < X509_NAME_entry_count(asked); i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(asked, i);

		set = X509_NAME_ENTRY_set(e);
		if (X509_NAME_add_entry(name, e, -1, set == last ? -1 : 0) !=
		    1) {
			X509_NAME_free(name);
			return NULL;
		}
		last = set;
	}
	return name;
}

X509_NAME *
ca_issue_subject(const struct ca_template *t, X509_REQ *req)
{
	const X509_NAME *asked = X509_REQ_get_subject_name(req);
	X509_NAME *name;
	int at = -1;

	if (t->fixed_subject == NULL)
		return ca_issue_subject_der(asked);
	if ((name = X509_NAME_dup(t->fixed_subject)) == NULL)
		return NULL;
	while (
	    (at = X509_NAME_get_index_by_NID(asked, NID_commonName, at)) >= 0)
		if (X509_NAME_add_entry(
		        name, X509_NAME_get_entry(asked, at), -1, 0) != 1) {
			X509_NAME_free(name);
			return NULL;
		}
	return name;
}

/* keyUsage of the template, without keyEncipherment for EC keys (they
 * cannot do key transport: RFC 5480). */
static char *
ca_issue_key_usage(const struct ca_template *t, int ec)
{
	char *out = malloc(strlen(t->s.key_usage) + 16), *copy, *tok;
	char *save = NULL;
	size_t used;

	copy = strdup(t->s.key_usage);
	if (out == NULL || copy == NULL) {
		free(out);
		free(copy);
		return NULL;
	}
	used = (size_t)sprintf(out, "critical");
	for (tok = strtok_r(copy, ", ", &save); tok != NULL;
	     tok = strtok_r(NULL, ", ", &save)) {
		if (strcmp(tok, "critical") == 0 ||
		    (ec && strcmp(tok, "keyEncipherment") == 0))
			continue;
		used += (size_t)sprintf(out + used, ",%s", tok);
	}
	free(copy);
	if (strcmp(out, "critical") == 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* The request's subjectAltNames, encoded anew from the names ca_csr_check
 * read and allowed: never bytes of the request that it did not read. */
static int
ca_issue_copy_sans(X509 *cert, X509_REQ *req)
{
	GENERAL_NAMES *names;
	int rc;

	if (ca_csr_san_names(req, &names) != 0)
		return -1;
	if (names == NULL || sk_GENERAL_NAME_num(names) == 0) {
		/* An empty one asks nothing, and RFC 5280 forbids it. */
		GENERAL_NAMES_free(names);
		return 0;
	}
	/* Not critical whatever the request said: the subject is never
	 * empty (RFC 5280 4.2.1.6), and a critical flag would make relying
	 * parties that do not read some name kind refuse the certificate. */
	rc = X509_add1_ext_i2d(
	         cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1
	    ? 0
	    : -1;
	GENERAL_NAMES_free(names);
	return rc;
}

/*
 * The CSR's SubjectPublicKeyInfo into the certificate as it is (algorithm,
 * parameters, key bits): X509_set_pubkey would re-encode the key through
 * OpenSSL 3.0's encoder set-up, which costs half an RSA 2048 signature. The
 * certificate's key is then not decoded (X509_get0_pubkey gives NULL);
 * what is built here is only encoded and signed.
 */
static int
ca_issue_copy_pubkey(X509 *cert, X509_REQ *req)
{
	X509_PUBKEY *from = X509_REQ_get_X509_PUBKEY(req);
	X509_PUBKEY *to = X509_get_X509_PUBKEY(cert);
	const unsigned char *bits;
	const ASN1_OBJECT *alg;
	const void *param;
	X509_ALGOR *algor;
	ASN1_OBJECT *alg_copy = NULL;
	void *param_copy = NULL;
	unsigned char *bits_copy = NULL;
	int len, ptype;

	if (from == NULL || to == NULL ||
	    !X509_PUBKEY_get0_param(NULL, &bits, &len, &algor, from) ||
	    len <= 0)
		return -1;
	X509_ALGOR_get0(&alg, &ptype, &param, algor);
	switch (ptype) {
	case V_ASN1_UNDEF: /* EdDSA */
	case V_ASN1_NULL: /* RSA */
		break;
	case V_ASN1_OBJECT: /* EC: the named curve */
		if ((param_copy = OBJ_dup(param)) == NULL)
			return -1;
		break;
	default: /* other parameters: ca_csr_key_weighable refused them */
		return -1;
	}
	if ((alg_copy = OBJ_dup(alg)) == NULL ||
	    (bits_copy = OPENSSL_memdup(bits, (size_t)len)) == NULL ||
	    !X509_PUBKEY_set0_param(
	        to, alg_copy, ptype, param_copy, bits_copy, len)) {
		ASN1_OBJECT_free(alg_copy);
		ASN1_OBJECT_free(param_copy);
		OPENSSL_free(bits_copy);
		return -1;
	}
	return 0;
}

X509 *
ca_issue_build(const struct ca *ca, const struct ca_template *tpl,
    X509_REQ *req, const unsigned char serial[CA_SERIAL_LEN], time_t now,
    const char **why)
{
	EVP_PKEY *key = X509_REQ_get0_pubkey(req);
	X509 *cert = NULL, *rc = NULL;
	X509_NAME *subject = NULL;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *sn = NULL;
	X509V3_CTX ctx;
	time_t not_before = now - CA_BACKDATE_SECONDS;
	time_t not_after = now + (time_t)tpl->s.validity_days * 86400;
	int ec = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC;
	char *ku = ca_issue_key_usage(tpl, ec);

	*why = "the certificate cannot be built";
	if (ku == NULL) {
		*why =
		    "the template's KeyUsage leaves nothing for this key type";
		goto out;
	}
	if (not_before < ca->not_before)
		not_before = ca->not_before;
	if (not_after > ca->not_after)
		not_after = ca->not_after;
	if (not_after <= now) {
		*why = "the CA certificate has expired";
		goto out;
	}
	if ((subject = ca_issue_subject(tpl, req)) == NULL ||
	    (cert = X509_new()) == NULL ||
	    !X509_set_version(cert, X509_VERSION_3) ||
	    (bn = BN_bin2bn(serial, CA_SERIAL_LEN, NULL)) == NULL ||
	    (sn = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    !X509_set_serialNumber(cert, sn) ||
	    !X509_set_subject_name(cert, subject) ||
	    !X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) ||
	    ASN1_TIME_set(X509_getm_notBefore(cert), not_before) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(cert), not_after) == NULL ||
	    ca_issue_copy_pubkey(cert, req) != 0)
		goto out;
	X509V3_set_ctx(&ctx, ca->cert, cert, NULL, NULL, 0);
	if (ca_add_ext(
	        cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
	    ca_add_ext(cert, &ctx, NID_key_usage, ku) != 0 ||
	    (tpl->s.extended_key_usage[0] != '\0' &&
	        ca_add_ext(cert, &ctx, NID_ext_key_usage,
	            tpl->s.extended_key_usage) != 0) ||
	    ca_add_ext(cert, &ctx, NID_subject_key_identifier, "hash") != 0 ||
	    (ca->crl_dp != NULL && X509_add_ext(cert, ca->crl_dp, -1) != 1) ||
	    X509_add_ext(cert, ca->akid, -1) != 1 ||
	    ca_issue_copy_sans(cert, req) != 0)
		goto out;
	/* X509_sign writes the same again: the TBSCertificate hashed for the
	 * journal is the one signed (sign.c checks it after signing). */
	if (X509_ALGOR_copy(
	        (X509_ALGOR *)X509_get0_tbs_sigalg(cert), ca->sig_alg) != 1)
		goto out;
	rc = cert;
	cert = NULL;
out:
	free(ku);
	X509_NAME_free(subject);
	X509_free(cert);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	return rc;
}

int
ca_issue_tbs_hash(X509 *cert, unsigned char out[CA_TBS_HASH_LEN])
{
	unsigned char *tbs = NULL;
	int len = i2d_re_X509_tbs(cert, &tbs), rc = -1;

	if (len > 0 &&
	    EVP_Digest(tbs, (size_t)len, out, NULL, EVP_sha256(), NULL) == 1)
		rc = 0;
	OPENSSL_free(tbs);
	return rc;
}

long
ca_issue_signature_us(const struct ca *ca)
{
	X509 *probe = X509_dup(ca->cert);
	long best = -1;

	/* After ca_issue_learn_sig_alg's signature, which set the key up
	 * (Montgomery forms, blinding): the best of four is what each
	 * costs, whatever else the machine does while the services start. */
	for (int i = 0; probe != NULL && i < 4; i++) {
		int64_t t0 = clock_monotonic_us();
		long us;

		if (X509_sign(probe, ca->key, EVP_sha256()) <= 0)
			break;
		us = (long)(clock_monotonic_us() - t0);
		if (best < 0 || us < best)
			best = us;
	}
	X509_free(probe);
	return best;
}

X509_ALGOR *
ca_issue_learn_sig_alg(const struct ca *ca)
{
	X509 *probe = X509_dup(ca->cert);
	X509_ALGOR *alg = NULL;

	if (probe != NULL && X509_sign(probe, ca->key, EVP_sha256()) > 0)
		alg = X509_ALGOR_dup(X509_get0_tbs_sigalg(probe));
	X509_free(probe);
	return alg;
}

int
ca_crl_dp_load(struct ca *ca, char *err, size_t errlen)
{
	const char *url = ca->settings.crl_url;
	char cdp[600];

	if (url[0] == '\0')
		return 0;
	/* OpenSSL's configuration syntax would split it at a comma (a
	 * second distribution point, or none at each issuance), and a longer
	 * one would be cut in ca_issue_build's buffer. */
	if (strlen(url) > 512 || strpbrk(url, ", \t\"") != NULL ||
	    (strncmp(url, "http://", 7) != 0 &&
	        strncmp(url, "https://", 8) != 0 &&
	        strncmp(url, "ldap://", 7) != 0)) {
		snprintf(err, errlen,
		    "'%.64s%s' is not an http://, https:// or ldap:// URL of "
		    "at "
		    "most 512 bytes without commas or spaces",
		    url, strlen(url) > 64 ? "..." : "");
		return -1;
	}
	for (const char *c = url; *c != '\0'; c++)
		if ((unsigned char)*c < 0x21 || *c == 0x7f) {
			snprintf(err, errlen, "a control character in the URL");
			return -1;
		}
	snprintf(cdp, sizeof(cdp), "URI:%s", url);
	if ((ca->crl_dp = X509V3_EXT_nconf_nid(
	         NULL, NULL, NID_crl_distribution_points, cdp)) == NULL) {
		ERR_clear_error();
		snprintf(
		    err, errlen, "'%.64s' is no CRL distribution point", url);
		return -1;
	}
	return 0;
}
