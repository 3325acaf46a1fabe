/*
 * lib/rpc.c: request/reply over ZeroMQ. Replies match their request ids,
 * unknown kinds are refused, as is an origin that is not one role a route
 * lists (a route's whole list of two is neither), a dead or slow server
 * gives RPC_ETIMEDOUT (never a hang) and a late answer never passes for
 * the next one; of several endpoints, one that is up but never answers is
 * skipped. A reply that holds a secret is wiped once sent.
 * Over ipc:// only root or the service's user may speak as scepctl or
 * scepd, and CallerUsers ties other names to users.
 * CurveZMQ: a server admits only listed client keys, names the caller by
 * its key (an origin that is not the key's name is refused), and the
 * start-up checks refuse bad key files and network endpoints without keys.
 * With several workers a request goes to an idle one, never queued behind
 * a slow request; a copy of a request (the same caller, id and bytes)
 * gets the first's answer, and another caller's request of that id and
 * bytes its own. With a batch handler, requests of its kind that wait
 * together are handed over in one call, each answered to its caller.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "clock.h"
#include "rpc.h"

static void *server_ctx;
static pthread_t server_thread;
static char endpoint[128];
static struct rpc_curve *server_curve; /* the CURVE group's server keys */
static int server_workers = 1; /* the "two workers" group: 2 */
static int server_keep_cacert; /* the "two workers" group: as the RA */
static int server_batches; /* the "batch" group: GetCACert in batches */
/* The table served; NULL: routes (below). */
static const struct rpc_route *server_routes;
static char key_dir[128];

/* GetCACaps answers "caps <n>" for the n-th call; the ca_ident "slow"
 * makes GetCACert sleep 600 ms first (counted in slow_calls), "slower"
 * 1200 ms; "secret" answers "a password", held as a secret. */
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

static atomic_int slow_calls; /* GetCACert "slow" handled */
static atomic_int slower_calls; /* GetCACert "slower" handled */

/* GetCACert "gate" waits until the test opens the gate (5 s at most). */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_waiting;

static void
gate_wait(void)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&gate_lock);
	gate_waiting++;
	while (!gate_open &&
	    pthread_cond_timedwait(&gate_cond, &gate_lock, &until) == 0)
		;
	gate_waiting--;
	pthread_mutex_unlock(&gate_lock);
}

static void
gate_set(int open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

/* Until `n` handlers wait at the gate. */
static void
gate_await(int n)
{
	int waiting;

	do {
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
		pthread_mutex_lock(&gate_lock);
		waiting = gate_waiting;
		pthread_mutex_unlock(&gate_lock);
	} while (waiting < n);
}

/* rpc_test_copy_hook, armed: the first two workers to pass wait for each
 * other (2 s at most), as two workers taking copies at the same moment. */
static atomic_int copy_hook_armed, copy_hook_passed;

#ifdef SCEPD_TEST_HOOKS
static void
copy_hook_meet(void)
{
	if (!atomic_load(&copy_hook_armed))
		return;
	if (atomic_fetch_add(&copy_hook_passed, 1) >= 2)
		return;
	for (int i = 0; i < 2000 && atomic_load(&copy_hook_passed) < 2; i++)
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
}
#endif

static void
handle_cacert(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	Scep__V1__GetCACertReply *body = rpc_alloc(arena, sizeof(*body));

	(void)worker;
	if (req->get_ca_cert->ca_ident != NULL &&
	    strcmp(req->get_ca_cert->ca_ident, "slow") == 0) {
		struct timespec ts = {0, 600 * 1000 * 1000};

		atomic_fetch_add(&slow_calls, 1);
		nanosleep(&ts, NULL);
	}
	if (req->get_ca_cert->ca_ident != NULL &&
	    strcmp(req->get_ca_cert->ca_ident, "slower") == 0) {
		atomic_fetch_add(&slower_calls, 1);
		nanosleep(&(struct timespec){1, 200 * 1000 * 1000}, NULL);
	}
	if (req->get_ca_cert->ca_ident != NULL &&
	    strcmp(req->get_ca_cert->ca_ident, "gate") == 0)
		gate_wait();
	scep__v1__get_cacert_reply__init(body);
	if (req->get_ca_cert->ca_ident != NULL &&
	    strcmp(req->get_ca_cert->ca_ident, "secret") == 0)
		body->content_type = rpc_strdup_secret(arena, "a password");
	else
		body->content_type = rpc_strdup(arena,
		    req->get_ca_cert->ca_ident ? req->get_ca_cert->ca_ident
		                               : "none");
	reply->body_case = SCEP__V1__REPLY__BODY_GET_CA_CERT;
	reply->get_ca_cert = body;
}

/* GetCACert in batches: content_type "IDENT, I of N" for the Ith of N
 * handed over together; two answered per call at most (the rest is handed
 * over again); a batch that starts with "slow" sleeps 600 ms, "slower"
 * 1200 ms. */
static int batch_saw_late; /* the handler was given "late" */

static size_t
handle_cacert_batch(void *worker, struct rpc_batch_item *items, size_t n)
{
	const char *first = items[0].req->get_ca_cert->ca_ident;

	for (size_t i = 0; i < n; i++) {
		const char *ident = items[i].req->get_ca_cert->ca_ident;

		if (ident != NULL && strcmp(ident, "late") == 0)
			batch_saw_late = 1;
	}

	if (first != NULL && strcmp(first, "slow") == 0)
		nanosleep(&(struct timespec){0, 600 * 1000 * 1000}, NULL);
	if (first != NULL && strcmp(first, "slower") == 0)
		nanosleep(&(struct timespec){1, 200 * 1000 * 1000}, NULL);
	for (size_t i = 0; i < n && i < 2; i++) {
		Scep__V1__GetCACertReply *body =
		    rpc_alloc(items[i].arena, sizeof(*body));
		const char *ident = items[i].req->get_ca_cert->ca_ident;
		char text[64];

		(void)worker;
		scep__v1__get_cacert_reply__init(body);
		snprintf(text, sizeof(text), "%s, %zu of %zu",
		    ident ? ident : "none", i + 1, n);
		body->content_type = rpc_strdup(items[i].arena, text);
		items[i].reply->body_case = SCEP__V1__REPLY__BODY_GET_CA_CERT;
		items[i].reply->get_ca_cert = body;
	}
	return n < 2 ? n : 2;
}

/* GetNextCACert: a request of another kind than the batch's that takes
 * 600 ms; counts its calls. */
static atomic_int next_calls;

static void
handle_next_slowly(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	Scep__V1__GetNextCACertReply *body = rpc_alloc(arena, sizeof(*body));

	(void)worker;
	(void)req;
	atomic_fetch_add(&next_calls, 1);
	nanosleep(&(struct timespec){0, 600 * 1000 * 1000}, NULL);
	scep__v1__get_next_cacert_reply__init(body);
	reply->body_case = SCEP__V1__REPLY__BODY_GET_NEXT_CA_CERT;
	reply->get_next_ca_cert = body;
}

static const struct rpc_route routes[] = {
    {SCEP__V1__REQUEST__BODY_GET_CA_CAPS, "caps", "test other", handle_caps},
    {SCEP__V1__REQUEST__BODY_GET_CA_CERT, "cacert", "test", handle_cacert},
    {SCEP__V1__REQUEST__BODY_GET_NEXT_CA_CERT, "next", "test",
        handle_next_slowly},
    /* As the services' (the launcher, the operator, the own key). */
    {SCEP__V1__REQUEST__BODY_HEALTH, "health",
        "test scepd scepctl " RPC_PEER_SELF, rpc_handle_health},
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
	config.routes = server_routes != NULL ? server_routes : routes;
	config.workers = server_workers;
	if (server_keep_cacert)
		config.keep_body = SCEP__V1__REQUEST__BODY_GET_CA_CERT;
	config.curve = server_curve;
	if (server_batches) {
		config.batch_body = SCEP__V1__REQUEST__BODY_GET_CA_CERT;
		config.batch = handle_cacert_batch;
	}
	rpc_serve(&config);
	return NULL;
}

static int
setup(void **state)
{
	sigset_t block;

	(void)state;
	if (strncmp(endpoint, "tcp://", 6) != 0) /* setup_tcp's stays */
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
		assert_int_equal(rpc_client_copies(client), 1);
		assert_int_equal(
		    reply->status, SCEP__V1__STATUS__STATUS_BAD_REQUEST);
		assert_int_equal(
		    reply->body_case, SCEP__V1__REPLY__BODY__NOT_SET);
		scep__v1__reply__free_unpacked(reply, NULL);
		rpc_client_free(client);
	}
	zmq_ctx_term(ctx);
}

/* GetCACaps (route "test other") as `origin`: the reply's status. */
static int
caps_status(void *ctx, const char *origin)
{
	struct rpc_client *client = rpc_client_new(ctx, endpoint, origin);
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCACapsRequest body = SCEP__V1__GET_CACAPS_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	int status;

	assert_non_null(client);
	req.body_case = SCEP__V1__REQUEST__BODY_GET_CA_CAPS;
	req.get_ca_caps = &body;
	assert_int_equal(rpc_call(client, &req, 3000, &reply), RPC_OK);
	status = reply->status;
	if (status != SCEP__V1__STATUS__STATUS_OK)
		assert_int_equal(
		    reply->body_case, SCEP__V1__REPLY__BODY__NOT_SET);
	scep__v1__reply__free_unpacked(reply, NULL);
	rpc_client_free(client);
	return status;
}

/* An origin is one role: a route's list of two ("test other") admits
 * each alone, never the list itself, a part of it with spaces, nor
 * either with other characters around it. */
