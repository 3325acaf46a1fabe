/*
 * scepd-challenge: one-time enrollment passwords (NDES's "challenge
 * passwords"). A password is shown once, to whoever asked for it; only its
 * HMAC under a local secret is stored, so the database alone never yields
 * a usable password. A password is reserved by the first SCEP transaction
 * that presents it and used once that transaction's certificate is issued.
 */
#ifndef SCEPD_CHALLENGE_H
#define SCEPD_CHALLENGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <lmdb.h>

#include "clock.h"
#include "config.h"
#include "passwd.h"
#include "plugin.h"
#include "rpc.h"
#include "sandbox.h"

#define CHALLENGE_SECRET_LEN 32
#define CHALLENGE_MAC_LEN 32 /* HMAC-SHA256 */
#define CHALLENGE_RAW_MAX 64 /* PasswordLength's upper bound (bytes) */
#define CHALLENGE_PASSWORD_MAX 255 /* longer than any typed password */
#define CHALLENGE_TXID_MAX 128 /* with the NUL */
#define CHALLENGE_WHO_MAX 64 /* with the NUL */
/* A password used by a transaction (issued, or held for approval: the CA
 * bound the transactionID to its key) answers that transaction's retries
 * (a lost answer, a PKCSReq sent again while pending) this long past its
 * expiry; then its record goes. */
#define CHALLENGE_TXN_KEEP_S (7 * 86400)
/* Pages of the map an issue leaves free (challenge_map_free_pages): what
 * a sweep of a few records and a reservation need, with room to spare. */
#define CHALLENGE_MAP_RESERVE 32
/* A reserved one is kept this long past its expiry, unusable, for the
 * "used" mark of a certificate issued just before it expired. */
#define CHALLENGE_RESERVED_KEEP_S 600
/* Admin accounts' names fit whole (records are fixed-size: a longer
 * PASSWD_USER_MAX needs a new record version, not a bigger array). */
_Static_assert(CHALLENGE_WHO_MAX == PASSWD_USER_MAX + 1,
    "an account name must fit a password record");

struct challenge_settings {
	char *listen;
	char *database;
	long database_max_mib; /* the LMDB map */
	char *secret_file;
	long password_validity; /* minutes */
	long password_max;
	long password_length; /* random bytes; shown as twice as many hex */
	int enforce_password;
	int allow_no_password;
	int use_single_password;
	char *single_password;
	char *validator; /* for paths without their own */
	char *plugin_dir;
	long mdm_password_max; /* per MDM account */
	long wrong_password_limit; /* refusals per client address ... */
	long wrong_password_window; /* ... in this many seconds */
	long workers; /* 0: 1, or CHALLENGE_PLUGIN_WORKERS with a plugin */
	long validator_rest; /* s a plugin is not asked after failing */
	struct rpc_curve_settings curve; /* CurveZMQ keys (rpc.h) */
	struct sandbox_settings sandbox; /* Sandbox, User */
};

/* A configured validator: built in (otp, static) or a loaded plugin. */
struct validator {
	char *name; /* the instance: "otp", "static" or [validator.NAME] */
	const struct scepd_challenge_validator *v;
	void *state;
	/* A plugin with several workers: an instance each (its check is
	 * called from one thread at a time, and waits on the network);
	 * NULL: `state` serves every worker. */
	void **states;
	size_t nstates;
	int concurrent; /* the plugin says its instances share nothing */
	pthread_mutex_t one_at_a_time; /* check, consume of the others */
	atomic_int queued; /* holding or waiting for one_at_a_time */
	/* Another section of the same module, not concurrent: the one whose
	 * one_at_a_time and queue both take (dlopen gives them one copy of
	 * the plugin's globals); NULL: its own. */
	struct validator *turns_of;
	/* Checks in a row that waited for no verdict (an MDM that hangs):
	 * from VALIDATOR_FAILURES on, the plugin rests (validators.c) until
	 * resting_until_ms (monotonic), then one check asks it. */
	pthread_mutex_t rest_lock;
	int failures;
	int resting;
	int64_t resting_until_ms;
	void *dl; /* dlopen handle; NULL when built in */
	struct scepd_plugin_host host;
	struct challenge *c;
	unsigned long allowed, refused, unavailable;
};

/* [challenge.paths]: SCEP path -> validator. */
struct validator_route {
	char *path;
	struct validator *validator;
};

/* Refusals per client address for the wrong-password limit. */
#define CHALLENGE_LIMIT_SLOTS 4096
#define CHALLENGE_LIMIT_OTHERS 1024
struct refusal_slot {
	char addr[64];
	int64_t window_start;
	unsigned long count;
};

