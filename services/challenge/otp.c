/*
 * The built-in `otp` validator: NDES's one-time passwords. A password is
 * reserved by the first transaction that presents it (the same transaction
 * may present it again: devices retry) and used once that transaction's
 * certificate is issued. Any other transaction is refused, and logged as
 * a security event: someone shared or intercepted the password.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "challenge.h"
#include "clock.h"
#include "log.h"
#include "store.h"

#define E_NOT_VALID "challenge password is not valid or has expired"
#define E_USED "challenge password was already used"
#define E_RESERVED "challenge password is reserved by another transaction"
#define E_INTERNAL "the challenge service cannot check passwords now"

#define OTP_HOLD_MARGIN_MS 250

/* The password's MAC (lower-case hex typed is the same password). */
static int
otp_mac(struct challenge *c, const char *password,
    unsigned char mac[CHALLENGE_MAC_LEN], char id[17])
{
	char norm[CHALLENGE_PASSWORD_MAX + 1];
	int rc;

	challenge_normalize(password, norm, sizeof(norm));
	rc = challenge_mac(c, norm, mac);
	OPENSSL_cleanse(norm, sizeof(norm));
	if (rc == 0)
		challenge_mac_id(mac, id);
	return rc;
}

static enum scepd_verdict
otp_internal(
    const char *txid, const char *what, int e, char *why, size_t whylen)
{
	log_event(LOG_LEVEL_ERROR, txid, 0, "otp: database %s: %s", what,
	    e ? store_strerror(e) : "failed");
	snprintf(why, whylen, "%s", E_INTERNAL);
	return SCEPD_VERDICT_UNAVAILABLE;
}

/* The hold on `mac` reserved to `txid`, or NULL. Under c->lock. */
static struct challenge_hold *
otp_hold_find(struct challenge *c, const unsigned char mac[CHALLENGE_MAC_LEN],
    const char *txid)
{
	for (size_t i = 0; i < CHALLENGE_HOLDS; i++)
		if (c->holds[i].until_ms != 0 &&
		    memcmp(c->holds[i].mac, mac, CHALLENGE_MAC_LEN) == 0 &&
		    strcmp(c->holds[i].txid, txid) == 0)
			return &c->holds[i];
	return NULL;
}

/* No release of the password reserved to `txid` before `until`
 * (monotonic ms): its hold, or NULL when all holds are running. */
static struct challenge_hold *
otp_hold_until(struct challenge *c, const unsigned char mac[CHALLENGE_MAC_LEN],
    const char *id, const char *txid, int64_t until)
{
	struct challenge_hold *h = otp_hold_find(c, mac, txid), *spare = NULL;
	int64_t now = clock_monotonic_ms();

	if (h != NULL) {
		if (h->until_ms < until)
			h->until_ms = until;
		return h;
	}
	/* A free slot, else one run out without a release waiting, else
	 * one run out with a release waiting: that password then stays
	 * reserved to its transaction until it expires (logged). */
	for (size_t i = 0; i < CHALLENGE_HOLDS; i++) {
		struct challenge_hold *x = &c->holds[i];

		if (x->until_ms == 0) {
			spare = x;
			break;
		}
		if (x->until_ms > now)
			continue;
		if (spare == NULL ||
		    (spare->release_wanted && !x->release_wanted))
			spare = x;
	}
	if (spare == NULL) {
		log_event(LOG_LEVEL_WARN, txid, 0,
		    "otp: password id=%s: %d others are awaiting their "
		    "answers, no room to hold it",
		    id, CHALLENGE_HOLDS);
		return NULL;
	}
	if (spare->until_ms != 0 && spare->release_wanted) {
		char other[17];

		challenge_mac_id(spare->mac, other);
		log_event(LOG_LEVEL_WARN, NULL, 0,
		    "otp: password id=%s stays reserved to its transaction "
		    "until it expires: its release, deferred, is forgotten "
		    "for want of room",
		    other);
	}
	memcpy(spare->mac, mac, CHALLENGE_MAC_LEN);
	snprintf(spare->txid, sizeof(spare->txid), "%s", txid);
	spare->until_ms = until;
	spare->release_wanted = 0;
	return spare;
}

