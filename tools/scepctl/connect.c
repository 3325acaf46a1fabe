/*
 * How scepctl reaches a service: the endpoint from a key of DIR/scepd.conf
 * (ipc:// paths resolved against DIR, as the services resolve them), a
 * ZeroMQ client with origin "scepctl", and one call with a clear message
 * when nobody answers.
 *
 * CurveZMQ when the service uses it: scepctl's own pair is
 * DIR/keys/scepctl.key (scepctl keygen scepctl), which the service must
 * list as scepctl in CurveClients. The service's public key is its
 * CurvePublicKeyFile when scepctl reaches it at its Listen endpoint, or the
 * section's matching *ServerKey (ChallengeEndpoint: ChallengeServerKey).
 * A health probe (scepctl_connect_self) presents the service's own pair
 * instead, which the service admits for liveness checks only: it runs
 * where the service runs, which need not hold scepctl's key.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>
#include <zmq.h>

#include "config.h"
#include "scepctl.h"

/* The keys of [section] scepctl needs; the service validates the rest. */
enum {
	LOOKUP_ENDPOINT,
	LOOKUP_SERVER_KEY,
	LOOKUP_CLIENTS,
	LOOKUP_INSECURE,
	LOOKUP_SECRET, /* CurveSecretKeyFile: the service's own, for a probe */
	LOOKUP_N
};
struct scepctl_lookup {
	const char *section;
	const char *key[LOOKUP_N];
	char *value[LOOKUP_N];
};

static int
scepctl_ini_key(
    void *user, const char *section, const char *name, const char *value)
{
	struct scepctl_lookup *l = user;

	if (strcasecmp(section, l->section) != 0)
		return 1;
	for (int i = 0; i < LOOKUP_N; i++)
		if (strcasecmp(name, l->key[i]) == 0) {
			free(l->value[i]);
			l->value[i] = strdup(value);
		}
	return 1;
}

/* ipc:// endpoints relative to the configuration's directory; space
 * separated. NULL on failure. */
