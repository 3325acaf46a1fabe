/*
 * ChallengeCheckRequest and ChallengeConsumeRequest: the RA presents a
 * password from a CSR. Check reserves it for the SCEP transaction (the same
 * transaction may present it again: devices retry); consume marks it used
 * once the certificate is issued. Any other transaction is refused.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "challenge.h"
#include "log.h"

#define E_NOT_VALID "challenge password is not valid or has expired"
#define E_USED "challenge password was already used"
#define E_RESERVED "challenge password is reserved by another transaction"
#define E_NOT_RESERVED "challenge password is not reserved by this transaction"

/* Longer than any password we issue or any NDES admin would type. */
#define CHALLENGE_PASSWORD_MAX 255

/* What both requests share, read from the request. */
struct redeem {
	const char *txid;
	const char *addr;
	unsigned char mac[CHALLENGE_MAC_LEN];
	char id[17];
};

/*
 * Validates the request's fields and computes the password's MAC. Our
 * passwords are hex: one typed in lower case is the same password.
 * 0, or -1 with the reply filled.
 */
static int
redeem_prepare(const struct challenge *c, const Scep__V1__Request *req,
    const char *password, const char *txid, const char *addr, struct redeem *r,
    Scep__V1__Reply *reply)
{
	char norm[CHALLENGE_PASSWORD_MAX + 1];
	size_t len, hex = 0;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	r->addr = addr != NULL && addr[0] != '\0' ? addr : "-";
	if (txid == NULL || txid[0] == '\0' ||
	    strlen(txid) >= CHALLENGE_TXID_MAX) {
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "refused request from %s: transactionID missing or longer "
		    "than %d bytes",
		    req->origin ? req->origin : "?", CHALLENGE_TXID_MAX - 1);
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error = "transactionID missing or too long";
		return -1;
	}
	r->txid = txid;
	len = password != NULL ? strlen(password) : 0;
	if (len == 0 || len > CHALLENGE_PASSWORD_MAX) {
		log_event(LOG_LEVEL_WARN, txid, req->id,
		    "refused (client %s): challenge password of %zu bytes",
		    r->addr, len);
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = E_NOT_VALID;
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		hex += isxdigit((unsigned char)password[i]) != 0;
	for (size_t i = 0; i <= len; i++)
		norm[i] = hex == len ? (char)toupper((unsigned char)password[i])
		                     : password[i];
	if (challenge_mac(c, norm, r->mac) != 0) {
		log_event(LOG_LEVEL_ERROR, txid, req->id, "HMAC failed");
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error =
		    "the challenge service cannot check passwords now";
		goto out;
	}
	challenge_mac_id(r->mac, r->id);
	rc = 0;
out:
	OPENSSL_cleanse(norm, sizeof(norm));
	return rc;
}

static void
redeem_refuse(Scep__V1__Reply *reply, const Scep__V1__Request *req,
    const struct redeem *r, enum log_level level, const char *op,
    const char *why, const char *detail)
{
	log_event(level, r->txid, req->id,
	    "%s refused (client %s, via %s): %s%s", op, r->addr,
	    req->origin ? req->origin : "?", why, detail ? detail : "");
	reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
	reply->error = (char *)why;
}

static void
redeem_internal(Scep__V1__Reply *reply, const Scep__V1__Request *req,
    const struct redeem *r, const char *what, int e)
{
	log_event(LOG_LEVEL_ERROR, r->txid, req->id, "database %s: %s", what,
	    mdb_strerror(e));
	reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
	reply->error = "the challenge service cannot check passwords now";
}

