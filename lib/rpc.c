#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <zmq.h>

#include "log.h"
#include "rpc.h"

#define RPC_DEFAULT_MAX_MESSAGE (4u << 20)
#define RPC_MIN_ATTEMPT_MS 200

const char *
rpc_strerror(int err)
{
	switch (err) {
	case RPC_OK:
		return "ok";
	case RPC_ETIMEDOUT:
		return "no answer before the deadline";
	case RPC_EPROTO:
		return "unreadable answer";
	case RPC_ESYS:
		return "ZeroMQ or memory failure";
	}
	return "unknown rpc error";
}

int64_t
rpc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- client ----------------------------------------------------------- */

struct rpc_client {
	void *zmq_ctx;
	void *sock;
	char *endpoints;
	char *origin;
	uint64_t next_id;
};

static void *
rpc_client_socket(struct rpc_client *client)
{
	void *sock = zmq_socket(client->zmq_ctx, ZMQ_DEALER);
	int zero = 0, one = 1, ivl = 2000, ttl = 6000;
	char *copy, *tok, *save = NULL;

	if (sock == NULL)
		return NULL;
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	/* Queue only to peers that are connected: a dead endpoint of several
	 * is then skipped instead of swallowing requests. */
	zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof(one));
	zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof(ivl));
	zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &ttl, sizeof(ttl));
	if ((copy = strdup(client->endpoints)) == NULL) {
		zmq_close(sock);
		return NULL;
	}
	for (tok = strtok_r(copy, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save))
		if (zmq_connect(sock, tok) != 0)
			log_warn("rpc: cannot connect to %s: %s", tok,
			    zmq_strerror(errno));
	free(copy);
	return sock;
}

struct rpc_client *
rpc_client_new(void *zmq_ctx, const char *endpoints, const char *origin)
{
	struct rpc_client *client = calloc(1, sizeof(*client));

	if (client == NULL)
		return NULL;
	client->zmq_ctx = zmq_ctx;
	client->endpoints = strdup(endpoints);
	client->origin = strdup(origin);
	if (client->endpoints == NULL || client->origin == NULL ||
	    RAND_bytes((unsigned char *)&client->next_id,
	        sizeof(client->next_id)) != 1 ||
	    (client->sock = rpc_client_socket(client)) == NULL) {
		rpc_client_free(client);
		return NULL;
	}
	client->next_id >>= 1; /* room to count up */
	return client;
}

void
rpc_client_free(struct rpc_client *client)
{
	if (client == NULL)
		return;
	if (client->sock != NULL)
		zmq_close(client->sock);
	free(client->endpoints);
	free(client->origin);
	free(client);
}

/* Waits for the reply to `id` until `until_ms`. 1: got it, 0: timed out. */
static int
rpc_client_wait(struct rpc_client *client, uint64_t id, int64_t until_ms,
    Scep__V1__Reply **reply, int *err)
{
	for (;;) {
		zmq_pollitem_t item = {client->sock, 0, ZMQ_POLLIN, 0};
		int64_t left = until_ms - rpc_now_ms();
		zmq_msg_t msg;
		Scep__V1__Reply *rep;
		int rc;

		if (left <= 0)
			return 0;
		rc = zmq_poll(&item, 1, (long)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			*err = RPC_ESYS;
			return 1;
		}
		if (rc == 0)
			return 0;
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, client->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&msg);
			continue;
		}
		rep = scep__v1__reply__unpack(
		    NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
		zmq_msg_close(&msg);
		if (rep == NULL) {
			log_warn("rpc: dropped an unreadable reply");
			continue;
		}
		if (rep->id != id) {
			/* A late answer to an earlier attempt or call. */
			log_debug("rpc: dropped reply %llu, waiting for %llu",
			    (unsigned long long)rep->id,
			    (unsigned long long)id);
			scep__v1__reply__free_unpacked(rep, NULL);
			continue;
		}
		*reply = rep;
		*err = RPC_OK;
		return 1;
	}
}

