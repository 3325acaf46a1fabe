/*
 * The HTTP side: libmicrohttpd set-up, per-request state, routing, the
 * limits libmicrohttpd does not set by default, and one access-log line
 * per request.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "frontend.h"
#include "log.h"
#include "netaddr.h"
#include "service.h"

#define ALLOW_SCEP "GET, HEAD, POST"
#define ALLOW_READ "GET, HEAD"
#define ALLOW_ADMIN "GET, POST"

enum route {
	ROUTE_NONE,
	ROUTE_HEALTHZ,
	ROUTE_ADMIN,
	ROUTE_SCEP,
	ROUTE_METRICS,
	ROUTE_CRL,
	ROUTE_PREVIOUS_CRL, /* PreviousCRLPath */
};

/* A response body that holds a secret, wiped when libmicrohttpd is done
 * with it (its own copy, MHD_RESPMEM_MUST_COPY, it frees as it is). */
struct secret_body {
	size_t len;
	unsigned char bytes[];
};

static void
secret_body_free(void *cls)
{
	struct secret_body *b = cls;

	OPENSSL_cleanse(b->bytes, b->len);
	free(b);
}

static struct MHD_Response *
response_of_secret(const void *body, size_t len)
{
	struct secret_body *b = malloc(sizeof(*b) + (len ? len : 1));
	struct MHD_Response *resp;

	if (b == NULL)
		return NULL;
	b->len = len;
	memcpy(b->bytes, body, len);
	resp = MHD_create_response_from_buffer_with_free_callback_cls(
	    len, b->bytes, secret_body_free, b);
	if (resp == NULL)
		secret_body_free(b);
	return resp;
}

/*
 * Whether the client of a suspended connection closed it while its
 * answer was made (curl's --max-time, a browser's reload): its end of the
 * socket reads end-of-file. libmicrohttpd does not watch a suspended
 * connection, and once resumed writes the answer into the closed one and
 * counts it sent. A client that half-closes after its request (HTTP
 * clients do not) looks gone too; nginx tells them apart no better.
 */
static int
http_client_gone(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	char byte;
	ssize_t n;

	if (info == NULL)
		return 0;
	n = recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 ||
	    (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	        errno != EINTR);
}

static enum MHD_Result
respond(struct MHD_Connection *c, struct request *r, unsigned int status,
    const char *type, const void *body, size_t len,
    const struct http_header *headers, int secret)
{
	struct MHD_Response *resp;
	enum MHD_Result ret = MHD_NO;

	/* A secret (a password, a profile holding one) is not handed to a
	 * client that left while it was made: MHD_NO, and the caller
	 * withdraws the password rather than let it count against
	 * PasswordMax until it expires. */
	if (secret && r->offloaded && http_client_gone(c)) {
		log_warn("%s %s from %s: the client went away while its "
		         "answer was made",
		    r->method, r->log_path, r->client);
		return MHD_NO;
	}
	resp = secret ? response_of_secret(body, len)
	              : MHD_create_response_from_buffer(
	                    len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	if (type != NULL &&
	    MHD_add_response_header(resp, "Content-Type", type) != MHD_YES)
		goto out;
	if (MHD_add_response_header(
	        resp, "X-Content-Type-Options", "nosniff") != MHD_YES)
		goto out;
	for (; headers != NULL && headers->name != NULL; headers++)
		if (MHD_add_response_header(
		        resp, headers->name, headers->value) != MHD_YES)
			goto out;
	if (r->offloaded) {
		/* An offload thread: the HTTP thread queues it (http_held). */
		if (r->held != NULL)
			MHD_destroy_response(r->held);
		r->held = resp;
		r->held_status = status;
		r->held_bytes = len;
		return MHD_YES;
	}
	ret = MHD_queue_response(c, status, resp);
	if (ret == MHD_YES) {
		r->responded = 1;
		r->status = status;
		r->bytes = len;
	}
out:
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result
http_respond(struct MHD_Connection *c, struct request *r, unsigned int status,
    const char *type, const void *body, size_t len,
    const struct http_header *headers)
{
	return respond(c, r, status, type, body, len, headers, 0);
}

enum MHD_Result
http_respond_secret(struct MHD_Connection *c, struct request *r,
    unsigned int status, const char *type, const void *body, size_t len,
    const struct http_header *headers)
{
	return respond(c, r, status, type, body, len, headers, 1);
}

/* The access handler's call after an offload thread resumed the
 * connection: the response it made, or the handler's MHD_NO. */
static enum MHD_Result
http_held(struct MHD_Connection *c, struct request *r)
{
	struct MHD_Response *resp = r->held;
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	r->held = NULL;
	ret = r->held_result == MHD_YES
	    ? MHD_queue_response(c, r->held_status, resp)
	    : MHD_NO;
	MHD_destroy_response(resp);
	if (ret == MHD_YES) {
		r->responded = 1;
		r->status = r->held_status;
		r->bytes = r->held_bytes;
	}
	return ret;
}

enum MHD_Result
http_offload(struct frontend *fe, struct MHD_Connection *c, struct request *r)
{
	if (offload_submit(fe->offload, c, r) == 0)
		return MHD_YES;
	return http_unavailable(c, r, "Server stopping; retry later.\n");
}

/* An error `text` (its first line) as the admin API answers: JSON. */
static enum MHD_Result
http_json_error(struct MHD_Connection *c, struct request *r,
    unsigned int status, const char *text)
{
	char error[256];

	snprintf(error, sizeof(error), "%.*s", (int)strcspn(text, "\n"), text);
	return admin_json_error(c, r, status, error);
}

enum MHD_Result
http_text(struct MHD_Connection *c, struct request *r, unsigned int status,
    const char *text)
{
	if (r->json && status >= 400)
		return http_json_error(c, r, status, text);
	return http_respond(c, r, status, "text/plain; charset=utf-8", text,
	    strlen(text), NULL);
}

enum MHD_Result
http_unavailable(struct MHD_Connection *c, struct request *r, const char *text)
{
	static const struct http_header h[] = {
	    {"Retry-After", "5"}, {NULL, NULL}};

	if (r->json)
		return http_json_error(
		    c, r, MHD_HTTP_SERVICE_UNAVAILABLE, text);
	return http_respond(c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
	    "text/plain; charset=utf-8", text, strlen(text), h);
}

/* Memory short while reading the request: our outage, 503, never the
 * 400 or 413 that tells the client its request is wrong. */
enum MHD_Result
http_no_memory(struct MHD_Connection *c, struct request *r, const char *what)
{
	log_warn("%s %s from %s: no memory for %s; answered 503", r->method,
	    r->log_path, r->client, what);
	return http_unavailable(c, r,
	    "The server is out of memory for this request; try again later.\n");
}

enum MHD_Result
http_too_many(struct MHD_Connection *c, struct request *r,
    unsigned int retry_after_s, const char *text)
{
	char secs[16], body[512];
	const struct http_header h[] = {{"Retry-After", secs}, {NULL, NULL}};

	if (r->json)
		return admin_json_error_after(
		    c, r, MHD_HTTP_TOO_MANY_REQUESTS, retry_after_s, text);
	snprintf(secs, sizeof(secs), "%u", retry_after_s);
	snprintf(body, sizeof(body), "%s\n", text);
	return http_respond(c, r, MHD_HTTP_TOO_MANY_REQUESTS,
	    "text/plain; charset=utf-8", body, strlen(body), h);
}

/* Does `name` (host_header_name's form) stand among `list`'s names? */
static int
host_listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *s = list; *s != '\0';) {
		size_t len;

		s += strspn(s, " \t,");
		len = strcspn(s, " \t,");
		if (len == n && strncasecmp(s, name, n) == 0)
			return 1;
		s += len;
	}
	return 0;
}

