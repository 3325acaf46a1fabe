/*
 * lib/rpc.c: request/reply over ZeroMQ. Replies match their request ids,
 * unknown kinds are refused, a dead or slow server gives RPC_ETIMEDOUT
 * (never a hang) and a late answer never passes for the next one.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "rpc.h"

static void *server_ctx;
static pthread_t server_thread;
static char endpoint[128];

/* GetCACaps answers "caps <n>" for the n-th call; the ca_ident "slow"
 * makes GetCACert sleep 600 ms first. */
static void
handle_caps(void *worker, const Scep__V1__Request *req, Scep__V1__Reply *reply,
    struct rpc_arena *arena)
{
	static int calls;
	Scep__V1__GetCACapsReply *body = rpc_alloc(arena, sizeof(*body));
	char text[32];

	(void)worker;
	(void)req;
	scep__v1__get_cacaps_reply__init(body);
	snprintf(text, sizeof(text), "caps %d", ++calls);
	body->caps = rpc_strdup(arena, text);
	reply->body_case = SCEP__V1__REPLY__BODY_GET_CA_CAPS;
	reply->get_ca_caps = body;
}

static void
handle_cacert(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	Scep__V1__GetCACertReply *body = rpc_alloc(arena, sizeof(*body));

	(void)worker;
	if (req->get_ca_cert->ca_ident != NULL &&
	    strcmp(req->get_ca_cert->ca_ident, "slow") == 0) {
		struct timespec ts = {0, 600 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	scep__v1__get_cacert_reply__init(body);
	body->content_type = rpc_strdup(arena,
	    req->get_ca_cert->ca_ident ? req->get_ca_cert->ca_ident : "none");
	reply->body_case = SCEP__V1__REPLY__BODY_GET_CA_CERT;
	reply->get_ca_cert = body;
}

static const struct rpc_route routes[] = {
    {SCEP__V1__REQUEST__BODY_GET_CA_CAPS, "caps", "test other", handle_caps},
    {SCEP__V1__REQUEST__BODY_GET_CA_CERT, "cacert", "test", handle_cacert},
    {0, NULL, NULL, NULL},
};

static void *
serve(void *arg)
{
	struct rpc_server_config config = {0};
	sigset_t term;

	(void)arg;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_UNBLOCK, &term, NULL);
	config.zmq_ctx = server_ctx;
	config.endpoint = endpoint;
	config.routes = routes;
	config.workers = 1;
	rpc_serve(&config);
	return NULL;
}

static int
setup(void **state)
{
	sigset_t block;

	(void)state;
	snprintf(endpoint, sizeof(endpoint),
	    "ipc:///tmp/scepd-test-rpc-%d.sock", (int)getpid());
	/* Only the server thread takes SIGTERM. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	server_ctx = zmq_ctx_new();
	pthread_create(&server_thread, NULL, serve, NULL);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	pthread_kill(server_thread, SIGTERM);
	pthread_join(server_thread, NULL);
	zmq_ctx_term(server_ctx);
	return 0;
}

static int
call_cacert(struct rpc_client *client, const char *ident, int timeout,
    Scep__V1__Reply **reply)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCACertRequest body = SCEP__V1__GET_CACERT_REQUEST__INIT;

	body.ca_ident = (char *)ident;
	req.body_case = SCEP__V1__REQUEST__BODY_GET_CA_CERT;
	req.get_ca_cert = &body;
	return rpc_call(client, &req, timeout, reply);
}

static void
test_round_trip(void **state)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCACapsRequest body = SCEP__V1__GET_CACAPS_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;

	(void)state;
	assert_non_null(client);
	req.body_case = SCEP__V1__REQUEST__BODY_GET_CA_CAPS;
	req.get_ca_caps = &body;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rpc_call(client, &req, 3000, &reply), RPC_OK);
		assert_int_equal(reply->id, req.id);
		assert_int_equal(reply->status, SCEP__V1__STATUS__STATUS_OK);
		assert_int_equal(
		    reply->body_case, SCEP__V1__REPLY__BODY_GET_CA_CAPS);
		assert_non_null(strstr(reply->get_ca_caps->caps, "caps "));
		scep__v1__reply__free_unpacked(reply, NULL);
	}
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

/* A kind of request the server has no route for is refused, not ignored. */
static void
test_no_route(void **state)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__SignRequest sign = SCEP__V1__SIGN_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;

	(void)state;
	sign.transaction_id = "t";
	req.body_case = SCEP__V1__REQUEST__BODY_SIGN;
	req.sign = &sign;
	assert_int_equal(rpc_call(client, &req, 3000, &reply), RPC_OK);
	assert_int_equal(reply->status, SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	scep__v1__reply__free_unpacked(reply, NULL);
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

/* A caller not listed for a route is refused: the route table is the
 * callee's authorization. "tes" and "testing" are not "test". */
static void
test_peer_not_allowed(void **state)
{
	static const char *const strangers[] = {
	    "frontend", "tes", "testing", ""};
	void *ctx = zmq_ctx_new();

	(void)state;
	for (size_t i = 0; i < sizeof(strangers) / sizeof(strangers[0]); i++) {
		struct rpc_client *client =
		    rpc_client_new(ctx, endpoint, strangers[i]);
		Scep__V1__Reply *reply = NULL;

		assert_int_equal(
		    call_cacert(client, "x", 3000, &reply), RPC_OK);
		assert_int_equal(
		    reply->status, SCEP__V1__STATUS__STATUS_BAD_REQUEST);
		assert_int_equal(
		    reply->body_case, SCEP__V1__REPLY__BODY__NOT_SET);
		scep__v1__reply__free_unpacked(reply, NULL);
		rpc_client_free(client);
	}
	zmq_ctx_term(ctx);
}

/* Nobody listening: the call returns a timeout, it does not hang. */
static void
test_dead_server_times_out(void **state)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client =
	    rpc_client_new(ctx, "ipc:///tmp/scepd-test-nobody.sock", "test");
	Scep__V1__Reply *reply = NULL;
	int64_t start = rpc_now_ms();

	(void)state;
	assert_int_equal(call_cacert(client, "x", 500, &reply), RPC_ETIMEDOUT);
	assert_null(reply);
	assert_true(rpc_now_ms() - start < 5000);
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

/* A slow answer arrives after the caller gave up; the next call must get
 * its own answer, never the stale one. */
static void
test_late_reply_is_dropped(void **state)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	Scep__V1__Reply *reply = NULL;
	struct timespec ts = {0, 800 * 1000 * 1000};

	(void)state;
	assert_int_equal(
	    call_cacert(client, "slow", 300, &reply), RPC_ETIMEDOUT);
	nanosleep(&ts, NULL); /* the server has answered by now */
	assert_int_equal(call_cacert(client, "fast", 3000, &reply), RPC_OK);
	assert_string_equal(reply->get_ca_cert->content_type, "fast");
	scep__v1__reply__free_unpacked(reply, NULL);
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_no_route),
	    cmocka_unit_test(test_peer_not_allowed),
	    cmocka_unit_test(test_dead_server_times_out),
	    cmocka_unit_test(test_late_reply_is_dropped),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