int
rpc_call(struct rpc_client *client, Scep__V1__Request *req, int timeout_ms,
    Scep__V1__Reply **reply)
{
	int64_t start = rpc_now_ms(), deadline = start + timeout_ms;
	int attempt_ms = timeout_ms / 3, err = RPC_ETIMEDOUT;
	uint8_t *buf = NULL;
	size_t len;

	*reply = NULL;
	if (attempt_ms < RPC_MIN_ATTEMPT_MS)
		attempt_ms = RPC_MIN_ATTEMPT_MS;
	req->id = ++client->next_id;
	req->deadline_ms = deadline;
	req->origin = client->origin;
	len = scep__v1__request__get_packed_size(req);
	if ((buf = malloc(len ? len : 1)) == NULL)
		return RPC_ESYS;
	scep__v1__request__pack(req, buf);

	while (rpc_now_ms() < deadline) {
		int64_t until = rpc_now_ms() + attempt_ms;

		if (until > deadline)
			until = deadline;
		if (client->sock == NULL &&
		    (client->sock = rpc_client_socket(client)) == NULL) {
			err = RPC_ESYS;
			break;
		}
		if (zmq_send(client->sock, buf, len, ZMQ_DONTWAIT) < 0) {
			/* No connected peer yet: wait a little, retry. */
			struct timespec ts = {0, 20 * 1000 * 1000};

			if (errno != EAGAIN && errno != EINTR) {
				err = RPC_ESYS;
				break;
			}
			nanosleep(&ts, NULL);
			continue;
		}
		if (rpc_client_wait(client, req->id, until, reply, &err))
			break;
		/* Lazy Pirate: the socket may be wedged on a dead peer;
		 * start over on a fresh one and resend the same id. */
		log_debug("rpc: no answer to %llu from %s, retrying",
		    (unsigned long long)req->id, client->endpoints);
		zmq_close(client->sock);
		client->sock = NULL;
	}
	free(buf);
	if (*reply == NULL && err == RPC_OK)
		err = RPC_ETIMEDOUT;
	return *reply != NULL ? RPC_OK : err;
}

/* --- server ----------------------------------------------------------- */

struct rpc_arena {
	void **blocks;
	size_t n, cap;
};

void
rpc_adopt(struct rpc_arena *arena, void *p)
{
	if (p == NULL)
		return;
	if (arena->n == arena->cap) {
		size_t cap = arena->cap ? arena->cap * 2 : 16;
		void **b = realloc(arena->blocks, cap * sizeof(*b));

		if (b == NULL)
			abort();
		arena->blocks = b;
		arena->cap = cap;
	}
	arena->blocks[arena->n++] = p;
}

void *
rpc_alloc(struct rpc_arena *arena, size_t size)
{
	void *p = calloc(1, size ? size : 1);

	if (p == NULL)
		abort();
	rpc_adopt(arena, p);
	return p;
}

char *
rpc_strdup(struct rpc_arena *arena, const char *s)
{
	size_t len = strlen(s) + 1;
	char *p = rpc_alloc(arena, len);

	memcpy(p, s, len);
	return p;
}

static void
rpc_arena_clear(struct rpc_arena *arena)
{
	for (size_t i = 0; i < arena->n; i++)
		free(arena->blocks[i]);
	arena->n = 0;
}

struct rpc_arena *
rpc_arena_new(void)
{
	return calloc(1, sizeof(struct rpc_arena));
}

void
rpc_arena_free(struct rpc_arena *arena)
{
	if (arena == NULL)
		return;
	rpc_arena_clear(arena);
	free(arena->blocks);
	free(arena);
}

static volatile sig_atomic_t rpc_stop;

static void
rpc_on_signal(int sig)
{
	(void)sig;
	rpc_stop = 1;
}

struct rpc_worker {
	const struct rpc_server_config *config;
	const char *backend;
	pthread_t thread;
	int started;
};

