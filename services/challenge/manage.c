/*
 * ChallengeListRequest and ChallengeRevokeRequest (scepctl challenge
 * --list, --revoke): the operator's view of the password cache, which
 * lives in LMDB and outlives a restart (NDES's admins empty theirs by
 * restarting IIS). Passwords are never shown: only their ids, the start
 * of the HMAC as every log line names them.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "challenge.h"
#include "log.h"
#include "store.h"

static const char *
state_name(uint32_t state)
{
	return state == CHALLENGE_ISSUED  ? "issued"
	    : state == CHALLENGE_RESERVED ? "reserved"
	    : state == CHALLENGE_USED     ? "used"
	                                  : "?";
}

/* Called without the service's lock: the scan of every record (0.3 s for
 * 100,000) must not hold up checks and issues. What it needs of the
 * shared state, the "used" marks not yet written, is copied under it. */
void
challenge_handle_list(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct challenge *c = worker;
	struct challenge_used *held = rpc_alloc(arena, sizeof(*held));
	Scep__V1__ChallengeListReply *out;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	size_t n = 0, cap = 0;
	int e;

	(void)req;
	pthread_mutex_lock(&c->lock);
	memcpy(held, &c->used, sizeof(*held));
	pthread_mutex_unlock(&c->lock);
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__challenge_list_reply__init(out);
	if ((e = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (e = mdb_cursor_open(txn, c->dbi, &cur)) != 0) {
		log_error("challenge list: %s", store_strerror(e));
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "the password database cannot be read";
		goto out;
	}
	for (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST); e == 0;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct challenge_record rec;
		Scep__V1__ChallengeInfo *p;
		char id[17];

		if (key.mv_size != CHALLENGE_MAC_LEN ||
		    !challenge_record_read(&val, &rec))
			continue; /* the single-password record, or not ours */
		if (n == cap) {
			Scep__V1__ChallengeInfo **grown;

			cap = cap ? 2 * cap : 16;
			grown = rpc_alloc(arena, cap * sizeof(*grown));
			if (n > 0)
				memcpy(
				    grown, out->passwords, n * sizeof(*grown));
			out->passwords = grown;
		}
		p = rpc_alloc(arena, sizeof(*p));
		scep__v1__challenge_info__init(p);
		challenge_mac_id(rec.mac, id);
		rec.issued_by[sizeof(rec.issued_by) - 1] = '\0';
		rec.reserved_txid[sizeof(rec.reserved_txid) - 1] = '\0';
		p->id = rpc_strdup(arena, id);
		p->issued_by = rpc_strdup(arena, rec.issued_by);
		p->issued_at = rec.issued_at;
		p->expires_at = rec.expires_at;
		p->state =
		    (char *)state_name(challenge_record_state(held, &rec));
		if (rec.reserved_txid[0] != '\0')
			p->transaction_id =
			    rpc_strdup(arena, rec.reserved_txid);
		p->pool = rec.pool == CHALLENGE_POOL_MDM ? "mdm" : "admin";
		p->has_release_waits = 1;
		p->release_waits =
		    challenge_record_state(held, &rec) == CHALLENGE_RESERVED &&
		    (rec.flags & CHALLENGE_FLAG_RELEASE_WANTED) != 0;
		out->passwords[n++] = p;
	}
	out->n_passwords = n;
	reply->body_case = SCEP__V1__REPLY__BODY_CHALLENGE_LIST;
	reply->challenge_list = out;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
}

/* The 8 bytes an id (16 hex digits, any case) is of. 0, or -1. */
static int
id_prefix(const char *id, unsigned char prefix[8])
{
	if (strlen(id) != 16)
		return -1;
	for (int i = 0; i < 8; i++) {
		unsigned int byte;

		if (!isxdigit((unsigned char)id[2 * i]) ||
		    !isxdigit((unsigned char)id[2 * i + 1]) ||
		    sscanf(id + 2 * i, "%2x", &byte) != 1)
			return -1;
		prefix[i] = (unsigned char)byte;
	}
	return 0;
}

