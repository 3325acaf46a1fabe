/*
 * scepd-frontend: SCEP over HTTP (libmicrohttpd) in front of the RA, and the
 * NDES-style admin page in front of the challenge service. No keys here and
 * no ASN.1 parsing of requests: bytes in, bytes forwarded.
 */
#ifndef SCEPD_FRONTEND_H
#define SCEPD_FRONTEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "clock.h"
#include "netaddr.h"
#include "rpc.h"
#include "sandbox.h"

/* [frontend] of the configuration file. */
struct frontend_settings {
	char *listen;
	char *ra_endpoint;
	char *challenge_endpoint;
	char *paths;
	char *admin_path;
	char *admin_password_file;
	char *crl_path; /* "" : no CRL served */
	char
	    *previous_crl_path; /* the replaced CA's CRL ([ca] PreviousCAKey) */
	long max_query_string;
	long max_body_size;
	long max_bodies_held; /* all connections' POST bodies together */
	long connection_timeout;
	long request_deadline;
	long per_ip_connection_limit;
	long max_connections;
	long rpc_timeout;
	long threads;
	long upstream_threads; /* UpstreamThreads: offload.c */
	char *external_url; /* "": derived from Listen and Paths */
	char *admin_hosts; /* AdminHosts: Host names of the admin page */
	int sign_profiles;
	char *profile_organization;
	int profile_key_extractable; /* ProfileKeyIsExtractable */
	long profile_retries, profile_retry_delay; /* Apple's PENDING polls */
	char *trusted_proxies; /* TrustedProxies: networks whose
	                        * X-Forwarded-For is believed */
	char *ra_server_key; /* RAServerKey: the RA's public key file(s) */
	char *challenge_server_key; /* ChallengeServerKey */
	struct rpc_curve_settings curve; /* CurveZMQ keys (rpc.h) */
	struct sandbox_settings sandbox; /* Sandbox, User */
};

/* The RA's GetCACert reply: the GetCACert, GetCACaps and GetNextCACert
 * answers (a copy of the parts asked for, which the holder frees with
 * cacert_clear). */
struct cacert {
	uint8_t *body;
	size_t body_len;
	char *content_type;
	uint8_t *ca_der; /* the CA certificate alone, for thumbprints */
	size_t ca_der_len;
	/* [ra] CACertificate as the RA was given it, DER each, the issuing
	 * CA first (then intermediates, the root if there); empty from an RA
	 * that does not send it. Profiles trust its roots. */
	ProtobufCBinaryData *chain;
	size_t nchain;
	char *caps; /* the GetCACaps answer */
	uint8_t *next_ca; /* the GetNextCACert answer; NULL: none set */
	size_t next_ca_len;
	int64_t fetched_at; /* monotonic ms the RA gave it (cache_get_cacert) */
};
void cacert_clear(struct cacert *c);
/* The parts of a struct cacert a caller of cache_get_cacert wants. */
#define CACERT_CERTS 1u /* body, content_type, ca_der, chain */
#define CACERT_CAPS 2u
#define CACERT_NEXT 4u

/* The RA's GetCACert reply, fetched on first use so that its answers
 * cost no round trip to the RA. Older than CACHE_SECONDS and younger than
 * CACHE_STALE_SECONDS, they are still answered at once while an offload
 * thread asks the RA again (one such refresh at a time, none for
 * CACHE_SECONDS after one failed): a slow RA or CA does not hold them up.
 * Older, they are asked of the RA, and the last answer stands when it
 * does not give one; for CACHE_SECONDS after an ask the RA did not
 * answer, the last answers are given at once to everyone, and after
 * that, until the RA answers, to all but the one request asking it. */
#define CACHE_SECONDS 60
#define CACHE_STALE_SECONDS 600
/* After the RA did not answer, what no copy is kept of is asked by one
 * request at a time this long, the others answered 503 at once
 * (upstream.c, crl.c). */
#define CACHE_EMPTY_RETRY_MS 10000
struct cache {
	pthread_mutex_t lock;
	struct cacert cacert;
	int64_t cacert_at; /* monotonic ms of the fetch; 0: none */
	int refresh_asked; /* a refresh is queued or under way */
	/* Monotonic ms of the last ask (a refresh's or another) the RA did
	 * not answer; 0: an ask since was answered. */
	int64_t refresh_failed_at;
	/* Monotonic ms since a request has been asking the RA after it did
	 * not answer, the one at a time (with no copy, CACHE_EMPTY_RETRY_MS;
	 * with one too old to give unasked, until the RA answers); 0: none. */
	int64_t probe_since;
};