/* The password reserved to a transaction was presented again by it: no
 * release before that request's answer is due, a little past it (the
 * consume's deadline crosses hosts by estimated clocks). -1 when all
 * holds are running (the request is answered "unavailable": the device
 * retries). */
static int
otp_hold(struct challenge *c, const unsigned char mac[CHALLENGE_MAC_LEN],
    const char *id, const char *txid)
{
	int64_t until =
	    clock_monotonic_ms() + c->otp_answer_within_ms + OTP_HOLD_MARGIN_MS;

	return otp_hold_until(c, mac, id, txid, until) != NULL ? 0 : -1;
}

/*
 * At start: a request of the run before that presented a password again
 * may still be issued (its hold went with that process): each password
 * reserved now is held for as long as such an answer could be due. More
 * than half the holds (the other half is the run's): every release waits
 * that long.
 */
void
otp_holds_forgotten(struct challenge *c)
{
	int64_t now = c->now();
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	size_t held = 0;
	int e;

	c->start_holds_until_ms = clock_monotonic_ms() +
	    CHALLENGE_ANSWER_WITHIN_MS + OTP_HOLD_MARGIN_MS;
	if ((e = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) == 0 &&
	    (e = mdb_cursor_open(txn, c->dbi, &cur)) == 0)
		e = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	for (; e == 0; e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct challenge_record rec;
		char id[17];

		/* An expired reservation is no one's to use any more. */
		if (key.mv_size != CHALLENGE_MAC_LEN ||
		    !challenge_record_read(&val, &rec) ||
		    rec.state != CHALLENGE_RESERVED || rec.expires_at <= now)
			continue;
		challenge_mac_id(rec.mac, id);
		if (held == CHALLENGE_HOLDS / 2 ||
		    otp_hold_until(c, rec.mac, id, rec.reserved_txid,
		        c->start_holds_until_ms) == NULL) {
			c->hold_all_at_start = 1;
			break;
		}
		held++;
	}
	if (e != 0 && e != MDB_NOTFOUND) {
		log_error("otp: the reserved passwords cannot be read (%s): "
		          "every release waits %d s",
		    store_strerror(e), CHALLENGE_ANSWER_WITHIN_MS / 1000);
		c->hold_all_at_start = 1;
	} else if (c->hold_all_at_start)
		log_warn("otp: more than %d passwords reserved before the "
		         "start: every release waits %d s (a request from "
		         "before may still be issued)",
		    CHALLENGE_HOLDS / 2, CHALLENGE_ANSWER_WITHIN_MS / 1000);
	else if (held > 0)
		log_info("otp: %zu password%s reserved before the start, "
		         "held %d s (a request from before may still be "
		         "issued)",
		    held, held == 1 ? "" : "s",
		    CHALLENGE_ANSWER_WITHIN_MS / 1000);
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
}

