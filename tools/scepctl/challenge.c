/*
 * scepctl challenge [--json]: asks the challenge service for a password,
 * the same one the admin page would show, at the endpoint the frontend uses
 * ([frontend] ChallengeEndpoint of DIR/scepd.conf).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "rpc.h"
#include "scepctl.h"

static void
scepctl_challenge_usage(FILE *f)
{
	fprintf(f,
	    "usage: scepctl [--data-dir DIR] challenge [--json]\n"
	    "  Prints one fresh one-time enrollment password; with --json,\n"
	    "  {\"password\", \"expires_at\", \"validity_minutes\"}.\n");
}

static int
scepctl_print(const Scep__V1__ChallengeIssueReply *out, int json)
{
	json_t *obj = NULL;
	int rc = 1;

	if (!json) {
		printf("%s\n", out->password);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	obj = json_pack("{s:s, s:I, s:I}", "password", out->password,
	    "expires_at", (json_int_t)out->expires_at, "validity_minutes",
	    (json_int_t)out->validity_minutes);
	if (obj == NULL || json_dumpf(obj, stdout, JSON_COMPACT) != 0)
		goto out;
	putchar('\n');
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	json_decref(obj);
	return rc;
}

int
scepctl_challenge(const struct scepctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
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
		case 'h':
			scepctl_challenge_usage(stdout);
			return 0;
		default:
			scepctl_challenge_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		scepctl_challenge_usage(stderr);
		return 2;
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
		rc = scepctl_print(reply->challenge_issue, json);
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
