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
#define E_UNSURE \
	"challenge password is held by a refused request whose other " \
	"request may have used it; it stays reserved until it expires: " \
	"ask for a new password"

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

/* A slot to count the requests of `txid` presenting the password again:
 * a free one, else one whose requests all reported, else one whose
 * requests' answers were all due, the longest due first (its counts
 * lost: that password, flagged in its record, stays reserved until it
 * expires). NULL when every slot's answers are to come. Under c->lock. */
static struct challenge_hold *
otp_hold_new(struct challenge *c, const unsigned char mac[CHALLENGE_MAC_LEN],
    const char *id, const char *txid)
{
	struct challenge_hold *spare = NULL;
	int64_t now = clock_monotonic_ms();
	unsigned int out = 0;

	for (size_t i = 0; i < CHALLENGE_HOLDS; i++) {
		struct challenge_hold *x = &c->holds[i];
		unsigned int x_out = x->presented + (unsigned)x->reserver_out;

		/* Nothing out: free (an owed release is kept while its
		 * time runs, as an answer due). */
		if (x->until_ms == 0 || (x_out == 0 && !x->release_owed)) {
			spare = x;
			out = 0;
			if (x->until_ms == 0)
				break;
		} else if (x->until_ms <= now &&
		    (spare == NULL ||
		        (out > 0 && x->until_ms < spare->until_ms))) {
			spare = x;
			out = x_out;
		}
	}
	if (spare == NULL) {
		log_event(LOG_LEVEL_WARN, txid, 0,
		    "otp: password id=%s: %d others are awaiting their "
		    "answers, no room to count its requests",
		    id, CHALLENGE_HOLDS);
		return NULL;
	}
	if (out > 0) {
		char other[17];

		challenge_mac_id(spare->mac, other);
		log_event(LOG_LEVEL_WARN, spare->txid, 0,
		    "otp: password id=%s: %u request%s of this transaction "
		    "never said how %s ended (its RA stopped?): no longer "
		    "counted, it stays reserved until it expires",
		    other, out, out == 1 ? "" : "s", out == 1 ? "it" : "they");
	}
	memset(spare, 0, sizeof(*spare));
	memcpy(spare->mac, mac, CHALLENGE_MAC_LEN);
	snprintf(spare->txid, sizeof(spare->txid), "%s", txid);
	return spare;
}

/*
 * The password reserved to `rec`'s transaction presented again by it: the
 * request is counted (its report is awaited before any release), in a
 * new hold whose record is flagged first, durably: after a restart the
 * flag says requests may be out that no count remembers. Counted no more
 * once flagged without a hold (a restart, a hold taken for room): any
 * release then waits for the expiry. The flag is written in `*txn`,
 * then committed (*txn set NULL). -1 (logged) when it cannot be.
 */
static int
otp_presented_again(struct challenge *c, MDB_txn **txn,
    struct challenge_record *rec, const char *id)
{
	struct challenge_hold *h =
	    otp_hold_find(c, rec->mac, rec->reserved_txid);
	int64_t until =
	    clock_monotonic_ms() + c->otp_report_within_ms + OTP_HOLD_MARGIN_MS;
	int e;

	if (h == NULL && (rec->flags & CHALLENGE_FLAG_PRESENTED_AGAIN))
		return 0;
	if (h == NULL) {
		if ((h = otp_hold_new(c, rec->mac, id, rec->reserved_txid)) ==
		    NULL)
			return -1;
		/* Unknown unless it reported: as if still out. */
		h->reserver_out =
		    !(rec->flags & CHALLENGE_FLAG_RESERVER_REPORTED);
	}
	/* A new hold: its record flagged first (a hold's always is). */
	if (!(rec->flags & CHALLENGE_FLAG_PRESENTED_AGAIN)) {
		rec->flags |= CHALLENGE_FLAG_PRESENTED_AGAIN;
		e = challenge_record_put(c, *txn, rec);
		if (e == 0) {
			e = challenge_txn_commit(c, *txn);
			*txn = NULL;
		}
		if (e != 0) {
			h->until_ms = 0;
			log_event(LOG_LEVEL_ERROR, rec->reserved_txid, 0,
			    "otp: database write: %s", store_strerror(e));
			return -1;
		}
	}
	h->presented++;
	if (h->until_ms < until)
		h->until_ms = until;
	return 0;
}

