#include <arpa/inet.h>
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <zmq.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "rpc.h"
#include "service.h"

#define RPC_DEFAULT_MAX_MESSAGE (4u << 20)
#define RPC_DEFAULT_WORKERS_MAX 64 /* Workers = 0's most */
#define RPC_MIN_ATTEMPT_MS 200
#define RPC_NAME_MAX 32 /* a CurveClients NAME, with its NUL */
/* The characters of a CurveClients NAME, and of any declared origin. */
#define RPC_NAME_CHARS \
	"abcdefghijklmnopqrstuvwxyz" \
	"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
#define RPC_ZAP_ENDPOINT "inproc://zeromq.zap.01" /* RFC 27 */
#define RPC_ZAP_DOMAIN "scepd"
/* What a server's ZMQ_MAXMSGSIZE counts beyond the request: between
 * hosts, CurveZMQ's MESSAGE command (name, nonce, MAC) around it. */
#define RPC_FRAME_OVERHEAD 256

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
	case RPC_ETOOBIG:
		return "request larger than the service reads";
	}
	return "unknown rpc error";
}

#ifdef SCEPD_TEST_HOOKS
_Atomic int64_t rpc_test_wall_offset_ms;
#endif

int64_t
rpc_now_ms(void)
{
	struct timespec ts;
	int64_t ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
#ifdef SCEPD_TEST_HOOKS
	ms += rpc_test_wall_offset_ms;
#endif
	return ms;
}

/* --- CurveZMQ ---------------------------------------------------------- */

/* A client key a server admits, and the name its requests then carry. */
struct rpc_admitted {
	char name[RPC_NAME_MAX];
	uint8_t key[32];
};

#define RPC_CALLER_USERS_MAX 8

/* CallerUsers: the user a caller of this host declaring `name` runs as. */
struct rpc_caller_user {
	char name[RPC_NAME_MAX];
	char user[RPC_NAME_MAX];
	uid_t uid;
};

struct rpc_curve {
	char *basedir; /* of the configuration, for relative key files */
	int has_pair;
	char public_key[RPC_KEY_LEN + 1];
	char secret_key[RPC_KEY_LEN + 1];
	uint8_t public_raw[32]; /* public_key decoded, for the ZAP handler */
	struct rpc_admitted *clients;
	size_t nclients;
	struct rpc_caller_user callers[RPC_CALLER_USERS_MAX];
	size_t ncallers;
	int allow_insecure;
};

struct rpc_endpoint {
	char *addr;
	char server_key[RPC_KEY_LEN + 1]; /* "" without CURVE */
	int ipv6; /* ZMQ_IPV6 for it (rpc_endpoint_ipv6) */
};

struct rpc_link {
	char *endpoints; /* space separated, for messages */
	struct rpc_endpoint *ep;
	size_t nep;
	int curve;
	char public_key[RPC_KEY_LEN + 1];
	char secret_key[RPC_KEY_LEN + 1];
	/* "[ra] CAEndpoint", "[ra] CAServerKey": named when no connection
	 * comes up (rpc_link_unconnected); "" for a link without them. */
	char endpoint_setting[96], key_setting[96];
	_Atomic int64_t unconnected_said; /* monotonic ms, 0: never */
};

static const char rpc_z85_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ".-:+=^!/*?&<>()[]{}@%$#";

/* Anything but ipc:// and inproc:// leaves the host. */
static int
rpc_is_network(const char *endpoint)
{
	return strncmp(endpoint, "ipc://", 6) != 0 &&
	    strncmp(endpoint, "inproc://", 9) != 0;
}

