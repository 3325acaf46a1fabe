/*
 * The CRL over plain HTTP at CRLPath (the CRL distribution point the CA
 * puts in certificates), and at PreviousCRLPath the CRL of the CA it
 * replaced ([ca] PreviousCAKey): asked of the RA, which asks the CA, and
 * each kept for CACHE_SECONDS so a crowd of relying parties costs the CA
 * nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "frontend.h"
#include "log.h"

/* After the RA did not give the CRL, the old copy is the answer at once
 * this long: with the CA stopped, each ask held an UpstreamThread for
 * RPCTimeout, and relying parties polling the CRL took them all. */
#define CRL_RETRY_MS CACHE_EMPTY_RETRY_MS

void
crl_cache_clear(struct crl_cache *c)
{
	free(c->der);
	c->der = NULL;
	c->len = 0;
	c->at = 0;
	c->next_update = 0;
	c->expired_said_at = 0;
}

/*
 * Whether this request is the one to ask the RA (1) or not: one asks at a
 * time, and, unless `after_failure`, none for CRL_RETRY_MS after an ask
 * the RA did not answer. The one that asks may never do (its wait for an
 * UpstreamThread ended in 503): after twice RPCTimeout another may.
 */
static int
crl_claim_fetch(struct frontend *fe, struct crl_cache *cc, int after_failure)
{
	int fetch;

	pthread_mutex_lock(&fe->cache.lock);
	fetch = (after_failure || cc->failed_at == 0 ||
	            clock_monotonic_ms() - cc->failed_at >= CRL_RETRY_MS) &&
	    cache_ask_free(fe, &cc->fetch_since, 1);
	pthread_mutex_unlock(&fe->cache.lock);
	return fetch;
}

/* Whether the RA did not give the CRL (`refused`: the CA refused to make
 * one, and why into `why`) less than CRL_RETRY_MS ago. */
static int
crl_lately(struct frontend *fe, struct crl_cache *cc, int refused, char *why,
    size_t size)
{
	int64_t at;
	int lately;

	pthread_mutex_lock(&fe->cache.lock);
	at = refused ? cc->refused_at : cc->failed_at;
	lately = at != 0 && clock_monotonic_ms() - at < CRL_RETRY_MS;
	if (lately && why != NULL)
		snprintf(why, size, "%s", cc->refusal);
	pthread_mutex_unlock(&fe->cache.lock);
	return lately;
}

/* The CRL from the RA into the cache; *copy (the caller's) on
 * UPSTREAM_OK; on UPSTREAM_REFUSED the cache says why. */
static enum upstream_result
crl_fetch(struct frontend *fe, struct crl_cache *cc, int previous,
    uint8_t **copy, size_t *len)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCrlRequest body = SCEP__V1__GET_CRL_REQUEST__INIT;
	Scep__V1__Reply *rep = NULL;
	enum upstream_result res;

	*copy = NULL;
	body.has_previous_ca = body.previous_ca = previous;
	req.body_case = SCEP__V1__REQUEST__BODY_GET_CRL;
	req.get_crl = &body;
	res = upstream_call(
	    fe, UPSTREAM_RA, &req, SCEP__V1__REPLY__BODY_GET_CRL, &rep);
	/* An RA or CA from before PreviousCRLPath drops previous_ca and
	 * gives the CA's own CRL, not saying whose it is: not to be served
	 * where the old CA's distribution point is. */
	if (res == UPSTREAM_OK && previous &&
	    !rep->get_crl->has_issuer_key_sha256) {
		log_error("%s: the RA gave a CRL not saying whose it is (an RA "
		          "or CA older than PreviousCRLPath gives the CA's "
		          "own): not served",
		    fe->settings.previous_crl_path);
		res = UPSTREAM_FAILED;
	}
	pthread_mutex_lock(&fe->cache.lock);
	cc->failed_at = res == UPSTREAM_UNAVAILABLE ? clock_monotonic_ms() : 0;
	cc->fetch_since = 0;
	cc->refused_at = res == UPSTREAM_REFUSED ? clock_monotonic_ms() : 0;
	if (res == UPSTREAM_REFUSED) {
		snprintf(cc->refusal, sizeof(cc->refusal), "%s",
		    rep != NULL && rep->error != NULL ? rep->error
		                                      : "the CA refused");
		/* None is made now (the key unset, say): a copy kept from
		 * before would be served stale for as long as this runs. */
		crl_cache_clear(cc);
	}
	pthread_mutex_unlock(&fe->cache.lock);
	if (res == UPSTREAM_OK) {
		*len = rep->get_crl->crl.len;
		if ((*copy = malloc(*len ? *len : 1)) == NULL)
			res = UPSTREAM_FAILED;
	}
	if (res == UPSTREAM_OK) {
		memcpy(*copy, rep->get_crl->crl.data, *len);
		pthread_mutex_lock(&fe->cache.lock);
		crl_cache_clear(cc);
		if ((cc->der = malloc(*len ? *len : 1)) != NULL) {
			memcpy(cc->der, *copy, *len);
			cc->len = *len;
			cc->at = clock_monotonic_ms();
			cc->next_update = rep->get_crl->next_update;
		}
		pthread_mutex_unlock(&fe->cache.lock);
	}
	if (rep != NULL)
		scep__v1__reply__free_unpacked(rep, NULL);
	return res;
}

