/*
 * ca.mdb: the ledger of issued certificates. Named databases:
 *   certs  serial (32 upper-case hex digits) -> record
 *   txids  transactionID -> serial
 * A record is a fixed header followed by the DER certificate, the subject
 * line, the transactionID and the client address (no NULs stored).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ca.h"
#include "log.h"
#include "store.h"

#define CA_LEDGER_VERSION 1
/* Address space only; the file grows with what is written. */
#define CA_MAP_SIZE ((size_t)1 << 30)

struct ca_ledger_head {
	uint32_t version;
	uint32_t der_len;
	uint32_t subject_len;
	uint32_t txid_len;
	uint32_t addr_len;
	uint32_t reserved;
	int64_t issued_at;
	int64_t not_after;
};

int
ca_ledger_open(struct ca *ca, char *err, size_t errlen)
{
	static const char *const names[] = {"certs", "txids", NULL};
	MDB_dbi dbis[2];

	if (store_open(ca->settings.database, CA_MAP_SIZE, names, &ca->env,
	        dbis, err, errlen) != 0)
		return -1;
	ca->certs = dbis[0];
	ca->txids = dbis[1];
	return 0;
}

void
ca_ledger_close(struct ca *ca)
{
	if (ca->env != NULL)
		mdb_env_close(ca->env);
	ca->env = NULL;
}

int
ca_ledger_serial_used(const struct ca *ca, MDB_txn *txn, const char *serial)
{
	MDB_val key = {strlen(serial), (void *)serial}, val;
	int e = mdb_get(txn, ca->certs, &key, &val);

	if (e == MDB_NOTFOUND)
		return 0;
	if (e != 0) {
		log_error("ledger: %s", mdb_strerror(e));
		return -1;
	}
	return 1;
}

int
ca_ledger_find_txid(const struct ca *ca, MDB_txn *txn, const char *txid,
    const uint8_t **der, size_t *der_len, char serial[CA_SERIAL_HEX])
{
	MDB_val key = {strlen(txid), (void *)txid}, val;
	struct ca_ledger_head head;
	int e;

	if ((e = mdb_get(txn, ca->txids, &key, &val)) == MDB_NOTFOUND)
		return 1;
	if (e != 0) {
		log_event(
		    LOG_LEVEL_ERROR, txid, 0, "ledger: %s", mdb_strerror(e));
		return -1;
	}
	if (val.mv_size != CA_SERIAL_HEX - 1) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "ledger: transaction record of %zu bytes", val.mv_size);
		return -1;
	}
	memcpy(serial, val.mv_data, CA_SERIAL_HEX - 1);
	serial[CA_SERIAL_HEX - 1] = '\0';
	key.mv_size = CA_SERIAL_HEX - 1;
	key.mv_data = serial;
	if ((e = mdb_get(txn, ca->certs, &key, &val)) != 0) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "ledger: serial %s of this transaction: %s", serial,
		    mdb_strerror(e));
		return -1;
	}
	if (val.mv_size < sizeof(head)) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "ledger: record %s is truncated", serial);
		return -1;
	}
	memcpy(&head, val.mv_data, sizeof(head));
	if (head.version != CA_LEDGER_VERSION ||
	    (uint64_t)head.der_len + head.subject_len + head.txid_len +
	            head.addr_len !=
	        val.mv_size - sizeof(head)) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "ledger: record %s is malformed", serial);
		return -1;
	}
	*der = (const uint8_t *)val.mv_data + sizeof(head);
	*der_len = head.der_len;
	return 0;
}

int
ca_ledger_put(const struct ca *ca, MDB_txn *txn, const char *serial,
    const struct ca_ledger_entry *entry)
{
	struct ca_ledger_head head;
	size_t subject_len = strlen(entry->subject);
	size_t txid_len = strlen(entry->txid);
	size_t addr_len = strlen(entry->client_addr);
	MDB_val key = {strlen(serial), (void *)serial}, val;
	uint8_t *p;
	int e;

	if (entry->der_len > UINT32_MAX || subject_len > UINT32_MAX ||
	    txid_len > UINT32_MAX || addr_len > UINT32_MAX)
		return EINVAL;
	memset(&head, 0, sizeof(head));
	head.version = CA_LEDGER_VERSION;
	head.der_len = (uint32_t)entry->der_len;
	head.subject_len = (uint32_t)subject_len;
	head.txid_len = (uint32_t)txid_len;
	head.addr_len = (uint32_t)addr_len;
	head.issued_at = entry->issued_at;
	head.not_after = entry->not_after;
	val.mv_size =
	    sizeof(head) + entry->der_len + subject_len + txid_len + addr_len;
	val.mv_data = NULL;
	/* Written in place: MDB_RESERVE hands us the record's memory. */
	if ((e = mdb_put(txn, ca->certs, &key, &val,
	         MDB_NOOVERWRITE | MDB_RESERVE)) != 0)
		return e;
	p = val.mv_data;
	memcpy(p, &head, sizeof(head));
	p += sizeof(head);
	memcpy(p, entry->der, entry->der_len);
	p += entry->der_len;
	memcpy(p, entry->subject, subject_len);
	p += subject_len;
	memcpy(p, entry->txid, txid_len);
	p += txid_len;
	memcpy(p, entry->client_addr, addr_len);

	key.mv_size = txid_len;
	key.mv_data = (void *)entry->txid;
	val.mv_size = strlen(serial);
	val.mv_data = (void *)serial;
	return mdb_put(txn, ca->txids, &key, &val, MDB_NOOVERWRITE);
}
