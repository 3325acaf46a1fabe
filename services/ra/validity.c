/*
 * When the certificates the RA uses and serves end. An expired RA
 * certificate stops the RA at start: replies signed with it, and
 * envelopes to it, fail at strict clients with no word why (NDES's RA
 * certificates expiring after two years is its best-known outage). One
 * ending within RA_EXPIRY_WARN_DAYS is logged at start, and /metrics
 * gives each end of validity for monitoring (metrics.c).
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

int
ra_validity_check(struct ra *ra)
{
	static const char ra_renew[] =
	    "issue the RA a new one (README \"A new RA key\")";
	static const char ca_renew[] = "see README \"CA rollover\"";
	const struct ra_settings *s = &ra->settings;
	const struct {
		const char *label; /* the metric's */
		const char *setting;
		const char *path;
		X509 *cert;
		int required; /* expired, the RA does not start */
		const char *renew; /* NULL: neither warned nor logged */
	} certs[] = {
	    {"ra_signing", "SigningCertificate", s->signing_certificate,
	        ra->sign_cert, 1, ra_renew},
	    {"ra_encryption", "EncryptionCertificate",
	        s->encryption_certificate, ra->enc[0].cert, 1, ra_renew},
	    /* The CA refuses to start with its certificate expired. */
	    {"ca", "CACertificate", s->ca_certificate,
	        sk_X509_value(ra->ca_chain, 0), 0, ca_renew},
	    {"ra_previous_encryption", "PreviousEncryptionCertificate",
	        s->previous_encryption_certificate, ra->enc[1].cert, 0, NULL},
	};
	time_t now = time(NULL);

	ra->n_expiry = 0;
	for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++) {
		time_t end;
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
		ra_date(end, date, sizeof(date));
		if (end <= now && certs[i].required) {
			fprintf(stderr,
			    "scepd-ra: [ra] %s: %s expired on %s: devices "
			    "refuse what it signs or is encrypted to; %s\n",
			    certs[i].setting, certs[i].path, date,
			    certs[i].renew);
			return -1;
		}
		if (certs[i].renew == NULL)
			continue;
		if (end <= now)
			log_error("[ra] %s: %s expired on %s; %s",
			    certs[i].setting, certs[i].path, date,
			    certs[i].renew);
		else if (end - now < (time_t)RA_EXPIRY_WARN_DAYS * 86400)
			log_warn("[ra] %s: %s expires on %s, in %lld days; %s",
			    certs[i].setting, certs[i].path, date,
			    (long long)((end - now) / 86400), certs[i].renew);
	}
	return 0;
}