/*
 * A page of another site that DNS rebinding points at 127.0.0.1 sends its
 * own name as Host, and its scripts are same-origin there: they could try
 * admin passwords and read /metrics from the browser of someone on this
 * machine. So loopback clients must also name this machine. No Host at
 * all (HTTP/1.0) is no browser.
 */
int
http_host_is_ours(const struct frontend *fe, struct MHD_Connection *c,
    char *named, size_t namedlen)
{
	const char *host =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	const char *url = fe->settings.external_url, *at, *end;
	char name[256], ours[256], authority[256];

	if (host == NULL)
		return 1;
	if (host_header_name(host, name, sizeof(name)) != 0) {
		/* For the log: a client's text, 64 bytes of it at most. */
		char cut[65];

		snprintf(cut, sizeof(cut), "%s", host);
		log_escape(named, namedlen, cut);
		return 0;
	}
	if (host_name_is_loopback(name) ||
	    host_listed(fe->settings.admin_hosts, name))
		return 1;
	/* The machine's own name (Debian maps it to 127.0.1.1) and Listen's
	 * host (the Admin URL scepd's first start prints, 0.0.0.0 too): a
	 * browser sends these only for a URL of this machine. */
	if (fe->hostname[0] != '\0' && strcmp(fe->hostname, name) == 0)
		return 1;
	if (host_header_name(fe->settings.listen, ours, sizeof(ours)) == 0 &&
	    strcmp(ours, name) == 0)
		return 1;
	/* ExternalURL: scheme://[user@]host[:port][/path], our own setting */
	if ((at = strstr(url, "://")) != NULL) {
		at += 3;
		end = at + strcspn(at, "/?#");
		snprintf(
		    authority, sizeof(authority), "%.*s", (int)(end - at), at);
		at = strrchr(authority, '@');
		if (host_header_name(at != NULL ? at + 1 : authority, ours,
		        sizeof(ours)) == 0 &&
		    strcmp(ours, name) == 0)
			return 1;
	}
	snprintf(named, namedlen, "%s", name);
	return 0;
}

enum MHD_Result
http_not_allowed(struct MHD_Connection *c, struct request *r, const char *allow)
{
	const struct http_header h[] = {{"Allow", allow}, {NULL, NULL}};
	static const char text[] = "Method not allowed.\n";
	/* The admin API's errors are JSON, this one too (with Allow). */
	static const char json[] = "{\n  \"error\": \"Method not allowed.\"\n}";

	if (r->json)
		return http_respond(c, r, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "application/json", json, sizeof(json) - 1, h);
	return http_respond(c, r, MHD_HTTP_METHOD_NOT_ALLOWED,
	    "text/plain; charset=utf-8", text, sizeof(text) - 1, h);
}

/* --- request state ---------------------------------------------------- */

static void
http_client_address(struct MHD_Connection *c, struct request *r)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	snprintf(r->client, sizeof(r->client), "?");
	if (ci == NULL || netaddr_from_sockaddr(ci->client_addr, &r->peer) != 0)
		return;
	r->peer_known = 1;
	netaddr_format(&r->peer, r->client, sizeof(r->client));
	r->loopback = netaddr_is_loopback(&r->peer);
}

/* Every X-Forwarded-For value of a request, joined with commas in the
 * order received (a proxy may add its own header rather than extend the
 * client's), and whether other forwarding headers came. */
struct forwarded_headers {
	char xff[8192];
	size_t len;
	int xff_seen, too_long, other_seen;
};

static enum MHD_Result
http_forwarded_header(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct forwarded_headers *f = cls;
	size_t n;

	(void)kind;
	if (strcasecmp(key, "Forwarded") == 0 ||
	    strcasecmp(key, "X-Real-IP") == 0) {
		f->other_seen = 1;
		return MHD_YES;
	}
	if (strcasecmp(key, "X-Forwarded-For") != 0)
		return MHD_YES;
	f->xff_seen = 1;
	n = value != NULL ? strlen(value) : 0;
	if (f->len + n + 2 > sizeof(f->xff)) {
		f->too_long = 1;
		return MHD_YES;
	}
	if (f->len > 0)
		f->xff[f->len++] = ',';
	memcpy(f->xff + f->len, value, n);
	f->len += n;
	f->xff[f->len] = '\0';
	return MHD_YES;
}

/* A peer not in TrustedProxies sent X-Forwarded-For: said once in
 * HTTP_UNTRUSTED_XFF_LOG_MS for each such peer (of the last
 * HTTP_UNTRUSTED_XFF_PEERS), since anyone may send one, but a proxy left
 * out of TrustedProxies (a Kubernetes pod network other than the one
 * configured) makes every device behind it one address to
 * WrongPasswordLimit and the log, and nothing else would say so. By
 * peer: a client's own header does not hide the proxy's. */