/* The CRL, kept like the answers above (under cache.lock). */
struct crl_cache {
	uint8_t *der;
	size_t len;
	int64_t at;
	int64_t next_update; /* the CRL's, epoch seconds */
	int64_t expired_said_at; /* crl_expired's log, monotonic ms */
	/* Monotonic ms since a request has been to ask the RA for it (from
	 * the HTTP thread, queued for an UpstreamThread); 0: none. */
	int64_t fetch_since;
	int64_t failed_at; /* the last ask the RA did not answer; 0: none */
	/* The last ask the CA refused (no such CRL is made) and why: the
	 * answer, 404, for CRL_RETRY_MS without asking again; 0: none. */
	int64_t refused_at;
	char refusal[256];
};
void crl_cache_clear(struct crl_cache *c);
/* Under cache.lock: whether no request is asking the RA for what `since`
 * marks (0, or a mark older than twice RPCTimeout: its request never
 * asked), and with `claim` this one is, from now. */
struct frontend;
int cache_ask_free(const struct frontend *fe, int64_t *since, int claim);

/*
 * admin.c: the admin page's defence against password guessing. Each
 * check of an admin password is an scrypt (16 MiB, some 50 ms) on an
 * UpstreamThread, the threads devices' PKIOperations wait for: at most
 * ADMIN_CHECKS_AT_ONCE run at once across the frontend (a request that
 * finds them all taken gets 429 at once), and an account name with
 * ADMIN_FAIL_LIMIT failed logins within ADMIN_FAIL_WINDOW_MS gets 429
 * until that window is over, as Windows locks an account out: every
 * client of the admin page is a loopback address, so counting by
 * address would lock all accounts out at once, and each of 127/8's
 * addresses would buy five more guesses. Credentials that passed are
 * known for PASSWD_SEEN_MS without a check (an MDM asking a password per
 * device), after the lock-out: that a known password passes and a guess
 * does not would otherwise tell a guesser which is right.
 */
#define ADMIN_CHECKS_AT_ONCE 2
#define ADMIN_FAIL_LIMIT 5
#define ADMIN_FAIL_WINDOW_MS 60000
/* Account names remembered. Failures for more names than this within a
 * window (someone trying names) lock out every login until the window
 * is over, rather than forget a count. */
#define ADMIN_FAIL_SLOTS 64
struct admin_fail_slot {
	char account[128]; /* "": free; longer names are cut */
	int64_t window_start; /* monotonic ms of the window's first failure */
	unsigned int count;
};
struct admin_guard {
	atomic_int checking; /* password checks under way */
	pthread_mutex_t lock; /* guards slots, full_until */
	struct admin_fail_slot slots[ADMIN_FAIL_SLOTS];
	int64_t full_until; /* every slot was counting: all locked till then */
	struct passwd_seen *seen; /* logins that passed lately (passwd.h) */
};
void admin_guard_init(struct admin_guard *g);
void admin_guard_free(struct admin_guard *g);

/* The /64s whose connections are counted at once: more than
 * libmicrohttpd's connection limit (FD_SETSIZE - 4). */
#define HTTP_PREFIX_SLOTS 1024
/* Connections past MaxConnections a loopback client may open: the
 * launcher's liveness check reaches the HTTP threads (http_full). */
#define HTTP_LOOPBACK_RESERVE 16

