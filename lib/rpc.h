/*
 * Request/reply between services over ZeroMQ: ROUTER servers, DEALER
 * clients, one protobuf-c Request or Reply per frame (proto/scep.proto).
 *
 * Clients stamp each request with an id, an absolute deadline and when it
 * was sent, by their clock (a server on another host reads the deadline by
 * the caller's clock: rpc_clock_translate in rpc.c), poll to
 * the deadline, resend the same id on a fresh socket when an attempt times
 * out (zguide Lazy Pirate; with several endpoints that is also failover) and
 * drop replies whose id does not match. They never block past the deadline.
 *
 * Servers hand each request to a handler chosen from a route table by the
 * request's body; requests with no route, or past their deadline, are
 * answered STATUS_BAD_REQUEST or dropped, and logged. Handlers run in worker
 * threads (one per `workers`), each with its own state from worker_init;
 * with one worker, in the thread that listens (no proxy hop).
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
	RPC_ETOOBIG = -4, /* larger than the service reads: not sent */
};
const char *rpc_strerror(int err);

/* Milliseconds since the Unix epoch (deadlines cross processes). */
int64_t rpc_now_ms(void);

/* --- CurveZMQ ---------------------------------------------------------- */

/*
 * Between hosts, endpoints other than ipc:// and inproc:// are encrypted
 * and authenticated with CurveZMQ. Keys are Z85 text files (scepctl
 * keygen): NAME.pub, and NAME.key which must not be readable by group or
 * others.
 *
 * A server uses CURVE when it admits clients (CurveClients = NAME:FILE
 * ...): its ZAP handler admits only those public keys and names the peer
 * by the key's NAME, which must then be listed in the route's `peers` and
 * be the origin the request declares. It also admits the server's own
 * public key, as RPC_PEER_SELF: a health probe run where the service runs,
 * as its user, with its pair (scepctl health); routes listing that name
 * are liveness checks only. A client uses CURVE towards a
 * service whose public key it is given (CAServerKey, ...), with its own
 * pair. A network endpoint without CURVE is refused at start-up unless
 * AllowInsecureTransport = 1, which is logged as unsafe; ipc:// is guarded
 * by file permissions and needs no keys.
 */

#define RPC_KEY_LEN 40 /* characters of a Z85 CurveZMQ key */
/* The peer name of a client holding the server's own key pair; no
 * CurveClients NAME may be it. */
#define RPC_PEER_SELF "self"

/* A service's keys as its configuration section names them; the fields
 * are config_load()'s (strings "" when unset). */
struct rpc_curve_settings {
	char *secret_key_file; /* CurveSecretKeyFile: this service's pair */
	char *public_key_file; /* CurvePublicKeyFile: checked against it */
	char *clients; /* CurveClients: NAME:PUBKEYFILE ..., servers only */
	int allow_insecure; /* AllowInsecureTransport */
	/* CallerUsers: NAME:USER ..., servers only: over ipc:// a request
	 * declaring caller NAME must come from USER (or root). */
	char *caller_users;
};

/* A service's loaded keys: its own pair, the clients it admits. */
struct rpc_curve;

/*
 * Reads the key files of `s`, relative paths against the directory of
 * `file` (the configuration). `listen`: the endpoint this service serves,
 * NULL for a client only; served over the network, it needs CurveClients
 * or AllowInsecureTransport. Every problem is printed to stderr as
 * "FILE: [SECTION] Key: reason"; NULL then. Call at start-up (it opens
 * files); the caller frees with rpc_curve_free().
 */
struct rpc_curve *rpc_curve_load(const struct rpc_curve_settings *s,
    const char *listen, const char *file, const char *section);
void rpc_curve_free(struct rpc_curve *curve);
/* Whether `curve` serves with CURVE, i.e. admits some client key. */
int rpc_curve_serves(const struct rpc_curve *curve);

/*
 * How a client reaches one service: `endpoints` (space separated) and the
 * service's public key files `server_keys`: "" (no CURVE), one file for
 * every endpoint, or one per endpoint in the same order. With keys the
 * client presents the pair of `curve`. `endpoint_key` and `server_key_key`
 * name the configuration keys in messages. NULL after printing every
 * problem as rpc_curve_load() does. The link is read-only: any thread may
 * make clients of it. Freed with rpc_link_free(), after its clients.
 */
