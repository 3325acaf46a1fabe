/*
 * The `duplicate-subject` issuance policy: one valid certificate per
 * subject. A second is refused unless every certificate already issued
 * for that subject ends within RenewWithinDays (default 30): a device
 * renewing near the end is let through, a copied or stolen enrollment
 * profile minting a twin is not.
 *
 *   [ca]
 *   Policies = one-per-device
 *   [policy.one-per-device]
 *   Module = duplicate-subject
 *   RenewWithinDays = 30
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin.h"

struct duplicate_subject {
	const struct scepd_plugin_host *host;
	long long renew_within; /* seconds */
};

/* The first certificate that still has longer to live than the window. */
struct duplicate_search {
	long long now, window;
	char serial[64];
	long long not_after;
	int found;
};

static int
duplicate_each(void *ctx, const struct scepd_issued_certificate *c)
{
	struct duplicate_search *s = ctx;

	if (c->not_after <= s->now + s->window)
		return 0; /* expired, or near enough its end: renewal */
	snprintf(s->serial, sizeof(s->serial), "%s", c->serial);
	s->not_after = c->not_after;
	s->found = 1;
	return 1;
}

static enum scepd_verdict
duplicate_check(void *state, const struct scepd_issuance_request *req,
    char *why, size_t whylen)
{
	struct duplicate_subject *d = state;
	struct duplicate_search s;
	char until[32];
	time_t t;
	struct tm tm;
	int n;

	memset(&s, 0, sizeof(s));
	s.now = req->now;
	s.window = d->renew_within;
	n = d->host->issued_for_subject(
	    d->host, req->subject, duplicate_each, &s);
	if (n < 0) {
		snprintf(why, whylen, "the ledger could not be read");
		return SCEPD_VERDICT_UNAVAILABLE;
	}
	if (!s.found)
		return SCEPD_VERDICT_ALLOW;
	t = (time_t)s.not_after;
	gmtime_r(&t, &tm);
	strftime(until, sizeof(until), "%Y-%m-%d", &tm);
	snprintf(why, whylen,
	    "\"%s\" already has a valid certificate (serial %s, until %s); "
	    "another is issued only in its last %lld days (RenewWithinDays)",
	    req->subject, s.serial, until, d->renew_within / 86400);
	d->host->log(d->host, SCEPD_PLUGIN_LOG_WARN,
	    "refused a second certificate for \"%s\" (txid %s, client %s): "
	    "serial %s is valid until %s",
	    req->subject, req->transaction_id, req->requester, s.serial, until);
	return SCEPD_VERDICT_REFUSE;
}

static const char *const duplicate_keys[] = {"RenewWithinDays", NULL};

static int
duplicate_init(const struct scepd_plugin_host *host, void **state, char *err,
    size_t errlen)
{
	struct duplicate_subject *d;
	const char *v = host->config_get(host, "RenewWithinDays");
	long days = 30;
	char *end;

	if (!SCEPD_PLUGIN_HOST_HAS(host, issued_for_subject) ||
	    host->issued_for_subject == NULL) {
		snprintf(err, errlen,
		    "duplicate-subject is an issuance policy: the CA loads it");
		return -1;
	}
	if (v != NULL && v[0] != '\0') {
		days = strtol(v, &end, 10);
		if (*end != '\0' || days < 0 || days > 36500) {
			snprintf(err, errlen,
			    "RenewWithinDays: '%s' is not 0..36500 days", v);
			return -1;
		}
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->host = host;
	d->renew_within = (long long)days * 86400;
	*state = d;
	host->log(host, SCEPD_PLUGIN_LOG_INFO,
	    "one valid certificate per subject; renewal in the last %ld days",
	    days);
	return 0;
}

static void
duplicate_destroy(void *state)
{
	free(state);
}

__attribute__((visibility("default")))
const struct scepd_issuance_policy scepd_issuance_policy_v1 = {
    SCEPD_PLUGIN_ABI_VERSION,
    "duplicate-subject",
    duplicate_keys,
    duplicate_init,
    duplicate_check,
    duplicate_destroy,
};
