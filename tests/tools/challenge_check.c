/*
 * challenge_check: sends one ChallengeCheckRequest to scepd-challenge, as
 * the RA would, so that a test can ask several at once without the
 * frontend and the RA in between (whose threads have limits of their own).
 *
 *   challenge_check --endpoint ipc://DIR/run/challenge.sock --password PW
 *                   --txid ID [--path /scep] [--timeout MS]
 * exit: 0 allowed (the validator printed), 2 refused (the reason printed),
 * 3 no answer before the timeout (default 10000 ms), 1 another error.
 * One attempt, as the RA's (rpc_call_once).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <zmq.h>

#include "rpc.h"

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"endpoint", required_argument, NULL, 'e'},
	    {"password", required_argument, NULL, 'p'},
	    {"txid", required_argument, NULL, 't'},
	    {"path", required_argument, NULL, 'P'},
	    {"timeout", required_argument, NULL, 'T'},
	    {NULL, 0, NULL, 0},
	};
	const char *endpoint = NULL, *password = NULL, *txid = NULL;
	const char *path = "/scep";
	int timeout = 10000, ch, e, rc = 1;
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeCheckRequest check =
	    SCEP__V1__CHALLENGE_CHECK_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	struct rpc_client *client = NULL;
	void *ctx = NULL;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			endpoint = optarg;
			break;
		case 'p':
			password = optarg;
			break;
		case 't':
			txid = optarg;
			break;
		case 'P':
			path = optarg;
			break;
		case 'T':
			timeout = atoi(optarg);
			break;
		default:
			return 1;
		}
	}
	if (endpoint == NULL || password == NULL || txid == NULL) {
		fprintf(stderr,
		    "usage: challenge_check --endpoint E "
		    "--password PW --txid ID [--path P]\n");
		return 1;
	}
	if ((ctx = zmq_ctx_new()) == NULL ||
	    (client = rpc_client_new(ctx, endpoint, "ra")) == NULL)
		goto out;
	check.password = (char *)password;
	check.transaction_id = (char *)txid;
	check.client_addr = "127.0.0.1";
	check.path = (char *)path;
	check.subject = "CN=challenge_check";
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_CHECK;
	req.challenge_check = &check;
	if ((e = rpc_call_once(client, &req, timeout, &reply)) != RPC_OK) {
		fprintf(stderr, "challenge_check: %s\n", rpc_strerror(e));
		rc = e == RPC_ETIMEDOUT ? 3 : 1;
		goto out;
	}
	if (reply->status == SCEP__V1__STATUS__STATUS_OK &&
	    reply->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_CHECK) {
		printf("allowed by %s\n",
		    reply->challenge_check->validator
		        ? reply->challenge_check->validator
		        : "?");
		rc = 0;
	} else {
		printf("refused (status %d): %s\n", reply->status,
		    reply->error ? reply->error : "");
		rc = reply->status == SCEP__V1__STATUS__STATUS_REFUSED ? 2 : 1;
	}
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	rpc_client_free(client);
	if (ctx != NULL)
		zmq_ctx_term(ctx);
	return rc;
}