struct rpc_link;
/* 1 when tcp:// `endpoint` is to be reached (`connecting`) or bound over
 * IPv6 (ZMQ_IPV6): an IPv6 address in brackets, a host name with IPv6
 * addresses only; 0 otherwise ("*" and IPv4 addresses included). */
int rpc_endpoint_ipv6(const char *endpoint, int connecting);
/* `address` (a caller's) as logs show it: an IPv4 one on an IPv6 socket
 * ("::ffff:10.0.0.21") as "10.0.0.21". */
const char *rpc_address_shown(const char *address);
struct rpc_link *rpc_link_new(const struct rpc_curve *curve,
    const char *endpoints, const char *server_keys, const char *file,
    const char *section, const char *endpoint_key, const char *server_key_key);
/* A link to the service whose own pair `curve` holds, at `endpoints`,
 * presenting that pair (a health probe, RPC_PEER_SELF). NULL without a
 * pair, endpoints or memory. */
struct rpc_link *
rpc_link_self(const struct rpc_curve *curve, const char *endpoints);
void rpc_link_free(struct rpc_link *link);
/* How many endpoints `link` has: the ZeroMQ sockets each client of it may
 * open (one per endpoint). */
size_t rpc_link_endpoints(const struct rpc_link *link);

/*
 * One Z85 key from `path` into `out` (RPC_KEY_LEN + 1 bytes): the first
 * line that is not empty or a '#' comment. `secret`: the file must not be
 * readable, writable or executable by group or others. 0, or -1 with the
 * reason in `err`.
 */
int
rpc_key_read(const char *path, int secret, char *out, char *err, size_t errlen);

/*
 * The largest request frame the challenge service and the CA read (their
 * ZMQ_MAXMSGSIZE). Part of the protocol: libzmq drops the connection of
 * a peer that sends more and says nothing, so a caller that sent such a
 * request would wait out its timeout and retry; callers refuse it
 * themselves (rpc_client_set_max). libzmq limits each frame, not a
 * message: an admitted peer (a CurveClients key, a CallerUsers user)
 * sending frames marked "more" without end makes it hold them all, a
 * limit only the service's memory limit (deploy/k8s) sets.
 */
#define RPC_MAX_CHALLENGE_REQUEST (64 * 1024)
#define RPC_MAX_CA_REQUEST (256 * 1024)
/*
 * A request frame unpacked (protobuf-c), or NULL: unreadable, or taking
 * more allocations than RPC_UNPACK_BUDGET(its size). Each unknown field
 * protobuf-c keeps costs some 90 bytes for its 2: a 4 MiB request of them
 * took 184 MiB, one per worker at once. Small fields are the dearest
 * (a CRL import's shortest entries, 7 bytes sent, take about 120 while
 * unpacked): up to the CA's largest request they may take 24 times
 * their size, beyond it 4 (the RA's envelopes: bytes, copied once).
 * Free it with scep__v1__request__free_unpacked(req, NULL).
 */
#define RPC_UNPACK_BUDGET(size) \
	(4 * (size) + \
	    20 * ((size) < RPC_MAX_CA_REQUEST ? (size) : RPC_MAX_CA_REQUEST) + \
	    64 * 1024)
Scep__V1__Request *rpc_request_unpack(const void *data, size_t size);
/* [frontend] ChallengeEndpoint when unset: the frontend's, and scepctl's,
 * which reads the same key to reach the challenge service. */
#define RPC_CHALLENGE_ENDPOINT_DEFAULT "ipc://run/challenge.sock"
/* How far ahead of the CA's clock an imported revocation may be dated
 * (RevokeImportRequest: the old CA's clock, or the lost host's in a
 * restore), and taken as revoked now; scepctl refuses a CRL beyond it
 * before sending anything. */
#define RPC_IMPORT_SKEW_S 300
/* The largest imported CRL number the CA numbers its CRLs above: room
 * for 2^32 more CRLs in 63 bits. */
#define RPC_IMPORT_NUMBER_MAX (INT64_MAX - (INT64_C(1) << 32))
/* The RA's: a PKIOperation's message of up to RPC_MAX_PKI_MESSAGE (the
 * most the frontend's MaxBodySize and MaxQueryString may let in) and the
 * request's other fields. */
