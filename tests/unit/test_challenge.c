/*
 * The challenge service's rules, called in process with a fake clock:
 * PasswordValidity expiry, PasswordMax "cache full" and recovery once a
 * password is used or expires, reservation by transaction, the MDM pool,
 * and the HMAC-only database.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "challenge.h"
#include "log.h"
#include "store.h"

static int64_t fake_now = 1700000000;

static int64_t
fake_clock(void)
{
	return fake_now;
}

struct fixture {
	struct challenge c;
	char dir[64];
	char conf[96];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	FILE *fp;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_challenge.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->conf, sizeof(f->conf), "%s/scepd.conf", f->dir);
	assert_non_null(fp = fopen(f->conf, "w"));
	fputs("[challenge]\nPasswordMax = 2\n", fp);
	fclose(fp);
	f->c.now = fake_clock;
	f->c.settings.database = strdup(f->dir);
	f->c.settings.password_validity = 60;
	f->c.settings.password_max = 2;
	f->c.settings.password_length = 16;
	f->c.settings.enforce_password = 1;
	f->c.settings.mdm_password_max = 3;
	f->c.settings.wrong_password_limit = 0;
	f->c.settings.wrong_password_window = 300;
	assert_int_equal(RAND_bytes(f->c.secret, sizeof(f->c.secret)), 1);
	assert_int_equal(challenge_db_open(&f->c, err, sizeof(err)), 0);
	f->c.refusals = calloc(CHALLENGE_LIMIT_SLOTS, sizeof(*f->c.refusals));
	assert_int_equal(validators_load(&f->c, f->conf), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char path[128];

	validators_free(&f->c);
	challenge_db_close(&f->c);
	free(f->c.refusals);
	free(f->c.settings.database);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", f->dir);
	unlink(path);
	unlink(f->conf);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Issues a password for `who` in `pool`; returns it (malloc'ed) or NULL
 * with the refusal in *error. */
/* The deadline issue() gives its request (0: none). */
static int64_t issue_deadline_ms;

static char *
issue(struct fixture *f, const char *who, const char *pool, char *error,
    size_t errlen)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeIssueRequest in =
	    SCEP__V1__CHALLENGE_ISSUE_REQUEST__INIT;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena = rpc_arena_new();
	char *out = NULL;

	in.issued_by = (char *)who;
	in.pool = (char *)pool;
	req.deadline_ms = issue_deadline_ms;
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE;
	req.challenge_issue = &in;
	reply.status = SCEP__V1__STATUS__STATUS_OK;
	challenge_handle_issue(&f->c, &req, &reply, arena);
	if (reply.status == SCEP__V1__STATUS__STATUS_OK)
		out = strdup(reply.challenge_issue->password);
	else if (error != NULL)
		snprintf(error, errlen, "%s", reply.error ? reply.error : "?");
	rpc_arena_free(arena);
	return out;
}

/* Whether the last accepted check reserved a free password (else it
 * found it reserved to its transaction). */
static int last_reserved_now;
static char last_error[256]; /* the last check's refusal */
static uint32_t last_retry_after; /* the last check's, 0: none */
/* The check's answer_within_ms when >= 0 (the RA sends it), else none;
 * and its report_within_ms. */
static int64_t answer_within_ms = -1, report_within_ms = -1;
static const char *client_addr = "192.0.2.1";

static int
redeem_check(
    struct fixture *f, const char *password, const char *txid, int *consume)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeCheckRequest check =
	    SCEP__V1__CHALLENGE_CHECK_REQUEST__INIT;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena = rpc_arena_new();
	int status;

	check.password = (char *)password;
	check.transaction_id = (char *)txid;
	check.client_addr = (char *)client_addr;
	if (answer_within_ms >= 0) {
		check.has_answer_within_ms = 1;
		check.answer_within_ms = (uint32_t)answer_within_ms;
	}
	if (report_within_ms >= 0) {
		check.has_report_within_ms = 1;
		check.report_within_ms = (uint32_t)report_within_ms;
	}
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_CHECK;
	req.challenge_check = &check;
	reply.status = SCEP__V1__STATUS__STATUS_OK;
	challenge_handle_check(&f->c, &req, &reply, arena);
	status = reply.status;
	snprintf(last_error, sizeof(last_error), "%s",
	    reply.error != NULL ? reply.error : "");
	last_retry_after = reply.has_retry_after_s ? reply.retry_after_s : 0;
	if (status == SCEP__V1__STATUS__STATUS_OK) {
		assert_int_equal(
		    reply.body_case, SCEP__V1__REPLY__BODY_CHALLENGE_CHECK);
		assert_true(reply.challenge_check->has_consume_not_needed);
		*consume = !reply.challenge_check->consume_not_needed;
		last_reserved_now = reply.challenge_check->has_reserved_now &&
		    reply.challenge_check->reserved_now;
		/* The RA then reports each request that issued nothing
		 * (counted for one-time passwords). */
		assert_true(reply.challenge_check->has_counts_reports);
		assert_int_equal(reply.challenge_check->counts_reports,
		    strcmp(reply.challenge_check->validator, "otp") == 0);
	}
	rpc_arena_free(arena);
	return status;
}

/* check (consume = 0) or consume (1); returns the reply status. */
static int
redeem(struct fixture *f, const char *password, const char *txid, int consume)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeConsumeRequest use =
	    SCEP__V1__CHALLENGE_CONSUME_REQUEST__INIT;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena;
	int status, wanted;

	if (!consume)
		return redeem_check(f, password, txid, &wanted);
	arena = rpc_arena_new();
	use.password = (char *)password;
	use.transaction_id = (char *)txid;
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_CONSUME;
	req.challenge_consume = &use;
	reply.status = SCEP__V1__STATUS__STATUS_OK;
	challenge_handle_consume(&f->c, &req, &reply, arena);
	status = reply.status;
	rpc_arena_free(arena);
	return status;
}

#define OK SCEP__V1__STATUS__STATUS_OK
#define REFUSED SCEP__V1__STATUS__STATUS_REFUSED

static void
test_expiry(void **state)
{
	struct fixture *f = *state;
	char *pw = issue(f, "alice", NULL, NULL, 0);

	assert_non_null(pw);
	fake_now += 59 * 60;
	assert_int_equal(redeem(f, pw, "tx-early", 0), OK);
	free(pw);
	pw = issue(f, "alice", NULL, NULL, 0);
	fake_now += 60 * 60 + 1; /* past PasswordValidity */
	assert_int_equal(redeem(f, pw, "tx-late", 0), REFUSED);
	assert_int_equal(f->c.counters.expired, 0); /* not swept yet */
	free(pw);
	/* The next issue sweeps: both count as expired, the reserved one
	 * never paid for a certificate. */
	pw = issue(f, "alice", NULL, NULL, 0);
	assert_non_null(pw);
	assert_int_equal(f->c.counters.expired, 2);
	free(pw);
}

/* A transaction that used a password (issued, or held for approval) may
 * retry with it after it expired, for CHALLENGE_TXN_KEEP_S; one that only
 * reserved it may not (no key is bound to it); nobody else may use it,
 * and it no longer fills the cache. */
static void
test_retry_after_expiry(void **state)
{
	struct fixture *f = *state;
	char *held = issue(f, "alice", NULL, NULL, 0);
	char *paid = issue(f, "alice", NULL, NULL, 0), *a, *b;

	assert_non_null(held);
	assert_non_null(paid);
	assert_int_equal(redeem(f, held, "tx-held", 0), OK);
	assert_int_equal(redeem(f, paid, "tx-paid", 0), OK);
	assert_int_equal(redeem(f, paid, "tx-paid", 1), OK);
	fake_now += 2 * 60 * 60; /* both expired an hour ago */
	/* PasswordMax = 2: neither counts now. */
	a = issue(f, "alice", NULL, NULL, 0);
	b = issue(f, "alice", NULL, NULL, 0);
	assert_non_null(a);
	assert_non_null(b);
	/* The sweep deleted the reserved one (never paid for); the used
	 * one stays for its transaction. */
	assert_int_equal(f->c.counters.expired, 1);
	assert_int_equal(redeem(f, held, "tx-held", 0), REFUSED);
	assert_int_equal(redeem(f, paid, "tx-paid", 0), OK);
	assert_int_equal(redeem(f, paid, "tx-other", 0), REFUSED);
	/* A week after the expiry its record goes. */
	fake_now += CHALLENGE_TXN_KEEP_S;
	free(a);
	a = issue(f, "alice", NULL, NULL, 0); /* sweeps */
	assert_non_null(a);
	assert_int_equal(f->c.counters.expired, 3); /* + a and b, unused */
	assert_int_equal(redeem(f, paid, "tx-paid", 0), REFUSED);
	free(held);
	free(paid);
	free(a);
	free(b);
}