struct frontend {
	struct frontend_settings settings;
	char **paths; /* SCEP paths, NULL-terminated */
	size_t npaths;
	void *zmq_ctx; /* one per process */
	struct rpc_curve *curve; /* own CurveZMQ keys */
	struct rpc_link *ra_link, *challenge_link; /* how workers reach them */
	/* Each HTTP worker thread's own RPC clients (ZeroMQ sockets never
	 * cross threads); freed by the key's destructor at thread exit. */
	pthread_key_t clients_key;
	struct netmask_list trusted_proxies;
	/* The machine's host name, lower-case, read at start (uname is no
	 * system call of the sandbox): one of the admin page's names. */
	char hostname[256];
	struct cache cache;
	struct crl_cache crl, previous_crl;
	struct admin_guard admin_guard;
	/* Bytes of POST body buffers of all connections (http_collect):
	 * each may hold up to MaxBodySize for RequestDeadline, and a
	 * thousand slow clients a gigabyte. */
	atomic_size_t bodies_held;
	struct MHD_Daemon *daemon;
	struct offload *offload; /* threads that wait on the services */
	struct watchdog *watchdog;
	/* http.c's acceptor: takes connections off the listening socket
	 * and hands them to the daemon's threads in turn. */
	int listen_fd;
	int acceptor_stop[2]; /* a pipe: written to stop it */
	pthread_t acceptor;
	int acceptor_running;
	/* IPv6 clients' open connections by /64, for PerIPConnectionLimit
	 * (libmicrohttpd's counts each address, and a host picks any of
	 * its /64): counted by the daemon's threads as connections start
	 * and close, looked at by the acceptor. */
	pthread_mutex_t prefix_lock;
	struct http_prefix_count {
		uint8_t prefix[8];
		unsigned int n; /* 0: a free slot */
	} prefixes[HTTP_PREFIX_SLOTS];
	int64_t prefix_warned_ms;
	/* Connections handed to libmicrohttpd and not closed yet (queued
	 * to a thread too): the acceptor keeps them under MaxConnections. */
	atomic_long connections;
	int64_t full_warned_ms;
	/* Connections libmicrohttpd closed for PerIPConnectionLimit since
	 * the last line saying so (http_mhd_log), and when it was. */
	atomic_long per_ip_refused;
	_Atomic int64_t per_ip_warned_ms;
};

/* One HTTP request, from the URI log callback to NOTIFY_COMPLETED. */
struct request {
	char *raw_uri; /* as the client sent it, query included */
	int64_t start_ms; /* monotonic */
	int started; /* the access handler has seen it */
	int route; /* enum route of http.c */
	int responded; /* a response is queued */
	int collecting; /* reading a POST body on a SCEP path */
	int too_big; /* ... which went over MaxBodySize */
	size_t body_lost; /* ... or whose buffer (this size) was not had */
	int body_over_held; /* ... because MaxBodiesHeld was reached */
	char method[16]; /* log_escape'd: a real method is unchanged */
	char path[256]; /* routes the request; never logged as it is */
	/* `path` for the log (log_escape): libmicrohttpd unescaped it, so a
	 * client could write spaces, "client=..." fields and terminal
	 * escapes into every line that names it. Set with `path`
	 * (request_set_path). */
	char log_path[3 * 256];
	/* A SCEP request's path as configured in Paths (the request's may
	 * differ in case or add /pkiclient.exe): the RA and the challenge
	 * service are given this one, which picks the validator. */
	const char *scep_path;
	char operation[32];
	/* The client: the connection's peer, or, when the peer is one of
	 * TrustedProxies, the address its X-Forwarded-For names (the peer
	 * is then in `via`). Limits, logs and the loopback-only pages use
	 * it. */
	char client[64];
	int loopback;
	struct netaddr peer;
	int peer_known;
	char via[64]; /* "": not forwarded by a trusted proxy */
	/* The admin API, or the admin page asked for JSON: errors answered
	 * before its handler runs (a full offload queue) are JSON too. */
	int json;
	int bad_forwarded; /* a trusted proxy's X-Forwarded-For unreadable */
	char user_agent[256];
	unsigned int status;
	size_t bytes;
	uint8_t *body;
	size_t body_len, body_cap;
	/* Answered by an offload thread (offload.c): http_respond holds the
	 * response in `held`, which the HTTP thread queues once the
	 * connection is resumed; `held_result` is the handler's (MHD_NO
	 * closes the connection). */
	int offloaded;
	int resumed; /* by an offload thread: counted until completed */
	struct MHD_Connection *conn;
	struct request *next_queued;
	int64_t queued_ms;
	struct MHD_Response *held;
	unsigned int held_status;
	size_t held_bytes;
	enum MHD_Result held_result;
};

/* --- http.c: the daemon, routing, limits, responses, the access log ---- */

/* Starts the daemon for listen_fd, which it then owns: 0, or -1
 * (listen_fd closed). Nothing is accepted yet. */
int http_start(struct frontend *fe, int listen_fd);
/* The configured SCEP path (Paths) a request for `url` goes to, or NULL. */
const char *http_scep_path(const struct frontend *fe, const char *url);
/* Starts the acceptor: after the sandbox is locked, so no request is
 * served by a process not yet confined (connections wait in the listen
 * backlog until then). 0, or -1. */
