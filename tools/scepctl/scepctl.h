/*
 * scepctl: the operator's tool on the CA host. Each subcommand is a
 * function taking the data directory and its own arguments, returning the
 * exit status: 0 done, 1 refused or failed (reason on stderr), 2 usage.
 */
#ifndef SCEPCTL_H
#define SCEPCTL_H

/* The data directory, absolute, and its scepd.conf; --timeout. */
struct scepctl {
	char *data_dir;
	char *conf;
	long timeout_s; /* a service's answer is waited for (0: 5 s) */
};

#define SCEPCTL_TIMEOUT_S 5
#define SCEPCTL_TIMEOUT_MAX_S 3600
/* `arg` of option `opt` as whole seconds, 1 to max: 0, or -1 said. */
int scepctl_seconds(const char *opt, const char *arg, long max, long *out);

#include "rpc.h"

/* connect.c: a client of the service whose endpoint is [section] key of
 * DIR/scepd.conf; over CurveZMQ, with DIR/keys/scepctl.key, when that
 * service uses it. 0, or -1 with the reason on stderr. */
struct scepctl_conn {
	void *zmq_ctx;
	struct rpc_client *client;
	char *endpoint;
	struct rpc_curve *curve;
	struct rpc_link *link;
	int timeout_ms; /* the scepctl's --timeout */
};
int scepctl_connect(const struct scepctl *ctl, const char *section,
    const char *key, struct scepctl_conn *conn);
/* A client of [section]'s service at its Listen endpoint presenting the
 * service's own CurveZMQ pair (origin RPC_PEER_SELF; without CurveZMQ,
 * origin scepctl): a health probe run where the service runs. */
int scepctl_connect_self(
    const struct scepctl *ctl, const char *section, struct scepctl_conn *conn);
/* The reply (the caller frees it), or NULL with the reason on stderr. */
Scep__V1__Reply *scepctl_call(
    struct scepctl_conn *conn, Scep__V1__Request *req, const char *service);
void scepctl_disconnect(struct scepctl_conn *conn);

/* challenge.c: one fresh one-time password from the challenge service. */
int scepctl_challenge(const struct scepctl *ctl, int argc, char **argv);
/* passwd.c: sets an admin account's password (read from stdin). */
int scepctl_passwd(const struct scepctl *ctl, int argc, char **argv);
/* ledger.c: the CA's ledger of issued certificates and refusals. */
int scepctl_list(const struct scepctl *ctl, int argc, char **argv);
int scepctl_show(const struct scepctl *ctl, int argc, char **argv);
int scepctl_revoke(const struct scepctl *ctl, int argc, char **argv);
int scepctl_approve(const struct scepctl *ctl, int argc, char **argv);
int scepctl_reject(const struct scepctl *ctl, int argc, char **argv);
/* import_crl.c: an earlier CRL's entries put on scepd's. */
int scepctl_import_crl(const struct scepctl *ctl, int argc, char **argv);
/* health.c: whether a service answers a HealthRequest in time. */
int scepctl_health(const struct scepctl *ctl, int argc, char **argv);
/* keygen.c: a CurveZMQ key pair in DIR/keys. */
int scepctl_keygen(const struct scepctl *ctl, int argc, char **argv);

#endif