#define HTTP_UNTRUSTED_XFF_LOG_MS (10 * 60 * 1000)
#define HTTP_UNTRUSTED_XFF_PEERS 16
static void
http_untrusted_forwarder(const struct request *r)
{
	static struct {
		char peer[sizeof(r->client)];
		int64_t logged_ms;
	} seen[HTTP_UNTRUSTED_XFF_PEERS];
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	int64_t now = clock_monotonic_ms();
	size_t i, oldest = 0;
	int say;

	pthread_mutex_lock(&lock);
	for (i = 0; i < HTTP_UNTRUSTED_XFF_PEERS; i++) {
		if (strcmp(seen[i].peer, r->client) == 0)
			break;
		if (seen[i].logged_ms < seen[oldest].logged_ms)
			oldest = i;
	}
	if (i == HTTP_UNTRUSTED_XFF_PEERS) {
		i = oldest;
		snprintf(seen[i].peer, sizeof(seen[i].peer), "%s", r->client);
		seen[i].logged_ms = 0;
	}
	say = seen[i].logged_ms == 0 ||
	    now - seen[i].logged_ms >= HTTP_UNTRUSTED_XFF_LOG_MS;
	if (say)
		seen[i].logged_ms = now;
	pthread_mutex_unlock(&lock);
	if (!say)
		return;
	log_warn("X-Forwarded-For from %s, which is not in [frontend] "
	         "TrustedProxies: ignored, the client is %s (said once in %d "
	         "minutes for it). If %s is your reverse proxy or load "
	         "balancer, add it to TrustedProxies: else every device "
	         "behind it counts as one address for WrongPasswordLimit and "
	         "in the log",
	    r->client, r->client, HTTP_UNTRUSTED_XFF_LOG_MS / 60000, r->client);
}

/*
 * The client behind a trusted proxy; from any other peer, forwarding
 * headers are ignored and the peer is the client. A forwarded request is
 * never loopback, whatever address it names: a proxy on this host that
 * says it forwards must not open the admin page and /metrics to whoever
 * it forwards, nor may a trusted network claim 127.0.0.1 for itself. A
 * proxy that adds none of these headers cannot be told from a local
 * client (README: "Behind a reverse proxy").
 */
static void
http_forwarded(
    const struct frontend *fe, struct MHD_Connection *c, struct request *r)
{
	struct forwarded_headers *f;
	struct netaddr client;

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		r->loopback = 0;
		return;
	}
	MHD_get_connection_values(c, MHD_HEADER_KIND, http_forwarded_header, f);
	if (!f->xff_seen && !f->other_seen)
		goto out;
	r->loopback = 0;
	if (!f->xff_seen || !r->peer_known)
		goto out;
	if (!netmask_list_contains(&fe->trusted_proxies, &r->peer)) {
		http_untrusted_forwarder(r);
		goto out;
	}
	if (f->too_long ||
	    forwarded_client(&fe->trusted_proxies, f->xff, f->len, &client) !=
	        0) {
		r->bad_forwarded = 1;
		goto out;
	}
	memcpy(r->via, r->client, sizeof(r->via));
	netaddr_format(&client, r->client, sizeof(r->client));
out:
	free(f);
}

/* The request's method and path, and the path as the log gives it. */
static void
request_set_path(
    struct request *r, const char *method, const char *path, size_t len)
{
	/* libmicrohttpd 0.9.75 takes any bytes before the first space for
	 * the method ("client=192.0.2.1", an escape): escaped here once,
	 * which leaves a method that is one as it is. */
	log_escape(r->method, sizeof(r->method), method);
	snprintf(r->path, sizeof(r->path), "%.*s", (int)len, path);
	log_escape(r->log_path, sizeof(r->log_path), r->path);
}

/* MHD_OPTION_URI_LOG_CALLBACK: the raw request-target, before libmicrohttpd
 * unescapes it. What it returns is the request's *con_cls. */
static void *
http_uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct frontend *fe = cls;
	struct request *r = calloc(1, sizeof(*r));

	watchdog_request_begun(fe->watchdog, c);
	if (r == NULL)
		return NULL;
	if ((r->raw_uri = strdup(uri)) == NULL) {
		free(r);
		return NULL;
	}
	r->start_ms = clock_monotonic_ms();
	http_client_address(c, r);
	return r;
}

static const char *
http_toe_name(enum MHD_RequestTerminationCode toe)
{
	switch (toe) {
	case MHD_REQUEST_TERMINATED_COMPLETED_OK:
		return NULL;
	case MHD_REQUEST_TERMINATED_WITH_ERROR:
		return "ended with an error";
	case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
		return "idle past ConnectionTimeout";
	case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
		return "server stopping";
	case MHD_REQUEST_TERMINATED_READ_ERROR:
		return "read error";
	case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
		return "client went away";
	}
	return "ended";
}

/* One line per request; never the query string (it may carry secrets). */
static void
http_access_log(struct request *r, enum MHD_RequestTerminationCode toe)
{
	const char *why = http_toe_name(toe);
	char status[16];
	const char *query;

	if (!r->started)
		request_set_path(r, "-", r->raw_uri, strcspn(r->raw_uri, "?"));
	if (r->status != 0)
		snprintf(status, sizeof(status), "%u", r->status);
	else
		snprintf(status, sizeof(status), "-");
	/* The query length is what IIS's maxQueryString broke for iPads:
	 * logged so an administrator sees what devices send. */
	query = strchr(r->raw_uri, '?');
	log_info("%s %s op=%s status=%s client=%s%s%s query=%zu bytes=%zu "
	         "ms=%lld ua=\"%s\"%s%s%s",
	    r->method, r->log_path, r->operation[0] ? r->operation : "-",
	    status, r->client, r->via[0] ? " via=" : "", r->via,
	    query ? strlen(query + 1) : 0, r->bytes,
	    (long long)(clock_monotonic_ms() - r->start_ms), r->user_agent,
	    why ? " (" : "", why ? why : "", why ? ")" : "");
}

/* The body read so far given up, wiped first: it may hold an admin's
 * password or a one-time password. */
