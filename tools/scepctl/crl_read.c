/*
 * An earlier CRL's entries, for scepctl import-crl: the one place scepctl
 * parses a CRL (the operator's file, from another CA's software or a
 * distribution point; tests/fuzz/fuzz_crl_read.c feeds it anything).
 * OpenSSL reads the DER; what is checked here is whether each entry can
 * be put on scepd's CRL as it was meant.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "crl_read.h"
#include "pki.h"

X509_CRL *
crl_read(const unsigned char *data, size_t len, char *err, size_t errlen)
{
	const unsigned char *p = data;
	X509_CRL *crl = NULL;
	BIO *bio;

	if (len > CRL_READ_MAX) {
		snprintf(err, errlen,
		    "larger than %d MiB: not a CRL scepctl reads",
		    CRL_READ_MAX >> 20);
		return NULL;
	}
	/* DER starts with its SEQUENCE; PEM's reader skips what comes
	 * before "-----BEGIN X509 CRL-----" (openssl crl -text's text). */
	/* A UTF-8 byte-order mark before PEM (PowerShell's output). */
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
		data += 3;
		len -= 3;
		p = data;
	}
	ERR_clear_error(); /* what follows reports its own */
	if (len > 0 && data[0] != 0x30) {
		if ((bio = BIO_new_mem_buf(data, (int)len)) != NULL)
			crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
		BIO_free(bio);
	} else
		crl = d2i_X509_CRL(NULL, &p, (long)len);
	if (crl == NULL) {
		unsigned long why = ERR_peek_last_error();
		const char *text =
		    why != 0 ? ERR_reason_error_string(why) : NULL;

		snprintf(err, errlen,
		    "not a CRL (DER, or PEM \"-----BEGIN X509 CRL-----\")%s%s",
		    text != NULL ? ": " : "", text != NULL ? text : "");
		ERR_clear_error();
	}
	return crl;
}

int
crl_signed_by(X509_CRL *crl, X509 *ca, char *err, size_t errlen)
{
	EVP_PKEY *key = X509_get0_pubkey(ca);

	if (X509_NAME_cmp(
	        X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0) {
		snprintf(err, errlen,
		    "issued by another CA (its issuer is not the CA "
		    "certificate's subject): nothing imported");
		return -1;
	}
	if (key == NULL || X509_CRL_verify(crl, key) != 1) {
		snprintf(err, errlen,
		    "its signature is not the CA key's: nothing imported");
		return -1;
	}
	return 0;
}

/*
 * The first extension of `exts` marked critical that is not in `known`
 * (NID_undef-ended), its OID in `oid`: 1; else 0. RFC 5280 (5.2, 5.3):
 * a CRL with one is not to be used to decide a certificate's status,
 * nor, then, imported.
 */
static int
crl_unknown_critical(const STACK_OF(X509_EXTENSION) * exts, const int *known,
    char *oid, size_t oidlen)
{
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *x = sk_X509_EXTENSION_value(exts, i);
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(x)), k = 0;

		if (!X509_EXTENSION_get_critical(x))
			continue;
		while (known[k] != NID_undef && known[k] != nid)
			k++;
		if (known[k] != NID_undef)
			continue;
		if (OBJ_obj2txt(
		        oid, (int)oidlen, X509_EXTENSION_get_object(x), 1) <= 0)
			snprintf(oid, oidlen, "?");
		return 1;
	}
	return 0;
}