/* Whether `origin` is one of the space-separated `peers`. */
static int
rpc_peer_allowed(const char *peers, const char *origin)
{
	size_t len;

	if (origin == NULL || (len = strlen(origin)) == 0)
		return 0;
	for (const char *p = peers; (p = strstr(p, origin)) != NULL; p += len)
		if ((p == peers || p[-1] == ' ') &&
		    (p[len] == ' ' || p[len] == '\0'))
			return 1;
	return 0;
}

static const struct rpc_route *
rpc_route_find(const struct rpc_route *routes, Scep__V1__Request__BodyCase b)
{
	for (; routes->body != 0; routes++)
		if (routes->body == b)
			return routes;
	return NULL;
}

/* Handles one request frame; returns the packed reply or NULL to drop. */
static uint8_t *
rpc_dispatch(const struct rpc_server_config *config, void *state,
    const void *data, size_t size, size_t *out_len, struct rpc_arena *arena)
{
	Scep__V1__Request *req;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	const struct rpc_route *route;
	uint8_t *out = NULL;

	req = scep__v1__request__unpack(NULL, size, data);
	if (req == NULL) {
		log_warn(
		    "rpc: dropped an unreadable request of %zu bytes", size);
		return NULL;
	}
	reply.id = req->id;
	if (req->deadline_ms < rpc_now_ms()) {
		log_warn("rpc: dropped request %llu from %s: past its deadline",
		    (unsigned long long)req->id,
		    req->origin ? req->origin : "?");
		goto out;
	}
	route = rpc_route_find(config->routes, req->body_case);
	if (route == NULL) {
		log_warn("rpc: request %llu from %s: no route for body %d",
		    (unsigned long long)req->id,
		    req->origin ? req->origin : "?", (int)req->body_case);
		reply.status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply.error = "request kind not served here";
	} else if (!rpc_peer_allowed(route->peers, req->origin)) {
		log_warn("rpc: request %llu: %s is not permitted from '%s'",
		    (unsigned long long)req->id, route->name,
		    req->origin ? req->origin : "");
		reply.status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply.error = "request kind not permitted from this peer";
	} else
		route->handler(state, req, &reply, arena);
	*out_len = scep__v1__reply__get_packed_size(&reply);
	out = malloc(*out_len ? *out_len : 1);
	if (out != NULL)
		scep__v1__reply__pack(&reply, out);
out:
	scep__v1__request__free_unpacked(req, NULL);
	return out;
}

static void *
rpc_worker_main(void *arg)
{
	struct rpc_worker *w = arg;
	const struct rpc_server_config *config = w->config;
	void *sock = zmq_socket(config->zmq_ctx, ZMQ_DEALER);
	void *state = NULL;
	struct rpc_arena arena = {NULL, 0, 0};
	int zero = 0;

	if (sock == NULL || zmq_connect(sock, w->backend) != 0) {
		log_error(
		    "rpc: worker cannot connect: %s", zmq_strerror(errno));
		goto out;
	}
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	if (config->worker_init != NULL &&
	    (state = config->worker_init(config->service)) == NULL) {
		log_error("rpc: worker start-up failed");
		goto out;
	}
	for (;;) {
		zmq_msg_t ident, body;
		uint8_t *out;
		size_t out_len = 0;

		zmq_msg_init(&ident);
		zmq_msg_init(&body);
		if (zmq_msg_recv(&ident, sock, 0) < 0 ||
		    !zmq_msg_more(&ident) || zmq_msg_recv(&body, sock, 0) < 0) {
			int e = errno;

			zmq_msg_close(&ident);
			zmq_msg_close(&body);
			if (e == ETERM)
				break;
			continue;
		}
		/* Drop any extra frames: one message per frame is the rule. */
		while (zmq_msg_more(&body)) {
			zmq_msg_close(&body);
			zmq_msg_init(&body);
			if (zmq_msg_recv(&body, sock, 0) < 0)
				break;
		}
		out = rpc_dispatch(config, state, zmq_msg_data(&body),
		    zmq_msg_size(&body), &out_len, &arena);
		rpc_arena_clear(&arena);
		if (out != NULL) {
			if (zmq_msg_send(&ident, sock, ZMQ_SNDMORE) < 0 ||
			    zmq_send(sock, out, out_len, 0) < 0)
				log_warn("rpc: reply not sent: %s",
				    zmq_strerror(errno));
			free(out);
		}
		zmq_msg_close(&ident);
		zmq_msg_close(&body);
	}
out:
	if (config->worker_fini != NULL && state != NULL)
		config->worker_fini(state);
	free(arena.blocks);
	if (sock != NULL)
		zmq_close(sock);
	return NULL;
}