/* The cached CRL, whatever its age: 1 and *copy when there is one (0 with
 * *copy NULL when copying it failed), 0 when there is none. */
static int
crl_cached(struct frontend *fe, struct crl_cache *cc, uint8_t **copy,
    size_t *len, int *fresh, int *max_age, int64_t *next_update)
{
	int have;

	*copy = NULL;
	pthread_mutex_lock(&fe->cache.lock);
	have = cc->der != NULL;
	if (have && (*copy = malloc(cc->len ? cc->len : 1)) != NULL) {
		memcpy(*copy, cc->der, cc->len);
		*len = cc->len;
		*fresh = cache_fresh(cc->at, 0);
		*max_age = cache_seconds_left(cc->at);
		*next_update = cc->next_update;
	}
	pthread_mutex_unlock(&fe->cache.lock);
	return have;
}

/* Whether a CRL of this nextUpdate has expired. */
static int
crl_past(int64_t next_update)
{
	return next_update > 0 && (int64_t)time(NULL) >= next_update;
}

/*
 * The copy kept, served while the RA gives no newer one, only while it is
 * valid: past its nextUpdate relying parties are to refuse it (or take it
 * as the last word, which it no longer is), as the CA itself serves its
 * stored one only until then. 503; with `ra_failed` logged, once per
 * CRL_RETRY_MS (every relying party's request would else write a line).
 * Without: another request is asking the RA, and this one is not held
 * for it (each would hold an UpstreamThread through an outage).
 */
static enum MHD_Result
crl_expired(struct frontend *fe, struct crl_cache *cc, struct MHD_Connection *c,
    struct request *r, int previous, int64_t next_update, int ra_failed)
{
	char when[LOG_TIME_LEN];
	int64_t now = clock_monotonic_ms();
	int say = 0;

	pthread_mutex_lock(&fe->cache.lock);
	if (ra_failed &&
	    (say = cc->expired_said_at == 0 ||
	            now - cc->expired_said_at >= CRL_RETRY_MS))
		cc->expired_said_at = now;
	pthread_mutex_unlock(&fe->cache.lock);
	if (say) {
		log_time((time_t)next_update, when);
		log_warn("%s: the RA gives no CRL, and the one kept expired at "
		         "%s (its nextUpdate): answered 503",
		    previous ? fe->settings.previous_crl_path
		             : fe->settings.crl_path,
		    when);
	}
	return http_unavailable(c, r,
	    "The CRL is not available now (the last one has expired); retry "
	    "later.\n");
}

/* From the cache at once while it is fresh; else from the RA in an
 * offload thread, the old copy the answer when the RA gives none. Never
 * older unless the RA cannot be asked (or is being asked by another
 * request: crl_claim_fetch): a revocation is to show within
 * CACHE_SECONDS. */
