/*
 * The "used" marks of one-time passwords, written with the next write
 * transaction instead of one of their own.
 *
 * A mark only turns a password reserved by a transaction into used by it
 * once that transaction's certificate is issued; the reservation alone,
 * flushed when it was made, already refuses every other transaction (otp.c).
 * A mark lost with a killed service leaves the password reserved to its
 * own transaction until it expires; what it loses is that transaction's
 * retries after the expiry (CHALLENGE_TXN_KEEP_S is for used ones), which
 * a mark held but not yet written still gets (otp.c, store.c). Held
 * here, a mark rides on the next reservation's commit, which is flushed
 * anyway, and saves a flush per enrollment on the challenge service's one
 * thread; with no such commit, challenge_used_idle writes the marks within
 * a second and a half, and challenge_db_close before the service stops.
 *
 * Every write transaction (challenge_txn_begin) writes the held marks
 * first, so what it reads (a password's state, the outstanding count) is
 * as if each mark had been written at once. A transaction that is aborted
 * leaves them held; if they cannot be written (a full disk), the
 * transaction goes on without them.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "challenge.h"
#include "clock.h"
#include "log.h"
#include "store.h"

/* Held this long without a write transaction, the marks get their own. */
#define USED_HOLD_MS 500
/* After a failed write (a full disk), the idle hook waits this long. */
#define USED_RETRY_MS 10000

/* Writes the held marks in `txn`; 0 or LMDB's error (then abort txn). */
static int
used_write(struct challenge *c, MDB_txn *txn)
{
	for (size_t i = 0; i < c->used.n; i++) {
		const struct challenge_used_mark *m = &c->used.marks[i];
		struct challenge_record rec;
		int found = challenge_record_get(txn, c->dbi, m->mac, &rec), e;

		/* Gone, or another transaction's: nothing to mark
		 * (challenge_used_hold checked it was when it was held).
		 * Released since (the CA refused another request of this
		 * transactionID): its certificate was issued with it. */
		if (found != 0 ||
		    (rec.state == CHALLENGE_RESERVED
		            ? strcmp(rec.reserved_txid, m->txid) != 0
		            : rec.state != CHALLENGE_ISSUED))
			continue;
		snprintf(rec.reserved_txid, sizeof(rec.reserved_txid), "%s",
		    m->txid);
		rec.state = CHALLENGE_USED;
		if ((e = challenge_record_put(c, txn, &rec)) != 0)
			return e;
	}
	c->used.in_txn = 1;
	return 0;
}

int
challenge_txn_begin(struct challenge *c, MDB_txn **txn)
{
	int e = mdb_txn_begin(c->env, NULL, 0, txn);

	c->used.in_txn = 0;
	if (e != 0 || c->used.n == 0)
		return e;
	if ((e = used_write(c, *txn)) == 0)
		return 0;
	/* Bookkeeping must not stop reservations: go on without the marks,
	 * which stay held; the idle hook tries again later. */
	mdb_txn_abort(*txn);
	c->used.in_txn = 0;
	log_error("otp: cannot write %zu held 'used' mark%s (%s); they stay "
	          "held",
	    c->used.n, c->used.n == 1 ? "" : "s", store_strerror(e));
	c->used.retry_ms = clock_monotonic_ms() + USED_RETRY_MS;
	*txn = NULL; /* aborted: never the caller's to abort again */
	return mdb_txn_begin(c->env, NULL, 0, txn);
}

int
challenge_txn_commit(struct challenge *c, MDB_txn *txn)
{
	int e = mdb_txn_commit(txn);

	/* One thread: nothing was held while the transaction ran. */
	if (e == 0 && c->used.in_txn)
		c->used.n = 0;
	c->used.in_txn = 0;
	return e;
}

void
challenge_txn_abort(struct challenge *c, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	c->used.in_txn = 0;
}

int
challenge_used_flush(struct challenge *c)
{
	MDB_txn *txn;
	int e;

	if (c->used.n == 0)
		return 0;
	if ((e = challenge_txn_begin(c, &txn)) != 0)
		goto fail;
	if (!c->used.in_txn) {
		/* challenge_txn_begin could not write them (logged). */
		challenge_txn_abort(c, txn);
		return -1;
	}
	/*
	 * One flush instead of two: the data pages are flushed, the meta
	 * page that makes them current is not (the next commit's flush, or
	 * challenge_db_close, takes it to disk). An operating-system crash
	 * that loses it loses marks only (above).
	 */
	mdb_env_set_flags(c->env, MDB_NOMETASYNC, 1);
	e = challenge_txn_commit(c, txn);
	mdb_env_set_flags(c->env, MDB_NOMETASYNC, 0);
	if (e == 0)
		return 0;
fail:
	log_error("otp: cannot write %zu held 'used' mark%s: %s", c->used.n,
	    c->used.n == 1 ? "" : "s", store_strerror(e));
	c->used.retry_ms = clock_monotonic_ms() + USED_RETRY_MS;
	return e;
}

/* The held mark of the password with this MAC, or NULL. */
static const struct challenge_used_mark *
challenge_used_find(const struct challenge_used *used, const unsigned char *mac)
{
	for (size_t i = 0; i < used->n; i++)
		if (memcmp(used->marks[i].mac, mac, CHALLENGE_MAC_LEN) == 0)
			return &used->marks[i];
	return NULL;
}

uint32_t
challenge_record_state(
    const struct challenge_used *used, const struct challenge_record *rec)
{
	/* A held mark is a use, of a reserved password or of one released
	 * after its certificate was issued (otp_consume). */
	return rec->state != CHALLENGE_USED &&
	        challenge_used_find(used, rec->mac) != NULL
	    ? CHALLENGE_USED
	    : rec->state;
}

uint32_t
challenge_state(const struct challenge *c, const struct challenge_record *rec)
{
	return challenge_record_state(&c->used, rec);
}

uint32_t
challenge_state_held(const struct challenge *c, struct challenge_record *rec)
{
	const struct challenge_used_mark *m;

	if (rec->state == CHALLENGE_USED ||
	    (m = challenge_used_find(&c->used, rec->mac)) == NULL)
		return rec->state;
	snprintf(rec->reserved_txid, sizeof(rec->reserved_txid), "%s", m->txid);
	return rec->state = CHALLENGE_USED;
}

int
challenge_used_hold(
    struct challenge *c, const unsigned char *mac, const char *txid)
{
	struct challenge_used_mark *m;

	if (challenge_used_find(&c->used, mac) != NULL)
		return 1;
	if (c->used.n == CHALLENGE_USED_HOLD_MAX &&
	    challenge_used_flush(c) != 0)
		return -1;
	if (c->used.n == 0)
		c->used.since_ms = clock_monotonic_ms();
	m = &c->used.marks[c->used.n++];
	memcpy(m->mac, mac, CHALLENGE_MAC_LEN);
	snprintf(m->txid, sizeof(m->txid), "%s", txid);
	return 0;
}

void
challenge_used_idle(void *service)
{
	struct challenge *c = service;
	int64_t now;

	if (c->used.n == 0)
		return;
	now = clock_monotonic_ms();
	if (now - c->used.since_ms >= USED_HOLD_MS && now >= c->used.retry_ms)
		challenge_used_flush(c);
}