static enum scepd_verdict
otp_check(void *state, const struct scepd_challenge_request *req, char *why,
    size_t whylen)
{
	struct challenge *c = state;
	struct challenge_hold *deferred = NULL;
	struct challenge_record rec;
	unsigned char mac[CHALLENGE_MAC_LEN];
	char id[17];
	MDB_txn *txn = NULL;
	int64_t now = c->now();
	enum scepd_verdict v = SCEPD_VERDICT_REFUSE;
	int e, found;

	if (otp_mac(c, req->challenge, mac, id) != 0)
		return otp_internal(
		    req->transaction_id, "HMAC", 0, why, whylen);
	if ((e = challenge_txn_begin(c, &txn)) != 0)
		return otp_internal(
		    req->transaction_id, "begin", e, why, whylen);
	found = challenge_record_get(txn, c->dbi, mac, &rec);
	if (found < 0) {
		v = otp_internal(
		    req->transaction_id, "read", MDB_CORRUPTED, why, whylen);
		goto out;
	}
	/* Expired: nobody may use it, except the transaction that used it
	 * (the CA bound that transactionID to its key then), retrying
	 * (CHALLENGE_TXN_KEEP_S). A reservation alone binds no key. */
	if (found == 0)
		rec.state = challenge_state(c, &rec);
	if (found > 0 ||
	    (rec.expires_at <= now &&
	        (rec.state != CHALLENGE_USED ||
	            rec.expires_at + CHALLENGE_TXN_KEEP_S <= now ||
	            strcmp(rec.reserved_txid, req->transaction_id) != 0))) {
		log_event(LOG_LEVEL_WARN, req->transaction_id, 0,
		    "otp: refused (client %s): %s (%s)", req->requester,
		    E_NOT_VALID, found > 0 ? "unknown" : "expired");
		snprintf(why, whylen, "%s", E_NOT_VALID);
		goto out;
	}
	/* Another transaction, after a deferred release's hold: released
	 * now, and reserved to this one in the same write. During the hold
	 * it is to be free in a moment: the device's next key is told to
	 * come back (503), not refused. */
	if (rec.state == CHALLENGE_RESERVED &&
	    strcmp(rec.reserved_txid, req->transaction_id) != 0 &&
	    (deferred = otp_hold_find(c, mac, rec.reserved_txid)) != NULL &&
	    deferred->release_wanted) {
		int64_t left = deferred->until_ms - clock_monotonic_ms();

		if (left > 0) {
			log_event(LOG_LEVEL_INFO, req->transaction_id, 0,
			    "otp: password id=%s (issued to %s) is to be "
			    "released in %lld ms (the CA refused its "
			    "transaction): client %s asked to retry",
			    id, rec.issued_by, (long long)left, req->requester);
			snprintf(why, whylen,
			    "the challenge password is being released from a "
			    "refused request; retry in %lld s",
			    (long long)left / 1000 + 1);
			v = SCEPD_VERDICT_UNAVAILABLE;
			goto out;
		}
		rec.state = CHALLENGE_ISSUED;
	} else
		deferred = NULL;
	switch (rec.state) {
	case CHALLENGE_ISSUED:
		rec.state = CHALLENGE_RESERVED;
		snprintf(rec.reserved_txid, sizeof(rec.reserved_txid), "%s",
		    req->transaction_id);
		if ((e = challenge_record_put(c, txn, &rec)) != 0) {
			v = otp_internal(
			    req->transaction_id, "write", e, why, whylen);
			goto out;
		}
		e = challenge_txn_commit(c, txn);
		txn = NULL;
		if (e != 0) {
			v = otp_internal(
			    req->transaction_id, "commit", e, why, whylen);
			goto out;
		}
		if (deferred != NULL) {
			log_event(LOG_LEVEL_INFO, deferred->txid, 0,
			    "otp: password id=%s (issued to %s) released, as "
			    "asked when the CA refused this transaction: its "
			    "other request's answer was due",
			    id, rec.issued_by);
			deferred->until_ms = 0;
		}
		log_event(LOG_LEVEL_INFO, req->transaction_id, 0,
		    "otp: password id=%s (issued to %s) reserved for client %s",
		    id, rec.issued_by, req->requester);
		c->otp_reserved_now = 1;
		v = SCEPD_VERDICT_ALLOW;
		break;
	case CHALLENGE_RESERVED:
	case CHALLENGE_USED:
		if (strcmp(rec.reserved_txid, req->transaction_id) != 0) {
			c->counters.security_events++;
			log_event(LOG_LEVEL_WARN, req->transaction_id, 0,
			    "security: otp: password id=%s (issued to %s) "
			    "presented by client %s, but it is %s txid %s",
			    id, rec.issued_by, req->requester,
			    rec.state == CHALLENGE_USED ? "already used by"
			                                : "reserved by",
			    rec.reserved_txid);
			snprintf(why, whylen, "%s",
			    rec.state == CHALLENGE_USED ? E_USED : E_RESERVED);
			goto out;
		}
		/* The same transaction again: the device retried. The CA
		 * answers a retry with the certificate already issued. */
		if (rec.state == CHALLENGE_RESERVED &&
		    otp_hold(c, mac, id, req->transaction_id) != 0) {
			snprintf(why, whylen, "%s", E_INTERNAL);
			v = SCEPD_VERDICT_UNAVAILABLE;
			goto out;
		}
		log_event(LOG_LEVEL_INFO, req->transaction_id, 0,
		    "otp: password id=%s presented again by its transaction "
		    "(client %s, %s%s)",
		    id, req->requester,
		    rec.state == CHALLENGE_USED ? "already used" : "reserved",
		    rec.expires_at <= now ? ", expired since" : "");
		v = SCEPD_VERDICT_ALLOW;
		break;
	default:
		v = otp_internal(req->transaction_id, "record state",
		    MDB_CORRUPTED, why, whylen);
	}
out:
	if (txn != NULL)
		challenge_txn_abort(c, txn);
	return v;
}