static void
test_origin_is_one_role(void **state)
{
	static const char *const refused[] = {"test other", " other", "other ",
	    "test\tother", "test  other", "other\n", "test,other"};
	void *ctx = zmq_ctx_new();

	(void)state;
	assert_int_equal(caps_status(ctx, "test"), SCEP__V1__STATUS__STATUS_OK);
	assert_int_equal(
	    caps_status(ctx, "other"), SCEP__V1__STATUS__STATUS_OK);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		assert_int_equal(caps_status(ctx, refused[i]),
		    SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	zmq_ctx_term(ctx);
}

static int
call_health(struct rpc_client *client, int timeout, Scep__V1__Reply **reply);

/* Without CURVE "self" (the service's own key's name) is no name a caller
 * may declare: anyone reaching the socket could. */
static void
test_self_needs_the_key(void **state)
{
	void *ctx = zmq_ctx_new();
	const char *origins[] = {"test", RPC_PEER_SELF};

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct rpc_client *client =
		    rpc_client_new(ctx, endpoint, origins[i]);
		Scep__V1__Reply *reply = NULL;

		assert_non_null(client);
		assert_int_equal(call_health(client, 3000, &reply), RPC_OK);
		assert_int_equal(reply->status,
		    i == 0 ? SCEP__V1__STATUS__STATUS_OK
		           : SCEP__V1__STATUS__STATUS_BAD_REQUEST);
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

/* A service that is up but never answers (a ROUTER that does not read:
 * its workers all stuck), bound at ipc:///tmp/scepd-test-rpc-NAME-PID.sock
 * written into `endpoint`. */
static void *
stuck_service(void *ctx, const char *name, char *endpoint, size_t len)
{
	void *stuck = zmq_socket(ctx, ZMQ_ROUTER);
	int zero = 0;

	assert_non_null(stuck);
	snprintf(endpoint, len, "ipc:///tmp/scepd-test-rpc-%s-%d.sock", name,
	    (int)getpid());
	zmq_setsockopt(stuck, ZMQ_LINGER, &zero, sizeof(zero));
	assert_int_equal(zmq_bind(stuck, endpoint), 0);
	return stuck;
}

/*
 * Of two endpoints, the first is up but never answers (a ROUTER that
 * does not read: a service whose workers are all stuck). Every call is
 * answered by the other: an attempt that got no answer is sent again
 * elsewhere, and calls then leave the stuck one aside. When each attempt
 * went to whichever connection finished its handshake first, about half
 * of the calls timed out.
 */
static void
test_stuck_endpoint_is_skipped(void **state)
{
	void *ctx = zmq_ctx_new();
	char stuck_endpoint[128], both[300];
	void *stuck =
	    stuck_service(ctx, "stuck", stuck_endpoint, sizeof(stuck_endpoint));
	struct rpc_client *client;

	(void)state;
	snprintf(both, sizeof(both), "%s %s", stuck_endpoint, endpoint);
	client = rpc_client_new(ctx, both, "test");
	assert_non_null(client);
	for (int i = 0; i < 10; i++) {
		Scep__V1__Reply *reply = NULL;

		assert_int_equal(
		    call_cacert(client, "answered", 1500, &reply), RPC_OK);
		assert_string_equal(
		    reply->get_ca_cert->content_type, "answered");
		scep__v1__reply__free_unpacked(reply, NULL);
	}
	rpc_client_free(client);
	zmq_close(stuck);
	zmq_ctx_term(ctx);
	unlink(stuck_endpoint + 6);
}

#ifdef SCEPD_TEST_HOOKS
static int64_t wall_step_ms;

/* Steps the wall clock by wall_step_ms 200 ms from now. */
static void *
wall_clock_step(void *arg)
{
	struct timespec ts = {0, 200 * 1000 * 1000};

	(void)arg;
	nanosleep(&ts, NULL);
	rpc_test_wall_offset_ms = wall_step_ms;
	return NULL;
}

/*
 * A call waits its timeout by the monotonic clock: the system's clock
 * stepped 20 s back during a call to a service that never answers does
 * not stretch the wait by 20 s (the frontend's threads held past
 * RPCTimeout), nor does a step forward cut it short.
 */
static void
test_wall_clock_step(void **state)
{
	void *ctx = zmq_ctx_new();
	char stuck_endpoint[128];
	void *stuck =
	    stuck_service(ctx, "step", stuck_endpoint, sizeof(stuck_endpoint));
	struct rpc_client *client;

	(void)state;
	client = rpc_client_new(ctx, stuck_endpoint, "test");
	assert_non_null(client);
	for (int i = 0; i < 2; i++) {
		Scep__V1__Reply *reply = NULL;
		pthread_t step;
		int64_t start = clock_monotonic_ms(), took;

		wall_step_ms = i == 0 ? -20000 : 20000;
		assert_int_equal(
		    pthread_create(&step, NULL, wall_clock_step, NULL), 0);
		assert_int_equal(
		    call_cacert(client, "x", 1000, &reply), RPC_ETIMEDOUT);
		took = clock_monotonic_ms() - start;
		pthread_join(step, NULL);
		rpc_test_wall_offset_ms = 0;
		print_message("clock stepped %+d s: the call gave up after "
		              "%lld ms (timeout 1000)\n",
		    (int)(wall_step_ms / 1000), (long long)took);
		assert_true(took >= 950 && took < 3000);
	}
	rpc_client_free(client);
	zmq_close(stuck);
	zmq_ctx_term(ctx);
	unlink(stuck_endpoint + 6);
}

static atomic_int wiped_replies, unwiped_replies;

static void
count_wiped(const void *data, size_t size)
{
	const unsigned char *p = data;
	size_t i = 0;

	while (i < size && p[i] == 0)
		i++;
	if (size > 0 && i == size)
		atomic_fetch_add(&wiped_replies, 1);
	else
		atomic_fetch_add(&unwiped_replies, 1);
}
#endif

/*
 * A reply that holds a secret (rpc_adopt_secret) is wiped once sent: the
 * buffer libzmq frees is the packed reply, and it is zeroed first. It
 * was copied into one of libzmq's own, freed as it was.
 */
static void
assert_secret_reply_wiped(void)
{
#ifdef SCEPD_TEST_HOOKS
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	Scep__V1__Reply *reply = NULL;

	assert_non_null(client);
	atomic_store(&wiped_replies, 0);
	atomic_store(&unwiped_replies, 0);
	rpc_test_wiped_hook = count_wiped;
	assert_int_equal(call_cacert(client, "plain", 3000, &reply), RPC_OK);
	scep__v1__reply__free_unpacked(reply, NULL);
	assert_int_equal(call_cacert(client, "secret", 3000, &reply), RPC_OK);
	assert_string_equal(reply->get_ca_cert->content_type, "a password");
	scep__v1__reply__free_unpacked(reply, NULL);
	/* Freed by libzmq's I/O thread once written, maybe after the
	 * caller read it. */
	for (int i = 0; i < 2000 && atomic_load(&wiped_replies) == 0; i++)
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
	rpc_test_wiped_hook = NULL;
	assert_int_equal(atomic_load(&wiped_replies), 1);
	assert_int_equal(atomic_load(&unwiped_replies), 0);
	rpc_client_free(client);
	zmq_ctx_term(ctx);
#else
	skip();
#endif
}

/* Answered in the thread that listens. */
static void
test_secret_reply_is_wiped(void **state)
{
	(void)state;
	assert_secret_reply_wiped();
}

/* --- CurveZMQ ---------------------------------------------------------- */

/* KEY_DIR/NAME.pub (0644) and KEY_DIR/NAME.key (0600), as scepctl keygen
 * writes them. */
static void
write_keypair(const char *name)
{
	char pub[41], sec[41], path[256];
	FILE *f;

	assert_int_equal(zmq_curve_keypair(pub, sec), 0);
	snprintf(path, sizeof(path), "%s/%s.pub", key_dir, name);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "%s\n", pub);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.key", key_dir, name);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "# CurveZMQ secret key of %s\n%s\n", name, sec);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
}

static char *
key_path(const char *file)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", key_dir, file);
	return p;
}

/* The keys of a service whose configuration file sits in key_dir. */
static struct rpc_curve *
load_curve(const char *secret, const char *public, const char *clients,
    int insecure, const char *listen)
{
	struct rpc_curve_settings s = {(char *)(secret ? secret : ""),
	    (char *)(public ? public : ""), (char *)(clients ? clients : ""),
	    insecure, NULL};

	return rpc_curve_load(&s, listen, key_path("test.conf"), "test");
}

/* Server: key "server", admitting "test" (key a) and "other" (key b);
 * "stranger" is a well-formed key nobody listed. */
static const char *curve_clients = "test:a.pub other:b.pub";

static int
curve_setup(void **state)
{
	sigset_t block;

	(void)state;
	snprintf(key_dir, sizeof(key_dir), "/tmp/scepd-test-rpc-keys-%d",
	    (int)getpid());
	mkdir(key_dir, 0700);
	write_keypair("server");
	write_keypair("a");
	write_keypair("b");
	write_keypair("stranger");
	snprintf(endpoint, sizeof(endpoint),
	    "ipc:///tmp/scepd-test-rpc-curve-%d.sock", (int)getpid());
	server_curve =
	    load_curve("server.key", "server.pub", curve_clients, 0, endpoint);
	if (server_curve == NULL)
		return -1;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	server_ctx = zmq_ctx_new();
	pthread_create(&server_thread, NULL, serve, NULL);
	return 0;
}

static int
curve_teardown(void **state)
{
	static const char *const files[] = {"server", "a", "b", "stranger"};
	char path[256];

	teardown(state);
	rpc_curve_free(server_curve);
	server_curve = NULL;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s.pub", key_dir, files[i]);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s.key", key_dir, files[i]);
		unlink(path);
	}
	unlink(key_path("bad.key"));
	unlink(key_path("garbage.pub"));
	rmdir(key_dir);
	return 0;
}

/* A client with key pair `own` that trusts `server_pub` as the server. */
struct curve_client {
	void *ctx;
	struct rpc_curve *curve;
	struct rpc_link *link;
	struct rpc_client *client;
};

static void
curve_client_open(struct curve_client *cc, const char *own,
    const char *server_pub, const char *origin)
{
	char secret[64];

	memset(cc, 0, sizeof(*cc));
	cc->ctx = zmq_ctx_new();
	snprintf(secret, sizeof(secret), "%s.key", own);
	assert_non_null(cc->curve = load_curve(secret, NULL, NULL, 0, NULL));
	assert_non_null(
	    cc->link = rpc_link_new(cc->curve, endpoint, server_pub,
	        key_path("test.conf"), "test", "Endpoint", "ServerKey"));
	assert_non_null(
	    cc->client = rpc_client_new_link(cc->ctx, cc->link, origin));
}

static void
curve_client_close(struct curve_client *cc)
{
	rpc_client_free(cc->client);
	rpc_link_free(cc->link);
	rpc_curve_free(cc->curve);
	zmq_ctx_term(cc->ctx);
}

static int
call_caps(struct rpc_client *client, int timeout, Scep__V1__Reply **reply)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCACapsRequest body = SCEP__V1__GET_CACAPS_REQUEST__INIT;

	req.body_case = SCEP__V1__REQUEST__BODY_GET_CA_CAPS;
	req.get_ca_caps = &body;
	return rpc_call(client, &req, timeout, reply);
}

/* A listed key is admitted and answered, time after time. */
static void
test_curve_admits_listed_key(void **state)
{
	struct curve_client cc;
	Scep__V1__Reply *reply = NULL;

	(void)state;
	curve_client_open(&cc, "a", "server.pub", "test");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    call_cacert(cc.client, "curve", 3000, &reply), RPC_OK);
		assert_int_equal(reply->status, SCEP__V1__STATUS__STATUS_OK);
		assert_string_equal(reply->get_ca_cert->content_type, "curve");
		scep__v1__reply__free_unpacked(reply, NULL);
	}
	curve_client_close(&cc);
}

/* A well-formed key nobody listed gets nothing, whatever it declares; so
 * does a client without CURVE, and one that expects another server key. */
static void
test_curve_refuses_unlisted_key(void **state)
{
	struct curve_client cc;
	Scep__V1__Reply *reply = NULL;
	void *ctx;
	struct rpc_client *plain;
	int64_t start = rpc_now_ms();

	(void)state;
	curve_client_open(&cc, "stranger", "server.pub", "test");
	assert_int_equal(
	    call_cacert(cc.client, "x", 800, &reply), RPC_ETIMEDOUT);
	assert_null(reply);
	curve_client_close(&cc);

	ctx = zmq_ctx_new();
	assert_non_null(plain = rpc_client_new(ctx, endpoint, "test"));
	assert_int_equal(call_cacert(plain, "x", 800, &reply), RPC_ETIMEDOUT);
	assert_null(reply);
	rpc_client_free(plain);
	zmq_ctx_term(ctx);

	/* A listed key talking to a server that is not who it expects. */
	curve_client_open(&cc, "a", "stranger.pub", "test");
	assert_int_equal(
	    call_cacert(cc.client, "x", 800, &reply), RPC_ETIMEDOUT);
	assert_null(reply);
	curve_client_close(&cc);
	assert_true(rpc_now_ms() - start < 10000);
}

/* With CURVE the key's name is the caller: it must be listed for the
 * route and be the origin the request declares. */
