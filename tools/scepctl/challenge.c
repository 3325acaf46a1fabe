/*
 * scepctl challenge [--json]: asks the challenge service for a password,
 * the same one the admin page would show, at the endpoint the frontend uses
 * ([frontend] ChallengeEndpoint of DIR/scepd.conf). --list shows the
 * passwords on record (ids, never the passwords); --revoke ID and
 * --revoke-unused delete those no device has presented yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "rpc.h"
#include "scepctl.h"

static void
scepctl_challenge_usage(FILE *f)
{
	fprintf(f,
	    "usage: scepctl [--data-dir DIR] challenge [--json]\n"
	    "       scepctl [--data-dir DIR] challenge --list [--json]\n"
	    "       scepctl [--data-dir DIR] challenge --revoke ID | "
	    "--revoke-unused [--pool admin|mdm|all]\n"
	    "  Prints one fresh one-time enrollment password; with --json,\n"
	    "  {\"password\", \"expires_at\", \"validity_minutes\"}.\n"
	    "  --list: the passwords on record (id, state, issued to, expiry,\n"
	    "  transaction; \"release waits\": the CA refused a request of\n"
	    "  it, and another may still use it), never the passwords\n"
	    "  themselves. --revoke ID\n"
	    "  deletes one no device has presented yet; --revoke-unused all\n"
	    "  of them the admin page issued (a full password cache emptied),\n"
	    "  with --pool mdm every MDM account's, with --pool all both.\n");
}

static int
scepctl_challenge_list(const Scep__V1__ChallengeListReply *out, int json)
{
	json_t *a = json ? json_array() : NULL;

	for (size_t i = 0; i < out->n_passwords; i++) {
		const Scep__V1__ChallengeInfo *p = out->passwords[i];
		char issued[LOG_TIME_LEN], expires[LOG_TIME_LEN];

		log_time((time_t)p->issued_at, issued);
		log_time((time_t)p->expires_at, expires);
		if (json)
			json_array_append_new(a,
			    json_pack(
			        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b}",
			        "id", p->id, "state", p->state, "issued_by",
			        p->issued_by, "issued_at", issued, "expires_at",
			        expires, "transaction_id",
			        p->transaction_id ? p->transaction_id : "",
			        "pool", p->pool ? p->pool : "admin",
			        "release_waits", (int)p->release_waits));
		else
			printf("%s  %-8s  issued %s to %s (%s)  expires %s  "
			       "%s%s\n",
			    p->id, p->state, issued, p->issued_by,
			    p->pool ? p->pool : "admin", expires,
			    p->transaction_id ? p->transaction_id : "-",
			    p->release_waits ? "  release waits" : "");
	}
	if (json) {
		json_dumpf(a, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(a);
	} else
		fprintf(stderr, "scepctl: %zu password(s) on record\n",
		    out->n_passwords);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* --list, --revoke ID, --revoke-unused: 0, 1 refused or failed. */
static int
scepctl_challenge_manage(const struct scepctl *ctl, int list,
    const char *revoke_id, const char *pool, int json)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeListRequest lreq =
	    SCEP__V1__CHALLENGE_LIST_REQUEST__INIT;
	Scep__V1__ChallengeRevokeRequest rreq =
	    SCEP__V1__CHALLENGE_REVOKE_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	struct scepctl_conn conn;
	const char *user =
	    getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");
	char by[128];
	int rc = 1;

	if (scepctl_connect(ctl, "frontend", "ChallengeEndpoint", &conn) != 0)
		return 1;
	if (list) {
		req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_LIST;
		req.challenge_list = &lreq;
	} else {
		snprintf(by, sizeof(by), "scepctl (%s)", user ? user : "?");
		rreq.revoked_by = by;
		if (revoke_id != NULL)
			rreq.id = (char *)revoke_id;
		else {
			rreq.has_all_unused = 1;
			rreq.all_unused = 1;
			rreq.pool = (char *)pool;
		}
		req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_REVOKE;
		req.challenge_revoke = &rreq;
	}
	if ((reply = scepctl_call(&conn, &req, "challenge service")) == NULL)
		goto out;
	if (reply->status != SCEP__V1__STATUS__STATUS_OK) {
		fprintf(stderr, "scepctl: challenge service: %s\n",
		    reply->error ? reply->error : "refused");
		goto out;
	}
	if (list && reply->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_LIST)
		rc = scepctl_challenge_list(reply->challenge_list, json);
	else if (!list &&
	    reply->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_REVOKE) {
		fprintf(stderr, "scepctl: %u password(s) revoked\n",
		    reply->challenge_revoke->revoked);
		rc = 0;
	} else
		fprintf(stderr, "scepctl: challenge service: no answer\n");
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	scepctl_disconnect(&conn);
	return rc;
}

/* 0, or 1 when the password may not have reached stdout (closed at the
 * end: a late write error shows only there). */