static enum scepd_verdict
otp_check(void *state, const struct scepd_challenge_request *req, char *why,
    size_t whylen)
{
	struct challenge *c = state;
	struct challenge_hold *deferred = NULL;
	int release_due = 0; /* asked by another transaction's refusal */
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
	c->otp_known = found == 0;
	/* Expired: nobody may use it, except the transaction that used it
	 * (the CA bound that transactionID to its key then), retrying
	 * (CHALLENGE_TXN_KEEP_S). A reservation alone binds no key. */
	if (found == 0)
		(void)challenge_state_held(c, &rec);
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
	/* Another transaction while a release the CA's refusal asked for
	 * waits for the reports of the refused transaction's other requests:
	 * due within `left`, the device's next key is told to come back
	 * (503); past it (a report lost), told why it is refused. Neither is
	 * a security event: it is the device's own password. */
	if (rec.state == CHALLENGE_RESERVED &&
	    strcmp(rec.reserved_txid, req->transaction_id) != 0) {
		struct challenge_hold *h =
		    otp_hold_find(c, mac, rec.reserved_txid);

		if ((rec.flags & CHALLENGE_FLAG_RELEASE_WANTED) ||
		    (h != NULL && h->release_owed))
			release_due = 1, deferred = h;
	}
	if (release_due) {
		int64_t left;

		left = deferred != NULL
		    ? deferred->until_ms - clock_monotonic_ms()
		    : 0;
		/* An owed release's hold lasts the password's life: the
		 * reports awaited are due within an answer's time. */
		if (deferred != NULL && deferred->release_owed &&
		    left > CHALLENGE_ANSWER_WITHIN_MS)
			left = CHALLENGE_ANSWER_WITHIN_MS;
		if (deferred != NULL &&
		    deferred->presented + (unsigned)deferred->reserver_out ==
		        0) {
			/* All reported, but the release's write failed: done
			 * now, with the reservation to this one. */
			rec.state = CHALLENGE_ISSUED;
			goto reserve;
		}
		if (left > 0) {
			log_event(LOG_LEVEL_INFO, req->transaction_id, 0,
			    "otp: password id=%s (issued to %s) waits for the "
			    "report of another request of its transaction (the "
			    "CA refused one), due within %lld ms: client %s "
			    "asked to retry",
			    id, rec.issued_by, (long long)left, req->requester);
			snprintf(why, whylen,
			    "the challenge password is being released from a "
			    "refused request; retry in %lld s",
			    (long long)left / 1000 + 1);
			v = SCEPD_VERDICT_UNAVAILABLE;
			goto out;
		}
		log_event(LOG_LEVEL_WARN, req->transaction_id, 0,
		    "otp: refused (client %s): password id=%s (issued to %s) "
		    "stays reserved to txid %s until it expires: the CA "
		    "refused a request of it, and another request of it may "
		    "have been issued with it (its outcome was never "
		    "reported)",
		    req->requester, id, rec.issued_by, rec.reserved_txid);
		snprintf(why, whylen, "%s", E_UNSURE);
		goto out;
	}
reserve:
	switch (rec.state) {
	case CHALLENGE_ISSUED:
		rec.state = CHALLENGE_RESERVED;
		rec.flags = 0;
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
			    "asked when the CA refused this transaction",
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
		    otp_presented_again(c, &txn, &rec, id) != 0) {
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
	/* Not written (a full disk): held as a reservation's mark is, so
	 * that no other key takes the password it paid for meanwhile. */
	if (e != 0 && challenge_used_hold(c, rec->mac, txid) < 0) {
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
	struct challenge_hold *h;
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
	/* Issued: no request of the transaction is counted any more. */
	if ((h = otp_hold_find(c, mac, req->transaction_id)) != NULL)
		h->until_ms = 0;
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

/* The record read in `txn` with flags `set` and without `clear`; `txn`
 * committed (or aborted: nothing new). Logged on failure. */
static void
otp_flags_set(struct challenge *c, MDB_txn *txn, struct challenge_record *rec,
    uint32_t set, uint32_t clear, const char *id)
{
	uint32_t flags = (rec->flags | set) & ~clear;
	int e;

	if (flags == rec->flags) {
		challenge_txn_abort(c, txn);
		return;
	}
	rec->flags = flags;
	if ((e = challenge_record_put(c, txn, rec)) != 0)
		challenge_txn_abort(c, txn);
	else
		e = challenge_txn_commit(c, txn);
	if (e != 0)
		log_event(LOG_LEVEL_ERROR, rec->reserved_txid, 0,
		    "otp: password id=%s: database write: %s", id,
		    store_strerror(e));
}

/* A release the CA's refusal asked that cannot be done safely: the record
 * in `txn` flagged so (another key told why, not taken for a thief; no
 * hold made later counts on its requests), `txn` committed; logged. */
static void
otp_never_released(struct challenge *c, MDB_txn *txn,
    struct challenge_record *rec, const char *id, const char *why)
{
	char when[LOG_TIME_LEN];

	log_time((time_t)rec->expires_at, when);
	otp_flags_set(c, txn, rec,
	    CHALLENGE_FLAG_RELEASE_WANTED | CHALLENGE_FLAG_PRESENTED_AGAIN, 0,
	    id);
	log_event(LOG_LEVEL_WARN, rec->reserved_txid, 0,
	    "otp: password id=%s (issued to %s) not released: the CA refused "
	    "this transaction, but %s: it stays reserved until it expires "
	    "(%s); give the device a new password",
	    id, rec->issued_by, why, when);
}

int
otp_release(struct challenge *c, const char *password, const char *txid,
    int reserving, int release, int outcome_unknown, int paid_before)
{
	struct challenge_hold *h;
	struct challenge_record rec;
	unsigned char mac[CHALLENGE_MAC_LEN];
	char id[17];
	MDB_txn *txn = NULL;
	unsigned int out;
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
	if (outcome_unknown) {
		if (!release) {
			challenge_txn_abort(c, txn);
			return 0;
		}
		otp_never_released(c, txn, &rec, id,
		    "the RA sent the request more than once and another copy "
		    "may have been issued");
		return 0;
	}
	/* This request is done. The transaction's other requests that
	 * presented it may still be issued with it: counted, the release
	 * waits for their reports (a release asked by one is in the
	 * record); uncounted (presented before a restart, or their hold
	 * taken for room), it cannot be known. */
	h = otp_hold_find(c, mac, txid);
	if (h != NULL) {
		if (reserving)
			h->reserver_out = 0;
		else if (h->presented > 0)
			h->presented--;
		release |= (rec.flags & CHALLENGE_FLAG_RELEASE_WANTED) != 0;
	}
	out = h != NULL ? h->presented + (unsigned)h->reserver_out : 0;
	if (!release) {
		/* Nothing to release. A hold made later must not wait for
		 * the reserving request: said in the record; and with all
		 * its requests reported, the hold's count is no longer
		 * needed (the record says none is out uncounted). */
		if (h == NULL && reserving)
			otp_flags_set(c, txn, &rec,
			    CHALLENGE_FLAG_RESERVER_REPORTED, 0, id);
		else if (h != NULL && out == 0) {
			h->until_ms = 0;
			otp_flags_set(c, txn, &rec,
			    CHALLENGE_FLAG_RESERVER_REPORTED,
			    CHALLENGE_FLAG_PRESENTED_AGAIN, id);
		} else
			challenge_txn_abort(c, txn);
		log_event(LOG_LEVEL_INFO, txid, 0,
		    "otp: password id=%s stays reserved to this transaction: "
		    "a request of it issued nothing, and no release is asked",
		    id);
		return 0;
	}
	if (out > 0) {
		int64_t left = h->until_ms - clock_monotonic_ms();

		/* Said in the record too: the hold may go (a restart, room
		 * taken), and the next key is then told why it is refused. */
		otp_flags_set(
		    c, txn, &rec, CHALLENGE_FLAG_RELEASE_WANTED, 0, id);
		log_event(LOG_LEVEL_INFO, txid, 0,
		    "otp: password id=%s (issued to %s) to be released: the CA "
		    "refused this transaction; %u other request%s of it, "
		    "answered within %lld ms, may still use it",
		    id, rec.issued_by, out, out == 1 ? "" : "s",
		    (long long)(left > 0 ? left : 0));
		return 0;
	}
	/* Without a hold, and presented again: counts lost. */
	if (h == NULL &&
	    ((rec.flags & CHALLENGE_FLAG_PRESENTED_AGAIN) || !reserving)) {
		otp_never_released(c, txn, &rec, id,
		    "another request of it presented it and its outcome "
		    "cannot be known (the service restarted, or lost count)");
		return 0;
	}
	rec.state = CHALLENGE_ISSUED;
	rec.flags = 0;
	memset(rec.reserved_txid, 0, sizeof(rec.reserved_txid));
	if ((e = challenge_record_put(c, txn, &rec)) != 0)
		challenge_txn_abort(c, txn);
	else
		e = challenge_txn_commit(c, txn);
	if (e != 0) {
		/* Owed: the device's next key, which presents it, does it
		 * (otp_check); held until the password expires. */
		if (h == NULL)
			h = otp_hold_new(c, mac, id, txid);
		if (h != NULL) {
			int64_t now_ms = clock_monotonic_ms();
			int64_t left_s = rec.expires_at - c->now();

			h->presented = 0;
			h->reserver_out = 0;
			h->release_owed = 1;
			h->until_ms = now_ms + (left_s > 0 ? left_s : 1) * 1000;
		}
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "otp: password id=%s not released: %s; %s", id,
		    store_strerror(e),
		    h != NULL ? "the device's next key that presents it is "
		                "given it (unless this service restarts first)"
		              : "no room to remember the release: it stays "
		                "reserved until it expires");
		return -1;
	}
	if (h != NULL)
		h->until_ms = 0;
	log_event(LOG_LEVEL_INFO, txid, 0,
	    "otp: password id=%s (issued to %s) released: %s; the device may "
	    "present it again with a new key",
	    id, rec.issued_by,
	    paid_before ? "the CA answered with what an earlier request of "
	                  "this transaction paid for"
	                : "the CA refused this transaction");
	return 1;
}

void
otp_owed_retry(struct challenge *c)
{
	for (size_t i = 0; i < CHALLENGE_HOLDS; i++) {
		struct challenge_hold *h = &c->holds[i];
		struct challenge_record rec;
		MDB_txn *txn = NULL;
		char id[17];
		int e, found;

		/* A request of its transaction presented it since: its
		 * report decides (otp_release), as in otp_check. */
		if (h->until_ms == 0 || !h->release_owed ||
		    h->presented + (unsigned)h->reserver_out != 0)
			continue;
		if ((e = challenge_txn_begin(c, &txn)) != 0)
			return; /* the disk still full: the next turn */
		found = challenge_record_get(txn, c->dbi, h->mac, &rec);
		/* Gone, or taken by the device's next key meanwhile. */
		if (found != 0 ||
		    challenge_state(c, &rec) != CHALLENGE_RESERVED ||
		    strcmp(rec.reserved_txid, h->txid) != 0) {
			challenge_txn_abort(c, txn);
			h->until_ms = 0;
			continue;
		}
		rec.state = CHALLENGE_ISSUED;
		rec.flags = 0;
		memset(rec.reserved_txid, 0, sizeof(rec.reserved_txid));
		if ((e = challenge_record_put(c, txn, &rec)) != 0) {
			challenge_txn_abort(c, txn);
			return;
		}
		if ((e = challenge_txn_commit(c, txn)) != 0)
			return;
		challenge_mac_id(h->mac, id);
		log_event(LOG_LEVEL_INFO, h->txid, 0,
		    "otp: password id=%s (issued to %s) released, as asked "
		    "when the CA refused this transaction (its write had "
		    "failed)",
		    id, rec.issued_by);
		h->until_ms = 0;
	}
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
