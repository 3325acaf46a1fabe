/*
 * libFuzzer target: a Request as a peer of the challenge service can send
 * it (a frontend, RA or scepctl taken over, or a buggy one), unpacked and
 * handed in process to the service's own route table (routes.c, which
 * main.c serves) as rpc.c would hand it: the route of its body, only for
 * an origin the route admits (rpc_route_for), then the serving thread's
 * idle work (the held "used" marks). A request past its deadline
 * is dropped by rpc.c before any handler: here it gets a deadline a
 * minute ahead instead, so that the corpus does not go stale.
 *
 * The service is set up once, as test_challenge does: a password
 * database in a directory of its own under /tmp (removed at exit), a
 * fixed secret, a fixed clock, the built-in validators (otp by default,
 * static on /static, otp on /otp). Before each input the database is
 * emptied and given the same few passwords, of which the corpus knows
 * some (issued, reserved, used, expired, of the MDM pool), and the
 * service's memory (holds, held marks, refusal counts) is reset: every
 * input runs against the same state, the database never grows, and a
 * crash reproduces from its input alone. The request's id picks a
 * variant of the settings and the state (FUZZ_V_* below).
 *
 * Checked of every answer: its status is one of Status's values; a
 * refusal says why; an answer OK carries the body of the request's kind;
 * the reply packs and unpacks as the server sends it; the lock is free
 * again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "challenge.h"
#include "log.h"
#include "protobuf_mutator.h"
#include "service_fuzz.h"

#define FUZZ_NOW 1700000000
/* Variants, by bits of the request's id. */
#define FUZZ_V_NO_ENFORCE 0x01 /* EnforcePassword = 0 */
#define FUZZ_V_ALLOW_NONE 0x02 /* AllowNoPassword = 1 */
#define FUZZ_V_STATIC 0x04 /* Validator = static */
#define FUZZ_V_API_SINGLE 0x08 /* a single password set through the API */
#define FUZZ_V_HELD_USED 0x10 /* FUZZ_RESERVED's "used" mark held */
/* A release of FUZZ_RESERVED waiting for one other request's report,
 * overdue (due in a minute with FUZZ_V_FLAGGED). */
#define FUZZ_V_RELEASE 0x20
#define FUZZ_V_FULL 0x40 /* PasswordMax = 2: the admin pool is full */
/* FUZZ_RESERVED presented again and a release asked, its counts lost (a
 * restart) unless FUZZ_V_RELEASE. */
#define FUZZ_V_FLAGGED 0x80

/* The passwords on record before each input (the corpus uses them). */
#define FUZZ_ISSUED "0123456789ABCDEF0123456789ABCDEF"
#define FUZZ_RESERVED "11112222333344445555666677778888"
#define FUZZ_RESERVED_TX "fuzz-tx-reserved"
#define FUZZ_USED "2222333344445555666677778888AAAA"
#define FUZZ_USED_TX "fuzz-tx-used"
#define FUZZ_EXPIRED "3333444455556666777788889999BBBB"
#define FUZZ_USED_OLD "444455556666777788889999AAAACCCC"
#define FUZZ_USED_OLD_TX "fuzz-tx-used-old"
#define FUZZ_MDM "5555666677778888999900001111DDDD"
#define FUZZ_MDM_WHO "mdm-fuzz"
#define FUZZ_CONFIG_SINGLE "fuzz-config-single"
#define FUZZ_API_SINGLE "fuzz-api-single"
/* Over WrongPasswordLimit before the request. */
#define FUZZ_LIMITED_ADDR "198.51.100.66"

static struct {
	int ready;
	struct challenge c;
	struct fuzz_workdir work;
	struct validator *otp, *stat;
} fx;

static int64_t
fuzz_clock(void)
{
	return FUZZ_NOW;
}

static void
fuzz_cleanup(void)
{

	validators_free(&fx.c);
	challenge_db_close(&fx.c);
	free(fx.c.refusals);
	free(fx.c.settings.database);
	fuzz_workdir_remove(&fx.work);
}