#define RPC_MAX_PKI_MESSAGE (4 * 1024 * 1024)
#define RPC_MAX_RA_REQUEST (RPC_MAX_PKI_MESSAGE + 64 * 1024)

/* --- client ----------------------------------------------------------- */

struct rpc_client;

/*
 * `endpoints`: one or more ZeroMQ endpoints, space separated; `origin` names
 * the caller in requests. No CURVE: for ipc:// (or a test). The client
 * belongs to the calling thread.
 */
struct rpc_client *
rpc_client_new(void *zmq_ctx, const char *endpoints, const char *origin);
/* The same through `link` (borrowed: it must outlive the client). */
struct rpc_client *rpc_client_new_link(
    void *zmq_ctx, const struct rpc_link *link, const char *origin);
void rpc_client_free(struct rpc_client *client);
/* `bytes`: the largest message the service reads (its max_message).
 * A request that would not fit, framing included, is not sent: rpc_call
 * returns RPC_ETOOBIG at once. 0 (the default): no limit here. */
void rpc_client_set_max(struct rpc_client *client, size_t bytes);
/* How many copies of its last call's request the client sent (0: none;
 * more than one: one the service answered may not be the one it acted
 * on last). */
unsigned int rpc_client_copies(const struct rpc_client *client);

/*
 * Sends `req` (its id, deadline and origin are set here) and waits up to
 * timeout_ms for the matching reply. On RPC_OK, *reply is the caller's to
 * free with scep__v1__reply__free_unpacked(*reply, NULL).
 */
int rpc_call(struct rpc_client *client, Scep__V1__Request *req, int timeout_ms,
    Scep__V1__Reply **reply);
/* rpc_call to endpoint `endpoint` of the client's link alone, never
 * another (what one of several services reports of itself: /metrics);
 * RPC_ETIMEDOUT after 250 ms when no connection to it is up. */
int rpc_call_at(struct rpc_client *client, size_t endpoint,
    Scep__V1__Request *req, int timeout_ms, Scep__V1__Reply **reply);
/* The endpoints of the client's link, and the address of one (NULL past
 * the last). */
size_t rpc_client_endpoints(const struct rpc_client *client);
const char *rpc_client_endpoint(const struct rpc_client *client, size_t i);
/* The same in one attempt for the whole timeout instead of sending again
 * after a third of it: for a request whose answer may take that long (a
 * challenge check asking an MDM) or that must not be done twice (an
 * operator's revocation), where a copy would only ask again. */
int rpc_call_once(struct rpc_client *client, Scep__V1__Request *req,
    int timeout_ms, Scep__V1__Reply **reply);
/* rpc_call_once that is always sent and waits timeout_ms (at least
 * RPC_MIN_ATTEMPT_MS), while the service may do it up to serve_ms after
 * (what must be done whatever the caller's time left: a password marked
 * used once its certificate exists). */
int
rpc_call_once_served_within(struct rpc_client *client, Scep__V1__Request *req,
    int timeout_ms, int serve_ms, Scep__V1__Reply **reply);

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
/* The same for a block holding a secret (a password in clear): its first
 * `len` bytes are wiped before it is freed, and so is the packed reply
 * once sent. */
void rpc_adopt_secret(struct rpc_arena *arena, void *p, size_t len);
/* rpc_strdup of a secret (a password in clear): rpc_adopt_secret. */
char *rpc_strdup_secret(struct rpc_arena *arena, const char *s);
/* One sample of a MetricsReply in `arena` (`labels` copied; NULL: none),
 * the frontend's /metrics line NAME{LABELS} VALUE. */
Scep__V1__Metric *rpc_metric(struct rpc_arena *arena, const char *name,
    const char *help, const char *type, const char *labels, double value);
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

/* One request of a batch (rpc_server_config.batch), to be answered in
 * `reply` as a handler would. */
struct rpc_batch_item {
	const Scep__V1__Request *req;
	Scep__V1__Reply *reply;
	struct rpc_arena *arena;
};
/* Answers the first items (at least one) and returns how many: those
 * answers are sent, and the rest is handed over again. */
typedef size_t (*rpc_batch_handler)(
    void *worker, struct rpc_batch_item *items, size_t n);
#define RPC_BATCH_MAX 16

