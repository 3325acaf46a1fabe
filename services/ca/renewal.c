/*
 * Renewal: a request signed with a certificate this CA issued needs no
 * password, but the CA checks that certificate itself (whatever the RA
 * decided): its signature is ours, it is in the ledger and not revoked, it
 * is valid now, the new certificate keeps its subject and asks no
 * subjectAltName the old one does not hold, and the request
 * asks the template it was issued under, and comes inside the template's
 * RenewalWindow (and with a new key when the template says RenewalNewKey =
 * 1).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "pki.h"
#include "x509parse.h"
#include "log.h"

static int renewal_refuse(struct ca_refusal *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
renewal_refuse(struct ca_refusal *r, const char *fmt, ...)
{
	va_list ap;

	r->fail_info = SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return -1;
}

static void
renewal_date(time_t t, char out[24])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 24, "%Y-%m-%d %H:%M UTC", &tm);
}

/* Whether two names are written alike, as DER writes them (string types
 * and bytes; not the lengths' form or a SET's order as sent: a certificate
 * issued before subjects were written anew kept a request's BER); with
 * `cn_only` their commonNames alone (a template's fixed Subject gives the
 * rest, which its operator may have rewritten since). -1: no memory. */
static int
renewal_names_identical(const X509_NAME *a, const X509_NAME *b, int cn_only)
{
	X509_NAME *da = NULL, *db = NULL;
	const unsigned char *pa, *pb;
	size_t la, lb;
	int ia = -1, ib = -1, same;

	if (!cn_only) {
		if ((da = ca_issue_subject_der(a)) == NULL ||
		    (db = ca_issue_subject_der(b)) == NULL ||
		    X509_NAME_get0_der(da, &pa, &la) != 1 ||
		    X509_NAME_get0_der(db, &pb, &lb) != 1)
			same = -1;
		else
			same = la == lb && memcmp(pa, pb, la) == 0;
		X509_NAME_free(da);
		X509_NAME_free(db);
		return same;
	}
	for (;;) {
		const ASN1_STRING *va, *vb;

		ia = X509_NAME_get_index_by_NID(a, NID_commonName, ia);
		ib = X509_NAME_get_index_by_NID(b, NID_commonName, ib);
		if (ia < 0 || ib < 0)
			return ia < 0 && ib < 0;
		va = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(a, ia));
		vb = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(b, ib));
		if (ASN1_STRING_type(va) != ASN1_STRING_type(vb) ||
		    ASN1_STRING_length(va) != ASN1_STRING_length(vb) ||
		    memcmp(ASN1_STRING_get0_data(va), ASN1_STRING_get0_data(vb),
		        (size_t)ASN1_STRING_length(va)) != 0)
			return 0;
	}
}

/* Whether every subjectAltName `csr` asks is one certificate `old`
 * holds: a renewal needs no password and no approval, so it may not take
 * a certificate to other names (ca_issue_copy_sans copies the CSR's). It
 * may ask fewer: a client renewing without repeating them (strongSwan's
 * pki without --san) gets a certificate without them. */
static int
renewal_sans_held(X509 *old, X509_REQ *csr)
{
	GENERAL_NAMES *had =
	    X509_get_ext_d2i(old, NID_subject_alt_name, NULL, NULL);
	GENERAL_NAMES *asks = NULL;
	int held = 0;

	if (ca_csr_san_names(csr, &asks) == 0)
		held = ca_names_within(asks, had);
	GENERAL_NAMES_free(had);
	GENERAL_NAMES_free(asks);
	ERR_clear_error();
	return held;
}

int
ca_renewal_check(const struct ca *ca, MDB_txn *txn, const uint8_t *der,
    size_t der_len, X509_REQ *csr, const struct ca_template *tpl, time_t now,
    struct ca_refusal *r, char old_serial[CA_SERIAL_HEX])
{
	const unsigned char *p = der;
	X509 *old = x509parse_cert(&p, (long)der_len);
	X509 *issuer = NULL; /* a CA this one replaced, or NULL: this one */
	X509_NAME *subject = NULL;
	const ASN1_INTEGER *sn;
	BIGNUM *bn = NULL;
	char *hex = NULL, when[24];
	time_t nb, na, opens;
	MDB_val key, val;
	struct ca_ledger_view view;
	char old_template[CA_TEMPLATE_NAME_MAX];
	char by[CA_SERIAL_HEX];
	int rc = -1, revoked, renewed, same;