/* A released password whose transaction's certificate was issued after
 * all: marked used by it now, in a write of its own. */
static void
otp_use_released(struct challenge *c, struct challenge_record *rec,
    const char *id, const char *txid)
{
	MDB_txn *txn = NULL;
	int e;

	rec->state = CHALLENGE_USED;
	snprintf(rec->reserved_txid, sizeof(rec->reserved_txid), "%s", txid);
	if ((e = challenge_txn_begin(c, &txn)) == 0) {
		if ((e = challenge_record_put(c, txn, rec)) != 0)
			challenge_txn_abort(c, txn);
		else
			e = challenge_txn_commit(c, txn);
	}
	if (e != 0) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "otp: password id=%s (released) not marked used: %s", id,
		    store_strerror(e));
		return;
	}
	c->counters.used++;
	log_event(LOG_LEVEL_INFO, txid, 0,
	    "otp: password id=%s (issued to %s) used, after its release by "
	    "a refused request of this transaction",
	    id, rec->issued_by);
}

static void
otp_consume(void *state, const struct scepd_challenge_request *req)
{
	struct challenge *c = state;
	struct challenge_record rec;
	unsigned char mac[CHALLENGE_MAC_LEN];
	char id[17];
	MDB_txn *txn = NULL;
	int found;

	if (otp_mac(c, req->challenge, mac, id) != 0 ||
	    mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn) != 0) {
		log_event(LOG_LEVEL_ERROR, req->transaction_id, 0,
		    "otp: cannot mark the password used");
		return;
	}
	found = challenge_record_get(txn, c->dbi, mac, &rec);
	mdb_txn_abort(txn);
	/* Released meanwhile (a request of this transactionID the CA
	 * refused): the certificate was issued with it all the same. Used
	 * at once, durably: no reservation refuses others while a held
	 * mark waits to be written. */
	if (found == 0 && challenge_state(c, &rec) == CHALLENGE_ISSUED) {
		otp_use_released(c, &rec, id, req->transaction_id);
		return;
	}
	/* No expiry test: a reservation that expired while its certificate
	 * was being issued is still paid for by that certificate. */
	if (found != 0 || rec.state == CHALLENGE_ISSUED ||
	    strcmp(rec.reserved_txid, req->transaction_id) != 0) {
		log_event(LOG_LEVEL_WARN, req->transaction_id, 0,
		    "otp: password id=%s is not reserved by this transaction; "
		    "not marked used",
		    id);
		return;
	}
	if (challenge_state(c, &rec) == CHALLENGE_USED) {
		log_event(LOG_LEVEL_INFO, req->transaction_id, 0,
		    "otp: password id=%s already used by this transaction", id);
		return;
	}
	/* Written with the next write transaction (used.c). */
	if (challenge_used_hold(c, mac, req->transaction_id) != 0) {
		log_event(LOG_LEVEL_ERROR, req->transaction_id, 0,
		    "otp: password id=%s not marked used: the marks waiting "
		    "to be written cannot be written",
		    id);
		return;
	}
	c->counters.used++;
	log_event(LOG_LEVEL_INFO, req->transaction_id, 0,
	    "otp: password id=%s (issued to %s) used", id, rec.issued_by);
}

