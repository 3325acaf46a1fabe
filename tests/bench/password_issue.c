/*
 * password_issue: what issuing a one-time password costs as the
 * challenge service's database fills with used ones (each is kept a week
 * past its expiry for its transaction's retries: an MDM that has a
 * password issued per device holds its week of enrollments). Calls the
 * service's handlers in process, as tests/unit/test_challenge.c does, on
 * a database in a new directory under /tmp: issue, reserve (ChallengeCheck)
 * and use (ChallengeConsume) COUNT passwords; prints the mean time of an
 * issue and of a check and consume per fifth of the run. Each write is
 * the service's durable commit, so the figures include the disk's flush.
 *
 *   password_issue [COUNT]        (default 50000)
 * exit: 0, or 1 when a password is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "challenge.h"
#include "clock.h"
#include "log.h"

static int64_t
wall_clock(void)
{
	return (int64_t)time(NULL);
}

/* One request to one of the service's handlers; its reply's status. */
static int
call(struct challenge *c, Scep__V1__Request *req,
    void (*handler)(void *, const Scep__V1__Request *, Scep__V1__Reply *,
        struct rpc_arena *),
    char *password, size_t len)
{
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena = rpc_arena_new();
	int status;

	reply.status = SCEP__V1__STATUS__STATUS_OK;
	handler(c, req, &reply, arena);
	status = reply.status;
	if (status == SCEP__V1__STATUS__STATUS_OK && password != NULL)
		snprintf(password, len, "%s", reply.challenge_issue->password);
	else if (status != SCEP__V1__STATUS__STATUS_OK)
		fprintf(stderr, "password_issue: refused: %s\n",
		    reply.error ? reply.error : "?");
	rpc_arena_free(arena);
	return status;
}

/* The operator's commands on the filled database: `scepctl challenge
 * --list` (a scan, without the service's lock since session 24) and
 * `--revoke ID` (a keyed look-up, a scan under the lock before). */
static int
bench_operator(struct challenge *c, long count)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeListRequest list =
	    SCEP__V1__CHALLENGE_LIST_REQUEST__INIT;
	Scep__V1__ChallengeIssueRequest issue =
	    SCEP__V1__CHALLENGE_ISSUE_REQUEST__INIT;
	Scep__V1__ChallengeRevokeRequest revoke =
	    SCEP__V1__CHALLENGE_REVOKE_REQUEST__INIT;
	char password[2 * CHALLENGE_RAW_MAX + 1], norm[sizeof(password)];
	char id[17];
	unsigned char mac[CHALLENGE_MAC_LEN];
	int64_t t0;

	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_LIST;
	req.challenge_list = &list;
	t0 = clock_monotonic_us();
	if (call(c, &req, challenge_handle_list, NULL, 0) !=
	    SCEP__V1__STATUS__STATUS_OK)
		return -1;
	printf("--list of %ld records: %.1f ms\n", count,
	    (clock_monotonic_us() - t0) / 1e3);
	issue.issued_by = "bench";
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE;
	req.challenge_issue = &issue;
	if (call(c, &req, challenge_handle_issue, password, sizeof(password)) !=
	    SCEP__V1__STATUS__STATUS_OK)
		return -1;
	challenge_normalize(password, norm, sizeof(norm));
	if (challenge_mac(c, norm, mac) != 0)
		return -1;
	challenge_mac_id(mac, id);
	revoke.id = id;
	revoke.revoked_by = "bench";
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_REVOKE;
	req.challenge_revoke = &revoke;
	t0 = clock_monotonic_us();
	if (call(c, &req, challenge_handle_revoke, NULL, 0) !=
	    SCEP__V1__STATUS__STATUS_OK)
		return -1;
	printf("--revoke ID among %ld records: %.3f ms\n", count,
	    (clock_monotonic_us() - t0) / 1e3);
	return 0;
}