static void
test_curve_origin_is_the_key_name(void **state)
{
	static const struct {
		const char *key, *origin;
		int cacert_ok, caps_ok;
	} cases[] = {
	    {"a", "test", 1, 1}, /* "test": both routes */
	    {"b", "other", 0, 1}, /* "other": caps only */
	    {"b", "test", 0, 0}, /* other's key claiming to be test */
	    {"a", "other", 0, 0}, /* test's key claiming to be other */
	    {"a", "", 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct curve_client cc;
		Scep__V1__Reply *reply = NULL;

		curve_client_open(
		    &cc, cases[i].key, "server.pub", cases[i].origin);
		assert_int_equal(
		    call_cacert(cc.client, "x", 3000, &reply), RPC_OK);
		assert_int_equal(reply->status,
		    cases[i].cacert_ok ? SCEP__V1__STATUS__STATUS_OK
		                       : SCEP__V1__STATUS__STATUS_BAD_REQUEST);
		scep__v1__reply__free_unpacked(reply, NULL);
		assert_int_equal(call_caps(cc.client, 3000, &reply), RPC_OK);
		assert_int_equal(reply->status,
		    cases[i].caps_ok ? SCEP__V1__STATUS__STATUS_OK
		                     : SCEP__V1__STATUS__STATUS_BAD_REQUEST);
		scep__v1__reply__free_unpacked(reply, NULL);
		curve_client_close(&cc);
	}
}

static int
call_health(struct rpc_client *client, int timeout, Scep__V1__Reply **reply)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__HealthRequest body = SCEP__V1__HEALTH_REQUEST__INIT;

	req.body_case = SCEP__V1__REQUEST__BODY_HEALTH;
	req.health = &body;
	return rpc_call(client, &req, timeout, reply);
}

/* A client holding the server's own pair (scepctl health beside it) is
 * admitted as "self", which asks a liveness check and nothing else; it
 * cannot speak as a listed client. */
static void
test_curve_own_key_is_health_only(void **state)
{
	struct curve_client cc;
	Scep__V1__Reply *reply = NULL;

	(void)state;
	curve_client_open(&cc, "server", "server.pub", RPC_PEER_SELF);
	assert_int_equal(call_health(cc.client, 3000, &reply), RPC_OK);
	assert_int_equal(reply->status, SCEP__V1__STATUS__STATUS_OK);
	assert_int_equal(reply->body_case, SCEP__V1__REPLY__BODY_HEALTH);
	scep__v1__reply__free_unpacked(reply, NULL);
	assert_int_equal(call_cacert(cc.client, "x", 3000, &reply), RPC_OK);
	assert_int_equal(reply->status, SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	scep__v1__reply__free_unpacked(reply, NULL);
	assert_int_equal(call_caps(cc.client, 3000, &reply), RPC_OK);
	assert_int_equal(reply->status, SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	scep__v1__reply__free_unpacked(reply, NULL);
	curve_client_close(&cc);

	/* The own key declaring a listed client's name. */
	curve_client_open(&cc, "server", "server.pub", "test");
	assert_int_equal(call_caps(cc.client, 3000, &reply), RPC_OK);
	assert_int_equal(reply->status, SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	scep__v1__reply__free_unpacked(reply, NULL);
	assert_int_equal(call_health(cc.client, 3000, &reply), RPC_OK);
	assert_int_equal(reply->status, SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	scep__v1__reply__free_unpacked(reply, NULL);
	curve_client_close(&cc);

	/* Another key declaring "self" is not the server. */
	curve_client_open(&cc, "b", "server.pub", RPC_PEER_SELF);
	assert_int_equal(call_health(cc.client, 3000, &reply), RPC_OK);
	assert_int_equal(reply->status, SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	scep__v1__reply__free_unpacked(reply, NULL);
	curve_client_close(&cc);
}

/* Start-up checks: what a service must refuse before serving. */
static void
test_curve_start_up_checks(void **state)
{
	struct rpc_curve *c, *own;
	struct rpc_link *link;
	char key[RPC_KEY_LEN + 1], err[512];
	FILE *f;

	(void)state;
	/* A secret key others may read. */
	assert_non_null(f = fopen(key_path("bad.key"), "w"));
	fclose(f);
	assert_int_equal(chmod(key_path("a.key"), 0640), 0);
	assert_int_equal(
	    rpc_key_read(key_path("a.key"), 1, key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0640"));
	assert_null(load_curve("a.key", NULL, NULL, 0, NULL));
	assert_int_equal(chmod(key_path("a.key"), 0600), 0);
	assert_int_equal(
	    rpc_key_read(key_path("a.key"), 1, key, err, sizeof(err)), 0);
	/* Not a key; a public key that is not the pair's; a bad list. */
	assert_non_null(f = fopen(key_path("garbage.pub"), "w"));
	fprintf(f, "not a key\n");
	fclose(f);
	assert_null(load_curve("a.key", "garbage.pub", NULL, 0, NULL));
	assert_null(load_curve("a.key", "b.pub", NULL, 0, NULL));
	assert_null(load_curve("server.key", NULL, "a.pub", 0, NULL));
	assert_null(load_curve("server.key", NULL, "x:garbage.pub", 0, NULL));
	assert_null(load_curve(NULL, NULL, "test:a.pub", 0, NULL));
	assert_null(load_curve("server.key", NULL, "t:a.pub u:a.pub", 0, NULL));
	/* "self" is the own key's name, no client's; nor is the own key
	 * a client's, under any name. */
	assert_null(load_curve("server.key", NULL, "self:a.pub", 0, NULL));
	assert_null(load_curve("server.key", NULL, "x:server.pub", 0, NULL));
	assert_non_null(c = load_curve("a.key", NULL, "x:server.pub", 0, NULL));
	rpc_curve_free(c);
	assert_non_null(c = load_curve("a.key", "a.pub", NULL, 0, NULL));
	rpc_curve_free(c);

	/* tcp:// served without CURVE: refused unless insecure is allowed;
	 * ipc:// needs nothing. */
	assert_null(load_curve(NULL, NULL, NULL, 0, "tcp://127.0.0.1:5555"));
	assert_non_null(
	    c = load_curve(NULL, NULL, NULL, 1, "tcp://127.0.0.1:5555"));
	rpc_curve_free(c);
	assert_non_null(
	    c = load_curve("server.key", NULL, "t:a.pub", 0, "tcp://*:5555"));
	rpc_curve_free(c);
	assert_non_null(c = load_curve(NULL, NULL, NULL, 0, "ipc://x.sock"));
	rpc_curve_free(c);

	/* CallerUsers: NAME:USER pairs of users that exist, each name once. */
	{
		struct rpc_curve_settings cs = {"", "", "", 0, NULL};
		static const char *const bad[] = {"ra", "ra:", ":root",
		    "r a:root", "ra:no-such-user-scepd", "ra:root ra:root"};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			cs.caller_users = (char *)bad[i];
			assert_null(c = rpc_curve_load(&cs, "ipc://x.sock",
			                key_path("test.conf"), "test"));
		}
		cs.caller_users = "ra:root frontend:root";
		assert_non_null(c = rpc_curve_load(&cs, "ipc://x.sock",
		                    key_path("test.conf"), "test"));
		rpc_curve_free(c);
	}

	/* Reaching tcp:// without the server's key: refused unless insecure
	 * is allowed; a server key needs our own pair; key files are one
	 * for all endpoints or one each. */
	assert_non_null(own = load_curve(NULL, NULL, NULL, 0, NULL));
	assert_null(rpc_link_new(own, "ipc://x.sock tcp://127.0.0.1:5555", "",
	    key_path("test.conf"), "test", "Endpoint", "ServerKey"));
	assert_null(rpc_link_new(own, "tcp://127.0.0.1:5555", "server.pub",
	    key_path("test.conf"), "test", "Endpoint", "ServerKey"));
	assert_non_null(
	    link = rpc_link_new(own, "ipc://x.sock", "", key_path("test.conf"),
	        "test", "Endpoint", "ServerKey"));
	rpc_link_free(link);
	rpc_curve_free(own);
	assert_non_null(own = load_curve(NULL, NULL, NULL, 1, NULL));
	assert_non_null(
	    link = rpc_link_new(own, "tcp://127.0.0.1:5555", "",
	        key_path("test.conf"), "test", "Endpoint", "ServerKey"));
	rpc_link_free(link);
	rpc_curve_free(own);
	assert_non_null(own = load_curve("a.key", NULL, NULL, 0, NULL));
	assert_non_null(
	    link = rpc_link_new(own,
	        "tcp://127.0.0.1:5555 tcp://127.0.0.1:5556", "server.pub b.pub",
	        key_path("test.conf"), "test", "Endpoint", "ServerKey"));
	rpc_link_free(link);
	assert_null(
	    rpc_link_new(own, "tcp://127.0.0.1:5555 tcp://127.0.0.1:5556",
	        "server.pub b.pub a.pub", key_path("test.conf"), "test",
	        "Endpoint", "ServerKey"));
	rpc_curve_free(own);
}

/* GetCACert (ca_ident `ident`) from a thread of its own: its status and
 * answer ("status N" when refused). */
struct cacert_call {
	void *ctx;
	const char *ident, *origin;
	int rc;
	char answer[64];
	int timeout_ms;
};

static void *
call_in_thread(void *arg)
{
	struct cacert_call *c = arg;
	struct rpc_client *client = rpc_client_new(c->ctx, endpoint, c->origin);
	Scep__V1__Reply *reply = NULL;

	c->rc = -1;
	if (client != NULL &&
	    (c->rc = call_cacert(client, c->ident, c->timeout_ms, &reply)) ==
	        RPC_OK) {
		if (reply->status != SCEP__V1__STATUS__STATUS_OK)
			snprintf(c->answer, sizeof(c->answer), "status %d",
			    (int)reply->status);
		else if (reply->body_case != SCEP__V1__REPLY__BODY_GET_CA_CERT)
			snprintf(c->answer, sizeof(c->answer), "no answer");
		else
			snprintf(c->answer, sizeof(c->answer), "%s",
			    reply->get_ca_cert->content_type);
		scep__v1__reply__free_unpacked(reply, NULL);
	}
	rpc_client_free(client);
	return NULL;
}

/* --- two workers --------------------------------------------------- */

static int
setup_two_workers(void **state)
{
	server_workers = 2;
	server_keep_cacert = 1;
#ifdef SCEPD_TEST_HOOKS
	rpc_test_copy_hook = copy_hook_meet;
#endif
	return setup(state);
}

static int
teardown_two_workers(void **state)
{
	int rc = teardown(state);

#ifdef SCEPD_TEST_HOOKS
	rpc_test_copy_hook = NULL;
#endif
	server_workers = 1;
	server_keep_cacert = 0;
	return rc;
}

static void *
call_slow(void *arg)
{
	void *ctx = arg;
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	Scep__V1__Reply *reply = NULL;

	if (client != NULL &&
	    call_cacert(client, "slow", 3000, &reply) == RPC_OK)
		scep__v1__reply__free_unpacked(reply, NULL);
	rpc_client_free(client);
	return NULL;
}

static int64_t
elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - since->tv_sec) * 1000 +
	    (now.tv_nsec - since->tv_nsec) / 1000000;
}

/*
 * One worker is busy with a slow request (600 ms); two quick requests in a
 * row are both answered by the idle one at once. Dealt out in turn, the
 * second would wait for the slow one.
 */
static void
test_idle_worker_takes_the_request(void **state)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	struct timespec t0, t;
	Scep__V1__Reply *reply = NULL;
	pthread_t slow;

	(void)state;
	assert_non_null(client);
	/* Both workers up and connected. */
	assert_int_equal(call_cacert(client, "warm", 3000, &reply), RPC_OK);
	scep__v1__reply__free_unpacked(reply, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pthread_create(&slow, NULL, call_slow, ctx), 0);
	nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
	for (int i = 0; i < 2; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		assert_int_equal(
		    call_cacert(client, "quick", 3000, &reply), RPC_OK);
		assert_string_equal(reply->get_ca_cert->content_type, "quick");
		scep__v1__reply__free_unpacked(reply, NULL);
		/* Well before the slow one ends (t0 + 600 ms). */
		assert_true(elapsed_ms(&t) < 250);
	}
	assert_true(elapsed_ms(&t0) < 550);
	pthread_join(slow, NULL);
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

/*
 * A request that waited for a worker past its deadline is dropped, and the
 * worker that dropped it is idle again. Both workers busy (600 ms), a
 * request given 300 ms (and the copies its caller sends again) waits and
 * is dropped by each worker in turn; then one worker busy again, a quick
 * request is answered at once by the other. A worker that said nothing
 * after a dropped request was never given another: the quick one waited
 * behind the slow one, or for ever.
 */
static void
test_worker_idle_again_after_a_dropped_request(void **state)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	struct cacert_call late = {ctx, "late", "test", 0, "", 300};
	struct timespec t;
	Scep__V1__Reply *reply = NULL;
	pthread_t slow[2], late_thread;

	(void)state;
	assert_non_null(client);
	assert_int_equal(call_cacert(client, "warm", 3000, &reply), RPC_OK);
	scep__v1__reply__free_unpacked(reply, NULL);
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    pthread_create(&slow[i], NULL, call_slow, ctx), 0);
	nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
	assert_int_equal(
	    pthread_create(&late_thread, NULL, call_in_thread, &late), 0);
	pthread_join(late_thread, NULL);
	assert_int_equal(late.rc, RPC_ETIMEDOUT);
	for (int i = 0; i < 2; i++)
		pthread_join(slow[i], NULL);
	/* The workers have dropped what waited (at 600 ms). */
	nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
	assert_int_equal(pthread_create(&slow[0], NULL, call_slow, ctx), 0);
	nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t);
	assert_int_equal(call_cacert(client, "quick", 3000, &reply), RPC_OK);
	assert_string_equal(reply->get_ca_cert->content_type, "quick");
	scep__v1__reply__free_unpacked(reply, NULL);
	assert_true(elapsed_ms(&t) < 250);
	pthread_join(slow[0], NULL);
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

/*
 * A caller sends its request again on a fresh socket when it had no answer
 * after a third of its time (1500 ms: at 500 ms). The copy comes while
 * the first is handled (600 ms): it is not handled again by the idle
 * worker, and the first's answer reaches the caller at about 600 ms.
 * Handled twice, the answer would come at about 1100 ms (the first's went
 * to the closed socket).
 */
static void
test_copy_of_a_request_in_hand_is_answered_once(void **state)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	struct timespec t;
	Scep__V1__Reply *reply = NULL;
	int before;

	(void)state;
	assert_non_null(client);
	assert_int_equal(call_cacert(client, "warm", 3000, &reply), RPC_OK);
	scep__v1__reply__free_unpacked(reply, NULL);
	before = atomic_load(&slow_calls);
	clock_gettime(CLOCK_MONOTONIC, &t);
	assert_int_equal(call_cacert(client, "slow", 1500, &reply), RPC_OK);
	assert_string_equal(reply->get_ca_cert->content_type, "slow");
	scep__v1__reply__free_unpacked(reply, NULL);
	assert_int_equal(atomic_load(&slow_calls) - before, 1);
	assert_true(elapsed_ms(&t) < 950);
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

/*
 * Both workers busy (600 ms, from 0 and 100 ms); a slow request (600 ms)
 * with 1500 ms waits from 150 ms, and its caller sends it again at 650
 * and 1150 ms on fresh sockets. At 600 ms the first worker free takes
 * it; at 700 ms the other takes the first copy and finds it in hand; the
 * second comes while it still is: handled once, and the caller, whose
 * first two sockets are closed, gets the answer at about 1200 ms. (Two
 * workers free at the same moment: test_copies_taken_at_once_are_handled_
 * once.)
 */
static void
test_copies_waiting_for_busy_workers_are_answered(void **state)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	Scep__V1__Reply *reply = NULL;
	pthread_t slow[2];
	int before;

	(void)state;
	assert_non_null(client);
	assert_int_equal(call_cacert(client, "warm", 3000, &reply), RPC_OK);
	scep__v1__reply__free_unpacked(reply, NULL);
	before = atomic_load(&slow_calls);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    pthread_create(&slow[i], NULL, call_slow, ctx), 0);
		/* Its handler begun (counted), then the next at least 100
		 * ms later, and this request 50 ms after that. */
		while (atomic_load(&slow_calls) - before < i + 1)
			nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
		nanosleep(
		    &(struct timespec){0, (i == 0 ? 100 : 50) * 1000 * 1000},
		    NULL);
	}
	assert_int_equal(call_cacert(client, "slow", 1500, &reply), RPC_OK);
	assert_string_equal(reply->get_ca_cert->content_type, "slow");
	scep__v1__reply__free_unpacked(reply, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(slow[i], NULL);
	/* Handled once, beside the two that kept the workers busy. */
	assert_int_equal(atomic_load(&slow_calls) - before, 3);
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

/*
 * One worker busy for 1200 ms; a slow request (600 ms) with 1500 ms, at
 * the other worker from about 50 ms, is sent again at about 550 ms on a
 * fresh socket (the first closed): the copy waits in the queue, as both
 * workers are busy, until the first is answered (650 ms, to the closed
 * socket). The worker that answered it takes the copy and sends the same
 * answer: handled once, answered at about 650 ms, not handled again until
 * 1250 ms.
 */
static void
test_copy_waiting_while_the_first_is_answered_gets_its_answer(void **state)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	Scep__V1__Reply *reply = NULL;
	struct cacert_call slower = {ctx, "slower", "test", 0, "", 3000};
	struct timespec t;
	pthread_t slower_thread;
	int before;

	(void)state;
	assert_non_null(client);
	assert_int_equal(call_cacert(client, "warm", 3000, &reply), RPC_OK);
	scep__v1__reply__free_unpacked(reply, NULL);
	assert_int_equal(
	    pthread_create(&slower_thread, NULL, call_in_thread, &slower), 0);
	nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
	before = atomic_load(&slow_calls);
	clock_gettime(CLOCK_MONOTONIC, &t);
	assert_int_equal(call_cacert(client, "slow", 1500, &reply), RPC_OK);
	assert_string_equal(reply->get_ca_cert->content_type, "slow");
	scep__v1__reply__free_unpacked(reply, NULL);
	assert_true(elapsed_ms(&t) < 1000);
	assert_int_equal(atomic_load(&slow_calls) - before, 1);
	pthread_join(slower_thread, NULL);
	assert_int_equal(slower.rc, RPC_OK);
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

/* Through the proxy: the worker's message reaches the caller as is. */
static void
test_secret_reply_through_the_proxy_is_wiped(void **state)
{
	(void)state;
	assert_secret_reply_wiped();
}

/* The call in `thread` ended with its answer, handled once (`calls` one
 * more than `before`), and its copies met in rpc_test_copy_hook: two
 * workers took them at once. The hook is disarmed. */
static void
assert_answered_once(pthread_t thread, const struct cacert_call *call,
    atomic_int *calls, int before)
{
	pthread_join(thread, NULL);
	atomic_store(&copy_hook_armed, 0);
	assert_int_equal(call->rc, RPC_OK);
	assert_string_equal(call->answer, call->ident);
	assert_true(atomic_load(&copy_hook_passed) >= 2);
	assert_int_equal(atomic_load(calls) - before, 1);
}

/*
 * Both workers held (the gate); a slow request (600 ms) with 3000 ms, sent
 * again at 1000 ms on a fresh socket, waits with its copy. The gate
 * opens: the two workers take the request and the copy at the same moment
 * (each waits for the other between saying it answers and looking,
 * rpc_test_copy_hook). One handles it, the other hands its copy over: the
 * caller gets the answer at about 1700 ms, handled once. Had each looked
 * before saying, both would have found nothing and handled it.
 */
static void
test_copies_taken_at_once_are_handled_once(void **state)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	struct cacert_call held[2] = {
	    {ctx, "gate", "test", 0, "", 8000},
	    {ctx, "gate", "test", 0, "", 8000},
	};
	struct cacert_call slow = {ctx, "slow", "test", 0, "", 3000};
	pthread_t held_thread[2], slow_thread;
	int before;

	(void)state;
#ifndef SCEPD_TEST_HOOKS
	rpc_client_free(client);
	zmq_ctx_term(ctx);
	skip(); /* two workers meet only in rpc_test_copy_hook */
#endif
	assert_non_null(client);
	gate_set(0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&held_thread[i], NULL,
		                     call_in_thread, &held[i]),
		    0);
	gate_await(2);
	before = atomic_load(&slow_calls);
	assert_int_equal(
	    pthread_create(&slow_thread, NULL, call_in_thread, &slow), 0);
	/* The request and its copy (sent at 1000 ms) wait. */
	nanosleep(&(struct timespec){1, 200 * 1000 * 1000}, NULL);
	atomic_store(&copy_hook_passed, 0);
	atomic_store(&copy_hook_armed, 1);
	gate_set(1);
	assert_answered_once(slow_thread, &slow, &slow_calls, before);
	for (int i = 0; i < 2; i++) {
		pthread_join(held_thread[i], NULL);
		assert_int_equal(held[i].rc, RPC_OK);
	}
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