int
otp_release(struct challenge *c, const char *password, const char *txid)
{
	struct challenge_hold *h;
	struct challenge_record rec;
	unsigned char mac[CHALLENGE_MAC_LEN];
	char id[17];
	MDB_txn *txn = NULL;
	int64_t now;
	int e, found;

	if (otp_mac(c, password, mac, id) != 0 ||
	    (e = challenge_txn_begin(c, &txn)) != 0) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "otp: cannot release the password");
		return -1;
	}
	found = challenge_record_get(txn, c->dbi, mac, &rec);
	if (found != 0 || challenge_state(c, &rec) != CHALLENGE_RESERVED ||
	    strcmp(rec.reserved_txid, txid) != 0) {
		challenge_txn_abort(c, txn);
		log_event(LOG_LEVEL_INFO, txid, 0,
		    "otp: password id=%s not reserved by this transaction: "
		    "not released",
		    id);
		return 0;
	}
	/* Another request of this transaction, presented since, may be
	 * issued still: released after its answer is due. So may one from
	 * before the start (otp_holds_forgotten). */
	now = clock_monotonic_ms();
	h = otp_hold_find(c, mac, txid);
	/* Without a hold of the start's (more were reserved than it held),
	 * any: a shorter hold of a re-presentation since is stretched. */
	if ((h == NULL || h->until_ms < c->start_holds_until_ms) &&
	    c->hold_all_at_start && now < c->start_holds_until_ms &&
	    (h = otp_hold_until(c, mac, id, txid, c->start_holds_until_ms)) ==
	        NULL) {
		challenge_txn_abort(c, txn);
		log_event(LOG_LEVEL_WARN, txid, 0,
		    "otp: password id=%s (issued to %s) not released: the "
		    "service started %lld s ago and a request of this "
		    "transaction from before may still use it; it stays "
		    "reserved until it expires",
		    id, rec.issued_by,
		    (long long)(now - c->start_holds_until_ms +
		        CHALLENGE_ANSWER_WITHIN_MS) /
		        1000);
		return 0;
	}
	if (h != NULL && h->until_ms > now) {
		challenge_txn_abort(c, txn);
		h->release_wanted = 1;
		log_event(LOG_LEVEL_INFO, txid, 0,
		    "otp: password id=%s (issued to %s) to be released: the CA "
		    "refused this transaction; another request of it%s, "
		    "answered within %lld ms, may still use it",
		    id, rec.issued_by,
		    h->until_ms == c->start_holds_until_ms
		        ? " (from before the service started)"
		        : "",
		    (long long)(h->until_ms - now));
		return 0;
	}
	rec.state = CHALLENGE_ISSUED;
	memset(rec.reserved_txid, 0, sizeof(rec.reserved_txid));
	if ((e = challenge_record_put(c, txn, &rec)) != 0)
		challenge_txn_abort(c, txn);
	else
		e = challenge_txn_commit(c, txn);
	if (e != 0) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "otp: password id=%s not released: %s", id,
		    store_strerror(e));
		return -1;
	}
	log_event(LOG_LEVEL_INFO, txid, 0,
	    "otp: password id=%s (issued to %s) released: the CA refused this "
	    "transaction; the device may present it again with a new key",
	    id, rec.issued_by);
	return 1;
}

static const char *const otp_keys[] = {NULL};

/* The state is the service itself: the host passes it in host->opaque. */
static int
otp_init(const struct scepd_plugin_host *host, void **state, char *err,
    size_t errlen)
{
	(void)err;
	(void)errlen;
	*state = host->opaque;
	return 0;
}

static void
otp_destroy(void *state)
{
	(void)state;
}

const struct scepd_challenge_validator challenge_otp_validator = {
    SCEPD_PLUGIN_ABI_VERSION,
    "otp",
    otp_keys,
    otp_init,
    otp_check,
    otp_consume,
    otp_destroy,
};