static void
test_cache_full_and_recovery(void **state)
{
	struct fixture *f = *state;
	char err[128] = "", *a, *b, *c;

	a = issue(f, "admin", NULL, NULL, 0);
	b = issue(f, "admin", NULL, NULL, 0);
	assert_non_null(a);
	assert_non_null(b);
	assert_null(issue(f, "admin", NULL, err, sizeof(err)));
	assert_string_equal(err, "The password cache is full.");
	assert_int_equal(f->c.counters.cache_full, 1);
	/* A reserved password still counts; a used one no longer does. */
	assert_int_equal(redeem(f, a, "tx-a", 0), OK);
	assert_null(issue(f, "admin", NULL, err, sizeof(err)));
	assert_int_equal(redeem(f, a, "tx-a", 1), OK);
	c = issue(f, "admin", NULL, NULL, 0);
	assert_non_null(c);
	assert_null(issue(f, "admin", NULL, err, sizeof(err)));
	/* Expiry frees the cache too. */
	fake_now += 61 * 60;
	free(c);
	c = issue(f, "admin", NULL, NULL, 0);
	assert_non_null(c);
	/* The MDM pool is separate: MdmPasswordMax = 3 per account. */
	for (int i = 0; i < 3; i++) {
		char *m = issue(f, "mdm1", "mdm", NULL, 0);

		assert_non_null(m);
		free(m);
	}
	assert_null(issue(f, "mdm1", "mdm", err, sizeof(err)));
	free(c);
	c = issue(f, "mdm2", "mdm", NULL, 0); /* another account */
	assert_non_null(c);
	/* A name longer than a record keeps would never count against its
	 * own MdmPasswordMax: refused. */
	{
		char name[CHALLENGE_WHO_MAX + 1];

		memset(name, 'm', sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		for (int i = 0; i < 4; i++)
			assert_null(issue(f, name, "mdm", err, sizeof(err)));
		assert_string_equal(err, "account name longer than 63 bytes");
		name[CHALLENGE_WHO_MAX - 1] = '\0'; /* 63 bytes: counted */
		for (int i = 0; i < 3; i++) {
			char *m = issue(f, name, "mdm", NULL, 0);

			assert_non_null(m);
			free(m);
		}
		assert_null(issue(f, name, "mdm", err, sizeof(err)));
		assert_string_equal(err, "The password cache is full.");
	}
	free(a);
	free(b);
	free(c);
}

/* A ChallengeRevoke from `origin` by password, id or all, admitted by
 * the route table as the server admits it; the status (BAD_REQUEST: the
 * origin is not one the route lists). */
static int
withdraw(struct fixture *f, const char *origin, const char *password,
    const char *id, int all)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeRevokeRequest in =
	    SCEP__V1__CHALLENGE_REVOKE_REQUEST__INIT;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena = rpc_arena_new();

	in.password = (char *)password;
	in.id = (char *)id;
	in.has_all_unused = all;
	in.all_unused = all;
	in.revoked_by = (char *)origin;
	req.origin = (char *)origin;
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_REVOKE;
	req.challenge_revoke = &in;
	if (rpc_route_for(challenge_routes, &req) == NULL) {
		rpc_arena_free(arena);
		return SCEP__V1__STATUS__STATUS_BAD_REQUEST;
	}
	reply.status = SCEP__V1__STATUS__STATUS_OK;
	challenge_handle_revoke(&f->c, &req, &reply, arena);
	rpc_arena_free(arena);
	return reply.status;
}

/* WrongPasswordLimit's window is of the wall clock: one stepped back
 * does not hold an address for the hours it went back, one stepped
 * forward past the window frees it. */
static void
test_limit_clock_steps(void **state)
{
	struct fixture *f = *state;
	int wanted;

	f->c.settings.wrong_password_limit = 2;
	assert_int_equal(redeem_check(f, "wrong", "t1", &wanted), REFUSED);
	assert_int_equal(redeem_check(f, "wrong", "t2", &wanted), REFUSED);
	assert_int_equal(redeem_check(f, "wrong", "t3", &wanted),
	    SCEP__V1__STATUS__STATUS_RATE_LIMITED);
	assert_in_range(last_retry_after, 1, 300);
	fake_now -= 3600;
	assert_int_equal(redeem_check(f, "wrong", "t4", &wanted), REFUSED);
	assert_int_equal(redeem_check(f, "wrong", "t5", &wanted), REFUSED);
	assert_int_equal(redeem_check(f, "wrong", "t6", &wanted),
	    SCEP__V1__STATUS__STATUS_RATE_LIMITED);
	assert_in_range(last_retry_after, 1, 300);
	fake_now += 3600;
	assert_int_equal(redeem_check(f, "wrong", "t7", &wanted), REFUSED);
}

/* An issue whose caller stopped waiting (the service's lock held by a
 * slow disk) issues nothing: no one would be shown the password, which
 * would hold a PasswordMax slot until it expired. */
static void
test_issue_past_deadline(void **state)
{
	struct fixture *f = *state;
	char err[128] = "";
	char *late, *next;

	f->c.settings.password_max = 1;
	issue_deadline_ms = rpc_now_ms() - 1;
	late = issue(f, "admin", NULL, err, sizeof(err));
	issue_deadline_ms = 0;
	assert_null(late);
	assert_string_equal(err, "the challenge service answered too late");
	next = issue(f, "admin", NULL, err, sizeof(err));
	assert_non_null(next); /* the slot is free */
	free(next);
}

/* WrongPasswordLimit counts guesses: a password issued here and refused
 * (used, another transaction's) teaches nothing. A device behind a NAT
 * presenting its used one again with each new key (an MDM pushing a
 * stale profile) locked out every other device behind that address. */
static void
test_limit_counts_guesses_only(void **state)
{
	struct fixture *f = *state;
	char *used = issue(f, "admin", NULL, NULL, 0);
	char *fresh = issue(f, "admin", NULL, NULL, 0);
	char txid[32];
	int wanted;

	f->c.settings.wrong_password_limit = 2;
	assert_int_equal(redeem(f, used, "dev1-key1", 0), OK);
	assert_int_equal(redeem(f, used, "dev1-key1", 1), OK);
	for (int i = 2; i <= 5; i++) {
		snprintf(txid, sizeof(txid), "dev1-key%d", i);
		assert_int_equal(redeem_check(f, used, txid, &wanted), REFUSED);
	}
	assert_int_equal(redeem_check(f, fresh, "dev2-key1", &wanted), OK);
	/* Unknown ones still count. */
	assert_int_equal(redeem_check(f, "wrong", "t1", &wanted), REFUSED);
	assert_int_equal(redeem_check(f, "wrong", "t2", &wanted), REFUSED);
	assert_int_equal(redeem_check(f, "wrong", "t3", &wanted),
	    SCEP__V1__STATUS__STATUS_RATE_LIMITED);
	free(used);
	free(fresh);
}

/* WrongPasswordLimit counts an IPv6 client by its /64, from which it may
 * send each guess from another address; other networks are not slowed. */
static void
test_limit_ipv6_prefix(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *addr;
		int status;
	} tries[] = {
	    {"2001:db8:1::10", REFUSED},
	    {"2001:db8:1::11", REFUSED},
	    {"2001:db8:1:0:ffff:ffff:ffff:ffff",
	        SCEP__V1__STATUS__STATUS_RATE_LIMITED},
	    {"2001:db8:1::12", SCEP__V1__STATUS__STATUS_RATE_LIMITED},
	    {"2001:db8:1:1::10", REFUSED}, /* another /64 */
	    {"192.0.2.1", REFUSED},
	    /* NAT64 (64:ff9b::/96): each address an IPv4 host of its own */
	    {"64:ff9b::192.0.2.10", REFUSED},
	    {"64:ff9b::192.0.2.11", REFUSED},
	    {"64:ff9b::192.0.2.12", REFUSED},
	    /* ... counted all the same */
	    {"64:ff9b::192.0.2.12", REFUSED},
	    {"64:ff9b::192.0.2.12", SCEP__V1__STATUS__STATUS_RATE_LIMITED},
	    /* link-local: any address of the link may be taken, so it is
	     * counted by /64 as a global one (the devices on it share it) */
	    {"fe80::1", REFUSED},
	    {"fe80::2", REFUSED},
	    {"fe80::3", SCEP__V1__STATUS__STATUS_RATE_LIMITED},
	    /* ::1, ::/64: each address its own */
	    {"::1", REFUSED},
	    {"::1", REFUSED},
	    {"::2", REFUSED},
	    {"::1", SCEP__V1__STATUS__STATUS_RATE_LIMITED},
	};
	char txid[16];
	int wanted;

	f->c.settings.wrong_password_limit = 2;
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		client_addr = tries[i].addr;
		snprintf(txid, sizeof(txid), "t%zu", i);
		assert_int_equal(
		    redeem_check(f, "wrong", txid, &wanted), tries[i].status);
	}
	client_addr = "192.0.2.1";
}

