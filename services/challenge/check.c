/*
 * ChallengeCheckRequest and ChallengeConsumeRequest from the RA: the
 * validator of the request's SCEP path decides; this file adds what every
 * validator shares: the per-address limit on refusals (WrongPasswordLimit,
 * answered 429 by the frontend without slowing other clients), the
 * EnforcePassword rules, and the counters of /metrics.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "challenge.h"
#include "log.h"
#include "netaddr.h"

#define E_NO_PASSWORD \
	"the request carries no challengePassword; get one from the SCEP " \
	"admin page"
#define E_NO_PASSWORD_UNSAFE \
	"the request carries no challengePassword: EnforcePassword = 0 also " \
	"needs AllowNoPassword = 1 in [challenge]"

/* Whether the window of slot `s` is over at `now`: its time passed, or
 * the clock stepped back before its start (NTP after a boot with the
 * clock ahead), which would otherwise hold an address for the hours it
 * went back. */
static int
refusal_window_over(
    const struct challenge *c, const struct refusal_slot *s, int64_t now)
{
	return s->window_start + c->settings.wrong_password_window <= now ||
	    s->window_start > now;
}

/*
 * The count `addr` (a counted client: an address, or a /64) shares with
 * the others of its network when the slots are all taken: an IPv6
 * address's /48, an IPv4 address's /16 (one in NAT64's 64:ff9b::/96 is
 * its IPv4 host's), so that whoever fills the table (4096 /64s of one
 * /48) locks out its own network, not every new client. Keyed with the
 * service's secret into CHALLENGE_LIMIT_OTHERS counts: no one can choose
 * networks that cover them all.
 */
static struct refusal_slot *
refusal_others(struct challenge *c, const char *addr)
{
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
	unsigned char mac[CHALLENGE_MAC_LEN];
	char text[32];
	struct netaddr a;
	const uint8_t *net;
	int family;

	if (netaddr_parse(addr, strcspn(addr, "/"), &a) != 0)
		return &c->refusal_others[0];
	family = a.family;
	net = a.addr;
	if (family == AF_INET6 && memcmp(a.addr, nat64, sizeof(nat64)) == 0) {
		family = AF_INET;
		net = a.addr + 12;
	}
	if (family == AF_INET6)
		snprintf(text, sizeof(text), "6:%02x%02x%02x%02x%02x%02x",
		    net[0], net[1], net[2], net[3], net[4], net[5]);
	else
		snprintf(text, sizeof(text), "4:%u.%u", net[0], net[1]);
	if (challenge_mac(c, text, mac) != 0)
		return &c->refusal_others[0];
	return &c->refusal_others[((unsigned)mac[0] << 8 | mac[1]) %
	    CHALLENGE_LIMIT_OTHERS];
}

/*
 * The slot of `addr`; else, with `create`, a free one (or one whose
 * window is over) made its; else, when every slot counts an address
 * within its window, the count its network shares (refusal_others).
 * Taking a counting slot instead gave an address locked out its guesses
 * back: 4096 other addresses refused once each, and the limit no longer
 * held. NULL: none (`create` 0, a slot free).
 */
static struct refusal_slot *
refusal_slot(struct challenge *c, const char *addr, int64_t now, int create)
{
	struct refusal_slot *free_slot = NULL;

	for (size_t i = 0; i < CHALLENGE_LIMIT_SLOTS; i++) {
		struct refusal_slot *s = &c->refusals[i];

		if (s->addr[0] != '\0' && strcmp(s->addr, addr) == 0)
			return s;
		if ((free_slot == NULL || free_slot->addr[0] != '\0') &&
		    (s->addr[0] == '\0' || refusal_window_over(c, s, now)))
			free_slot = s;
	}
	if (free_slot == NULL)
		return refusal_others(c, addr);
	if (create) {
		memset(free_slot, 0, sizeof(*free_slot));
		snprintf(free_slot->addr, sizeof(free_slot->addr), "%s", addr);
		free_slot->window_start = now;
		return free_slot;
	}
	return NULL;
}

/*
 * Whom WrongPasswordLimit counts for the client `addr`: an IPv4 address,
 * or an IPv6 address's /64. A host on an IPv6 network is given a /64 (or
 * more) and picks any address in it: counted one by one, every guess
 * could come from another.
 */
