/*
 * crl_read.c: the entries of a CRL the operator gives scepctl import-crl.
 */
#ifndef SCEPCTL_CRL_READ_H
#define SCEPCTL_CRL_READ_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>

/* A CRL of 100,000 entries is about 5 MB. */
#define CRL_READ_MAX (64 << 20)

struct crl_entry {
	char serial[41]; /* upper-case hex, at most 20 octets */
	int64_t revoked_at; /* epoch seconds */
	const char *reason; /* RFC 5280 name, "unspecified" when absent */
};
struct crl_entries {
	struct crl_entry *entry;
	size_t n;
	/* Epoch seconds: the later of its thisUpdate and its newest entry
	 * (AD CS dates thisUpdate 10 minutes before it signs). */
	int64_t newest;
	int64_t number; /* its cRLNumber, when has_number (63 bits) */
	int has_number;
};

/* The CRL in `data` (DER, or PEM). NULL and `err` filled otherwise. */
X509_CRL *
crl_read(const unsigned char *data, size_t len, char *err, size_t errlen);
/* 0 when `ca` signed it: its issuer is `ca`'s subject, its signature
 * verifies with `ca`'s key; -1 and `err` otherwise. */
int crl_signed_by(X509_CRL *crl, X509 *ca, char *err, size_t errlen);
/*
 * Its entries and number into `out` (crl_entries_free), or -1 and `err`
 * when any cannot be put on scepd's CRL as it was meant: a delta or an
 * indirect CRL, a serial not positive or over 20 octets, a revocation
 * date that cannot be read or is before 1970, a reason code that cannot
 * be read, removeFromCRL. Hold instructions and invalidity dates are not
 * kept.
 */
int
crl_entries(X509_CRL *crl, struct crl_entries *out, char *err, size_t errlen);
void crl_entries_free(struct crl_entries *entries);

#endif