enum MHD_Result
crl_handle(struct frontend *fe, struct MHD_Connection *c, struct request *r,
    int previous)
{
	struct crl_cache *cc = previous ? &fe->previous_crl : &fe->crl;
	uint8_t *copy = NULL, *old = NULL;
	char refusal[sizeof(cc->refusal)], body[sizeof(cc->refusal) + 16];
	size_t len = 0, old_len = 0;
	int fresh = 0, max_age = 0;
	int64_t next_update = 0;
	enum upstream_result res;
	enum MHD_Result ret;
	char cache_control[32];
	struct http_header h[] = {
	    {"Cache-Control", cache_control}, {NULL, NULL}};

	if (crl_cached(fe, cc, &copy, &len, &fresh, &max_age, &next_update) &&
	    copy == NULL)
		return http_no_memory(c, r, "a copy of the CRL");
	if (!r->offloaded) {
		/* The old copy, while another asks or for CRL_RETRY_MS
		 * after the RA did not give one. */
		if (copy != NULL && (fresh || !crl_claim_fetch(fe, cc, 0))) {
			if (fresh || !crl_past(next_update))
				goto answer;
			ret = crl_expired(fe, cc, c, r, previous, next_update,
			    crl_lately(fe, cc, 0, NULL, 0));
			goto out;
		}
		/* None, and the CA refused to make one lately: the same
		 * answer, not a round trip to the CA per relying party. */
		if (copy == NULL &&
		    crl_lately(fe, cc, 1, refusal, sizeof(refusal))) {
			snprintf(body, sizeof(body), "No CRL: %s.\n", refusal);
			return http_text(c, r, MHD_HTTP_NOT_FOUND, body);
		}
		/* None yet, and the RA did not give one lately: one
		 * request asks at a time, the others get 503 at once, not
		 * an UpstreamThread held for RPCTimeout by each relying
		 * party meanwhile. (Otherwise all ask: at a start with the
		 * RA up, none gets 503.) */
		if (copy == NULL && crl_lately(fe, cc, 0, NULL, 0) &&
		    !crl_claim_fetch(fe, cc, 1))
			return http_unavailable(c, r,
			    "The CRL is not available now; retry later.\n");
		free(copy);
		return http_offload(fe, c, r);
	}
	old = copy, old_len = len; /* the answer if the RA gives none */
	res = crl_fetch(fe, cc, previous, &copy, &len);
	if (res == UPSTREAM_OK)
		max_age = cache_seconds_left(clock_monotonic_ms());
	else if (res == UPSTREAM_REFUSED &&
	    crl_lately(fe, cc, 1, refusal, sizeof(refusal))) {
		/* None is made: say why (a setting), not "retry later", nor
		 * the old copy; logged once per CRL_RETRY_MS (the others
		 * answered from crl_lately). */
		log_warn("%s: no CRL: %s",
		    previous ? fe->settings.previous_crl_path
		             : fe->settings.crl_path,
		    refusal);
		snprintf(body, sizeof(body), "No CRL: %s.\n", refusal);
		ret = http_text(c, r, MHD_HTTP_NOT_FOUND, body);
		goto out;
	} else if (old != NULL) {
		if (crl_past(next_update)) {
			ret =
			    crl_expired(fe, cc, c, r, previous, next_update, 1);
			goto out;
		}
		/* The RA gave none: a cache downstream is to ask again. */
		copy = old, len = old_len;
		old = NULL;
		max_age = 0;
	} else if (res == UPSTREAM_UNAVAILABLE) {
		ret = http_unavailable(
		    c, r, "The CRL is not available now; retry later.\n");
		goto out;
	} else if (res != UPSTREAM_OK) {
		ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "Internal server error; the server log says more.\n");
		goto out;
	}
answer:
	/* No longer than the frontend's copy is fresh: a revocation shows
	 * within CACHE_SECONDS, whatever caches are on the way. */
	snprintf(cache_control, sizeof(cache_control), "max-age=%d", max_age);
	ret = http_respond(
	    c, r, MHD_HTTP_OK, "application/pkix-crl", copy, len, h);
out:
	free(copy);
	free(old);
	return ret;
}
