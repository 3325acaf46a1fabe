/*
 * When the certificates the RA uses and serves end (NDES's RA
 * certificates expiring after two years is its best-known outage: strict
 * clients refuse what they sign or are encrypted to, and no device says
 * why). Each that has ended, or ends within RA_EXPIRY_WARN_DAYS, is
 * logged at start, as it enters those days or ends, and daily while it is
 * in them (an RA may run for years); /metrics gives each end for
 * monitoring (metrics.c).
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

/*
 * Logs each certificate of ra->expiry that has ended or ends within
 * RA_EXPIRY_WARN_DAYS at `now`; returns when to look again: the next
 * such start or end, a day from now at the latest.
 */
static time_t
ra_validity_log(const struct ra *ra, time_t now)
{
	time_t next = now + 86400;

	for (size_t i = 0; i < ra->n_expiry; i++) {
		time_t end = ra->expiry[i].not_after;
		time_t warn_from = end - (time_t)RA_EXPIRY_WARN_DAYS * 86400;
		long long days;
		char date[40];

		if (ra->expiry[i].renew == NULL)
			continue;
		if (warn_from > now && warn_from < next)
			next = warn_from;
		if (end > now && end < next)
			next = end;
		ra_date(end, date, sizeof(date));
		/* Whole days left, a part of one counted. */
		days = (long long)((end - now + 86399) / 86400);
		if (end <= now)
			log_error("[ra] %s: %s expired on %s: clients that "
			          "check it refuse what it signs or is "
			          "encrypted to; %s",
			    ra->expiry[i].setting, ra->expiry[i].path, date,
			    ra->expiry[i].renew);
		else if (days <= RA_EXPIRY_WARN_DAYS)
			log_warn("[ra] %s: %s expires on %s, in %lld day%s; %s",
			    ra->expiry[i].setting, ra->expiry[i].path, date,
			    days, days == 1 ? "" : "s", ra->expiry[i].renew);
	}
	return next;
}

int
ra_validity_check(struct ra *ra)
{
	static const char ca_renew[] = "see README \"CA rollover\"";
	const struct ra_settings *s = &ra->settings;
	X509 *ca = sk_X509_value(ra->ca_chain, 0);
	const struct {
		X509 *cert;
		struct ra_expiry e; /* its not_after read below */
	} certs[] = {
	    {ra->sign_cert,
	        {"ra_signing", "SigningCertificate", s->signing_certificate,
	            ra_renew(ra->sign_cert, ca), 0}},
	    {ra->enc[0].cert,
	        {"ra_encryption", "EncryptionCertificate",
	            s->encryption_certificate, ra_renew(ra->enc[0].cert, ca),
	            0}},
	    {ca, {"ca", "CACertificate", s->ca_certificate, ca_renew, 0}},
	    /* Kept for devices that still hold it: its end is theirs. */
	    {ra->enc[1].cert,
	        {"ra_previous_encryption", "PreviousEncryptionCertificate",
	            s->previous_encryption_certificate, NULL, 0}},
	};

	_Static_assert(sizeof(certs) / sizeof(certs[0]) <=
	        sizeof(ra->expiry) / sizeof(ra->expiry[0]),
	    "ra->expiry holds an entry for each certificate");
	ra->n_expiry = 0;
	for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++) {
		time_t end;

		if (certs[i].cert == NULL)
			continue;
		if (pki_time(X509_get0_notAfter(certs[i].cert), &end) != 0) {
			fprintf(stderr,
			    "scepd-ra: [ra] %s: %s: unreadable validity\n",
			    certs[i].e.setting, certs[i].e.path);
			return -1;
		}
		ra->expiry[ra->n_expiry] = certs[i].e;
		ra->expiry[ra->n_expiry++].not_after = end;
	}
	ra->expiry_logged = time(NULL);
	ra->expiry_next_log = ra_validity_log(ra, ra->expiry_logged);
	return 0;
}

void
ra_validity_watch(void *service)
{
	struct ra *ra = service;
	time_t now = time(NULL);

	/* A clock stepped back (a host that booted years ahead, then NTP)
	 * looks again at once rather than after the clock caught up. */
	if (now >= ra->expiry_next_log || now < ra->expiry_logged) {
		ra->expiry_logged = now;
		ra->expiry_next_log = ra_validity_log(ra, now);
	}
}
