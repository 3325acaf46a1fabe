/*
 * The journal (ca.mdb, database "journal"): transactionID -> what the CA is
 * about to sign, committed before the signature. A record is a fixed
 * header (version, serial, the time the certificate was built with, the
 * SHA-256 of its TBSCertificate) followed by the template's name.
 *
 * A crash between the journal's commit and the ledger's leaves the record:
 * the transaction's retry rebuilds the certificate from the same serial and
 * time, checks that its TBSCertificate hashes the same and signs that,
 * the journalled certificate, never a second one (sign.c). A record older
 * than any retry (ca_journal_stale) is dropped instead, as are those of a
 * request the operator rejected or whose pending record is purged
 * (pending.c).
 */
#include <string.h>
#include <time.h>

#include "ca.h"
#include "log.h"
#include "store.h"

#define CA_JOURNAL_VERSION 1

struct ca_journal_head {
	uint32_t version;
	uint32_t template_len;
	int64_t built_at;
	unsigned char serial[CA_SERIAL_LEN];
	unsigned char tbs_sha256[CA_TBS_HASH_LEN];
};

/* A stored record into `out`: 0, or -1 when it is malformed. */
static int
journal_decode(const MDB_val *val, struct ca_journal_entry *out)
{
	struct ca_journal_head head;

	if (val->mv_size < sizeof(head))
		return -1;
	memcpy(&head, val->mv_data, sizeof(head));
	if (head.version != CA_JOURNAL_VERSION ||
	    head.template_len != val->mv_size - sizeof(head) ||
	    head.template_len >= sizeof(out->template_name))
		return -1;
	memcpy(out->serial, head.serial, sizeof(out->serial));
	memcpy(out->tbs_sha256, head.tbs_sha256, sizeof(out->tbs_sha256));
	out->built_at = head.built_at;
	memcpy(out->template_name, (const char *)val->mv_data + sizeof(head),
	    head.template_len);
	out->template_name[head.template_len] = '\0';
	return 0;
}

int
ca_journal_get(const struct ca *ca, MDB_txn *txn, const char *txid,
    struct ca_journal_entry *out)
{
	MDB_val key = {strlen(txid), (void *)txid}, val;
	int e = mdb_get(txn, ca->journal, &key, &val);

	if (e == MDB_NOTFOUND)
		return 1;
	if (e != 0) {
		log_error("journal: %s", store_strerror(e));
		return -1;
	}
	if (journal_decode(&val, out) != 0) {
		log_error(
		    "journal: the record of transaction %s is malformed", txid);
		return -1;
	}
	return 0;
}

int
ca_journal_put(const struct ca *ca, MDB_txn *txn, const char *txid,
    const struct ca_journal_entry *in)
{
	MDB_val key = {strlen(txid), (void *)txid}, val;
	struct ca_journal_head head;
	size_t tlen = strlen(in->template_name);
	unsigned char buf[sizeof(head) + sizeof(in->template_name)];

	if (tlen >= sizeof(in->template_name))
		return MDB_BAD_VALSIZE;
	memset(&head, 0, sizeof(head));
	head.version = CA_JOURNAL_VERSION;
	head.template_len = (uint32_t)tlen;
	head.built_at = in->built_at;
	memcpy(head.serial, in->serial, sizeof(head.serial));
	memcpy(head.tbs_sha256, in->tbs_sha256, sizeof(head.tbs_sha256));
	memcpy(buf, &head, sizeof(head));
	memcpy(buf + sizeof(head), in->template_name, tlen);
	val.mv_size = sizeof(head) + tlen;
	val.mv_data = buf;
	return mdb_put(txn, ca->journal, &key, &val, 0);
}

int
ca_journal_del(const struct ca *ca, MDB_txn *txn, const char *txid)
{
	MDB_val key = {strlen(txid), (void *)txid};
	int e = mdb_del(txn, ca->journal, &key, NULL);

	return e == MDB_NOTFOUND ? 0 : e;
}

int
ca_journal_commit(const struct ca *ca, MDB_txn **txn)
{
	int e;

	/*
	 * One flush instead of two: without the meta page's own flush an
	 * operating-system crash can lose this commit (never corrupt the
	 * file), and losing it is harmless: the certificate is delivered only
	 * after the ledger's commit, which flushes everything before it.
	 */
	mdb_env_set_flags(ca->env, MDB_NOMETASYNC, 1);
	e = mdb_txn_commit(*txn);
	mdb_env_set_flags(ca->env, MDB_NOMETASYNC, 0);
	*txn = NULL;
	if (e != 0)
		return e;
	return mdb_txn_begin(ca->env, NULL, 0, txn);
}

long
ca_journal_count(const struct ca *ca)
{
	MDB_txn *txn;
	MDB_stat st;
	long n = -1;

	if (mdb_txn_begin(ca->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	if (mdb_stat(txn, ca->journal, &st) == 0)
		n = (long)st.ms_entries;
	mdb_txn_abort(txn);
	return n;
}

int
ca_journal_stale(
    const struct ca *ca, const struct ca_journal_entry *j, time_t now)
{
	int64_t days = ca->settings.pending_days + CA_PENDING_KEPT_DAYS;

	return j->built_at + days * 86400 <= (int64_t)now;
}

static void
journal_log_stale(
    const char *txid, size_t txid_len, const struct ca_journal_entry *j)
{
	char hex[CA_SERIAL_HEX], when[LOG_TIME_LEN];

	for (int i = 0; i < CA_SERIAL_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02X", j->serial[i]);
	log_time((time_t)j->built_at, when);
	log_warn("transaction %.*s: its journalled certificate (serial %s, "
	         "built %s) is older than PendingDays + %d days: never "
	         "delivered, it is abandoned",
	    (int)txid_len, txid, hex, when, CA_PENDING_KEPT_DAYS);
}

int
ca_journal_abandon(const struct ca *ca, MDB_txn *txn, const char *txid,
    const struct ca_journal_entry *j)
{
	journal_log_stale(txid, strlen(txid), j);
	return ca_journal_del(ca, txn, txid);
}

int
ca_journal_purge(const struct ca *ca, MDB_txn *txn, time_t now, long *purged)
{
	struct ca_journal_entry j;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int e;

	*purged = 0;
	if ((e = mdb_cursor_open(txn, ca->journal, &cur)) != 0)
		return e;
	for (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST); e == 0;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		/* A malformed record stays: ca_journal_get reports it. */
		if (journal_decode(&val, &j) != 0 ||
		    !ca_journal_stale(ca, &j, now))
			continue;
		journal_log_stale(key.mv_data, key.mv_size, &j);
		if ((e = mdb_cursor_del(cur, 0)) != 0)
			break;
		(*purged)++;
	}
	mdb_cursor_close(cur);
	return e == MDB_NOTFOUND ? 0 : e;
}