/* Counters for /metrics; plain integers, under challenge.lock. */
struct challenge_counters {
	unsigned long issued, cache_full, used, expired, rate_limited;
	unsigned long security_events; /* a password presented by another */
	unsigned long refused_missing; /* no password in the request */
	unsigned long allowed_without_password; /* AllowNoPassword */
};

/* used.c: "used" marks held until the next write transaction. */
#define CHALLENGE_USED_HOLD_MAX 64
struct challenge_used_mark {
	unsigned char mac[CHALLENGE_MAC_LEN];
	char txid[CHALLENGE_TXID_MAX];
};
struct challenge_used {
	struct challenge_used_mark marks[CHALLENGE_USED_HOLD_MAX];
	size_t n;
	int in_txn; /* written in the open write transaction */
	int64_t since_ms; /* the oldest held, CLOCK_MONOTONIC */
	int64_t retry_ms; /* after a failed write, not before this */
};

/* Workers when a validator plugin is loaded and Workers = 0: its checks
 * wait on an MDM, and no check should wait behind another. */
#define CHALLENGE_PLUGIN_WORKERS 8
/* Checks in a row that waited this long for no verdict before a plugin
 * rests (ValidatorRest) */
#define VALIDATOR_FAILURES 3
#define VALIDATOR_SLOW_MS 1000

/*
 * A plugin's check in flight, by what was asked (validator, path, client,
 * transaction, password, CSR): the frontend sends a request again when its
 * answer is slow (rpc_call's Lazy Pirate), and the copy, on another
 * worker, waits for the first one's verdict instead of asking the MDM
 * again (check.c).
 */
#define CHALLENGE_INFLIGHT 64
struct challenge_inflight {
	int in_use, done;
	int waiters; /* copies waiting: the slot stays theirs until read */
	/* A verdict (allowed or refused) is kept for copies until the first
	 * request's deadline (rpc_now_ms() time): a copy sent again after
	 * the answer came gets it too, instead of asking again. */
	int64_t keep_until_ms;
	unsigned char asked[32]; /* SHA-256 of validator, path, client,
	                            txid, password, CSR */
	enum scepd_verdict verdict;
	char why[512];
};

/* A password presented again by the transaction that reserved it (a
 * copy, a retry, another CSR under its transactionID): each of its
 * requests may be issued and use the password, so a release asked by one
 * the CA refused is done only once every request of the transaction
 * that passed the check has said how it ended (the RA reports each:
 * ChallengeConsume or ChallengeRelease). Otherwise the password, free
 * again, could pay for a second certificate (an issued request whose
 * "used" mark was lost with its RA). The counts live here; that the
 * password was presented again is written in its record, so that counts
 * lost (a restart, a hold taken for room) leave it reserved until it
 * expires, never released (otp.c). */
#define CHALLENGE_HOLDS 64
/* A request's report is due within this, when its check says neither
 * report_within_ms nor answer_within_ms: an RA of an older build. */
#define CHALLENGE_ANSWER_WITHIN_MS 120000
struct challenge_hold {
	unsigned char mac[CHALLENGE_MAC_LEN];
	char txid[CHALLENGE_TXID_MAX]; /* the reservation's */
	/* CLOCK_MONOTONIC: the last counted request's report is due (it
	 * comes by then, but for a lost RA). 0: a free slot. */
	int64_t until_ms;
	unsigned int presented; /* requests presenting it again, unreported */
	int reserver_out; /* the request that reserved it has not reported */
	/* Every request reported and the release asked, but its write
	 * failed (a full disk): done by the next key that presents it
	 * (otp.c), else it would stay reserved to the refused transaction
	 * and that key be refused as another's. Lost with a restart. */
	int release_owed;
};

/* The service: read-only after start-up except through LMDB, the held
 * "used" marks, the refusal slots and the counters, which `lock` guards.
 * A plugin's check runs outside it (check.c). */
