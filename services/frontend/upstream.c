/*
 * The frontend's side of the RPC: per-thread clients of the RA and of the
 * challenge service, and the cache of the RA's GetCACaps/GetCACert answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontend.h"
#include "log.h"

struct upstream_clients {
	struct rpc_client *client[2]; /* by enum upstream */
};

static const char *const upstream_names[] = {"RA", "challenge service"};

/* pthread key destructor: runs in the worker thread as it exits, so the
 * sockets are closed by the thread that used them, before zmq_ctx_term. */
void
upstream_thread_free(void *p)
{
	struct upstream_clients *uc = p;

	if (uc == NULL)
		return;
	rpc_client_free(uc->client[0]);
	rpc_client_free(uc->client[1]);
	free(uc);
}

static struct rpc_client *
upstream_client(struct frontend *fe, enum upstream which)
{
	struct upstream_clients *uc = pthread_getspecific(fe->clients_key);

	if (uc == NULL) {
		if ((uc = calloc(1, sizeof(*uc))) == NULL)
			return NULL;
		if (pthread_setspecific(fe->clients_key, uc) != 0) {
			free(uc);
			return NULL;
		}
	}
	if (uc->client[which] == NULL &&
	    (uc->client[which] = rpc_client_new_link(fe->zmq_ctx,
	         which == UPSTREAM_RA ? fe->ra_link : fe->challenge_link,
	         "frontend")) != NULL)
		rpc_client_set_max(uc->client[which],
		    which == UPSTREAM_RA ? RPC_MAX_RA_REQUEST
		                         : RPC_MAX_CHALLENGE_REQUEST);
	return uc->client[which];
}

size_t
upstream_endpoints(struct frontend *fe, enum upstream which)
{
	struct rpc_client *client = upstream_client(fe, which);

	return client != NULL ? rpc_client_endpoints(client) : 0;
}

const char *
upstream_endpoint(struct frontend *fe, enum upstream which, size_t i)
{
	struct rpc_client *client = upstream_client(fe, which);

	return client != NULL ? rpc_client_endpoint(client, i) : NULL;
}

enum upstream_result
upstream_call(struct frontend *fe, enum upstream which, Scep__V1__Request *req,
    Scep__V1__Reply__BodyCase expect, Scep__V1__Reply **reply)
{
	return upstream_call_at(fe, which, SIZE_MAX, req, expect, reply);
}

/* `endpoint` SIZE_MAX: any. */
enum upstream_result
upstream_call_at(struct frontend *fe, enum upstream which, size_t endpoint,
    Scep__V1__Request *req, Scep__V1__Reply__BodyCase expect,
    Scep__V1__Reply **reply)
{
	struct rpc_client *client = upstream_client(fe, which);
	const char *name = upstream_names[which];
	Scep__V1__Reply *rep = NULL;
	int rc;

	*reply = NULL;
	if (client == NULL) {
		log_error("cannot create a ZeroMQ client for the %s", name);
		return UPSTREAM_UNAVAILABLE;
	}
	/* Each ChallengeIssue makes a password: a copy sent again after a
	 * third of the time (rpc_call) made another that nobody was shown,
	 * counted against PasswordMax until it expired. */
	if (req->body_case == SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE)
		rc = rpc_call_once(
		    client, req, (int)fe->settings.rpc_timeout, &rep);
	else if (endpoint != SIZE_MAX)
		rc = rpc_call_at(
		    client, endpoint, req, (int)fe->settings.rpc_timeout, &rep);
	else
		rc = rpc_call(client, req, (int)fe->settings.rpc_timeout, &rep);
	if (rc != RPC_OK) {
		log_warn("the %s did not answer: %s", name, rpc_strerror(rc));
		/* Too big: refused here, never sent (the service would
		 * drop it without a word and we would wait it out). */
		return rc == RPC_EPROTO || rc == RPC_ETOOBIG
		    ? UPSTREAM_FAILED
		    : UPSTREAM_UNAVAILABLE;
	}
	*reply = rep;
	switch (rep->status) {
	case SCEP__V1__STATUS__STATUS_OK:
		if (rep->body_case != expect) {
			log_error("the %s answered with body %d, not %d", name,
			    (int)rep->body_case, (int)expect);
			return UPSTREAM_FAILED;
		}
		return UPSTREAM_OK;
	case SCEP__V1__STATUS__STATUS_REFUSED:
		return UPSTREAM_REFUSED;
	case SCEP__V1__STATUS__STATUS_BAD_REQUEST:
		return UPSTREAM_BAD_REQUEST;
	case SCEP__V1__STATUS__STATUS_RATE_LIMITED:
		return UPSTREAM_RATE_LIMITED;
	case SCEP__V1__STATUS__STATUS_UNAVAILABLE:
		log_warn("the %s is unavailable: %s", name,
		    rep->error ? rep->error : "no reason given");
		return UPSTREAM_UNAVAILABLE;
	default:
		log_error("the %s failed: %s", name,
		    rep->error ? rep->error : "no reason given");
		return UPSTREAM_FAILED;
	}
}