void
challenge_handle_check(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct challenge *c = worker;
	const Scep__V1__ChallengeCheckRequest *in = req->challenge_check;
	Scep__V1__ChallengeCheckReply *out;
	struct challenge_record rec;
	struct redeem r;
	MDB_txn *txn = NULL;
	int64_t now = (int64_t)time(NULL);
	int e, found;

	if (redeem_prepare(c, req, in->password, in->transaction_id,
	        in->client_addr, &r, reply) != 0)
		goto out;
	if ((e = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0) {
		redeem_internal(reply, req, &r, "begin", e);
		goto out;
	}
	found = challenge_record_get(txn, c->dbi, r.mac, &rec);
	if (found < 0) {
		redeem_internal(reply, req, &r, "read", MDB_CORRUPTED);
		goto out;
	}
	if (found > 0 || rec.expires_at <= now) {
		redeem_refuse(reply, req, &r, LOG_LEVEL_WARN, "check",
		    E_NOT_VALID, found > 0 ? " (unknown)" : " (expired)");
		goto out;
	}
	switch (rec.state) {
	case CHALLENGE_ISSUED:
		rec.state = CHALLENGE_RESERVED;
		snprintf(
		    rec.reserved_txid, sizeof(rec.reserved_txid), "%s", r.txid);
		if ((e = challenge_record_put(txn, c->dbi, &rec, 0)) != 0) {
			redeem_internal(reply, req, &r, "write", e);
			goto out;
		}
		e = mdb_txn_commit(txn);
		txn = NULL;
		if (e != 0) {
			redeem_internal(reply, req, &r, "commit", e);
			goto out;
		}
		log_event(LOG_LEVEL_INFO, r.txid, req->id,
		    "password id=%s (issued to %s) reserved for client %s",
		    r.id, rec.issued_by, r.addr);
		break;
	case CHALLENGE_RESERVED:
	case CHALLENGE_USED:
		if (strcmp(rec.reserved_txid, r.txid) != 0) {
			char detail[200];

			snprintf(detail, sizeof(detail),
			    " (password id=%s, held by txid %s)", r.id,
			    rec.reserved_txid);
			/* A second device with the same password: someone
			 * shared or intercepted it. */
			redeem_refuse(reply, req, &r, LOG_LEVEL_WARN,
			    "security: check",
			    rec.state == CHALLENGE_USED ? E_USED : E_RESERVED,
			    detail);
			goto out;
		}
		/* The same transaction again: the device retried. The CA
		 * answers a retry with the certificate already issued. */
		log_event(LOG_LEVEL_INFO, r.txid, req->id,
		    "password id=%s presented again by its transaction "
		    "(client %s, %s)",
		    r.id, r.addr,
		    rec.state == CHALLENGE_USED ? "already used" : "reserved");
		break;
	default:
		redeem_internal(reply, req, &r, "record state", MDB_CORRUPTED);
		goto out;
	}
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__challenge_check_reply__init(out);
	reply->body_case = SCEP__V1__REPLY__BODY_CHALLENGE_CHECK;
	reply->challenge_check = out;
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
}

void
challenge_handle_consume(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct challenge *c = worker;
	const Scep__V1__ChallengeConsumeRequest *in = req->challenge_consume;
	Scep__V1__ChallengeConsumeReply *out;
	struct challenge_record rec;
	struct redeem r;
	MDB_txn *txn = NULL;
	int e, found;

	if (redeem_prepare(
	        c, req, in->password, in->transaction_id, NULL, &r, reply) != 0)
		goto out;
	if ((e = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0) {
		redeem_internal(reply, req, &r, "begin", e);
		goto out;
	}
	found = challenge_record_get(txn, c->dbi, r.mac, &rec);
	if (found < 0) {
		redeem_internal(reply, req, &r, "read", MDB_CORRUPTED);
		goto out;
	}
	/* No expiry test: a reservation that expired while its certificate
	 * was being issued is still paid for by that certificate. */
	if (found > 0) {
		redeem_refuse(reply, req, &r, LOG_LEVEL_WARN, "consume",
		    E_NOT_VALID, " (unknown)");
		goto out;
	}
	if (rec.state == CHALLENGE_ISSUED) {
		redeem_refuse(reply, req, &r, LOG_LEVEL_WARN, "consume",
		    E_NOT_RESERVED, NULL);
		goto out;
	}
	if (strcmp(rec.reserved_txid, r.txid) != 0) {
		redeem_refuse(reply, req, &r, LOG_LEVEL_WARN,
		    "security: consume",
		    rec.state == CHALLENGE_USED ? E_USED : E_RESERVED, NULL);
		goto out;
	}
	if (rec.state == CHALLENGE_RESERVED) {
		rec.state = CHALLENGE_USED;
		if ((e = challenge_record_put(txn, c->dbi, &rec, 0)) != 0) {
			redeem_internal(reply, req, &r, "write", e);
			goto out;
		}
		e = mdb_txn_commit(txn);
		txn = NULL;
		if (e != 0) {
			redeem_internal(reply, req, &r, "commit", e);
			goto out;
		}
		log_event(LOG_LEVEL_INFO, r.txid, req->id,
		    "password id=%s (issued to %s) used", r.id, rec.issued_by);
	} else
		log_event(LOG_LEVEL_INFO, r.txid, req->id,
		    "password id=%s already used by this transaction", r.id);
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__challenge_consume_reply__init(out);
	reply->body_case = SCEP__V1__REPLY__BODY_CHALLENGE_CONSUME;
	reply->challenge_consume = out;
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
}