struct challenge {
	struct challenge_settings settings;
	/* The last otp check (under the lock) reserved a free password
	 * (else it found it reserved or used by its transaction). */
	int otp_reserved_now;
	/* ... and found the password on record (issued here: used,
	 * reserved by another transaction, expired): refused, it is no
	 * guess, and WrongPasswordLimit does not count it. */
	int otp_known;
	/* The checked request's report is due in this many ms (its
	 * ChallengeCheckRequest.report_within_ms): till then a hold's
	 * count waits for it. */
	int64_t otp_report_within_ms;
	struct challenge_hold holds[CHALLENGE_HOLDS];
	unsigned char secret[CHALLENGE_SECRET_LEN];
	MDB_env *env;
	MDB_dbi dbi;
	MDB_dbi due_dbi, outstanding_dbi; /* indexes of dbi (store.c) */
	void *zmq_ctx;
	struct config_pairs *config; /* [challenge.paths], [validator.*] */
	struct validator *validators;
	size_t nvalidators;
	struct validator *default_validator;
	struct validator_route *routes;
	size_t nroutes;
	struct refusal_slot *refusals; /* CHALLENGE_LIMIT_SLOTS */
	/* Shared, by network (check.c), by the addresses refused while
	 * every slot above counts another within its window. */
	struct refusal_slot refusal_others[CHALLENGE_LIMIT_OTHERS];
	struct challenge_counters counters;
	int64_t (*now)(void); /* seconds since the epoch; tests fake it */
	struct challenge_used used;
	pthread_mutex_t lock;
	pthread_cond_t inflight_done;
	struct challenge_inflight inflight[CHALLENGE_INFLIGHT];
	/* A plugin's consumes, kept until their request's deadline: a copy
	 * of a request sent again ends in the same issuance and would tell
	 * the MDM a second time (check.c). */
	struct challenge_consumed {
		unsigned char asked[32]; /* validator, path, txid, password */
		int64_t until_ms;
	} consumed[CHALLENGE_INFLIGHT];
	int nworkers;
	/* Workers asking a plugin that takes checks concurrently, or
	 * waiting for the verdict of a check a copy of theirs asked: at most
	 * nworkers - 1, one kept for the other validators
	 * (validator_worker_take). */
	atomic_int plugin_checks;
	atomic_int next_worker; /* worker_init hands out indexes */
};

/*
 * A worker taken for a plugin's check (validators.c): an MDM slow to
 * answer, though within its Timeout, never rests, and its checks (any
 * device's to send, and their copies) held every worker while one-time
 * passwords on other paths waited past the RA's timeout. 0, or -1 with
 * why filled (answer UNAVAILABLE) when nworkers - 1 are taken.
 */
struct validator;
int validator_worker_take(struct validator *v, char *why, size_t whylen);
void validator_worker_give(struct challenge *c);

/* A caller's deadline (rpc deadline_ms, wall-clock ms) as a time of
 * CLOCK_MONOTONIC, for pthread_cond_clockwait and pthread_mutex_clocklock:
 * the wall clock is read once, here, so a step of it during the wait (NTP,
 * an operator) neither holds the worker past the caller's wait nor cuts it
 * short, as the caller's own wait (rpc.c) is not. */
static inline struct timespec
challenge_deadline(int64_t deadline_ms)
{
	int64_t at = clock_monotonic_ms() + (deadline_ms - rpc_now_ms());
	struct timespec ts;

	if (at < 0)
		at = 0;
	ts.tv_sec = (time_t)(at / 1000);
	ts.tv_nsec = (long)(at % 1000) * 1000000;
	return ts;
}

/* What a worker thread's handlers get (main.c). */
struct challenge_worker {
	struct challenge *c;
	size_t index; /* into validator.states */
};

/* routes.c: the service's route table (each handler takes a struct
 * challenge_worker), ended by a zero body. */
extern const struct rpc_route challenge_routes[];

/* The instance of `v` for worker `index`. */
static inline void *
validator_state(const struct validator *v, size_t index)
{
	return v->states != NULL && index < v->nstates ? v->states[index]
	                                               : v->state;
}

enum challenge_state {
	CHALLENGE_ISSUED = 1,
	CHALLENGE_RESERVED = 2,
	CHALLENGE_USED = 3,
};

/*
 * One stored password, keyed by its HMAC. A fixed layout written as is:
 * the database belongs to this host and this build.
 */
#define CHALLENGE_RECORD_VERSION 2
enum challenge_pool {
	CHALLENGE_POOL_ADMIN = 0, /* PasswordMax, all accounts together */
	CHALLENGE_POOL_MDM = 1, /* MdmPasswordMax per account */
};
struct challenge_record {
	uint32_t version;
	uint32_t state; /* enum challenge_state */
	int64_t issued_at;
	int64_t expires_at; /* seconds since the epoch */
	unsigned char mac[CHALLENGE_MAC_LEN];
	char issued_by[CHALLENGE_WHO_MAX];
	char reserved_txid[CHALLENGE_TXID_MAX]; /* "" while issued */
	uint32_t pool; /* enum challenge_pool; version 2 on */
	uint32_t flags; /* CHALLENGE_FLAG_*, while reserved; 0 before */
};
/* Presented again by its transaction: requests of it the service may
 * have lost count of (a restart) may still be issued with it. */
