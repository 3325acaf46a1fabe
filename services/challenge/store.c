/*
 * challenge.mdb: HMAC(password) -> struct challenge_record in the main
 * database. The key is the MAC, so looking a password up never compares
 * the password itself; LMDB's durable commits make a reservation survive
 * a crash before the reply leaves.
 *
 * Two indexes beside the records, so that issuing a password costs what
 * the passwords due and outstanding cost, not what the database holds
 * (a used password stays CHALLENGE_TXN_KEEP_S for its transaction's
 * retries: a week of an MDM's enrollments, every one read by each issue
 * when the sweep walked the records):
 *   "due": time, MAC -> nothing; when to look at a record again (its
 *     expiry, then the end of its keep). A record deleted otherwise
 *     leaves its entry, dropped when met.
 *   "outstanding": pool, account (the MDM pool only), NUL, expiry, MAC
 *     -> nothing; one per record not used. PasswordMax and MdmPasswordMax
 *     count the unexpired entries of their range.
 * Both are read against the records at every start and made again when
 * they differ (a build that did not keep them, a copied database): an
 * index is never older than the records.
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

#define DUE_KEY_LEN (8 + CHALLENGE_MAC_LEN)
#define OUTSTANDING_KEY_MAX (1 + CHALLENGE_WHO_MAX + 8 + CHALLENGE_MAC_LEN)

/* Big-endian, sign bit flipped: keys sort as the times do. */
static void
time_put(unsigned char *p, int64_t t)
{
	uint64_t u = (uint64_t)t ^ (UINT64_C(1) << 63);

	for (int i = 7; i >= 0; i--, u >>= 8)
		p[i] = (unsigned char)u;
}

static int64_t
time_get(const unsigned char *p)
{
	uint64_t u = 0;

	for (int i = 0; i < 8; i++)
		u = u << 8 | p[i];
	return (int64_t)(u ^ (UINT64_C(1) << 63));
}

/* The range of `pool` (of `who`, for the MDM pool): PasswordMax counts
 * all accounts together. */
static size_t
outstanding_prefix(uint32_t pool, const char *who, unsigned char *out)
{
	size_t n = 0, len;

	out[n++] = (unsigned char)pool;
	if (pool == CHALLENGE_POOL_MDM) {
		len = strnlen(who, CHALLENGE_WHO_MAX - 1);
		memcpy(out + n, who, len);
		n += len;
	}
	out[n++] = '\0';
	return n;
}

/* rec's key in "outstanding"; its length. */
static size_t
outstanding_key(const struct challenge_record *rec, unsigned char *k)
{
	size_t n = outstanding_prefix(rec->pool, rec->issued_by, k);

	time_put(k + n, rec->expires_at);
	memcpy(k + n + 8, rec->mac, CHALLENGE_MAC_LEN);
	return n + 8 + CHALLENGE_MAC_LEN;
}

/* rec's entry in "outstanding", present or not. */
static int
outstanding_set(struct challenge *c, MDB_txn *txn,
    const struct challenge_record *rec, int present)
{
	unsigned char k[OUTSTANDING_KEY_MAX];
	MDB_val key = {outstanding_key(rec, k), k}, none = {0, k};
	int e;

	e = present ? mdb_put(txn, c->outstanding_dbi, &key, &none, 0)
	            : mdb_del(txn, c->outstanding_dbi, &key, NULL);
	return e == MDB_NOTFOUND ? 0 : e;
}

static int
due_put(struct challenge *c, MDB_txn *txn, int64_t when,
    const unsigned char mac[CHALLENGE_MAC_LEN])
{
	unsigned char k[DUE_KEY_LEN];
	MDB_val key = {sizeof(k), k}, none = {0, k};

	time_put(k, when);
	memcpy(k + 8, mac, CHALLENGE_MAC_LEN);
	return mdb_put(txn, c->due_dbi, &key, &none, 0);
}

static int
index_has(MDB_txn *txn, MDB_dbi dbi, unsigned char *k, size_t len)
{
	MDB_val key = {len, k}, val;

	return mdb_get(txn, dbi, &key, &val) == 0;
}

/*
 * Whether both indexes hold every record as index_build makes them (a due
 * entry may have moved on to the end of its keep) and "outstanding" no
 * more: then a start writes nothing, and so starts on a full disk too.
 */