/* Every WrongPasswordLimit count taken by an address refused within its
 * window: a locked-out address keeps its count (4096 other addresses
 * refused once each gave its guesses back), and the addresses that find
 * no count of their own share one with their network, locked out
 * together at the limit; once the windows are over, each counts alone
 * again. */
static void
test_limit_slots_full(void **state)
{
	struct fixture *f = *state;
	char addr[32], txid[32];
	int wanted;

	f->c.settings.wrong_password_limit = 2;
	/* A fixed secret: the networks below fall in counts of their own
	 * under it (keyed, they could share one, 1 in 1024). */
	memset(f->c.secret, 7, sizeof(f->c.secret));
	client_addr = "192.0.2.1";
	assert_int_equal(redeem_check(f, "wrong", "l1", &wanted), REFUSED);
	assert_int_equal(redeem_check(f, "wrong", "l2", &wanted), REFUSED);
	assert_int_equal(redeem_check(f, "wrong", "l3", &wanted),
	    SCEP__V1__STATUS__STATUS_RATE_LIMITED);
	/* 4095 more addresses fill the other counts. */
	for (int i = 0; i < CHALLENGE_LIMIT_SLOTS - 1; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.1", i / 256, i % 256);
		snprintf(txid, sizeof(txid), "f%d", i);
		client_addr = addr;
		assert_int_equal(
		    redeem_check(f, "wrong", txid, &wanted), REFUSED);
	}
	/* Two newcomers share one count: the second's refusal reaches the
	 * limit for both, and a third newcomer too. */
	client_addr = "198.51.100.1";
	assert_int_equal(redeem_check(f, "wrong", "n1", &wanted), REFUSED);
	client_addr = "198.51.100.2";
	assert_int_equal(redeem_check(f, "wrong", "n2", &wanted), REFUSED);
	assert_int_equal(redeem_check(f, "wrong", "n3", &wanted),
	    SCEP__V1__STATUS__STATUS_RATE_LIMITED);
	client_addr = "198.51.100.3";
	assert_int_equal(redeem_check(f, "wrong", "n4", &wanted),
	    SCEP__V1__STATUS__STATUS_RATE_LIMITED);
	/* ... of their network (/16) only: a newcomer of another is
	 * refused, not locked out (whoever fills the table locked out
	 * every new client). */
	client_addr = "203.0.113.9";
	assert_int_equal(redeem_check(f, "wrong", "o1", &wanted), REFUSED);
	client_addr = "2001:db8:77::1";
	assert_int_equal(redeem_check(f, "wrong", "o2", &wanted), REFUSED);
	/* NAT64: its IPv4 host's /16, not the whole 64:ff9b::/96. */
	client_addr = "64:ff9b::198.51.100.7";
	assert_int_equal(redeem_check(f, "wrong", "o3", &wanted),
	    SCEP__V1__STATUS__STATUS_RATE_LIMITED);
	client_addr = "64:ff9b::203.0.114.9";
	assert_int_equal(redeem_check(f, "wrong", "o4", &wanted), REFUSED);
	/* The first address is still locked out. */
	client_addr = "192.0.2.1";
	assert_int_equal(redeem_check(f, "wrong", "l4", &wanted),
	    SCEP__V1__STATUS__STATUS_RATE_LIMITED);
	/* After the window a newcomer takes a count of its own. */
	fake_now += f->c.settings.wrong_password_window + 1;
	client_addr = "198.51.100.3";
	assert_int_equal(redeem_check(f, "wrong", "n5", &wanted), REFUSED);
	assert_int_equal(redeem_check(f, "wrong", "n6", &wanted), REFUSED);
	client_addr = "198.51.100.4";
	assert_int_equal(redeem_check(f, "wrong", "n7", &wanted), REFUSED);
	client_addr = "192.0.2.1";
}

/* The frontend gives back a password it could not hand out (a profile
 * whose signature failed): the cache has room again. By the password
 * only: it may not revoke others by id, nor all. */
static void
test_withdraw_not_handed_out(void **state)
{
	struct fixture *f = *state;
	char err[128] = "", *a, *b, *c;

	a = issue(f, "admin", NULL, NULL, 0);
	b = issue(f, "admin", NULL, NULL, 0);
	assert_non_null(a);
	assert_non_null(b);
	assert_null(issue(f, "admin", NULL, err, sizeof(err)));
	assert_int_equal(withdraw(f, "frontend", NULL, NULL, 1),
	    SCEP__V1__STATUS__STATUS_REFUSED);
	assert_null(issue(f, "admin", NULL, err, sizeof(err)));
	assert_int_equal(
	    withdraw(f, "frontend", b, NULL, 0), SCEP__V1__STATUS__STATUS_OK);
	c = issue(f, "admin", NULL, NULL, 0);
	assert_non_null(c);
	assert_int_equal(withdraw(f, "frontend", NULL, "0123456789abcdef", 0),
	    SCEP__V1__STATUS__STATUS_REFUSED);
	/* Withdrawn, it enrolls nothing; the other still does. */
	assert_int_equal(redeem(f, b, "tx-b", 0), REFUSED);
	assert_int_equal(redeem(f, a, "tx-a", 0), OK);
	/* A password a device holds (reserved or used) stays. */
	assert_int_equal(withdraw(f, "frontend", a, NULL, 0),
	    SCEP__V1__STATUS__STATUS_REFUSED);
	free(a);
	free(b);
	free(c);
}

/* A frontend declaring itself "scepctl frontend" (ChallengeRevoke's whole
 * list of peers) is neither scepctl nor the frontend: refused, and the
 * unused passwords it asked to delete all enroll still. */
