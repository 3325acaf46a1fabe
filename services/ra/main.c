/*
 * scepd-ra start-up: arguments, configuration, keys, then serve.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>
#include <zmq.h>

#include "config.h"
#include "log.h"
#include "service.h"
#include "clock.h"
#include "pki.h"
#include "ra.h"

#define S(field) offsetof(struct ra_settings, field)
static const struct config_key ra_config[] = {
    {"Listen", CONFIG_ENDPOINT, 0, 0, NULL, S(listen), NULL},
    {"CAEndpoint", CONFIG_ENDPOINT, 0, 0, NULL, S(ca_endpoint), NULL},
    {"ChallengeEndpoint", CONFIG_ENDPOINT, 0, 0, NULL, S(challenge_endpoint),
        NULL},
    {"CACertificate", CONFIG_PATH, 0, 0, NULL, S(ca_certificate), NULL},
    {"SigningCertificate", CONFIG_PATH, 0, 0, NULL, S(signing_certificate),
        NULL},
    {"SigningKey", CONFIG_PATH, 0, 0, "", S(signing_key),
        "key file (required unless SigningSigner names a signer)"},
    {"SigningSigner", CONFIG_STRING, 0, 0, "file", S(signing_signer),
        "file (SigningKey), or a [signer.NAME] section (an HSM)"},
    {"EncryptionCertificate", CONFIG_PATH, 0, 0, NULL,
        S(encryption_certificate), NULL},
    {"EncryptionKey", CONFIG_PATH, 0, 0, "", S(encryption_key),
        "key file (required unless EncryptionSigner names a signer)"},
    {"EncryptionSigner", CONFIG_STRING, 0, 0, "file", S(encryption_signer),
        "file (EncryptionKey), or a [signer.NAME] section (an HSM)"},
    {"PreviousEncryptionCertificate", CONFIG_PATH, 0, 0, "",
        S(previous_encryption_certificate),
        "the RA encryption certificate EncryptionCertificate replaced, "
        "whose envelopes still open"},
    {"PreviousEncryptionKey", CONFIG_PATH, 0, 0, "", S(previous_encryption_key),
        "its key file"},
    {"PreviousEncryptionSigner", CONFIG_STRING, 0, 0, "file",
        S(previous_encryption_signer),
        "file (PreviousEncryptionKey), or a [signer.NAME] section"},
    {"PluginDir", CONFIG_PATH, 0, 0, "", S(plugin_dir),
        "where Module = NAME plugins are (\"\": beside the program)"},
    {"KeyPassphraseFile", CONFIG_PATH, 0, 0, "", S(key_passphrase_file), NULL},
    {"NextCACertificate", CONFIG_PATH, 0, 0, "", S(next_ca_certificate), NULL},
    {"PreviousCACertificate", CONFIG_PATH, 0, 0, "", S(previous_ca_certificate),
        "CAs this one replaced (PEM): their certificates may sign renewals"},
    {"AllowDES", CONFIG_BOOL, 0, 1, "0", S(allow_des), NULL},
    {"AllowDES3", CONFIG_BOOL, 0, 1, "1", S(allow_des3), NULL},
    {"AllowSHA1", CONFIG_BOOL, 0, 1, "1", S(allow_sha1), NULL},
    {"Workers", CONFIG_INT, 0, 256, "0", S(workers), NULL},
    {"RPCTimeout", CONFIG_INT, 100, 600000, "4000", S(rpc_timeout), NULL},
    {"EnvelopeKeyMemory", CONFIG_INT, 0, SCEP_WRAPPED_KEYS_MAX, "32768",
        S(envelope_key_memory), NULL},
    {"CAServerKey", CONFIG_STRING, 0, 0, "", S(ca_server_key),
        "the CA's CurveZMQ public key file (one per CAEndpoint, or one)"},
    {"ChallengeServerKey", CONFIG_STRING, 0, 0, "", S(challenge_server_key),
        "the challenge service's CurveZMQ public key file"},
    {"CurveSecretKeyFile", CONFIG_PATH, 0, 0, "", S(curve.secret_key_file),
        "CurveZMQ secret key of the RA (scepctl keygen), mode 0600"},
    {"CurvePublicKeyFile", CONFIG_PATH, 0, 0, "", S(curve.public_key_file),
        "its public key, checked against the secret one"},
    {"CurveClients", CONFIG_STRING, 0, 0, "", S(curve.clients),
        "NAME:PUBKEYFILE of each client admitted (frontend)"},
    {"CallerUsers", CONFIG_STRING, 0, 0, "", S(curve.caller_users),
        "NAME:USER: over ipc:// a caller declaring NAME (frontend) must run as "
        "USER or root"},
    {"AllowInsecureTransport", CONFIG_BOOL, 0, 1, "0", S(curve.allow_insecure),
        "1: tcp:// without CurveZMQ (unsafe)"},
    SANDBOX_CONFIG_KEYS(struct ra_settings, sandbox),
    CONFIG_END,
};
#undef S

/* Loads one certificate and its key, from a file or a signer, and checks
 * they belong together and may do what SCEP needs of them. Names the
 * file or section at fault. */
