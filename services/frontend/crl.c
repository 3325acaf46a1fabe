/*
 * The CRL over plain HTTP at CRLPath (the CRL distribution point the CA
 * puts in certificates): asked of the RA, which asks the CA, and kept for
 * CACHE_SECONDS so a crowd of relying parties costs the CA nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "log.h"

void
crl_cache_clear(struct crl_cache *c)
{
	free(c->der);
	c->der = NULL;
	c->len = 0;
	c->at = 0;
}

enum MHD_Result
crl_handle(struct frontend *fe, struct MHD_Connection *c, struct request *r)
{
	struct crl_cache *cc = &fe->crl;
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCrlRequest body = SCEP__V1__GET_CRL_REQUEST__INIT;
	Scep__V1__Reply *rep = NULL;
	uint8_t *copy = NULL;
	size_t len = 0;
	enum MHD_Result ret;
	static const struct http_header h[] = {
	    {"Cache-Control", "max-age=60"}, {NULL, NULL}};

	pthread_mutex_lock(&fe->cache.lock);
	if (cc->der != NULL &&
	    clock_monotonic_ms() - cc->at < CACHE_SECONDS * 1000 &&
	    (copy = malloc(cc->len)) != NULL) {
		memcpy(copy, cc->der, cc->len);
		len = cc->len;
	}
	pthread_mutex_unlock(&fe->cache.lock);
	if (copy == NULL) {
		req.body_case = SCEP__V1__REQUEST__BODY_GET_CRL;
		req.get_crl = &body;
		switch (upstream_call(fe, UPSTREAM_RA, &req,
		    SCEP__V1__REPLY__BODY_GET_CRL, &rep)) {
		case UPSTREAM_OK:
			break;
		case UPSTREAM_UNAVAILABLE:
			ret = http_unavailable(c, r,
			    "The CRL is not available now; retry later.\n");
			goto out;
		default:
			ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "Internal server error; the server log says "
			    "more.\n");
			goto out;
		}
		len = rep->get_crl->crl.len;
		if ((copy = malloc(len)) == NULL) {
			ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "Out of memory.\n");
			goto out;
		}
		memcpy(copy, rep->get_crl->crl.data, len);
		pthread_mutex_lock(&fe->cache.lock);
		crl_cache_clear(cc);
		if ((cc->der = malloc(len)) != NULL) {
			memcpy(cc->der, copy, len);
			cc->len = len;
			cc->at = clock_monotonic_ms();
		}
		pthread_mutex_unlock(&fe->cache.lock);
	}
	ret = http_respond(
	    c, r, MHD_HTTP_OK, "application/pkix-crl", copy, len, h);
out:
	free(copy);
	if (rep != NULL)
		scep__v1__reply__free_unpacked(rep, NULL);
	return ret;
}