/*
 * One worker held (the gate); a request taking 1200 ms with 1500 ms at the
 * other is sent again at 500 and 1000 ms on fresh sockets: its answer
 * goes to a closed socket and is kept. The gate opens as it is answered,
 * and the two workers take the two copies at the same moment (meeting in
 * rpc_test_copy_hook): one finds the kept answer, the other hands its
 * copy to that one, and both copies get the kept answer at about 1200 ms:
 * handled once. Had a copy handed over made the worker handle the
 * request again, the answer would come at 2400 ms, past the deadline.
 */
static void
test_copies_taken_at_once_after_the_answer_get_the_kept_one(void **state)
{
	void *ctx = zmq_ctx_new();
	struct cacert_call held = {ctx, "gate", "test", 0, "", 8000};
	struct cacert_call slower = {ctx, "slower", "test", 0, "", 1500};
	pthread_t held_thread, slower_thread;
	int before;

	(void)state;
#ifndef SCEPD_TEST_HOOKS
	skip(); /* two workers meet only in rpc_test_copy_hook */
#endif
	gate_set(0);
	assert_int_equal(
	    pthread_create(&held_thread, NULL, call_in_thread, &held), 0);
	gate_await(1);
	before = atomic_load(&slower_calls);
	assert_int_equal(
	    pthread_create(&slower_thread, NULL, call_in_thread, &slower), 0);
	/* Armed once its handler runs: the copies meet, not the request. */
	while (atomic_load(&slower_calls) - before < 1)
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
	atomic_store(&copy_hook_passed, 0);
	atomic_store(&copy_hook_armed, 1);
	/* About when it is answered (and kept) the held worker is freed:
	 * whichever takes a copy first waits in the hook for the other,
	 * which comes after the answer. */
	nanosleep(&(struct timespec){1, 150 * 1000 * 1000}, NULL);
	gate_set(1);
	assert_answered_once(slower_thread, &slower, &slower_calls, before);
	pthread_join(held_thread, NULL);
	assert_int_equal(held.rc, RPC_OK);
	zmq_ctx_term(ctx);
}

/* --- batches -------------------------------------------------------- */

static int
setup_batches(void **state)
{
	server_batches = 1;
	return setup(state);
}

static int
teardown_batches(void **state)
{
	int rc = teardown(state);

	server_batches = 0;
	return rc;
}

/*
 * While a slow batch runs (0-1200 ms: the others, sent from 200 ms, have a
 * second to arrive on a slow machine under ASan; 400 ms was not always
 * enough), three requests of the batch kind arrive, and a
 * fourth from a caller its route refuses: the three are handed over
 * together, the handler answers two ("1 of 3", "2 of 3") and gets the
 * third again alone ("1 of 1"); the fourth is refused and never reaches
 * the handler, nor does a fifth whose caller gave up (250 ms) while it
 * waited. A request of another kind is answered by its route's handler
 * as ever.
 */