static void
refusal_client(const char *addr, char *out, size_t outlen)
{
	struct netaddr a;
	size_t n;

	if (netaddr_parse(addr, strlen(addr), &a) != 0 ||
	    !netaddr_counts_by_64(&a)) {
		snprintf(out, outlen, "%s", addr);
		return;
	}
	memset(a.addr + 8, 0, 8);
	netaddr_format(&a, out, outlen);
	if ((n = strlen(out)) + 4 <= outlen)
		memcpy(out + n, "/64", 4);
}

/* Seconds until `addr` may try again, or 0 when it may now. */
static unsigned int
refusal_wait(struct challenge *c, const char *addr, int64_t now)
{
	struct refusal_slot *s;
	int64_t end;

	if (c->settings.wrong_password_limit == 0)
		return 0;
	if ((s = refusal_slot(c, addr, now, 0)) == NULL)
		return 0;
	end = s->window_start + c->settings.wrong_password_window;
	if (refusal_window_over(c, s, now) ||
	    s->count < (unsigned long)c->settings.wrong_password_limit)
		return 0;
	return (unsigned int)(end - now);
}

static void
refusal_record(struct challenge *c, const char *addr, int64_t now)
{
	struct refusal_slot *s;

	if (c->settings.wrong_password_limit == 0)
		return;
	if ((s = refusal_slot(c, addr, now, 1)) == NULL)
		return;
	if (refusal_window_over(c, s, now)) {
		s->window_start = now;
		s->count = 0;
	}
	s->count++;
	if (s >= c->refusal_others &&
	    s < c->refusal_others + CHALLENGE_LIMIT_OTHERS) {
		if (s->count == 1 ||
		    s->count == (unsigned long)c->settings.wrong_password_limit)
			log_warn(
			    "security: all %d WrongPasswordLimit counts "
			    "hold addresses refused within their window: "
			    "client %s shares one count with the others of "
			    "its network (IPv6 /48, IPv4 /16) that have "
			    "none, %lu of %ld refusals (at the limit all of "
			    "them get 429 for the rest of the window)",
			    CHALLENGE_LIMIT_SLOTS, addr, s->count,
			    c->settings.wrong_password_limit);
		return;
	}
	if (s->count == (unsigned long)c->settings.wrong_password_limit)
		log_warn("security: client %s refused %lu times in %ld s "
		         "(WrongPasswordLimit): further requests get 429 for "
		         "the rest of the window",
		    addr, s->count, c->settings.wrong_password_window);
}

/* What a check asks, as one digest: a copy asks the same of the same
 * validator, on the same path, from the same client. */
