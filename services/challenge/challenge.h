/*
 * scepd-challenge: one-time enrollment passwords (NDES's "challenge
 * passwords"). A password is shown once, to whoever asked for it; only its
 * HMAC under a local secret is stored, so the database alone never yields
 * a usable password. A password is reserved by the first SCEP transaction
 * that presents it and used once that transaction's certificate is issued.
 */
#ifndef SCEPD_CHALLENGE_H
#define SCEPD_CHALLENGE_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "rpc.h"

#define CHALLENGE_SECRET_LEN 32
#define CHALLENGE_MAC_LEN 32 /* HMAC-SHA256 */
#define CHALLENGE_RAW_LEN 16 /* random bytes in a password */
#define CHALLENGE_TXID_MAX 128 /* with the NUL */
#define CHALLENGE_WHO_MAX 64 /* with the NUL */

struct challenge_settings {
	char *listen;
	char *database;
	char *secret_file;
	long password_validity; /* minutes */
	long password_max;
};

/* The service: read-only after start-up except through LMDB. */
struct challenge {
	struct challenge_settings settings;
	unsigned char secret[CHALLENGE_SECRET_LEN];
	MDB_env *env;
	MDB_dbi dbi;
	void *zmq_ctx;
};

enum challenge_state {
	CHALLENGE_ISSUED = 1,
	CHALLENGE_RESERVED = 2,
	CHALLENGE_USED = 3,
};

/*
 * One stored password, keyed by its HMAC. A fixed layout written as is:
 * the database belongs to this host and this build.
 */
#define CHALLENGE_RECORD_VERSION 1
struct challenge_record {
	uint32_t version;
	uint32_t state; /* enum challenge_state */
	int64_t issued_at;
	int64_t expires_at; /* seconds since the epoch */
	unsigned char mac[CHALLENGE_MAC_LEN];
	char issued_by[CHALLENGE_WHO_MAX];
	char reserved_txid[CHALLENGE_TXID_MAX]; /* "" while issued */
};

int challenge_secret_load(
    const char *path, unsigned char *secret, char *err, size_t errlen);

/* store.c */
int challenge_db_open(struct challenge *c, char *err, size_t errlen);
void challenge_db_close(struct challenge *c);
/* HMAC-SHA256(secret, password); 0 or -1. */
int challenge_mac(const struct challenge *c, const char *password,
    unsigned char mac[CHALLENGE_MAC_LEN]);
/* Short, non-secret handle of a password for logs (hex of the MAC's start). */
void challenge_mac_id(const unsigned char mac[CHALLENGE_MAC_LEN], char out[17]);
/* 0: found and copied; 1: no such record; -1: database error (logged). */
int challenge_record_get(MDB_txn *txn, MDB_dbi dbi,
    const unsigned char mac[CHALLENGE_MAC_LEN], struct challenge_record *rec);
/* MDB_* error code; flags as mdb_put's. */
int challenge_record_put(MDB_txn *txn, MDB_dbi dbi,
    const struct challenge_record *rec, unsigned int flags);
/*
 * Deletes expired records and counts the outstanding ones (issued or
 * reserved, not expired). MDB_* error code.
 */
int challenge_sweep(MDB_txn *txn, MDB_dbi dbi, int64_t now,
    unsigned long *outstanding, unsigned long *deleted);

/* issue.c */
void challenge_handle_issue(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
/* redeem.c: check (reserve) and consume (use). */
void challenge_handle_check(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
void challenge_handle_consume(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

#endif