static void
request_body_drop(struct frontend *fe, struct request *r)
{
	if (r->body != NULL)
		OPENSSL_cleanse(r->body, r->body_len);
	free(r->body);
	atomic_fetch_sub(&fe->bodies_held, r->body_cap);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
}

static void
http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct frontend *fe = cls;
	struct request *r = *con_cls;

	watchdog_request_done(fe->watchdog, c);
	if (r == NULL)
		return;
	if (r->resumed)
		offload_sent(fe->offload);
	/* The launcher's check every few seconds (services/scepd/health.c)
	 * would bury the devices' lines; it is counted all the same. */
	if (!(r->status == MHD_HTTP_OK && strcmp(r->path, "/healthz") == 0 &&
	        strcmp(r->user_agent, "scepd (liveness check)") == 0))
		http_access_log(r, toe);
	metrics_count_response(
	    r->status, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
	if (r->held != NULL)
		MHD_destroy_response(r->held);
	free(r->raw_uri);
	request_body_drop(fe, r);
	free(r);
	*con_cls = NULL;
}

static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static const char per_ip[] = "Server reached connection limit";
	static const char failed[] = "Failed to start serving new connection";
	struct frontend *fe = cls;
	char buf[512];
	int64_t now;
	long n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	/*
	 * Its own limit is never reached (http_full): this is one address
	 * over PerIPConnectionLimit, said under that name, once every 10 s
	 * with a count (a client reconnecting at once wrote a line for each,
	 * 500 a second).
	 */
	if (strncmp(buf, per_ip, sizeof(per_ip) - 1) == 0) {
		metrics_count_refused(METRICS_REFUSED_PER_IP);
		n = atomic_fetch_add(&fe->per_ip_refused, 1) + 1;
		now = clock_monotonic_ms();
		if (now - atomic_load(&fe->per_ip_warned_ms) < 10000)
			return;
		atomic_store(&fe->per_ip_warned_ms, now);
		atomic_fetch_sub(&fe->per_ip_refused, n);
		log_warn(
		    "security: PerIPConnectionLimit = %ld: %ld connection%s "
		    "of an address holding that many closed (said at most "
		    "every 10 s)",
		    fe->settings.per_ip_connection_limit, n, n == 1 ? "" : "s");
		return;
	}
	/* A connection queued to a thread that could not start it (no
	 * memory for its pool): no close will count it down. */
	if (strncmp(buf, failed, sizeof(failed) - 1) == 0)
		atomic_fetch_sub(&fe->connections, 1);
	log_warn("libmicrohttpd: %s", buf);
}

/* --- routing ---------------------------------------------------------- */

/*
 * IIS hands NDES whatever follows mscep.dll, and NDES ignores it:
 * Windows' NDES client and some devices ask for
 * .../mscep.dll/pkiclient.exe. Any SCEP path answers there too; another
 * suffix does not.
 */
static int
path_pkiclient(const char *url, const char *path)
{
	static const char suffix[] = "/pkiclient.exe";
	size_t lp = strlen(path);

	if (lp > 0 && path[lp - 1] == '/')
		lp--;
	return strncasecmp(url, path, lp) == 0 &&
	    strcasecmp(url + lp, suffix) == 0;
}

const char *
http_scep_path(const struct frontend *fe, const char *url)
{
	for (size_t i = 0; i < fe->npaths; i++)
		if (config_path_equal(url, fe->paths[i], 0) ||
		    path_pkiclient(url, fe->paths[i]))
			return fe->paths[i];
	return NULL;
}

/* Sets r->scep_path to the configured path a SCEP request came on. */
static enum route
http_route(const struct frontend *fe, struct request *r, const char *url)
{
	if (strcmp(url, "/healthz") == 0)
		return ROUTE_HEALTHZ;
	if (strcmp(url, "/metrics") == 0)
		return ROUTE_METRICS;
	if (fe->settings.crl_path[0] != '\0' &&
	    strcmp(url, fe->settings.crl_path) == 0)
		return ROUTE_CRL;
	if (fe->settings.previous_crl_path[0] != '\0' &&
	    strcmp(url, fe->settings.previous_crl_path) == 0)
		return ROUTE_PREVIOUS_CRL;
	/* The admin page and what lies under it (profile, API). */
	if (admin_subpath(fe, url) != NULL)
		return ROUTE_ADMIN;
	if ((r->scep_path = http_scep_path(fe, url)) != NULL)
		return ROUTE_SCEP;
	return ROUTE_NONE;
}

/* libmicrohttpd's memory pool per connection: the request line and
 * headers, and the answer's status line and headers. */
static size_t
http_pool_size(const struct frontend_settings *s)
{
	/* libmicrohttpd refuses a request line larger than the pool with its
	 * own 414 and no log line; with this headroom our 414 naming
	 * MaxQueryString is what clients normally get (test_http_errors:
	 * 65536 bytes read, 65537 our 414). No more: it zeroes the whole
	 * pool between requests, so each keep-alive connection holds all of
	 * it (twice the limit held 1.2 MiB more at c=16). */
	return (size_t)s->max_query_string + 16 * 1024;
}

/* Kept free in the pool past a request's line and headers for its
 * answer's: with less, libmicrohttpd built the answer, found no room for
 * its header and closed the connection with nothing sent (an offloaded
 * PKIOperation's work done, a certificate perhaps issued, the answer
 * lost). */
#define HTTP_ANSWER_ROOM 4096

/* What one walk over a request's headers counts: their bytes, and what
 * says where its body ends. libmicrohttpd 0.9.75 takes the first
 * Content-Length of several, and keeps a connection open after a
 * request with both (RFC 9112 6.1: close it), which a proxy in front
 * that reads them otherwise turns into another request (smuggling). */
struct http_head {
	size_t bytes;
	int content_length, transfer_encoding, chunked;
};

static enum MHD_Result
http_head_header(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct http_head *f = cls;

	(void)kind;
	f->bytes += strlen(key) + (value != NULL ? strlen(value) : 0) + 4;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		f->content_length++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		f->transfer_encoding++;
		f->chunked +=
		    value != NULL && strcasecmp(value, "chunked") == 0;
	}
	return MHD_YES;
}

/* Answered now, which closes the connection unread: a body framed two
 * ways (400) or by a transfer coding other than chunked (501, RFC 9112
 * 6.1; it waited for RequestDeadline). MHD_NO when it is not. */