void
cacert_clear(struct cacert *c)
{
	free(c->body);
	free(c->content_type);
	free(c->ca_der);
	for (size_t i = 0; i < c->nchain; i++)
		free(c->chain[i].data);
	free(c->chain);
	free(c->caps);
	free(c->next_ca);
	memset(c, 0, sizeof(*c));
}

static uint8_t *
bytes_dup(const uint8_t *src, size_t len)
{
	uint8_t *dst = malloc(len ? len : 1);

	if (dst != NULL && len > 0)
		memcpy(dst, src, len);
	return dst;
}

/* A copy of the `want` parts of src, whose memory may be the cache's or a
 * reply's. */
static int
cacert_copy(struct cacert *dst, const struct cacert *src, unsigned int want)
{
	memset(dst, 0, sizeof(*dst));
	if ((want & CACERT_CAPS) && src->caps != NULL &&
	    (dst->caps = strdup(src->caps)) == NULL)
		goto fail;
	if ((want & CACERT_NEXT) && src->next_ca != NULL) {
		if ((dst->next_ca =
		            bytes_dup(src->next_ca, src->next_ca_len)) == NULL)
			goto fail;
		dst->next_ca_len = src->next_ca_len;
	}
	if (!(want & CACERT_CERTS))
		return 0;
	dst->body = bytes_dup(src->body, src->body_len);
	dst->ca_der = bytes_dup(src->ca_der, src->ca_der_len);
	dst->content_type = strdup(src->content_type);
	if (src->nchain > 0)
		dst->chain = calloc(src->nchain, sizeof(*dst->chain));
	if (dst->body == NULL || dst->ca_der == NULL ||
	    dst->content_type == NULL ||
	    (src->nchain > 0 && dst->chain == NULL))
		goto fail;
	for (; dst->nchain < src->nchain; dst->nchain++) {
		const ProtobufCBinaryData *c = &src->chain[dst->nchain];

		if ((dst->chain[dst->nchain].data =
		            bytes_dup(c->data, c->len)) == NULL)
			goto fail;
		dst->chain[dst->nchain].len = c->len;
	}
	dst->body_len = src->body_len;
	dst->ca_der_len = src->ca_der_len;
	return 0;
fail:
	cacert_clear(dst);
	return -1;
}

void
cache_init(struct cache *cache)
{
	memset(cache, 0, sizeof(*cache));
	pthread_mutex_init(&cache->lock, NULL);
}

void
cache_free(struct cache *cache)
{
	cacert_clear(&cache->cacert);
	pthread_mutex_destroy(&cache->lock);
}

/* How long a copy is answered without asking the RA (CACHE_SECONDS). */
static int64_t
cache_fresh_ms(void)
{
#ifdef SCEPD_TEST_HOOKS
	/* Test builds only: a cache that ages in seconds, for
	 * test_slow_upstream. */
	if (getenv("SCEPD_TEST_FRONTEND_CACHE_MS") != NULL)
		return atol(getenv("SCEPD_TEST_FRONTEND_CACHE_MS"));
#endif
	return CACHE_SECONDS * 1000;
}

int
cache_fresh(int64_t at, int stale)
{
	int64_t max_age_ms = cache_fresh_ms();

	if (stale)
		max_age_ms *= CACHE_STALE_SECONDS / CACHE_SECONDS;
	return at != 0 && clock_monotonic_ms() - at < max_age_ms;
}

int
cache_seconds_left(int64_t at)
{
	int64_t left =
	    at == 0 ? 0 : at + cache_fresh_ms() - clock_monotonic_ms();

	return left > 0 ? (int)(left / 1000) : 0;
}

/*
 * Whether a request may ask the RA after it did not answer: one at a time
 * (its claim, when `claim`, set in *since). A claim left by a request
 * that never asked (its wait for an UpstreamThread ended in 503) lapses
 * after twice RPCTimeout.
 */
int
cache_ask_free(const struct frontend *fe, int64_t *since, int claim)
{
	int64_t now = clock_monotonic_ms();
	int free_to_ask =
	    *since == 0 || now - *since > 2 * fe->settings.rpc_timeout;

	if (free_to_ask && claim)
		*since = now;
	return free_to_ask;
}