static char *
scepctl_resolve_endpoints(const char *basedir, const char *value)
{
	char *copy = strdup(value), *tok, *save = NULL, *out = NULL, *path;
	size_t cap = strlen(value) * 2 + strlen(basedir) * 8 + 16, used = 0;

	if (copy == NULL || (out = calloc(1, cap)) == NULL)
		goto fail;
	for (tok = strtok_r(copy, " \t,", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,", &save)) {
		int n;

		if (strncmp(tok, "ipc://", 6) == 0) {
			if ((path = config_resolve_path(basedir, tok + 6)) ==
			    NULL)
				goto fail;
			n = snprintf(out + used, cap - used, "%sipc://%s",
			    used ? " " : "", path);
			free(path);
		} else if (strncmp(tok, "tcp://*:", 8) == 0 ||
		    strncmp(tok, "tcp://0.0.0.0:", 14) == 0)
			/* A service listening everywhere: this host. */
			n = snprintf(out + used, cap - used,
			    "%stcp://127.0.0.1%s", used ? " " : "",
			    strchr(tok + 6, ':'));
		else
			n = snprintf(out + used, cap - used, "%s%s",
			    used ? " " : "", tok);
		if (n < 0 || (size_t)n >= cap - used)
			goto fail;
		used += n;
	}
	if (used == 0)
		goto fail;
	free(copy);
	return out;
fail:
	free(copy);
	free(out);
	return NULL;
}

/*
 * Each ipc:// endpoint's socket must exist and be writable by the caller:
 * ZeroMQ retries a refused ipc connect silently, and scepctl would wait
 * for its timeout and blame scepd. 0, or -1 with the reason on stderr.
 */
static int
scepctl_ipc_check(const char *endpoints)
{
	const char *p = endpoints, *path;
	char buf[4096], owner[64] = "";
	struct passwd *pw;
	struct stat st;
	size_t len;

	while ((p = strstr(p, "ipc://")) != NULL) {
		path = p + 6;
		len = strcspn(path, " ");
		p = path + len;
		if (len >= sizeof(buf))
			continue; /* ZeroMQ refuses it and says so */
		memcpy(buf, path, len);
		buf[len] = '\0';
		if (access(buf, W_OK) == 0)
			continue;
		if (errno == ENOENT)
			fprintf(stderr,
			    "scepctl: no socket at %s: is scepd running?\n",
			    buf);
		else if (errno == EACCES) {
			if (stat(buf, &st) == 0 && st.st_uid != 0 &&
			    (pw = getpwuid(st.st_uid)) != NULL)
				snprintf(
				    owner, sizeof(owner), " (%s)", pw->pw_name);
			fprintf(stderr,
			    "scepctl: permission denied on %s: run scepctl as "
			    "root or as the service's user%s\n",
			    buf, owner);
		} else
			fprintf(
			    stderr, "scepctl: %s: %s\n", buf, strerror(errno));
		return -1;
	}
	return 0;
}

/* [section] AllowInsecureTransport, as the service reads it. */
static int
scepctl_insecure(const struct scepctl_lookup *l)
{
	const char *v = l->value[LOOKUP_INSECURE];

	return v != NULL &&
	    (strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0 ||
	        strcasecmp(v, "true") == 0);
}

/*
 * scepctl's keys, and the link to the service of `l`: CURVE when the
 * service admits client keys (Listen: CurveClients) or the section names
 * its server key (*ServerKey). 0, or -1 with the reason on stderr.
 */
static int
scepctl_keys(const struct scepctl *ctl, const struct scepctl_lookup *l,
    struct scepctl_conn *conn)
{
	const char *server_key = l->value[LOOKUP_SERVER_KEY];
	int listen = strcmp(l->key[LOOKUP_ENDPOINT], "Listen") == 0;
	int curve = listen ? l->value[LOOKUP_CLIENTS] != NULL &&
	        l->value[LOOKUP_CLIENTS][0] != '\0'
	                   : server_key != NULL && server_key[0] != '\0';
	struct rpc_curve_settings s = {"", "", "", 0, NULL};
	char *secret = NULL, *pub = NULL, key[RPC_KEY_LEN + 1], err[512];
	size_t len = strlen(ctl->data_dir) + sizeof("/keys/scepctl.key");
	int rc = -1;

	s.allow_insecure = scepctl_insecure(l);
	if (!curve)
		server_key = "";
	else if (server_key == NULL || server_key[0] == '\0') {
		fprintf(stderr,
		    "scepctl: %s: [%s] uses CurveZMQ but %s is not set: "
		    "scepctl needs the service's public key\n",
		    ctl->conf, l->section, l->key[LOOKUP_SERVER_KEY]);
		return -1;
	}
	if ((secret = malloc(len)) == NULL || (pub = malloc(len)) == NULL)
		goto out;
	snprintf(secret, len, "%s/keys/scepctl.key", ctl->data_dir);
	snprintf(pub, len, "%s/keys/scepctl.pub", ctl->data_dir);
	if (curve) {
		if (access(secret, F_OK) != 0) {
			fprintf(stderr,
			    "scepctl: the %s service uses CurveZMQ and scepctl "
			    "has no key pair: run 'scepctl keygen scepctl' and "
			    "add scepctl:%s to [%s] CurveClients\n",
			    l->section, pub, listen ? l->section : "...");
			goto out;
		}
		if (rpc_key_read(secret, 1, key, err, sizeof(err)) != 0) {
			fprintf(stderr, "scepctl: %s\n", err);
			goto out;
		}
		s.secret_key_file = secret;
		if (access(pub, F_OK) == 0)
			s.public_key_file = pub;
	}
	if ((conn->curve = rpc_curve_load(&s, NULL, ctl->conf, l->section)) ==
	        NULL ||
	    (conn->link = rpc_link_new(conn->curve, conn->endpoint, server_key,
	         ctl->conf, l->section, l->key[LOOKUP_ENDPOINT],
	         l->key[LOOKUP_SERVER_KEY])) == NULL)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	free(secret);
	free(pub);
	return rc;
}

/*
 * A health probe's keys: the service's own pair from its section, as the
 * service reads it (its public key is then the server's), when it admits
 * client keys; none otherwise. *curve_used: whether it does. 0, or -1
 * with the reason on stderr.
 */
static int
scepctl_self_keys(const struct scepctl *ctl, const struct scepctl_lookup *l,
    struct scepctl_conn *conn, int *curve_used)
{
	const char *own = l->value[LOOKUP_SECRET];
	const char *pub = l->value[LOOKUP_SERVER_KEY];
	struct rpc_curve_settings s = {"", "", "", 0, NULL};

	*curve_used = l->value[LOOKUP_CLIENTS] != NULL &&
	    l->value[LOOKUP_CLIENTS][0] != '\0';
	s.allow_insecure = scepctl_insecure(l);
	if (*curve_used) {
		if (own == NULL || own[0] == '\0') {
			fprintf(stderr,
			    "scepctl: %s: [%s] admits CurveClients but "
			    "CurveSecretKeyFile is not set\n",
			    ctl->conf, l->section);
			return -1;
		}
		s.secret_key_file = (char *)own;
		s.public_key_file = (char *)(pub != NULL ? pub : "");
	}
	if ((conn->curve = rpc_curve_load(&s, NULL, ctl->conf, l->section)) ==
	    NULL)
		return -1;
	conn->link = *curve_used
	    ? rpc_link_self(conn->curve, conn->endpoint)
	    : rpc_link_new(conn->curve, conn->endpoint, "", ctl->conf,
	          l->section, "Listen", "CurvePublicKeyFile");
	if (conn->link == NULL) {
		if (*curve_used)
			fprintf(stderr, "scepctl: [%s] Listen: no endpoint\n",
			    l->section);
		return -1;
	}
	return 0;
}

static int
scepctl_connect_as(const struct scepctl *ctl, const char *section,
    const char *key, int self, struct scepctl_conn *conn)
{
	struct scepctl_lookup l;
	char server_key[64];
	size_t len = strlen(key);
	int parse, curve = 0, rc = -1;

	memset(conn, 0, sizeof(*conn));
	memset(&l, 0, sizeof(l));
	conn->timeout_ms =
	    (int)(ctl->timeout_s > 0 ? ctl->timeout_s : SCEPCTL_TIMEOUT_S) *
	    1000;
	/* Listen: the service's own public key; XEndpoint: XServerKey. */
	if (strcmp(key, "Listen") == 0)
		snprintf(server_key, sizeof(server_key), "CurvePublicKeyFile");
	else
		snprintf(server_key, sizeof(server_key), "%.*sServerKey",
		    (int)(len > 8 && strcmp(key + len - 8, "Endpoint") == 0
		            ? len - 8
		            : len),
		    key);
	l.section = section;
	l.key[LOOKUP_ENDPOINT] = key;
	l.key[LOOKUP_SERVER_KEY] = server_key;
	l.key[LOOKUP_CLIENTS] = "CurveClients";
	l.key[LOOKUP_INSECURE] = "AllowInsecureTransport";
	l.key[LOOKUP_SECRET] = "CurveSecretKeyFile";
	if ((parse = ini_parse(ctl->conf, scepctl_ini_key, &l)) < 0) {
		fprintf(stderr,
		    "scepctl: cannot read %s (is %s a scepd data directory? "
		    "see --data-dir)\n",
		    ctl->conf, ctl->data_dir);
		goto out;
	}
	if (parse > 0) {
		fprintf(stderr, "scepctl: %s: syntax error at line %d\n",
		    ctl->conf, parse);
		goto out;
	}
	/* Unset, the frontend takes its default: so does scepctl. */
	if (l.value[LOOKUP_ENDPOINT] == NULL &&
	    strcmp(section, "frontend") == 0 &&
	    strcmp(key, "ChallengeEndpoint") == 0 &&
	    (l.value[LOOKUP_ENDPOINT] =
	            strdup(RPC_CHALLENGE_ENDPOINT_DEFAULT)) == NULL) {
		fprintf(stderr, "scepctl: out of memory\n");
		goto out;
	}
	if (l.value[LOOKUP_ENDPOINT] == NULL ||
	    l.value[LOOKUP_ENDPOINT][0] == '\0') {
		fprintf(stderr, "scepctl: %s: [%s] %s is not set\n", ctl->conf,
		    section, key);
		goto out;
	}
	if ((conn->endpoint = scepctl_resolve_endpoints(
	         ctl->data_dir, l.value[LOOKUP_ENDPOINT])) == NULL) {
		fprintf(stderr, "scepctl: %s: [%s] %s: cannot use '%s'\n",
		    ctl->conf, section, key, l.value[LOOKUP_ENDPOINT]);
		goto out;
	}
	if (scepctl_ipc_check(conn->endpoint) != 0 ||
	    (self ? scepctl_self_keys(ctl, &l, conn, &curve)
	          : scepctl_keys(ctl, &l, conn)) != 0)
		goto out;
	if ((conn->zmq_ctx = zmq_ctx_new()) == NULL ||
	    (conn->client = rpc_client_new_link(conn->zmq_ctx, conn->link,
	         self && curve ? RPC_PEER_SELF : "scepctl")) == NULL) {
		fprintf(stderr, "scepctl: cannot start ZeroMQ\n");
		goto out;
	}
	rc = 0;
out:
	for (int i = 0; i < LOOKUP_N; i++)
		free(l.value[i]);
	if (rc != 0)
		scepctl_disconnect(conn);
	return rc;
}

int
scepctl_connect(const struct scepctl *ctl, const char *section, const char *key,
    struct scepctl_conn *conn)
{
	return scepctl_connect_as(ctl, section, key, 0, conn);
}

int
scepctl_connect_self(
    const struct scepctl *ctl, const char *section, struct scepctl_conn *conn)
{
	return scepctl_connect_as(ctl, section, "Listen", 1, conn);
}

/* After a timeout, a request that changes something may have been done
 * (only the answer lost): how to tell. */
static void
scepctl_timeout_hint(const Scep__V1__Request *req)
{
	const char *maybe = "may or may not have been done";

	switch (req->body_case) {
	case SCEP__V1__REQUEST__BODY_REVOKE:
		fprintf(stderr,
		    "scepctl: the %s of %s %s: see scepctl show %s\n",
		    req->revoke->has_release && req->revoke->release
		        ? "release"
		        : "revocation",
		    req->revoke->serial, maybe, req->revoke->serial);
		break;
	case SCEP__V1__REQUEST__BODY_REVOKE_IMPORT:
		fprintf(stderr,
		    "scepctl: the import of %zu entries %s: run it again "
		    "(entries on the CRL already are left as they are)\n",
		    req->revoke_import->n_entries, maybe);
		break;
	case SCEP__V1__REQUEST__BODY_DECIDE:
		fprintf(stderr,
		    "scepctl: the %s of %s %s: see scepctl list --pending (it "
		    "is there while it waits, or rejected; approved, its "
		    "certificate is in scepctl list)\n",
		    req->decide->approve ? "approval" : "rejection",
		    req->decide->transaction_id, maybe);
		break;
	case SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE:
		fprintf(stderr,
		    "scepctl: a password may have been issued all the same: "
		    "see scepctl challenge --list (and --revoke ID)\n");
		break;
	case SCEP__V1__REQUEST__BODY_CHALLENGE_REVOKE:
		fprintf(stderr,
		    "scepctl: the revocation %s: see scepctl challenge "
		    "--list\n",
		    maybe);
		break;
	default:
		break;
	}
}

Scep__V1__Reply *
scepctl_call(
    struct scepctl_conn *conn, Scep__V1__Request *req, const char *service)
{
	Scep__V1__Reply *reply = NULL;
	/* One attempt: a revocation or a password's deletion sent twice
	 * would answer "already done" after it was done. */
	int e = rpc_call_once(conn->client, req, conn->timeout_ms, &reply);

	/* Never taken (no peer connected: the service down, a socket left
	 * by a crash): nothing can have been done. */
	if (e == RPC_ETIMEDOUT && rpc_client_copies(conn->client) == 0) {
		fprintf(stderr,
		    "scepctl: the %s at %s took no request within %d s (not "
		    "running, hung, or it does not admit this host's CurveZMQ "
		    "key): nothing was sent, nothing was done\n",
		    service, conn->endpoint, conn->timeout_ms / 1000);
		return NULL;
	}
	if (e == RPC_ETIMEDOUT) {
		fprintf(stderr,
		    "scepctl: the %s at %s did not answer within %d s; is "
		    "scepd running? (scepctl --timeout SECONDS waits "
		    "longer)\n",
		    service, conn->endpoint, conn->timeout_ms / 1000);
		scepctl_timeout_hint(req);
		return NULL;
	}
	if (e != RPC_OK) {
		fprintf(stderr, "scepctl: the %s at %s: %s\n", service,
		    conn->endpoint, rpc_strerror(e));
		return NULL;
	}
	return reply;
}

void
scepctl_disconnect(struct scepctl_conn *conn)
{
	rpc_client_free(conn->client);
	if (conn->zmq_ctx != NULL)
		zmq_ctx_term(conn->zmq_ctx);
	rpc_link_free(conn->link);
	rpc_curve_free(conn->curve);
	free(conn->endpoint);
	memset(conn, 0, sizeof(*conn));
}