static void
test_waiting_requests_come_as_one_batch(void **state)
{
	void *ctx = zmq_ctx_new();
	/* 6 s: a caller sends its request again after a third of its time,
	 * and these wait 1.2 s. */
	struct cacert_call slow = {ctx, "slower", "test", 0, "", 6000};
	struct cacert_call calls[5] = {
	    {ctx, "a", "test", 0, "", 6000},
	    {ctx, "b", "test", 0, "", 6000},
	    {ctx, "c", "test", 0, "", 6000},
	    {ctx, "refused", "other", 0, "", 6000},
	    {ctx, "late", "test", 0, "", 250},
	};
	struct rpc_client *client = rpc_client_new(ctx, endpoint, "test");
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCACapsRequest caps = SCEP__V1__GET_CACAPS_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	pthread_t slow_thread, threads[5];
	int seen[3] = {0, 0, 0};
	char refused[32];

	(void)state;
	assert_non_null(client);
	assert_int_equal(
	    pthread_create(&slow_thread, NULL, call_in_thread, &slow), 0);
	nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
	for (int i = 0; i < 5; i++)
		assert_int_equal(pthread_create(&threads[i], NULL,
		                     call_in_thread, &calls[i]),
		    0);
	pthread_join(slow_thread, NULL);
	for (int i = 0; i < 5; i++)
		pthread_join(threads[i], NULL);
	assert_int_equal(slow.rc, RPC_OK);
	assert_string_equal(slow.answer, "slower, 1 of 1");
	for (int i = 0; i < 3; i++) {
		int of = -1, n = -1;

		assert_int_equal(calls[i].rc, RPC_OK);
		assert_int_equal(
		    sscanf(calls[i].answer + 1, ", %d of %d", &of, &n), 2);
		/* "1 of 3", "2 of 3", then "1 of 1": seen[0..2]. */
		assert_true(
		    (n == 3 && (of == 1 || of == 2)) || (n == 1 && of == 1));
		assert_false(seen[n == 1 ? 2 : of - 1]);
		seen[n == 1 ? 2 : of - 1] = 1;
	}
	assert_int_equal(calls[3].rc, RPC_OK);
	snprintf(refused, sizeof(refused), "status %d",
	    (int)SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	assert_string_equal(calls[3].answer, refused);
	/* Its deadline passed while it waited: dropped, never handled. */
	assert_int_equal(calls[4].rc, RPC_ETIMEDOUT);
	assert_false(batch_saw_late);
	/* Another kind: its route's handler. */
	req.body_case = SCEP__V1__REQUEST__BODY_GET_CA_CAPS;
	req.get_ca_caps = &caps;
	assert_int_equal(rpc_call(client, &req, 3000, &reply), RPC_OK);
	assert_int_equal(reply->body_case, SCEP__V1__REPLY__BODY_GET_CA_CAPS);
	assert_int_equal(strncmp(reply->get_ca_caps->caps, "caps ", 5), 0);
	scep__v1__reply__free_unpacked(reply, NULL);
	rpc_client_free(client);
	zmq_ctx_term(ctx);
}

struct next_call {
	void *ctx;
	int timeout_ms;
	int rc;
};

static void *
call_next_in_thread(void *arg)
{
	struct next_call *c = arg;
	struct rpc_client *client = rpc_client_new(c->ctx, endpoint, "test");
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetNextCACertRequest body =
	    SCEP__V1__GET_NEXT_CACERT_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;

	req.body_case = SCEP__V1__REQUEST__BODY_GET_NEXT_CA_CERT;
	req.get_next_ca_cert = &body;
	c->rc = client != NULL ? rpc_call(client, &req, c->timeout_ms, &reply)
	                       : RPC_ESYS;
	scep__v1__reply__free_unpacked(reply, NULL);
	rpc_client_free(client);
	return NULL;
}

/*
 * Requests read together are answered one after the other: one whose
 * caller gives up while those before it are handled is dropped then, not
 * handled late. Behind a slow batch (0-600 ms), four requests wait and
 * are read at once at 600 ms, all still in time: two of another kind
 * that each take 600 ms, the second given up at 900 ms, and one of the
 * batch's kind given up at 900 ms too. The first of the other kind is
 * handled (600-1200 ms); by then the other two are past their deadlines:
 * neither reaches its handler. (A fourth, of the batch's kind and in
 * time, shows the batch handler still runs.) Margins of 300 ms.
 */
static void
test_requests_expiring_while_others_are_handled_are_dropped(void **state)
{
	void *ctx = zmq_ctx_new();
	struct cacert_call slow = {ctx, "slow", "test", 0, "", 3000};
	struct cacert_call late = {ctx, "late", "test", 0, "", 700};
	/* 6 s: a caller resends after a third of its time (Lazy Pirate),
	 * and a resent copy would be handled again. */
	struct cacert_call in_time = {ctx, "in time", "test", 0, "", 6000};
	struct next_call first = {ctx, 6000, 0}, second = {ctx, 700, 0};
	pthread_t slow_thread, late_thread, in_time_thread, first_thread,
	    second_thread;

	(void)state;
	atomic_store(&next_calls, 0);
	batch_saw_late = 0;
	assert_int_equal(
	    pthread_create(&slow_thread, NULL, call_in_thread, &slow), 0);
	nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
	assert_int_equal(
	    pthread_create(&first_thread, NULL, call_next_in_thread, &first),
	    0);
	/* The second of the other kind after the first: they are handled
	 * in the order they arrived. */
	nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
	assert_int_equal(
	    pthread_create(&second_thread, NULL, call_next_in_thread, &second),
	    0);
	assert_int_equal(
	    pthread_create(&late_thread, NULL, call_in_thread, &late), 0);
	assert_int_equal(
	    pthread_create(&in_time_thread, NULL, call_in_thread, &in_time), 0);
	pthread_join(slow_thread, NULL);
	pthread_join(first_thread, NULL);
	pthread_join(second_thread, NULL);
	pthread_join(late_thread, NULL);
	pthread_join(in_time_thread, NULL);
	assert_int_equal(slow.rc, RPC_OK);
	assert_int_equal(first.rc, RPC_OK);
	assert_int_equal(in_time.rc, RPC_OK);
	assert_string_equal(in_time.answer, "in time, 1 of 1");
	/* Given up, and never handled. */
	assert_int_equal(second.rc, RPC_ETIMEDOUT);
	assert_int_equal(atomic_load(&next_calls), 1);
	assert_int_equal(late.rc, RPC_ETIMEDOUT);
	assert_false(batch_saw_late);
	zmq_ctx_term(ctx);
}

/* A call to a service that reads and never answers, in a thread. */
static void *
call_silent(void *arg)
{
	struct rpc_client *client = arg;
	Scep__V1__Reply *reply = NULL;

	if (call_cacert(client, "silent", 900, &reply) == RPC_OK)
		scep__v1__reply__free_unpacked(reply, NULL);
	return NULL;
}

/*
 * Each copy a caller sends again says when it was sent (sent_ms), not
 * when the first was: a server on another host learns the clocks'
 * difference from it, and the first's time made the caller's wait look
 * like its clock being behind (its deadlines then read that much later).
 * The copies are the same request all the same (test_copy_of_a_request_
 * in_hand_is_answered_once).
 */
static void
test_copies_say_when_they_were_sent(void **state)
{
	void *ctx = zmq_ctx_new();
	char silent_endpoint[128];
	void *silent = stuck_service(
	    ctx, "silent", silent_endpoint, sizeof(silent_endpoint));
	struct rpc_client *client =
	    rpc_client_new(ctx, silent_endpoint, "test");
	int64_t sent[8], until = clock_monotonic_ms() + 1500;
	uint64_t id = 0;
	int n = 0, timeout = 100;
	pthread_t caller;

	(void)state;
	assert_non_null(client);
	zmq_setsockopt(silent, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	assert_int_equal(pthread_create(&caller, NULL, call_silent, client), 0);
	while (clock_monotonic_ms() < until && n < 8) {
		zmq_msg_t frame;
		Scep__V1__Request *req;
		int more = 1;

		/* [routing id][request]: the last frame is the request. */
		zmq_msg_init(&frame);
		while (more && zmq_msg_recv(&frame, silent, 0) >= 0)
			more = zmq_msg_more(&frame);
		if (more) {
			zmq_msg_close(&frame);
			continue; /* nothing yet */
		}
		req = scep__v1__request__unpack(
		    NULL, zmq_msg_size(&frame), zmq_msg_data(&frame));
		zmq_msg_close(&frame);
		if (req == NULL)
			continue;
		if (n == 0)
			id = req->id;
		assert_true(req->id == id);
		assert_true(req->has_sent_ms);
		sent[n++] = req->sent_ms;
		scep__v1__request__free_unpacked(req, NULL);
	}
	pthread_join(caller, NULL);
	/* 900 ms, an attempt every 300: the first and two copies, which
	 * the caller counts (the RA then knows an answer it got may not be
	 * the copy the service acts on last). */
	assert_true(n >= 2);
	assert_int_equal(rpc_client_copies(client), n);
	for (int i = 1; i < n; i++) {
		print_message("copy %d sent %lld ms after the one before\n", i,
		    (long long)(sent[i] - sent[i - 1]));
		assert_true(sent[i] - sent[i - 1] >= 250);
	}
	rpc_client_free(client);
	zmq_close(silent);
	zmq_ctx_term(ctx);
	unlink(silent_endpoint + 6);
}

/* --- CallerUsers ------------------------------------------------------ */

/* GetCACaps (`health`: Health) as `origin` in a process of its own (no
 * cmocka there): the reply's status, -1 for no reply. */
static int
raw_status(const char *origin, int health)
{
	void *ctx = zmq_ctx_new();
	struct rpc_client *client = rpc_client_new(ctx, endpoint, origin);
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCACapsRequest body = SCEP__V1__GET_CACAPS_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	int status = -1;

	req.body_case = SCEP__V1__REQUEST__BODY_GET_CA_CAPS;
	req.get_ca_caps = &body;
	if (client != NULL &&
	    (health ? call_health(client, 3000, &reply)
	            : rpc_call(client, &req, 3000, &reply)) == RPC_OK) {
		status = reply->status;
		scep__v1__reply__free_unpacked(reply, NULL);
	}
	rpc_client_free(client);
	zmq_ctx_term(ctx);
	return status;
}

static int
setup_caller_users(void **state)
{
	struct rpc_curve_settings cs = {
	    "", "", "", 0, "test:daemon other:nobody"};
	char path[160];

	if ((server_curve = rpc_curve_load(
	         &cs, "ipc://x.sock", key_path("test.conf"), "test")) == NULL ||
	    setup(state) != 0)
		return -1;
	/* Its socket open to others: the directory is what guards it in a
	 * deployment, and here the caller of another user must connect. */
	snprintf(path, sizeof(path), "%s", endpoint + 6);
	for (int i = 0; i < 100 && access(path, F_OK) != 0; i++)
		nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
	return chmod(path, 0777);
}

static int
teardown_caller_users(void **state)
{
	int rc = teardown(state);

	rpc_curve_free(server_curve);
	server_curve = NULL;
	return rc;
}

/* Whether `check` returns 1 in a process of the user nobody; skips the
 * test when that cannot be (not root, no such user). */
static int
as_nobody(int (*check)(void))
{
	struct passwd *nobody = getpwnam("nobody");
	int status;
	pid_t pid;

	if (geteuid() != 0 || nobody == NULL)
		skip(); /* a process of another user is needed */
	fflush(NULL);
	if ((pid = fork()) == 0) {
		int ok = setgroups(0, NULL) == 0 &&
		    setresgid(nobody->pw_gid, nobody->pw_gid, nobody->pw_gid) ==
		        0 &&
		    setresuid(nobody->pw_uid, nobody->pw_uid, nobody->pw_uid) ==
		        0 &&
		    check();

		_exit(ok ? 0 : 1);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int
nobody_speaks_as_other_only(void)
{
	return raw_status("other", 0) == SCEP__V1__STATUS__STATUS_OK &&
	    raw_status("test", 0) == SCEP__V1__STATUS__STATUS_BAD_REQUEST;
}

/*
 * CallerUsers = test:daemon other:nobody: a process of nobody may speak
 * as "other" and not as "test" (daemon's); root may speak as either; an
 * origin not listed is the route table's business as before.
 */
static void
test_caller_users_by_uid(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip(); /* a process of another user is needed */
	assert_int_equal(raw_status("test", 0), SCEP__V1__STATUS__STATUS_OK);
	assert_int_equal(raw_status("other", 0), SCEP__V1__STATUS__STATUS_OK);
	assert_true(as_nobody(nobody_speaks_as_other_only));
}

static int
nobody_is_neither_operator_nor_launcher(void)
{
	return raw_status("scepctl", 1) ==
	    SCEP__V1__STATUS__STATUS_BAD_REQUEST &&
	    raw_status("scepd", 1) == SCEP__V1__STATUS__STATUS_BAD_REQUEST &&
	    raw_status("other", 0) == SCEP__V1__STATUS__STATUS_OK;
}

/*
 * Over ipc:// only root or the service's own user may declare scepctl
 * (the operator: revocations, approvals) or scepd (the launcher's
 * liveness checks), though CallerUsers names neither: the Health route
 * lists both, and answers them from root, not from nobody (who is
 * answered as "other", CallerUsers' name for it).
 */
static void
test_operator_and_launcher_need_root_or_the_services_user(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip(); /* a process of another user is needed */
	assert_int_equal(raw_status("scepctl", 1), SCEP__V1__STATUS__STATUS_OK);
	assert_int_equal(raw_status("scepd", 1), SCEP__V1__STATUS__STATUS_OK);
	assert_true(as_nobody(nobody_is_neither_operator_nor_launcher));
}

/* --- clocks of other hosts -------------------------------------------- */

/* Served on tcp:// (no CURVE: insecure allowed), two workers: a caller's
 * address is its host's, which the proxy hands to the workers. */
static struct rpc_curve_settings tcp_settings = {"", "", "", 1, NULL};

/* Served on `host` ("127.0.0.1", "[::1]") of `family` at a port free now
 * (the kernel's pick, given back for the server): 0, 1 when the host
 * has no such loopback address, -1 on failure. */
static int
setup_tcp_on(void **state, int family, const char *host)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = family == AF_INET ? sizeof(*v4) : sizeof(*v6);
	int fd = socket(family, SOCK_STREAM, 0);

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET)
		v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		v6->sin6_addr = in6addr_loopback;
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		if (fd >= 0)
			close(fd);
		return 1;
	}
	close(fd);
	snprintf(endpoint, sizeof(endpoint), "tcp://%s:%d", host,
	    ntohs(family == AF_INET ? v4->sin_port : v6->sin6_port));
	server_curve = rpc_curve_load(
	    &tcp_settings, endpoint, key_path("test.conf"), "test");
	if (server_curve == NULL)
		return -1;
	return setup_two_workers(state);
}

static int
setup_tcp(void **state)
{
	return setup_tcp_on(state, AF_INET, "127.0.0.1") == 0 ? 0 : -1;
}

/* The same, with CallerUsers = other:root. */
static int
setup_tcp_callers(void **state)
{
	tcp_settings.caller_users = "other:root";
	return setup_tcp(state);
}

/* A caller over tcp:// has no user the server can know: one declaring a
 * name CallerUsers lists is refused (not let through unchecked); other
 * names as before. */
static void
test_caller_users_unknown_user_refused(void **state)
{
	(void)state;
	assert_int_equal(
	    raw_status("other", 0), SCEP__V1__STATUS__STATUS_BAD_REQUEST);
	assert_int_equal(raw_status("test", 0), SCEP__V1__STATUS__STATUS_OK);
}

static int
teardown_tcp(void **state)
{
	int rc = teardown_two_workers(state);

	endpoint[0] = '\0'; /* the next group's setup picks its own */
	rpc_curve_free(server_curve);
	server_curve = NULL;
	tcp_settings.caller_users = NULL;
	return rc;
}

/* The same on IPv6's loopback, "tcp://[::1]:PORT": libzmq bound and
 * reached it only with ZMQ_IPV6 ("No such device" at the bind, and a
 * client that never connected). Skipped where the host has no ::1. */
static int tcp6_missing;

static int
setup_tcp6(void **state)
{
	int rc = setup_tcp_on(state, AF_INET6, "[::1]");

	tcp6_missing = rc == 1;
	return rc < 0 ? -1 : 0;
}

static int
teardown_tcp6(void **state)
{
	return tcp6_missing ? 0 : teardown_tcp(state);
}

/* Served on [::1], a request and its answer. */
static void
test_served_over_ipv6(void **state)
{
	if (tcp6_missing)
		skip();
	test_round_trip(state);
}

/* Which endpoints libzmq is told to take IPv6 for: never an IPv4
 * address (its sockets and its peers' addresses stay as they were), "*"
 * (IPv4 as before: IPv6 would open the port where a firewall has IPv4
 * rules alone), a bind's interface name (libzmq would bind the
 * interface's IPv6 address), nor ipc://. */
static void
test_ipv6_only_where_asked(void **state)
{
	(void)state;
	assert_int_equal(rpc_endpoint_ipv6("tcp://*:5001", 0), 0);
	assert_int_equal(rpc_endpoint_ipv6("tcp://10.0.0.1:5001", 1), 0);
	assert_int_equal(rpc_endpoint_ipv6("tcp://10.0.0.1:5001", 0), 0);
	assert_int_equal(rpc_endpoint_ipv6("tcp://eth0:5001", 0), 0);
	assert_int_equal(rpc_endpoint_ipv6("ipc:///run/scepd/ca.sock", 1), 0);
	assert_int_equal(rpc_endpoint_ipv6("tcp://localhost:5001", 1), 0);
	/* An IPv4 caller of "[::]" is named as on an IPv4 socket. */
	assert_string_equal(rpc_address_shown("::ffff:10.0.0.21"), "10.0.0.21");
	assert_string_equal(rpc_address_shown("fd00::21"), "fd00::21");
	assert_string_equal(rpc_address_shown("::ffff:1"), "::ffff:1");
	if (tcp6_missing)
		skip(); /* the rest needs the host's IPv6 */
	assert_int_equal(rpc_endpoint_ipv6("tcp://[::1]:5001", 1), 1);
	assert_int_equal(rpc_endpoint_ipv6("tcp://[::]:5001", 0), 1);
	/* A name with IPv6 addresses only (Debian's /etc/hosts:
	 * ip6-localhost) is reached over IPv6; one with an IPv4 address
	 * too (localhost, above) stays IPv4, where a server listening on
	 * that address alone is reached. */
	if (gethostbyname2("ip6-localhost", AF_INET) == NULL &&
	    gethostbyname2("ip6-localhost", AF_INET6) != NULL)
		assert_int_equal(
		    rpc_endpoint_ipv6("tcp://ip6-localhost:5001", 1), 1);
	assert_int_equal(rpc_endpoint_ipv6("tcp://ip6-localhost:5001", 0), 0);
}

/* Sends a GetCACert "IDENT" as a caller whose clock reads `sent_ms` now
 * (0: no sent_ms, as callers before it), with `budget_ms` to its
 * deadline by that clock; its answer's content type in `answer`, or ""
 * when none came within 1.5 s. */
static void
send_with_clock(void *sock, uint64_t id, const char *ident, int64_t sent_ms,
    int64_t budget_ms)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCACertRequest cacert = SCEP__V1__GET_CACERT_REQUEST__INIT;
	Scep__V1__GetCACapsRequest caps = SCEP__V1__GET_CACAPS_REQUEST__INIT;
	uint8_t buf[256];
	size_t len;

	/* "caps": GetCACaps as caller "other" (the caps route's); else
	 * GetCACert IDENT as "test". */
	if (strcmp(ident, "caps") == 0) {
		req.body_case = SCEP__V1__REQUEST__BODY_GET_CA_CAPS;
		req.get_ca_caps = &caps;
		req.origin = "other";
	} else {
		cacert.ca_ident = (char *)ident;
		req.body_case = SCEP__V1__REQUEST__BODY_GET_CA_CERT;
		req.get_ca_cert = &cacert;
		req.origin = "test";
	}
	req.id = id;
	req.deadline_ms = (sent_ms ? sent_ms : rpc_now_ms()) + budget_ms;
	req.has_sent_ms = sent_ms != 0;
	req.sent_ms = sent_ms;
	len = scep__v1__request__pack(&req, buf);
	assert_true(len < sizeof(buf));
	assert_int_equal(zmq_send(sock, buf, len, 0), (int)len);
}