static int
cache_take_probe(struct frontend *fe, int claim, int *probing)
{
	int free_to_ask;

	pthread_mutex_lock(&fe->cache.lock);
	free_to_ask = cache_ask_free(fe, &fe->cache.probe_since, claim);
	*probing = free_to_ask && claim;
	pthread_mutex_unlock(&fe->cache.lock);
	return free_to_ask;
}

static void
cache_probe_done(struct frontend *fe, int probing)
{
	if (!probing)
		return;
	pthread_mutex_lock(&fe->cache.lock);
	fe->cache.probe_since = 0;
	pthread_mutex_unlock(&fe->cache.lock);
}

/*
 * What a cached answer fetched at `at` (0: none) is good for: answered
 * as it is (UPSTREAM_OK; a refresh asked when it is old), asked of the
 * RA (UPSTREAM_FAILED: the caller fetches, its copy the fallback), or
 * UPSTREAM_WOULD_WAIT when the caller may not wait for that, or
 * UPSTREAM_UNAVAILABLE (with `err`). *probing: this caller holds the one
 * ask after a failure (cache_probe_done after it). The one place of the
 * rule of struct cache.
 */
static enum upstream_result
cache_verdict(struct frontend *fe, int64_t at, int64_t failed_at, int may_wait,
    int *probing, char *err, size_t errlen)
{
	*probing = 0;
	/* The RA did not answer lately: the old copy, not RPCTimeout of
	 * waiting for it again for each admin page, profile or device. */
	if (at != 0 && cache_fresh(failed_at, 0))
		return UPSTREAM_OK;
	/* No copy either (a frontend started while the RA was down): one
	 * request asks at a time, the others get 503 at once, rather than
	 * each device and page holding an UpstreamThread for RPCTimeout,
	 * which took them all. The first to ask after the RA is back fills
	 * the cache for everyone. */
	if (at == 0 && failed_at != 0 &&
	    clock_monotonic_ms() - failed_at < CACHE_EMPTY_RETRY_MS &&
	    !cache_take_probe(fe, may_wait, probing)) {
		snprintf(err, errlen,
		    "the RA did not answer lately; retry in a few seconds");
		return UPSTREAM_UNAVAILABLE;
	}
	if (at != 0 &&
	    (cache_fresh(at, 0) || (!may_wait && cache_fresh(at, 1)))) {
		if (!cache_fresh(at, 0))
			cache_want_refresh(fe);
		return UPSTREAM_OK;
	}
	/* A copy too old to give unasked, and the last ask failed: one
	 * request asks at a time and the others get the copy at once, as
	 * they would if the RA did not answer again; each asking held an
	 * UpstreamThread for RPCTimeout while the RA stayed down. */
	if (at != 0 && failed_at != 0 &&
	    !cache_take_probe(fe, may_wait, probing))
		return UPSTREAM_OK;
	return may_wait ? UPSTREAM_FAILED : UPSTREAM_WOULD_WAIT;
}

/* An ask the RA did not answer: for CACHE_SECONDS, no refresh, and the
 * old copies are the answers (cache_verdict). */
static void
cache_failed(struct frontend *fe, enum upstream_result res)
{
	if (res != UPSTREAM_UNAVAILABLE)
		return;
	pthread_mutex_lock(&fe->cache.lock);
	fe->cache.refresh_failed_at = clock_monotonic_ms();
	pthread_mutex_unlock(&fe->cache.lock);
}

static void
reply_error(
    const Scep__V1__Reply *rep, const char *def, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s",
	    rep != NULL && rep->error != NULL ? rep->error : def);
}

/*
 * The lock is not held during the RPC: two threads missing at once both
 * ask the RA, which is cheap, rather than one waiting up to RPCTimeout.
 */