/* Moves every frame of one message from `from` to `to`. */
static void
rpc_forward(void *from, void *to)
{
	for (;;) {
		zmq_msg_t msg;
		int more;

		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, from, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&msg);
			return;
		}
		more = zmq_msg_more(&msg);
		if (zmq_msg_send(&msg, to, more ? ZMQ_SNDMORE : 0) < 0)
			zmq_msg_close(&msg);
		if (!more)
			return;
	}
}

int
rpc_serve(const struct rpc_server_config *config)
{
	void *front = NULL, *back = NULL;
	struct rpc_worker *workers = NULL;
	char backend[64];
	int64_t max = config->max_message ? (int64_t)config->max_message
	                                  : RPC_DEFAULT_MAX_MESSAGE;
	int nworkers = config->workers, zero = 0, rc = -1;
	struct sigaction sa;
	sigset_t block, old;

	if (nworkers <= 0)
		nworkers = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nworkers <= 0)
		nworkers = 1;
	snprintf(backend, sizeof(backend), "inproc://rpc-workers-%p",
	    (void *)config);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = rpc_on_signal; /* no SA_RESTART: poll must wake */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	front = zmq_socket(config->zmq_ctx, ZMQ_ROUTER);
	back = zmq_socket(config->zmq_ctx, ZMQ_DEALER);
	if (front == NULL || back == NULL)
		goto out;
	zmq_setsockopt(front, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(back, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(front, ZMQ_MAXMSGSIZE, &max, sizeof(max));
	if (strncmp(config->endpoint, "ipc://", 6) == 0)
		unlink(config->endpoint + 6); /* a stale socket of a crash */
	if (zmq_bind(front, config->endpoint) != 0) {
		log_error("cannot listen on %s: %s", config->endpoint,
		    zmq_strerror(errno));
		goto out;
	}
	if (zmq_bind(back, backend) != 0)
		goto out;

	/* Workers must not take the stop signals: the poll below does. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	if ((workers = calloc(nworkers, sizeof(*workers))) == NULL)
		goto out_mask;
	for (int i = 0; i < nworkers; i++) {
		workers[i].config = config;
		workers[i].backend = backend;
		if (pthread_create(&workers[i].thread, NULL, rpc_worker_main,
		        &workers[i]) == 0)
			workers[i].started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	log_info("serving on %s with %d worker%s", config->endpoint, nworkers,
	    nworkers == 1 ? "" : "s");

	while (!rpc_stop) {
		zmq_pollitem_t items[] = {
		    {front, 0, ZMQ_POLLIN, 0}, {back, 0, ZMQ_POLLIN, 0}};

		if (zmq_poll(items, 2, 1000) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (items[0].revents & ZMQ_POLLIN)
			rpc_forward(front, back);
		if (items[1].revents & ZMQ_POLLIN)
			rpc_forward(back, front);
	}
	rc = 0;
	log_info("stopping");
	goto out;
out_mask:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
out:
	if (front != NULL)
		zmq_close(front);
	if (back != NULL)
		zmq_close(back);
	/* Wakes workers blocked in recv with ETERM. */
	zmq_ctx_shutdown(config->zmq_ctx);
	for (int i = 0; workers != NULL && i < nworkers; i++)
		if (workers[i].started)
			pthread_join(workers[i].thread, NULL);
	free(workers);
	if (rc == 0 && strncmp(config->endpoint, "ipc://", 6) == 0)
		unlink(config->endpoint + 6);
	return rc;
}