static int
ra_load_pair(const struct ra_settings *s, const char *config_file,
    const char *cert_path, const char *key_path, const char *key_setting,
    const char *signer_name, const char *signer_setting, struct signer *signer,
    unsigned int ku, const char *purpose, X509 **cert, EVP_PKEY **key)
{
	char err[512], where[160];

	if ((*cert = pki_load_cert(cert_path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "scepd-ra: %s\n", err);
		return -1;
	}
	if (strcmp(signer_name, "file") != 0) {
		/* The key is in a token: no key file is read. */
		if (signer_load(signer, signer_name, config_file, s->plugin_dir,
		        "scepd-ra", signer_setting,
		        ku == X509v3_KU_KEY_ENCIPHERMENT ? SIGNER_DECRYPTS
		                                         : SIGNER_SIGNS,
		        key) != 0)
			return -1;
		snprintf(where, sizeof(where), "[signer.%s]", signer_name);
		key_path = where;
	} else if (key_path[0] == '\0') {
		fprintf(stderr,
		    "scepd-ra: [ra] %s: is required (or %s = NAME of a "
		    "[signer.NAME] section)\n",
		    key_setting, signer_setting + strlen("[ra] "));
		return -1;
	} else if (pki_check_private_file(key_path, err, sizeof(err)) != 0) {
		/* The encryption key opens every device's password. */
		fprintf(stderr, "scepd-ra: [ra] %s: %s\n", key_setting, err);
		return -1;
	} else if (s->key_passphrase_file[0] != '\0' &&
	    pki_check_private_file(s->key_passphrase_file, err, sizeof(err)) !=
	        0) {
		fprintf(stderr, "scepd-ra: [ra] KeyPassphraseFile: %s\n", err);
		return -1;
	} else if ((*key = pki_load_key(key_path, s->key_passphrase_file, err,
	                sizeof(err))) == NULL) {
		fprintf(stderr, "scepd-ra: %s\n", err);
		return -1;
	}
	if (pki_check_pair(
	        *cert, *key, cert_path, key_path, err, sizeof(err)) != 0 ||
	    pki_check_key_usage(
	        *cert, ku, cert_path, purpose, err, sizeof(err)) != 0 ||
	    (strcmp(signer_name, "file") != 0 &&
	        pki_check_key_works(*cert, *key,
	            ku == X509v3_KU_KEY_ENCIPHERMENT, key_path, err,
	            sizeof(err)) != 0)) {
		fprintf(stderr, "scepd-ra: %s\n", err);
		return -1;
	}
	return 0;
}

/*
 * PreviousEncryptionCertificate, when set: the pair that opens envelopes
 * to the RA encryption certificate EncryptionCertificate replaced with a
 * new key (devices and frontends that fetched GetCACert before, network
 * devices that keep it until they authenticate the CA again). Logged, as
 * a switch that keeps an old key in use.
 */
static int
ra_load_previous_enc(struct ra *ra, const char *config_file)
{
	const struct ra_settings *s = &ra->settings;
	struct scep_ra_key *prev = &ra->enc[1];
	char until[40] = "?";
	time_t end;

	if (s->previous_encryption_certificate[0] == '\0') {
		if (s->previous_encryption_key[0] == '\0' &&
		    strcmp(s->previous_encryption_signer, "file") == 0)
			return 0;
		fprintf(stderr,
		    "scepd-ra: [ra] PreviousEncryptionKey or "
		    "PreviousEncryptionSigner is set without "
		    "PreviousEncryptionCertificate\n");
		return -1;
	}
	if (ra_load_pair(s, config_file, s->previous_encryption_certificate,
	        s->previous_encryption_key, "PreviousEncryptionKey",
	        s->previous_encryption_signer, "[ra] PreviousEncryptionSigner",
	        &ra->previous_enc_signer, X509v3_KU_KEY_ENCIPHERMENT,
	        "receiving encrypted requests", &prev->cert, &prev->key) != 0)
		return -1;
	if (EVP_PKEY_eq(prev->key, ra->enc[0].key) == 1) {
		/* Its envelopes open already (scep_envelope_read). */
		fprintf(stderr,
		    "scepd-ra: [ra] PreviousEncryptionCertificate: %s holds "
		    "the key of EncryptionCertificate, whose envelopes open "
		    "whatever certificate of it they name: leave it empty\n",
		    s->previous_encryption_certificate);
		return -1;
	}
	if (pki_time(X509_get0_notAfter(prev->cert), &end) == 0)
		ra_date(end, until, sizeof(until));
	log_warn("PreviousEncryptionCertificate: envelopes to the RA's earlier "
	         "encryption certificate (%s, valid until %s) still open with "
	         "its key",
	    s->previous_encryption_certificate, until);
	return 0;
}

/* [ra] EnvelopeKeyMemory: 0, or -1 (to stderr). */
static int
ra_wrapped_keys_start(struct ra *ra)
{
	long n = ra->settings.envelope_key_memory;

	if (n == 0) {
		log_warn("EnvelopeKeyMemory = 0: a device's envelope key may "
		         "come again with other content (a padding oracle on "
		         "its request, challengePassword and all)");
		return 0;
	}
	if (n < 4 ||
	    (ra->wrapped_keys = scep_wrapped_keys_new((size_t)n)) == NULL) {
		fprintf(stderr, "scepd-ra: [ra] EnvelopeKeyMemory = %ld: %s\n",
		    n, n < 4 ? "0 (none), or 4 or more" : "out of memory");
		return -1;
	}
	return 0;
}

/*
 * EnvelopeKeyMemory forgetting keys younger than an hour (a one-time
 * password's default life): said at most every ten minutes. A flood of
 * envelopes pushes a device's key out so that it may be reused.
 */
static void
ra_wrapped_keys_watch(struct ra *ra)
{
	uint64_t refused, forgotten;
	int64_t youngest;
	time_t now = time(NULL);

	/* The idle call comes with every message the proxy passes: a look
	 * a minute (the youngest forgotten is kept between looks). */
	if (ra->wrapped_keys == NULL ||
	    (now >= ra->wrapped_keys_looked &&
	        now - ra->wrapped_keys_looked < ra->wrapped_keys_look_s))
		return;
	ra->wrapped_keys_looked = now;
	if (now >= ra->wrapped_keys_logged &&
	    now - ra->wrapped_keys_logged < 600)
		return;
	scep_wrapped_keys_stats(
	    ra->wrapped_keys, &refused, &forgotten, &youngest);
	if (youngest < 0 || youngest >= 3600 * 1000)
		return;
	ra->wrapped_keys_logged = now;
	log_warn("EnvelopeKeyMemory = %ld is full: an envelope's key was "
	         "forgotten %lld s after it came (%llu forgotten, %llu "
	         "reused keys refused since start); many requests, or a "
	         "flood to make a device's key usable again: raise it",
	    ra->settings.envelope_key_memory, (long long)(youngest / 1000),
	    (unsigned long long)forgotten, (unsigned long long)refused);
}

/* The thread of struct ra_key_watch. */
static void *
ra_key_watch_main(void *arg)
{
	struct ra_key_watch *kw = arg;
	int64_t looked = clock_monotonic_ms();
	unsigned int seen = 0;
	int down = 0;

	while (!atomic_load(&kw->stop)) {
		int64_t now, wait;
		unsigned int refusals;
		const char *failing = NULL;
		char err[512];

		nanosleep(&(struct timespec){0, 250 * 1000 * 1000}, NULL);
		now = clock_monotonic_ms();
		refusals = atomic_load(&kw->refusals);
		wait = down ? 5000 : refusals != seen ? 1000 : 60000;
		if (now - looked < wait)
			continue;
		looked = now;
		seen = refusals;
		for (size_t i = 0; i < kw->nkeys && failing == NULL; i++)
			if (pki_check_key_works(kw->keys[i]->cert,
			        kw->keys[i]->key, 1, kw->signers[i], err,
			        sizeof(err)) != 0)
				failing = kw->signers[i];
		if (failing != NULL && !down) {
			atomic_store(&kw->down, down = 1);
			log_error(
			    "[signer.%s]: the RA's key no longer decrypts "
			    "(its token gone, or its session lost): "
			    "envelopes get 503 until it does; once the "
			    "token is back, restart scepd-ra (a lost "
			    "session does not come back by itself)",
			    failing);
		} else if (failing == NULL && down) {
			atomic_store(&kw->down, down = 0);
			log_info("the RA's keys in tokens decrypt again");
		}
	}
	return NULL;
}

/* The watch of the keys in tokens, if any: 0, or -1. After the sandbox
 * is entered (a thread started before would stay outside Landlock), its
 * signals blocked (the serving thread takes the stop signals). */
static int
ra_key_watch_start(struct ra *ra)
{
	struct ra_key_watch *kw;
	const struct signer *signers[2] = {
	    &ra->enc_signer, &ra->previous_enc_signer};
	sigset_t all, old;

	for (size_t i = 0; i < 2; i++) {
		if (signers[i]->p == NULL || ra->enc[i].cert == NULL)
			continue;
		if (ra->enc_watch == NULL &&
		    (ra->enc_watch = calloc(1, sizeof(*kw))) == NULL)
			return -1;
		kw = ra->enc_watch;
		kw->keys[kw->nkeys] = &ra->enc[i];
		kw->signers[kw->nkeys++] = signers[i]->name;
	}
	if ((kw = ra->enc_watch) == NULL)
		return 0;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	kw->started =
	    pthread_create(&kw->thread, NULL, ra_key_watch_main, kw) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!kw->started)
		log_error("cannot start the watch of the RA's keys in tokens");
	return kw->started ? 0 : -1;
}

