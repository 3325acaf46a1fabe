/*
 * challenge.mdb: one LMDB database, HMAC(password) -> struct
 * challenge_record. The key is the MAC, so looking a password up never
 * compares the password itself; LMDB's durable commits make a reservation
 * survive a crash before the reply leaves.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "challenge.h"
#include "log.h"
#include "store.h"

/* Room for PasswordMax = 100000 records many times over. */

int
challenge_db_open(struct challenge *c, char *err, size_t errlen)
{
	static const char *const main_db[] = {NULL};

	return store_open(c->settings.database, c->settings.database_max_mib,
	    "DatabaseMaxMiB in [challenge]", main_db, &c->env, &c->dbi, err,
	    errlen);
}

void
challenge_db_close(struct challenge *c)
{
	if (c->env != NULL) {
		/* The held "used" marks, and the meta page of the last
		 * commit that wrote some (used.c). */
		if (challenge_used_flush(c) != 0)
			log_error("otp: %zu 'used' mark%s lost: the passwords "
			          "stay reserved to their transactions",
			    c->used.n, c->used.n == 1 ? "" : "s");
		c->used.n = 0;
		mdb_env_sync(c->env, 1);
		mdb_env_close(c->env);
	}
	c->env = NULL;
}

int
challenge_mac(const struct challenge *c, const char *password,
    unsigned char mac[CHALLENGE_MAC_LEN])
{
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), c->secret, CHALLENGE_SECRET_LEN,
	        (const unsigned char *)password, strlen(password), mac,
	        &len) == NULL ||
	    len != CHALLENGE_MAC_LEN)
		return -1;
	return 0;
}

void
challenge_mac_id(const unsigned char mac[CHALLENGE_MAC_LEN], char out[17])
{
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

int
challenge_record_read(const MDB_val *val, struct challenge_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	if (val->mv_size == sizeof(*rec)) {
		memcpy(rec, val->mv_data, sizeof(*rec));
		return rec->version == CHALLENGE_RECORD_VERSION;
	}
	if (val->mv_size == CHALLENGE_RECORD_V1_SIZE) {
		memcpy(rec, val->mv_data, CHALLENGE_RECORD_V1_SIZE);
		rec->pool = CHALLENGE_POOL_ADMIN;
		return rec->version == 1;
	}
	return 0;
}

int
challenge_record_get(MDB_txn *txn, MDB_dbi dbi,
    const unsigned char mac[CHALLENGE_MAC_LEN], struct challenge_record *rec)
{
	MDB_val key = {CHALLENGE_MAC_LEN, (void *)mac}, val;
	int e;

	if ((e = mdb_get(txn, dbi, &key, &val)) == MDB_NOTFOUND)
		return 1;
	if (e != 0) {
		log_error("database: %s", store_strerror(e));
		return -1;
	}
	if (!challenge_record_read(&val, rec)) {
		log_error("database: a record of %zu bytes (expected %zu); "
		          "treated as unknown",
		    val.mv_size, sizeof(*rec));
		return 1;
	}
	/* The lookup was by key; this also guards against a record stored
	 * under the wrong key, in constant time. */
	if (CRYPTO_memcmp(rec->mac, mac, CHALLENGE_MAC_LEN) != 0)
		return 1;
	rec->issued_by[sizeof(rec->issued_by) - 1] = '\0';
	rec->reserved_txid[sizeof(rec->reserved_txid) - 1] = '\0';
	return 0;
}

int
challenge_record_put(MDB_txn *txn, MDB_dbi dbi,
    const struct challenge_record *rec, unsigned int flags)
{
	MDB_val key = {CHALLENGE_MAC_LEN, (void *)rec->mac};
	MDB_val val = {sizeof(*rec), (void *)rec};

	return mdb_put(txn, dbi, &key, &val, flags);
}

int
challenge_sweep(struct challenge *c, MDB_txn *txn, int64_t now,
    enum challenge_pool pool, const char *who, unsigned long *outstanding,
    unsigned long *deleted)
{
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int e;

	*outstanding = 0;
	*deleted = 0;
	if ((e = mdb_cursor_open(txn, c->dbi, &cur)) != 0)
		return e;
	for (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST); e == 0;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct challenge_record rec;
		char id[17];

		if (key.mv_size != CHALLENGE_MAC_LEN)
			continue; /* not a password: the single-password record */
		if (!challenge_record_read(&val, &rec)) {
			/* Not ours to keep: it can never match. */
			if ((e = mdb_cursor_del(cur, 0)) != 0)
				break;
			(*deleted)++;
			continue;
		}
		rec.state = challenge_state(c, &rec);
		if (rec.expires_at <= now &&
		    ((rec.state == CHALLENGE_USED &&
		         rec.expires_at + CHALLENGE_TXN_KEEP_S > now) ||
		        (rec.state == CHALLENGE_RESERVED &&
		            rec.expires_at + CHALLENGE_RESERVED_KEEP_S > now)))
			continue; /* its transaction's, no longer outstanding */
		if (rec.expires_at <= now) {
			if ((e = mdb_cursor_del(cur, 0)) != 0)
				break;
			(*deleted)++;
			rec.issued_by[sizeof(rec.issued_by) - 1] = '\0';
			challenge_mac_id(rec.mac, id);
			if (rec.state != CHALLENGE_USED) {
				c->counters.expired++;
				log_info(
				    "password id=%s issued to %s expired %s",
				    id, rec.issued_by,
				    rec.state == CHALLENGE_RESERVED
				        ? "reserved but never paid for a "
				          "certificate"
				        : "unused");
			}
			continue;
		}
		if (rec.state == CHALLENGE_USED || rec.pool != (uint32_t)pool)
			continue;
		if (pool == CHALLENGE_POOL_MDM &&
		    strncmp(rec.issued_by, who, sizeof(rec.issued_by)) != 0)
			continue;
		(*outstanding)++;
	}
	mdb_cursor_close(cur);
	return e == MDB_NOTFOUND ? 0 : e;
}

int
challenge_single_get(MDB_txn *txn, MDB_dbi dbi, struct challenge_single *single)
{
	MDB_val key = {sizeof(CHALLENGE_SINGLE_KEY) - 1,
	            (void *)CHALLENGE_SINGLE_KEY},
	        val;
	int e;

	if ((e = mdb_get(txn, dbi, &key, &val)) == MDB_NOTFOUND)
		return 1;
	if (e != 0) {
		log_error("database: %s", store_strerror(e));
		return -1;
	}
	if (val.mv_size != sizeof(*single))
		goto malformed;
	memcpy(single, val.mv_data, sizeof(*single));
	single->set_by[sizeof(single->set_by) - 1] = '\0';
	if (single->version == 1)
		return 0;
malformed:
	log_error("database: the single password's record is malformed: set "
	          "it again (POST api/single-password)");
	return -1;
}

int
challenge_single_put(
    MDB_txn *txn, MDB_dbi dbi, const struct challenge_single *single)
{
	MDB_val key = {
	    sizeof(CHALLENGE_SINGLE_KEY) - 1, (void *)CHALLENGE_SINGLE_KEY};
	MDB_val val = {sizeof(*single), (void *)single};

	return mdb_put(txn, dbi, &key, &val, 0);
}

void
challenge_normalize(const char *password, char *out, size_t outlen)
{
	size_t len = strlen(password), hex = 0, i;

	for (i = 0; i < len; i++)
		hex += isxdigit((unsigned char)password[i]) != 0;
	for (i = 0; i + 1 < outlen && i < len; i++)
		out[i] = hex == len ? (char)toupper((unsigned char)password[i])
		                    : password[i];
	out[i] = '\0';
}
