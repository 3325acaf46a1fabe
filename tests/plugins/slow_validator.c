/*
 * A challenge validator that takes its time and does not say its instances
 * share nothing (no scepd_challenge_validator_v1_concurrent): the challenge
 * service must ask it one check at a time, one more waiting its turn
 * (tests/interop/test_validator_queue.sh).
 *
 *   [validator.slow]
 *   Module = .../tests/plugins/scepd-slow-validator.so
 *   Password = the one challenge allowed (any other is refused)
 *   SleepMs = milliseconds each check takes (0 to 60000)
 *
 * Each check logs its start, with how many other checks of this process
 * were in progress then, and its end; a consume logs itself. The count
 * is a global, not the instance's: a host asking two instances at once
 * shows up as well.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin.h"

struct slow {
	const struct scepd_plugin_host *host;
	char *password;
	long sleep_ms;
};

static atomic_int slow_in_progress;

static enum scepd_verdict
slow_check(void *state, const struct scepd_challenge_request *req, char *why,
    size_t whylen)
{
	struct slow *s = state;
	struct timespec ts = {
	    s->sleep_ms / 1000, (s->sleep_ms % 1000) * 1000000};
	int others = atomic_fetch_add(&slow_in_progress, 1);
	enum scepd_verdict verdict = SCEPD_VERDICT_ALLOW;

	s->host->log(s->host, SCEPD_PLUGIN_LOG_INFO,
	    "check of txid %s begins, %d others in progress",
	    req->transaction_id, others);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		continue; /* a signal: sleep the rest */
	if (strcmp(req->challenge, s->password) != 0) {
		snprintf(why, whylen, "not the slow validator's password");
		verdict = SCEPD_VERDICT_REFUSE;
	}
	atomic_fetch_sub(&slow_in_progress, 1);
	s->host->log(s->host, SCEPD_PLUGIN_LOG_INFO,
	    "check of txid %s ends: %s", req->transaction_id,
	    verdict == SCEPD_VERDICT_ALLOW ? "allowed" : "refused");
	return verdict;
}

/* Logs that it was told the password was used (test_validator_queue
 * looks for it). */
static void
slow_consume(void *state, const struct scepd_challenge_request *req)
{
	struct slow *s = state;
	size_t nsans = 0;

	/* lib/plugin.h: sans is a NULL-ended array, as in check (a NULL
	 * here crashed the service). */
	while (req->sans[nsans] != NULL)
		nsans++;
	s->host->log(s->host, SCEPD_PLUGIN_LOG_INFO,
	    "consume of txid %s (%zu SANs, subject '%s')", req->transaction_id,
	    nsans, req->subject);
}

static int
slow_init(const struct scepd_plugin_host *host, void **state, char *err,
    size_t errlen)
{
	const char *pw = host->config_get(host, "Password");
	const char *ms = host->config_get(host, "SleepMs");
	struct slow *s;
	char *end = NULL;
	long sleep_ms = ms != NULL ? strtol(ms, &end, 10) : -1;

	if (pw == NULL || pw[0] == '\0') {
		snprintf(err, errlen, "Password: is required");
		return -1;
	}
	if (ms == NULL || end == ms || *end != '\0' || sleep_ms < 0 ||
	    sleep_ms > 60000) {
		snprintf(err, errlen, "SleepMs: is required, 0 to 60000");
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->password = strdup(pw)) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->host = host;
	s->sleep_ms = sleep_ms;
	*state = s;
	return 0;
}

static void
slow_destroy(void *state)
{
	struct slow *s = state;

	free(s->password);
	free(s);
}

static const char *const slow_keys[] = {"Password", "SleepMs", NULL};

__attribute__((visibility("default")))
const struct scepd_challenge_validator scepd_challenge_validator_v1 = {
    .abi_version = SCEPD_PLUGIN_ABI_VERSION,
    .name = "slow-validator",
    .keys = slow_keys,
    .init = slow_init,
    .check = slow_check,
    .consume = slow_consume,
    .destroy = slow_destroy,
};