static void
ra_key_watch_stop(struct ra *ra)
{
	if (ra->enc_watch == NULL || !ra->enc_watch->started)
		return;
	atomic_store(&ra->enc_watch->stop, 1);
	pthread_join(ra->enc_watch->thread, NULL);
	ra->enc_watch->started = 0;
}

/* The serving thread's idle call. Certificates ending while it runs are
 * logged as at start. */
static void
ra_idle(void *service)
{
	ra_validity_watch(service);
	ra_wrapped_keys_watch(service);
}

static void *
ra_worker_init(void *service)
{
	struct ra *ra = service;
	struct ra_worker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->ra = ra;
	w->ca = rpc_client_new_link(ra->zmq_ctx, ra->ca_link, "ra");
	w->challenge =
	    rpc_client_new_link(ra->zmq_ctx, ra->challenge_link, "ra");
	if (w->ca == NULL || w->challenge == NULL) {
		rpc_client_free(w->ca);
		rpc_client_free(w->challenge);
		free(w);
		return NULL;
	}
	rpc_client_set_max(w->ca, RPC_MAX_CA_REQUEST);
	rpc_client_set_max(w->challenge, RPC_MAX_CHALLENGE_REQUEST);
	return w;
}

static void
ra_worker_fini(void *worker)
{
	struct ra_worker *w = worker;

	rpc_client_free(w->ca);
	rpc_client_free(w->challenge);
	free(w);
}