/* The answer to request `id` on `sock`: its content type (GetCACaps:
 * "caps N"), "status N" when refused, or "" when none came within
 * 1.5 s. */
static void
answer_of(void *sock, uint64_t id, char *answer, size_t size)
{
	Scep__V1__Reply *reply;
	uint8_t buf[256];
	int n;

	answer[0] = '\0';
	n = zmq_recv(sock, buf, sizeof(buf), 0);
	if (n < 0)
		return;
	assert_non_null(reply = scep__v1__reply__unpack(NULL, (size_t)n, buf));
	assert_int_equal(reply->id, id);
	if (reply->status != SCEP__V1__STATUS__STATUS_OK)
		snprintf(answer, size, "status %d", (int)reply->status);
	else
		snprintf(answer, size, "%s",
		    reply->body_case == SCEP__V1__REPLY__BODY_GET_CA_CAPS
		        ? reply->get_ca_caps->caps
		        : reply->get_ca_cert->content_type);
	scep__v1__reply__free_unpacked(reply, NULL);
}

static void
call_with_clock(void *sock, uint64_t id, const char *ident, int64_t sent_ms,
    int64_t budget_ms, char *answer, size_t size)
{
	send_with_clock(sock, id, ident, sent_ms, budget_ms);
	answer_of(sock, id, answer, size);
}

/* A DEALER of our own to the server (raw_caller) with the key pair `key`
 * (in key_dir; NULL: none) for a server with CURVE. */
static void *
raw_keyed_caller(void *ctx, const char *key)
{
	void *sock = zmq_socket(ctx, ZMQ_DEALER);
	char own_pub[RPC_KEY_LEN + 1], own_sec[RPC_KEY_LEN + 1];
	char server_pub[RPC_KEY_LEN + 1], file[64], err[256];
	int timeout = 1500, zero = 0;

	assert_non_null(sock);
	zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	if (key != NULL) {
		snprintf(file, sizeof(file), "%s.pub", key);
		assert_int_equal(
		    rpc_key_read(key_path(file), 0, own_pub, err, sizeof(err)),
		    0);
		snprintf(file, sizeof(file), "%s.key", key);
		assert_int_equal(
		    rpc_key_read(key_path(file), 1, own_sec, err, sizeof(err)),
		    0);
		assert_int_equal(rpc_key_read(key_path("server.pub"), 0,
		                     server_pub, err, sizeof(err)),
		    0);
		assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY,
		                     own_pub, sizeof(own_pub)),
		    0);
		assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY,
		                     own_sec, sizeof(own_sec)),
		    0);
		assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY,
		                     server_pub, sizeof(server_pub)),
		    0);
	}
	assert_int_equal(zmq_connect(sock, endpoint), 0);
	return sock;
}