static int
scepctl_print(const Scep__V1__ChallengeIssueReply *out, int json)
{
	json_t *obj = NULL;
	char when[32];
	time_t t = (time_t)out->expires_at;
	struct tm tm;
	int rc = 1;

	if (!json)
		printf("%s\n", out->password);
	else {
		/* The admin page's JSON fields, as it writes them (admin.c). */
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		obj = json_pack("{s:s, s:s, s:I}", "password", out->password,
		    "expires_at", when, "validity_minutes",
		    (json_int_t)out->validity_minutes);
		if (obj == NULL || json_dumpf(obj, stdout, JSON_COMPACT) != 0)
			goto out;
		putchar('\n');
	}
	if (fflush(stdout) == 0 && !ferror(stdout) && fclose(stdout) == 0)
		rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "scepctl: cannot print the password: %s\n",
		    strerror(errno));
	json_decref(obj);
	return rc;
}

/*
 * A password issued but not printed goes back, by the password itself as
 * the frontend withdraws one: else it stays outstanding, unseen, counted
 * against PasswordMax until it expires.
 */
static void
scepctl_withdraw(struct scepctl_conn *conn, const char *password)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeRevokeRequest body =
	    SCEP__V1__CHALLENGE_REVOKE_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	const char *user =
	    getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");
	char by[160];

	snprintf(by, sizeof(by), "scepctl (%s; a password it could not print)",
	    user ? user : "?");
	body.password = (char *)password;
	body.revoked_by = by;
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_REVOKE;
	req.challenge_revoke = &body;
	if ((reply = scepctl_call(conn, &req, "challenge service")) == NULL) {
		fprintf(stderr,
		    "scepctl: unless it was withdrawn, it stays outstanding "
		    "until it expires (scepctl challenge --revoke ID)\n");
		return;
	}
	if (reply->status == SCEP__V1__STATUS__STATUS_OK &&
	    reply->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_REVOKE)
		fprintf(
		    stderr, "scepctl: it is withdrawn: no device can use it\n");
	else
		fprintf(stderr,
		    "scepctl: it could not be withdrawn (%s): it stays "
		    "outstanding until it expires (scepctl challenge --list; "
		    "--revoke ID)\n",
		    reply->error != NULL ? reply->error : "no answer");
	scep__v1__reply__free_unpacked(reply, NULL);
}

int
scepctl_challenge(const struct scepctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"list", no_argument, NULL, 'l'},
	    {"revoke", required_argument, NULL, 'r'},
	    {"revoke-unused", no_argument, NULL, 'u'},
	    {"pool", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *revoke_id = NULL, *pool = NULL;
	int list = 0, revoke_unused = 0;
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeIssueRequest issue =
	    SCEP__V1__CHALLENGE_ISSUE_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	struct scepctl_conn conn;
	int c, json = 0, rc = 1;

	/* 0, not 1: glibc then forgets the "+" of main's option string. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'l':
			list = 1;
			break;
		case 'r':
			revoke_id = optarg;
			break;
		case 'u':
			revoke_unused = 1;
			break;
		case 'p':
			pool = optarg;
			break;
		case 'h':
			scepctl_challenge_usage(stdout);
			return 0;
		default:
			scepctl_challenge_usage(stderr);
			return 2;
		}
	}
	if (optind != argc || list + (revoke_id != NULL) + revoke_unused > 1 ||
	    (json && (revoke_id != NULL || revoke_unused)) ||
	    (pool != NULL && !revoke_unused)) {
		scepctl_challenge_usage(stderr);
		return 2;
	}
	if (list || revoke_id != NULL || revoke_unused)
		return scepctl_challenge_manage(
		    ctl, list, revoke_id, pool, json);
	/* A closed stdout's descriptor would be ZeroMQ's next one, and the
	 * password written there. */
	if (fcntl(STDOUT_FILENO, F_GETFD) == -1) {
		fprintf(stderr,
		    "scepctl: stdout is closed: no password asked for\n");
		return 1;
	}
	/* The endpoint the frontend uses: the admin page's password. */
	if (scepctl_connect(ctl, "frontend", "ChallengeEndpoint", &conn) != 0)
		return 1;
	issue.issued_by = "scepctl";
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE;
	req.challenge_issue = &issue;
	if ((reply = scepctl_call(&conn, &req, "challenge service")) == NULL)
		goto out;
	if (reply->status == SCEP__V1__STATUS__STATUS_OK &&
	    reply->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_ISSUE &&
	    reply->challenge_issue->has_single &&
	    reply->challenge_issue->single) {
		/* Nothing to print: the service keeps only the HMAC. */
		fprintf(stderr,
		    "scepctl: UseSinglePassword = 1: every device uses the "
		    "single password set by %s; no one-time password is "
		    "issued\n",
		    reply->challenge_issue->single_set_by
		        ? reply->challenge_issue->single_set_by
		        : "?");
		goto out;
	}
	if (reply->status == SCEP__V1__STATUS__STATUS_OK &&
	    reply->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_ISSUE) {
		if ((rc = scepctl_print(reply->challenge_issue, json)) != 0)
			scepctl_withdraw(
			    &conn, reply->challenge_issue->password);
		goto out;
	}
	/* REFUSED carries the reason an admin acts on ("The password cache
	 * is full."); print it alone, as the admin page would. */
	if (reply->status == SCEP__V1__STATUS__STATUS_REFUSED)
		fprintf(stderr, "scepctl: %s\n",
		    reply->error ? reply->error : "refused");
	else
		fprintf(stderr, "scepctl: challenge service error: %s\n",
		    reply->error ? reply->error : "no password in the reply");
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	scepctl_disconnect(&conn);
	return rc;
}
