/*
 * scepd-challenge start-up: arguments, configuration, secret, database,
 * then serve. One worker: LMDB has one writer at a time anyway.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <zmq.h>

#include "challenge.h"
#include "config.h"
#include "log.h"
#include "service.h"

#define S(field) offsetof(struct challenge_settings, field)
static const struct config_key challenge_config[] = {
    {"Listen", CONFIG_ENDPOINT, 0, 0, NULL, S(listen),
        "ZeroMQ endpoint to serve on"},
    {"Database", CONFIG_PATH, 0, 0, NULL, S(database),
        "LMDB directory (created mode 0700)"},
    {"SecretFile", CONFIG_PATH, 0, 0, NULL, S(secret_file),
        "HMAC secret, 32 bytes, mode 0600 (created when missing)"},
    {"PasswordValidity", CONFIG_INT, 1, 525600, "60", S(password_validity),
        "minutes a password stays valid"},
    {"PasswordMax", CONFIG_INT, 1, 100000, "5", S(password_max),
        "passwords outstanding at once"},
    CONFIG_END,
};
#undef S

static const struct rpc_route challenge_routes[] = {
    {SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE, "ChallengeIssue",
        "frontend scepctl", challenge_handle_issue},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_CHECK, "ChallengeCheck", "ra",
        challenge_handle_check},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_CONSUME, "ChallengeConsume", "ra",
        challenge_handle_consume},
    {0, NULL, NULL, NULL},
};

/* The handlers share the service itself: there is one worker. */
static void *
challenge_worker_init(void *service)
{
	return service;
}

int
main(int argc, char **argv)
{
	struct challenge c;
	struct rpc_server_config server;
	const char *config_file = NULL;
	char err[512];
	int loaded = 0, rc = 1;

	memset(&c, 0, sizeof(c));
	if ((config_file = service_config_arg(
	         argc, argv, "scepd-challenge", &rc)) == NULL)
		return rc;
	rc = 1;
	log_init("scepd-challenge", LOG_LEVEL_INFO);
	if (config_load(
	        config_file, "challenge", challenge_config, &c.settings) != 0)
		return 1;
	loaded = 1;
	if (challenge_secret_load(
	        c.settings.secret_file, c.secret, err, sizeof(err)) != 0) {
		fprintf(stderr, "scepd-challenge: [challenge] SecretFile: %s\n",
		    err);
		goto out;
	}
	if (challenge_db_open(&c, err, sizeof(err)) != 0) {
		fprintf(
		    stderr, "scepd-challenge: [challenge] Database: %s\n", err);
		goto out;
	}
	if ((c.zmq_ctx = zmq_ctx_new()) == NULL) {
		fprintf(stderr, "scepd-challenge: cannot start ZeroMQ\n");
		goto out;
	}
	log_info("PasswordValidity = %ld minutes, PasswordMax = %ld",
	    c.settings.password_validity, c.settings.password_max);
	memset(&server, 0, sizeof(server));
	server.zmq_ctx = c.zmq_ctx;
	server.endpoint = c.settings.listen;
	server.routes = challenge_routes;
	server.workers = 1;
	server.worker_init = challenge_worker_init;
	server.service = &c;
	server.max_message = 64 * 1024;
	rc = rpc_serve(&server) == 0 ? 0 : 1;
out:
	if (c.zmq_ctx != NULL)
		zmq_ctx_term(c.zmq_ctx);
	challenge_db_close(&c);
	OPENSSL_cleanse(c.secret, sizeof(c.secret));
	if (loaded)
		config_free(challenge_config, &c.settings);
	return rc;
}