/* A DEALER of our own to the server: call_with_clock's. */
static void *
raw_caller(void *ctx)
{
	return raw_keyed_caller(ctx, NULL);
}

/* GetCACert IDENT as `origin` with this id, deadline and sent time: a
 * copy sent again (it says its own time, the rest as the first). */
static void
send_copy(void *sock, uint64_t id, const char *origin, const char *ident,
    int64_t sent_ms, int64_t deadline_ms)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCACertRequest cacert = SCEP__V1__GET_CACERT_REQUEST__INIT;
	uint8_t buf[256];
	size_t len;

	cacert.ca_ident = (char *)ident;
	req.body_case = SCEP__V1__REQUEST__BODY_GET_CA_CERT;
	req.get_ca_cert = &cacert;
	req.origin = (char *)origin;
	req.id = id;
	req.deadline_ms = deadline_ms;
	req.has_sent_ms = 1;
	req.sent_ms = sent_ms;
	len = scep__v1__request__pack(&req, buf);
	assert_int_equal(zmq_send(sock, buf, len, 0), (int)len);
}

/*
 * A caller 90 s behind sends a slow request (600 ms), and 100 ms later a
 * copy on another connection, which says its own time and comes 10 ms
 * faster: the clock this host learns moves by those 10 ms between the
 * two, so their deadlines read by it differ. The copy is still the same
 * request: handled once, both connections answered. (Compared by their
 * deadlines as read here, the idle worker handled it again.)
 */
static void
test_copy_from_a_caller_behind_is_handled_once(void **state)
{
	void *ctx = zmq_ctx_new();
	void *a = raw_caller(ctx), *b = raw_caller(ctx);
	char answer[64];
	int64_t sent, deadline;
	int before;

	(void)state;
	/* The clock taught again by requests that find the server waiting
	 * (test_deadlines_read_by_the_callers_clock says why the pause). */
	nanosleep(&(struct timespec){0, 250 * 1000 * 1000}, NULL);
	for (uint64_t id = 2; id < 5; id++) {
		call_with_clock(a, id, "warm", rpc_now_ms() - 90000, 3000,
		    answer, sizeof(answer));
		assert_string_equal(answer, "warm");
	}
	nanosleep(&(struct timespec){0, 250 * 1000 * 1000}, NULL);
	before = atomic_load(&slow_calls);
	sent = rpc_now_ms() - 90000;
	deadline = sent + 3000;
	send_copy(a, 7, "test", "slow", sent, deadline);
	nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
	send_copy(b, 7, "test", "slow", rpc_now_ms() - 89990, deadline);
	answer_of(b, 7, answer, sizeof(answer));
	assert_string_equal(answer, "slow");
	answer_of(a, 7, answer, sizeof(answer));
	assert_string_equal(answer, "slow");
	nanosleep(&(struct timespec){0, 700 * 1000 * 1000}, NULL);
	assert_int_equal(atomic_load(&slow_calls) - before, 1);
	zmq_close(a);
	zmq_close(b);
	zmq_ctx_term(ctx);
}

/*
 * A caller on another host whose clock is 90 s behind: its requests'
 * deadlines, read by this host's clock, all passed 87 s ago. They are
 * read by its clock instead, learnt from when they say they were sent;
 * one that was sent 5 s before the others, and whose 3 s are over by its
 * clock too, is still dropped. Within RPC_CLOCK_SLACK_MS nothing moves.
 */
static void
test_deadlines_read_by_the_callers_clock(void **state)
{
	void *ctx = zmq_ctx_new();
	void *sock = raw_caller(ctx);
	char answer[64];

	(void)state;
	/* A caller of before sent_ms, on time: answered as ever. */
	call_with_clock(sock, 1, "no sent_ms", 0, 3000, answer, sizeof(answer));
	assert_string_equal(answer, "no sent_ms");
	/* Only a request that finds the server waiting, nothing queued,
	 * teaches the clock: sent at once after an answer it may be read
	 * before the server polls again, and on a loaded machine (the CI's
	 * parallel tests) be taken for one that queued. Let it get there. */
	nanosleep(&(struct timespec){0, 250 * 1000 * 1000}, NULL);
	/* 90 s behind, 3 s to go by its clock: answered, again and again. */
	for (uint64_t id = 2; id < 5; id++) {
		call_with_clock(sock, id, "behind", rpc_now_ms() - 90000, 3000,
		    answer, sizeof(answer));
		assert_string_equal(answer, "behind");
	}
	/* Sent 5 s before, by the same clock: its 3 s are over. */
	call_with_clock(sock, 5, "stale", rpc_now_ms() - 95000, 3000, answer,
	    sizeof(answer));
	assert_string_equal(answer, "");
	/* And its deadline was not read by this host's clock either: 3 s
	 * more than the clocks' difference, on time by the caller's. */
	call_with_clock(sock, 6, "behind, on time", rpc_now_ms() - 90000, 3000,
	    answer, sizeof(answer));
	assert_string_equal(answer, "behind, on time");
	zmq_close(sock);
	zmq_ctx_term(ctx);
}

/*
 * A request that waited in the queue is not fresh: it teaches nothing of
 * its caller's clock. Both workers busy (600 ms); a new caller's request,
 * in step but with 300 ms left by its clock, waits behind them and is
 * past its deadline when taken up, 2.5 s after it was sent: dropped. Had
 * it taught a 2.5 s difference, it would have been answered.
 */
static void
test_queued_request_teaches_no_clock(void **state)
{
	void *ctx = zmq_ctx_new();
	void *busy[2] = {raw_caller(ctx), raw_caller(ctx)};
	void *sock = raw_caller(ctx);
	char answer[64];

	(void)state;
	for (int i = 0; i < 2; i++)
		send_with_clock(busy[i], 10 + i, "slow", rpc_now_ms(), 3000);
	nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
	send_with_clock(sock, 20, "caps", rpc_now_ms() - 2000, 2300);
	answer_of(sock, 20, answer, sizeof(answer));
	assert_string_equal(answer, "");
	for (int i = 0; i < 2; i++) {
		answer_of(busy[i], 10 + i, answer, sizeof(answer));
		assert_string_equal(answer, "slow");
		zmq_close(busy[i]);
	}
	/* The same caller, in step and in time: answered. */
	call_with_clock(
	    sock, 21, "caps", rpc_now_ms(), 3000, answer, sizeof(answer));
	assert_true(strncmp(answer, "caps ", 5) == 0);
	zmq_close(sock);
	zmq_ctx_term(ctx);
}

/* On ipc:// a caller is on this host, with its clock: a request 87 s
 * past its deadline by it is dropped whatever it says it was sent.
 * (libzmq 4.3 gives ipc:// callers a Peer-Address too, "localhost:UID:
 * GID:PID": the server must not take it for another host's.) */
static void
test_ipc_caller_has_this_hosts_clock(void **state)
{
	void *ctx = zmq_ctx_new();
	void *sock = raw_caller(ctx);
	char answer[64];

	(void)state;
	for (uint64_t id = 1; id < 4; id++) {
		call_with_clock(sock, id, "behind", rpc_now_ms() - 90000, 3000,
		    answer, sizeof(answer));
		assert_string_equal(answer, "");
	}
	call_with_clock(
	    sock, 4, "in step", rpc_now_ms(), 3000, answer, sizeof(answer));
	assert_string_equal(answer, "in step");
	zmq_close(sock);
	zmq_ctx_term(ctx);
}

/* A server of several workers one of which cannot start (a ZeroMQ
 * context out of sockets) does not say it serves: rpc_serve fails before
 * its ready hook, which tells the launcher the service is up. */
static atomic_int inits, readies;

static void *
init_second_fails(void *service)
{
	(void)service;
	return atomic_fetch_add(&inits, 1) == 1 ? NULL : (void *)&inits;
}

static int
ready_counted(void *service)
{
	(void)service;
	atomic_fetch_add(&readies, 1);
	return 0;
}

static void
test_workers_that_cannot_start(void **state)
{
	struct rpc_server_config config = {0};
	char path[96];

	(void)state;
	snprintf(path, sizeof(path), "ipc:///tmp/scepd-test-rpc-init-%d.sock",
	    (int)getpid());
	config.zmq_ctx = zmq_ctx_new();
	config.endpoint = path;
	config.routes = routes;
	config.workers = 3;
	config.worker_init = init_second_fails;
	config.ready = ready_counted;
	assert_int_equal(rpc_serve(&config), -1);
	assert_int_equal(atomic_load(&inits), 3);
	assert_int_equal(atomic_load(&readies), 0);
	zmq_ctx_term(config.zmq_ctx);
	unlink(path + strlen("ipc://")); /* left by libzmq; one per run */
}

/* `req` (a CRL import) packed unpacks whole within its budget; its
 * packed size. */
static size_t
import_unpacks(const Scep__V1__Request *req)
{
	size_t len = scep__v1__request__get_packed_size(req);
	Scep__V1__Request *got;
	uint8_t *buf;

	assert_non_null(buf = malloc(len));
	scep__v1__request__pack(req, buf);
	assert_non_null(got = rpc_request_unpack(buf, len));
	assert_int_equal(
	    got->revoke_import->n_entries, req->revoke_import->n_entries);
	scep__v1__request__free_unpacked(got, NULL);
	free(buf);
	return len;
}

/* A request unpacks within RPC_UNPACK_BUDGET of its size: one of
 * unknown fields (90 bytes each unpacked, for 2 sent) is dropped, while
 * the largest request a service takes, a CRL import of as many entries
 * as RPC_MAX_CA_REQUEST holds, unpacks. */
static void
test_unpack_budget(void **state)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT, *got;
	Scep__V1__RevokeImportRequest imp =
	    SCEP__V1__REVOKE_IMPORT_REQUEST__INIT;
	Scep__V1__HealthRequest health = SCEP__V1__HEALTH_REQUEST__INIT;
	static Scep__V1__ImportedRevocation entry[5000], *entries[5000];
	static char serials[5000][41];
	size_t n = 0, len, base;
	uint8_t *buf;

	(void)state;
	req.id = 7;
	req.body_case = SCEP__V1__REQUEST__BODY_REVOKE_IMPORT;
	req.revoke_import = &imp;
	imp.entries = entries;
	for (; n < 5000; n++) {
		scep__v1__imported_revocation__init(&entry[n]);
		snprintf(serials[n], sizeof(serials[n]), "%040zX", n + 1);
		entry[n].serial = serials[n];
		entry[n].revoked_at = 1700000000;
		entry[n].reason = "keyCompromise";
		entries[n] = &entry[n];
		imp.n_entries = n + 1;
		if (scep__v1__request__get_packed_size(&req) >
		    RPC_MAX_CA_REQUEST - 256)
			break;
	}
	len = import_unpacks(&req);
	/* The smallest entries (a 1-digit serial, no reason), as many as
	 * the size allows: the most fields per byte a service takes. */
	{
		static Scep__V1__ImportedRevocation small[40000];
		static Scep__V1__ImportedRevocation *smalls[40000];

		imp.entries = smalls;
		imp.n_entries = 0;
		for (size_t i = 0; i < 40000; i++) {
			scep__v1__imported_revocation__init(&small[i]);
			small[i].serial = "1";
			small[i].revoked_at = 1;
			smalls[i] = &small[i];
			imp.n_entries = i + 1;
			if (scep__v1__request__get_packed_size(&req) >
			    RPC_MAX_CA_REQUEST - 16)
				break;
		}
		assert_true(imp.n_entries < 40000);
		(void)import_unpacks(&req);
	}

	/* A health request followed by unknown field 5 (varint 0), again
	 * and again, to the same size. */
	req.body_case = SCEP__V1__REQUEST__BODY_HEALTH;
	req.health = &health;
	base = scep__v1__request__get_packed_size(&req);
	assert_non_null(buf = malloc(len));
	scep__v1__request__pack(&req, buf);
	for (size_t i = base; i + 1 < len; i += 2) {
		buf[i] = 0x28;
		buf[i + 1] = 0x00;
	}
	len = base + (len - base) / 2 * 2;
	assert_non_null(got = scep__v1__request__unpack(NULL, len, buf));
	assert_true(got->base.n_unknown_fields > 100000);
	scep__v1__request__free_unpacked(got, NULL);
	assert_null(rpc_request_unpack(buf, len));
	free(buf);
}