int http_accept_start(struct frontend *fe);
/* Stops the acceptor, then the daemon (its threads joined). */
void http_stop(struct frontend *fe);

/* A complete request answered: called by the access handler, and again
 * by an offload thread (r->offloaded) for what http_offload() sent there. */
enum MHD_Result
http_dispatch(struct frontend *fe, struct MHD_Connection *c, struct request *r);
/* Hands a request that would wait on another service to an offload
 * thread; what it answers is sent when the connection is resumed. From
 * the access handler, before any response is queued. */
enum MHD_Result
http_offload(struct frontend *fe, struct MHD_Connection *c, struct request *r);

/* --- offload.c: requests that wait on another service, off the HTTP
 * threads ---------------------------------------------------------------- */

struct offload;
/* `threads` of them (0: upstream_threads_default, logged); NULL on
 * failure. */
struct offload *offload_start(struct frontend *fe, long threads);
/* UpstreamThreads' bound: each thread holds a ZeroMQ socket per RA and
 * challenge endpoint, and libzmq's context holds 1023 by default. */
#define UPSTREAM_THREADS_MAX 256
/* UpstreamThreads = 0: four per core of `cores` (as many requests at the
 * RA as it has workers), at most UPSTREAM_THREADS_MAX and as many as
 * `max_sockets` ZeroMQ sockets hold with `sockets_each` a thread; at
 * least one (upstream_threads.c). */
long
upstream_threads_default(long cores, size_t sockets_each, long max_sockets);
/* Suspends `c` and queues `r`, from the access handler: 0; -1 while
 * stopping (the caller answers). */
int
offload_submit(struct offload *o, struct MHD_Connection *c, struct request *r);
/* Has a thread run cache_refresh() before the next queued request. */
void offload_refresh(struct offload *o);
/* Requests waiting for a thread, for /metrics. */
size_t offload_queued(struct offload *o);
/* Answers what is queued 503, lets the running finish, joins, and waits
 * (a little) until their answers are sent. Requests offloaded from now on
 * are answered 503 by the HTTP thread itself. */
void offload_drain(struct offload *o);
/* A request resumed by an offload thread is complete (http_completed). */
void offload_sent(struct offload *o);
/* After MHD_stop_daemon(): no HTTP thread is left to offload. */
void offload_free(struct offload *o);

/* watchdog.c: RequestDeadline for requests whose headers never end. */
struct watchdog;
struct watchdog *watchdog_start(long deadline_s, long idle_s);
void watchdog_stop(struct watchdog *w);

/* sandbox.c: the frontend's policy. frontend_sandbox_enter() once the
 * listening socket is open, before any thread; frontend_sandbox_lock()
 * once libmicrohttpd's threads run. */
int frontend_sandbox_enter(const struct frontend *fe, const char *config_file);
int frontend_sandbox_lock(void);
void frontend_sandbox_free(void);
/* MHD_OPTION_NOTIFY_CONNECTION, with the watchdog as its closure. */
void watchdog_notify(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode code);
/* From the URI log callback: the request line is in, RequestDeadline
 * runs from now. */
void watchdog_request_begun(struct watchdog *w, struct MHD_Connection *c);
/* From NOTIFY_COMPLETED: the wait for the next request starts now. */
void watchdog_request_done(struct watchdog *w, struct MHD_Connection *c);

/* A header for http_respond: name/value pairs, ending with a NULL name. */
struct http_header {
	const char *name;
	const char *value;
};

/* Queues status + body (copied) and records both for the access log. */
enum MHD_Result http_respond(struct MHD_Connection *c, struct request *r,
    unsigned int status, const char *type, const void *body, size_t len,
    const struct http_header *headers);
/* The same for a body that holds a secret (a password): the copy the
 * response keeps is wiped when it is freed. */
enum MHD_Result http_respond_secret(struct MHD_Connection *c, struct request *r,
    unsigned int status, const char *type, const void *body, size_t len,
    const struct http_header *headers);
enum MHD_Result http_text(struct MHD_Connection *c, struct request *r,
    unsigned int status, const char *text);
