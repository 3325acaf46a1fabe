/*
 * scepd-challenge start-up: arguments, configuration, secret, database,
 * then serve. One worker (LMDB has one writer at a time anyway), unless a
 * validator plugin asks an MDM: then several, each with its own instance
 * of the plugin, so that no check waits behind an MDM's answer; the rest
 * of every handler runs under the service's lock.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <zmq.h>

#include "challenge.h"
#include "config.h"
#include "log.h"
#include "service.h"
#include "store.h"

#define S(field) offsetof(struct challenge_settings, field)
static const struct config_key challenge_config[] = {
    {"Listen", CONFIG_ENDPOINT, 0, 0, NULL, S(listen),
        "ZeroMQ endpoint to serve on"},
    {"Database", CONFIG_PATH, 0, 0, NULL, S(database),
        "LMDB directory (created mode 0700)"},
    {"DatabaseMaxMiB", CONFIG_INT, 1, 16L << 20, "4096", S(database_max_mib),
        "most the password database may hold, in MiB (address space)"},
    {"SecretFile", CONFIG_PATH, 0, 0, NULL, S(secret_file),
        "HMAC secret, 32 bytes, mode 0600 (created when missing)"},
    {"PasswordValidity", CONFIG_INT, 1, 525600, "60", S(password_validity),
        "minutes a password stays valid"},
    {"PasswordMax", CONFIG_INT, 1, 100000, "5", S(password_max),
        "passwords outstanding at once"},
    {"PasswordLength", CONFIG_INT, 8, CHALLENGE_RAW_MAX, "16",
        S(password_length), "random bytes per password (shown as hex)"},
    {"EnforcePassword", CONFIG_BOOL, 0, 1, "1", S(enforce_password),
        "1: every request needs a valid password"},
    {"AllowNoPassword", CONFIG_BOOL, 0, 1, "0", S(allow_no_password),
        "with EnforcePassword = 0: really enroll without a password"},
    {"UseSinglePassword", CONFIG_BOOL, 0, 1, "0", S(use_single_password),
        "1: one shared password (the static validator)"},
    {"SinglePassword", CONFIG_STRING, 0, 0, "", S(single_password),
        "the shared password (the admin API may replace it)"},
    {"Validator", CONFIG_STRING, 0, 0, "", S(validator),
        "validator for paths not in [challenge.paths] (otp or static)"},
    {"PluginDir", CONFIG_PATH, 0, 0, "", S(plugin_dir),
        "where Module = NAME finds scepd-NAME.so"},
    {"MdmPasswordMax", CONFIG_INT, 1, 10000000, "10000", S(mdm_password_max),
        "outstanding passwords per MDM account"},
    {"WrongPasswordLimit", CONFIG_INT, 0, 1000000, "10",
        S(wrong_password_limit), "refusals per client address (0: none)"},
    {"WrongPasswordWindow", CONFIG_INT, 1, 86400, "300",
        S(wrong_password_window), "... within this many seconds"},
    {"Workers", CONFIG_INT, 0, 64, "0", S(workers),
        "threads answering (0: 1, or 8 with a validator plugin)"},
    {"ValidatorRest", CONFIG_INT, 0, 3600, "10", S(validator_rest),
        "seconds a validator plugin that waited 3 checks in a row for no "
        "verdict is not asked (503 at once; 0: always ask)"},
    {"CurveSecretKeyFile", CONFIG_PATH, 0, 0, "", S(curve.secret_key_file),
        "CurveZMQ secret key of this service (scepctl keygen), mode 0600"},
    {"CurvePublicKeyFile", CONFIG_PATH, 0, 0, "", S(curve.public_key_file),
        "its public key, checked against the secret one"},
    {"CurveClients", CONFIG_STRING, 0, 0, "", S(curve.clients),
        "NAME:PUBKEYFILE of each client admitted (frontend, ra, scepctl)"},
    {"CallerUsers", CONFIG_STRING, 0, 0, "", S(curve.caller_users),
        "NAME:USER: over ipc:// a caller declaring NAME (frontend, ra) must "
        "run as USER or root"},
    {"AllowInsecureTransport", CONFIG_BOOL, 0, 1, "0", S(curve.allow_insecure),
        "1: tcp:// without CurveZMQ (unsafe)"},
    SANDBOX_CONFIG_KEYS(struct challenge_settings, sandbox),
    CONFIG_END,
};
#undef S

static int64_t
challenge_clock(void)
{
	return (int64_t)time(NULL);
}

/* Unsafe choices are said at every start, where an operator looks. */
static void
challenge_warn_unsafe(const struct challenge_settings *s)
{
	if (!s->enforce_password && s->allow_no_password)
		log_warn("unsafe: EnforcePassword = 0 and AllowNoPassword = 1: "
		         "any device that reaches this server can enroll");
	else if (!s->enforce_password)
		log_warn("EnforcePassword = 0 without AllowNoPassword = 1: "
		         "requests without a password are still refused");
	if (s->use_single_password)
		log_warn("UseSinglePassword = 1: one password for every "
		         "device; whoever learns it can enroll");
}