static void
fuzz_setup(void)
{
	pthread_mutexattr_t attr;
	char err[256];

	fuzz_workdir_make(&fx.work, "fuzz_challenge_rpc",
	    "[challenge.paths]\n/static = static\n/otp = otp\n");
	log_init("fuzz_challenge_rpc", LOG_LEVEL_INFO);
	fx.c.now = fuzz_clock;
	fx.c.settings.database = strdup(fx.work.dir);
	fx.c.settings.database_max_mib = 16;
	fx.c.settings.password_validity = 60;
	fx.c.settings.password_max = 8;
	fx.c.settings.password_length = 16;
	fx.c.settings.enforce_password = 1;
	fx.c.settings.use_single_password = 1;
	fx.c.settings.single_password = FUZZ_CONFIG_SINGLE;
	fx.c.settings.validator = "otp";
	fx.c.settings.mdm_password_max = 1;
	fx.c.settings.wrong_password_limit = 3;
	fx.c.settings.wrong_password_window = 300;
	fx.c.settings.workers = 1;
	fx.c.settings.validator_rest = 10;
	fx.c.nworkers = 1;
	/* A handler that unlocks what it does not hold, or leaves the
	 * lock held, is told (fuzz_one). */
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&fx.c.lock, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_cond_init(&fx.c.inflight_done, NULL);
	memset(fx.c.secret, 0x5c, sizeof(fx.c.secret));
	if (challenge_db_open(&fx.c, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_challenge_rpc: %s\n", err);
		abort();
	}
	/* Durability is not what is tested: no flush per commit. */
	mdb_env_set_flags(fx.c.env, MDB_NOSYNC, 1);
	fx.c.refusals = calloc(CHALLENGE_LIMIT_SLOTS, sizeof(*fx.c.refusals));
	if (fx.c.refusals == NULL ||
	    validators_load(&fx.c, fx.work.conf) != 0 ||
	    validators_spawn(&fx.c, fx.c.nworkers) != 0)
		abort();
	fx.otp = validators_for_path(&fx.c, "/otp");
	fx.stat = validators_for_path(&fx.c, "/static");
	if (fx.otp == NULL || fx.stat == NULL || fx.otp == fx.stat)
		abort();
	atexit(fuzz_cleanup);
	fx.ready = 1;
}

/* A password on record, as the service writes one. */
static int
fuzz_record(MDB_txn *txn, const char *password, uint32_t state,
    const char *txid, int64_t expires_at, uint32_t pool, const char *who,
    uint32_t flags, unsigned char mac[CHALLENGE_MAC_LEN])
{
	struct challenge_record rec;
	char norm[CHALLENGE_PASSWORD_MAX + 1];

	memset(&rec, 0, sizeof(rec));
	rec.version = CHALLENGE_RECORD_VERSION;
	rec.state = state;
	rec.issued_at = expires_at - 3600;
	rec.expires_at = expires_at;
	rec.pool = pool;
	rec.flags = flags;
	snprintf(rec.issued_by, sizeof(rec.issued_by), "%s", who);
	snprintf(rec.reserved_txid, sizeof(rec.reserved_txid), "%s", txid);
	challenge_normalize(password, norm, sizeof(norm));
	if (challenge_mac(&fx.c, norm, rec.mac) != 0)
		return -1;
	if (mac != NULL)
		memcpy(mac, rec.mac, CHALLENGE_MAC_LEN);
	return challenge_record_add(&fx.c, txn, &rec);
}

/* Every input's starting point: the passwords above, nothing else. */
static void
fuzz_reset(uint64_t variant)
{
	struct challenge *c = &fx.c;
	unsigned char reserved_mac[CHALLENGE_MAC_LEN];
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int e;

	if ((e = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0 ||
	    (e = mdb_cursor_open(txn, c->dbi, &cur)) != 0)
		goto fail;
	/* The records and the single password; the secret's check and
	 * the indexes' names stay. */
	for (e = mdb_cursor_get(cur, &k, &v, MDB_FIRST); e == 0;
	     e = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if ((k.mv_size == CHALLENGE_MAC_LEN ||
		        (k.mv_size == sizeof(CHALLENGE_SINGLE_KEY) - 1 &&
		            memcmp(k.mv_data, CHALLENGE_SINGLE_KEY,
		                k.mv_size) == 0)) &&
		    (e = mdb_cursor_del(cur, 0)) != 0)
			goto fail;
	mdb_cursor_close(cur);
	cur = NULL;
	if ((e = mdb_drop(txn, c->due_dbi, 0)) != 0 ||
	    (e = mdb_drop(txn, c->outstanding_dbi, 0)) != 0)
		goto fail;
	if ((e = fuzz_record(txn, FUZZ_ISSUED, CHALLENGE_ISSUED, "",
	         FUZZ_NOW + 3600, CHALLENGE_POOL_ADMIN, "alice", 0, NULL)) !=
	        0 ||
	    (e = fuzz_record(txn, FUZZ_RESERVED, CHALLENGE_RESERVED,
	         FUZZ_RESERVED_TX, FUZZ_NOW + 3600, CHALLENGE_POOL_ADMIN, "bob",
	         variant & (FUZZ_V_RELEASE | FUZZ_V_FLAGGED)
	             ? CHALLENGE_FLAG_PRESENTED_AGAIN |
	                 CHALLENGE_FLAG_RELEASE_WANTED
	             : 0,
	         reserved_mac)) != 0 ||
	    (e = fuzz_record(txn, FUZZ_USED, CHALLENGE_USED, FUZZ_USED_TX,
	         FUZZ_NOW + 3600, CHALLENGE_POOL_ADMIN, "alice", 0, NULL)) !=
	        0 ||
	    (e = fuzz_record(txn, FUZZ_EXPIRED, CHALLENGE_ISSUED, "",
	         FUZZ_NOW - 60, CHALLENGE_POOL_ADMIN, "alice", 0, NULL)) != 0 ||
	    (e = fuzz_record(txn, FUZZ_USED_OLD, CHALLENGE_USED,
	         FUZZ_USED_OLD_TX, FUZZ_NOW - 3600, CHALLENGE_POOL_ADMIN,
	         "alice", 0, NULL)) != 0 ||
	    (e = fuzz_record(txn, FUZZ_MDM, CHALLENGE_ISSUED, "",
	         FUZZ_NOW + 3600, CHALLENGE_POOL_MDM, FUZZ_MDM_WHO, 0, NULL)) !=
	        0)
		goto fail;
	if (variant & FUZZ_V_API_SINGLE) {
		struct challenge_single single;

		memset(&single, 0, sizeof(single));
		single.version = 1;
		single.set_at = FUZZ_NOW - 60;
		snprintf(single.set_by, sizeof(single.set_by), "admin");
		if (challenge_mac(c, FUZZ_API_SINGLE, single.mac) != 0 ||
		    (e = challenge_single_put(txn, c->dbi, &single)) != 0)
			goto fail;
	}
	e = mdb_txn_commit(txn);
	txn = NULL;
	if (e != 0)
		goto fail;

	c->settings.enforce_password = !(variant & FUZZ_V_NO_ENFORCE);
	c->settings.allow_no_password = (variant & FUZZ_V_ALLOW_NONE) != 0;
	c->default_validator = variant & FUZZ_V_STATIC ? fx.stat : fx.otp;
	c->settings.password_max = variant & FUZZ_V_FULL ? 2 : 8;
	c->otp_reserved_now = 0;
	c->otp_report_within_ms = 0;
	memset(c->holds, 0, sizeof(c->holds));
	memset(&c->used, 0, sizeof(c->used));
	memset(c->inflight, 0, sizeof(c->inflight));
	memset(c->consumed, 0, sizeof(c->consumed));
	memset(&c->counters, 0, sizeof(c->counters));
	memset(c->refusals, 0, CHALLENGE_LIMIT_SLOTS * sizeof(*c->refusals));
	snprintf(c->refusals[0].addr, sizeof(c->refusals[0].addr), "%s",
	    FUZZ_LIMITED_ADDR);
	c->refusals[0].window_start = FUZZ_NOW - 10;
	c->refusals[0].count = (unsigned long)c->settings.wrong_password_limit;
	if (variant & FUZZ_V_HELD_USED) {
		memcpy(c->used.marks[0].mac, reserved_mac, CHALLENGE_MAC_LEN);
		snprintf(c->used.marks[0].txid, sizeof(c->used.marks[0].txid),
		    "%s", FUZZ_RESERVED_TX);
		c->used.n = 1;
		c->used.since_ms = clock_monotonic_ms();
	}
	if (variant & FUZZ_V_RELEASE) {
		memcpy(c->holds[0].mac, reserved_mac, CHALLENGE_MAC_LEN);
		snprintf(c->holds[0].txid, sizeof(c->holds[0].txid), "%s",
		    FUZZ_RESERVED_TX);
		/* A release waiting for one other request's report, due (or
		 * to come): a report, a consume or another key next. */
		c->holds[0].until_ms = clock_monotonic_ms() +
		    (variant & FUZZ_V_FLAGGED ? 60000 : -1);
		c->holds[0].presented = 1;
	}
	return;
fail:
	fprintf(stderr, "fuzz_challenge_rpc: resetting the database: %s\n",
	    mdb_strerror(e));
	abort();
}

/* What is particular to this service's answers (fuzz_reply_check does
 * the rest): a one-time password is hex of PasswordLength bytes, an id 16
 * characters. */
static void
fuzz_check_answer(const Scep__V1__Reply *reply)
{
	if (reply->status != SCEP__V1__STATUS__STATUS_OK)
		return;
	if (reply->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_ISSUE &&
	    !(reply->challenge_issue->has_single &&
	        reply->challenge_issue->single) &&
	    strspn(reply->challenge_issue->password, "0123456789ABCDEF") !=
	        (size_t)(2 * fx.c.settings.password_length))
		abort();
	if (reply->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_LIST)
		for (size_t i = 0; i < reply->challenge_list->n_passwords; i++)
			if (strlen(reply->challenge_list->passwords[i]->id) !=
			    16)
				abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct challenge_worker worker = {&fx.c, 0};
	const struct rpc_route *route;
	Scep__V1__Request *req;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena;
	int64_t now_ms;

	if (!fx.ready)
		fuzz_setup();
	/* The service reads no more (ZMQ_MAXMSGSIZE). */
	if (size > RPC_MAX_CHALLENGE_REQUEST)
		return 0;
	if ((req = rpc_request_unpack(data, size)) == NULL)
		return 0;
	/* The service's own table, as the server admits a caller of this
	 * host. */
	if ((route = rpc_route_for(challenge_routes, req)) == NULL) {
		scep__v1__request__free_unpacked(req, NULL);
		return 0;
	}
	now_ms = rpc_now_ms();
	if (req->deadline_ms < now_ms)
		req->deadline_ms = now_ms + 60000;
	fuzz_reset(req->id);
	if ((arena = rpc_arena_new()) == NULL)
		abort();
	reply.id = req->id;
	reply.status = SCEP__V1__STATUS__STATUS_OK;
	route->handler(&worker, req, &reply, arena);
	/* The route gave back the lock it took. */
	if (pthread_mutex_trylock(&fx.c.lock) != 0 ||
	    pthread_mutex_unlock(&fx.c.lock) != 0)
		abort();
	fuzz_reply_check(&reply, req->body_case);
	fuzz_check_answer(&reply);
	/* The serving thread's work after each answer (main.c). */
	if (pthread_mutex_lock(&fx.c.lock) != 0)
		abort();
	challenge_used_idle(&fx.c);
	if (pthread_mutex_unlock(&fx.c.lock) != 0)
		abort();
	rpc_arena_free(arena);
	scep__v1__request__free_unpacked(req, NULL);
	return 0;
}