/* 503 with Retry-After: our own outage, the client is to come back. */
enum MHD_Result
http_unavailable(struct MHD_Connection *c, struct request *r, const char *text);
/* 503 with Retry-After for memory short while reading a request, logged
 * with `what` (http.c). */
enum MHD_Result
http_no_memory(struct MHD_Connection *c, struct request *r, const char *what);
/* 429 with Retry-After (JSON for the admin API, r->json). */
enum MHD_Result http_too_many(struct MHD_Connection *c, struct request *r,
    unsigned int retry_after_s, const char *text);
/* Whether the request's Host is a name of this server (loopback names,
 * the host name, Listen's and ExternalURL's hosts, AdminHosts) or absent;
 * else 0 with the name, or the header cut to 64 bytes and escaped for
 * the log (log_escape: at most 193 bytes), in `named`. */
int http_host_is_ours(const struct frontend *fe, struct MHD_Connection *c,
    char *named, size_t namedlen);
/* 405 with Allow. */
enum MHD_Result http_not_allowed(
    struct MHD_Connection *c, struct request *r, const char *allow);

/* NDES's opening lines, HTML: the admin page's and the SCEP URL's. */
#define NDES_PAGE_INTRO \
	"<h1>Network Device Enrollment Service</h1>\n<p>Network Device " \
	"Enrollment Service allows you to obtain certificates for routers " \
	"or other network devices using the Simple Certificate Enrollment " \
	"Protocol (SCEP).</p>\n"

/* --- upstream.c: RPC to the RA and the challenge service, the cache ---- */

enum upstream {
	UPSTREAM_RA,
	UPSTREAM_CHALLENGE,
};

enum upstream_result {
	UPSTREAM_OK,
	UPSTREAM_REFUSED, /* STATUS_REFUSED: the reply's error says why */
	UPSTREAM_BAD_REQUEST, /* STATUS_BAD_REQUEST */
	UPSTREAM_UNAVAILABLE, /* timeout or STATUS_UNAVAILABLE: HTTP 503 */
	UPSTREAM_RATE_LIMITED, /* STATUS_RATE_LIMITED: HTTP 429 */
	UPSTREAM_FAILED, /* anything else: HTTP 500 */
	UPSTREAM_WOULD_WAIT, /* not cached, and the caller may not wait */
};

void upstream_thread_free(void *clients);

/*
 * Calls `which` from this thread's client with RPCTimeout, expecting a
 * reply with body `expect`. *reply is set whenever a reply came, whatever
 * the result (for its error text); the caller frees it with
 * scep__v1__reply__free_unpacked(*reply, NULL).
 */
enum upstream_result
upstream_call(struct frontend *fe, enum upstream which, Scep__V1__Request *req,
    Scep__V1__Reply__BodyCase expect, Scep__V1__Reply **reply);
/* The same to one endpoint of `which` (RAEndpoint's, ChallengeEndpoint's
 * list), never another: what one of several services reports of itself. */
enum upstream_result upstream_call_at(struct frontend *fe, enum upstream which,
    size_t endpoint, Scep__V1__Request *req, Scep__V1__Reply__BodyCase expect,
    Scep__V1__Reply **reply);
/* How many endpoints `which` has (0: no client), and the address of one
 * (NULL past the last). */
size_t upstream_endpoints(struct frontend *fe, enum upstream which);
const char *
upstream_endpoint(struct frontend *fe, enum upstream which, size_t i);

/* The cached answers: on UPSTREAM_OK a copy of the `want` parts
 * (CACERT_*) is the caller's; on errors, err holds the reason for a
 * 400/500 body. Not cached, they are asked of the RA if `may_wait` (an
 * offload thread), else UPSTREAM_WOULD_WAIT. An old copy is the answer
 * when the caller may not wait (a refresh is asked for) or the RA does
 * not answer. */
enum upstream_result cache_get_cacert(struct frontend *fe, struct cacert *out,
    unsigned int want, int may_wait, char *err, size_t errlen);
/* Whether what was fetched at `at` (monotonic ms; 0: never) is younger
 * than CACHE_SECONDS, or than CACHE_STALE_SECONDS when `stale`. */
int cache_fresh(int64_t at, int stale);
/* Whole seconds a copy fetched at `at` stays fresh: its max-age, so that
 * a cache downstream keeps it no longer than the frontend does. */