static int
http_framing_refused(struct MHD_Connection *c, struct request *r,
    const struct http_head *f, enum MHD_Result *ret)
{
	if (f->content_length > 1 || f->transfer_encoding > 1 ||
	    (f->content_length > 0 && f->transfer_encoding > 0)) {
		log_warn("%s %s from %s: %d Content-Length and %d "
		         "Transfer-Encoding headers: refused (where the body "
		         "ends is ambiguous)",
		    r->method, r->log_path, r->client, f->content_length,
		    f->transfer_encoding);
		*ret = http_text(c, r, MHD_HTTP_BAD_REQUEST,
		    "Where the body ends is ambiguous: one Content-Length, or "
		    "Transfer-Encoding: chunked alone.\n");
		return 1;
	}
	if (f->transfer_encoding > 0 && f->chunked != f->transfer_encoding) {
		log_warn(
		    "%s %s from %s: a Transfer-Encoding other than chunked",
		    r->method, r->log_path, r->client);
		*ret = http_text(c, r, MHD_HTTP_NOT_IMPLEMENTED,
		    "Transfer-Encoding: chunked is the only coding served.\n");
		return 1;
	}
	return 0;
}

/*
 * First call, headers read: note what came and refuse a body declared
 * over MaxBodySize at once (answering now closes the connection without
 * reading it). Everything else is answered in the last call: a response
 * queued in the first call makes libmicrohttpd 0.9.75 drop keep-alive.
 */
static enum MHD_Result
http_begin(struct frontend *fe, struct MHD_Connection *c, struct request *r,
    const char *url, const char *method)
{
	const char *ua, *cl;
	unsigned long long n;
	struct http_head head = {0, 0, 0, 0};
	char *end;
	enum MHD_Result ret;

	r->started = 1;
	r->route = http_route(fe, r, url);
	r->json = r->route == ROUTE_ADMIN && admin_answers_json(fe, c, url);
	request_set_path(r, method, url, strlen(url));
	ua = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
	snprintf(
	    r->user_agent, sizeof(r->user_agent), "%s", ua != NULL ? ua : "");
	/* Kept readable (iOS's "Settings/1.0 CFNetwork/..."), but neither
	 * its quotes nor a backslash before them ends the field early, and
	 * no control byte reaches a terminal. */
	for (char *p = r->user_agent; *p != '\0'; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ||
		    (unsigned char)*p == 0x7f)
			*p = '\'';
	/* "METHOD URI HTTP/1.1", then "Key: Value" lines. */
	head.bytes = strlen(method) + strlen(r->raw_uri) + 16;
	MHD_get_connection_values(c, MHD_HEADER_KIND, http_head_header, &head);
	if (head.bytes + HTTP_ANSWER_ROOM > http_pool_size(&fe->settings)) {
		log_warn("%s %s from %s: %zu bytes of request line and headers "
		         "leave no room for the answer (MaxQueryString = %ld "
		         "in [frontend] + 16 KiB, less %d)",
		    r->method, r->log_path, r->client, head.bytes,
		    fe->settings.max_query_string, HTTP_ANSWER_ROOM);
		return http_text(c, r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
		    "Request header fields too large.\n");
	}
	if (http_framing_refused(c, r, &head, &ret))
		return ret;
	http_forwarded(fe, c, r);
	if (r->bad_forwarded)
		return MHD_YES; /* answered 400 in the last call */
	if ((r->route != ROUTE_SCEP && r->route != ROUTE_ADMIN) ||
	    strcmp(method, "POST") != 0)
		return MHD_YES; /* any body is discarded */
	cl = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL) {
		errno = 0;
		n = strtoull(cl, &end, 10);
		if (errno == 0 && end != cl &&
		    n > (unsigned long long)fe->settings.max_body_size) {
			log_warn("%s %s from %s: POST body of %llu bytes "
			         "exceeds MaxBodySize = %ld in [frontend]",
			    r->method, r->log_path, r->client, n,
			    fe->settings.max_body_size);
			return http_text(c, r, MHD_HTTP_CONTENT_TOO_LARGE,
			    "Request body too large.\n");
		}
	}
	/* Refused whatever the body holds: not read (the client that
	 * waits for 100 Continue sends none), nor buffered and queued. */
	if (r->route == ROUTE_ADMIN && admin_refused_remote(fe, c, r, &ret))
		return ret;
	r->collecting = 1;
	return MHD_YES;
}

/*
 * Last call: the request is complete. What may wait on another service
 * goes to an offload thread (r->offloaded), which calls this again: the
 * checks before that point answered nothing the first time.
 */