enum upstream_result
cache_get_cacert(struct frontend *fe, struct cacert *out, unsigned int want,
    int may_wait, char *err, size_t errlen)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCACertRequest body = SCEP__V1__GET_CACERT_REQUEST__INIT;
	Scep__V1__Reply *rep = NULL;
	Scep__V1__GetCACertReply *cr;
	struct cacert fresh, old, answer; /* answer: the reply's memory */
	enum upstream_result res = UPSTREAM_OK;
	int64_t at, failed_at;
	int oom = 0, probing;

	memset(out, 0, sizeof(*out));
	memset(&old, 0, sizeof(old));
	pthread_mutex_lock(&fe->cache.lock);
	if ((at = fe->cache.cacert_at) != 0) {
		oom = cacert_copy(out, &fe->cache.cacert, want) != 0;
		out->fetched_at = at;
	}
	failed_at = fe->cache.refresh_failed_at;
	pthread_mutex_unlock(&fe->cache.lock);
	if (oom) {
		snprintf(err, errlen, "out of memory");
		return UPSTREAM_FAILED;
	}
	res = cache_verdict(fe, at, failed_at, may_wait, &probing, err, errlen);
	if (res != UPSTREAM_FAILED) {
		if (res != UPSTREAM_OK)
			cacert_clear(out);
		return res;
	}
	old = *out; /* the answer if the RA gives none */
	memset(out, 0, sizeof(*out));

	req.body_case = SCEP__V1__REQUEST__BODY_GET_CA_CERT;
	req.get_ca_cert = &body;
	res = upstream_call(
	    fe, UPSTREAM_RA, &req, SCEP__V1__REPLY__BODY_GET_CA_CERT, &rep);
	cache_probe_done(fe, probing);
	if (res != UPSTREAM_OK) {
		reply_error(
		    rep, "the RA did not give its certificates", err, errlen);
		cache_failed(fe, res);
		goto out;
	}
	cr = rep->get_ca_cert;
	answer.body = cr->body.data;
	answer.body_len = cr->body.len;
	answer.content_type = cr->content_type;
	answer.ca_der = cr->ca_cert.data;
	answer.ca_der_len = cr->ca_cert.len;
	answer.chain = cr->ca_chain;
	answer.nchain = cr->n_ca_chain;
	answer.caps = cr->caps;
	answer.next_ca = cr->has_next_ca_cert ? cr->next_ca_cert.data : NULL;
	answer.next_ca_len = cr->has_next_ca_cert ? cr->next_ca_cert.len : 0;
	if (cacert_copy(out, &answer, want) != 0 ||
	    cacert_copy(&fresh, &answer,
	        CACERT_CERTS | CACERT_CAPS | CACERT_NEXT) != 0) {
		cacert_clear(out);
		snprintf(err, errlen, "out of memory");
		res = UPSTREAM_FAILED;
		goto out;
	}
	pthread_mutex_lock(&fe->cache.lock);
	cacert_clear(&fe->cache.cacert);
	fe->cache.cacert = fresh;
	fe->cache.cacert_at = out->fetched_at = clock_monotonic_ms();
	fe->cache.refresh_failed_at = 0; /* the RA is back */
	pthread_mutex_unlock(&fe->cache.lock);
out:
	if (res != UPSTREAM_OK && at != 0) {
		*out = old; /* logged by upstream_call */
		memset(&old, 0, sizeof(old));
		res = UPSTREAM_OK;
	}
	cacert_clear(&old);
	if (rep != NULL)
		scep__v1__reply__free_unpacked(rep, NULL);
	return res;
}

/* One refresh at a time, and none for CACHE_SECONDS after one failed:
 * with the RA gone, each would hold an offload thread for RPCTimeout. */
void
cache_want_refresh(struct frontend *fe)
{
	int ask;

	pthread_mutex_lock(&fe->cache.lock);
	ask = !fe->cache.refresh_asked &&
	    !cache_fresh(fe->cache.refresh_failed_at, 0);
	if (ask)
		fe->cache.refresh_asked = 1;
	pthread_mutex_unlock(&fe->cache.lock);
	if (ask)
		offload_refresh(fe->offload);
}

/* The RA refused what was made of the copy (a profile of a chain it no
 * longer has): the copy counts as older than fresh, to be asked again at
 * once and still answered meanwhile. */
void
cache_doubt(struct frontend *fe)
{
	pthread_mutex_lock(&fe->cache.lock);
	if (cache_fresh(fe->cache.cacert_at, 0))
		fe->cache.cacert_at = clock_monotonic_ms() - cache_fresh_ms();
	pthread_mutex_unlock(&fe->cache.lock);
	cache_want_refresh(fe);
}

/* What is still fresh costs nothing: cache_get_cacert answers it from
 * the cache. */
void
cache_refresh(struct frontend *fe)
{
	struct cacert cc;
	char err[256];
	int failed;

	/* An old copy is the answer when the RA gives none: whether the RA
	 * answered is whether the cache is fresh afterwards. */
	if (cache_get_cacert(fe, &cc, 0, 1, err, sizeof(err)) == UPSTREAM_OK)
		cacert_clear(&cc);
	pthread_mutex_lock(&fe->cache.lock);
	failed = !cache_fresh(fe->cache.cacert_at, 0);
	fe->cache.refresh_asked = 0;
	fe->cache.refresh_failed_at = failed ? clock_monotonic_ms() : 0;
	pthread_mutex_unlock(&fe->cache.lock);
}