static void
ra_free(struct ra *ra)
{
	X509_free(ra->sign_cert);
	EVP_PKEY_free(ra->sign_key);
	for (size_t i = 0; i < sizeof(ra->enc) / sizeof(ra->enc[0]); i++) {
		X509_free(ra->enc[i].cert);
		EVP_PKEY_free(ra->enc[i].key);
	}
	/* After the RA's references to their keys; the last loaded first. */
	signer_free(&ra->previous_enc_signer);
	signer_free(&ra->enc_signer);
	signer_free(&ra->sign_signer);
	sk_X509_pop_free(ra->ca_chain, X509_free);
	sk_X509_pop_free(ra->previous_cas, X509_free);
	free(ra->cacert_body);
	free(ra->ca_der);
	free(ra->caps);
	free(ra->next_ca_body);
	ra_crl_cache_free(ra->crl_cache);
	ra_crl_cache_free(ra->previous_crl_cache);
	scep_wrapped_keys_free(ra->wrapped_keys);
	free(ra->enc_watch);
	rpc_link_free(ra->ca_link);
	rpc_link_free(ra->challenge_link);
	rpc_curve_free(ra->curve);
	config_free(ra_config, &ra->settings);
}

int
main(int argc, char **argv)
{
	struct ra ra;
	struct rpc_server_config server;
	const char *config_file = NULL;
	char err[512];
	int rc = 1;

	memset(&ra, 0, sizeof(ra));
	if ((config_file = service_config_arg(argc, argv, "scepd-ra", &rc)) ==
	    NULL)
		return rc;
	if (service_no_dumps("scepd-ra") != 0)
		return 1;
	rc = 1;
	log_init("scepd-ra", LOG_LEVEL_INFO);
	if (config_load(config_file, "ra", ra_config, &ra.settings) != 0)
		return 1;
	if ((ra.curve = rpc_curve_load(&ra.settings.curve, ra.settings.listen,
	         config_file, "ra")) == NULL)
		goto out;
	ra.ca_link = rpc_link_new(ra.curve, ra.settings.ca_endpoint,
	    ra.settings.ca_server_key, config_file, "ra", "CAEndpoint",
	    "CAServerKey");
	ra.challenge_link = rpc_link_new(ra.curve,
	    ra.settings.challenge_endpoint, ra.settings.challenge_server_key,
	    config_file, "ra", "ChallengeEndpoint", "ChallengeServerKey");
	if (ra.ca_link == NULL || ra.challenge_link == NULL)
		goto out;
	if (scep_init() != 0) {
		fprintf(stderr, "scepd-ra: cannot initialise OpenSSL\n");
		goto out;
	}
	ra.policy.allow_des = ra.settings.allow_des;
	ra.policy.allow_des3 = ra.settings.allow_des3;
	ra.policy.allow_sha1 = ra.settings.allow_sha1;
	if (ra.policy.allow_des) {
		if (scep_load_single_des() != SCEP_OK) {
			log_error("AllowDES = 1 in [ra] needs OpenSSL's legacy "
			          "provider (ossl-modules/legacy.so), which "
			          "cannot be loaded");
			goto out;
		}
		log_warn("AllowDES = 1: single-DES requests are accepted "
		         "(RFC 8894 forbids them); replies stay 3DES or AES");
	}

	if (ra_load_pair(&ra.settings, config_file,
	        ra.settings.signing_certificate, ra.settings.signing_key,
	        "SigningKey", ra.settings.signing_signer, "[ra] SigningSigner",
	        &ra.sign_signer, X509v3_KU_DIGITAL_SIGNATURE,
	        "signing CertRep messages", &ra.sign_cert, &ra.sign_key) != 0 ||
	    ra_load_pair(&ra.settings, config_file,
	        ra.settings.encryption_certificate, ra.settings.encryption_key,
	        "EncryptionKey", ra.settings.encryption_signer,
	        "[ra] EncryptionSigner", &ra.enc_signer,
	        X509v3_KU_KEY_ENCIPHERMENT, "receiving encrypted requests",
	        &ra.enc[0].cert, &ra.enc[0].key) != 0 ||
	    ra_load_previous_enc(&ra, config_file) != 0)
		goto out;
	ra.ca_chain =
	    pki_load_certs(ra.settings.ca_certificate, err, sizeof(err));
	if (ra.ca_chain == NULL || sk_X509_num(ra.ca_chain) == 0) {
		fprintf(stderr, "scepd-ra: %s\n",
		    ra.ca_chain ? "no certificate in CACertificate" : err);
		goto out;
	}
	if ((ra.previous_cas = pki_load_previous_cas(
	         ra.settings.previous_ca_certificate,
	         "[ra] PreviousCACertificate", sk_X509_value(ra.ca_chain, 0),
	         err, sizeof(err))) == NULL) {
		fprintf(stderr, "scepd-ra: %s\n", err);
		goto out;
	}
	if (sk_X509_num(ra.previous_cas) > 0)
		log_warn("PreviousCACertificate: certificates of %d CA%s this "
		         "one replaced may sign renewals (%s)",
		    sk_X509_num(ra.previous_cas),
		    sk_X509_num(ra.previous_cas) == 1 ? "" : "s",
		    ra.settings.previous_ca_certificate);
	if (X509_cmp(ra.sign_cert, sk_X509_value(ra.ca_chain, 0)) == 0)
		log_warn("the CA certificate serves as RA: this process holds "
		         "the CA key");
	ra.wrapped_keys_look_s = 60;
#ifdef SCEPD_TEST_HOOKS
	if ((ra.test_ca_late = getenv("SCEPD_TEST_RA_CA_LATE") != NULL))
		log_warn("test hook: every CA answer comes as the device's "
		         "deadline passes");
	if ((ra.test_no_consume = getenv("SCEPD_TEST_RA_NO_CONSUME") != NULL))
		log_warn("test hook: no certificate's password is marked used");
	if (getenv("SCEPD_TEST_RA_KEYS_LOOK_S") != NULL) {
		ra.wrapped_keys_look_s =
		    atoi(getenv("SCEPD_TEST_RA_KEYS_LOOK_S"));
		log_warn("test hook: EnvelopeKeyMemory looked at every %d s",
		    ra.wrapped_keys_look_s);
	}
#endif
	if (ra_wrapped_keys_start(&ra) != 0 || ra_validity_check(&ra) != 0 ||
	    ra_cacert_prepare(&ra) != 0 ||
	    (ra.crl_cache = ra_crl_cache_new()) == NULL ||
	    (ra.previous_crl_cache = ra_crl_cache_new()) == NULL)
		goto out;

	/* Everything is open: give up the rest before the first thread. */
	if (ra_sandbox_enter(&ra, config_file) != 0 ||
	    ra_key_watch_start(&ra) != 0)
		goto out;
	if ((ra.zmq_ctx = zmq_ctx_new()) == NULL)
		goto out;
	memset(&server, 0, sizeof(server));
	server.zmq_ctx = ra.zmq_ctx;
	server.endpoint = ra.settings.listen;
	server.routes = ra_routes;
	server.workers = (int)ra.settings.workers;
	server.max_message = RPC_MAX_RA_REQUEST;
	/* A copy of a PKIOperation that waited while the first was answered
	 * gets that answer instead of a second decryption, challenge check
	 * and signature. Not profiles: their requests hold a password. */
	server.keep_body = SCEP__V1__REQUEST__BODY_PKI_OPERATION;
	server.worker_init = ra_worker_init;
	server.worker_fini = ra_worker_fini;
	server.service = &ra;
	server.curve = ra.curve;
	server.ready = ra_sandbox_ready;
	server.idle = ra_idle;
	rc = rpc_serve(&server) == 0 ? 0 : 1;
out:
	ra_key_watch_stop(&ra);
	if (ra.zmq_ctx != NULL)
		zmq_ctx_term(ra.zmq_ctx);
	ra_free(&ra);
	ra_sandbox_free();
	if (rc == 1 && signer_exit_status() == SIGNER_EXIT_NO_RESTART &&
	    service_hold_wanted())
		service_hold();
	return rc == 1 ? signer_exit_status() : rc;
}
