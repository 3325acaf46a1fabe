/*
 * scepd-ca: holds the CA key, applies the issuance policy itself (whatever
 * the RA decided, it is the last line of defence), signs, and keeps the
 * ledger of issued certificates in LMDB. Issuance is idempotent by
 * transactionID: a retried transaction gets the certificate it already got.
 */
#ifndef SCEPD_CA_H
#define SCEPD_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <lmdb.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "rpc.h"

#define CA_SERIAL_LEN 16 /* 128 random bits */
#define CA_SERIAL_HEX (2 * CA_SERIAL_LEN + 1) /* upper-case hex, with NUL */
#define CA_TXID_MAX 255 /* bytes, without the NUL */

struct ca_settings {
	char *listen;
	char *certificate;
	char *key;
	char *key_passphrase_file;
	char *database;
	long validity_days;
	long min_rsa_bits;
};

/* The service: read-only after start-up except through LMDB. */
struct ca {
	struct ca_settings settings;
	X509 *cert;
	EVP_PKEY *key;
	time_t not_before, not_after; /* of the CA certificate */
	MDB_env *env;
	MDB_dbi certs; /* serial (hex) -> ledger record */
	MDB_dbi txids; /* transactionID -> serial (hex) */
	void *zmq_ctx;
};

/* A refusal: the failInfo for the device's CertRep and a reason. */
struct ca_refusal {
	int fail_info; /* Scep__V1__FailInfo */
	char why[256];
};

/* csr.c: parses the PKCS#10 bytes and applies the request policy. */
int ca_csr_check(const struct ca *ca, const uint8_t *der, size_t len,
    X509_REQ **out, struct ca_refusal *refusal);

/* issue.c */
/* 128 random bits, positive and non-zero; hex is upper case, 32 digits. */
int ca_serial_new(unsigned char serial[CA_SERIAL_LEN], char hex[CA_SERIAL_HEX]);
/* The certificate for `req`, signed with SHA-256. NULL and *why on failure. */
X509 *ca_issue_build(const struct ca *ca, X509_REQ *req,
    const unsigned char serial[CA_SERIAL_LEN], time_t now, const char **why);

/* ledger.c */
struct ca_ledger_entry {
	const uint8_t *der; /* the certificate */
	size_t der_len;
	const char *subject; /* for operators: one line */
	const char *txid;
	const char *client_addr; /* "" when unknown */
	int64_t issued_at;
	int64_t not_after;
};
int ca_ledger_open(struct ca *ca, char *err, size_t errlen);
void ca_ledger_close(struct ca *ca);
/*
 * The certificate issued to `txid`: 0 with *der and *der_len pointing into
 * the transaction's memory (valid until it ends) and `serial` filled;
 * 1 when there is none; -1 on a database error (logged).
 */
int ca_ledger_find_txid(const struct ca *ca, MDB_txn *txn, const char *txid,
    const uint8_t **der, size_t *der_len, char serial[CA_SERIAL_HEX]);
/* 1 when `serial` is in the ledger, 0 when not, -1 on error (logged). */
int
ca_ledger_serial_used(const struct ca *ca, MDB_txn *txn, const char *serial);
/* Records the certificate under `serial` and `txid`. An MDB_* code. */
int ca_ledger_put(const struct ca *ca, MDB_txn *txn, const char *serial,
    const struct ca_ledger_entry *entry);

/* sign.c */
void ca_handle_sign(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

#endif
