/*
 * Request/reply between services over ZeroMQ: ROUTER servers, DEALER
 * clients, one protobuf-c Request or Reply per frame (proto/scep.proto).
 *
 * Clients stamp each request with an id and an absolute deadline, poll to
 * the deadline, resend the same id on a fresh socket when an attempt times
 * out (zguide Lazy Pirate; with several endpoints that is also failover) and
 * drop replies whose id does not match. They never block past the deadline.
 *
 * Servers hand each request to a handler chosen from a route table by the
 * request's body; requests with no route, or past their deadline, are
 * answered STATUS_BAD_REQUEST or dropped, and logged. Handlers run in worker
 * threads (one per `workers`), each with its own state from worker_init.
 */
#ifndef SCEPD_RPC_H
#define SCEPD_RPC_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "scep.pb-c.h"

enum rpc_error {
	RPC_OK = 0,
	RPC_ETIMEDOUT = -1, /* no answer before the deadline */
	RPC_EPROTO = -2, /* an answer that could not be unpacked */
	RPC_ESYS = -3, /* ZeroMQ or memory failure */
};
const char *rpc_strerror(int err);

/* Milliseconds since the Unix epoch (deadlines cross processes). */
int64_t rpc_now_ms(void);

/* --- client ----------------------------------------------------------- */

struct rpc_client;

/*
 * `endpoints`: one or more ZeroMQ endpoints, space separated; `origin` names
 * the caller in requests. The client belongs to the calling thread.
 */
struct rpc_client *
rpc_client_new(void *zmq_ctx, const char *endpoints, const char *origin);
void rpc_client_free(struct rpc_client *client);

/*
 * Sends `req` (its id, deadline and origin are set here) and waits up to
 * timeout_ms for the matching reply. On RPC_OK, *reply is the caller's to
 * free with scep__v1__reply__free_unpacked(*reply, NULL).
 */
int rpc_call(struct rpc_client *client, Scep__V1__Request *req, int timeout_ms,
    Scep__V1__Reply **reply);

/* --- server ----------------------------------------------------------- */

/*
 * Memory a handler allocates for its reply; freed after the reply is sent.
 * rpc_alloc() never returns NULL (aborts on exhaustion, as malloc failure
 * here cannot be answered meaningfully).
 */
struct rpc_arena;
void *rpc_alloc(struct rpc_arena *arena, size_t size);
char *rpc_strdup(struct rpc_arena *arena, const char *s);
/* Hands ownership of a malloc'ed block to the arena. */
void rpc_adopt(struct rpc_arena *arena, void *p);
/* An arena of one's own, to call a handler in process (unit tests). */
struct rpc_arena *rpc_arena_new(void);
void rpc_arena_free(struct rpc_arena *arena);

/*
 * A handler reads `req`, fills `reply` (id is already set; status is
 * STATUS_OK unless it changes it) and puts any memory it needs in `arena`.
 * `worker` is what worker_init returned for this thread.
 */
typedef void (*rpc_handler)(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

struct rpc_route {
	Scep__V1__Request__BodyCase body; /* 0 ends the table */
	const char *name; /* for logs */
	/* Origins allowed to ask (space separated, e.g. "frontend scepctl");
	 * any other is refused with STATUS_BAD_REQUEST and logged. Origins are
	 * what callers declare: between hosts, CurveZMQ keys vouch for them. */
	const char *peers;
	rpc_handler handler;
};

struct rpc_server_config {
	void *zmq_ctx;
	const char *endpoint; /* to bind */
	const struct rpc_route *routes;
	int workers; /* threads; <= 0: one per core */
	/* Called in each worker thread before its first request; may be NULL. */
	void *(*worker_init)(void *service);
	void (*worker_fini)(void *worker);
	void *service; /* passed to worker_init */
	size_t max_message; /* bytes; 0: 4 MiB */
};

/*
 * Binds and serves until SIGINT or SIGTERM (the caller must not block
 * them in the calling thread). Returns 0 on a clean stop, -1 if it could
 * not bind (logged). Call from the main thread after start-up.
 */
int rpc_serve(const struct rpc_server_config *config);

#endif