static int
index_current(struct challenge *c, MDB_txn *txn)
{
	static const int64_t keeps[] = {
	    0, CHALLENGE_RESERVED_KEEP_S, CHALLENGE_TXN_KEEP_S};
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	MDB_stat st;
	size_t outstanding = 0;
	int e, current = 0;

	if (mdb_cursor_open(txn, c->dbi, &cur) != 0)
		return 0;
	for (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST); e == 0;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct challenge_record rec;
		unsigned char k[OUTSTANDING_KEY_MAX];
		size_t i;

		/* The single password's record, the indexes' names. */
		if (key.mv_size != CHALLENGE_MAC_LEN)
			continue;
		if (!challenge_record_read(&val, &rec))
			goto out; /* to be deleted */
		memcpy(k + 8, rec.mac, CHALLENGE_MAC_LEN);
		for (i = 0; i < sizeof(keeps) / sizeof(keeps[0]); i++) {
			time_put(k, rec.expires_at + keeps[i]);
			if (index_has(txn, c->due_dbi, k, DUE_KEY_LEN))
				break;
		}
		if (i == sizeof(keeps) / sizeof(keeps[0]))
			goto out;
		if (rec.state == CHALLENGE_USED)
			continue;
		if (!index_has(
		        txn, c->outstanding_dbi, k, outstanding_key(&rec, k)))
			goto out;
		outstanding++;
	}
	current = e == MDB_NOTFOUND &&
	    mdb_stat(txn, c->outstanding_dbi, &st) == 0 &&
	    st.ms_entries == outstanding;
out:
	mdb_cursor_close(cur);
	return current;
}

/* Both indexes made again from the records; a record of no version we
 * read can never match, and goes. */