static void
test_withdraw_as_two_roles_refused(void **state)
{
	struct fixture *f = *state;
	char *a = issue(f, "admin", NULL, NULL, 0);
	char *b = issue(f, "admin", NULL, NULL, 0);

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(withdraw(f, "scepctl frontend", NULL, NULL, 1),
	    SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	assert_int_equal(withdraw(f, "frontend scepctl", NULL, NULL, 1),
	    SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	assert_int_equal(withdraw(f, " frontend", NULL, NULL, 1),
	    SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	assert_int_equal(redeem(f, a, "tx-a", 0), OK);
	assert_int_equal(redeem(f, b, "tx-b", 0), OK);
	free(a);
	free(b);
}

static void
test_reservation(void **state)
{
	struct fixture *f = *state;
	char *pw = issue(f, "admin", NULL, NULL, 0), lower[64];

	assert_int_equal(redeem(f, pw, "tx-1", 0), OK);
	assert_int_equal(redeem(f, pw, "tx-1", 0), OK); /* a retry */
	assert_int_equal(redeem(f, pw, "tx-2", 0), REFUSED);
	assert_int_equal(f->c.counters.security_events, 1);
	assert_int_equal(redeem(f, pw, "tx-1", 1), OK);
	assert_int_equal(f->c.counters.used, 1);
	assert_int_equal(redeem(f, pw, "tx-1", 0), OK); /* lost answer */
	assert_int_equal(redeem(f, pw, "tx-3", 0), REFUSED);
	/* Typed in lower case it is the same password. */
	for (size_t i = 0; i <= strlen(pw); i++)
		lower[i] =
		    (char)(pw[i] >= 'A' && pw[i] <= 'F' ? pw[i] + 32 : pw[i]);
	assert_int_equal(redeem(f, lower, "tx-4", 0), REFUSED);
	assert_int_equal(f->c.counters.security_events, 3);
	assert_int_equal(redeem(f, "", "tx-5", 0), REFUSED);
	assert_int_equal(f->c.counters.refused_missing, 1);
	free(pw);
}

/* 1 if a check of `password` for `txid` tells the RA to send
 * ChallengeConsume after issuance, 0 if not, -1 if it was refused. */
static int
consume_wanted(struct fixture *f, const char *password, const char *txid)
{
	int wanted = -1;

	return redeem_check(f, password, txid, &wanted) == OK ? wanted : -1;
}

/* A one-time password must hear of its issuance (else it stays reserved,
 * never counted used); a single password or an unchecked request has
 * nothing to mark, and the RA saves the round trip. */
static void
test_consume_wanted(void **state)
{
	struct fixture *f = *state;
	char *pw = issue(f, "admin", NULL, NULL, 0);

	assert_int_equal(consume_wanted(f, pw, "tx-1"), 1);
	assert_int_equal(consume_wanted(f, pw, "tx-2"), -1);
	free(pw);

	validators_free(&f->c);
	f->c.settings.use_single_password = 1;
	f->c.settings.single_password = "shared-secret-42";
	assert_int_equal(validators_load(&f->c, f->conf), 0);
	assert_int_equal(consume_wanted(f, "shared-secret-42", "tx-3"), 0);
	assert_int_equal(consume_wanted(f, "shared-secret-42", "tx-4"), 0);
	assert_int_equal(consume_wanted(f, "wrong", "tx-5"), -1);
	f->c.settings.single_password = NULL;

	validators_free(&f->c);
	f->c.settings.use_single_password = 0;
	f->c.settings.enforce_password = 0;
	f->c.settings.allow_no_password = 1;
	assert_int_equal(validators_load(&f->c, f->conf), 0);
	assert_int_equal(consume_wanted(f, "", "tx-6"), 0);
}

/* validators_load of `text` as the configuration: its result, and what
 * it printed in out. */
static int
load_config(struct fixture *f, const char *text, char *out, size_t outlen)
{
	char log[128];
	int saved, fd, rc;
	ssize_t n;
	FILE *fp;

	validators_free(&f->c);
	assert_non_null(fp = fopen(f->conf, "w"));
	fputs(text, fp);
	fclose(fp);
	snprintf(log, sizeof(log), "%s/stderr.log", f->dir);
	fflush(stderr);
	assert_true((saved = dup(STDERR_FILENO)) >= 0);
	assert_true((fd = open(log, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	rc = validators_load(&f->c, f->conf);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	n = pread(fd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(log);
	return rc;
}

/*
 * A [validator.NAME] section named like a built-in (otp, static) is
 * refused at start, naming the section: it was skipped silently, the
 * built-in answering for the validator its author had configured.
 */
static void
test_builtin_section_refused(void **state)
{
	struct fixture *f = *state;
	char out[1024];

	assert_int_equal(load_config(f,
	                     "[validator.otp]\nModule = webhook\n"
	                     "URL = http://127.0.0.1:1/\n",
	                     out, sizeof(out)),
	    -1);
	assert_non_null(strstr(out, "[validator.otp]: otp is the name of"));
	f->c.settings.use_single_password = 1;
	f->c.settings.single_password = "shared-secret-42";
	assert_int_equal(
	    load_config(
	        f, "[validator.Static]\nModule = webhook\n", out, sizeof(out)),
	    -1);
	assert_non_null(strstr(out, "[validator.Static]: Static is the name"));
	/* static is refused even when it is not in use. */
	f->c.settings.use_single_password = 0;
	f->c.settings.single_password = NULL;
	assert_int_equal(
	    load_config(
	        f, "[validator.static]\nModule = webhook\n", out, sizeof(out)),
	    -1);
	assert_non_null(strstr(out, "[validator.static]: static is the name"));
	/* Without such a section the same settings load. */
	assert_int_equal(
	    load_config(f, "[challenge]\nPasswordMax = 2\n", out, sizeof(out)),
	    0);
}

/*
 * UseSinglePassword = 1 with Validator = otp (the single password for
 * paths mapped to static only): the admin page gets one-time passwords
 * for the default paths, which take them. It got the single password's
 * "single" answer, which the otp paths refuse: no password could enroll
 * there.
 */
static void
test_single_beside_otp(void **state)
{
	struct fixture *f = *state;
	char out[1024], err[128] = "", *pw;

	f->c.settings.use_single_password = 1;
	f->c.settings.single_password = "shared-secret-7";
	f->c.settings.validator = "otp";
	assert_int_equal(
	    load_config(f, "[challenge]\nPasswordMax = 2\n", out, sizeof(out)),
	    0);
	pw = issue(f, "admin", NULL, err, sizeof(err));
	assert_non_null(pw);
	assert_true(strlen(pw) >= 16); /* PasswordLength, not "single" */
	assert_int_equal(redeem(f, pw, "tx-1", 0), OK);
	assert_int_equal(redeem(f, "shared-secret-7", "tx-2", 0), REFUSED);
	free(pw);
	f->c.settings.use_single_password = 0;
	f->c.settings.single_password = NULL;
	f->c.settings.validator = NULL;
}

/* The single password set through the API wins over SinglePassword in
 * the file: said at start, naming who set it, or an admin who rotated a
 * leaked password in the file would take the new one for the one in
 * force. */
static void
test_single_file_overridden_said(void **state)
{
	struct fixture *f = *state;
	char out[1024];
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeSetSingleRequest in =
	    SCEP__V1__CHALLENGE_SET_SINGLE_REQUEST__INIT;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena = rpc_arena_new();

	f->c.settings.use_single_password = 1;
	f->c.settings.single_password = "file-secret-1";
	log_init("test_challenge", LOG_LEVEL_WARN);
	assert_int_equal(load_config(f, "[challenge]\n", out, sizeof(out)), 0);
	log_init("test_challenge", LOG_LEVEL_ERROR);
	assert_null(strstr(out, "is not in force"));
	in.password = "api-secret-1";
	in.set_by = "alice";
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_SET_SINGLE;
	req.challenge_set_single = &in;
	reply.status = OK;
	challenge_handle_set_single(&f->c, &req, &reply, arena);
	assert_int_equal(reply.status, OK);
	rpc_arena_free(arena);
	f->c.settings.single_password = "file-secret-2";
	log_init("test_challenge", LOG_LEVEL_WARN); /* the line is a warning */
	assert_int_equal(load_config(f, "[challenge]\n", out, sizeof(out)), 0);
	log_init("test_challenge", LOG_LEVEL_ERROR);
	assert_non_null(strstr(out,
	    "SinglePassword in [challenge] is not in force: the single "
	    "password set through api/single-password by alice is"));
	assert_int_equal(redeem(f, "api-secret-1", "tx-1", 0), OK);
	f->c.settings.use_single_password = 0;
	f->c.settings.single_password = NULL;
}

/* A process killed in a read transaction (a backup's mdb_copy): its
 * reader slot is cleared (store_readers_clear, the idle sweep's), not
 * kept pinning a snapshot whose freed pages are never reused. */
static void
test_dead_reader_cleared(void **state)
{
	struct fixture *f = *state;
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *txn;

		/* Its own environment: LMDB's may not cross a fork. */
		if (mdb_env_create(&env) != 0 ||
		    mdb_env_set_maxdbs(env, 16) != 0 ||
		    mdb_env_open(env, f->dir, MDB_RDONLY, 0600) != 0 ||
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
			_exit(1);
		raise(SIGKILL);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(store_readers_clear(f->c.env, "test"), 1);
	assert_int_equal(store_readers_clear(f->c.env, "test"), 0);
}

/* ChallengeRevoke of all unused passwords of `pool` (NULL: unset), as
 * scepctl sends it; the number revoked, or -1 when refused. */
static int
revoke_unused(struct fixture *f, const char *pool)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeRevokeRequest in =
	    SCEP__V1__CHALLENGE_REVOKE_REQUEST__INIT;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena = rpc_arena_new();
	int n = -1;

	in.has_all_unused = 1;
	in.all_unused = 1;
	in.pool = (char *)pool;
	in.revoked_by = "test";
	req.origin = "scepctl";
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_REVOKE;
	req.challenge_revoke = &in;
	reply.status = SCEP__V1__STATUS__STATUS_OK;
	challenge_handle_revoke(&f->c, &req, &reply, arena);
	if (reply.status == SCEP__V1__STATUS__STATUS_OK)
		n = (int)reply.challenge_revoke->revoked;
	rpc_arena_free(arena);
	return n;
}

/*
 * scepctl challenge --revoke-unused empties the admin page's pool (the
 * remedy for "The password cache is full."), not the passwords an MDM
 * has pushed to its devices: those go with --pool mdm or all.
 */
static void
test_revoke_unused_pools(void **state)
{
	struct fixture *f = *state;
	char *a = issue(f, "admin", NULL, NULL, 0);
	char *m1 = issue(f, "mdm1", "mdm", NULL, 0);
	char *m2 = issue(f, "mdm2", "mdm", NULL, 0);
	char *a2;

	assert_non_null(a);
	assert_non_null(m1);
	assert_non_null(m2);
	assert_int_equal(revoke_unused(f, NULL), 1);
	assert_int_equal(redeem(f, a, "tx-a", 0), REFUSED);
	assert_int_equal(redeem(f, m1, "tx-m1", 0), OK);
	assert_int_equal(revoke_unused(f, "bogus"), -1);
	assert_non_null(a2 = issue(f, "admin", NULL, NULL, 0));
	assert_int_equal(revoke_unused(f, "mdm"), 1); /* m1 is reserved */
	assert_int_equal(redeem(f, m2, "tx-m2", 0), REFUSED);
	assert_int_equal(redeem(f, a2, "tx-a2", 0), OK);
	free(a);
	free(m2);
	assert_non_null(a = issue(f, "admin", NULL, NULL, 0));
	assert_non_null(m2 = issue(f, "mdm2", "mdm", NULL, 0));
	assert_int_equal(revoke_unused(f, "all"), 2);
	assert_int_equal(redeem(f, a, "tx-a3", 0), REFUSED);
	assert_int_equal(redeem(f, m2, "tx-m3", 0), REFUSED);
	free(a);
	free(a2);
	free(m1);
	free(m2);
}

/*
 * A SecretFile other than the one the passwords on record were written
 * with (lost, made anew) stops the service at start, naming the way out;
 * the right key opens them again. With no password on record a new key
 * is taken.
 */
static void
test_secret_replaced(void **state)
{
	struct fixture *f = *state;
	unsigned char right[CHALLENGE_SECRET_LEN];
	char err[512] = "", *pw;

	/* No password on record: a new key is taken. */
	challenge_db_close(&f->c);
	assert_int_equal(RAND_bytes(f->c.secret, sizeof(f->c.secret)), 1);
	assert_int_equal(challenge_db_open(&f->c, err, sizeof(err)), 0);
	assert_non_null(pw = issue(f, "admin", NULL, NULL, 0));
	memcpy(right, f->c.secret, sizeof(right));
	challenge_db_close(&f->c);
	assert_int_equal(RAND_bytes(f->c.secret, sizeof(f->c.secret)), 1);
	assert_int_equal(challenge_db_open(&f->c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is not the key the passwords on record"));
	assert_non_null(strstr(err, "move"));
	memcpy(f->c.secret, right, sizeof(right));
	assert_int_equal(challenge_db_open(&f->c, err, sizeof(err)), 0);
	assert_int_equal(redeem(f, pw, "tx-1", 0), OK);
	free(pw);
}

/* The password's state as stored (0: no record). */
/* The record of `password` as stored (its MAC in mac): 0, or 1 when
 * there is none. */
static int
record_read(struct fixture *f, const char *password,
    unsigned char mac[CHALLENGE_MAC_LEN], struct challenge_record *rec)
{
	char norm[CHALLENGE_PASSWORD_MAX + 1];
	MDB_txn *txn;
	int found;

	challenge_normalize(password, norm, sizeof(norm));
	assert_int_equal(challenge_mac(&f->c, norm, mac), 0);
	assert_int_equal(mdb_txn_begin(f->c.env, NULL, MDB_RDONLY, &txn), 0);
	found = challenge_record_get(txn, f->c.dbi, mac, rec);
	mdb_txn_abort(txn);
	assert_true(found >= 0);
	return found;
}

/* Stores `size` bytes of rec under mac as they are (an older or damaged
 * record). */
static void
record_write(struct fixture *f, const unsigned char mac[CHALLENGE_MAC_LEN],
    struct challenge_record *rec, size_t size)
{
	MDB_val key = {CHALLENGE_MAC_LEN, (void *)mac}, val = {size, rec};
	MDB_txn *txn;

	assert_int_equal(mdb_txn_begin(f->c.env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_put(txn, f->c.dbi, &key, &val, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
}

static int
stored_state(struct fixture *f, const char *password)
{
	unsigned char mac[CHALLENGE_MAC_LEN];
	struct challenge_record rec;

	return record_read(f, password, mac, &rec) == 0 ? (int)rec.state : 0;
}

/*
 * A "used" mark is held until the next write transaction (used.c): the
 * password reads as used at once, is stored used with the next commit, by
 * the idle hook after half a second, or when the database closes.
 */
static void
test_used_mark_held(void **state)
{
	struct fixture *f = *state;
	char *pw = issue(f, "admin", NULL, NULL, 0), *pw2, *pw3;
	char err[128];

	assert_int_equal(redeem(f, pw, "tx-1", 0), OK);
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
	assert_int_equal(redeem(f, pw, "tx-1", 1), OK);
	assert_int_equal(f->c.counters.used, 1);
	assert_int_equal(f->c.used.n, 1);
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
	/* Consumed twice: counted once. */
	assert_int_equal(redeem(f, pw, "tx-1", 1), OK);
	assert_int_equal(f->c.counters.used, 1);
	/* Refused as used; the aborted check keeps the mark held. */
	assert_int_equal(redeem(f, pw, "tx-2", 0), REFUSED);
	assert_int_equal(f->c.counters.security_events, 1);
	assert_int_equal(f->c.used.n, 1);
	/* The next commit (an issue) writes it, before it counts: with
	 * PasswordMax = 1 the used password leaves room for a new one. */
	f->c.settings.password_max = 1;
	pw2 = issue(f, "admin", NULL, err, sizeof(err));
	f->c.settings.password_max = 2;
	assert_non_null(pw2);
	assert_int_equal(f->c.used.n, 0);
	assert_int_equal(stored_state(f, pw), CHALLENGE_USED);

	/* Idle: written once held for half a second. */
	assert_int_equal(redeem(f, pw2, "tx-3", 0), OK);
	assert_int_equal(redeem(f, pw2, "tx-3", 1), OK);
	f->c.used.since_ms = INT64_MAX / 2; /* held just now, whatever the
	                                        machine's speed */
	challenge_used_idle(&f->c);
	assert_int_equal(f->c.used.n, 1);
	f->c.used.since_ms = 0; /* held long ago */
	challenge_used_idle(&f->c);
	assert_int_equal(f->c.used.n, 0);
	assert_int_equal(stored_state(f, pw2), CHALLENGE_USED);

	/* Closing the database writes what is held. */
	pw3 = issue(f, "admin", NULL, NULL, 0);
	assert_non_null(pw3);
	assert_int_equal(redeem(f, pw3, "tx-4", 0), OK);
	assert_int_equal(redeem(f, pw3, "tx-4", 1), OK);
	assert_int_equal(f->c.used.n, 1);
	challenge_db_close(&f->c);
	assert_int_equal(challenge_db_open(&f->c, err, sizeof(err)), 0);
	assert_int_equal(f->c.used.n, 0);
	assert_int_equal(stored_state(f, pw3), CHALLENGE_USED);
	free(pw);
	free(pw2);
	free(pw3);
}

/* The next report says its outcome is unknown (the RA sent copies). */
static int outcome_unknown;

/* A refused request's report (ChallengeRelease): `reserving` and
 * `release` as the RA says them; -1 each: unsaid (an older RA). Returns
 * whether it released the password. */
static int
release_as(struct fixture *f, const char *password, const char *txid,
    int reserving, int release)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeReleaseRequest in =
	    SCEP__V1__CHALLENGE_RELEASE_REQUEST__INIT;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena = rpc_arena_new();
	int released = -1;

	in.password = (char *)password;
	in.transaction_id = (char *)txid;
	if (reserving >= 0) {
		in.has_reserving = 1;
		in.reserving = reserving;
	}
	if (release >= 0) {
		in.has_release = 1;
		in.release = release;
	}
	in.has_outcome_unknown = outcome_unknown;
	in.outcome_unknown = outcome_unknown;
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_RELEASE;
	req.challenge_release = &in;
	reply.status = SCEP__V1__STATUS__STATUS_OK;
	challenge_release(&f->c, &req, &reply, arena);
	if (reply.status == OK)
		released = reply.challenge_release->released;
	rpc_arena_free(arena);
	return released;
}

/* As an older RA reports: the reserving request, nothing bound. */
static int
release(struct fixture *f, const char *password, const char *txid)
{
	return release_as(f, password, txid, -1, -1);
}

#define UNAVAILABLE SCEP__V1__STATUS__STATUS_UNAVAILABLE

/* Writes to the database fail (EFBIG: past the first two pages, where
 * LMDB's meta pages are) while `on`, as on a full disk. */
static void
writes_fail(int on)
{
	static struct rlimit saved;
	struct rlimit rl;

	if (on) {
		signal(SIGXFSZ, SIG_IGN);
		assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
		rl = saved;
		rl.rlim_cur = 8192;
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
	} else
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
}

/* A release the CA's refusal asked whose write fails (a full disk): the
 * device's next key, once space returns, is given the password; it was
 * refused as "reserved by another transaction", a security event, until
 * the password expired. And a released password whose transaction was
 * issued after all, its "used" write failing, is used all the same: no
 * other key takes it. */
static void
test_release_write_fails(void **state)
{
	struct fixture *f = *state;
	char *pw, *pw2;

	f->c.settings.password_max = 10;
	pw = issue(f, "admin", NULL, NULL, 0);
	pw2 = issue(f, "admin", NULL, NULL, 0);

	assert_int_equal(redeem(f, pw, "tx-a", 0), OK);
	writes_fail(1);
	assert_int_equal(release_as(f, pw, "tx-a", 1, 1), -1);
	writes_fail(0);
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
	assert_int_equal(redeem(f, pw, "tx-b", 0), OK);
	assert_true(last_reserved_now);
	assert_int_equal(f->c.counters.security_events, 0);
	assert_int_equal(redeem(f, pw, "tx-b", 1), OK);
	free(pw);

	/* Or the idle hook writes it once the disk has room, freeing its
	 * hold (an owed release held one of the 64 till the expiry). */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-e", 0), OK);
	writes_fail(1);
	assert_int_equal(release_as(f, pw, "tx-e", 1, 1), -1);
	otp_owed_retry(&f->c); /* still full: owed still */
	writes_fail(0);
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
	otp_owed_retry(&f->c);
	assert_int_equal(stored_state(f, pw), CHALLENGE_ISSUED);
	for (size_t i = 0; i < CHALLENGE_HOLDS; i++)
		assert_false(
		    f->c.holds[i].until_ms != 0 && f->c.holds[i].release_owed);
	free(pw);

	/* Not while a request of its transaction, presented since, may
	 * still be issued with it (its report decides). */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-f", 0), OK);
	writes_fail(1);
	assert_int_equal(release_as(f, pw, "tx-f", 1, 1), -1);
	writes_fail(0);
	assert_int_equal(redeem(f, pw, "tx-f", 0), OK);
	otp_owed_retry(&f->c);
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
	free(pw);

	/* Released; then its transaction's other request reports an
	 * issued certificate while the disk is full. */
	assert_int_equal(redeem(f, pw2, "tx-c", 0), OK);
	assert_int_equal(release_as(f, pw2, "tx-c", 1, 1), 1);
	assert_int_equal(stored_state(f, pw2), CHALLENGE_ISSUED);
	writes_fail(1);
	assert_int_equal(redeem(f, pw2, "tx-c", 1), OK);
	/* Its transaction retrying meanwhile is its own, not a thief. */
	assert_int_equal(redeem(f, pw2, "tx-c", 0), OK);
	assert_int_equal(f->c.counters.security_events, 0);
	writes_fail(0);
	assert_int_equal(redeem(f, pw2, "tx-d", 0), REFUSED);
	assert_non_null(strstr(last_error, "was already used"));
	free(pw2);
}

/* A sweep whose commit fails (a full disk) is tried again later: the
 * passwords it deleted are counted expired (/metrics) once, when one
 * commits, not at each try. */
static void
test_sweep_write_fails(void **state)
{
	struct fixture *f = *state;
	unsigned long deleted = 1;
	char *pw;

	for (int i = 0; i < 2; i++) {
		pw = issue(f, "admin", NULL, NULL, 0);
		assert_non_null(pw);
		free(pw);
	}
	fake_now += 61 * 60; /* past PasswordValidity */
	writes_fail(1);
	for (int i = 0; i < 3; i++)
		assert_int_not_equal(
		    challenge_sweep_batches(&f->c, fake_now, &deleted), 0);
	writes_fail(0);
	assert_int_equal(f->c.counters.expired, 0);
	assert_int_equal(challenge_sweep_batches(&f->c, fake_now, &deleted), 0);
	assert_int_equal(deleted, 2);
	assert_int_equal(f->c.counters.expired, 2);
}

/* A request the CA refused releases its password (the device's next key
 * is another transaction); only its own transaction's reservation, never
 * a used one; and a certificate issued to the transaction after all (a
 * request an older RA did not report) still uses it up. */
static void
test_release(void **state)
{
	struct fixture *f = *state;
	char *pw = issue(f, "admin", NULL, NULL, 0);

	assert_int_equal(redeem(f, pw, "tx-1", 0), OK);
	assert_true(last_reserved_now);
	assert_int_equal(release(f, pw, "tx-2"), 0); /* not its */
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
	assert_int_equal(release(f, pw, "tx-1"), 1);
	assert_int_equal(stored_state(f, pw), CHALLENGE_ISSUED);
	assert_int_equal(redeem(f, pw, "tx-2", 0), OK); /* the next key */
	assert_int_equal(redeem(f, pw, "tx-2", 1), OK);
	assert_int_equal(release(f, pw, "tx-2"), 0); /* used: stays so */
	assert_int_equal(redeem(f, pw, "tx-3", 0), REFUSED);
	free(pw);
	/* Released, then tx-1's certificate issued after all: used. */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-4", 0), OK);
	assert_int_equal(release(f, pw, "tx-4"), 1);
	assert_int_equal(redeem(f, pw, "tx-4", 1), OK);
	assert_int_equal(redeem(f, pw, "tx-5", 0), REFUSED);
	challenge_used_flush(&f->c);
	assert_int_equal(stored_state(f, pw), CHALLENGE_USED);
	free(pw);
	/* Refused as the transaction is another request's (which may be
	 * issued): reported, nothing released. */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-6", 0), OK);
	assert_int_equal(release_as(f, pw, "tx-6", 1, 0), 0);
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
	free(pw);
}

/* The restart of the service: its memory gone, its database kept. */
static void
restart(struct fixture *f)
{
	char err[128];

	challenge_db_close(&f->c);
	memset(f->c.holds, 0, sizeof(f->c.holds));
	assert_int_equal(challenge_db_open(&f->c, err, sizeof(err)), 0);
}

/* The next key of a device whose password a release waits on: answered
 * `status` saying `why`, no security event (it is its own password). */
static void
next_key_told(struct fixture *f, const char *pw, const char *txid, int status,
    const char *why)
{
	uint64_t events = f->c.counters.security_events;

	assert_int_equal(redeem(f, pw, txid, 0), status);
	assert_non_null(strstr(last_error, why));
	assert_int_equal(f->c.counters.security_events, events);
}

/* Told to come back (503): a report is awaited. */
static void
next_key_waits(struct fixture *f, const char *pw, const char *txid)
{
	next_key_told(f, pw, txid, UNAVAILABLE, "being released");
}

/* Refused: it stays reserved to a transaction whose requests cannot all
 * be known. */
static void
refused_until_expiry(struct fixture *f, const char *pw, const char *txid)
{
	next_key_told(f, pw, txid, REFUSED, "stays reserved until it expires");
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
}

/*
 * Another request of the reserving transaction (a copy, a retry, or a
 * second CSR under its transactionID) may be issued after the CA refused
 * the first: the release waits for the report of every request of the
 * transaction that passed the check, else the password, free again,
 * pays for another transaction's certificate too.
 */
static void
test_release_held(void **state)
{
	struct fixture *f = *state;
	long max = f->c.settings.password_max;
	char *pw;

	f->c.settings.password_max = 16;
	pw = issue(f, "admin", NULL, NULL, 0);
	/* The other one issued: the password is its. */
	assert_int_equal(redeem(f, pw, "tx-1", 0), OK);
	assert_true(last_reserved_now);
	answer_within_ms = 60000;
	assert_int_equal(redeem(f, pw, "tx-1", 0), OK); /* the other one */
	assert_false(last_reserved_now);
	assert_int_equal(release_as(f, pw, "tx-1", 1, 1), 0);
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
	next_key_waits(f, pw, "tx-2");
	assert_int_equal(redeem(f, pw, "tx-1", 1), OK);
	challenge_used_flush(&f->c);
	assert_int_equal(stored_state(f, pw), CHALLENGE_USED);
	assert_int_equal(redeem(f, pw, "tx-2", 0), REFUSED);
	free(pw);

	/* The other one refused too: released at the last report, in
	 * either order, however long before its answer was due. */
	for (int reserver_first = 0; reserver_first < 2; reserver_first++) {
		pw = issue(f, "admin", NULL, NULL, 0);
		assert_int_equal(redeem(f, pw, "tx-3", 0), OK);
		assert_int_equal(redeem(f, pw, "tx-3", 0), OK);
		assert_int_equal(
		    release_as(f, pw, "tx-3", reserver_first, 1), 0);
		next_key_waits(f, pw, "tx-4");
		assert_int_equal(
		    release_as(f, pw, "tx-3", !reserver_first, 1), 1);
		assert_int_equal(stored_state(f, pw), CHALLENGE_ISSUED);
		assert_int_equal(redeem(f, pw, "tx-4", 0), OK);
		assert_true(last_reserved_now);
		assert_int_equal(redeem(f, pw, "tx-4", 1), OK);
		free(pw);
	}

	/* The other one refused as the transaction is the first's, which
	 * asked the release: the wish stands, done at this last report. */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-15", 0), OK);
	assert_int_equal(redeem(f, pw, "tx-15", 0), OK);
	assert_int_equal(release_as(f, pw, "tx-15", 1, 1), 0);
	assert_int_equal(release_as(f, pw, "tx-15", 0, 0), 1);
	free(pw);

	/* Presented twice again: three reports. */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-5", 0), OK);
	assert_int_equal(redeem(f, pw, "tx-5", 0), OK);
	assert_int_equal(redeem(f, pw, "tx-5", 0), OK);
	assert_int_equal(release_as(f, pw, "tx-5", 1, 1), 0);
	assert_int_equal(release_as(f, pw, "tx-5", 0, 1), 0);
	next_key_waits(f, pw, "tx-6");
	assert_int_equal(release_as(f, pw, "tx-5", 0, 1), 1);
	free(pw);

	/* The other one never reports: issued, its "used" mark lost with
	 * its RA. Its answer due, the password still stays reserved (until
	 * it expires): the next key is told why, not taken for a thief, and
	 * gets no certificate with it. */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-7", 0), OK);
	answer_within_ms = 1000; /* the report's time is what counts */
	report_within_ms = 60000;
	assert_int_equal(redeem(f, pw, "tx-7", 0), OK);
	report_within_ms = -1;
	assert_int_equal(release_as(f, pw, "tx-7", 1, 1), 0);
	usleep(1300 * 1000); /* past the answer's time, not the report's */
	next_key_waits(f, pw, "tx-8");
	for (size_t i = 0; i < CHALLENGE_HOLDS; i++) /* the report's, aged */
		if (f->c.holds[i].until_ms != 0)
			f->c.holds[i].until_ms -= 61000;
	refused_until_expiry(f, pw, "tx-8");
	/* Its late report still counts. */
	assert_int_equal(release_as(f, pw, "tx-7", 0, 1), 1);
	assert_int_equal(redeem(f, pw, "tx-8", 0), OK);
	answer_within_ms = -1;
	free(pw);

	/* The reserving request issued nothing and asked no release (the CA
	 * answered it an error, a policy plugin unavailable, or refused it
	 * as the transaction is another request's): presented again later,
	 * the release waits for that request alone. */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-11", 0), OK);
	assert_int_equal(release_as(f, pw, "tx-11", 1, 0), 0);
	assert_int_equal(redeem(f, pw, "tx-11", 0), OK); /* its retry */
	assert_int_equal(release_as(f, pw, "tx-11", 0, 1), 1);
	assert_int_equal(stored_state(f, pw), CHALLENGE_ISSUED);
	free(pw);

	/* The RA sent the only request to the CA more than once and got a
	 * refusal: another copy may have been issued. Not released, the
	 * next key told why (no security event). */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-13", 0), OK);
	outcome_unknown = 1;
	assert_int_equal(release_as(f, pw, "tx-13", 1, 1), 0);
	outcome_unknown = 0;
	refused_until_expiry(f, pw, "tx-14");
	/* Its own retry, refused in turn, frees nothing either. */
	assert_int_equal(redeem(f, pw, "tx-13", 0), OK);
	assert_int_equal(release_as(f, pw, "tx-13", 0, 1), 0);
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
	free(pw);

	/* Both requests issued nothing, no release asked: nothing is out,
	 * and the record says so (the hold goes): a retry after a restart
	 * is counted again, and released at its report. */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-12", 0), OK);
	assert_int_equal(redeem(f, pw, "tx-12", 0), OK);
	assert_int_equal(release_as(f, pw, "tx-12", 0, 0), 0);
	assert_int_equal(release_as(f, pw, "tx-12", 1, 0), 0);
	restart(f);
	assert_int_equal(redeem(f, pw, "tx-12", 0), OK);
	assert_int_equal(release_as(f, pw, "tx-12", 0, 1), 1);
	free(pw);

	/* The reserving request's report alone (an older RA's form) waits
	 * for the other one as well. */
	pw = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-9", 0), OK);
	assert_int_equal(redeem(f, pw, "tx-9", 0), OK);
	assert_int_equal(release(f, pw, "tx-9"), 0);
	next_key_waits(f, pw, "tx-10");
	free(pw);
	f->c.settings.password_max = max;
}

/* A build that keeps its counts in memory alone wrote the record of `pw`
 * (its flags 0), the service stopped: after this build's close (the mark
 * left as it was), or before any (`first`: no mark). */
static void
older_build_wrote(struct fixture *f, const char *pw, int first)
{
	MDB_val mark = {sizeof(CHALLENGE_FLAGS_KEY) - 1,
	            (void *)CHALLENGE_FLAGS_KEY},
	        key, val;
	unsigned char mac[CHALLENGE_MAC_LEN];
	char norm[CHALLENGE_PASSWORD_MAX + 1], err[128];
	struct challenge_record rec;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;

	challenge_normalize(pw, norm, sizeof(norm));
	assert_int_equal(challenge_mac(&f->c, norm, mac), 0);
	challenge_db_close(&f->c);
	memset(f->c.holds, 0, sizeof(f->c.holds));
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	key.mv_size = sizeof(mac);
	key.mv_data = mac;
	assert_int_equal(mdb_get(txn, dbi, &key, &val), 0);
	assert_true(challenge_record_read(&val, &rec));
	rec.flags = 0;
	val.mv_size = sizeof(rec);
	val.mv_data = &rec;
	assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
	if (first)
		assert_int_equal(mdb_del(txn, dbi, &mark, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_equal(challenge_db_open(&f->c, err, sizeof(err)), 0);
}

/*
 * The counts of requests went with a restart, or with a hold taken for
 * room: a password presented again by its transaction (its record says
 * so) is never released then, but stays reserved until it expires; one
 * that was not is released at once, as before.
 */
static void
test_release_counts_lost(void **state)
{
	struct fixture *f = *state;
	char *pw, *pw2, *many[CHALLENGE_HOLDS + 1], last[32];
	long max = f->c.settings.password_max;

	f->c.settings.password_max = CHALLENGE_HOLDS + 8;
	pw = issue(f, "admin", NULL, NULL, 0);
	pw2 = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw, "tx-1", 0), OK);
	assert_int_equal(redeem(f, pw, "tx-1", 0), OK); /* the other one */
	assert_int_equal(redeem(f, pw2, "tx-2", 0), OK);
	restart(f);
	assert_int_equal(release_as(f, pw, "tx-1", 1, 1), 0);
	refused_until_expiry(f, pw, "tx-3");
	/* Its transaction still has it: a retry is issued with it. */
	assert_int_equal(redeem(f, pw, "tx-1", 0), OK);
	assert_int_equal(redeem(f, pw, "tx-1", 1), OK);
	challenge_used_flush(&f->c);
	assert_int_equal(stored_state(f, pw), CHALLENGE_USED);
	/* Never presented again: nothing else can be using it. */
	assert_int_equal(release_as(f, pw2, "tx-2", 1, 1), 1);
	assert_int_equal(stored_state(f, pw2), CHALLENGE_ISSUED);

	/* A release waiting for a report when the service restarted: the
	 * next key is told why it is refused, not taken for a thief. */
	assert_int_equal(redeem(f, pw2, "tx-5", 0), OK);
	assert_int_equal(redeem(f, pw2, "tx-5", 0), OK);
	assert_int_equal(release_as(f, pw2, "tx-5", 1, 1), 0);
	restart(f);
	refused_until_expiry(f, pw2, "tx-6");
	free(pw2);

	/* Reserved under a build that kept its counts in memory alone:
	 * flagged at the first open by this one, and at an open after
	 * such a build ran again. A clean restart of this one flags
	 * nothing. */
	for (int first = 1; first >= 0; first--) {
		char txid[32], other[32];

		snprintf(txid, sizeof(txid), "tx-older-%d", first);
		snprintf(other, sizeof(other), "tx-older-next-%d", first);
		pw2 = issue(f, "admin", NULL, NULL, 0);
		assert_int_equal(redeem(f, pw2, txid, 0), OK);
		older_build_wrote(f, pw2, first);
		assert_int_equal(release_as(f, pw2, txid, 1, 1), 0);
		refused_until_expiry(f, pw2, other);
		free(pw2);
	}
	pw2 = issue(f, "admin", NULL, NULL, 0);
	assert_int_equal(redeem(f, pw2, "tx-9", 0), OK);
	restart(f);
	assert_int_equal(release_as(f, pw2, "tx-9", 1, 1), 1);

	/* Every hold counting requests still to be answered: the next
	 * request presenting a password again is told to come back. */
	answer_within_ms = 60000;
	for (size_t i = 0; i < CHALLENGE_HOLDS + 1; i++) {
		char txid[32];

		snprintf(txid, sizeof(txid), "tx-many-%zu", i);
		many[i] = issue(f, "admin", NULL, NULL, 0);
		assert_non_null(many[i]);
		assert_int_equal(redeem(f, many[i], txid, 0), OK);
		assert_int_equal(redeem(f, many[i], txid, 0),
		    i < CHALLENGE_HOLDS ? OK : UNAVAILABLE);
	}
	/* Their answers due (aged by hand, oldest first), the oldest hold
	 * is taken: its password, its count lost, stays reserved. */
	for (size_t i = 0; i < CHALLENGE_HOLDS; i++)
		f->c.holds[i].until_ms -= 120000;
	snprintf(last, sizeof(last), "tx-many-%d", CHALLENGE_HOLDS);
	assert_int_equal(redeem(f, many[CHALLENGE_HOLDS], last, 0), OK);
	assert_int_equal(release_as(f, many[0], "tx-many-0", 1, 1), 0);
	refused_until_expiry(f, many[0], "tx-4");
	/* One whose hold is kept is released at its last report. */
	assert_int_equal(release_as(f, many[1], "tx-many-1", 1, 1), 0);
	assert_int_equal(release_as(f, many[1], "tx-many-1", 0, 1), 1);
	answer_within_ms = -1;
	for (size_t i = 0; i < CHALLENGE_HOLDS + 1; i++)
		free(many[i]);
	f->c.settings.password_max = max;
	free(pw);
	free(pw2);
}

static void
test_no_password_in_clear(void **state)
{
	struct fixture *f = *state;
	char *pw = issue(f, "admin", NULL, NULL, 0), path[128], *data;
	size_t len;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	challenge_db_close(&f->c); /* flush and release */
	assert_non_null(fp = fopen(path, "rb"));
	fseek(fp, 0, SEEK_END);
	len = (size_t)ftell(fp);
	rewind(fp);
	data = malloc(len);
	assert_int_equal(fread(data, 1, len, fp), len);
	fclose(fp);
	assert_null(memmem(data, len, pw, strlen(pw)));
	free(data);
	free(pw);
}

/* Drops the indexes, as a database written by a build that kept none. */
static void
indexes_drop(struct fixture *f)
{
	static const char *const names[] = {"due", "outstanding"};
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;

	challenge_db_close(&f->c);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(mdb_dbi_open(txn, names[i], 0, &dbi), 0);
		assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/*
 * PasswordMax counts, and expiry deletes, through indexes of the records
 * (store.c): a start with current ones writes nothing; a database from a
 * build that kept none gets them made again, and still counts its
 * passwords and sweeps them. MdmPasswordMax counts each account alone,
 * also one whose name begins another's.
 */
static void
test_indexes(void **state)
{
	struct fixture *f = *state;
	char err[128] = "", path[128], *a, *b, *m;
	struct stat before, after;
	int bob = 0, bob_e = 0;

	a = issue(f, "admin", NULL, NULL, 0);
	b = issue(f, "admin", NULL, NULL, 0);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(redeem(f, a, "tx-a", 0), OK); /* reserved: counts */
	/* Current indexes: a start reads them, writes nothing. */
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	challenge_db_close(&f->c);
	assert_int_equal(stat(path, &before), 0);
	usleep(20000);
	assert_int_equal(challenge_db_open(&f->c, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	indexes_drop(f);
	assert_int_equal(challenge_db_open(&f->c, err, sizeof(err)), 0);
	assert_null(issue(f, "admin", NULL, err, sizeof(err)));
	assert_string_equal(err, "The password cache is full.");
	/* Both expired, the reserved one past its keep too: swept. */
	fake_now += 61 * 60 + CHALLENGE_RESERVED_KEEP_S;
	free(b);
	assert_non_null(b = issue(f, "admin", NULL, NULL, 0));
	assert_int_equal(f->c.counters.expired, 2);
	assert_int_equal(redeem(f, a, "tx-a", 0), REFUSED);
	/* MdmPasswordMax = 3 for "bob" and for "bob\u00e9" (UTF-8), each:
	 * the bytes after a name must not let one range hold the other. */
	for (int i = 0; i < 4; i++) {
		bob += (m = issue(f, "bob", "mdm", NULL, 0)) != NULL;
		free(m);
		bob_e += (m = issue(f, "bob\xc3\xa9", "mdm", NULL, 0)) != NULL;
		free(m);
	}
	assert_int_equal(bob, 3);
	assert_int_equal(bob_e, 3);
	free(a);
	free(b);
}

/*
 * A password stored by a build before pools (version 1, shorter) still
 * works after the upgrade, retries of its transaction included: its first
 * write stores it whole, as the present version, which reads back.
 */
static void
test_record_v1(void **state)
{
	struct fixture *f = *state;
	char *pw = issue(f, "alice", NULL, NULL, 0);
	char err[128];
	unsigned char mac[CHALLENGE_MAC_LEN];
	struct challenge_record rec;
	MDB_val key = {CHALLENGE_MAC_LEN, mac}, val;
	MDB_txn *txn;

	assert_non_null(pw);
	assert_int_equal(record_read(f, pw, mac, &rec), 0);
	rec.version = 1;
	record_write(f, mac, &rec, CHALLENGE_RECORD_V1_SIZE);
	challenge_db_close(&f->c);
	assert_int_equal(challenge_db_open(&f->c, err, sizeof(err)), 0);
	assert_int_equal(redeem(f, pw, "tx-A", 0), OK);
	assert_int_equal(stored_state(f, pw), CHALLENGE_RESERVED);
	assert_int_equal(redeem(f, pw, "tx-A", 0), OK); /* a retry */
	assert_int_equal(redeem(f, pw, "tx-B", 0), REFUSED);
	assert_int_equal(redeem(f, pw, "tx-A", 1), OK);
	challenge_used_flush(&f->c);
	assert_int_equal(stored_state(f, pw), CHALLENGE_USED);
	assert_int_equal(mdb_txn_begin(f->c.env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_get(txn, f->c.dbi, &key, &val), 0);
	assert_int_equal(val.mv_size, sizeof(rec));
	memcpy(&rec, val.mv_data, sizeof(rec)); /* LMDB's data: unaligned */
	assert_int_equal(rec.version, CHALLENGE_RECORD_VERSION);
	mdb_txn_abort(txn);
	free(pw);
}

/*
 * A damaged record whose strings fill their fields (no NUL) is not read:
 * logged, and its password refused as unknown, as a record of another
 * size; nothing reads past the field (strcmp and the log line did).
 */
static void
test_record_unterminated(void **state)
{
	struct fixture *f = *state;
	char *pw = issue(f, "alice", NULL, NULL, 0);
	unsigned char mac[CHALLENGE_MAC_LEN];
	struct challenge_record rec;

	assert_non_null(pw);
	assert_int_equal(redeem(f, pw, "tx-A", 0), OK);
	assert_int_equal(record_read(f, pw, mac, &rec), 0);
	/* To the record's end: a read past the text leaves the record
	 * (ASan sees it). */
	memset(rec.reserved_txid, 'x',
	    sizeof(rec) - offsetof(struct challenge_record, reserved_txid));
	record_write(f, mac, &rec, sizeof(rec));
	log_init("test_challenge", LOG_LEVEL_INFO); /* as scepd logs */
	assert_int_equal(redeem(f, pw, "tx-B", 0), REFUSED);
	assert_non_null(strstr(last_error, "not valid")); /* not "reserved" */
	log_init("test_challenge", LOG_LEVEL_ERROR);
	free(pw);
}

/* A full map clears itself once its passwords expire: an issue leaves
 * pages free (CHALLENGE_MAP_RESERVE), and what is due is swept a few
 * records a transaction (a map filled to its last page, or one
 * transaction deleting all of them, found no free page and failed, issue
 * after issue, for good). */
static void
test_full_map_clears_at_expiry(void **state)
{
	struct fixture *f = *state;
	char err[128] = "";
	char *pw, *first;
	unsigned long used;
	int n = 0;

	f->c.settings.password_max = 1000000;
	first = issue(f, "admin", NULL, err, sizeof(err));
	assert_non_null(first);
	while ((pw = issue(f, "admin", NULL, err, sizeof(err))) != NULL) {
		free(pw);
		assert_true(++n < 1000000);
	}
	/* LMDB's default map (the fixture sets no DatabaseMaxMiB): 1 MiB. */
	assert_true(n > 100);
	assert_string_equal(
	    err, "the challenge service cannot issue a password now");
	/* What the pages kept are for: a device's check reserves its
	 * password, and the certificate marks it used. */
	used = f->c.counters.used;
	assert_int_equal(redeem(f, first, "tx-full", 0), OK);
	assert_int_equal(redeem(f, first, "tx-full", 1), OK);
	assert_int_equal(f->c.counters.used, used + 1);
	free(first);
	fake_now += 61 * 60;
	pw = issue(f, "admin", NULL, err, sizeof(err));
	if (pw == NULL)
		fail_msg(
		    "%d passwords expired, the next is refused: %s", n, err);
	free(pw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_limit_counts_guesses_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_issue_past_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_single_file_overridden_said, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dead_reader_cleared, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_retry_after_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_limit_clock_steps, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_limit_ipv6_prefix, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_limit_slots_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_release_write_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_sweep_write_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_cache_full_and_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_full_map_clears_at_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reservation, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_withdraw_not_handed_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_withdraw_as_two_roles_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_consume_wanted, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_used_mark_held, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_release, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_release_held, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_release_counts_lost, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_no_password_in_clear, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_builtin_section_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indexes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_record_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_record_unterminated, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_secret_replaced, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_revoke_unused_pools, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_single_beside_otp, setup, teardown),
	};

	log_init("test_challenge", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
