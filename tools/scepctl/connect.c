/*
 * How scepctl reaches a service: the endpoint from a key of DIR/scepd.conf
 * (ipc:// paths resolved against DIR, as the services resolve them), a
 * ZeroMQ client with origin "scepctl", and one call with a clear message
 * when nobody answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>
#include <zmq.h>

#include "config.h"
#include "scepctl.h"

#define SCEPCTL_TIMEOUT_MS 5000

struct scepctl_lookup {
	const char *section, *key;
	char *value;
};

/* Only the one key wanted; the service validates the rest. */
static int
scepctl_ini_key(
    void *user, const char *section, const char *name, const char *value)
{
	struct scepctl_lookup *l = user;

	if (strcasecmp(section, l->section) == 0 &&
	    strcasecmp(name, l->key) == 0) {
		free(l->value);
		l->value = strdup(value);
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
		} else
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

int
scepctl_connect(const struct scepctl *ctl, const char *section,
    const char *key, struct scepctl_conn *conn)
{
	struct scepctl_lookup l = {section, key, NULL};
	int parse;

	memset(conn, 0, sizeof(*conn));
	if ((parse = ini_parse(ctl->conf, scepctl_ini_key, &l)) < 0) {
		fprintf(stderr,
		    "scepctl: cannot read %s (is %s a scepd data directory? "
		    "see --data-dir)\n",
		    ctl->conf, ctl->data_dir);
		goto fail;
	}
	if (parse > 0) {
		fprintf(stderr, "scepctl: %s: syntax error at line %d\n",
		    ctl->conf, parse);
		goto fail;
	}
	if (l.value == NULL || l.value[0] == '\0') {
		fprintf(stderr, "scepctl: %s: [%s] %s is not set\n", ctl->conf,
		    section, key);
		goto fail;
	}
	if ((conn->endpoint = scepctl_resolve_endpoints(
	         ctl->data_dir, l.value)) == NULL) {
		fprintf(stderr, "scepctl: %s: [%s] %s: cannot use '%s'\n",
		    ctl->conf, section, key, l.value);
		goto fail;
	}
	if ((conn->zmq_ctx = zmq_ctx_new()) == NULL ||
	    (conn->client = rpc_client_new(
	         conn->zmq_ctx, conn->endpoint, "scepctl")) == NULL) {
		fprintf(stderr, "scepctl: cannot start ZeroMQ\n");
		goto fail;
	}
	free(l.value);
	return 0;
fail:
	free(l.value);
	scepctl_disconnect(conn);
	return -1;
}

Scep__V1__Reply *
scepctl_call(
    struct scepctl_conn *conn, Scep__V1__Request *req, const char *service)
{
	Scep__V1__Reply *reply = NULL;
	int e = rpc_call(conn->client, req, SCEPCTL_TIMEOUT_MS, &reply);

	if (e == RPC_ETIMEDOUT) {
		fprintf(stderr,
		    "scepctl: the %s at %s did not answer; is scepd "
		    "running?\n",
		    service, conn->endpoint);
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
	free(conn->endpoint);
	memset(conn, 0, sizeof(*conn));
}