static int
index_build(struct challenge *c, MDB_txn *txn)
{
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int e;

	if ((e = mdb_drop(txn, c->due_dbi, 0)) != 0 ||
	    (e = mdb_drop(txn, c->outstanding_dbi, 0)) != 0 ||
	    (e = mdb_cursor_open(txn, c->dbi, &cur)) != 0)
		return e;
	for (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST); e == 0;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct challenge_record rec;

		if (key.mv_size != CHALLENGE_MAC_LEN)
			continue;
		if (!challenge_record_read(&val, &rec)) {
			if ((e = mdb_cursor_del(cur, 0)) != 0)
				break;
			continue;
		}
		if ((e = due_put(c, txn, rec.expires_at, rec.mac)) != 0 ||
		    (e = outstanding_set(
		         c, txn, &rec, rec.state != CHALLENGE_USED)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return e == MDB_NOTFOUND ? 0 : e;
}

/* The indexes, made again unless they are current. */
static int
index_open(struct challenge *c, int *built)
{
	MDB_txn *txn = NULL;
	int e;

	*built = 0;
	if ((e = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0)
		return e;
	if ((e = mdb_dbi_open(txn, "due", MDB_CREATE, &c->due_dbi)) != 0 ||
	    (e = mdb_dbi_open(
	         txn, "outstanding", MDB_CREATE, &c->outstanding_dbi)) != 0)
		goto fail;
	if (!index_current(c, txn)) {
		*built = 1;
		if ((e = index_build(c, txn)) != 0)
			goto fail;
	}
	/* Nothing written, nothing flushed. */
	return mdb_txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return e;
}

/*
 * Whether SecretFile is the key the records were written with: a key file
 * lost and made anew (the compose files keep it on another volume than
 * the database) left every password on record unknown, refused as wrong
 * while still counted in PasswordMax, with one line of info. The
 * database keeps an HMAC of a fixed text under the key; a database with
 * records and another key's check stops the service. 0, or -1 with the
 * reason in err.
 */
#define SECRET_CHECK_KEY "secret-check"

/* Whether the main database holds a password or the single password's
 * record (it also holds the indexes' names and the check). */
static int
records_exist(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_cursor *cur;
	MDB_val key, val;
	int e, found = 0;

	if (mdb_cursor_open(txn, dbi, &cur) != 0)
		return 1; /* as if: a start is refused, not a key taken */
	for (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST); e == 0 && !found;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
		found = key.mv_size == CHALLENGE_MAC_LEN ||
		    (key.mv_size == sizeof(CHALLENGE_SINGLE_KEY) - 1 &&
		        memcmp(key.mv_data, CHALLENGE_SINGLE_KEY,
		            key.mv_size) == 0);
	mdb_cursor_close(cur);
	return found;
}

static int
secret_check(struct challenge *c, char *err, size_t errlen)
{
	unsigned char check[CHALLENGE_MAC_LEN];
	MDB_val key = {sizeof(SECRET_CHECK_KEY) - 1, (void *)SECRET_CHECK_KEY};
	MDB_val val = {sizeof(check), check}, stored;
	MDB_txn *txn = NULL;
	int e, found, records;

	if (challenge_mac(c, "scepd SecretFile check", check) != 0) {
		snprintf(err, errlen, "no HMAC from OpenSSL");
		return -1;
	}
	if ((e = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) != 0)
		goto failed;
	found = mdb_get(txn, c->dbi, &key, &stored) == 0;
	if (found && stored.mv_size == sizeof(check) &&
	    CRYPTO_memcmp(stored.mv_data, check, sizeof(check)) == 0) {
		mdb_txn_abort(txn);
		return 0; /* the usual start: nothing written */
	}
	records = found && records_exist(txn, c->dbi);
	mdb_txn_abort(txn);
	txn = NULL;
	if (records) {
		snprintf(err, errlen,
		    "%s: SecretFile %s is not the key the passwords on record "
		    "were written with (a key file lost or replaced makes "
		    "every one of them unknown): put the right file back; or, "
		    "to start afresh with every password on record void, move "
		    "%s away",
		    c->settings.database, c->settings.secret_file,
		    c->settings.database);
		return -1;
	}
	if (found)
		log_warn("SecretFile %s is a new key; the password database "
		         "held no password: its check is written again",
		    c->settings.secret_file);
	if ((e = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0 ||
	    (e = mdb_put(txn, c->dbi, &key, &val, 0)) != 0)
		goto failed;
	e = mdb_txn_commit(txn);
	txn = NULL;
	if (e == 0)
		return 0;
failed:
	if (txn != NULL)
		mdb_txn_abort(txn);
	snprintf(err, errlen, "%s: the SecretFile check: %s",
	    c->settings.database, store_strerror(e));
	return -1;
}

/*
 * The mark CHALLENGE_FLAGS_KEY holds the id of the write that closed the
 * database last (challenge_db_close): at an open where it is not the last
 * write's (absent: the first open by a build that counts the reports of a
 * transaction's requests; older: this service was killed, or another
 * build wrote since, which keeps its counts in memory and leaves flags
 * as they were), a password reserved may have been presented again by
 * requests no count remembers: each is flagged so, and a release asked
 * for it waits for its expiry (otp.c). A flag that its reserving request
 * reported is dropped: it may be a reservation's before.
 */
/* 1 when the mark says this build's close wrote last, 0 when not, -1
 * when absent; *e set on a database error. Before any write of the open
 * (an index made again would move the last write's id). */
static int
records_closed_cleanly(struct challenge *c, int *e)
{
	MDB_val mark = {sizeof(CHALLENGE_FLAGS_KEY) - 1,
	            (void *)CHALLENGE_FLAGS_KEY},
	        val;
	uint64_t closed_by = 0;
	MDB_txn *txn = NULL;
	int rc;

	if ((*e = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) != 0)
		return 0;
	*e = mdb_get(txn, c->dbi, &mark, &val);
	if (*e == MDB_NOTFOUND) {
		*e = 0;
		rc = -1;
	} else {
		if (*e == 0 && val.mv_size == sizeof(closed_by))
			memcpy(&closed_by, val.mv_data, sizeof(closed_by));
		/* The id of the snapshot read: the last committed write. */
		rc = *e == 0 && closed_by == (uint64_t)mdb_txn_id(txn);
	}
	mdb_txn_abort(txn);
	return rc;
}

static int
records_flag_reserved(struct challenge *c, int closed_cleanly)
{
	MDB_val mark = {sizeof(CHALLENGE_FLAGS_KEY) - 1,
	            (void *)CHALLENGE_FLAGS_KEY},
	        key, val;
	uint64_t closed_by = 0;
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	size_t flagged = 0;
	int e;

	if (closed_cleanly > 0)
		return 0;
	if ((e = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0)
		return e;
	if ((e = mdb_cursor_open(txn, c->dbi, &cur)) != 0)
		goto out;
	for (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST); e == 0;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct challenge_record rec;
		MDB_val k;

		if (key.mv_size != CHALLENGE_MAC_LEN ||
		    !challenge_record_read(&val, &rec) ||
		    rec.state != CHALLENGE_RESERVED ||
		    memcmp(rec.mac, key.mv_data, CHALLENGE_MAC_LEN) != 0)
			continue;
		rec.flags |= CHALLENGE_FLAG_PRESENTED_AGAIN;
		rec.flags &= ~CHALLENGE_FLAG_RESERVER_REPORTED;
		/* The key from the copy: a record read as version 1 grows,
		 * and LMDB moves the page's nodes as it puts it back. */
		k.mv_size = CHALLENGE_MAC_LEN;
		k.mv_data = rec.mac;
		val.mv_size = sizeof(rec);
		val.mv_data = &rec;
		if ((e = mdb_cursor_put(cur, &k, &val, MDB_CURRENT)) != 0)
			break;
		flagged++;
	}
	mdb_cursor_close(cur);
	closed_by = 0; /* till this build closes it */
	val.mv_size = sizeof(closed_by);
	val.mv_data = &closed_by;
	if (e == MDB_NOTFOUND)
		e = mdb_put(txn, c->dbi, &mark, &val, 0);
out:
	if (e != 0) {
		mdb_txn_abort(txn);
		return e;
	}
	if ((e = mdb_txn_commit(txn)) == 0 && flagged > 0)
		log_warn("passwords: %zu reserved when the database was last "
		         "written %s: a release of one (the CA refused its "
		         "transaction) waits for its expiry, as its "
		         "transaction's other requests may not have been "
		         "counted",
		    flagged,
		    closed_cleanly < 0
		        ? "by a build that did not count them"
		        : "other than by this service's stop (it was "
		          "killed, or another build ran)");
	return e;
}

/* The mark that this build closed the database with its last write. */
static void
records_mark_closed(struct challenge *c)
{
	MDB_val mark = {sizeof(CHALLENGE_FLAGS_KEY) - 1,
	            (void *)CHALLENGE_FLAGS_KEY},
	        val;
	MDB_txn *txn = NULL;
	uint64_t id;
	int e;

	if ((e = mdb_txn_begin(c->env, NULL, 0, &txn)) == 0) {
		id = (uint64_t)mdb_txn_id(txn);
		val.mv_size = sizeof(id);
		val.mv_data = &id;
		if ((e = mdb_put(txn, c->dbi, &mark, &val, 0)) != 0)
			mdb_txn_abort(txn);
		else
			e = mdb_txn_commit(txn);
	}
	if (e != 0)
		log_error(
		    "passwords: the database's close not marked (%s): "
		    "the reserved passwords are flagged at the next start",
		    store_strerror(e));
}

int
challenge_db_open(struct challenge *c, char *err, size_t errlen)
{
	static const char *const main_db[] = {NULL};
	int built, clean, e;

	if (store_open(c->settings.database, c->settings.database_max_mib,
	        "DatabaseMaxMiB in [challenge]", main_db, &c->env, &c->dbi, err,
	        errlen) != 0)
		return -1;
	clean = records_closed_cleanly(c, &e);
	if (e != 0 || (e = index_open(c, &built)) != 0) {
		snprintf(err, errlen, "%s: indexing the passwords: %s",
		    c->settings.database, store_strerror(e));
		mdb_env_close(c->env);
		c->env = NULL;
		return -1;
	}
	if (built)
		log_info("passwords: indexes made again from the records");
	if (secret_check(c, err, errlen) != 0) {
		mdb_env_close(c->env);
		c->env = NULL;
		return -1;
	}
	if ((e = records_flag_reserved(c, clean)) != 0) {
		snprintf(err, errlen, "%s: flagging the reserved passwords: %s",
		    c->settings.database, store_strerror(e));
		mdb_env_close(c->env);
		c->env = NULL;
		return -1;
	}
	return 0;
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
		records_mark_closed(c);
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

/* Its strings end within their fields, as every writer leaves them: a
 * record without is damaged, and string functions would read past. */
static int
challenge_record_strings_end(const struct challenge_record *rec)
{
	return memchr(rec->issued_by, '\0', sizeof(rec->issued_by)) != NULL &&
	    memchr(rec->reserved_txid, '\0', sizeof(rec->reserved_txid)) !=
	    NULL;
}

int
challenge_record_read(const MDB_val *val, struct challenge_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	if (val->mv_size == sizeof(*rec)) {
		memcpy(rec, val->mv_data, sizeof(*rec));
		return rec->version == CHALLENGE_RECORD_VERSION &&
		    challenge_record_strings_end(rec);
	}
	if (val->mv_size == CHALLENGE_RECORD_V1_SIZE) {
		memcpy(rec, val->mv_data, CHALLENGE_RECORD_V1_SIZE);
		if (rec->version != 1 || !challenge_record_strings_end(rec))
			return 0;
		/* Written back whole: as the present version. */
		rec->version = CHALLENGE_RECORD_VERSION;
		rec->pool = CHALLENGE_POOL_ADMIN;
		return 1;
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
		uint32_t version = 0;

		if (val.mv_size >= sizeof(version))
			memcpy(&version, val.mv_data, sizeof(version));
		log_error("database: a record of %zu bytes, version %u, this "
		          "build cannot read (it reads %zu bytes, version %d, "
		          "and version 1, each text ending within its field); "
		          "treated as unknown",
		    val.mv_size, version, sizeof(*rec),
		    CHALLENGE_RECORD_VERSION);
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
challenge_record_add(
    struct challenge *c, MDB_txn *txn, const struct challenge_record *rec)
{
	MDB_val key = {CHALLENGE_MAC_LEN, (void *)rec->mac};
	MDB_val val = {sizeof(*rec), (void *)rec};
	int e;

	if ((e = mdb_put(txn, c->dbi, &key, &val, MDB_NOOVERWRITE)) != 0 ||
	    (e = due_put(c, txn, rec->expires_at, rec->mac)) != 0)
		return e;
	return outstanding_set(c, txn, rec, rec->state != CHALLENGE_USED);
}

int
challenge_record_put(
    struct challenge *c, MDB_txn *txn, const struct challenge_record *rec)
{
	MDB_val key = {CHALLENGE_MAC_LEN, (void *)rec->mac};
	MDB_val val = {sizeof(*rec), (void *)rec};
	int e;

	if ((e = mdb_put(txn, c->dbi, &key, &val, 0)) != 0)
		return e;
	/* A password is outstanding from its issue until it is used, and
	 * never again (a release makes a reserved one issued): a write that
	 * leaves it so leaves its index pages alone. */
	return rec->state == CHALLENGE_USED ? outstanding_set(c, txn, rec, 0)
	                                    : 0;
}

int
challenge_record_forget(
    struct challenge *c, MDB_txn *txn, const struct challenge_record *rec)
{
	return outstanding_set(c, txn, rec, 0);
}

/* A password deleted unused by a sweep: counted and logged once its
 * transaction commits (a batch whose commit fails is swept again). */
struct sweep_expired {
	unsigned char mac[CHALLENGE_MAC_LEN];
	char issued_by[CHALLENGE_WHO_MAX];
	int reserved;
};

/* The records due by `now`: deleted, or looked at again when their keep
 * ends; at most `limit` of them, *taken counting them; those deleted
 * unused into `expired` (`limit` long), *nexpired of them. */
static int
sweep_due(struct challenge *c, MDB_txn *txn, int64_t now,
    unsigned long *deleted, unsigned long limit, unsigned long *taken,
    struct sweep_expired *expired, unsigned long *nexpired)
{
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int e;

	*taken = 0;
	*nexpired = 0;
	if ((e = mdb_cursor_open(txn, c->due_dbi, &cur)) != 0)
		return e;
	while (*taken < limit &&
	    (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST)) == 0) {
		struct challenge_record rec;
		unsigned char mac[CHALLENGE_MAC_LEN];
		MDB_val rkey = {CHALLENGE_MAC_LEN, mac};
		int64_t keep;
		int found;

		if (key.mv_size != DUE_KEY_LEN) {
			if ((e = mdb_cursor_del(cur, 0)) != 0)
				break;
			continue;
		}
		if (time_get(key.mv_data) > now)
			break;
		(*taken)++;
		memcpy(mac, (const unsigned char *)key.mv_data + 8,
		    CHALLENGE_MAC_LEN);
		if ((e = mdb_cursor_del(cur, 0)) != 0)
			break;
		if ((found = challenge_record_get(txn, c->dbi, mac, &rec)) <
		    0) {
			e = MDB_CORRUPTED;
			break;
		}
		if (found > 0)
			continue; /* revoked or withdrawn since */
		rec.state = challenge_state(c, &rec);
		keep = rec.expires_at +
		    (rec.state == CHALLENGE_USED ? CHALLENGE_TXN_KEEP_S
		            : rec.state == CHALLENGE_RESERVED
		            ? CHALLENGE_RESERVED_KEEP_S
		            : 0);
		if (keep > now) {
			/* Its transaction's, no longer outstanding. */
			if ((e = due_put(c, txn, keep, mac)) != 0)
				break;
			continue;
		}
		if ((e = mdb_del(txn, c->dbi, &rkey, NULL)) != 0 ||
		    (e = challenge_record_forget(c, txn, &rec)) != 0)
			break;
		(*deleted)++;
		if (rec.state != CHALLENGE_USED) {
			struct sweep_expired *x = &expired[(*nexpired)++];

			memcpy(x->mac, rec.mac, CHALLENGE_MAC_LEN);
			memcpy(
			    x->issued_by, rec.issued_by, sizeof(x->issued_by));
			x->reserved = rec.state == CHALLENGE_RESERVED;
		}
	}
	mdb_cursor_close(cur);
	return e == MDB_NOTFOUND ? 0 : e;
}

size_t
challenge_map_free_pages(struct challenge *c, size_t enough)
{
	MDB_envinfo info;
	MDB_stat st;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val key, val;
	size_t pages, tail, listed = 0;

	if (mdb_env_info(c->env, &info) != 0 ||
	    mdb_env_stat(c->env, &st) != 0 || st.ms_psize == 0)
		return 0;
	pages = info.me_mapsize / st.ms_psize;
	tail =
	    pages > info.me_last_pgno + 1 ? pages - info.me_last_pgno - 1 : 0;
	if (tail >= enough)
		return tail;
	/* LMDB's free list (database 0, read in a read-only transaction
	 * only): each record a count of pages, then their numbers, as
	 * mdb_stat -f reads it. */
	if (mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn) != 0)
		return tail;
	if (mdb_cursor_open(txn, 0, &cur) == 0) {
		while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0)
			if (val.mv_size >= sizeof(size_t)) {
				size_t n;

				memcpy(&n, val.mv_data, sizeof(n));
				listed += n;
			}
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return tail + listed;
}

/* Records swept per transaction by challenge_sweep_batches, halved down
 * to one while the map has no room for them. */
#define SWEEP_BATCH 64

int
challenge_sweep_batches(
    struct challenge *c, int64_t now, unsigned long *deleted)
{
	struct sweep_expired expired[SWEEP_BATCH];
	unsigned long batch = SWEEP_BATCH, n, taken, nexpired;
	MDB_txn *txn;
	char id[17];
	int e;

	*deleted = 0;
	for (;;) {
		if ((e = challenge_txn_begin(c, &txn)) != 0)
			return e;
		n = 0;
		if ((e = sweep_due(c, txn, now, &n, batch, &taken, expired,
		         &nexpired)) == 0)
			e = challenge_txn_commit(c, txn);
		else
			challenge_txn_abort(c, txn);
		if (e == MDB_MAP_FULL && batch > 1) {
			batch /= 2;
			continue;
		}
		if (e != 0)
			return e;
		*deleted += n;
		for (unsigned long i = 0; i < nexpired; i++) {
			challenge_mac_id(expired[i].mac, id);
			c->counters.expired++;
			log_info("password id=%s issued to %s expired %s", id,
			    expired[i].issued_by,
			    expired[i].reserved
			        ? "reserved but never paid for a certificate"
			        : "unused");
		}
		if (taken < batch)
			return 0;
	}
}

int
challenge_outstanding(struct challenge *c, MDB_txn *txn, int64_t now,
    enum challenge_pool pool, const char *who, unsigned long *outstanding)
{
	unsigned char k[OUTSTANDING_KEY_MAX];
	size_t n = outstanding_prefix(pool, who, k);
	MDB_val key = {n + 8, k}, val;
	MDB_cursor *cur = NULL;
	int e;

	*outstanding = 0;
	if ((e = mdb_cursor_open(txn, c->outstanding_dbi, &cur)) != 0)
		return e;
	/* From the first to expire after now, to the end of the range. */
	time_put(k + n, now + 1);
	for (e = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); e == 0;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (key.mv_size < n || memcmp(key.mv_data, k, n) != 0)
			break;
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