void
challenge_handle_revoke(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct challenge *c = worker;
	const Scep__V1__ChallengeRevokeRequest *in = req->challenge_revoke;
	const char *id = in->id != NULL ? in->id : "";
	int all = in->has_all_unused && in->all_unused;
	Scep__V1__ChallengeRevokeReply *out;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	unsigned revoked = 0, held = 0, pools;
	unsigned char mac[CHALLENGE_MAC_LEN], prefix[8] = {0};
	char norm[CHALLENGE_PASSWORD_MAX + 1], password_id[17];
	int e;

	/* The frontend withdraws a password it could not hand out, by the
	 * password itself: never others by id, nor all. */
	if (req->origin != NULL && strcmp(req->origin, "frontend") == 0 &&
	    (in->password == NULL || id[0] != '\0' || all)) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error =
		    "the frontend withdraws only a password it holds";
		return;
	}
	if (in->password != NULL) {
		if (id[0] != '\0' || all) {
			reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
			reply->error = "a password, an id or all unused, one";
			return;
		}
		challenge_normalize(in->password, norm, sizeof(norm));
		e = challenge_mac(c, norm, mac);
		OPENSSL_cleanse(norm, sizeof(norm));
		if (e != 0)
			goto internal;
		challenge_mac_id(mac, password_id);
		id = password_id;
	}
	if (all == (id[0] != '\0')) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "an id or all unused passwords, one of the two";
		return;
	}
	/* All unused of the admin pool unless told: the remedy for "The
	 * password cache is full." must not take the passwords an MDM has
	 * pushed to its devices. */
	if (in->pool == NULL || in->pool[0] == '\0' ||
	    strcmp(in->pool, "admin") == 0)
		pools = 1u << CHALLENGE_POOL_ADMIN;
	else if (strcmp(in->pool, "mdm") == 0)
		pools = 1u << CHALLENGE_POOL_MDM;
	else if (strcmp(in->pool, "all") == 0)
		pools =
		    (1u << CHALLENGE_POOL_ADMIN) | (1u << CHALLENGE_POOL_MDM);
	else {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "unknown password pool (admin, mdm or all)";
		return;
	}
	/* One id: its records are the keys that begin with its 8 bytes,
	 * found without a scan of all (the service's lock is held). */
	if (!all && id_prefix(id, prefix) != 0) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "no password with that id";
		return;
	}
	if ((e = challenge_txn_begin(c, &txn)) != 0 ||
	    (e = mdb_cursor_open(txn, c->dbi, &cur)) != 0)
		goto internal;
	key.mv_size = sizeof(prefix);
	key.mv_data = prefix;
	for (e = all ? mdb_cursor_get(cur, &key, &val, MDB_FIRST)
	             : mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	     e == 0; e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct challenge_record rec;
		char rid[17];

		if (!all &&
		    (key.mv_size < sizeof(prefix) ||
		        memcmp(key.mv_data, prefix, sizeof(prefix)) != 0)) {
			e = MDB_NOTFOUND; /* past the id's keys */
			break;
		}
		if (key.mv_size != CHALLENGE_MAC_LEN ||
		    !challenge_record_read(&val, &rec))
			continue;
		challenge_mac_id(rec.mac, rid);
		if (all &&
		    (rec.pool > CHALLENGE_POOL_MDM ||
		        (pools & (1u << rec.pool)) == 0))
			continue;
		if (rec.state != CHALLENGE_ISSUED) {
			held++; /* a device is enrolling with it, or did */
			continue;
		}
		if ((e = mdb_cursor_del(cur, 0)) != 0 ||
		    (e = challenge_record_forget(c, txn, &rec)) != 0)
			goto internal;
		revoked++;
		rec.issued_by[sizeof(rec.issued_by) - 1] = '\0';
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "password id=%s issued to %s revoked by %s", rid,
		    rec.issued_by, in->revoked_by);
	}
	if (e != MDB_NOTFOUND)
		goto internal;
	mdb_cursor_close(cur);
	cur = NULL;
	if ((e = challenge_txn_commit(c, txn)) != 0) {
		txn = NULL;
		goto internal;
	}
	txn = NULL;
	if (!all && revoked == 0) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = held > 0
		    ? "that password is held by a transaction (reserved or "
		      "used): it is no longer the cache's to revoke"
		    : "no password with that id";
		return;
	}
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__challenge_revoke_reply__init(out);
	out->revoked = revoked;
	reply->body_case = SCEP__V1__REPLY__BODY_CHALLENGE_REVOKE;
	reply->challenge_revoke = out;
	return;
internal:
	log_error("challenge revoke: %s", store_strerror(e));
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		challenge_txn_abort(c, txn);
	reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
	reply->error = "the password database cannot be written";
}