enum MHD_Result
http_dispatch(struct frontend *fe, struct MHD_Connection *c, struct request *r)
{
	int get =
	    strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
	int post = strcmp(r->method, "POST") == 0;
	const char *query;
	size_t qlen;
	char text[256];

	if (r->bad_forwarded) {
		log_warn("%s %s: X-Forwarded-For from %s (in TrustedProxies) "
		         "does not name an address",
		    r->method, r->log_path, r->client);
		return http_text(c, r, MHD_HTTP_BAD_REQUEST,
		    "X-Forwarded-For from the proxy does not name an "
		    "address.\n");
	}
	query = strchr(r->raw_uri, '?');
	query = query != NULL ? query + 1 : "";
	qlen = strlen(query);
	switch (r->route) {
	case ROUTE_NONE:
		return http_text(c, r, MHD_HTTP_NOT_FOUND, "Not found.\n");
	case ROUTE_HEALTHZ:
		if (!get)
			return http_not_allowed(c, r, ALLOW_READ);
		return http_text(c, r, MHD_HTTP_OK, "ok");
	case ROUTE_METRICS: /* asks the RA and the challenge service */
		if (!get)
			return http_not_allowed(c, r, ALLOW_READ);
		/* Not queued behind devices for an UpstreamThread to say. */
		if (!r->loopback)
			return metrics_refuse_remote(c, r);
		if (!r->offloaded)
			return http_offload(fe, c, r);
		return metrics_handle(fe, c, r);
	case ROUTE_CRL: /* from the cache, or offloaded */
	case ROUTE_PREVIOUS_CRL:
		if (!get)
			return http_not_allowed(c, r, ALLOW_READ);
		return crl_handle(fe, c, r, r->route == ROUTE_PREVIOUS_CRL);
	case ROUTE_ADMIN:
		if (strcmp(r->method, "GET") != 0 && !post)
			return http_not_allowed(c, r, ALLOW_ADMIN);
		break;
	case ROUTE_SCEP:
		if (!get && !post)
			return http_not_allowed(c, r, ALLOW_SCEP);
		break;
	}
	if (qlen > (size_t)fe->settings.max_query_string) {
		log_warn("%s %s from %s: query string of %zu bytes exceeds "
		         "MaxQueryString = %ld in [frontend]; raise it",
		    r->method, r->log_path, r->client, qlen,
		    fe->settings.max_query_string);
		snprintf(text, sizeof(text),
		    "Query string of %zu bytes is longer than the %ld this "
		    "server accepts.\n",
		    qlen, fe->settings.max_query_string);
		return http_text(c, r, MHD_HTTP_URI_TOO_LONG, text);
	}
	if (r->too_big)
		return http_text(c, r, MHD_HTTP_CONTENT_TOO_LARGE,
		    "Request body too large.\n");
	if (r->body_lost) {
		char what[128];

		snprintf(what, sizeof(what), "a POST body of %zu bytes%s",
		    r->body_lost,
		    r->body_over_held
		        ? " (the bodies held at once would pass [frontend] "
		          "MaxBodiesHeld)"
		        : "");
		return http_no_memory(c, r, what);
	}
	if (r->route == ROUTE_ADMIN) { /* password checks, the services */
		enum MHD_Result ret;

		if (r->offloaded)
			return admin_handle(fe, c, r);
		if (admin_refused_remote(fe, c, r, &ret))
			return ret;
		return http_offload(fe, c, r);
	}
	return scep_handle(fe, c, r, query, qlen);
}

/* What MaxBodiesHeld never refuses: a PKIOperation is 2 to 8 KiB. */
#define HTTP_BODY_ALWAYS (64 * 1024)