static int
inflight_digest(const struct validator *v,
    const struct scepd_challenge_request *vr, unsigned char out[32])
{
	const char *parts[] = {v->name, vr->path, vr->requester,
	    vr->transaction_id, vr->challenge};
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;
	int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;

	for (size_t i = 0; ok && i < sizeof(parts) / sizeof(parts[0]); i++)
		ok = EVP_DigestUpdate(md, parts[i], strlen(parts[i]) + 1) == 1;
	ok = ok &&
	    (vr->csr_der_len == 0 ||
	        EVP_DigestUpdate(md, vr->csr_der, vr->csr_der_len) == 1) &&
	    EVP_DigestFinal_ex(md, out, &len) == 1 && len == 32;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* Whether a slot may be taken for another check: answered, read by its
 * copies, and its verdict no longer kept. */
static int
inflight_free(const struct challenge_inflight *s, int64_t now_ms)
{
	return !s->in_use ||
	    (s->done && s->waiters == 0 && now_ms >= s->keep_until_ms);
}

/*
 * The slot of the same check in flight, or answered and kept: a copy the
 * frontend or the RA sends again after a third of its timeout (a slow CA
 * behind an answered check) would otherwise ask the validator again, and
 * with a plugin asked one check at a time find it busy and be answered
 * 503 although the first request got its certificate. NULL: none.
 */
static struct challenge_inflight *
inflight_find(struct challenge *c, const unsigned char asked[32])
{
	int64_t now = rpc_now_ms();

	for (size_t i = 0; i < CHALLENGE_INFLIGHT; i++) {
		struct challenge_inflight *s = &c->inflight[i];

		if (s->in_use && (!s->done || now < s->keep_until_ms) &&
		    memcmp(s->asked, asked, 32) == 0)
			return s;
	}
	return NULL;
}

/* A free slot for a new check, else the kept answer that expires first
 * (a check in flight matters more than an answer kept for a copy); NULL
 * when every slot is in flight (more than Workers: not expected), the
 * check then goes on unrecorded. */
static struct challenge_inflight *
inflight_claim(struct challenge *c, const unsigned char asked[32])
{
	int64_t now = rpc_now_ms();
	struct challenge_inflight *s = NULL;

	for (size_t i = 0; i < CHALLENGE_INFLIGHT; i++) {
		struct challenge_inflight *x = &c->inflight[i];

		if (inflight_free(x, now)) {
			s = x;
			break;
		}
		if (x->done && x->waiters == 0 &&
		    (s == NULL || x->keep_until_ms < s->keep_until_ms))
			s = x;
	}
	if (s == NULL)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->in_use = 1;
	memcpy(s->asked, asked, 32);
	return s;
}

/* A consume waits its turn at a one-at-a-time plugin this long past its
 * request's deadline: the certificate is issued, and the MDM must hear of
 * it, or it may allow the password again; the RA has stopped waiting for
 * the answer, which says nothing it needs. */
#define CONSUME_GRACE_MS 30000

/* Whether the same consume was done before its request's deadline;
 * records it when not. Under c->lock. */
static int
consume_done_before(
    struct challenge *c, const unsigned char asked[32], int64_t until_ms)
{
	int64_t now = rpc_now_ms();
	struct challenge_consumed *oldest = &c->consumed[0];

	for (size_t i = 0; i < CHALLENGE_INFLIGHT; i++) {
		struct challenge_consumed *x = &c->consumed[i];

		if (now < x->until_ms && memcmp(x->asked, asked, 32) == 0)
			return 1;
		if (x->until_ms < oldest->until_ms)
			oldest = x;
	}
	memcpy(oldest->asked, asked, 32);
	oldest->until_ms = until_ms;
	return 0;
}

/* A consume recorded by consume_done_before was not done: a copy may do
 * it. Under c->lock. */
static void
consume_not_done(struct challenge *c, const unsigned char asked[32])
{
	for (size_t i = 0; i < CHALLENGE_INFLIGHT; i++)
		if (memcmp(c->consumed[i].asked, asked, 32) == 0)
			c->consumed[i].until_ms = 0;
}

/*
 * Asks a plugin without the service's lock (held on entry and on return),
 * once for what is asked: a copy sent again while the first is being
 * answered waits for its verdict, at most until the caller's deadline,
 * and one sent after it gets the verdict kept until the first's deadline
 * (*copy set: counted and logged once).
 */
static enum scepd_verdict
plugin_check_once(struct challenge *c, struct validator *v, size_t worker,
    const Scep__V1__Request *req, const struct scepd_challenge_request *vr,
    char *why, size_t whylen, int *copy)
{
	unsigned char asked[32];
	int digested = inflight_digest(v, vr, asked) == 0;
	struct challenge_inflight *s =
	    digested ? inflight_find(c, asked) : NULL;
	enum scepd_verdict verdict;

	*copy = s != NULL;
	if (s != NULL) {
		struct timespec until = challenge_deadline(req->deadline_ms);
		int timed_out = 0, answered = s->done;

		if (!s->done && validator_worker_take(v, why, whylen) != 0) {
			*copy = 0;
			return SCEPD_VERDICT_UNAVAILABLE;
		}
		s->waiters++;
		while (!s->done && !timed_out)
			timed_out =
			    pthread_cond_clockwait(&c->inflight_done, &c->lock,
			        CLOCK_MONOTONIC, &until) == ETIMEDOUT;
		s->waiters--;
		if (!answered)
			validator_worker_give(c);
		if (!s->done) {
			*copy = 0; /* its own outage: logged and counted */
			snprintf(why, whylen,
			    "validator %s: no answer before the deadline",
			    v->name);
			return SCEPD_VERDICT_UNAVAILABLE;
		}
		snprintf(why, whylen, "%s", s->why);
		verdict = s->verdict;
		log_event(LOG_LEVEL_INFO, vr->transaction_id, req->id,
		    "validator %s: the same check again (a request sent "
		    "again%s): the answer of the first",
		    v->name, answered ? ", after it was answered" : "");
		return verdict;
	}
	s = digested ? inflight_claim(c, asked) : NULL;
	pthread_mutex_unlock(&c->lock);
	verdict = validator_check(v, worker, req->deadline_ms, vr, why, whylen);
	pthread_mutex_lock(&c->lock);
	if (s != NULL) {
		s->verdict = verdict;
		why[whylen - 1] = '\0';
		snprintf(s->why, sizeof(s->why), "%s", why);
		s->done = 1;
		/* No answer is no verdict: a copy asks again. */
		if (verdict != SCEPD_VERDICT_UNAVAILABLE)
			s->keep_until_ms = req->deadline_ms;
		pthread_cond_broadcast(&c->inflight_done);
	}
	return verdict;
}

/* PEM of the CSR for validators that pass it on; NULL when none. */
static char *
csr_pem(const ProtobufCBinaryData *der)
{
	BIO *b;
	BUF_MEM *mem;
	char *out = NULL;

	if (der->len == 0 || (b = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (PEM_write_bio(
	        b, "CERTIFICATE REQUEST", "", der->data, (long)der->len) > 0 &&
	    BIO_get_mem_ptr(b, &mem) == 1 &&
	    (out = malloc(mem->length + 1)) != NULL) {
		memcpy(out, mem->data, mem->length);
		out[mem->length] = '\0';
	}
	BIO_free(b);
	return out;
}

void
challenge_check(struct challenge *c, size_t worker, int locked,
    const Scep__V1__Request *req, Scep__V1__Reply *reply,
    struct rpc_arena *arena)
{
	const Scep__V1__ChallengeCheckRequest *in = req->challenge_check;
	Scep__V1__ChallengeCheckReply *out;
	struct scepd_challenge_request vr;
	struct validator *v;
	const char **sans = NULL;
	char why[512] = "", *pem = NULL;
	const char *addr, *password;
	char counted[sizeof(((struct refusal_slot *)0)->addr)];
	int64_t now = c->now();
	unsigned int wait;
	int checked = 0; /* the validator saw the password */
	int reserved_now = 0; /* and reserved it, free till then */
	int known = 0; /* otp: refused, but on record: no guess */
	int copy = 0; /* the RA's request again: answered as the first */
	enum scepd_verdict verdict;

	addr = in->client_addr != NULL && in->client_addr[0] != '\0'
	    ? in->client_addr
	    : "-";
	password = in->password != NULL ? in->password : "";
	if (in->transaction_id == NULL || in->transaction_id[0] == '\0' ||
	    strlen(in->transaction_id) >= CHALLENGE_TXID_MAX) {
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "refused request from %s: transactionID missing or longer "
		    "than %d bytes",
		    req->origin ? req->origin : "?", CHALLENGE_TXID_MAX - 1);
		/* The device's to fix: refused (FAILURE), not our error. */
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = rpc_alloc(arena, 64);
		snprintf(reply->error, 64,
		    "transactionID missing or longer than %d characters",
		    CHALLENGE_TXID_MAX - 1);
		return;
	}
	refusal_client(addr, counted, sizeof(counted));
	if ((wait = refusal_wait(c, counted, now)) > 0) {
		c->counters.rate_limited++;
		log_event(LOG_LEVEL_WARN, in->transaction_id, req->id,
		    "client %s%s%s%s is over WrongPasswordLimit = %ld: 429 for "
		    "%u s",
		    addr, strcmp(addr, counted) != 0 ? " (counted as " : "",
		    strcmp(addr, counted) != 0 ? counted : "",
		    strcmp(addr, counted) != 0 ? ")" : "",
		    c->settings.wrong_password_limit, wait);
		reply->status = SCEP__V1__STATUS__STATUS_RATE_LIMITED;
		reply->error = "Too many refused challenge passwords from this "
		               "address; retry later.";
		reply->has_retry_after_s = 1;
		reply->retry_after_s = wait;
		return;
	}
	v = validators_for_path(c, in->path);
	if (!c->settings.enforce_password && c->settings.allow_no_password) {
		c->counters.allowed_without_password++;
		log_event(LOG_LEVEL_WARN, in->transaction_id, req->id,
		    "unsafe: no password checked for client %s "
		    "(EnforcePassword = 0, AllowNoPassword = 1)",
		    addr);
		goto allow;
	}
	if (password[0] == '\0') {
		c->counters.refused_missing++;
		log_event(LOG_LEVEL_WARN, in->transaction_id, req->id,
		    "refused client %s: no challengePassword", addr);
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = c->settings.enforce_password
		    ? E_NO_PASSWORD
		    : E_NO_PASSWORD_UNSAFE;
		return;
	}
	if (strlen(password) > CHALLENGE_PASSWORD_MAX) {
		snprintf(why, sizeof(why),
		    "challenge password is not valid or has expired");
		verdict = SCEPD_VERDICT_REFUSE;
		goto decided;
	}
	memset(&vr, 0, sizeof(vr));
	vr.challenge = password;
	vr.transaction_id = in->transaction_id;
	vr.path = in->path != NULL ? in->path : "";
	vr.csr_der = in->has_csr ? in->csr.data : NULL;
	vr.csr_der_len = in->has_csr ? in->csr.len : 0;
	vr.csr_pem = in->has_csr ? (pem = csr_pem(&in->csr)) : NULL;
	vr.subject = in->subject != NULL ? in->subject : "";
	sans = calloc(in->n_sans + 1, sizeof(*sans));
	for (size_t i = 0; sans != NULL && i < in->n_sans; i++)
		sans[i] = in->sans[i];
	vr.sans = sans;
	vr.requester = addr;
	if (sans == NULL) {
		snprintf(why, sizeof(why), "out of memory");
		verdict = SCEPD_VERDICT_UNAVAILABLE;
	} else if (locked && v->dl != NULL) {
		/* A plugin asks an MDM: other checks go on meanwhile. Its
		 * instance is this worker's; `v` does not change. */
		verdict = plugin_check_once(
		    c, v, worker, req, &vr, why, sizeof(why), &copy);
		checked = 1;
	} else {
		c->otp_reserved_now = 0;
		c->otp_known = 0;
		c->otp_report_within_ms = in->has_report_within_ms
		    ? in->report_within_ms
		    : (in->has_answer_within_ms ? in->answer_within_ms
		                                : CHALLENGE_ANSWER_WITHIN_MS);
		verdict = v->dl != NULL
		    ? validator_check(
		          v, worker, req->deadline_ms, &vr, why, sizeof(why))
		    : v->v->check(v->state, &vr, why, sizeof(why));
		reserved_now =
		    v->v == &challenge_otp_validator && c->otp_reserved_now;
		known = v->v == &challenge_otp_validator && c->otp_known;
		checked = 1;
	}
	why[sizeof(why) - 1] = '\0';
decided:
	free(sans);
	if (pem != NULL) /* the CSR's challengePassword */
		OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	switch (verdict) {
	case SCEPD_VERDICT_ALLOW:
		v->allowed += !copy;
		goto allow;
	case SCEPD_VERDICT_UNAVAILABLE:
		v->unavailable += !copy;
		if (!copy)
			log_event(LOG_LEVEL_WARN, in->transaction_id, req->id,
			    "validator %s unavailable: %s", v->name, why);
		reply->status = SCEP__V1__STATUS__STATUS_UNAVAILABLE;
		reply->error = rpc_strdup(arena, why);
		return;
	default:
		if (!copy) {
			v->refused++;
			/* A password issued here (used, another transaction's,
			 * expired) teaches no one anything: a device behind a
			 * NAT presenting its used one again (an MDM pushing a
			 * stale profile) locked out every device there. */
			if (!known)
				refusal_record(c, counted, now);
			log_event(LOG_LEVEL_WARN, in->transaction_id, req->id,
			    "validator %s refused client %s (via %s): %s",
			    v->name, addr, in->path ? in->path : "?", why);
		}
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = rpc_strdup(
		    arena, why[0] ? why : "challenge password refused");
		return;
	}
allow:
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__challenge_check_reply__init(out);
	out->validator = v->name;
	/* Saves the RA a round trip per enrollment where nothing was
	 * reserved (unchecked, or a validator without a consume step). */
	out->has_consume_not_needed = 1;
	out->consume_not_needed = !checked || v->v->consume == NULL;
	out->has_reserved_now = 1;
	out->reserved_now = reserved_now;
	out->has_counts_reports = 1;
	out->counts_reports = v->v == &challenge_otp_validator;
	reply->body_case = SCEP__V1__REPLY__BODY_CHALLENGE_CHECK;
	reply->challenge_check = out;
}

void
challenge_handle_check(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	challenge_check(worker, 0, 0, req, reply, arena);
}

void
challenge_release(struct challenge *c, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const Scep__V1__ChallengeReleaseRequest *in = req->challenge_release;
	Scep__V1__ChallengeReleaseReply *out;
	struct validator *v = validators_for_path(c, in->path);
	int rc = 0;

	if (in->transaction_id == NULL || in->transaction_id[0] == '\0' ||
	    in->password == NULL) {
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error = "transactionID or password missing";
		return;
	}
	if (v->v == &challenge_otp_validator && in->password[0] != '\0' &&
	    strlen(in->password) <= CHALLENGE_PASSWORD_MAX &&
	    (rc = otp_release(c, in->password, in->transaction_id,
	         !in->has_reserving || in->reserving,
	         !in->has_release || in->release,
	         in->has_outcome_unknown && in->outcome_unknown,
	         in->has_paid_before && in->paid_before)) < 0) {
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "the password database cannot be written";
		return;
	}
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__challenge_release_reply__init(out);
	out->has_released = 1;
	out->released = rc > 0;
	reply->body_case = SCEP__V1__REPLY__BODY_CHALLENGE_RELEASE;
	reply->challenge_release = out;
}

void
challenge_consume(struct challenge *c, size_t worker, int locked,
    const Scep__V1__Request *req, Scep__V1__Reply *reply,
    struct rpc_arena *arena)
{
	const Scep__V1__ChallengeConsumeRequest *in = req->challenge_consume;
	Scep__V1__ChallengeConsumeReply *out;
	struct validator *v = validators_for_path(c, in->path);
	struct scepd_challenge_request vr;
	/* lib/plugin.h: a NULL-ended array, never NULL. */
	static const char *const no_sans[] = {NULL};

	if (in->transaction_id == NULL || in->transaction_id[0] == '\0') {
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error = "transactionID missing";
		return;
	}
	memset(&vr, 0, sizeof(vr));
	vr.challenge = in->password != NULL ? in->password : "";
	vr.transaction_id = in->transaction_id;
	vr.path = in->path != NULL ? in->path : "";
	vr.subject = "";
	vr.sans = no_sans;
	vr.requester = "-";
	if (vr.challenge[0] != '\0' && v->v->consume != NULL &&
	    strlen(vr.challenge) <= CHALLENGE_PASSWORD_MAX) {
		unsigned char asked[32];
		int again = 0, recorded = 0;

		if (v->dl != NULL && inflight_digest(v, &vr, asked) == 0) {
			recorded = 1;
			if (!locked)
				pthread_mutex_lock(&c->lock);
			again = consume_done_before(c, asked, req->deadline_ms);
			if (!locked)
				pthread_mutex_unlock(&c->lock);
		}
		if (again) {
			log_event(LOG_LEVEL_INFO, in->transaction_id, req->id,
			    "validator %s: consume done already for this "
			    "request (sent again): not called again",
			    v->name);
			goto answer;
		}
		/* A plugin may tell its MDM: not under the service's lock. */
		if (locked && v->dl != NULL)
			pthread_mutex_unlock(&c->lock);
		if (v->dl == NULL)
			v->v->consume(v->state, &vr);
		else if (validator_consume(v, worker,
		             req->deadline_ms + CONSUME_GRACE_MS, &vr) != 0) {
			log_event(LOG_LEVEL_ERROR, in->transaction_id, req->id,
			    "validator %s: its turn did not come within %d s "
			    "past the deadline; its consume was not called "
			    "(the password may be allowed again)",
			    v->name, CONSUME_GRACE_MS / 1000);
			if (recorded) { /* the lock is not held here */
				pthread_mutex_lock(&c->lock);
				consume_not_done(c, asked);
				pthread_mutex_unlock(&c->lock);
			}
		}
		if (locked && v->dl != NULL)
			pthread_mutex_lock(&c->lock);
	}
answer:
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__challenge_consume_reply__init(out);
	reply->body_case = SCEP__V1__REPLY__BODY_CHALLENGE_CONSUME;
	reply->challenge_consume = out;
}

void
challenge_handle_consume(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	challenge_consume(worker, 0, 0, req, reply, arena);
}

/* --- metrics ----------------------------------------------------------- */

struct metric_list {
	Scep__V1__Metric **items;
	size_t n, cap;
	struct rpc_arena *arena;
};

static void
metric_add(struct metric_list *l, const char *name, const char *help,
    const char *type, const char *labels, double value)
{
	if (l->n < l->cap)
		l->items[l->n++] =
		    rpc_metric(l->arena, name, help, type, labels, value);
}

void
challenge_handle_metrics(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct challenge *c = worker;
	const struct challenge_counters *k = &c->counters;
	Scep__V1__MetricsReply *out;
	struct metric_list l;
	unsigned long outstanding = 0, swept = 0;
	char labels[160];
	MDB_txn *txn;

	(void)req;
	l.cap = 16 + 3 * c->nvalidators;
	l.n = 0;
	l.arena = arena;
	l.items = rpc_alloc(arena, l.cap * sizeof(*l.items));
	/* Held "used" marks written before counting (challenge_txn_begin);
	 * what is due swept on the way. */
	(void)challenge_sweep_batches(c, c->now(), &swept);
	if (challenge_txn_begin(c, &txn) == 0) {
		if (challenge_outstanding(c, txn, c->now(),
		        CHALLENGE_POOL_ADMIN, "", &outstanding) == 0)
			challenge_txn_commit(c, txn);
		else
			challenge_txn_abort(c, txn);
	}
	metric_add(&l, "scepd_challenge_passwords_outstanding",
	    "Admin-page passwords issued, not used, not expired.", "gauge",
	    NULL, (double)outstanding);
	metric_add(&l, "scepd_challenge_password_max",
	    "PasswordMax: outstanding admin-page passwords allowed.", "gauge",
	    NULL, (double)c->settings.password_max);
	metric_add(&l, "scepd_challenge_issued_total",
	    "One-time passwords issued.", "counter", NULL, (double)k->issued);
	metric_add(&l, "scepd_challenge_cache_full_total",
	    "Password requests refused: the password cache is full.", "counter",
	    NULL, (double)k->cache_full);
	metric_add(&l, "scepd_challenge_used_total",
	    "One-time passwords used by a request the CA issued or holds "
	    "for approval.",
	    "counter", NULL, (double)k->used);
	metric_add(&l, "scepd_challenge_expired_total",
	    "One-time passwords that expired unused.", "counter", NULL,
	    (double)k->expired);
	metric_add(&l, "scepd_challenge_rate_limited_total",
	    "Checks refused at once: the client address is over "
	    "WrongPasswordLimit.",
	    "counter", NULL, (double)k->rate_limited);
	metric_add(&l, "scepd_challenge_security_events_total",
	    "A password presented by a transaction other than its own.",
	    "counter", NULL, (double)k->security_events);
	metric_add(&l, "scepd_challenge_missing_total",
	    "Requests without a challengePassword, refused.", "counter", NULL,
	    (double)k->refused_missing);
	metric_add(&l, "scepd_challenge_unchecked_total",
	    "Requests let through unchecked (AllowNoPassword = 1).", "counter",
	    NULL, (double)k->allowed_without_password);
	/* Prometheus wants the samples of one name together. */
	for (int which = 0; which < 3; which++)
		for (size_t i = 0; i < c->nvalidators; i++) {
			const struct validator *v = &c->validators[i];

			snprintf(labels, sizeof(labels), "validator=\"%s\"",
			    v->name);
			if (which == 0)
				metric_add(&l, "scepd_challenge_allowed_total",
				    "Challenges a validator accepted.",
				    "counter", labels, (double)v->allowed);
			else if (which == 1)
				metric_add(&l, "scepd_challenge_refused_total",
				    "Challenges a validator refused.",
				    "counter", labels, (double)v->refused);
			else
				metric_add(&l,
				    "scepd_challenge_unavailable_total",
				    "Checks a validator could not decide "
				    "(answered 503).",
				    "counter", labels, (double)v->unavailable);
		}
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__metrics_reply__init(out);
	out->metrics = l.items;
	out->n_metrics = l.n;
	reply->body_case = SCEP__V1__REPLY__BODY_METRICS;
	reply->metrics = out;
}
