/*
 * GetCrlRequest from the frontend (the CRL over plain HTTP at the CRL
 * distribution point): passed on to the CA, the only one that can sign
 * a CRL. The frontend keeps it for a while; the CA re-issues it in time.
 *
 * A SCEP GetCRL (pkioperation.c) answers with the CRL in a certs-only
 * SignedData, enveloped as it is: built once per CRL the CA gives
 * (ra_crl_answer). Parsing a CRL of 50,000 entries takes about 60 ms,
 * and any signer may ask.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ra.h"

struct ra_crl_cache {
	pthread_mutex_t lock; /* the fields below */
	pthread_mutex_t building; /* one build for a new CRL, the others wait */
	uint8_t *der; /* what the CA gave last */
	size_t len;
	uint8_t *answer; /* der in a certs-only SignedData */
	size_t answer_len;
};

struct ra_crl_cache *
ra_crl_cache_new(void)
{
	struct ra_crl_cache *cache = calloc(1, sizeof(*cache));

	if (cache == NULL)
		return NULL;
	if (pthread_mutex_init(&cache->lock, NULL) != 0) {
		free(cache);
		return NULL;
	}
	if (pthread_mutex_init(&cache->building, NULL) != 0) {
		pthread_mutex_destroy(&cache->lock);
		free(cache);
		return NULL;
	}
	return cache;
}

void
ra_crl_cache_free(struct ra_crl_cache *cache)
{
	if (cache == NULL)
		return;
	free(cache->answer);
	free(cache->der);
	pthread_mutex_destroy(&cache->building);
	pthread_mutex_destroy(&cache->lock);
	free(cache);
}

/* The answer for `der` copied into `arena` when the cache holds it. */
static int
crl_cached(struct ra_crl_cache *cache, const uint8_t *der, size_t len,
    struct rpc_arena *arena, const uint8_t **out, size_t *out_len)
{
	uint8_t *copy = NULL;

	pthread_mutex_lock(&cache->lock);
	if (cache->answer != NULL && cache->len == len &&
	    memcmp(cache->der, der, len) == 0 &&
	    (copy = rpc_alloc(arena, cache->answer_len)) != NULL) {
		memcpy(copy, cache->answer, cache->answer_len);
		*out = copy;
		*out_len = cache->answer_len;
	}
	pthread_mutex_unlock(&cache->lock);
	return copy != NULL;
}

/* `der` built into an answer, kept in place of the cache's. */
static int
crl_build_keep(struct ra_crl_cache *cache, const uint8_t *der, size_t len)
{
	uint8_t *answer, *copy;
	size_t answer_len;

	if (scep_crl_only_build(der, len, &answer, &answer_len) != SCEP_OK)
		return -1;
	if ((copy = malloc(len)) == NULL) {
		free(answer);
		return -1;
	}
	memcpy(copy, der, len);
	pthread_mutex_lock(&cache->lock);
	free(cache->answer);
	free(cache->der);
	cache->answer = answer;
	cache->answer_len = answer_len;
	cache->der = copy;
	cache->len = len;
	pthread_mutex_unlock(&cache->lock);
	return 0;
}

int
ra_crl_answer(struct ra_crl_cache *cache, const uint8_t *der, size_t len,
    struct rpc_arena *arena, const uint8_t **out, size_t *out_len)
{
	int ok;

	if (crl_cached(cache, der, len, arena, out, out_len))
		return 0;
	/*
	 * A revocation makes a new CRL, which every GetCRL then brings:
	 * built once, not by each worker at once (up to eight times the
	 * time and the memory). Workers with the cached CRL's bytes are not
	 * held up by the lock the build takes.
	 */
	pthread_mutex_lock(&cache->building);
	ok = crl_cached(cache, der, len, arena, out, out_len) ||
	    (crl_build_keep(cache, der, len) == 0 &&
	        crl_cached(cache, der, len, arena, out, out_len));
	pthread_mutex_unlock(&cache->building);
	return ok ? 0 : -1;
}

/* `b` copied into `arena`. */
static ProtobufCBinaryData
ra_crl_copy(const ProtobufCBinaryData *b, struct rpc_arena *arena)
{
	ProtobufCBinaryData copy = {b->len, rpc_alloc(arena, b->len)};

	memcpy(copy.data, b->data, b->len);
	return copy;
}

void
ra_handle_get_crl(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct ra_worker *w = worker;
	Scep__V1__Request call = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCrlRequest body = SCEP__V1__GET_CRL_REQUEST__INIT;
	Scep__V1__Reply *ca_reply = NULL;
	Scep__V1__GetCrlReply *out;
	int64_t left = req->deadline_ms - rpc_now_ms() - 50;
	int rc;

	body.has_previous_ca = req->get_crl->has_previous_ca;
	body.previous_ca = req->get_crl->previous_ca;
	call.body_case = SCEP__V1__REQUEST__BODY_GET_CRL;
	call.get_crl = &body;
	if (left > w->ra->settings.rpc_timeout)
		left = w->ra->settings.rpc_timeout;
	rc = rpc_call(w->ca, &call, left > 0 ? (int)left : 0, &ca_reply);
	if (rc == RPC_OK &&
	    ca_reply->status == SCEP__V1__STATUS__STATUS_REFUSED) {
		/* No such CRL is made (no PreviousCAKey, a CA expired with
		 * none): the frontend says why, not "retry later". */
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = rpc_strdup(arena,
		    ca_reply->error ? ca_reply->error : "the CA gives no CRL");
		goto out;
	}
	if (rc != RPC_OK || ca_reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    ca_reply->body_case != SCEP__V1__REPLY__BODY_GET_CRL) {
		log_event(LOG_LEVEL_WARN, NULL, req->id, "CRL from the CA: %s",
		    rc != RPC_OK ? rpc_strerror(rc)
		                 : (ca_reply->error ? ca_reply->error : "?"));
		reply->status = SCEP__V1__STATUS__STATUS_UNAVAILABLE;
		reply->error = "the CA did not give a CRL";
		goto out;
	}
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__get_crl_reply__init(out);
	out->crl = ra_crl_copy(&ca_reply->get_crl->crl, arena);
	out->next_update = ca_reply->get_crl->next_update;
	/* Whose CRL it is, for the frontend to check. */
	if (ca_reply->get_crl->has_issuer &&
	    ca_reply->get_crl->has_issuer_key_sha256) {
		out->issuer = ra_crl_copy(&ca_reply->get_crl->issuer, arena);
		out->issuer_key_sha256 =
		    ra_crl_copy(&ca_reply->get_crl->issuer_key_sha256, arena);
		out->has_issuer = out->has_issuer_key_sha256 = 1;
	}
	reply->body_case = SCEP__V1__REPLY__BODY_GET_CRL;
	reply->get_crl = out;
out:
	scep__v1__reply__free_unpacked(ca_reply, NULL);
}
