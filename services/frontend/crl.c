/*
 * The CRL over plain HTTP at CRLPath (the CRL distribution point the CA
 * puts in certificates): asked of the RA, which asks the CA, and kept for
 * CACHE_SECONDS so a crowd of relying parties costs the CA nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
}

/*
 * Whether this request is the one to ask the RA (1) or not: one asks at a
 * time, and, unless `after_failure`, none for CRL_RETRY_MS after an ask
 * the RA did not answer. The one that asks may never do (its wait for an
 * UpstreamThread ended in 503): after twice RPCTimeout another may.
 */
static int
crl_claim_fetch(struct frontend *fe, int after_failure)
{
	struct crl_cache *cc = &fe->crl;
	int fetch;

	pthread_mutex_lock(&fe->cache.lock);
	fetch = (after_failure || cc->failed_at == 0 ||
	            clock_monotonic_ms() - cc->failed_at >= CRL_RETRY_MS) &&
	    cache_ask_free(fe, &cc->fetch_since, 1);
	pthread_mutex_unlock(&fe->cache.lock);
	return fetch;
}

/* Whether the RA did not give the CRL less than CRL_RETRY_MS ago. */
static int
crl_failed_lately(struct frontend *fe)
{
	int64_t failed_at;

	pthread_mutex_lock(&fe->cache.lock);
	failed_at = fe->crl.failed_at;
	pthread_mutex_unlock(&fe->cache.lock);
	return failed_at != 0 &&
	    clock_monotonic_ms() - failed_at < CRL_RETRY_MS;
}

/* The CRL from the RA into the cache; *copy (the caller's) on
 * UPSTREAM_OK. */
static enum upstream_result
crl_fetch(struct frontend *fe, uint8_t **copy, size_t *len)
{
	struct crl_cache *cc = &fe->crl;
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCrlRequest body = SCEP__V1__GET_CRL_REQUEST__INIT;
	Scep__V1__Reply *rep = NULL;
	enum upstream_result res;

	*copy = NULL;
	req.body_case = SCEP__V1__REQUEST__BODY_GET_CRL;
	req.get_crl = &body;
	res = upstream_call(
	    fe, UPSTREAM_RA, &req, SCEP__V1__REPLY__BODY_GET_CRL, &rep);
	pthread_mutex_lock(&fe->cache.lock);
	cc->failed_at = res == UPSTREAM_UNAVAILABLE ? clock_monotonic_ms() : 0;
	cc->fetch_since = 0;
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
crl_cached(
    struct frontend *fe, uint8_t **copy, size_t *len, int *fresh, int *max_age)
{
	struct crl_cache *cc = &fe->crl;
	int have;

	*copy = NULL;
	pthread_mutex_lock(&fe->cache.lock);
	have = cc->der != NULL;
	if (have && (*copy = malloc(cc->len ? cc->len : 1)) != NULL) {
		memcpy(*copy, cc->der, cc->len);
		*len = cc->len;
		*fresh = cache_fresh(cc->at, 0);
		*max_age = cache_seconds_left(cc->at);
	}
	pthread_mutex_unlock(&fe->cache.lock);
	return have;
}

/* From the cache at once while it is fresh; else from the RA in an
 * offload thread, the old copy the answer when the RA gives none. Never
 * older unless the RA cannot be asked (or is being asked by another
 * request: crl_claim_fetch): a revocation is to show within
 * CACHE_SECONDS. */
enum MHD_Result
crl_handle(struct frontend *fe, struct MHD_Connection *c, struct request *r)
{
	uint8_t *copy = NULL, *old = NULL;
	size_t len = 0, old_len = 0;
	int fresh = 0, max_age = 0;
	enum upstream_result res;
	enum MHD_Result ret;
	char cache_control[32];
	struct http_header h[] = {
	    {"Cache-Control", cache_control}, {NULL, NULL}};

	if (crl_cached(fe, &copy, &len, &fresh, &max_age) && copy == NULL)
		return http_no_memory(c, r, "a copy of the CRL");
	if (!r->offloaded) {
		/* The old copy, while another asks or for CRL_RETRY_MS
		 * after the RA did not give one. */
		if (copy != NULL && (fresh || !crl_claim_fetch(fe, 0)))
			goto answer;
		/* None yet, and the RA did not give one lately: one
		 * request asks at a time, the others get 503 at once, not
		 * an UpstreamThread held for RPCTimeout by each relying
		 * party meanwhile. (Otherwise all ask: at a start with the
		 * RA up, none gets 503.) */
		if (copy == NULL && crl_failed_lately(fe) &&
		    !crl_claim_fetch(fe, 1))
			return http_unavailable(c, r,
			    "The CRL is not available now; retry later.\n");
		free(copy);
		return http_offload(fe, c, r);
	}
	old = copy, old_len = len; /* the answer if the RA gives none */
	res = crl_fetch(fe, &copy, &len);
	if (res == UPSTREAM_OK)
		max_age = cache_seconds_left(clock_monotonic_ms());
	else if (old != NULL) {
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