#define CHALLENGE_FLAG_PRESENTED_AGAIN 1u
/* A release was asked and waits for other requests' reports, or cannot
 * be done (counts lost): another transaction is told why it is refused,
 * not taken for a thief. */
#define CHALLENGE_FLAG_RELEASE_WANTED 2u
/* The request that reserved it reported (it issued nothing): a hold made
 * later does not wait for it. */
#define CHALLENGE_FLAG_RESERVER_REPORTED 4u
/* In the main database: the id of the write that closed it last
 * (store.c): at an open where another wrote since, or absent, every
 * reserved password is flagged presented again. */
#define CHALLENGE_FLAGS_KEY "reports-counted"
/* Version 1 ended before `pool`: read as the admin pool. */
#define CHALLENGE_RECORD_V1_SIZE offsetof(struct challenge_record, pool)

/* The UseSinglePassword password when set through the admin API. */
#define CHALLENGE_SINGLE_KEY "single-password"
struct challenge_single {
	uint32_t version; /* 1 */
	uint32_t unused;
	int64_t set_at;
	unsigned char mac[CHALLENGE_MAC_LEN];
	char set_by[CHALLENGE_WHO_MAX];
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
/* A stored record of this version or the one before; 0 if neither. */
int challenge_record_read(const MDB_val *val, struct challenge_record *rec);
/* 0: found and copied; 1: no such record; -1: database error (logged). */
int challenge_record_get(MDB_txn *txn, MDB_dbi dbi,
    const unsigned char mac[CHALLENGE_MAC_LEN], struct challenge_record *rec);
/*
 * Writes go through these, which keep the indexes (store.c) in step with
 * the records: a new record (refused if its MAC is taken), a changed one
 * (its state or transaction; never its pool, account or expiry), and a
 * record deleted by the caller (mdb_cursor_del). MDB_* error codes.
 */
int challenge_record_add(
    struct challenge *c, MDB_txn *txn, const struct challenge_record *rec);
int challenge_record_put(
    struct challenge *c, MDB_txn *txn, const struct challenge_record *rec);
int challenge_record_forget(
    struct challenge *c, MDB_txn *txn, const struct challenge_record *rec);
/*
 * Deletes the records whose time has come (an unused one at its expiry,
 * each logged; one used by a transaction CHALLENGE_TXN_KEEP_S after it),
 * in transactions of a few records each,
 * committed one by one: one transaction deleting every record due needs
 * a free page for each page it touches, which a full map lacks, and
 * would fail for good; a small one fits, and the pages it frees serve the
 * next. Run before a transaction that sweeps (issue, metrics), and when
 * idle. *deleted counts them; MDB_* error code.
 */
int challenge_sweep_batches(
    struct challenge *c, int64_t now, unsigned long *deleted);
/* Pages of the map still free: past the last one used, and on LMDB's free
 * list (read, in a transaction of its own, only when the first are fewer
 * than `enough`). Outside any transaction of the thread. */
size_t challenge_map_free_pages(struct challenge *c, size_t enough);
/*
 * Counts the outstanding passwords (issued or reserved, not expired) of
 * `pool`; for the MDM pool only those issued to `who`. Costs what they
 * cost, not what the database holds (what expired stays uncounted until
 * challenge_sweep_batches deletes it). MDB_* error code.
 */
int challenge_outstanding(struct challenge *c, MDB_txn *txn, int64_t now,
    enum challenge_pool pool, const char *who, unsigned long *outstanding);
/*
 * used.c. Every write transaction of the password database begins with
 * challenge_txn_begin (it writes the held "used" marks first) and ends
 * with challenge_txn_commit or challenge_txn_abort (which keeps them held).
 */
int challenge_txn_begin(struct challenge *c, MDB_txn **txn);
int challenge_txn_commit(struct challenge *c, MDB_txn *txn);
void challenge_txn_abort(struct challenge *c, MDB_txn *txn);
/* Holds the mark "the password with this MAC is used by txid" (checked by
 * the caller): 0, 1 if held already, -1 if it could not make room. */
int challenge_used_hold(
    struct challenge *c, const unsigned char *mac, const char *txid);
/* A record's state as it will be once its held mark is written: a
 * reserved password whose mark waits (a full disk) is used already. */
uint32_t
challenge_state(const struct challenge *c, const struct challenge_record *rec);
/* The same, `rec` made as it will be written when a held mark applies
 * (used, by the mark's transaction: a released password a certificate
 * paid for after all has no transaction in its stored record). */
uint32_t
challenge_state_held(const struct challenge *c, struct challenge_record *rec);
/* The same against a copy of the held marks (taken under c->lock). */
uint32_t challenge_record_state(
    const struct challenge_used *used, const struct challenge_record *rec);
/* Writes the held marks now in a transaction of their own: 0 or LMDB's
 * error (logged; they stay held). */
int challenge_used_flush(struct challenge *c);
/* rpc_server_config.idle: writes marks held for half a second. */
void challenge_used_idle(void *service);
/* otp.c: the releases owed (their write failed) written now, each hold
 * freed once done; stops at the first write that fails. Locked. */
void otp_owed_retry(struct challenge *c);

/* The admin-set single password: 0 found, 1 none, -1 error (logged; a
 * record of another size or version too). */
int challenge_single_get(
    MDB_txn *txn, MDB_dbi dbi, struct challenge_single *single);
int challenge_single_put(
    MDB_txn *txn, MDB_dbi dbi, const struct challenge_single *single);
/* Our passwords are hex: one typed in lower case is the same password. */
void challenge_normalize(const char *password, char *out, size_t outlen);

/* issue.c */
int challenge_new_password(size_t raw_len, char out[2 * CHALLENGE_RAW_MAX + 1]);
void challenge_handle_issue(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
/* check.c: picks the validator, limits refusals, and asks it. The
 * caller holds c->lock when `locked`: a plugin is then asked without it.
 * challenge_handle_check and _consume: worker 0, no lock (one thread). */
void challenge_check(struct challenge *c, size_t worker, int locked,
    const Scep__V1__Request *req, Scep__V1__Reply *reply,
    struct rpc_arena *arena);
/* ChallengeReleaseRequest: a refused request's report; the one-time
 * password of its transaction reserved no longer once no other request of
 * it may use it (other validators keep nothing to release). */
void challenge_release(struct challenge *c, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
void challenge_consume(struct challenge *c, size_t worker, int locked,
    const Scep__V1__Request *req, Scep__V1__Reply *reply,
    struct rpc_arena *arena);
void challenge_handle_check(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
void challenge_handle_consume(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
void challenge_handle_metrics(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* manage.c: scepctl challenge --list / --revoke. */
void challenge_handle_list(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
void challenge_handle_revoke(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* otp.c and single.c: the built-in validators. */
extern const struct scepd_challenge_validator challenge_otp_validator;
/* The report of a request of txid that passed the check and was not
 * issued (ChallengeReleaseRequest): `reserving`, its check reserved the
 * password; `release`, the CA bound nothing to txid; `outcome_unknown`,
 * the CA may have issued a copy of it after all (not counted: with
 * `release`, the password stays reserved until it expires). The password
 * goes
 * back to issued once no request of txid may still use it: 1 released,
 * 0 not (not reserved to txid, or another request of it unreported), -1
 * on a database error (logged). Under the service's lock. */
int otp_release(struct challenge *c, const char *password, const char *txid,
    int reserving, int release, int outcome_unknown, int paid_before);
extern const struct scepd_challenge_validator challenge_static_validator;
void challenge_handle_set_single(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
/* Whether a single password is set (in LMDB or the configuration), and
 * by whom; for the admin page: 0 set, -1 none, -2 it cannot be read. */
int challenge_single_info(struct challenge *c, char *set_by, size_t len);

/* validators.c: built-ins and [validator.NAME] plugins, [challenge.paths]. */
int validators_load(struct challenge *c, const char *config_file);
/* An instance of each plugin for each of `nworkers` workers. */
int validators_spawn(struct challenge *c, int nworkers);
/* Whether a [validator.NAME] plugin is loaded. */
int validators_have_plugin(const struct challenge *c);
/* Asks `v`: the worker's instance, or the one instance, one request at a
 * time, with one more waiting until deadline_ms (CLOCK_REALTIME ms) at
 * most; past it, UNAVAILABLE (consume: -1, logged by the caller). */
enum scepd_verdict
validator_check(struct validator *v, size_t worker, int64_t deadline_ms,
    const struct scepd_challenge_request *vr, char *why, size_t whylen);
int validator_consume(struct validator *v, size_t worker, int64_t deadline_ms,
    const struct scepd_challenge_request *vr);
void validators_free(struct challenge *c);
struct validator *validators_for_path(struct challenge *c, const char *path);

/* sandbox.c: the challenge service's policy. challenge_sandbox_enter()
 * once the database and validators are loaded, before ZeroMQ;
 * challenge_sandbox_ready() is rpc_server_config.ready. */
int challenge_sandbox_enter(const struct challenge *c, const char *config_file);
int challenge_sandbox_ready(void *service);
void challenge_sandbox_free(void);

#endif