/* The handlers share the service; a worker has its plugins' instances. */
static void *
challenge_worker_init(void *service)
{
	struct challenge *c = service;
	struct challenge_worker *w = calloc(1, sizeof(*w));

	if (w != NULL) {
		w->c = c;
		w->index = (size_t)atomic_fetch_add(&c->next_worker, 1);
	}
	return w;
}

static void
challenge_worker_fini(void *worker)
{
	free(worker);
}

/* Seconds between the sweeps of an idle service. */
#define IDLE_SWEEP_S 60
/* Releases whose write failed are tried again this often (otp.c). */
#define OWED_RETRY_MS 2000

/* The held "used" marks, the releases owed, and once a minute what is due (a full map then
 * clears itself with no request asking): from the serving thread
 * (rpc.h), locked. */
static void
challenge_idle(void *service)
{
	static int64_t swept_at, owed_at;
	struct challenge *c = service;
	int64_t now = clock_monotonic_ms();
	unsigned long swept;

	pthread_mutex_lock(&c->lock);
	challenge_used_idle(c);
	if (now - owed_at >= OWED_RETRY_MS) {
		owed_at = now;
		otp_owed_retry(c);
	}
	if (now - swept_at >= IDLE_SWEEP_S * 1000) {
		swept_at = now;
		(void)challenge_sweep_batches(c, c->now(), &swept);
		store_readers_clear(c->env, "challenge database");
	}
	pthread_mutex_unlock(&c->lock);
}

int
main(int argc, char **argv)
{
	struct challenge c;
	struct rpc_server_config server;
	struct rpc_curve *curve = NULL;
	const char *config_file = NULL;
	char err[512];
	int loaded = 0, rc = 1;

	memset(&c, 0, sizeof(c));
	c.now = challenge_clock;
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.inflight_done, NULL);
	if ((config_file = service_config_arg(
	         argc, argv, "scepd-challenge", &rc)) == NULL)
		return rc;
	if (service_no_dumps("scepd-challenge") != 0)
		return 1;
	rc = 1;
	log_init("scepd-challenge", LOG_LEVEL_INFO);
	if (config_load(
	        config_file, "challenge", challenge_config, &c.settings) != 0)
		return 1;
	loaded = 1;
	if ((curve = rpc_curve_load(&c.settings.curve, c.settings.listen,
	         config_file, "challenge")) == NULL)
		goto out;
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
	/* Plugins talk to the network (webhook): a peer that hangs up must
	 * not kill the service. */
	signal(SIGPIPE, SIG_IGN);
	if ((c.refusals = calloc(CHALLENGE_LIMIT_SLOTS, sizeof(*c.refusals))) ==
	    NULL) {
		fprintf(stderr, "scepd-challenge: out of memory\n");
		goto out;
	}
	if (validators_load(&c, config_file) != 0)
		goto out;
	c.nworkers = (int)c.settings.workers;
	if (c.nworkers == 0)
		c.nworkers =
		    validators_have_plugin(&c) ? CHALLENGE_PLUGIN_WORKERS : 1;
	if (validators_spawn(&c, c.nworkers) != 0)
		goto out;
	challenge_warn_unsafe(&c.settings);
	/* Everything is open: give up the rest before the first thread. */
	if (challenge_sandbox_enter(&c, config_file) != 0)
		goto out;
	if ((c.zmq_ctx = zmq_ctx_new()) == NULL) {
		fprintf(stderr, "scepd-challenge: cannot start ZeroMQ\n");
		goto out;
	}
	log_info(
	    "PasswordValidity = %ld minutes, PasswordMax = %ld, "
	    "PasswordLength = %ld bytes, WrongPasswordLimit = %ld per %ld s",
	    c.settings.password_validity, c.settings.password_max,
	    c.settings.password_length, c.settings.wrong_password_limit,
	    c.settings.wrong_password_window);
	memset(&server, 0, sizeof(server));
	server.zmq_ctx = c.zmq_ctx;
	server.endpoint = c.settings.listen;
	server.routes = challenge_routes;
	server.workers = c.nworkers;
	server.worker_init = challenge_worker_init;
	server.worker_fini = challenge_worker_fini;
	server.service = &c;
	server.max_message = RPC_MAX_CHALLENGE_REQUEST;
	server.curve = curve;
	server.ready = challenge_sandbox_ready;
	server.idle = challenge_idle;
	rc = rpc_serve(&server) == 0 ? 0 : 1;
out:
	if (c.zmq_ctx != NULL)
		zmq_ctx_term(c.zmq_ctx);
	rpc_curve_free(curve);
	validators_free(&c);
	free(c.refusals);
	challenge_db_close(&c);
	OPENSSL_cleanse(c.secret, sizeof(c.secret));
	challenge_sandbox_free();
	pthread_cond_destroy(&c.inflight_done);
	pthread_mutex_destroy(&c.lock);
	if (loaded)
		config_free(challenge_config, &c.settings);
	return rc;
}
