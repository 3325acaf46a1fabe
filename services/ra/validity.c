/*
 * When the certificates the RA uses and serves end (NDES's RA
 * certificates expiring after two years is its best-known outage: strict
 * clients refuse what they sign or are encrypted to, and no device says
 * why). Each that has ended, or ends within RA_EXPIRY_WARN_DAYS, is
 * logged at start; /metrics gives each end for monitoring (metrics.c).
 * An expired one does not stop the RA: GetCACert, the CRL and the
 * clients that do not check go on.
 */
#include <stdio.h>
#include <time.h>

#include "log.h"
#include "pki.h"
#include "ra.h"

#define RA_EXPIRY_WARN_DAYS 30

void
ra_date(time_t t, char *out, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, len, "?");
}

/* What to do about an RA certificate's end; NULL for the CA certificate
 * serving as RA, which is named once, as the CA's. */
static const char *
ra_renew(X509 *cert, X509 *ca)
{
	return X509_cmp(cert, ca) == 0
	    ? NULL
	    : "issue the RA a new one (README \"A new RA key\")";
}

int
ra_validity_check(struct ra *ra)
{
	static const char ca_renew[] = "see README \"CA rollover\"";
	const struct ra_settings *s = &ra->settings;
	X509 *ca = sk_X509_value(ra->ca_chain, 0);
	const struct {
		const char *label; /* the metric's */
		const char *setting;
		const char *path;
		X509 *cert;
		const char *renew; /* NULL: not logged */
	} certs[] = {
	    {"ra_signing", "SigningCertificate", s->signing_certificate,
	        ra->sign_cert, ra_renew(ra->sign_cert, ca)},
	    {"ra_encryption", "EncryptionCertificate",
	        s->encryption_certificate, ra->enc[0].cert,
	        ra_renew(ra->enc[0].cert, ca)},
	    {"ca", "CACertificate", s->ca_certificate, ca, ca_renew},
	    /* Kept for devices that still hold it: its end is theirs. */
	    {"ra_previous_encryption", "PreviousEncryptionCertificate",
	        s->previous_encryption_certificate, ra->enc[1].cert, NULL},
	};
	time_t now = time(NULL);

	_Static_assert(sizeof(certs) / sizeof(certs[0]) <=
	        sizeof(ra->expiry) / sizeof(ra->expiry[0]),
	    "ra->expiry holds an entry for each certificate");
	ra->n_expiry = 0;
	for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++) {
		time_t end;
		long long days;
		char date[40];

		if (certs[i].cert == NULL)
			continue;
		if (pki_time(X509_get0_notAfter(certs[i].cert), &end) != 0) {
			fprintf(stderr,
			    "scepd-ra: [ra] %s: %s: unreadable validity\n",
			    certs[i].setting, certs[i].path);
			return -1;
		}
		ra->expiry[ra->n_expiry].label = certs[i].label;
		ra->expiry[ra->n_expiry++].not_after = end;
		if (certs[i].renew == NULL)
			continue;
		ra_date(end, date, sizeof(date));
		/* Whole days left, a part of one counted. */
		days = (long long)((end - now + 86399) / 86400);
		if (end <= now)
			log_error("[ra] %s: %s expired on %s: clients that "
			          "check it refuse what it signs or is "
			          "encrypted to; %s",
			    certs[i].setting, certs[i].path, date,
			    certs[i].renew);
		else if (days <= RA_EXPIRY_WARN_DAYS)
			log_warn("[ra] %s: %s expires on %s, in %lld day%s; %s",
			    certs[i].setting, certs[i].path, date, days,
			    days == 1 ? "" : "s", certs[i].renew);
	}
	return 0;
}