/* --- copies of two callers ----------------------------------------- */

/* GetCACert answers "IDENT for ORIGIN", counted in whose_calls; "gate"
 * waits at the gate first. Two callers, "test" and "tset": names of one
 * length, so that their requests differ in nothing but the caller. */
static atomic_int whose_calls;

static void
handle_whose(void *worker, const Scep__V1__Request *req, Scep__V1__Reply *reply,
    struct rpc_arena *arena)
{
	Scep__V1__GetCACertReply *body = rpc_alloc(arena, sizeof(*body));
	const char *ident = req->get_ca_cert->ca_ident;
	char text[64];

	(void)worker;
	atomic_fetch_add(&whose_calls, 1);
	if (ident != NULL && strcmp(ident, "gate") == 0)
		gate_wait();
	scep__v1__get_cacert_reply__init(body);
	snprintf(text, sizeof(text), "%s for %s", ident ? ident : "none",
	    req->origin ? req->origin : "?");
	body->content_type = rpc_strdup(arena, text);
	reply->body_case = SCEP__V1__REPLY__BODY_GET_CA_CERT;
	reply->get_ca_cert = body;
}

static const struct rpc_route whose_routes[] = {
    {SCEP__V1__REQUEST__BODY_GET_CA_CERT, "whose", "test tset", handle_whose},
    {0, NULL, NULL, NULL},
};

/* Two workers keeping their answers to GetCACert, as the RA does its
 * PKIOperations; with CURVE, key a admitted as "test" and key b as
 * "tset". */
static int
setup_copies_plain(void **state)
{
	server_workers = 2;
	server_keep_cacert = 1;
	server_routes = whose_routes;
	return setup(state);
}

static int
setup_copies_curve(void **state)
{
	server_workers = 2;
	server_keep_cacert = 1;
	server_routes = whose_routes;
	curve_clients = "test:a.pub tset:b.pub";
	return curve_setup(state);
}

static int
teardown_copies(void **state)
{
	int rc = server_curve != NULL ? curve_teardown(state) : teardown(state);

	server_workers = 1;
	server_keep_cacert = 0;
	server_routes = NULL;
	curve_clients = "test:a.pub other:b.pub";
	return rc;
}

/* Whether `n` handlers wait at the gate within `ms`. */
static int
gate_reached(int n, int ms)
{
	int waiting = 0;

	for (int i = 0; i < ms && waiting < n; i++) {
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
		pthread_mutex_lock(&gate_lock);
		waiting = gate_waiting;
		pthread_mutex_unlock(&gate_lock);
	}
	return waiting >= n;
}

/* An id no earlier test of this run used. */
static uint64_t
fresh_id(void)
{
	static uint64_t next;

	return ((uint64_t)rpc_now_ms() << 8) + ++next;
}

/*
 * A copy is the same caller's request sent again. Caller "tset" sends a
 * request of the same id and the same bytes as one of "test" that a
 * worker has in hand: it is no copy of it. The other worker handles it,
 * and each caller gets the answer to its own ("gate for tset"), not the
 * other's. With CURVE the callers are told apart by their keys;
 * without, by the origins they declare.
 */
static void
test_other_callers_request_in_hand_is_its_own(void **state)
{
	/* With CURVE the callers' keys. */
	const char *key_test = server_curve != NULL ? "a" : NULL;
	const char *key_tset = server_curve != NULL ? "b" : NULL;
	void *ctx = zmq_ctx_new();
	void *test = raw_keyed_caller(ctx, key_test);
	void *tset = raw_keyed_caller(ctx, key_tset);
	uint64_t id = fresh_id();
	char answer[64];
	int before = atomic_load(&whose_calls), both;

	(void)state;
	gate_set(0);
	send_copy(test, id, "test", "gate", rpc_now_ms(), rpc_now_ms() + 3000);
	assert_true(gate_reached(1, 3000));
	send_copy(tset, id, "tset", "gate", rpc_now_ms(), rpc_now_ms() + 3000);
	/* Handled on its own: its handler at the gate beside the first. */
	both = gate_reached(2, 1500);
	gate_set(1);
	answer_of(test, id, answer, sizeof(answer));
	assert_string_equal(answer, "gate for test");
	answer_of(tset, id, answer, sizeof(answer));
	assert_string_equal(answer, "gate for tset");
	assert_true(both);
	assert_int_equal(atomic_load(&whose_calls) - before, 2);
	zmq_close(test);
	zmq_close(tset);
	zmq_ctx_term(ctx);
}

/*
 * The same after the first is answered and kept: "test"'s copy on a
 * fresh socket gets the kept answer, not handled again; "tset"'s request
 * of that id and those bytes is handled and answered on its own.
 */
static void
test_other_callers_request_after_the_answer_is_its_own(void **state)
{
	/* With CURVE the callers' keys. */
	const char *key_test = server_curve != NULL ? "a" : NULL;
	const char *key_tset = server_curve != NULL ? "b" : NULL;
	void *ctx = zmq_ctx_new();
	void *test = raw_keyed_caller(ctx, key_test);
	void *tset = raw_keyed_caller(ctx, key_tset);
	void *again;
	uint64_t id = fresh_id();
	char answer[64];
	int before = atomic_load(&whose_calls);

	(void)state;
	send_copy(test, id, "test", "kept", rpc_now_ms(), rpc_now_ms() + 3000);
	answer_of(test, id, answer, sizeof(answer));
	assert_string_equal(answer, "kept for test");
	assert_int_equal(atomic_load(&whose_calls) - before, 1);
	/* The caller's own copy: the kept answer. */
	again = raw_keyed_caller(ctx, key_test);
	send_copy(again, id, "test", "kept", rpc_now_ms(), rpc_now_ms() + 3000);
	answer_of(again, id, answer, sizeof(answer));
	assert_string_equal(answer, "kept for test");
	assert_int_equal(atomic_load(&whose_calls) - before, 1);
	/* Another caller's request of the same id and bytes. */
	send_copy(tset, id, "tset", "kept", rpc_now_ms(), rpc_now_ms() + 3000);
	answer_of(tset, id, answer, sizeof(answer));
	assert_string_equal(answer, "kept for tset");
	assert_int_equal(atomic_load(&whose_calls) - before, 2);
	zmq_close(again);
	zmq_close(test);
	zmq_close(tset);
	zmq_ctx_term(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_unpack_budget),
	    cmocka_unit_test(test_no_route),
	    cmocka_unit_test(test_peer_not_allowed),
	    cmocka_unit_test(test_origin_is_one_role),
	    cmocka_unit_test(test_self_needs_the_key),
	    cmocka_unit_test(test_dead_server_times_out),
	    cmocka_unit_test(test_late_reply_is_dropped),
	    cmocka_unit_test(test_stuck_endpoint_is_skipped),
	    cmocka_unit_test(test_copies_say_when_they_were_sent),
	    cmocka_unit_test(test_secret_reply_is_wiped),
	    cmocka_unit_test(test_ipc_caller_has_this_hosts_clock),
	    cmocka_unit_test(test_workers_that_cannot_start),
#ifdef SCEPD_TEST_HOOKS
	    cmocka_unit_test(test_wall_clock_step),
#endif
	};
	const struct CMUnitTest curve_tests[] = {
	    cmocka_unit_test(test_curve_admits_listed_key),
	    cmocka_unit_test(test_curve_refuses_unlisted_key),
	    cmocka_unit_test(test_curve_origin_is_the_key_name),
	    cmocka_unit_test(test_curve_own_key_is_health_only),
	    cmocka_unit_test(test_curve_start_up_checks),
	};
	const struct CMUnitTest two_worker_tests[] = {
	    cmocka_unit_test(test_idle_worker_takes_the_request),
	    cmocka_unit_test(test_worker_idle_again_after_a_dropped_request),
	    cmocka_unit_test(test_copy_of_a_request_in_hand_is_answered_once),
	    cmocka_unit_test(test_copies_waiting_for_busy_workers_are_answered),
	    cmocka_unit_test(
	        test_copy_waiting_while_the_first_is_answered_gets_its_answer),
	    cmocka_unit_test(test_copies_taken_at_once_are_handled_once),
	    cmocka_unit_test(
	        test_copies_taken_at_once_after_the_answer_get_the_kept_one),
	    cmocka_unit_test(test_secret_reply_through_the_proxy_is_wiped),
	};
	const struct CMUnitTest tcp_tests[] = {
	    cmocka_unit_test(test_deadlines_read_by_the_callers_clock),
	    /* After it: the clock it taught (what a host learns is kept
	     * for 5 to 10 s, and the smallest lag of them counts). */
	    cmocka_unit_test(test_copy_from_a_caller_behind_is_handled_once),
	    cmocka_unit_test(test_queued_request_teaches_no_clock),
	};
	const struct CMUnitTest tcp6_tests[] = {
	    cmocka_unit_test(test_served_over_ipv6),
	    cmocka_unit_test(test_ipv6_only_where_asked),
	};
	const struct CMUnitTest tcp_caller_tests[] = {
	    cmocka_unit_test(test_caller_users_unknown_user_refused),
	};
	const struct CMUnitTest caller_user_tests[] = {
	    cmocka_unit_test(test_caller_users_by_uid),
	    cmocka_unit_test(
	        test_operator_and_launcher_need_root_or_the_services_user),
	};
	const struct CMUnitTest copies_tests[] = {
	    cmocka_unit_test(test_other_callers_request_in_hand_is_its_own),
	    cmocka_unit_test(
	        test_other_callers_request_after_the_answer_is_its_own),
	};
	const struct CMUnitTest batch_tests[] = {
	    cmocka_unit_test(test_waiting_requests_come_as_one_batch),
	    cmocka_unit_test(
	        test_requests_expiring_while_others_are_handled_are_dropped),
	};
	int failed = cmocka_run_group_tests(tests, setup, teardown);

	failed += cmocka_run_group_tests_name(
	    "curve", curve_tests, curve_setup, curve_teardown);
	failed += cmocka_run_group_tests_name("two workers", two_worker_tests,
	    setup_two_workers, teardown_two_workers);
	failed += cmocka_run_group_tests_name("copies of two callers",
	    copies_tests, setup_copies_plain, teardown_copies);
	failed += cmocka_run_group_tests_name("copies of two keys",
	    copies_tests, setup_copies_curve, teardown_copies);
	failed += cmocka_run_group_tests_name(
	    "batch", batch_tests, setup_batches, teardown_batches);
	failed += cmocka_run_group_tests_name(
	    "tcp", tcp_tests, setup_tcp, teardown_tcp);
	failed += cmocka_run_group_tests_name(
	    "tcp over IPv6", tcp6_tests, setup_tcp6, teardown_tcp6);
	failed += cmocka_run_group_tests_name("tcp, caller users",
	    tcp_caller_tests, setup_tcp_callers, teardown_tcp);
	failed += cmocka_run_group_tests_name("caller users", caller_user_tests,
	    setup_caller_users, teardown_caller_users);
	return failed;
}