int
main(int argc, char **argv)
{
	struct challenge c;
	char dir[] = "/tmp/password_issue.XXXXXX", conf[64], err[256];
	long count = argc > 1 ? atol(argv[1]) : 50000, step, n;
	int64_t t0, t1, issue_us = 0, use_us = 0;
	FILE *fp;
	int rc = 1;

	if (count < 5 || mkdtemp(dir) == NULL)
		return 1;
	step = count / 5;
	memset(&c, 0, sizeof(c));
	c.now = wall_clock;
	c.settings.database = dir;
	c.settings.database_max_mib = 4096;
	c.settings.password_validity = 60;
	c.settings.password_max = 5;
	c.settings.password_length = 16;
	c.settings.enforce_password = 1;
	c.settings.mdm_password_max = 5;
	c.settings.wrong_password_window = 300;
	snprintf(conf, sizeof(conf), "%s/scepd.conf", dir);
	log_init("password_issue", LOG_LEVEL_ERROR);
	if ((fp = fopen(conf, "w")) == NULL)
		return 1;
	fputs("[challenge]\n", fp);
	fclose(fp);
	if (RAND_bytes(c.secret, sizeof(c.secret)) != 1 ||
	    challenge_db_open(&c, err, sizeof(err)) != 0 ||
	    (c.refusals = calloc(CHALLENGE_LIMIT_SLOTS, sizeof(*c.refusals))) ==
	        NULL ||
	    validators_load(&c, conf) != 0) {
		fprintf(stderr, "password_issue: %s\n", err);
		return 1;
	}
	printf("used passwords in the database | ms per issue | ms per check "
	       "and consume\n");
	for (n = 1; n <= count; n++) {
		Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
		Scep__V1__ChallengeIssueRequest issue =
		    SCEP__V1__CHALLENGE_ISSUE_REQUEST__INIT;
		Scep__V1__ChallengeCheckRequest check =
		    SCEP__V1__CHALLENGE_CHECK_REQUEST__INIT;
		Scep__V1__ChallengeConsumeRequest consume =
		    SCEP__V1__CHALLENGE_CONSUME_REQUEST__INIT;
		char password[2 * CHALLENGE_RAW_MAX + 1], txid[32];

		issue.issued_by = "bench";
		req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE;
		req.challenge_issue = &issue;
		t0 = clock_monotonic_us();
		if (call(&c, &req, challenge_handle_issue, password,
		        sizeof(password)) != SCEP__V1__STATUS__STATUS_OK)
			goto out;
		t1 = clock_monotonic_us();
		issue_us += t1 - t0;
		snprintf(txid, sizeof(txid), "bench-%ld", n);
		check.password = consume.password = password;
		check.transaction_id = consume.transaction_id = txid;
		check.client_addr = "192.0.2.1";
		req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_CHECK;
		req.challenge_check = &check;
		if (call(&c, &req, challenge_handle_check, NULL, 0) !=
		    SCEP__V1__STATUS__STATUS_OK)
			goto out;
		req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_CONSUME;
		req.challenge_consume = &consume;
		if (call(&c, &req, challenge_handle_consume, NULL, 0) !=
		    SCEP__V1__STATUS__STATUS_OK)
			goto out;
		use_us += clock_monotonic_us() - t1;
		if (n % step == 0) {
			printf("%ld | %.3f | %.3f\n", n, issue_us / 1e3 / step,
			    use_us / 1e3 / step);
			fflush(stdout);
			issue_us = use_us = 0;
		}
	}
	if (bench_operator(&c, count) != 0)
		goto out;
	t0 = clock_monotonic_us();
	challenge_db_close(&c);
	if (challenge_db_open(&c, err, sizeof(err)) != 0) {
		fprintf(stderr, "password_issue: reopen: %s\n", err);
		goto out;
	}
	printf("start with %ld records (indexes read): %.1f ms\n", count,
	    (clock_monotonic_us() - t0) / 1e3);
	rc = 0;
out:
	challenge_db_close(&c);
	validators_free(&c);
	free(c.refusals);
	unlink(conf);
	for (size_t i = 0; i < 2; i++) {
		snprintf(conf, sizeof(conf), "%s/%s", dir,
		    i == 0 ? "data.mdb" : "lock.mdb");
		unlink(conf);
	}
	rmdir(dir);
	return rc;
}
