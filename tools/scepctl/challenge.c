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

#include <ini.h>
#include <jansson.h>
#include <zmq.h>

#include "config.h"
#include "rpc.h"
#include "scepctl.h"

#define SCEPCTL_TIMEOUT_MS 5000

/* Only the one key scepctl needs; the frontend validates the rest. */
static int
scepctl_ini_endpoint(
    void *user, const char *section, const char *name, const char *value)
{
	char **endpoint = user;

	if (strcasecmp(section, "frontend") == 0 &&
	    strcasecmp(name, "ChallengeEndpoint") == 0) {
		free(*endpoint);
		*endpoint = strdup(value);
	}
	return 1;
}

/* ipc:// endpoints relative to the configuration's directory, as the
 * services resolve them; space separated. NULL on failure. */
static char *
scepctl_resolve_endpoints(const char *basedir, const char *value)
{
	char *copy = strdup(value), *tok, *save = NULL, *out = NULL, *path;
	size_t cap = strlen(value) * 2 + strlen(basedir) * 8 + 16, used = 0;

	if (copy == NULL || (out = calloc(1, cap)) == NULL)
		goto fail;
	for (tok = strtok_r(copy, " \t,", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,", &save)) {
		int n;

		if (strncmp(tok, "ipc://", 6) == 0) {
			if ((path = config_resolve_path(basedir, tok + 6)) ==
			    NULL)
				goto fail;
			n = snprintf(out + used, cap - used, "%sipc://%s",
			    used ? " " : "", path);
			free(path);
		} else
			n = snprintf(out + used, cap - used, "%s%s",
			    used ? " " : "", tok);
		if (n < 0 || (size_t)n >= cap - used)
			goto fail;
		used += n;
	}
	if (used == 0)
		goto fail;
	free(copy);
	return out;
fail:
	free(copy);
	free(out);
	return NULL;
}

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
	struct rpc_client *client = NULL;
	char *value = NULL, *endpoint = NULL;
	void *zmq_ctx = NULL;
	int c, json = 0, parse, e, rc = 1;

	optind = 1;
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
	if ((parse = ini_parse(ctl->conf, scepctl_ini_endpoint, &value)) < 0) {
		fprintf(stderr,
		    "scepctl: cannot read %s (is %s a scepd data directory? "
		    "see --data-dir)\n",
		    ctl->conf, ctl->data_dir);
		goto out;
	}
	if (parse > 0) {
		fprintf(stderr, "scepctl: %s: syntax error at line %d\n",
		    ctl->conf, parse);
		goto out;
	}
	if (value == NULL || value[0] == '\0') {
		fprintf(stderr,
		    "scepctl: %s: [frontend] ChallengeEndpoint is not set\n",
		    ctl->conf);
		goto out;
	}
	if ((endpoint = scepctl_resolve_endpoints(ctl->data_dir, value)) ==
	    NULL) {
		fprintf(stderr,
		    "scepctl: %s: [frontend] ChallengeEndpoint: cannot use "
		    "'%s'\n",
		    ctl->conf, value);
		goto out;
	}
	if ((zmq_ctx = zmq_ctx_new()) == NULL ||
	    (client = rpc_client_new(zmq_ctx, endpoint, "scepctl")) == NULL) {
		fprintf(stderr, "scepctl: cannot start ZeroMQ\n");
		goto out;
	}
	issue.issued_by = "scepctl";
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE;
	req.challenge_issue = &issue;
	e = rpc_call(client, &req, SCEPCTL_TIMEOUT_MS, &reply);
	if (e == RPC_ETIMEDOUT) {
		fprintf(stderr,
		    "scepctl: challenge service at %s did not answer; is "
		    "scepd running?\n",
		    endpoint);
		goto out;
	}
	if (e != RPC_OK) {
		fprintf(stderr, "scepctl: challenge service at %s: %s\n",
		    endpoint, rpc_strerror(e));
		goto out;
	}
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
	rpc_client_free(client);
	if (zmq_ctx != NULL)
		zmq_ctx_term(zmq_ctx);
	free(endpoint);
	free(value);
	return rc;
}