/* One entry into `out`: 0, or -1 with `err` naming it. */
static int
crl_read_entry(X509_REVOKED *r, struct crl_entry *out, char *err, size_t errlen)
{
	static const int entry_known[] = {NID_crl_reason, NID_invalidity_date,
	    NID_hold_instruction_code, NID_certificate_issuer, NID_undef};
	const ASN1_INTEGER *sn = X509_REVOKED_get0_serialNumber(r);
	ASN1_ENUMERATED *reason;
	char oid[80];
	BIGNUM *bn = NULL;
	char *hex = NULL;
	long code = 0;
	int crit = -1, rc = -1;
	time_t t;

	if (sn == NULL || sn->type != V_ASN1_INTEGER || sn->length < 1 ||
	    sn->length > 20 || (bn = ASN1_INTEGER_to_BN(sn, NULL)) == NULL ||
	    BN_is_zero(bn) || (hex = BN_bn2hex(bn)) == NULL ||
	    strlen(hex) >= sizeof(out->serial)) {
		snprintf(err, errlen,
		    "an entry's serial is not a positive number of at most "
		    "20 octets: nothing imported");
		goto out;
	}
	memcpy(out->serial, hex, strlen(hex) + 1);
	if (pki_time(X509_REVOKED_get0_revocationDate(r), &t) != 0 || t <= 0) {
		snprintf(err, errlen,
		    "serial %s: its revocation date cannot be read, or is "
		    "before 1970: nothing imported",
		    out->serial);
		goto out;
	}
	out->revoked_at = (int64_t)t;
	if (crl_unknown_critical(X509_REVOKED_get0_extensions(r), entry_known,
	        oid, sizeof(oid))) {
		snprintf(err, errlen,
		    "serial %s has a critical extension %s this reader does "
		    "not know (RFC 5280: such a CRL decides no status): "
		    "nothing imported",
		    out->serial, oid);
		goto out;
	}
	/* Another CA's certificate (an indirect CRL's entry): not this
	 * CA's to list. */
	if (X509_REVOKED_get_ext_by_NID(r, NID_certificate_issuer, -1) >= 0) {
		snprintf(err, errlen,
		    "serial %s names another certificate issuer (an indirect "
		    "CRL): nothing imported",
		    out->serial);
		goto out;
	}
	reason = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &crit, NULL);
	if (reason == NULL && crit != -1) {
		snprintf(err, errlen,
		    "serial %s: its reason code cannot be read: nothing "
		    "imported",
		    out->serial);
		goto out;
	}
	if (reason != NULL) {
		code = ASN1_ENUMERATED_get(reason);
		ASN1_ENUMERATED_free(reason);
	}
	if ((out->reason = pki_crl_reason_name(code)) == NULL) {
		snprintf(err, errlen,
		    "serial %s: reason code %ld is not a revocation "
		    "(removeFromCRL is a delta CRL's): nothing imported",
		    out->serial, code);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

int
crl_entries(X509_CRL *crl, struct crl_entries *out, char *err, size_t errlen)
{
	static const int crl_known[] = {NID_crl_number,
	    NID_authority_key_identifier, NID_issuing_distribution_point,
	    NID_delta_crl, NID_issuer_alt_name, NID_freshest_crl, NID_undef};
	STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
	ISSUING_DIST_POINT *idp;
	char oid[80];
	ASN1_INTEGER *number;
	int n = revoked != NULL ? sk_X509_REVOKED_num(revoked) : 0, crit = -1;
	time_t this_update;

	memset(out, 0, sizeof(*out));
	if (crl_unknown_critical(
	        X509_CRL_get0_extensions(crl), crl_known, oid, sizeof(oid))) {
		snprintf(err, errlen,
		    "a critical extension %s this reader does not know (RFC "
		    "5280: such a CRL decides no status): nothing imported",
		    oid);
		return -1;
	}
	/* A delta CRL lists changes since its base: import the base CRL. */
	if (X509_CRL_get_ext_by_NID(crl, NID_delta_crl, -1) >= 0) {
		snprintf(err, errlen,
		    "a delta CRL (changes since a base CRL): import the "
		    "base CRL");
		return -1;
	}
	idp = X509_CRL_get_ext_d2i(
	    crl, NID_issuing_distribution_point, &crit, NULL);
	if (idp == NULL && crit != -1) {
		snprintf(err, errlen,
		    "its issuingDistributionPoint cannot be read: nothing "
		    "imported");
		return -1;
	}
	if (idp != NULL && idp->indirectCRL) {
		ISSUING_DIST_POINT_free(idp);
		snprintf(err, errlen,
		    "an indirect CRL (it lists other CAs' certificates): "
		    "nothing imported");
		return -1;
	}
	/* scepd's CRL replaces it whole: a partition's revocations of other
	 * reasons or kinds of certificate would be trusted again. */
	if (idp != NULL &&
	    (idp->onlysomereasons != NULL || idp->onlyuser || idp->onlyCA ||
	        idp->onlyattr)) {
		ISSUING_DIST_POINT_free(idp);
		snprintf(err, errlen,
		    "a partitioned CRL (its issuingDistributionPoint covers "
		    "only some reasons or kinds of certificate): import the "
		    "CA's complete CRL");
		return -1;
	}
	ISSUING_DIST_POINT_free(idp);
	if (pki_time(X509_CRL_get0_lastUpdate(crl), &this_update) != 0) {
		snprintf(err, errlen,
		    "its thisUpdate cannot be read: nothing imported");
		return -1;
	}
	out->newest = (int64_t)this_update;
	number = X509_CRL_get_ext_d2i(crl, NID_crl_number, &crit, NULL);
	if (number != NULL)
		out->has_number =
		    ASN1_INTEGER_get_int64(&out->number, number) == 1;
	ASN1_INTEGER_free(number);
	if (n == 0)
		return 0;
	if ((out->entry = calloc((size_t)n, sizeof(*out->entry))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++)
		if (crl_read_entry(sk_X509_REVOKED_value(revoked, i),
		        &out->entry[i], err, errlen) != 0) {
			crl_entries_free(out);
			return -1;
		} else if (out->entry[i].revoked_at > out->newest)
			out->newest = out->entry[i].revoked_at;
	out->n = (size_t)n;
	return 0;
}

void
crl_entries_free(struct crl_entries *entries)
{
	free(entries->entry);
	memset(entries, 0, sizeof(*entries));
}