static void rpc_problem(const char *file, const char *section, const char *key,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "FILE: [SECTION] Key: reason", as config_load() reports. */
static void
rpc_problem(const char *file, const char *section, const char *key,
    const char *fmt, ...)
{
	char line[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: [%s] %s: %s\n", file, section, key, line);
}

int
rpc_key_read(const char *path, int secret, char *out, char *err, size_t errlen)
{
	char buf[1024], *line, *save = NULL, *key = NULL;
	struct stat st;
	size_t used = 0;
	ssize_t n;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		goto out;
	}
	if (secret && (st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		    "%s is open to group or others (mode %04o); a secret key "
		    "must be mode 0600 or stricter",
		    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (used < sizeof(buf) - 1 &&
	    (n = read(fd, buf + used, sizeof(buf) - 1 - used)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		used += (size_t)n;
	}
	buf[used] = '\0';
	if (used == sizeof(buf) - 1) {
		snprintf(err, errlen, "%s is too large for a key file", path);
		goto out;
	}
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t len;

		line += strspn(line, " \t\r");
		len = strlen(line);
		while (len > 0 && strchr(" \t\r", line[len - 1]) != NULL)
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (key != NULL) {
			snprintf(
			    err, errlen, "%s holds more than one key", path);
			goto out;
		}
		key = line;
	}
	if (key == NULL || strlen(key) != RPC_KEY_LEN ||
	    strspn(key, rpc_z85_chars) != RPC_KEY_LEN) {
		snprintf(err, errlen,
		    "%s does not hold a CurveZMQ key (%d characters of Z85, "
		    "as scepctl keygen writes)",
		    path, RPC_KEY_LEN);
		goto out;
	}
	memcpy(out, key, RPC_KEY_LEN + 1);
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}

/* The directory of `file`, absolute when it exists; NULL on no memory. */
static char *
rpc_basedir(const char *file)
{
	char *dir = config_path_absolute(file), *slash;

	if (dir == NULL)
		dir = strdup(file);
	if (dir == NULL)
		return NULL;
	if ((slash = strrchr(dir, '/')) == NULL) {
		free(dir);
		return strdup(".");
	}
	*(slash == dir ? slash + 1 : slash) = '\0';
	return dir;
}

/* A public key file into `out`; 0, or -1 after reporting. */
static int
rpc_public_key_load(const char *basedir, const char *path, char *out,
    const char *file, const char *section, const char *key)
{
	char err[512], *abs = config_resolve_path(basedir, path);
	uint8_t bin[32];
	int rc = -1;

	if (abs == NULL)
		rpc_problem(file, section, key, "out of memory");
	else if (rpc_key_read(abs, 0, out, err, sizeof(err)) != 0)
		rpc_problem(file, section, key, "%s", err);
	else if (zmq_z85_decode(bin, out) == NULL)
		rpc_problem(file, section, key, "%s: not a Z85 key", abs);
	else
		rc = 0;
	free(abs);
	return rc;
}

/* CurveClients = NAME:PUBKEYFILE ...; the number of problems. */
static int
rpc_curve_clients(struct rpc_curve *c, const char *list, const char *file,
    const char *section)
{
	char *copy = strdup(list), *tok, *save = NULL;
	int errors = 0;

	if (copy == NULL) {
		rpc_problem(file, section, "CurveClients", "out of memory");
		return 1;
	}
	for (tok = strtok_r(copy, " \t,", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,", &save)) {
		char *colon = strchr(tok, ':'), z85[RPC_KEY_LEN + 1];
		struct rpc_admitted *grown, *a;
		size_t len = colon ? (size_t)(colon - tok) : 0;

		if (colon == NULL || len == 0 || len >= RPC_NAME_MAX ||
		    strspn(tok, RPC_NAME_CHARS) != len || colon[1] == '\0') {
			rpc_problem(file, section, "CurveClients",
			    "'%s' is not NAME:PUBKEYFILE (NAME: letters, "
			    "digits, '_', '.', '-', at most %d)",
			    tok, RPC_NAME_MAX - 1);
			errors++;
			continue;
		}
		if (len == strlen(RPC_PEER_SELF) &&
		    memcmp(tok, RPC_PEER_SELF, len) == 0) {
			rpc_problem(file, section, "CurveClients",
			    "'%s': the name %s is the service's own key's "
			    "(scepctl health), not a client's",
			    tok, RPC_PEER_SELF);
			errors++;
			continue;
		}
		if (rpc_public_key_load(c->basedir, colon + 1, z85, file,
		        section, "CurveClients") != 0) {
			errors++;
			continue;
		}
		grown = realloc(c->clients, (c->nclients + 1) * sizeof(*grown));
		if (grown == NULL) {
			rpc_problem(
			    file, section, "CurveClients", "out of memory");
			errors++;
			break;
		}
		c->clients = grown;
		a = &c->clients[c->nclients];
		memset(a, 0, sizeof(*a));
		memcpy(a->name, tok, len);
		zmq_z85_decode(a->key, z85);
		/* Its own key would be admitted under that name, and the
		 * health probe's (RPC_PEER_SELF) refused for ever. */
		if (c->has_pair && memcmp(a->key, c->public_raw, 32) == 0) {
			rpc_problem(file, section, "CurveClients",
			    "%s: %s is this service's own public key "
			    "(CurveSecretKeyFile's), not a client's",
			    tok, colon + 1);
			errors++;
		}
		for (size_t i = 0; i < c->nclients; i++)
			if (memcmp(c->clients[i].key, a->key, 32) == 0) {
				rpc_problem(file, section, "CurveClients",
				    "%s: the same key is listed twice (as %s "
				    "and %s)",
				    colon + 1, c->clients[i].name, a->name);
				errors++;
			}
		c->nclients++;
	}
	free(copy);
	return errors;
}

/* CallerUsers = NAME:USER ...; the number of problems. Users are looked
 * up now: at start, before the sandbox keeps /etc/passwd from us. */
static int
rpc_caller_users(struct rpc_curve *c, const char *list, const char *file,
    const char *section)
{
	char *copy = strdup(list), *tok, *save = NULL;
	int errors = 0;

	if (copy == NULL) {
		rpc_problem(file, section, "CallerUsers", "out of memory");
		return 1;
	}
	for (tok = strtok_r(copy, " \t,", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,", &save)) {
		char *colon = strchr(tok, ':');
		size_t len = colon ? (size_t)(colon - tok) : 0;
		struct rpc_caller_user *u = &c->callers[c->ncallers];
		struct passwd *pw;

		if (colon == NULL || len == 0 || len >= RPC_NAME_MAX ||
		    strspn(tok, RPC_NAME_CHARS) != len || colon[1] == '\0' ||
		    strlen(colon + 1) >= RPC_NAME_MAX) {
			rpc_problem(file, section, "CallerUsers",
			    "'%s' is not NAME:USER (NAME: letters, digits, "
			    "'_', '.', '-', at most %d)",
			    tok, RPC_NAME_MAX - 1);
			errors++;
			continue;
		}
		if (c->ncallers == RPC_CALLER_USERS_MAX) {
			rpc_problem(file, section, "CallerUsers",
			    "more than %d callers", RPC_CALLER_USERS_MAX);
			errors++;
			break;
		}
		if ((pw = getpwnam(colon + 1)) == NULL) {
			rpc_problem(file, section, "CallerUsers",
			    "%s: no user '%s'", tok, colon + 1);
			errors++;
			continue;
		}
		memset(u, 0, sizeof(*u));
		memcpy(u->name, tok, len);
		snprintf(u->user, sizeof(u->user), "%s", colon + 1);
		u->uid = pw->pw_uid;
		for (size_t i = 0; i < c->ncallers; i++)
			if (strcmp(c->callers[i].name, u->name) == 0) {
				rpc_problem(file, section, "CallerUsers",
				    "caller '%s' is listed twice", u->name);
				errors++;
			}
		c->ncallers++;
	}
	free(copy);
	return errors;
}

struct rpc_curve *
rpc_curve_load(const struct rpc_curve_settings *s, const char *listen,
    const char *file, const char *section)
{
	struct rpc_curve *c = calloc(1, sizeof(*c));
	const char *secret = s->secret_key_file ? s->secret_key_file : "";
	const char *pub = s->public_key_file ? s->public_key_file : "";
	const char *clients = s->clients ? s->clients : "";
	char err[512], *abs = NULL;
	int errors = 0;

	if (c == NULL || (c->basedir = rpc_basedir(file)) == NULL) {
		fprintf(stderr, "%s: [%s]: out of memory\n", file, section);
		rpc_curve_free(c);
		return NULL;
	}
	c->allow_insecure = s->allow_insecure;
	if (secret[0] != '\0') {
		if ((abs = config_resolve_path(c->basedir, secret)) == NULL ||
		    rpc_key_read(abs, 1, c->secret_key, err, sizeof(err)) !=
		        0) {
			rpc_problem(file, section, "CurveSecretKeyFile", "%s",
			    abs ? err : "out of memory");
			errors++;
		} else if (zmq_curve_public(c->public_key, c->secret_key) !=
		    0) {
			rpc_problem(file, section, "CurveSecretKeyFile",
			    "%s: not a CurveZMQ secret key", abs);
			errors++;
		} else {
			c->has_pair = 1;
			zmq_z85_decode(c->public_raw, c->public_key);
		}
		free(abs);
	}
	if (pub[0] != '\0') {
		char z85[RPC_KEY_LEN + 1];

		if (secret[0] == '\0') {
			rpc_problem(file, section, "CurvePublicKeyFile",
			    "set without CurveSecretKeyFile");
			errors++;
		} else if (rpc_public_key_load(c->basedir, pub, z85, file,
		               section, "CurvePublicKeyFile") != 0)
			errors++;
		else if (c->has_pair && strcmp(z85, c->public_key) != 0) {
			rpc_problem(file, section, "CurvePublicKeyFile",
			    "%s is not the public key of CurveSecretKeyFile",
			    pub);
			errors++;
		}
	}
	errors += rpc_curve_clients(c, clients, file, section);
	if (s->caller_users != NULL)
		errors += rpc_caller_users(c, s->caller_users, file, section);
	if (c->ncallers > 0 && clients[0] != '\0') {
		rpc_problem(file, section, "CallerUsers",
		    "with CurveClients the callers' keys say who they are: "
		    "set one or the other");
		errors++;
	}
	if (clients[0] != '\0' && secret[0] == '\0') {
		rpc_problem(file, section, "CurveClients",
		    "needs CurveSecretKeyFile (this server's own key pair)");
		errors++;
	}
	if (clients[0] != '\0' && c->nclients == 0 && errors == 0) {
		rpc_problem(file, section, "CurveClients", "lists no key");
		errors++;
	}
	if (c->allow_insecure)
		log_warn("unsafe: AllowInsecureTransport = 1 in [%s]: network "
		         "endpoints without CurveZMQ keys are allowed, "
		         "unencrypted and with no proof of who is at the "
		         "other end",
		    section);
	if (listen != NULL && rpc_is_network(listen) && c->nclients == 0) {
		if (!c->allow_insecure) {
			rpc_problem(file, section, "Listen",
			    "%s needs CurveZMQ keys (CurveSecretKeyFile and "
			    "CurveClients) or AllowInsecureTransport = 1",
			    listen);
			errors++;
		} else
			log_warn("unsafe: serving %s without CurveZMQ: "
			         "anyone who reaches it may send requests",
			    listen);
	}
	if (errors > 0) {
		rpc_curve_free(c);
		return NULL;
	}
	return c;
}

void
rpc_curve_free(struct rpc_curve *curve)
{
	if (curve == NULL)
		return;
	free(curve->basedir);
	free(curve->clients);
	OPENSSL_cleanse(curve, sizeof(*curve));
	free(curve);
}

int
rpc_curve_serves(const struct rpc_curve *curve)
{
	return curve != NULL && curve->nclients > 0;
}

/* Splits " \t,"-separated `list` into a NULL-ended array (one block). */
static char **
rpc_split(const char *list, size_t *n)
{
	size_t len = strlen(list), max = len / 2 + 2;
	char **v = calloc(1, max * sizeof(char *) + len + 1), *copy, *tok,
	     *save = NULL;

	*n = 0;
	if (v == NULL)
		return NULL;
	copy = (char *)(v + max);
	memcpy(copy, list, len + 1);
	for (tok = strtok_r(copy, " \t,", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,", &save))
		v[(*n)++] = tok;
	return v;
}

void
rpc_link_free(struct rpc_link *link)
{
	if (link == NULL)
		return;
	for (size_t i = 0; i < link->nep; i++)
		free(link->ep[i].addr);
	free(link->ep);
	free(link->endpoints);
	OPENSSL_cleanse(link, sizeof(*link));
	free(link);
}

size_t
rpc_link_endpoints(const struct rpc_link *link)
{
	return link != NULL ? link->nep : 0;
}

/* The endpoints of `endpoints`, no keys yet. */
static struct rpc_link *
rpc_link_plain(const char *endpoints)
{
	struct rpc_link *link = calloc(1, sizeof(*link));
	char **v = NULL;
	size_t n = 0;

	if (link == NULL || (link->endpoints = strdup(endpoints)) == NULL ||
	    (v = rpc_split(endpoints, &n)) == NULL ||
	    (link->ep = calloc(n ? n : 1, sizeof(*link->ep))) == NULL)
		goto fail;
	/* IPv6 or not decided here, before the sandbox: a socket made
	 * later (after a timeout) may not probe. */
	for (; link->nep < n; link->nep++) {
		if ((link->ep[link->nep].addr = strdup(v[link->nep])) == NULL)
			goto fail;
		link->ep[link->nep].ipv6 = rpc_endpoint_ipv6(v[link->nep], 1);
	}
	free(v);
	return link;
fail:
	free(v);
	rpc_link_free(link);
	return NULL;
}

/* Whether `host` has IPv4 addresses (0), only IPv6 ones (1), or is not
 * found now (0: as before, IPv4; said, as it stays so until a restart). */
static int
rpc_host_ipv6_only(const char *host)
{
	struct addrinfo hints, *found = NULL;
	int v6, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_INET;
	if (getaddrinfo(host, NULL, &hints, &found) == 0) {
		freeaddrinfo(found);
		return 0;
	}
	hints.ai_family = AF_INET6;
	found = NULL;
	v6 = (e = getaddrinfo(host, NULL, &hints, &found)) == 0;
	if (found != NULL)
		freeaddrinfo(found);
	if (!v6 && e != EAI_NONAME && e != EAI_NODATA)
		log_warn("rpc: %s is not resolved now (%s): reached over IPv4; "
		         "a name with IPv6 addresses only needs this service "
		         "restarted once it resolves",
		    host, gai_strerror(e));
	return v6;
}

/*
 * Whether libzmq is to take IPv6 for tcp:// `endpoint` (ZMQ_IPV6, off by
 * default: "tcp://[::1]:5001" failed as "No such device", and a host name
 * with AAAA records only was never reached, without a word). For an IPv6
 * address in brackets ("[::]": both families) and, `connecting`, a
 * host name that has IPv6 addresses and no IPv4 one (libzmq reaches the
 * first address it is given, and with IPv6 that of a name having both
 * would be its IPv6 one, where a server listening on its IPv4 address
 * alone is not); never for an IPv4 address (its socket stays IPv4, its
 * peers' addresses as they were) nor a bind's interface name (libzmq
 * would take the interface's IPv6 address, out of IPv4 clients' reach)
 * nor "*", which stays every IPv4 address (with IPv6 it would open the
 * port on the host's IPv6 addresses too, which a firewall of IPv4 rules
 * alone leaves open);
 * and only where the kernel has IPv6 (booted with ipv6.disable=1,
 * libzmq's IPv6 socket fails where the IPv4 one works).
 */
int
rpc_endpoint_ipv6(const char *endpoint, int connecting)
{
	char host[256], probe[16];
	const char *at, *colon;
	size_t len;
	int fd;

	if (strncmp(endpoint, "tcp://", 6) != 0)
		return 0;
	at = endpoint + 6;
	/* "tcp://source;destination": the destination decides */
	if (strchr(at, ';') != NULL)
		at = strchr(at, ';') + 1;
	if ((colon = strrchr(at, ':')) == NULL ||
	    (len = (size_t)(colon - at)) == 0 || len >= sizeof(host))
		return 0;
	memcpy(host, at, len);
	host[len] = '\0';
	if (host[0] != '[' &&
	    (!connecting || strcmp(host, "*") == 0 ||
	        inet_pton(AF_INET, host, probe) == 1))
		return 0;
	if ((fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	close(fd);
	return host[0] == '[' || rpc_host_ipv6_only(host);
}

struct rpc_link *
rpc_link_new(const struct rpc_curve *curve, const char *endpoints,
    const char *server_keys, const char *file, const char *section,
    const char *endpoint_key, const char *server_key_key)
{
	struct rpc_link *link = rpc_link_plain(endpoints);
	char **files = NULL;
	size_t nfiles = 0;
	int errors = 0;

	if (link == NULL ||
	    (files = rpc_split(server_keys ? server_keys : "", &nfiles)) ==
	        NULL) {
		rpc_problem(file, section, endpoint_key, "out of memory");
		goto fail;
	}
	if (link->nep == 0) {
		rpc_problem(file, section, endpoint_key, "no endpoint");
		goto fail;
	}
	if (nfiles > 1 && nfiles != link->nep) {
		rpc_problem(file, section, server_key_key,
		    "%zu key files for %zu endpoints in %s: give one for "
		    "all, or one per endpoint in the same order",
		    nfiles, link->nep, endpoint_key);
		goto fail;
	}
	for (size_t i = 0; i < nfiles; i++) {
		char z85[RPC_KEY_LEN + 1];

		if (rpc_public_key_load(curve ? curve->basedir : NULL, files[i],
		        z85, file, section, server_key_key) != 0) {
			errors++;
			continue;
		}
		for (size_t j = 0; j < link->nep; j++)
			if (nfiles == 1 || i == j)
				memcpy(
				    link->ep[j].server_key, z85, sizeof(z85));
	}
	if (nfiles > 0) {
		if (curve == NULL || !curve->has_pair) {
			rpc_problem(file, section, server_key_key,
			    "needs CurveSecretKeyFile (this service's own "
			    "key pair)");
			errors++;
		} else {
			link->curve = 1;
			memcpy(link->public_key, curve->public_key,
			    sizeof(link->public_key));
			memcpy(link->secret_key, curve->secret_key,
			    sizeof(link->secret_key));
		}
	}
	snprintf(link->endpoint_setting, sizeof(link->endpoint_setting),
	    "[%s] %s", section ? section : "",
	    endpoint_key ? endpoint_key : "");
	snprintf(link->key_setting, sizeof(link->key_setting), "[%s] %s",
	    section ? section : "", server_key_key ? server_key_key : "");
	for (size_t i = 0; nfiles == 0 && i < link->nep; i++) {
		if (!rpc_is_network(link->ep[i].addr))
			continue;
		if (curve != NULL && curve->allow_insecure) {
			log_warn("unsafe: reaching %s without CurveZMQ: "
			         "requests and answers travel in clear",
			    link->ep[i].addr);
			continue;
		}
		rpc_problem(file, section, endpoint_key,
		    "%s needs CurveZMQ keys (%s and CurveSecretKeyFile) or "
		    "AllowInsecureTransport = 1",
		    link->ep[i].addr, server_key_key);
		errors++;
	}
	if (errors > 0)
		goto fail;
	free(files);
	return link;
fail:
	free(files);
	rpc_link_free(link);
	return NULL;
}

struct rpc_link *
rpc_link_self(const struct rpc_curve *curve, const char *endpoints)
{
	struct rpc_link *link;

	if (curve == NULL || !curve->has_pair ||
	    (link = rpc_link_plain(endpoints)) == NULL)
		return NULL;
	if (link->nep == 0) {
		rpc_link_free(link);
		return NULL;
	}
	for (size_t i = 0; i < link->nep; i++)
		memcpy(link->ep[i].server_key, curve->public_key,
		    sizeof(link->ep[i].server_key));
	link->curve = 1;
	memcpy(link->public_key, curve->public_key, sizeof(link->public_key));
	memcpy(link->secret_key, curve->secret_key, sizeof(link->secret_key));
	return link;
}

/* --- client ----------------------------------------------------------- */

/*
 * How long an endpoint that left an attempt unanswered is tried after the
 * others. A service that is up but stuck (a hung HSM, every worker
 * blocked) takes requests and answers none; tried first again, it would
 * cost each call a third of its time. Long against an attempt, short
 * against an outage.
 */
#define RPC_SUSPECT_MS 30000
#define RPC_NEVER (INT64_MIN / 2) /* rpc_conn.failed_ms: no failure */

/* A client's way to one endpoint of its link. */
struct rpc_conn {
	void *sock; /* a DEALER to this endpoint alone; NULL: to open */
	int64_t failed_ms; /* monotonic ms of its last unanswered attempt */
};

#define RPC_ANY_ENDPOINT SIZE_MAX /* rpc_call_at's: none in particular */
/* rpc_call_at gives up on an endpoint with no connection this long (a
 * connection over ipc:// or tcp:// with CURVE is made in milliseconds). */
#define RPC_AT_UNCONNECTED_MS 250

struct rpc_client {
	void *zmq_ctx;
	const struct rpc_link *link;
	struct rpc_link *own; /* rpc_client_new()'s, freed with the client */
	struct rpc_conn *conn; /* one per endpoint of the link */
	size_t *order; /* rpc_client_order's */
	size_t next; /* the endpoint the next call tries first */
	size_t only; /* rpc_call_at's endpoint; RPC_ANY_ENDPOINT: any */
	char *origin;
	uint64_t next_id;
	size_t max_request; /* rpc_client_set_max; 0: none */
	unsigned int copies; /* of the last call's request, sent */
};

/* A socket to endpoint `i` alone, so that which endpoint an attempt goes
 * to is rpc_client_send's choice: one socket to all sent it to whichever
 * connection finished its handshake first, a stuck service's as soon as
 * any other. */
static void *
rpc_client_socket(struct rpc_client *client, size_t i)
{
	const struct rpc_link *link = client->link;
	const struct rpc_endpoint *ep = &link->ep[i];
	void *sock = zmq_socket(client->zmq_ctx, ZMQ_DEALER);
	int zero = 0, one = 1, ivl = 2000, ttl = 6000;

	if (sock == NULL)
		return NULL;
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	/* Queue only to a peer that is connected: a dead endpoint refuses
	 * at once and the next is tried instead. With CURVE, connected
	 * means the handshake passed: a server that refuses our key gets
	 * nothing. */
	zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof(one));
	zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof(ivl));
	zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &ttl, sizeof(ttl));
	if (ep->ipv6)
		zmq_setsockopt(sock, ZMQ_IPV6, &one, sizeof(one));
	if (link->curve &&
	    (zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, link->public_key,
	         RPC_KEY_LEN + 1) != 0 ||
	        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, link->secret_key,
	            RPC_KEY_LEN + 1) != 0)) {
		log_error(
		    "rpc: cannot use CurveZMQ keys: %s", zmq_strerror(errno));
		zmq_close(sock);
		return NULL;
	}
	/* Left unconnected on failure: it refuses every request, as a dead
	 * endpoint does. */
	if (link->curve &&
	    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, ep->server_key,
	        RPC_KEY_LEN + 1) != 0)
		log_warn("rpc: %s: unusable server key: %s", ep->addr,
		    zmq_strerror(errno));
	else if (zmq_connect(sock, ep->addr) != 0)
		log_warn("rpc: cannot connect to %s: %s", ep->addr,
		    zmq_strerror(errno));
	return sock;
}

struct rpc_client *
rpc_client_new_link(
    void *zmq_ctx, const struct rpc_link *link, const char *origin)
{
	struct rpc_client *client;
	size_t n;

	if (link == NULL || (client = calloc(1, sizeof(*client))) == NULL)
		return NULL;
	n = link->nep > 0 ? link->nep : 1;
	client->zmq_ctx = zmq_ctx;
	client->link = link;
	client->origin = strdup(origin);
	client->conn = calloc(n, sizeof(*client->conn));
	client->order = calloc(n, sizeof(*client->order));
	/* From the kernel, not RAND_bytes: nothing else on the frontend's
	 * request path draws random numbers (only the admin page does), and
	 * OpenSSL's generator would load its provider at the first request
	 * (2 MiB more of libcrypto's pages in every frontend). */
	if (client->origin == NULL || client->conn == NULL ||
	    client->order == NULL ||
	    getrandom(&client->next_id, sizeof(client->next_id), 0) !=
	        (ssize_t)sizeof(client->next_id)) {
		rpc_client_free(client);
		return NULL;
	}
	/* Opened now, so that they are connected by the first call. */
	for (size_t i = 0; i < link->nep; i++) {
		client->conn[i].failed_ms = RPC_NEVER;
		if ((client->conn[i].sock = rpc_client_socket(client, i)) ==
		    NULL) {
			rpc_client_free(client);
			return NULL;
		}
	}
	/* Calls go to the endpoints in turn; clients (threads, processes)
	 * begin at different ones. */
	client->next = client->next_id % n;
	client->only = RPC_ANY_ENDPOINT;
	client->next_id >>= 1; /* room to count up */
	return client;
}

struct rpc_client *
rpc_client_new(void *zmq_ctx, const char *endpoints, const char *origin)
{
	struct rpc_link *link = rpc_link_plain(endpoints);
	struct rpc_client *client;

	if (link == NULL)
		return NULL;
	if ((client = rpc_client_new_link(zmq_ctx, link, origin)) == NULL) {
		rpc_link_free(link);
		return NULL;
	}
	client->own = link;
	return client;
}

void
rpc_client_free(struct rpc_client *client)
{
	if (client == NULL)
		return;
	for (size_t i = 0; client->conn != NULL && i < client->link->nep; i++)
		if (client->conn[i].sock != NULL)
			zmq_close(client->conn[i].sock);
	free(client->conn);
	free(client->order);
	rpc_link_free(client->own);
	free(client->origin);
	free(client);
}

void
rpc_client_set_max(struct rpc_client *client, size_t bytes)
{
	client->max_request = bytes;
}

/*
 * The endpoints in the order an attempt tries them, into client->order:
 * those that answered their last attempt, or not lately (RPC_SUSPECT_MS),
 * in turn from client->next; then the others, the one that failed longest
 * ago first. So a retry goes elsewhere than the attempt that failed, and
 * calls go round those that answer.
 */
static void
rpc_client_order(struct rpc_client *client)
{
	size_t n = client->link->nep, k = 0, first;
	int64_t now = clock_monotonic_ms();

	for (size_t i = 0; i < n; i++) {
		size_t e = (client->next + i) % n;

		if (now - client->conn[e].failed_ms >= RPC_SUSPECT_MS)
			client->order[k++] = e;
	}
	first = k;
	for (size_t i = 0; i < n; i++) {
		size_t e = (client->next + i) % n, j;
		int64_t failed = client->conn[e].failed_ms;

		if (now - failed >= RPC_SUSPECT_MS)
			continue;
		for (j = k++; j > first &&
		     client->conn[client->order[j - 1]].failed_ms > failed;
		     j--)
			client->order[j] = client->order[j - 1];
		client->order[j] = e;
	}
}

/*
 * Sends `buf` to the first endpoint of client->order that is connected
 * (ZMQ_IMMEDIATE: a dead one refuses at once): 1 and its index in *used,
 * 0 when none is, -1 on a ZeroMQ failure.
 */
static int
rpc_client_send(
    struct rpc_client *client, const uint8_t *buf, size_t len, size_t *used)
{
	rpc_client_order(client);
	for (size_t i = 0; i < client->link->nep; i++) {
		size_t e = client->only != RPC_ANY_ENDPOINT ? client->only
		                                            : client->order[i];
		struct rpc_conn *c = &client->conn[e];

		if (c->sock == NULL &&
		    (c->sock = rpc_client_socket(client, e)) == NULL)
			return -1;
		if (zmq_send(c->sock, buf, len, ZMQ_DONTWAIT) >= 0) {
			*used = e;
			return 1;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		if (client->only != RPC_ANY_ENDPOINT)
			break;
	}
	return 0;
}

/*
 * Waits on `sock` for the reply to `id` until `until_ms` (monotonic: a
 * step of the system's clock neither stretches nor cuts the wait). 1:
 * got it, 0: timed out. In a receive bounded by ZMQ_RCVTIMEO, not zmq_poll: libzmq's
 * receive sleeps in one poll(2) of its mailbox, where zmq_poll polls
 * without waiting first and asks the socket's events twice.
 */
static int
rpc_client_wait(void *sock, uint64_t id, int64_t until_ms,
    Scep__V1__Reply **reply, int *err)
{
	for (;;) {
		int64_t left = until_ms - clock_monotonic_ms();
		int wait_ms;
		zmq_msg_t msg;
		Scep__V1__Reply *rep;

		if (left <= 0)
			return 0;
		wait_ms = left > INT_MAX ? INT_MAX : (int)left;
		zmq_setsockopt(sock, ZMQ_RCVTIMEO, &wait_ms, sizeof(wait_ms));
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, sock, 0) < 0) {
			zmq_msg_close(&msg);
			if (errno == EAGAIN || errno == EINTR)
				continue; /* the top says whether time is up */
			*err = RPC_ESYS;
			return 1;
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

/*
 * A call that found no endpoint of the link connected from first to last
 * (nothing was sent): said, once a minute per link, naming the endpoints
 * and the settings. The caller's own line ("CA: no answer before the
 * deadline") was all an operator saw of a server that is down, of a wrong
 * address, and of a wrong server key alike, where the server logs
 * nothing: its CurveZMQ handshake fails before its key check.
 */
static void
rpc_link_unconnected(struct rpc_link *link, int timeout_ms)
{
	int64_t now = clock_monotonic_ms(), said = link->unconnected_said;

	if (link->endpoint_setting[0] == '\0' ||
	    (said != 0 && now - said < 60 * 1000) ||
	    !atomic_compare_exchange_strong(
	        &link->unconnected_said, &said, now))
		return;
	log_warn("rpc: no connection to %s (%s) came up within %d ms: the "
	         "service is not running there or not reached%s%s%s",
	    link->endpoints, link->endpoint_setting, timeout_ms,
	    link->curve ? ", or it refuses this service's CurveZMQ key (is "
	                : "",
	    link->curve ? link->key_setting : "",
	    link->curve ? " its public key? A server refusing the right key "
	                  "says so in its log)"
	                : "");
}

/* rpc_call and rpc_call_once: sends again after each attempt_ms; the
 * service is told to give up after serve_ms. */
static int
rpc_call_attempts(struct rpc_client *client, Scep__V1__Request *req,
    int timeout_ms, int attempt_ms, int serve_ms, Scep__V1__Reply **reply)
{
	/* The deadline the service is told is of the wall clock, which all
	 * hosts share; ours to wait by is monotonic. */
	int64_t start = rpc_now_ms(),
	        deadline = clock_monotonic_ms() + timeout_ms,
	        unconnected_since = 0; /* of the endpoints tried, none up */
	int err = RPC_ETIMEDOUT;
	uint8_t *buf = NULL;
	size_t len, cap;

	*reply = NULL;
	client->copies = 0;
	if (attempt_ms < RPC_MIN_ATTEMPT_MS)
		attempt_ms = RPC_MIN_ATTEMPT_MS;
	req->id = ++client->next_id;
	req->deadline_ms = start + serve_ms;
	req->has_sent_ms = 1;
	req->sent_ms = start;
	req->origin = client->origin;
	len = scep__v1__request__get_packed_size(req);
	if (client->max_request > 0 &&
	    len + RPC_FRAME_OVERHEAD > client->max_request)
		return RPC_ETOOBIG;
	/* Room for a later sent time's longer varint. */
	cap = len + 16;
	if ((buf = malloc(cap)) == NULL)
		return RPC_ESYS;
	scep__v1__request__pack(req, buf);

	for (int resend = 0; clock_monotonic_ms() < deadline; resend = 1) {
		int64_t until = clock_monotonic_ms() + attempt_ms;
		struct rpc_conn *c;
		size_t e;
		int sent;

		if (until > deadline)
			until = deadline;
		/* A copy says when it is sent: with the first copy's time a
		 * server on another host would take the wait for its clock's
		 * difference from ours (rpc_clock_translate), and read our
		 * deadlines that much later. Servers tell copies apart from
		 * new requests by all but this (rpc_copy_look). */
		if (resend) {
			req->sent_ms = rpc_now_ms();
			if (scep__v1__request__get_packed_size(req) <= cap)
				len = scep__v1__request__pack(req, buf);
		}
		if ((sent = rpc_client_send(client, buf, len, &e)) < 0) {
			err = RPC_ESYS;
			break;
		}
		client->copies += sent > 0;
		/* rpc_call_at's one endpoint, not connected for a while (a
		 * socket made anew after a Lazy Pirate reset gets its time):
		 * not slow but stopped (its scrape would wait out the
		 * timeout). */
		if (sent > 0)
			unconnected_since = 0;
		else if (unconnected_since == 0)
			unconnected_since = clock_monotonic_ms();
		if (sent == 0 && client->only != RPC_ANY_ENDPOINT &&
		    clock_monotonic_ms() - unconnected_since >=
		        RPC_AT_UNCONNECTED_MS)
			break;
		if (sent == 0) {
			/* No connected peer yet: wait a little, retry. */
			struct timespec ts = {0, 20 * 1000 * 1000};

			nanosleep(&ts, NULL);
			continue;
		}
		c = &client->conn[e];
		if (rpc_client_wait(c->sock, req->id, until, reply, &err)) {
			if (*reply != NULL) {
				c->failed_ms = RPC_NEVER;
				client->next = (e + 1) % client->link->nep;
			}
			break;
		}
		/* Lazy Pirate: the socket may be wedged on a dead peer, or
		 * the peer stuck; start over on a fresh one, which the next
		 * attempts try after the others, and resend the same id. */
		log_debug("rpc: no answer to %llu from %s, retrying",
		    (unsigned long long)req->id, client->link->ep[e].addr);
		zmq_close(c->sock);
		c->failed_ms = clock_monotonic_ms();
		c->sock = rpc_client_socket(client, e); /* NULL: later */
	}
	/* A check or a SignRequest holds a password, in it or in its CSR:
	 * a few KiB wiped per call, whatever it held. */
	OPENSSL_cleanse(buf, cap);
	free(buf);
	if (*reply == NULL && err == RPC_OK)
		err = RPC_ETIMEDOUT;
	/* Not rpc_call_at's one endpoint of several (a scrape). */
	if (err == RPC_ETIMEDOUT && client->copies == 0 &&
	    client->only == RPC_ANY_ENDPOINT)
		rpc_link_unconnected(
		    (struct rpc_link *)client->link, timeout_ms);
	return *reply != NULL ? RPC_OK : err;
}

int
rpc_call(struct rpc_client *client, Scep__V1__Request *req, int timeout_ms,
    Scep__V1__Reply **reply)
{
	return rpc_call_attempts(
	    client, req, timeout_ms, timeout_ms / 3, timeout_ms, reply);
}

int
rpc_call_at(struct rpc_client *client, size_t endpoint, Scep__V1__Request *req,
    int timeout_ms, Scep__V1__Reply **reply)
{
	int rc;

	*reply = NULL;
	if (endpoint >= client->link->nep)
		return RPC_EPROTO;
	client->only = endpoint;
	rc = rpc_call(client, req, timeout_ms, reply);
	client->only = RPC_ANY_ENDPOINT;
	return rc;
}

size_t
rpc_client_endpoints(const struct rpc_client *client)
{
	return client->link->nep;
}

const char *
rpc_client_endpoint(const struct rpc_client *client, size_t i)
{
	return i < client->link->nep ? client->link->ep[i].addr : NULL;
}

unsigned int
rpc_client_copies(const struct rpc_client *client)
{
	return client->copies;
}

int
rpc_call_once(struct rpc_client *client, Scep__V1__Request *req, int timeout_ms,
    Scep__V1__Reply **reply)
{
	return rpc_call_attempts(
	    client, req, timeout_ms, timeout_ms, timeout_ms, reply);
}

int
rpc_call_once_served_within(struct rpc_client *client, Scep__V1__Request *req,
    int timeout_ms, int serve_ms, Scep__V1__Reply **reply)
{
	if (timeout_ms < RPC_MIN_ATTEMPT_MS)
		timeout_ms = RPC_MIN_ATTEMPT_MS;
	if (serve_ms < timeout_ms)
		serve_ms = timeout_ms;
	return rpc_call_attempts(
	    client, req, timeout_ms, timeout_ms, serve_ms, reply);
}

/* --- server ----------------------------------------------------------- */

struct rpc_block {
	void *p;
	size_t wipe; /* bytes to cleanse before freeing: rpc_adopt_secret */
};

struct rpc_arena {
	struct rpc_block *blocks;
	size_t n, cap;
	int secret; /* a block was a secret: the packed reply holds it too */
};

static void
rpc_arena_add(struct rpc_arena *arena, void *p, size_t wipe)
{
	if (arena->n == arena->cap) {
		size_t cap = arena->cap ? arena->cap * 2 : 16;
		struct rpc_block *b = realloc(arena->blocks, cap * sizeof(*b));

		if (b == NULL)
			abort();
		arena->blocks = b;
		arena->cap = cap;
	}
	arena->blocks[arena->n].p = p;
	arena->blocks[arena->n++].wipe = wipe;
}

void
rpc_adopt(struct rpc_arena *arena, void *p)
{
	if (p != NULL)
		rpc_arena_add(arena, p, 0);
}

void
rpc_adopt_secret(struct rpc_arena *arena, void *p, size_t len)
{
	if (p == NULL)
		return;
	rpc_arena_add(arena, p, len);
	arena->secret = 1;
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

char *
rpc_strdup_secret(struct rpc_arena *arena, const char *s)
{
	size_t len = strlen(s) + 1;
	char *p = malloc(len);

	if (p == NULL)
		abort();
	memcpy(p, s, len);
	rpc_adopt_secret(arena, p, len);
	return p;
}

Scep__V1__Metric *
rpc_metric(struct rpc_arena *arena, const char *name, const char *help,
    const char *type, const char *labels, double value)
{
	Scep__V1__Metric *m = rpc_alloc(arena, sizeof(*m));

	scep__v1__metric__init(m);
	m->name = (char *)name;
	m->help = (char *)help;
	m->type = (char *)type;
	m->labels = labels != NULL ? rpc_strdup(arena, labels) : NULL;
	m->value = value;
	return m;
}

/* Frees every block, wiping the secret ones; returns whether there were
 * any. */
static int
rpc_arena_clear(struct rpc_arena *arena)
{
	int secret = arena->secret;

	for (size_t i = 0; i < arena->n; i++) {
		struct rpc_block *b = &arena->blocks[i];

		if (b->wipe > 0)
			OPENSSL_cleanse(b->p, b->wipe);
		free(b->p);
	}
	arena->n = 0;
	arena->secret = 0;
	return secret;
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

/* How many workers are past worker_init (or failed it): the ready hook
 * waits for all, so that no worker creates a socket after it. */
struct rpc_start {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int up;
	int failed; /* of those up: the ones that could not start */
};

/*
 * What the workers are answering, for copies. A caller with no answer
 * after a third of its time sends the same request again on a fresh
 * socket (rpc_call_attempts); its first socket is closed and will not
 * take the answer. A copy of a request a worker is still answering (the
 * same caller, id and bytes; the caller is its key's name, or without
 * CURVE the origin it declares) is not answered a second time, by
 * another worker, beside the first (in the RA: the envelope decrypted
 * again, the challenge service and the CA asked again, while the service
 * is already slow): the first's answer goes to the copies' sockets too.
 * To every one, the first's included: the ROUTER takes copies from the
 * callers' sockets in turn, not in the order they were sent, so which is
 * the open one is not known; it drops the answers to closed ones. A copy
 * arriving after the answer is answered anew; the services keep what
 * must not happen twice (the challenge service's kept answers, the CA's
 * journal).
 */
#define RPC_COPIES_MAX 4 /* rpc_call sends three times at most */

struct rpc_answering {
	/* The owner's, taken by another worker only to look (no lock of
	 * them all: the workers would wait on each other at every
	 * request). */
	pthread_mutex_t lock;
	int busy;
	uint64_t ticket; /* when it said it answers the request below */
	uint64_t id;
	/* The caller: its key's name, or without CURVE the origin it
	 * declares (rpc_answer). */
	const char *peer;
	const void *data; /* the request's frame, kept open meanwhile */
	size_t size, head; /* head: rpc_request_head_len */
	int ncopies;
	zmq_msg_t copies[RPC_COPIES_MAX]; /* the copies' routing ids */
	/* The last request answered and its answer, until its deadline
	 * (rpc_server_config.keep_body): a copy that waited in the queue
	 * meanwhile finds it here. kept_reply empty: none. */
	uint64_t kept_id;
	size_t kept_head;
	char kept_peer[RPC_NAME_MAX];
	int64_t kept_until;
	zmq_msg_t kept_request, kept_reply;
};

struct rpc_copies {
	struct rpc_answering *slots; /* one per worker */
	int n;
	_Atomic uint64_t tickets; /* the last ticket given (rpc_copy_find) */
};

struct rpc_worker {
	const struct rpc_server_config *config;
	const char *backend;
	pthread_t thread;
	int started;
	struct rpc_start *start;
	struct rpc_copies *copies;
	int slot; /* its own in copies->slots */
};

static void
rpc_worker_up(struct rpc_worker *w, int failed)
{
	pthread_mutex_lock(&w->start->lock);
	w->start->up++;
	w->start->failed += failed;
	pthread_cond_broadcast(&w->start->cond);
	pthread_mutex_unlock(&w->start->lock);
}

/*
 * Whether `origin` is one of the space-separated `peers`, as a whole
 * element. An origin must be one role's name: "scepctl frontend" is
 * neither scepctl (whose caller's user is checked) nor the frontend
 * (which a handler may hold to less), and must match neither.
 */
static int
rpc_peer_allowed(const char *peers, const char *origin)
{
	size_t len;

	if (origin == NULL || (len = strlen(origin)) == 0 ||
	    len >= RPC_NAME_MAX || strspn(origin, RPC_NAME_CHARS) != len)
		return 0;
	for (const char *p = peers; *p != '\0';) {
		size_t n = strcspn(p, " ");

		if (n == len && memcmp(p, origin, len) == 0)
			return 1;
		p += n;
		p += strspn(p, " ");
	}
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

void
rpc_handle_health(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	Scep__V1__HealthReply *health = rpc_alloc(arena, sizeof(*health));

	(void)worker;
	(void)req;
	scep__v1__health_reply__init(health);
	reply->body_case = SCEP__V1__REPLY__BODY_HEALTH;
	reply->health = health;
}

const struct rpc_route *
rpc_route_for(const struct rpc_route *routes, const Scep__V1__Request *req)
{
	const struct rpc_route *r = rpc_route_find(routes, req->body_case);

	return r != NULL && rpc_peer_allowed(r->peers, req->origin) ? r : NULL;
}

/* The user of a caller on this host: libzmq's "Peer-Address" of an
 * ipc:// caller is "localhost:UID:GID:PID". -1 for another host's. */
static long
rpc_local_uid(const char *address)
{
	char *end;
	long uid;

	if (strncmp(address, "localhost:", 10) != 0)
		return -1;
	uid = strtol(address + 10, &end, 10);
	return end != address + 10 && *end == ':' && uid >= 0 ? uid : -1;
}

/*
 * Whether `route` may be asked by this caller. Without CURVE (`peer` NULL)
 * the declared origin decides, except that on this host only root or this
 * service's own user may speak as scepctl (an RA of its own user, taken
 * over, could otherwise approve its own pending request or revoke any
 * certificate) or as scepd, the launcher (whose liveness checks only it
 * should send); with CURVE, the name the caller's key was admitted under
 * must be listed and be what the caller declares: an RA's key cannot
 * speak as scepctl. `why`: the refusal's reason for the caller, when it
 * is one the caller can act on.
 */
static int
rpc_caller_allowed(const struct rpc_route *route, const struct rpc_curve *curve,
    const char *peer, const char *address, const Scep__V1__Request *req,
    char **why)
{
	long uid;

	/* CallerUsers: a caller that declares a listed name runs as that
	 * name's user, or as root (scepctl); one whose user is not known
	 * (over tcp://, or a libzmq that gives no peer credentials) is
	 * refused: the list says who may speak so, and it cannot be told. */
	if (peer == NULL && req->origin != NULL && curve != NULL)
		for (size_t i = 0; i < curve->ncallers; i++) {
			if (strcmp(curve->callers[i].name, req->origin) != 0)
				continue;
			uid = rpc_local_uid(address);
			if (uid == 0 ||
			    (uid > 0 && (uid_t)uid == curve->callers[i].uid))
				break;
			if (uid < 0)
				log_warn(
				    "security: request %llu declares "
				    "origin '%s' from %s, whose user is not "
				    "known: CallerUsers names %s",
				    (unsigned long long)req->id, req->origin,
				    address[0] ? address : "a caller",
				    curve->callers[i].user);
			else
				log_warn("security: request %llu declares "
				         "origin '%s' from user %ld, not "
				         "CallerUsers' %s",
				    (unsigned long long)req->id, req->origin,
				    uid, curve->callers[i].user);
			*why = "not permitted: the caller does not run as the "
			       "user CallerUsers names for it";
			return 0;
		}
	if (peer == NULL && req->origin != NULL &&
	    (strcmp(req->origin, "scepctl") == 0 ||
	        strcmp(req->origin, "scepd") == 0) &&
	    (uid = rpc_local_uid(address)) >= 0 && uid != 0 &&
	    (uid_t)uid != geteuid()) {
		log_warn("security: request %llu declares origin '%s' "
		         "from user %ld, neither root nor this service's",
		    (unsigned long long)req->id, req->origin, uid);
		*why = "not permitted: the caller is neither root nor this "
		       "service's user";
		return 0;
	}
	/* Without CURVE "self" would be a name anyone may declare; the
	 * health probe declares scepctl then. */
	if (peer == NULL && req->origin != NULL &&
	    strcmp(req->origin, RPC_PEER_SELF) == 0) {
		*why = "not permitted: " RPC_PEER_SELF
		       " is the service's own CurveZMQ key";
		return 0;
	}
	if (peer == NULL)
		return rpc_peer_allowed(route->peers, req->origin);
	if (peer[0] == '\0')
		return 0;
	if (req->origin == NULL || strcmp(req->origin, peer) != 0) {
		log_warn("security: request %llu: the CurveZMQ key of '%s' "
		         "declares origin '%s'",
		    (unsigned long long)req->id, peer,
		    req->origin ? req->origin : "");
		return 0;
	}
	return rpc_peer_allowed(route->peers, peer);
}

/*
 * Deadlines are read by the caller's clock, which on another host is not
 * this one's: a host 90 s ahead of its callers would find every request
 * past its deadline and answer nothing; one behind would work on past
 * the caller. Each request says when it was first sent by that clock
 * (sent_ms); now - sent_ms is the clocks' difference plus the time it
 * took to arrive and to be taken up. Only "fresh" requests teach it: ones
 * that found the server waiting with nothing queued (rpc_proxy,
 * rpc_serve_inline), so that their lag is the difference and transit
 * alone; a request that waited behind others, or for a stopped process,
 * would teach a queue's wait as a clock's, and keep requests whose
 * callers gave up. The smallest fresh lag of the last 5 to 10 s is the
 * difference (a caller's clock stepped is followed that fast); with no
 * fresh request lately, the last one learnt stands. Beyond
 * RPC_CLOCK_SLACK_MS (half of it to stop) the caller's deadlines are
 * moved by it, logged with its name and address; within it the
 * difference is left alone, as transit makes some. Only on a network
 * endpoint: a caller is its host's address ("Peer-Address") and its
 * key's name (two hosts may share a name, and callers behind one NAT
 * address have it); ipc:// callers are on this host, with its clock.
 */
#define RPC_CLOCK_SLACK_MS 1000
#define RPC_CLOCK_WINDOW_MS 5000
#define RPC_CLOCK_RELOG_MS (10 * 60 * 1000)
#define RPC_CLOCK_MAX_MS (24 * 3600 * 1000LL)
#define RPC_CLOCK_HOSTS 64
/* A poll that returned this much later than its timeout: the process
 * was stopped meanwhile (SIGSTOP, a frozen VM), and what it then reads
 * waited for it. */
#define RPC_CLOCK_STOPPED_MS 500
#define RPC_ADDRESS_MAX 64 /* a "Peer-Address": an IPv6 address, NUL */

struct rpc_clock_host {
	char address[RPC_ADDRESS_MAX];
	char name[RPC_NAME_MAX];
	int64_t window; /* the monotonic window of `lag`, INT64_MIN: none */
	int64_t lag, prev; /* the smallest fresh lag in it; the one before */
	int64_t learnt; /* the difference last learnt, INT64_MAX: none */
	int64_t used; /* monotonic ms last seen: the oldest goes */
	int64_t logged; /* the offset last logged, 0: agreeing */
	int64_t logged_at; /* monotonic ms */
	int64_t moving_since; /* monotonic ms deadlines began to move, or 0 */
	int64_t fresh_at; /* monotonic ms of the last fresh request */
};

static struct {
	pthread_mutex_t lock;
	struct rpc_clock_host hosts[RPC_CLOCK_HOSTS];
} rpc_clocks = {
    PTHREAD_MUTEX_INITIALIZER, {{{0}, {0}, 0, 0, 0, 0, 0, 0, 0, 0, 0}}};

static struct rpc_clock_host *
rpc_clock_host(const char *address, const char *name)
{
	struct rpc_clock_host *h, *oldest = &rpc_clocks.hosts[0];

	for (h = rpc_clocks.hosts; h < rpc_clocks.hosts + RPC_CLOCK_HOSTS;
	     h++) {
		if (strcmp(h->address, address) == 0 &&
		    strcmp(h->name, name) == 0)
			return h;
		if (h->used < oldest->used)
			oldest = h;
	}
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->address, sizeof(oldest->address), "%s", address);
	snprintf(oldest->name, sizeof(oldest->name), "%s", name);
	oldest->window = INT64_MIN;
	oldest->learnt = INT64_MAX;
	return oldest;
}

/*
 * Whether requests a server reads are fresh (rpc_clock_translate): one
 * that came while it waited in poll with nothing queued is; so is one
 * read within RPC_CLOCK_FRESH_MS of a moment the queue was seen empty
 * (it cannot have waited longer). Not after a poll that returned late:
 * the process was stopped, and what it reads waited for it.
 */
#define RPC_CLOCK_FRESH_MS 250

struct rpc_freshness {
	int clocks; /* a network endpoint: else nothing is asked */
	int empty; /* nothing was queued when the poll began */
	int64_t emptied; /* boottime ms the queue was last seen empty */
	int64_t polled; /* boottime ms the poll began */
	int64_t stopped; /* boottime ms the process was seen to continue */
};

/* Nothing fresh yet; `config`'s endpoint says whether clocks are read. */
static struct rpc_freshness
rpc_fresh_init(const struct rpc_server_config *config)
{
	struct rpc_freshness f = {rpc_is_network(config->endpoint), 0,
	    INT64_MIN / 2, 0, INT64_MIN / 2};

	return f;
}

/* Before a poll that reads `front` (`reads`: else its requests wait). */
static void
rpc_fresh_poll(struct rpc_freshness *f, void *front, int reads)
{
	int events = 0;
	size_t len = sizeof(events);

	f->empty = 0;
	if (!f->clocks)
		return;
	f->polled = clock_boottime_ms();
	if (reads && zmq_getsockopt(front, ZMQ_EVENTS, &events, &len) == 0 &&
	    !(events & ZMQ_POLLIN)) {
		f->empty = 1;
		f->emptied = f->polled;
	}
}

/* After the poll, that waited up to `timeout_ms`. */
static void
rpc_fresh_polled(struct rpc_freshness *f, int timeout_ms)
{
	int64_t now = clock_boottime_ms();

	if (f->clocks && now - f->polled > timeout_ms + RPC_CLOCK_STOPPED_MS) {
		f->empty = 0;
		f->emptied = INT64_MIN / 2;
		f->stopped = now;
	}
}

/* Whether the request read now is fresh; `first`: the first read since
 * the poll. */
static int
rpc_fresh(const struct rpc_freshness *f, int first)
{
	int64_t now = clock_boottime_ms();

	/* After a stop, what the kernel kept meanwhile comes in for a
	 * moment, as if sent now. */
	return f->clocks && now - f->stopped > RPC_CLOCK_STOPPED_MS &&
	    ((first && f->empty) || now - f->emptied < RPC_CLOCK_FRESH_MS);
}

/* An IPv4 caller of a socket listening on both families ("[::]"), named
 * as on an IPv4 one: "10.0.0.21", not "::ffff:10.0.0.21". */
const char *
rpc_address_shown(const char *address)
{
	if (strncmp(address, "::ffff:", 7) == 0 && strchr(address + 7, '.'))
		return address + 7;
	return address;
}

/* The address of the host a message came from: its "Peer-Address" ("" if
 * none or too long): on ipc:// libzmq gives "localhost:UID:GID:PID", a
 * process of this host (rpc_local_uid). */
static const char *
rpc_peer_address(zmq_msg_t *msg)
{
	const char *address = zmq_msg_gets(msg, "Peer-Address");

	if (address == NULL || strlen(address) >= RPC_ADDRESS_MAX)
		return "";
	return rpc_address_shown(address);
}

/* A worker's peer frame (rpc_forward_request): '1' if the request is
 * fresh (rpc_clock_translate) or '0', the key's name, a NUL, the address.
 * A name longer than ZAP gives is none (it admits nothing). Whether
 * fresh. */
static int
rpc_peer_split(zmq_msg_t *peer, char *name, size_t name_size, char *address,
    size_t address_size)
{
	const char *data = zmq_msg_data(peer), *nul;
	size_t size = zmq_msg_size(peer), len;
	int fresh = size > 0 && data[0] == '1';

	name[0] = address[0] = '\0';
	if (size == 0)
		return 0;
	data++;
	size--;
	nul = memchr(data, '\0', size);
	len = nul != NULL ? (size_t)(nul - data) : size;
	if (len < name_size) {
		memcpy(name, data, len);
		name[len] = '\0';
	}
	if (nul != NULL &&
	    (len = size - (size_t)(nul - data) - 1) < address_size) {
		memcpy(address, nul + 1, len);
		address[len] = '\0';
	}
	return fresh;
}

/* Moves req->deadline_ms to this host's clock; `address` is the caller's
 * host on a network endpoint ("": none), `peer` its key's name or origin
 * (NULL: none given); `fresh`: it found the server waiting (above). */
static void
rpc_clock_translate(
    const char *address, const char *peer, Scep__V1__Request *req, int fresh)
{
	int64_t now, mono, window, lag, offset, slack, logged = 0;
	struct rpc_clock_host *h;
	int say = 0, sure;

	if (!req->has_sent_ms || address == NULL || address[0] == '\0')
		return;
	now = rpc_now_ms();
	/* Clocks a day apart are not a clock's drift: left as they are. */
	if (req->sent_ms < now - RPC_CLOCK_MAX_MS ||
	    req->sent_ms > now + RPC_CLOCK_MAX_MS ||
	    req->deadline_ms < now - 2 * RPC_CLOCK_MAX_MS ||
	    req->deadline_ms > now + 2 * RPC_CLOCK_MAX_MS)
		return;
	mono = clock_monotonic_ms();
	window = mono / RPC_CLOCK_WINDOW_MS;
	lag = now - req->sent_ms;
	pthread_mutex_lock(&rpc_clocks.lock);
	h = rpc_clock_host(address, peer != NULL ? peer : "");
	h->used = mono;
	if (fresh)
		h->fresh_at = mono;
	if (fresh && h->window != window) {
		h->prev = h->window == window - 1 ? h->lag : INT64_MAX;
		h->window = window;
		h->lag = lag;
	} else if (fresh && lag < h->lag)
		h->lag = lag;
	if (h->window == window)
		h->learnt = h->lag < h->prev ? h->lag : h->prev;
	else if (h->window == window - 1)
		h->learnt = h->lag;
	offset = h->learnt == INT64_MAX ? 0 : h->learnt;
	slack = h->moving_since ? RPC_CLOCK_SLACK_MS / 2 : RPC_CLOCK_SLACK_MS;
	if (offset > -slack && offset < slack)
		offset = 0;
	if (offset == 0)
		h->moving_since = 0;
	else if (h->moving_since == 0)
		h->moving_since = mono;
	/* Said when surely the clocks: the caller ahead (a wait only adds
	 * lag), or behind still by fresh requests longer than one is
	 * remembered. What a service gets at once as it starts or continues
	 * (queued for it by its callers, or by the kernel while it was
	 * stopped) looks fresh to it and late, for a moment. */
	sure = offset < 0 ||
	    h->fresh_at - h->moving_since > 2 * RPC_CLOCK_WINDOW_MS;
	if (offset != 0 && sure &&
	    (h->logged == 0 || llabs(offset - h->logged) > RPC_CLOCK_SLACK_MS ||
	        mono - h->logged_at > RPC_CLOCK_RELOG_MS)) {
		say = 1;
		h->logged = offset;
		h->logged_at = mono;
	} else if (offset == 0 && h->logged != 0) {
		say = 1;
		logged = h->logged;
		h->logged = 0;
	}
	pthread_mutex_unlock(&rpc_clocks.lock);
	req->deadline_ms += offset;
	if (!say)
		return;
	if (offset != 0)
		log_warn(
		    "rpc: the clock of '%s' at %s is about %.1f s %s this "
		    "host's: its requests' deadlines are read by its clock "
		    "(check NTP on both hosts)",
		    peer ? peer : "?", address, (double)llabs(offset) / 1000,
		    offset > 0 ? "behind" : "ahead of");
	else
		log_info("rpc: the clock of '%s' at %s agrees with this host's "
		         "again (it was %.1f s %s)",
		    peer ? peer : "?", address, (double)llabs(logged) / 1000,
		    logged > 0 ? "behind" : "ahead");
}

/* Past its deadline (logged): its caller has given up or sent it again. */
static int
rpc_past_deadline(const Scep__V1__Request *req)
{
	if (req->deadline_ms >= rpc_now_ms())
		return 0;
	log_warn("rpc: dropped request %llu from %s: past its deadline",
	    (unsigned long long)req->id, req->origin ? req->origin : "?");
	return 1;
}

/* The last frame of a message whose first is in `body` (one message per
 * frame is the rule: the others are dropped). */
static void
rpc_last_frame(void *sock, zmq_msg_t *body)
{
	while (zmq_msg_more(body)) {
		zmq_msg_close(body);
		zmq_msg_init(body);
		if (zmq_msg_recv(body, sock, 0) < 0)
			break;
	}
}

/*
 * How many bytes of `req`'s frame (`size`) its id, deadline, origin and
 * sent time take, packed before its body; taken as it came, before its
 * deadline is read by this host's clock (rpc_clock_translate). A copy
 * sent again says when it was sent (rpc_call_attempts), so two copies
 * differ there and only there: the same id (random, one call's), caller
 * and bytes after the head are what tells a copy.
 */
static size_t
rpc_request_head_len(const Scep__V1__Request *req, size_t size)
{
	Scep__V1__Request head = *req;
	size_t n;

	head.body_case = SCEP__V1__REQUEST__BODY__NOT_SET;
	head.base.n_unknown_fields = 0; /* packed after the body */
	n = scep__v1__request__get_packed_size(&head);
	return n < size ? n : size;
}

/* What one unpack may allocate (rpc_request_unpack). */
struct rpc_unpack_budget {
	size_t left;
};

/* Counted as malloc sizes them, and given back when freed: protobuf-c's
 * scratch (32 bytes per field read) goes before the unpack ends. */
static void *
rpc_budget_alloc(void *data, size_t size)
{
	struct rpc_unpack_budget *b = data;
	void *p;

	if (size > b->left || (p = malloc(size)) == NULL)
		return NULL;
	if (malloc_usable_size(p) > b->left) {
		free(p);
		return NULL;
	}
	b->left -= malloc_usable_size(p);
	return p;
}

static void
rpc_budget_free(void *data, void *p)
{
	struct rpc_unpack_budget *b = data;

	if (p != NULL)
		b->left += malloc_usable_size(p);
	free(p);
}

Scep__V1__Request *
rpc_request_unpack(const void *data, size_t size)
{
	struct rpc_unpack_budget budget = {RPC_UNPACK_BUDGET(size)};
	ProtobufCAllocator allocator = {
	    rpc_budget_alloc, rpc_budget_free, &budget};

	/* Freed later with the default allocator: both malloc's. */
	return scep__v1__request__unpack(&allocator, size, data);
}

/*
 * Unpacks and admits one request frame: NULL to drop it (unreadable, past
 * its deadline). Else the request, and *route is NULL when `reply` holds
 * its refusal already. `peer`: the name of the caller's CurveZMQ key,
 * NULL without CURVE; `address`: the caller's "Peer-Address" ("" on this
 * host); `fresh`: it found the server waiting with nothing queued
 * (rpc_clock_translate).
 */
static Scep__V1__Request *
rpc_admit(const struct rpc_server_config *config, const char *peer,
    const char *address, int fresh, const void *data, size_t size,
    Scep__V1__Reply *reply, const struct rpc_route **route, size_t *head)
{
	Scep__V1__Request *req;
	const struct rpc_route *r;
	char *why = NULL;

	*route = NULL;
	req = rpc_request_unpack(data, size);
	if (req == NULL) {
		log_warn("rpc: dropped an unreadable request of %zu bytes (or "
		         "one that unpacks to more than RPC_UNPACK_BUDGET)",
		    size);
		return NULL;
	}
	reply->id = req->id;
	if (head != NULL) /* before the deadline is translated */
		*head = rpc_request_head_len(req, size);
	r = rpc_route_find(config->routes, req->body_case);
	if (r != NULL &&
	    rpc_caller_allowed(r, config->curve, peer, address, req, &why)) {
		/* Only a caller it serves teaches it a host's clock; one of
		 * this host has this host's. */
		rpc_clock_translate(rpc_local_uid(address) >= 0 ? "" : address,
		    peer != NULL && peer[0] != '\0' ? peer : req->origin, req,
		    fresh);
		if (rpc_past_deadline(req)) {
			scep__v1__request__free_unpacked(req, NULL);
			return NULL;
		}
		*route = r;
	} else if (r == NULL) { /* refused whenever: a refusal costs nothing */
		log_warn("rpc: request %llu from %s: no route for body %d",
		    (unsigned long long)req->id,
		    req->origin ? req->origin : "?", (int)req->body_case);
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error = "request kind not served here";
	} else {
		log_warn("rpc: request %llu: %s is not permitted from '%s'%s%s",
		    (unsigned long long)req->id, r->name,
		    req->origin ? req->origin : "",
		    peer ? " with the key of " : "", peer ? peer : "");
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error =
		    why ? why : "request kind not permitted from this peer";
	}
	return req;
}

static uint8_t *
rpc_pack(const Scep__V1__Reply *reply, size_t *out_len)
{
	uint8_t *out;

	*out_len = scep__v1__reply__get_packed_size(reply);
	out = malloc(*out_len ? *out_len : 1);
	if (out != NULL)
		scep__v1__reply__pack(reply, out);
	return out;
}

#ifdef SCEPD_TEST_HOOKS
void (*rpc_test_wiped_hook)(const void *data, size_t size);
#endif

/* zmq_msg_init_data's free function of a reply holding a secret: `hint`
 * is its size. */
static void
rpc_free_secret(void *data, void *hint)
{
	size_t size = (size_t)(uintptr_t)hint;

	OPENSSL_cleanse(data, size);
#ifdef SCEPD_TEST_HOOKS
	if (rpc_test_wiped_hook != NULL)
		rpc_test_wiped_hook(data, size);
#endif
	free(data);
}

/*
 * The packed `reply` in `msg` (initialized by the caller; NULL reply or no
 * memory: 0, nothing in it). The arena is cleared; *secret says whether
 * it held one (then so does `msg`, which must not be kept).
 */
static int
rpc_reply_msg(const Scep__V1__Reply *reply, struct rpc_arena *arena,
    zmq_msg_t *msg, int *secret)
{
	uint8_t *out = NULL;
	size_t out_len = 0;
	int ok = 0;

	if (reply != NULL)
		out = rpc_pack(reply, &out_len);
	*secret = rpc_arena_clear(arena);
	if (out == NULL)
		return 0;
	zmq_msg_close(msg);
	if (*secret) {
		/* Not copied into a buffer of libzmq's, which it would free
		 * unwiped: it frees this one with rpc_free_secret once the
		 * last copy of the message (rpc_forward_reply) is sent, as
		 * copies share it. */
		if (zmq_msg_init_data(msg, out, out_len, rpc_free_secret,
		        (void *)(uintptr_t)out_len) == 0)
			return 1;
		OPENSSL_cleanse(out, out_len);
	} else if (zmq_msg_init_size(msg, out_len) == 0) {
		memcpy(zmq_msg_data(msg), out, out_len);
		ok = 1;
	}
	if (!ok)
		zmq_msg_init(msg);
	free(out);
	return ok;
}

/*
 * Sends `msg` (emptied) to `ident`, and to the `ncopies` copies' routing
 * ids in copies[] (rpc_copies), one message the proxy delivers to each;
 * nothing when `msg` is empty. The ids are closed. Whether sent.
 */
static int
rpc_send_frames(void *sock, zmq_msg_t *ident, zmq_msg_t *copies, int ncopies,
    zmq_msg_t *msg)
{
	int ok = zmq_msg_size(msg) > 0;

	if (ok) {
		ok = zmq_msg_send(ident, sock, ZMQ_SNDMORE) >= 0;
		for (int i = 0; ok && i < ncopies; i++)
			ok = zmq_msg_send(&copies[i], sock, ZMQ_SNDMORE) >= 0;
		ok = ok && zmq_msg_send(msg, sock, 0) >= 0;
		if (!ok)
			log_warn(
			    "rpc: reply not sent: %s", zmq_strerror(errno));
	}
	zmq_msg_close(ident);
	for (int i = 0; i < ncopies; i++)
		zmq_msg_close(&copies[i]);
	return ok;
}

/* `reply` packed and sent to `ident` (rpc_reply_msg, rpc_send_frames). */
static int
rpc_send_reply(void *sock, zmq_msg_t *ident, const Scep__V1__Reply *reply,
    struct rpc_arena *arena)
{
	zmq_msg_t msg;
	int secret, sent;

	zmq_msg_init(&msg);
	rpc_reply_msg(reply, arena, &msg, &secret);
	sent = rpc_send_frames(sock, ident, NULL, 0, &msg);
	zmq_msg_close(&msg);
	return sent;
}

/* What a worker taking a request found of it among the others' work. */
enum rpc_copy_found {
	RPC_COPY_NONE, /* not a copy: this worker answers it */
	RPC_COPY_ABSORBED, /* a copy of one another worker answers */
	RPC_COPY_KEPT, /* a copy of one answered lately: its answer */
};

#ifdef SCEPD_TEST_HOOKS
void (*rpc_test_copy_hook)(void);
#endif

/* The routing ids of the copies handed to slot `a` (its lock held) move
 * to `to` (room for a->ncopies); how many. */
static int
rpc_copies_take(struct rpc_answering *a, zmq_msg_t *to)
{
	int n = a->ncopies;

	for (int i = 0; i < n; i++) {
		zmq_msg_init(&to[i]);
		zmq_msg_move(&to[i], &a->copies[i]);
		zmq_msg_close(&a->copies[i]);
	}
	a->ncopies = 0;
	return n;
}

/*
 * `own`'s request, its ident in `ident` and the copies absorbed by it, go
 * to `first` if that still answers the request it had ticket `ticket`
 * for and has room; `own` no longer answers it then. Both locks, taken in
 * the slots' order (a worker holds two only here). 1 when moved, 0 when
 * `first` answers it no longer, -1 when it has no room for them.
 */
static int
rpc_copy_hand_over(struct rpc_answering *own, struct rpc_answering *first,
    uint64_t ticket, zmq_msg_t *ident)
{
	struct rpc_answering *lo = own < first ? own : first;
	struct rpc_answering *hi = own < first ? first : own;
	int moved = 0;

	pthread_mutex_lock(&lo->lock);
	pthread_mutex_lock(&hi->lock);
	if (!first->busy || first->ticket != ticket)
		moved = 0;
	else if (first->ncopies + 1 + own->ncopies > RPC_COPIES_MAX)
		moved = -1;
	else {
		zmq_msg_init(&first->copies[first->ncopies]);
		zmq_msg_move(&first->copies[first->ncopies++], ident);
		first->ncopies +=
		    rpc_copies_take(own, &first->copies[first->ncopies]);
		own->busy = 0;
		own->data = NULL;
		moved = 1;
	}
	pthread_mutex_unlock(&hi->lock);
	pthread_mutex_unlock(&lo->lock);
	return moved;
}

/* Whether the frame `a` (`size` bytes, of the same id and caller, the
 * same head length) is a copy of `data`: the same but for its head. */
static int
rpc_same_request(const void *a, const void *data, size_t size, size_t head)
{
	return memcmp((const char *)a + head, (const char *)data + head,
	           size - head) == 0;
}

/*
 * One look at every slot for `req`: the earliest other worker's that says
 * it answers it with a ticket before `ticket` (its index in *first, -1
 * for none, and its ticket), and with `kept_too` a kept answer to it,
 * copied to `answer` (RPC_COPY_KEPT). Expired kept answers are released
 * on the way.
 */
static enum rpc_copy_found
rpc_copy_look(struct rpc_copies *c, int slot, uint64_t ticket, const char *peer,
    const Scep__V1__Request *req, const void *data, size_t size, size_t head,
    int kept_too, zmq_msg_t *answer, int *first, uint64_t *first_ticket)
{
	enum rpc_copy_found found = RPC_COPY_NONE;
	int64_t now = rpc_now_ms();

	*first = -1;
	*first_ticket = 0;
	for (int i = 0; i < c->n; i++) {
		struct rpc_answering *a = &c->slots[i];

		pthread_mutex_lock(&a->lock);
		if (zmq_msg_size(&a->kept_reply) > 0 && a->kept_until < now) {
			/* Past its time, any worker's: the bytes go (a worker
			 * may stay idle for hours). */
			zmq_msg_close(&a->kept_request);
			zmq_msg_close(&a->kept_reply);
			zmq_msg_init(&a->kept_request);
			zmq_msg_init(&a->kept_reply);
		}
		if (i != slot && a->busy && a->ticket < ticket &&
		    a->id == req->id && a->size == size && a->head == head &&
		    strcmp(a->peer, peer) == 0 &&
		    rpc_same_request(a->data, data, size, head)) {
			if (*first < 0 || a->ticket < *first_ticket) {
				*first = i;
				*first_ticket = a->ticket;
			}
		} else if (kept_too && found == RPC_COPY_NONE &&
		    zmq_msg_size(&a->kept_reply) > 0 && a->kept_id == req->id &&
		    a->kept_until >= now &&
		    zmq_msg_size(&a->kept_request) == size &&
		    a->kept_head == head && strcmp(a->kept_peer, peer) == 0 &&
		    rpc_same_request(
		        zmq_msg_data(&a->kept_request), data, size, head) &&
		    zmq_msg_copy(answer, &a->kept_reply) == 0)
			found = RPC_COPY_KEPT;
		pthread_mutex_unlock(&a->lock);
	}
	return found;
}

/*
 * Whether `req` (the frame `data`, `size`) is a copy of a request another
 * worker is answering: its routing id then moves from `ident` to that
 * worker, which answers it too. Or, with `kept_too`, of one a worker
 * answered lately and kept (rpc_server_config.keep_body): its answer is
 * copied to `answer`. A copy that waited in the queue while the first was
 * answered would else be handled again, when the service is slow already.
 *
 * This worker's slot says first that it answers `req`, with a ticket
 * (later ones are greater), and then looks at the others: of two workers
 * that take copies at the same moment, the one with the later ticket
 * finds the other's slot said (its lock is taken after the other's
 * ticket was drawn under it) and hands its copy over; the earlier one
 * answers. Looking first, both could find nothing and both answer. Each
 * slot is looked at under its lock, and rpc_copy_done keeps an answer in
 * the same hold as it ends "busy": a request is seen in hand or kept,
 * never between. Copies handed to this slot meanwhile go with it: to the
 * earlier worker, or their routing ids to `copies` (*ncopies, at most
 * RPC_COPIES_MAX) for the kept answer.
 */
static enum rpc_copy_found
rpc_copy_find(struct rpc_copies *c, int slot, const char *peer,
    const Scep__V1__Request *req, const void *data, size_t size, size_t head,
    zmq_msg_t *ident, int kept_too, zmq_msg_t *answer, zmq_msg_t *copies,
    int *ncopies)
{
	struct rpc_answering *own = &c->slots[slot];
	enum rpc_copy_found found;
	uint64_t ticket, first_ticket;
	int first, moved;

	pthread_mutex_lock(&own->lock);
	ticket = own->ticket = atomic_fetch_add(&c->tickets, 1) + 1;
	own->busy = 1;
	own->id = req->id;
	own->head = head;
	own->peer = peer;
	own->data = data;
	own->size = size;
	own->ncopies = 0;
	pthread_mutex_unlock(&own->lock);
#ifdef SCEPD_TEST_HOOKS
	if (rpc_test_copy_hook != NULL)
		rpc_test_copy_hook();
#endif
	/* Again when the one to hand over to ended meanwhile: another with
	 * an earlier ticket may answer it still (its own hand-over failed
	 * too). Each time one fewer: later tickets are never candidates. */
	do {
		found = rpc_copy_look(c, slot, ticket, peer, req, data, size,
		    head, kept_too, answer, &first, &first_ticket);
		if (first < 0)
			break;
		/* In hand goes before kept: the worker answering it now
		 * answers the copies too. */
		if (found == RPC_COPY_KEPT) {
			zmq_msg_close(answer);
			zmq_msg_init(answer);
		}
		moved = rpc_copy_hand_over(
		    own, &c->slots[first], first_ticket, ident);
		found = moved > 0 ? RPC_COPY_ABSORBED : RPC_COPY_NONE;
	} while (moved == 0);
	if (found == RPC_COPY_KEPT) {
		/* Copies handed to this slot meanwhile get the kept answer
		 * too: their routing ids move to `copies`. */
		pthread_mutex_lock(&own->lock);
		*ncopies = rpc_copies_take(own, copies);
		own->busy = 0;
		own->data = NULL;
		pthread_mutex_unlock(&own->lock);
	}
	if (found == RPC_COPY_ABSORBED)
		log_info("rpc: request %llu from %s sent again while it is "
		         "answered: one answer, to each",
		    (unsigned long long)req->id,
		    req->origin ? req->origin : "?");
	else if (found == RPC_COPY_KEPT)
		log_info("rpc: request %llu from %s sent again after it was "
		         "answered: the same answer",
		    (unsigned long long)req->id,
		    req->origin ? req->origin : "?");
	return found;
}

/*
 * This worker's request answered: the routing ids of the copies that
 * came meanwhile move to `to` (RPC_COPIES_MAX); how many. With `answer`
 * (not NULL), the request's frame `request` (moved) and its answer are
 * kept for copies still to come, until the request's deadline, in place
 * of the last ones.
 */
static int
rpc_copy_done(struct rpc_copies *c, int slot, zmq_msg_t *to, zmq_msg_t *answer,
    zmq_msg_t *request, const Scep__V1__Request *req)
{
	struct rpc_answering *own = &c->slots[slot];
	int n;

	pthread_mutex_lock(&own->lock);
	n = rpc_copies_take(own, to);
	if (answer != NULL && zmq_msg_copy(&own->kept_reply, answer) == 0) {
		zmq_msg_move(&own->kept_request, request);
		own->kept_id = req->id;
		own->kept_head = own->head;
		snprintf(
		    own->kept_peer, sizeof(own->kept_peer), "%s", own->peer);
		own->kept_until = req->deadline_ms;
	}
	own->busy = 0;
	own->data = NULL;
	pthread_mutex_unlock(&own->lock);
	return n;
}

/*
 * Answers the request in `body` (more frames of it are read and dropped:
 * one message per frame is the rule) to `ident` on `sock`; `name` is what
 * its CurveZMQ key was admitted as ("" without CURVE). Whether an answer
 * was sent: none to a request dropped or to a copy another worker is
 * answering (rpc_copies).
 */
static int
rpc_answer(const struct rpc_worker *w, void *state, void *sock,
    zmq_msg_t *ident, const char *name, const char *address, int fresh,
    zmq_msg_t *body, struct rpc_arena *arena)
{
	const struct rpc_server_config *config = w->config;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	const struct rpc_route *route;
	Scep__V1__Request *req;
	zmq_msg_t copies[RPC_COPIES_MAX], answer;
	int sent = 0, ncopies = 0, secret, kept_too;
	int curve = rpc_curve_serves(config->curve);
	size_t head = 0;

	rpc_last_frame(sock, body);
	req = rpc_admit(config, curve ? name : NULL, address, fresh,
	    zmq_msg_data(body), zmq_msg_size(body), &reply, &route, &head);
	zmq_msg_init(&answer);
	kept_too = route != NULL && config->keep_body != 0 &&
	    req->body_case == config->keep_body;
	/* A copy is of the same caller: with CURVE its key's name; without,
	 * the origin it declares (admitted: one role's name). The origin is
	 * in the head, which copies are not compared by: two roles of names
	 * of one length would else be one caller. */
	switch (route == NULL
	        ? RPC_COPY_NONE
	        : rpc_copy_find(w->copies, w->slot, curve ? name : req->origin,
	              req, zmq_msg_data(body), zmq_msg_size(body), head, ident,
	              kept_too, &answer, copies, &ncopies)) {
	case RPC_COPY_ABSORBED:
		zmq_msg_close(ident);
		goto out;
	case RPC_COPY_KEPT:
		sent = rpc_send_frames(sock, ident, copies, ncopies, &answer);
		goto out;
	case RPC_COPY_NONE:
		break;
	}
	if (route != NULL)
		route->handler(state, req, &reply, arena);
	if (!rpc_reply_msg(
	        req != NULL ? &reply : NULL, arena, &answer, &secret))
		secret = 1;
	if (route != NULL)
		/* Kept: answers that hold no secret and are not "try later". */
		ncopies = rpc_copy_done(w->copies, w->slot, copies,
		    kept_too && !secret &&
		            reply.status == SCEP__V1__STATUS__STATUS_OK
		        ? &answer
		        : NULL,
		    body, req);
	sent = rpc_send_frames(sock, ident, copies, ncopies, &answer);
out:
	zmq_msg_close(&answer);
	zmq_msg_close(body);
	scep__v1__request__free_unpacked(req, NULL);
	return sent;
}

static void *
rpc_worker_main(void *arg)
{
	struct rpc_worker *w = arg;
	const struct rpc_server_config *config = w->config;
	void *sock = zmq_socket(config->zmq_ctx, ZMQ_DEALER);
	void *state = NULL;
	struct rpc_arena arena = {NULL, 0, 0, 0};
	int zero = 0;

	if (sock == NULL || zmq_connect(sock, w->backend) != 0) {
		log_error(
		    "rpc: worker cannot connect: %s", zmq_strerror(errno));
		rpc_worker_up(w, 1);
		goto out;
	}
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	if (config->worker_init != NULL &&
	    (state = config->worker_init(config->service)) == NULL) {
		log_error("rpc: worker start-up failed");
		rpc_worker_up(w, 1);
		goto out;
	}
	rpc_worker_up(w, 0);
	/* "Ready": an empty frame (rpc_proxy); each reply says it again. */
	if (zmq_send(sock, "", 0, 0) < 0)
		goto out;
	for (;;) {
		zmq_msg_t ident, peer, body;
		char name[RPC_NAME_MAX], address[RPC_ADDRESS_MAX];
		int fresh;

		/* The routing id, the key's name (rpc_forward_request) and
		 * the request. */
		zmq_msg_init(&ident);
		zmq_msg_init(&peer);
		zmq_msg_init(&body);
		if (zmq_msg_recv(&ident, sock, 0) < 0 ||
		    !zmq_msg_more(&ident) || zmq_msg_recv(&peer, sock, 0) < 0 ||
		    !zmq_msg_more(&peer) || zmq_msg_recv(&body, sock, 0) < 0) {
			int e = errno;

			zmq_msg_close(&ident);
			zmq_msg_close(&peer);
			zmq_msg_close(&body);
			if (e == ETERM)
				break;
			continue;
		}
		fresh = rpc_peer_split(
		    &peer, name, sizeof(name), address, sizeof(address));
		zmq_msg_close(&peer);
		/* A reply says the worker is idle again (rpc_proxy); after a
		 * request dropped (past its deadline, unreadable) "ready" does:
		 * else the proxy never gave this worker another. */
		if (!rpc_answer(w, state, sock, &ident, name, address, fresh,
		        &body, &arena) &&
		    zmq_send(sock, "", 0, 0) < 0 && errno == ETERM)
			break;
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

/*
 * A request from the front to the idle worker `worker` (its routing id on
 * the back socket, consumed): the client's routing id, then a frame with
 * '1' if fresh by `f` (rpc_clock_translate) or '0', the name its CurveZMQ key
 * was admitted under (the ZAP User-Id; empty without CURVE), a NUL and
 * its host's address (rpc_peer_address), then its frames. Metadata stays with the socket a
 * message arrived on: this is how the name reaches the worker. 0, or -1
 * if nothing was read from the front; `worker` is the caller's to close
 * either way (empty once sent).
 */
static int
rpc_forward_request(
    void *front, void *back, zmq_msg_t *worker, const struct rpc_freshness *f)
{
	zmq_msg_t ident, msg, peer;
	const char *user, *address;
	size_t ulen, alen;
	int more;

	zmq_msg_init(&ident);
	zmq_msg_init(&msg);
	if (zmq_msg_recv(&ident, front, ZMQ_DONTWAIT) < 0 ||
	    !zmq_msg_more(&ident) || zmq_msg_recv(&msg, front, 0) < 0) {
		zmq_msg_close(&ident);
		zmq_msg_close(&msg);
		return -1;
	}
	user = zmq_msg_gets(&msg, "User-Id");
	if (user == NULL)
		user = "";
	address = rpc_peer_address(&msg);
	ulen = strlen(user);
	alen = strlen(address);
	more = zmq_msg_more(&msg);
	if (zmq_msg_init_size(&peer, 1 + ulen + 1 + alen) != 0) {
		zmq_msg_close(&ident);
		zmq_msg_close(&msg);
		while (more) { /* drop the rest of this request */
			zmq_msg_init(&msg);
			if (zmq_msg_recv(&msg, front, 0) < 0)
				more = 0;
			else
				more = zmq_msg_more(&msg);
			zmq_msg_close(&msg);
		}
		return -1;
	}
	*(char *)zmq_msg_data(&peer) = rpc_fresh(f, 1) ? '1' : '0';
	memcpy((char *)zmq_msg_data(&peer) + 1, user, ulen + 1);
	memcpy((char *)zmq_msg_data(&peer) + 1 + ulen + 1, address, alen);
	(void)zmq_msg_send(worker, back, ZMQ_SNDMORE); /* the caller closes */
	if (zmq_msg_send(&ident, back, ZMQ_SNDMORE) < 0)
		zmq_msg_close(&ident);
	if (zmq_msg_send(&peer, back, ZMQ_SNDMORE) < 0)
		zmq_msg_close(&peer);
	if (zmq_msg_send(&msg, back, more ? ZMQ_SNDMORE : 0) < 0)
		zmq_msg_close(&msg);
	if (more)
		rpc_forward(front, back);
	return 0;
}

/*
 * A worker's reply, its first frame in `first` (consumed): the client's
 * routing id, those of copies of the request (rpc_copies), then the
 * reply, which goes to each.
 */
static void
rpc_forward_reply(void *back, void *front, zmq_msg_t *first)
{
	zmq_msg_t to[RPC_COPIES_MAX + 1], body;
	int n = 0, more = 1;

	zmq_msg_init(&to[n]);
	zmq_msg_move(&to[n++], first);
	zmq_msg_close(first);
	zmq_msg_init(&body);
	while (more) {
		if (zmq_msg_recv(&body, back, 0) < 0)
			goto out;
		if (!(more = zmq_msg_more(&body)))
			break;
		if (n < RPC_COPIES_MAX + 1) {
			zmq_msg_init(&to[n]);
			zmq_msg_move(&to[n++], &body);
		}
		zmq_msg_close(&body);
		zmq_msg_init(&body);
	}
	for (int i = 0; i < n; i++) {
		zmq_msg_t copy;

		zmq_msg_init(&copy);
		if (zmq_msg_copy(&copy, &body) != 0 ||
		    zmq_msg_send(&to[i], front, ZMQ_SNDMORE) < 0 ||
		    zmq_msg_send(&copy, front, 0) < 0)
			zmq_msg_close(&copy);
	}
out:
	zmq_msg_close(&body);
	for (int i = 0; i < n; i++)
		zmq_msg_close(&to[i]);
}

/*
 * Between the listening socket and the workers: a request goes to a
 * worker that is idle, never queued behind another request at a busy one
 * (a DEALER would deal them out in turn, busy or not, and a request would
 * wait for a slow one while others idle). A worker says it is idle with
 * an empty frame when it starts and with each reply; requests wait at the
 * front while none is. `idle` is a stack: any idle worker will do.
 */
static void
rpc_proxy(const struct rpc_server_config *config, void *front, void *back,
    int nworkers)
{
	zmq_msg_t *idle = calloc((size_t)nworkers, sizeof(*idle));
	int nidle = 0;
	struct rpc_freshness fresh = rpc_fresh_init(config);

	if (idle == NULL)
		return;
	while (!rpc_stop) {
		zmq_pollitem_t items[] = {
		    {back, 0, ZMQ_POLLIN, 0}, {front, 0, ZMQ_POLLIN, 0}};
		zmq_msg_t worker, first;

		rpc_fresh_poll(&fresh, front, nidle > 0);
		if (zmq_poll(items, nidle > 0 ? 2 : 1, 1000) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		rpc_fresh_polled(&fresh, 1000);
		if (items[0].revents & ZMQ_POLLIN) {
			zmq_msg_init(&worker);
			zmq_msg_init(&first);
			if (zmq_msg_recv(&worker, back, ZMQ_DONTWAIT) < 0 ||
			    !zmq_msg_more(&worker) ||
			    zmq_msg_recv(&first, back, 0) < 0) {
				zmq_msg_close(&worker);
				zmq_msg_close(&first);
				continue;
			}
			if (nidle < nworkers) {
				zmq_msg_init(&idle[nidle]);
				zmq_msg_move(&idle[nidle++], &worker);
			}
			zmq_msg_close(&worker);
			if (zmq_msg_more(&first))
				rpc_forward_reply(back, front, &first);
			else
				zmq_msg_close(&first); /* "ready" */
		}
		if (nidle > 0 && (items[1].revents & ZMQ_POLLIN)) {
			nidle--;
			/* Sent, it is gone; else it stays idle. */
			if (rpc_forward_request(
			        front, back, &idle[nidle], &fresh) != 0)
				nidle++;
			else
				zmq_msg_close(&idle[nidle]);
		}
		if (config->idle != NULL)
			config->idle(config->service);
	}
	for (int i = 0; i < nidle; i++)
		zmq_msg_close(&idle[i]);
	free(idle);
}

/*
 * The ZAP handler (RFC 27) of a CURVE server: a REP socket on
 * inproc://zeromq.zap.01 in the server's context, its own thread. libzmq
 * asks it about every client that completed the CURVE handshake (so holds
 * the secret key of the public key it shows); it admits the keys of
 * CurveClients and names the peer by the key's NAME, the User-Id of every
 * message from it. libzmq admits everyone when no handler is bound, so the
 * handler is bound before the server socket and lives until the context
 * ends.
 */
#define RPC_ZAP_LOGGED 16

struct rpc_zap {
	const struct rpc_curve *curve;
	void *sock;
	pthread_t thread;
	int started;
	/* Refusals logged lately: a client retrying with a wrong key would
	 * otherwise fill the log. */
	struct {
		uint8_t key[32];
		int64_t at;
	} logged[RPC_ZAP_LOGGED];
};

static int
rpc_frame_is(zmq_msg_t *m, const char *s)
{
	return zmq_msg_size(m) == strlen(s) &&
	    memcmp(zmq_msg_data(m), s, strlen(s)) == 0;
}

/* Whether to log a refusal of `key` now: once a minute per key. */
static int
rpc_zap_log_now(struct rpc_zap *zap, const uint8_t *key)
{
	int64_t now = rpc_now_ms();
	size_t oldest = 0;

	for (size_t i = 0; i < RPC_ZAP_LOGGED; i++) {
		if (memcmp(zap->logged[i].key, key, 32) == 0 &&
		    zap->logged[i].at != 0) {
			if (now - zap->logged[i].at < 60000)
				return 0;
			zap->logged[i].at = now;
			return 1;
		}
		if (zap->logged[i].at < zap->logged[oldest].at)
			oldest = i;
	}
	memcpy(zap->logged[oldest].key, key, 32);
	zap->logged[oldest].at = now;
	return 1;
}

/* Answers one request of `n` frames: version, request id, domain,
 * address, routing id, mechanism, credentials. */
static void
rpc_zap_answer(struct rpc_zap *zap, zmq_msg_t *f, size_t n)
{
	const struct rpc_curve *curve = zap->curve;
	const char *status = "400", *text = "key not admitted", *user = "";
	char frame[64] = "?";
	const char *addr = frame;
	const uint8_t *key = NULL;

	if (n >= 4) {
		size_t len = zmq_msg_size(&f[3]);

		if (len > 0 && len < sizeof(frame)) {
			memcpy(frame, zmq_msg_data(&f[3]), len);
			frame[len] = '\0';
			addr = rpc_address_shown(frame);
		}
	}
	if (n < 6 || !rpc_frame_is(&f[0], "1.0")) {
		status = "500";
		text = "malformed ZAP request";
	} else if (!rpc_frame_is(&f[5], "CURVE") || n < 7 ||
	    zmq_msg_size(&f[6]) != 32) {
		text = "CURVE only";
		log_warn("rpc: refused a connection from %s: not CURVE", addr);
	} else {
		key = zmq_msg_data(&f[6]);
		for (size_t i = 0; i < curve->nclients; i++)
			if (memcmp(curve->clients[i].key, key, 32) == 0) {
				status = "200";
				text = "OK";
				user = curve->clients[i].name;
				break;
			}
		/* Who holds this service's secret key is the service (or
		 * its health probe): admitted for what RPC_PEER_SELF may
		 * ask, liveness only. */
		if (user[0] == '\0' && curve->has_pair &&
		    memcmp(curve->public_raw, key, 32) == 0) {
			status = "200";
			text = "OK";
			user = RPC_PEER_SELF;
		}
		if (user[0] != '\0')
			log_debug("rpc: admitted %s from %s", user, addr);
		else if (rpc_zap_log_now(zap, key)) {
			char z85[RPC_KEY_LEN + 1];

			zmq_z85_encode(z85, key, 32);
			log_warn("security: refused a connection from %s: "
			         "CurveZMQ key %s is not in CurveClients",
			    addr, z85);
		}
	}
	/* REP: a request always gets its answer, even a malformed one. */
	zmq_send(zap->sock, "1.0", 3, ZMQ_SNDMORE);
	if (n >= 2)
		zmq_send(zap->sock, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]),
		    ZMQ_SNDMORE);
	else
		zmq_send(zap->sock, "", 0, ZMQ_SNDMORE);
	zmq_send(zap->sock, status, strlen(status), ZMQ_SNDMORE);
	zmq_send(zap->sock, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(zap->sock, user, strlen(user), ZMQ_SNDMORE);
	zmq_send(zap->sock, "", 0, 0); /* no metadata */
}

static void *
rpc_zap_main(void *arg)
{
	struct rpc_zap *zap = arg;

	for (;;) {
		zmq_msg_t f[7];
		size_t n = 0;
		int more = 1, e = 0;

		while (more) {
			zmq_msg_t m;

			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, zap->sock, 0) < 0) {
				e = errno;
				zmq_msg_close(&m);
				break;
			}
			more = zmq_msg_more(&m);
			if (n < 7)
				f[n++] = m; /* zmq_msg_t may be moved */
			else
				zmq_msg_close(&m);
		}
		if (e == 0)
			rpc_zap_answer(zap, f, n);
		for (size_t i = 0; i < n; i++)
			zmq_msg_close(&f[i]);
		if (e == ETERM)
			break;
	}
	zmq_close(zap->sock);
	return NULL;
}

/* A request read by rpc_serve_inline, until answered. */
struct rpc_slot {
	zmq_msg_t ident;
	Scep__V1__Request *req; /* NULL: dropped, nothing to answer */
	const struct rpc_route *route; /* NULL: `reply` is its refusal */
	Scep__V1__Reply reply;
};

/*
 * Reads a request waiting on `front` into `s` and admits it: 1, or 0 when
 * none was waiting (or what came was not a request: its frames are gone).
 * `f`, `first` (the first read since the poll): whether it is fresh
 * (rpc_clock_translate).
 */
static int
rpc_slot_read(const struct rpc_server_config *config, void *front,
    struct rpc_slot *s, const struct rpc_freshness *f, int first)
{
	static const Scep__V1__Reply init = SCEP__V1__REPLY__INIT;
	char name[RPC_NAME_MAX] = "", address[RPC_ADDRESS_MAX];
	const char *user;
	zmq_msg_t body;

	zmq_msg_init(&s->ident);
	zmq_msg_init(&body);
	if (zmq_msg_recv(&s->ident, front, ZMQ_DONTWAIT) < 0 ||
	    !zmq_msg_more(&s->ident) || zmq_msg_recv(&body, front, 0) < 0) {
		zmq_msg_close(&s->ident);
		zmq_msg_close(&body);
		return 0;
	}
	user = zmq_msg_gets(&body, "User-Id");
	if (user != NULL && strlen(user) < sizeof(name))
		memcpy(name, user, strlen(user) + 1);
	snprintf(address, sizeof(address), "%s", rpc_peer_address(&body));
	rpc_last_frame(front, &body);
	s->reply = init;
	s->req =
	    rpc_admit(config, rpc_curve_serves(config->curve) ? name : NULL,
	        address, rpc_fresh(f, first), zmq_msg_data(&body),
	        zmq_msg_size(&body), &s->reply, &s->route, NULL);
	zmq_msg_close(&body);
	return 1;
}

static int
rpc_slot_batched(const struct rpc_server_config *config, struct rpc_slot *s)
{
	return config->batch != NULL && s->route != NULL &&
	    s->req->body_case == config->batch_body;
}

/* Past its deadline while it waited behind others: dropped, as when it
 * arrived so. */
static int
rpc_slot_expired(struct rpc_slot *s)
{
	if (s->route == NULL || !rpc_past_deadline(s->req))
		return 0;
	scep__v1__request__free_unpacked(s->req, NULL);
	s->req = NULL;
	s->route = NULL;
	return 1;
}

static void
rpc_slot_answer(void *front, struct rpc_slot *s, struct rpc_arena *arena)
{
	rpc_send_reply(
	    front, &s->ident, s->req != NULL ? &s->reply : NULL, arena);
	scep__v1__request__free_unpacked(s->req, NULL);
}

/* A request not of the batch kind: handled and answered at once. */
static void
rpc_slot_serve(
    void *front, void *state, struct rpc_slot *s, struct rpc_arena *arena)
{
	if (!rpc_slot_expired(s) && s->route != NULL)
		s->route->handler(state, s->req, &s->reply, arena);
	rpc_slot_answer(front, s, arena);
}

#ifdef SCEPD_TEST_HOOKS
static _Atomic long rpc_test_gather_n, rpc_test_gather_ms;

void
rpc_test_gather_arm(long n, long ms)
{
	rpc_test_gather_ms = ms;
	rpc_test_gather_n = n;
}

/* rpc_test_gather_arm's gathering, once armed and a request of the batch
 * kind is among the `n` read into slots[]: more are read until as many of
 * that kind have come. The new count. */
static size_t
rpc_test_gather(const struct rpc_server_config *config, void *front,
    void *state, struct rpc_slot *slots, struct rpc_arena *arenas, size_t n,
    size_t max, const struct rpc_freshness *f)
{
	long want, have = 0;
	int64_t start = clock_boottime_ms(), left;

	if (rpc_test_gather_n <= 0 || config->batch == NULL)
		return n;
	for (size_t i = 0; i < n; i++)
		have += rpc_slot_batched(config, &slots[i]);
	if (have == 0)
		return n; /* armed still: the time counts from the first */
	want = atomic_exchange(&rpc_test_gather_n, 0);
	while (have < want && n < max && !rpc_stop &&
	    (left = start + rpc_test_gather_ms - clock_boottime_ms()) > 0) {
		zmq_pollitem_t item = {front, 0, ZMQ_POLLIN, 0};

		if (zmq_poll(&item, 1, (long)left) < 0 && errno != EINTR)
			break;
		while (n < max && rpc_slot_read(config, front, &slots[n], f, 0))
			if (rpc_slot_batched(config, &slots[n])) {
				have++;
				n++;
			} else
				rpc_slot_serve(
				    front, state, &slots[n], &arenas[n]);
	}
	log_warn("test hook: gathered %ld of %ld requests to hand over "
	         "together in %lld ms",
	    have, want, (long long)(clock_boottime_ms() - start));
	return n;
}
#endif

/*
 * The batch kind's requests among slots[]: handed over while any is left,
 * the answers of each part sent as soon as the handler returns it.
 */
static void
rpc_serve_batch(const struct rpc_server_config *config, void *front,
    void *state, struct rpc_slot *slots, struct rpc_arena *arenas, size_t *left,
    size_t nleft)
{
	struct rpc_batch_item items[RPC_BATCH_MAX];

	while (nleft > 0) {
		size_t n = 0, done;

		for (size_t i = 0; i < nleft; i++) {
			struct rpc_slot *s = &slots[left[i]];

			if (rpc_slot_expired(s)) {
				rpc_slot_answer(front, s, &arenas[left[i]]);
				continue;
			}
			left[n] = left[i];
			items[n].req = s->req;
			items[n].reply = &s->reply;
			items[n++].arena = &arenas[left[i]];
		}
		if (n == 0)
			return;
		done = config->batch(state, items, n);
		if (done == 0 || done > n) {
			/* A broken handler: whatever it left unanswered gets
			 * an error, not an empty success. */
			log_error("rpc: the batch handler answered %zu of %zu "
			          "requests",
			    done, n);
			for (size_t i = 0; i < n; i++)
				if (items[i].reply->status ==
				        SCEP__V1__STATUS__STATUS_OK &&
				    items[i].reply->body_case ==
				        SCEP__V1__REPLY__BODY__NOT_SET) {
					items[i].reply->status =
					    SCEP__V1__STATUS__STATUS_INTERNAL;
					items[i].reply->error =
					    "request not answered";
				}
			done = n;
		}
		for (size_t i = 0; i < done; i++)
			rpc_slot_answer(
			    front, &slots[left[i]], &arenas[left[i]]);
		memmove(left, left + done, (n - done) * sizeof(*left));
		nleft = n - done;
	}
}

/*
 * One worker: the requests are answered on the listening socket by the
 * thread that polls it, without the proxy's two extra thread hops (the CA
 * and the challenge service, whose LMDB writes are serial anyway, spend
 * a good part of an enrollment's CPU in those wake-ups otherwise). A
 * request's peer name is its User-Id, set by the ZAP handler. With a
 * batch handler, every request waiting is read at once: the other kinds
 * are answered first, then the batch kind's go to the handler together.
 */
static void
rpc_serve_inline(
    const struct rpc_server_config *config, void *front, void *state)
{
	struct rpc_arena arenas[RPC_BATCH_MAX];
	struct rpc_slot slots[RPC_BATCH_MAX];
	size_t batched[RPC_BATCH_MAX];
	size_t max = config->batch != NULL ? RPC_BATCH_MAX : 1, n, nbatched, i;
	struct rpc_freshness fresh = rpc_fresh_init(config);

	memset(arenas, 0, sizeof(arenas));
	while (!rpc_stop) {
		zmq_pollitem_t item = {front, 0, ZMQ_POLLIN, 0};

		rpc_fresh_poll(&fresh, front, 1);
		if (zmq_poll(&item, 1, 1000) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		rpc_fresh_polled(&fresh, 1000);
		if (!(item.revents & ZMQ_POLLIN)) {
			if (config->idle != NULL)
				config->idle(config->service);
			continue;
		}
		for (n = 0; n < max &&
		     rpc_slot_read(config, front, &slots[n], &fresh, n == 0);)
			n++;
#ifdef SCEPD_TEST_HOOKS
		n = rpc_test_gather(
		    config, front, state, slots, arenas, n, max, &fresh);
#endif
		/* The other kinds first, in turn: none waits for a batch. */
		for (i = 0, nbatched = 0; i < n; i++) {
			if (rpc_slot_batched(config, &slots[i]))
				batched[nbatched++] = i;
			else
				rpc_slot_serve(
				    front, state, &slots[i], &arenas[i]);
		}
		rpc_serve_batch(
		    config, front, state, slots, arenas, batched, nbatched);
		if (config->idle != NULL)
			config->idle(config->service);
	}
	for (i = 0; i < RPC_BATCH_MAX; i++)
		free(arenas[i].blocks);
}

/*
 * An ipc:// socket serves one process: a second one started on it (a
 * service run by hand beside the launcher's, two launchers on one
 * configuration) unlinked the first's socket and bound its own, and when
 * it stopped left a dead one: the service that served could no longer be
 * reached. A socket someone accepts on is in use (a stopped or hung
 * service's too: its kernel accepts, or its backlog is full); one that
 * refuses (a crash's) or none is free to take. (Not a lock file: the
 * sandbox lets a service make sockets there, no files.) 0 free, -1 not
 * (said why).
 */
static int
rpc_ipc_free(const char *endpoint)
{
	const char *path = endpoint + 6;
	struct sockaddr_un sun;
	int fd, e = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path) ||
	    (fd = socket(
	         AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return 0; /* zmq_bind says what is wrong */
	memcpy(sun.sun_path, path, strlen(path));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		e = errno;
	close(fd);
	if (e == 0 || e == EAGAIN) {
		log_error("another process serves %s: not serving (a service "
		          "run by hand beside the launcher's?)",
		    endpoint);
		return -1;
	}
	/* A socket of another user (one left by a run as root): taken, as
	 * before this look, the directory being ours. */
	if (e != ECONNREFUSED && e != ENOENT)
		log_warn("%s: whether another process serves it cannot be "
		         "told (%s): taking it",
		    endpoint, strerror(e));
	return 0;
}

int
rpc_serve(const struct rpc_server_config *config)
{
	void *front = NULL, *back = NULL;
	struct rpc_worker *workers = NULL;
	struct rpc_copies copies = {NULL, 0, 0};
	struct rpc_start start = {
	    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
	struct rpc_zap zap;
	char backend[64];
	int64_t max = config->max_message ? (int64_t)config->max_message
	                                  : RPC_DEFAULT_MAX_MESSAGE;
	int nworkers = config->workers, zero = 0, one = 1, rc = -1;
	int nstarted = 0;
	int curve = rpc_curve_serves(config->curve);
	void *inline_state = NULL;
	struct sigaction sa;
	sigset_t block, old;

	memset(&zap, 0, sizeof(zap));
	/* Four per core: a worker of a service that calls others (the RA)
	 * spends much of a request waiting on them (the CA's and the
	 * challenge service's disk flushes), and with fewer the cores idled
	 * (tests/bench/ab.sh, 2 cores, c=16: 4 RA workers against 2 gave
	 * 15 % more enrollments/s, p99 119 -> 82 ms; 8 against 4, 22 % more
	 * as scepd comes, p99 82 -> 65 ms, and 13 % more with a single
	 * password and an RSA 2048 CA, p99 41 -> 39 ms: the CA's batches
	 * grow, fewer flushes per certificate). Counted by the processors
	 * it may run on, and at most RPC_DEFAULT_WORKERS_MAX: each holds
	 * sockets to the services it calls, and a big host's count would
	 * use up file descriptors for no gain past the CA's pace. */
	if (nworkers <= 0) {
		nworkers = (int)(4 * service_processors());
		if (nworkers > RPC_DEFAULT_WORKERS_MAX)
			nworkers = RPC_DEFAULT_WORKERS_MAX;
	}
	snprintf(backend, sizeof(backend), "inproc://rpc-workers-%p",
	    (void *)config);
	/* Workers and the ZAP handler must not take the stop signals: the
	 * poll below does. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	if (service_hangup_stops())
		sigaddset(&block, SIGHUP);

	rpc_stop = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = rpc_on_signal; /* no SA_RESTART: poll must wake */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (sigismember(&block, SIGHUP))
		sigaction(SIGHUP, &sa, NULL);

	if (!curve && rpc_is_network(config->endpoint) &&
	    (config->curve == NULL || !config->curve->allow_insecure)) {
		log_error("cannot listen on %s: a network endpoint needs "
		          "CurveZMQ keys or AllowInsecureTransport = 1",
		    config->endpoint);
		goto out;
	}
	front = zmq_socket(config->zmq_ctx, ZMQ_ROUTER);
	if (front == NULL ||
	    (nworkers > 1 &&
	        (back = zmq_socket(config->zmq_ctx, ZMQ_ROUTER)) == NULL))
		goto out;
	zmq_setsockopt(front, ZMQ_LINGER, &zero, sizeof(zero));
	if (back != NULL)
		zmq_setsockopt(back, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(front, ZMQ_MAXMSGSIZE, &max, sizeof(max));
	if (curve) {
		zap.curve = config->curve;
		if ((zap.sock = zmq_socket(config->zmq_ctx, ZMQ_REP)) == NULL ||
		    zmq_setsockopt(zap.sock, ZMQ_LINGER, &zero, sizeof(zero)) !=
		        0 ||
		    zmq_bind(zap.sock, RPC_ZAP_ENDPOINT) != 0) {
			log_error("cannot start the CurveZMQ ZAP handler: %s",
			    zmq_strerror(errno));
			goto out;
		}
		/* The socket moves to its thread; pthread_create is the
		 * memory barrier ZeroMQ asks for. */
		pthread_sigmask(SIG_BLOCK, &block, &old);
		zap.started =
		    pthread_create(&zap.thread, NULL, rpc_zap_main, &zap) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (!zap.started) {
			log_error("cannot start the CurveZMQ ZAP handler");
			goto out;
		}
		if (zmq_setsockopt(
		        front, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
		    zmq_setsockopt(front, ZMQ_CURVE_SECRETKEY,
		        config->curve->secret_key, RPC_KEY_LEN + 1) != 0 ||
		    zmq_setsockopt(front, ZMQ_ZAP_DOMAIN, RPC_ZAP_DOMAIN,
		        strlen(RPC_ZAP_DOMAIN)) != 0) {
			log_error("cannot use the CurveZMQ keys: %s",
			    zmq_strerror(errno));
			goto out;
		}
	}
	if (strncmp(config->endpoint, "ipc://", 6) == 0) {
		if (rpc_ipc_free(config->endpoint) != 0)
			goto out;
		unlink(config->endpoint + 6); /* a stale socket of a crash */
	}
	if (rpc_endpoint_ipv6(config->endpoint, 0))
		zmq_setsockopt(front, ZMQ_IPV6, &one, sizeof(one));
	if (zmq_bind(front, config->endpoint) != 0) {
		/* libzmq takes a name in a bind for a network interface's:
		 * a host name there fails as "No such device". */
		log_error("cannot listen on %s (Listen): %s%s",
		    config->endpoint, zmq_strerror(errno),
		    errno == ENODEV &&
		            strncmp(config->endpoint, "tcp://", 6) == 0
		        ? " (Listen takes an IP address, * or a network "
		          "interface's name, not a host name)"
		        : "");
		goto out;
	}
	if (nworkers == 1) {
		if (config->worker_init != NULL &&
		    (inline_state = config->worker_init(config->service)) ==
		        NULL) {
			log_error("rpc: worker start-up failed");
			goto out;
		}
		goto ready;
	}
	if (zmq_bind(back, backend) != 0)
		goto out;

	pthread_sigmask(SIG_BLOCK, &block, &old);
	if ((workers = calloc(nworkers, sizeof(*workers))) == NULL ||
	    (copies.slots = calloc(nworkers, sizeof(*copies.slots))) == NULL)
		goto out_mask;
	copies.n = nworkers;
	for (int i = 0; i < nworkers; i++) {
		pthread_mutex_init(&copies.slots[i].lock, NULL);
		zmq_msg_init(&copies.slots[i].kept_request);
		zmq_msg_init(&copies.slots[i].kept_reply);
	}
	for (int i = 0; i < nworkers; i++) {
		workers[i].config = config;
		workers[i].backend = backend;
		workers[i].start = &start;
		workers[i].copies = &copies;
		workers[i].slot = i;
		if (pthread_create(&workers[i].thread, NULL, rpc_worker_main,
		        &workers[i]) == 0) {
			workers[i].started = 1;
			nstarted++;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_lock(&start.lock);
	while (start.up < nstarted)
		pthread_cond_wait(&start.cond, &start.lock);
	pthread_mutex_unlock(&start.lock);
	/* Not serving with fewer: the proxy would hand requests to workers
	 * that do not exist, or, with none, never read a request at all,
	 * while the launcher was told the service is up. */
	if (start.failed > 0 || nstarted < nworkers) {
		log_error("%d of %d workers could not start (see above): not "
		          "serving",
		    start.failed + (nworkers - nstarted), nworkers);
		goto out;
	}
ready:
	if (config->ready != NULL && config->ready(config->service) != 0)
		goto out;
	log_info("serving on %s with %d worker%s%s", config->endpoint, nworkers,
	    nworkers == 1 ? "" : "s", curve ? ", CurveZMQ" : "");
	service_ready();
	for (size_t i = 0; curve && i < config->curve->nclients; i++) {
		const char *name = config->curve->clients[i].name;
		const struct rpc_route *r = config->routes;
		char z85[RPC_KEY_LEN + 1];

		while (r->body != 0 && !rpc_peer_allowed(r->peers, name))
			r++;
		zmq_z85_encode(z85, config->curve->clients[i].key, 32);
		if (r->body == 0)
			log_warn("CurveClients: %s (key %s) may ask nothing "
			         "here: the name must be the caller's role",
			    name, z85);
		else
			log_info("admitting %s with key %s", name, z85);
	}

	if (nworkers == 1)
		rpc_serve_inline(config, front, inline_state);
	if (back != NULL)
		rpc_proxy(config, front, back, nworkers);
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
	if (zap.sock != NULL && !zap.started)
		zmq_close(zap.sock);
	/* Wakes workers and the ZAP handler blocked in recv with ETERM. */
	zmq_ctx_shutdown(config->zmq_ctx);
	for (int i = 0; workers != NULL && i < nworkers; i++)
		if (workers[i].started)
			pthread_join(workers[i].thread, NULL);
	if (zap.started)
		pthread_join(zap.thread, NULL);
	free(workers);
	for (int i = 0; copies.slots != NULL && i < copies.n; i++) {
		pthread_mutex_destroy(&copies.slots[i].lock);
		zmq_msg_close(&copies.slots[i].kept_request);
		zmq_msg_close(&copies.slots[i].kept_reply);
	}
	free(copies.slots); /* no worker left: none busy, no copy held */
	if (config->worker_fini != NULL && inline_state != NULL)
		config->worker_fini(inline_state);
	if (rc == 0 && strncmp(config->endpoint, "ipc://", 6) == 0)
		unlink(config->endpoint + 6);
	return rc;
}