int cache_seconds_left(int64_t at);
void cache_init(struct cache *cache);
void cache_free(struct cache *cache);
/* An answer older than CACHE_SECONDS was given: have an offload thread
 * ask the RA again, unless one does already. */
void cache_want_refresh(struct frontend *fe);
void cache_doubt(struct frontend *fe);
/* In an offload thread: asks the RA for its GetCACert reply when older
 * than CACHE_SECONDS. */
void cache_refresh(struct frontend *fe);

/* --- scep_http.c ------------------------------------------------------- */

/* Answers a request on a SCEP path; a POST body is in r->body. */
enum MHD_Result scep_handle(struct frontend *fe, struct MHD_Connection *c,
    struct request *r, const char *query, size_t qlen);

/* --- admin.c ----------------------------------------------------------- */

enum MHD_Result
admin_handle(struct frontend *fe, struct MHD_Connection *c, struct request *r);
/* On the HTTP thread, before a POST body is read or the request queued
 * for an UpstreamThread: 1 with *ret when admin_handle would refuse the
 * client for not being loopback (the same 403), else 0. */
int admin_refused_remote(const struct frontend *fe, struct MHD_Connection *c,
    struct request *r, enum MHD_Result *ret);
/* The part of `url` under AdminPath ("" for the page), or NULL. */
const char *admin_subpath(const struct frontend *fe, const char *url);
/* Whether the client asked for JSON (Accept: application/json). */
int admin_wants_json(struct MHD_Connection *c);
/* Whether what is at `url` under AdminPath answers in JSON (set in
 * r->json when the request is routed). */
int admin_answers_json(
    const struct frontend *fe, struct MHD_Connection *c, const char *url);
/* {"error": error} with `status` (503 adds Retry-After). */
enum MHD_Result admin_json_error(struct MHD_Connection *c, struct request *r,
    unsigned int status, const char *error);
/* The same with Retry-After: retry_after_s (none when 0). */
enum MHD_Result
admin_json_error_after(struct MHD_Connection *c, struct request *r,
    unsigned int status, unsigned int retry_after_s, const char *error);
/* A password issued for `what` ("a profile", "the admin page") that was
 * not handed out (no memory, the RA's signature failed, the answer not
 * queued) goes back to the challenge service: else it stays outstanding,
 * unseen, counted against PasswordMax for its lifetime. */
void admin_withdraw(struct frontend *fe, const char *user, const char *password,
    const char *what);
/* A page or API under AdminPath, called once the user is authenticated
 * and holds the route's right. */
typedef enum MHD_Result (*admin_handler)(struct frontend *fe,
    struct MHD_Connection *c, struct request *r, const char *user);

/* --- profile.c: Apple configuration profiles -------------------------- */

/* AdminPath/profile.mobileconfig: a SCEP payload with a fresh challenge and
 * the CA certificate, signed by the RA when SignProfiles is on. */
enum MHD_Result profile_handle(struct frontend *fe, struct MHD_Connection *c,
    struct request *r, const char *user);
/* The one of Paths a URL's path (its query and fragment aside) is, or
 * NULL (none, a path longer than `len`, no path): what profiles' passwords
 * are issued for. `buf` holds the path. */
const char *profile_url_scep_path(
    const struct frontend *fe, const char *url, char *buf, size_t len);

/* --- crl.c: the CRL at CRLPath --------------------------------------- */

enum MHD_Result crl_handle(struct frontend *fe, struct MHD_Connection *c,
    struct request *r, int previous);

/* --- metrics.c: /metrics in Prometheus text format --------------------- */

/* For loopback clients (an UpstreamThread: it asks the services). */
enum MHD_Result metrics_handle(
    struct frontend *fe, struct MHD_Connection *c, struct request *r);
/* The 403 of any other, on the HTTP thread. */
enum MHD_Result
metrics_refuse_remote(struct MHD_Connection *c, struct request *r);
/* Counts one request by its answer's HTTP status (from the access log);
 * `sent`: the answer left whole, else it counts as "unsent". */
void metrics_count_response(unsigned int status, int sent);
/* A connection refused before any request of it was read: by
 * MaxConnections (answered 503 by the acceptor) or by
 * PerIPConnectionLimit (an address's or a /64's, closed). */
enum metrics_refusal {
	METRICS_REFUSED_MAX_CONNECTIONS,
	METRICS_REFUSED_PER_IP
};
void metrics_count_refused(enum metrics_refusal why);

#endif