struct rpc_route {
	Scep__V1__Request__BodyCase body; /* 0 ends the table */
	const char *name; /* for logs */
	/* Origins allowed to ask (space separated, e.g. "frontend scepctl");
	 * any other is refused with STATUS_BAD_REQUEST and logged. Origins are
	 * what callers declare, each one name (a CurveClients NAME's
	 * characters) equal to an element of this list; with CURVE the name
	 * of the client's key must be listed here and equal the declared
	 * origin. */
	const char *peers;
	rpc_handler handler;
};

/* The launcher's liveness check (HealthRequest): answered by a worker as
 * any request is, so that a service whose workers are all stuck stays
 * silent; nothing else is done. A route's handler. */
void rpc_handle_health(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* The route of req's body, if its declared origin is among the route's
 * peers (as a caller on this host without CURVE is admitted), or NULL:
 * what the server hands a handler (the fuzz targets use it). */
const struct rpc_route *
rpc_route_for(const struct rpc_route *routes, const Scep__V1__Request *req);

struct rpc_server_config {
	void *zmq_ctx;
	const char *endpoint; /* to bind */
	const struct rpc_route *routes;
	int workers; /* threads; <= 0: four per core, at most 64 */
	/* Called in each worker thread before its first request; may be NULL. */
	void *(*worker_init)(void *service);
	void (*worker_fini)(void *worker);
	void *service; /* passed to worker_init */
	size_t max_message; /* bytes; 0: 4 MiB */
	/* Keys (borrowed); NULL or admitting no client: no CURVE, and then
	 * a network endpoint is refused unless AllowInsecureTransport. */
	const struct rpc_curve *curve;
	/* Called once from the serving thread after binding, when every
	 * worker has run worker_init (and the ZAP handler runs), before the
	 * first request: where a service locks its sandbox (sandbox_lock).
	 * -1 stops: rpc_serve() then returns -1. May be NULL. */
	int (*ready)(void *service);
	/* Called from the serving thread after each answer and after each
	 * second without a request: work a service defers (the challenge
	 * service's "used" marks). With several workers that thread is not
	 * theirs: it runs while they answer. May be NULL. */
	void (*idle)(void *service);
	/* With one worker: requests of kind `batch_body` that arrived
	 * together (up to RPC_BATCH_MAX, each admitted by its route as any
	 * other) go to `batch` together instead of one by one to the route's
	 * handler; requests of other kinds read with them are answered
	 * first. The CA commits the certificates of a batch together: one
	 * disk flush for all of them. NULL: requests are read and answered
	 * one at a time. */
	Scep__V1__Request__BodyCase batch_body;
	rpc_batch_handler batch;
	/* With several workers: each keeps its last answer to a request of
	 * kind `keep_body` (0: none), with the request's bytes, until that
	 * request's deadline, for a copy of it that waited in the queue while
	 * it was answered: the copy gets the same answer without being
	 * handled again. Only answers STATUS_OK that hold no secret
	 * (rpc_adopt_secret) are kept, and only a kind whose requests hold
	 * none either (the RA's PKIOperation: envelopes). */
	Scep__V1__Request__BodyCase keep_body;
};

/*
 * Binds and serves until SIGINT or SIGTERM (the caller must not block
 * them in the calling thread). With CURVE a ZAP handler thread admits the
 * clients' keys (one per ZeroMQ context). Returns 0 on a clean stop, -1 if
 * it could not bind (logged). Call from the main thread after start-up.
 */
int rpc_serve(const struct rpc_server_config *config);

#ifdef SCEPD_TEST_HOOKS
/* Tests only: called by a worker between saying that it answers a
 * request and looking whether another worker answers a copy of it. */
extern void (*rpc_test_copy_hook)(void);
/* Tests only: called as a reply holding a secret is freed, just wiped. */
extern void (*rpc_test_wiped_hook)(const void *data, size_t size);
/* Tests: added to rpc_now_ms, as a step of the system's clock would. */
extern _Atomic int64_t rpc_test_wall_offset_ms;
/* Tests only: the next requests a one-worker server with a batch handler
 * reads are gathered until `n` of the batch kind have come (at most
 * `ms` from the first), then handed over together; the other kinds are
 * answered meanwhile. Once. What a loaded machine sends apart arrives as
 * one batch. */
void rpc_test_gather_arm(long n, long ms);
#endif

#endif