/* A POST body on a SCEP path, up to MaxBodySize. */
static void
http_collect(struct frontend *fe, struct MHD_Connection *c, struct request *r,
    const char *data, size_t n)
{
	size_t max = (size_t)fe->settings.max_body_size;

	if (!r->collecting || r->too_big || r->body_lost)
		return; /* discarded */
	if (n > max - r->body_len) {
		log_warn("%s %s from %s: POST body over MaxBodySize = %ld in "
		         "[frontend]",
		    r->method, r->log_path, r->client,
		    fe->settings.max_body_size);
		r->too_big = 1;
		request_body_drop(fe, r);
		/* Newer libmicrohttpd answers at once; 0.9.75 refuses while
		 * the body is being read, and the 413 comes at its end. */
		http_text(c, r, MHD_HTTP_CONTENT_TOO_LARGE,
		    "Request body too large.\n");
		return;
	}
	if (r->body_len + n > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 4096;
		size_t grow;
		uint8_t *b;

		while (cap < r->body_len + n)
			cap *= 2;
		if (cap > max)
			cap = max;
		grow = cap - r->body_cap;
		/* The others' bodies and this one's growth within the
		 * budget, counted before any is had. A body of a device's
		 * size (up to HTTP_BODY_ALWAYS) is never refused for it:
		 * large stalled bodies must not keep devices out, and
		 * connections bound what small ones hold. */
		r->body_over_held =
		    atomic_fetch_add(&fe->bodies_held, grow) + grow >
		        (size_t)fe->settings.max_bodies_held &&
		    cap > HTTP_BODY_ALWAYS;
		/* Not realloc: the buffer given up may hold a password. */
		if (r->body_over_held || (b = malloc(cap)) == NULL) {
			/* Not the client's fault: 503 at the end, and the
			 * part read is dropped now, memory being short. */
			atomic_fetch_sub(&fe->bodies_held, grow);
			r->body_lost = r->body_len + n;
			request_body_drop(fe, r);
			return;
		}
		if (r->body != NULL) {
			memcpy(b, r->body, r->body_len);
			OPENSSL_cleanse(r->body, r->body_len);
			free(r->body);
		}
		r->body = b;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
}

/* The path of a request-target in absolute form ("http://host/path", as
 * a client talking to a proxy sends it, which a server must accept: RFC
 * 9112 3.2.2): the host is the Host header's business. */
static const char *
http_origin_form(const char *url)
{
	const char *p;

	if (strncasecmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		p = url + 8;
	else
		return url;
	p += strcspn(p, "/?#");
	return *p == '/' ? p : "/";
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	static const struct http_header close_hdr[] = {
	    {"Connection", "close"}, {NULL, NULL}};
	static const char late[] = "Request not complete in time.\n";
	struct frontend *fe = cls;
	struct request *r = *con_cls;

	(void)version;
	if (r == NULL)
		return MHD_NO; /* out of memory in http_uri_log */
	url = http_origin_form(url);
	if (r->offloaded)
		return http_held(c, r);
	if (r->responded) {
		*upload_data_size = 0; /* a body nobody will read */
		return MHD_YES;
	}
	if (clock_monotonic_ms() - r->start_ms >
	    fe->settings.request_deadline * 1000) {
		if (!r->started) {
			r->started = 1;
			request_set_path(r, method, url, strlen(url));
		}
		log_warn("%s %s from %s: not complete within RequestDeadline = "
		         "%ld s in [frontend]; closing",
		    r->method, r->log_path, r->client,
		    fe->settings.request_deadline);
		r->status = MHD_HTTP_REQUEST_TIMEOUT; /* for the log */
		return http_respond(c, r, MHD_HTTP_REQUEST_TIMEOUT,
		    "text/plain; charset=utf-8", late, sizeof(late) - 1,
		    close_hdr);
	}
	if (!r->started)
		return http_begin(fe, c, r, url, method);
	if (*upload_data_size > 0) {
		http_collect(fe, c, r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return http_dispatch(fe, c, r);
}

/*
 * The acceptor. libmicrohttpd's own accept, with a thread pool, lets
 * whichever thread wakes first take the connection: with keep-alive
 * clients one thread may end up with twice its share and another with
 * none, and since a thread answers its connections' requests one after
 * another, the clients of the crowded one wait longest (the latency's
 * tail). MHD_add_connection instead spreads connections over the threads
 * by descriptor (the first thread with room from descriptor modulo
 * threads).
 */
/* accept(2): errors of the connection, not of the socket; retry now. */
static int
http_accept_transient(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == EINTR ||
	    e == ECONNABORTED || e == EPROTO || e == ENETDOWN ||
	    e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET ||
	    e == EHOSTUNREACH || e == EOPNOTSUPP || e == ENETUNREACH;
}

/* Anything else (out of descriptors, a broken socket): log now and then
 * and wait a little, so that the thread neither spins nor gives up. */
static void
http_acceptor_pause(const char *what, int e, int64_t *warned_ms)
{
	struct timespec ts = {0, 100 * 1000 * 1000};

	if (clock_monotonic_ms() - *warned_ms > 10000) {
		log_warn(
		    "cannot accept connections: %s: %s", what, strerror(e));
		*warned_ms = clock_monotonic_ms();
	}
	nanosleep(&ts, NULL);
}

/* The /64 of an IPv6 client counted by it (netaddr_counts_by_64: not an
 * IPv4-mapped or NAT64 one): 1, else 0. */
static int
http_prefix_of(const struct sockaddr *sa, uint8_t prefix[8])
{
	struct netaddr a;

	if (sa == NULL || sa->sa_family != AF_INET6 ||
	    netaddr_from_sockaddr(sa, &a) != 0 || !netaddr_counts_by_64(&a))
		return 0;
	memcpy(prefix, a.addr, 8);
	return 1;
}

/* The slot of `prefix`, or with `create` a free one; NULL when there is
 * none (more /64s with connections than slots: not counted). Under
 * fe->prefix_lock. */
static struct http_prefix_count *
http_prefix_slot(struct frontend *fe, const uint8_t prefix[8], int create)
{
	struct http_prefix_count *free_slot = NULL;

	for (size_t i = 0; i < HTTP_PREFIX_SLOTS; i++) {
		struct http_prefix_count *s = &fe->prefixes[i];

		if (s->n > 0 && memcmp(s->prefix, prefix, 8) == 0)
			return s;
		if (s->n == 0 && free_slot == NULL)
			free_slot = s;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memcpy(free_slot->prefix, prefix, 8);
	return free_slot;
}

/* A connection of `sa` started (+1) or closed (-1). */
static void
http_prefix_count(struct frontend *fe, const struct sockaddr *sa, int delta)
{
	struct http_prefix_count *s;
	uint8_t prefix[8];

	if (!http_prefix_of(sa, prefix))
		return;
	pthread_mutex_lock(&fe->prefix_lock);
	if ((s = http_prefix_slot(fe, prefix, delta > 0)) != NULL) {
		if (delta > 0)
			s->n++;
		else if (s->n > 0)
			s->n--;
	}
	pthread_mutex_unlock(&fe->prefix_lock);
}

/* 1 when `sa`'s /64 holds PerIPConnectionLimit connections already
 * (logged now and then). Those the daemon's threads have not started yet
 * are not counted: a burst may pass it by a few. */
static int
http_prefix_full(struct frontend *fe, const struct sockaddr *sa)
{
	long limit = fe->settings.per_ip_connection_limit;
	struct http_prefix_count *s;
	uint8_t prefix[8];
	int full = 0;

	if (limit <= 0 || !http_prefix_of(sa, prefix))
		return 0;
	pthread_mutex_lock(&fe->prefix_lock);
	full = (s = http_prefix_slot(fe, prefix, 0)) != NULL &&
	    s->n >= (unsigned long)limit;
	pthread_mutex_unlock(&fe->prefix_lock);
	if (full)
		metrics_count_refused(METRICS_REFUSED_PER_IP);
	if (full && clock_monotonic_ms() - fe->prefix_warned_ms > 10000) {
		struct netaddr net = {AF_INET6, {0}};
		char text[64];

		memcpy(net.addr, prefix, 8);
		netaddr_format(&net, text, sizeof(text));
		log_warn("security: %s/64 holds PerIPConnectionLimit = %ld "
		         "connections: more are closed (an IPv6 client counts "
		         "by its /64)",
		    text, limit);
		fe->prefix_warned_ms = clock_monotonic_ms();
	}
	return full;
}

/* libmicrohttpd's connection start and close: the watchdog's, and the
 * /64s' counts. */
static void
http_notify_connection(void *cls, struct MHD_Connection *c,
    void **socket_context, enum MHD_ConnectionNotificationCode code)
{
	struct frontend *fe = cls;
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	watchdog_notify(fe->watchdog, c, socket_context, code);
	if (code == MHD_CONNECTION_NOTIFY_CLOSED)
		atomic_fetch_sub(&fe->connections, 1);
	if (info != NULL)
		http_prefix_count(fe, info->client_addr,
		    code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

/*
 * MaxConnections reached: the connection is told so (503, Retry-After)
 * and closed, by the acceptor. libmicrohttpd is never let reach its own
 * limit, which 0.9.75 handles in the thread the connection was queued
 * to without unlocking a mutex that thread takes again: it hangs for
 * good, and no connection is served (connections added in a burst all
 * pass its unlocked check before that thread counts them).
 * A loopback client has HTTP_LOOPBACK_RESERVE more: the launcher's
 * liveness check must reach the HTTP threads when devices hold them all,
 * or a frontend whose threads hang would answer it 503 from here, alive.
 * X-Scepd-Refused tells the check (and a client) who answered.
 */
static int
http_full(struct frontend *fe, int c, const struct sockaddr *sa)
{
	static const char answer[] =
	    "HTTP/1.1 503 Service Unavailable\r\n" SERVICE_REFUSED_HEADER
	    ": MaxConnections\r\n"
	    "Retry-After: 5\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: 45\r\n"
	    "Connection: close\r\n\r\n"
	    "The server holds all the connections it may.\n";
	char drain[4096];
	struct netaddr peer;
	int64_t now;
	ssize_t sent;
	long limit = fe->settings.max_connections;

	if (netaddr_from_sockaddr(sa, &peer) == 0 && netaddr_is_loopback(&peer))
		limit += HTTP_LOOPBACK_RESERVE;
	if (atomic_load(&fe->connections) < limit)
		return 0;
	/* Non-blocking: what does not fit the socket's buffer is lost. What
	 * the client sent already is read first: closed unread, the socket
	 * would send RST, and a client may lose the answer to it. */
	sent = send(c, answer, sizeof(answer) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	metrics_count_response(
	    MHD_HTTP_SERVICE_UNAVAILABLE, sent == sizeof(answer) - 1);
	metrics_count_refused(METRICS_REFUSED_MAX_CONNECTIONS);
	shutdown(c, SHUT_WR);
	for (int i = 0; i < 16 && /* a sender that never stops is cut */
	     recv(c, drain, sizeof(drain), MSG_DONTWAIT) > 0;
	     i++)
		;
	now = clock_monotonic_ms();
	if (now - fe->full_warned_ms > 10000) {
		log_warn("security: MaxConnections = %ld connections held: "
		         "more are answered 503 and closed",
		    fe->settings.max_connections);
		fe->full_warned_ms = now;
	}
	return 1;
}

static void *
http_acceptor(void *arg)
{
	struct frontend *fe = arg;
	int64_t warned_ms = 0;

	for (;;) {
		struct pollfd p[2] = {{fe->listen_fd, POLLIN, 0},
		    {fe->acceptor_stop[0], POLLIN, 0}};
		struct sockaddr_storage addr;
		socklen_t len = sizeof(addr);
		int c;

		if (poll(p, 2, -1) < 0) {
			if (errno != EINTR)
				http_acceptor_pause("poll", errno, &warned_ms);
			continue;
		}
		if (p[1].revents != 0)
			break;
		c = accept4(fe->listen_fd, (struct sockaddr *)&addr, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (!http_accept_transient(errno))
				http_acceptor_pause(
				    "accept", errno, &warned_ms);
			continue;
		}
		if (http_full(fe, c, (struct sockaddr *)&addr) ||
		    http_prefix_full(fe, (struct sockaddr *)&addr)) {
			close(c);
			continue;
		}
		/* Counted down at its close (http_notify_connection), or here
		 * when libmicrohttpd refuses it (PerIPConnectionLimit) and
		 * closes it. */
		atomic_fetch_add(&fe->connections, 1);
		if (MHD_add_connection(fe->daemon, c, (struct sockaddr *)&addr,
		        len) != MHD_YES)
			atomic_fetch_sub(&fe->connections, 1);
	}
	return NULL;
}

int
http_start(struct frontend *fe, int listen_fd)
{
	const struct frontend_settings *s = &fe->settings;
	long threads = s->threads;
	size_t pool = http_pool_size(s);

	struct MHD_OptionItem opts[] = {
	    {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)http_mhd_log, fe},
	    {MHD_OPTION_CONNECTION_TIMEOUT, s->connection_timeout, NULL},
	    {MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->per_ip_connection_limit,
	        NULL},
	    {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)pool, NULL},
	    /* Each thread's share above MaxConnections, twice (closed
	     * connections are counted down before libmicrohttpd forgets
	     * them): http_full keeps it from ever being reached. */
	    {MHD_OPTION_CONNECTION_LIMIT, 0, NULL},
	    {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)http_uri_log, fe},
	    {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)http_completed, fe},
	    {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)http_notify_connection,
	        fe},
	    /* Last: cut off below when there is one thread only. */
	    {MHD_OPTION_THREAD_POOL_SIZE, 0, NULL},
	    {MHD_OPTION_END, 0, NULL},
	};
	size_t n = sizeof(opts) / sizeof(opts[0]);

	/* One per core: they never wait on another service (offload.c). */
	if (threads <= 0) {
		threads = sysconf(_SC_NPROCESSORS_ONLN);
		if (threads <= 0)
			threads = 1;
	}
	opts[n - 2].value = threads;
	for (size_t i = 0; i < n; i++)
		if (opts[i].option == MHD_OPTION_CONNECTION_LIMIT)
			opts[i].value = threads *
			    (2 * (s->max_connections + HTTP_LOOPBACK_RESERVE) +
			        16);
	if (threads == 1) /* libmicrohttpd warns about a pool of one */
		opts[n - 2].option = MHD_OPTION_END;
	fe->listen_fd = listen_fd;
	fe->acceptor_stop[0] = fe->acceptor_stop[1] = -1;
	pthread_mutex_init(&fe->prefix_lock, NULL);
	/*
	 * No listening socket of its own: the acceptor adds connections
	 * (MHD_USE_ITC wakes the thread that gets one). microhttpd.h says
	 * a thread pool is ignored without a listening socket; 0.9.75, the
	 * version this is built for, runs the pool and spreads added
	 * connections over it (test_http_errors counts its threads).
	 */
	fe->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	        MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET |
	        MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME,
	    0, NULL, NULL, http_access, fe, MHD_OPTION_ARRAY, opts,
	    MHD_OPTION_END);
	if (fe->daemon == NULL ||
	    (fe->offload = offload_start(fe, s->upstream_threads)) == NULL ||
	    pipe2(fe->acceptor_stop, O_CLOEXEC) != 0) {
		http_stop(fe);
		return -1;
	}
	return 0;
}

int
http_accept_start(struct frontend *fe)
{
	/* A thread started now inherits the seccomp filter. */
	if (pthread_create(&fe->acceptor, NULL, http_acceptor, fe) != 0)
		return -1;
	fe->acceptor_running = 1;
	return 0;
}

void
http_stop(struct frontend *fe)
{
	if (fe->acceptor_running) {
		(void)!write(fe->acceptor_stop[1], "", 1);
		pthread_join(fe->acceptor, NULL);
		fe->acceptor_running = 0;
	}
	for (int i = 0; i < 2; i++)
		if (fe->acceptor_stop[i] >= 0) {
			close(fe->acceptor_stop[i]);
			fe->acceptor_stop[i] = -1;
		}
	if (fe->listen_fd >= 0) {
		close(fe->listen_fd);
		fe->listen_fd = -1;
	}
	/* Every suspended connection resumed before the daemon stops; the
	 * threads' key destructors close their sockets. */
	offload_drain(fe->offload);
	/* Joins the workers, whose key destructors close their sockets. */
	if (fe->daemon != NULL)
		MHD_stop_daemon(fe->daemon);
	fe->daemon = NULL;
	offload_free(fe->offload);
	fe->offload = NULL;
}