	if (old == NULL || p != der + der_len) {
		renewal_refuse(r, "the certificate to renew is unreadable");
		goto out;
	}
	if (!pki_issued_by(old, ca->cert) &&
	    (issuer = pki_issuer_among(old, ca->previous_cas)) == NULL) {
		renewal_refuse(r,
		    "the certificate to renew was not issued by this CA%s",
		    sk_X509_num(ca->previous_cas) > 0
		        ? " nor by one in [ca] PreviousCACertificate"
		        : " (one of a CA it replaced renews when listed "
		          "in [ca] PreviousCACertificate)");
		goto out;
	}
	sn = X509_get0_serialNumber(old);
	if ((bn = ASN1_INTEGER_to_BN(sn, NULL)) == NULL ||
	    (hex = BN_bn2hex(bn)) == NULL || strlen(hex) >= CA_SERIAL_HEX) {
		renewal_refuse(r,
		    "the certificate to renew has a serial this "
		    "CA never issues");
		goto out;
	}
	/* Ours are 32 digits; BN_bn2hex drops leading zero bytes. */
	memset(old_serial, '0', CA_SERIAL_HEX - 1 - strlen(hex));
	strcpy(old_serial + (CA_SERIAL_HEX - 1 - strlen(hex)), hex);
	key.mv_size = strlen(old_serial);
	key.mv_data = old_serial;
	if (mdb_get(txn, ca->certs, &key, &val) != 0) {
		renewal_refuse(r,
		    "certificate %s is not in this CA's ledger: only "
		    "certificates issued through SCEP are renewed",
		    old_serial);
		goto out;
	}
	/* A renewal keeps its template: a request signed by a certificate
	 * needs no password and no approval, so it may not reach another
	 * template's usages, SANs or approval rule by asking other key
	 * usages. */
	if (ca_ledger_view(val.mv_data, val.mv_size, &view) != 0 ||
	    ca_ledger_template(&view, old_template, sizeof(old_template)) !=
	        0) {
		renewal_refuse(r,
		    "certificate %s has no template in the ledger: enroll "
		    "anew with a challenge password",
		    old_serial);
		goto out;
	}
	/* The very certificate issued, not one made since with its serial:
	 * the checks below read the presented certificate's subject, names
	 * and dates, and a CA key that was replaced may have leaked. */
	if (view.der_len != der_len || memcmp(view.der, der, der_len) != 0) {
		renewal_refuse(r,
		    "the certificate to renew is not the one this CA's ledger "
		    "holds as serial %s",
		    old_serial);
		goto out;
	}
	if (strcmp(old_template, tpl->name) != 0) {
		renewal_refuse(r,
		    "a renewal keeps the template of certificate %s (%s); "
		    "this request's key usage asks template %s",
		    old_serial, old_template, tpl->name);
		goto out;
	}
	if ((revoked = ca_ledger_is_revoked(ca, txn, old_serial)) != 0) {
		renewal_refuse(r,
		    revoked > 0 ? "certificate %s is revoked: enroll anew, "
		                  "with a challenge password and the request "
		                  "signed by a self-signed certificate (one "
		                  "signed by this one is its renewal)"
		                : "certificate %s: the ledger cannot be read",
		    old_serial);
		goto out;
	}
	/* Its key revoked for keyCompromise through another certificate
	 * (the one it renewed keeping the key): whoever holds that key is
	 * certified no more, with or without a new key. */
	if ((revoked = ca_ledger_compromised(
	         ca, txn, X509_get0_pubkey(old), by)) != 0) {
		renewal_refuse(r,
		    revoked > 0 ? "certificate %s has the key of certificate "
		                  "%s, revoked for keyCompromise: enroll anew "
		                  "with a new key"
		                : "certificate %s: the ledger cannot be read",
		    old_serial, by);
		goto out;
	}
	/* Renewed already (a retry of that renewal got its certificate
	 * before this): its holder renews the new one. Else an old key,
	 * leaked or kept, would outlive the device's own rotation. */
	if (tpl->s.renew_once &&
	    (renewed = ca_ledger_renewed_by(ca, txn, old_serial, by)) != 0) {
		if (renewed < 0)
			renewal_refuse(r,
			    "certificate %s: the ledger cannot be read",
			    old_serial);
		else
			renewal_refuse(r,
			    "certificate %s was renewed already (serial %s): "
			    "renew that one, or enroll anew with a challenge "
			    "password (RenewOnce of template %s)",
			    old_serial, by, tpl->name);
		goto out;
	}
	if (pki_time(X509_get0_notBefore(old), &nb) != 0 ||
	    pki_time(X509_get0_notAfter(old), &na) != 0) {
		renewal_refuse(r,
		    "the certificate to renew has no readable "
		    "validity");
		goto out;
	}
	if (now >= na) {
		renewal_date(na, when);
		renewal_refuse(r,
		    "certificate %s expired on %s: enroll anew with a "
		    "challenge password, the request signed by a self-signed "
		    "certificate (one signed by this one is its renewal)",
		    old_serial, when);
		goto out;
	}
	subject = ca_issue_subject(tpl, csr);
	/* The request's CN as before, the rest the template's: its Subject
	 * was changed since (not only in letter case), not the device. */
	if (subject != NULL && tpl->fixed_subject != NULL &&
	    X509_NAME_cmp(subject, X509_get_subject_name(old)) != 0 &&
	    renewal_names_identical(subject, X509_get_subject_name(old), 1)) {
		renewal_refuse(r,
		    "a renewal keeps the subject of certificate %s, and "
		    "template %s's Subject = %s gives it another now (changed "
		    "since it was issued): enroll anew with a challenge "
		    "password",
		    old_serial, tpl->name, tpl->s.subject);
		goto out;
	}
	if (subject == NULL ||
	    X509_NAME_cmp(subject, X509_get_subject_name(old)) != 0) {
		renewal_refuse(r,
		    "a renewal keeps the subject of certificate %s; this "
		    "request asks for another",
		    old_serial);
		goto out;
	}
	/* X509_NAME_cmp compares the canonical form (case, spaces and
	 * string type aside); the certificate is issued with the bytes
	 * asked, which another system may read as another name. */
	if ((same = renewal_names_identical(subject, X509_get_subject_name(old),
	         tpl->fixed_subject != NULL)) < 0) {
		renewal_refuse(r, "out of memory comparing the subjects");
		goto out;
	}
	if (!same) {
		renewal_refuse(r,
		    "a renewal keeps the subject of certificate %s as it is "
		    "written; this request writes it otherwise (letter "
		    "case, spaces or string type)",
		    old_serial);
		goto out;
	}
	if (!renewal_sans_held(old, csr)) {
		renewal_refuse(r,
		    "a renewal asks no subjectAltName that certificate %s "
		    "does not hold: new names need an enrollment with a "
		    "challenge password",
		    old_serial);
		goto out;
	}
	opens =
	    na - (time_t)((double)(na - nb) * tpl->s.renewal_window / 100.0);
	if (now < opens) {
		renewal_date(opens, when);
		renewal_refuse(r,
		    "certificate %s can be renewed from %s (its last %ld%%: "
		    "RenewalWindow of template %s)",
		    old_serial, when, tpl->s.renewal_window, tpl->name);
		goto out;
	}
	if (tpl->s.renewal_new_key &&
	    EVP_PKEY_eq(X509_get0_pubkey(old), X509_REQ_get0_pubkey(csr)) ==
	        1) {
		renewal_refuse(r,
		    "a renewal under template %s must bring a new key "
		    "(RenewalNewKey = 1)",
		    tpl->name);
		goto out;
	}
	if (issuer != NULL) {
		char sha[2 * SHA256_DIGEST_LENGTH + 1];

		log_info("certificate %s, to renew, was issued by a CA this "
		         "one replaced (PreviousCACertificate, SHA-256 %s)",
		    old_serial,
		    pki_thumbprint(issuer, EVP_sha256(), sha, sizeof(sha)) == 0
		        ? sha
		        : "?");
	}
	rc = 0;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	X509_NAME_free(subject);
	X509_free(old);
	ERR_clear_error();
	return rc;
}
