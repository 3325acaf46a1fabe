/*
 * sandbox_probe: asks scepd-ca (a build with SCEPD_TEST_HOOKS) to try what
 * its sandbox forbids, once, without the retries of rpc_call(): a probe
 * that kills the CA must not kill its successor too.
 *
 *   sandbox_probe --endpoint ipc://DIR/run/ca.sock open|socket|setown|exec
 *                 [--timeout MS]
 * prints "errno N (text)" and exits 0 when the CA answered; 3 when it did
 * not answer within the timeout (default 3000 ms: it died, as it should
 * for socket and exec); 2 when it refused the request (a build without
 * the hook); 1 on other errors.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "rpc.h"

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"endpoint", required_argument, NULL, 'e'},
	    {"timeout", required_argument, NULL, 'T'},
	    {NULL, 0, NULL, 0},
	};
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__SandboxProbeRequest probe =
	    SCEP__V1__SANDBOX_PROBE_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	const char *endpoint = NULL;
	void *ctx = NULL, *sock = NULL;
	uint8_t *buf = NULL, in[65536];
	int timeout = 3000, zero = 0, ch, n, rc = 1;
	size_t len;

	while ((ch = getopt_long(argc, argv, "e:T:", opts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			endpoint = optarg;
			break;
		case 'T':
			timeout = atoi(optarg);
			break;
		default:
			return 1;
		}
	}
	if (endpoint == NULL || optind != argc - 1) {
		fprintf(stderr,
		    "usage: sandbox_probe --endpoint E "
		    "[--timeout MS] open|socket|setown|exec\n");
		return 1;
	}
	probe.what = argv[optind];
	req.id = (uint64_t)rpc_now_ms();
	req.deadline_ms = rpc_now_ms() + timeout;
	req.origin = "scepctl";
	req.body_case = SCEP__V1__REQUEST__BODY_SANDBOX_PROBE;
	req.sandbox_probe = &probe;
	len = scep__v1__request__get_packed_size(&req);
	if ((buf = malloc(len)) == NULL)
		goto out;
	scep__v1__request__pack(&req, buf);
	if ((ctx = zmq_ctx_new()) == NULL ||
	    (sock = zmq_socket(ctx, ZMQ_DEALER)) == NULL ||
	    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof(timeout)) !=
	        0 ||
	    zmq_connect(sock, endpoint) != 0 ||
	    zmq_send(sock, buf, len, 0) < 0) {
		fprintf(
		    stderr, "sandbox_probe: %s\n", zmq_strerror(zmq_errno()));
		goto out;
	}
	if ((n = zmq_recv(sock, in, sizeof(in), 0)) < 0) {
		printf("no answer within %d ms\n", timeout);
		rc = 3;
		goto out;
	}
	if ((size_t)n > sizeof(in) ||
	    (reply = scep__v1__reply__unpack(NULL, (size_t)n, in)) == NULL) {
		fprintf(stderr, "sandbox_probe: unreadable answer\n");
		goto out;
	}
	if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->body_case != SCEP__V1__REPLY__BODY_SANDBOX_PROBE) {
		printf("refused: %s\n", reply->error ? reply->error : "?");
		rc = 2;
		goto out;
	}
	printf("errno %d (%s)\n", reply->sandbox_probe->errno_value,
	    reply->sandbox_probe->error ? reply->sandbox_probe->error : "");
	rc = 0;
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	if (sock != NULL)
		zmq_close(sock);
	if (ctx != NULL)
		zmq_ctx_term(ctx);
	free(buf);
	return rc;
}
