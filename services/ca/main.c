/*
 * scepd-ca start-up: arguments, configuration, the CA certificate and key
 * (checked to belong together and to be a CA), the ledger, then serve. One
 * worker: LMDB has one writer at a time anyway; a batch's signatures are
 * shared with the signing threads ([ca] SignThreads).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <zmq.h>

#include "ca.h"
#include "config.h"
#include "log.h"
#include "service.h"
#include "pki.h"
#include "pool.h"

#define S(field) offsetof(struct ca_settings, field)
static const struct config_key ca_config[] = {
    {"Listen", CONFIG_ENDPOINT, 0, 0, NULL, S(listen),
        "ZeroMQ endpoint to serve on"},
    {"Certificate", CONFIG_PATH, 0, 0, NULL, S(certificate),
        "the CA certificate (PEM or DER)"},
    {"Key", CONFIG_PATH, 0, 0, "", S(key),
        "the CA private key (PEM); not read with Signer = NAME"},
    {"PreviousCACertificate", CONFIG_PATH, 0, 0, "", S(previous_ca_certificate),
        "CAs this one replaced (PEM): their certificates in the ledger may "
        "renew"},
    {"PreviousCAKey", CONFIG_PATH, 0, 0, "", S(previous_ca_key),
        "key of a CA in PreviousCACertificate (PEM, mode 0600): it signs "
        "that CA's CRL too"},
    {"PreviousCAKeyPassphraseFile", CONFIG_PATH, 0, 0, "",
        S(previous_ca_key_passphrase_file),
        "passphrase of an encrypted PreviousCAKey (first line), or empty"},
    {"PreviousCASigner", CONFIG_STRING, 0, 0, "file", S(previous_ca_signer),
        "file (PreviousCAKey), or a [signer.NAME] section holding that key "
        "in a token"},
    {"Signer", CONFIG_STRING, 0, 0, "file", S(signer),
        "file ([ca] Key), or a [signer.NAME] section (an HSM's plugin)"},
    {"SignThreads", CONFIG_INT, 0, 16, "0", S(sign_threads),
        "threads that sign a batch of certificates; 0: one per processor"},
    {"KeyPassphraseFile", CONFIG_PATH, 0, 0, "", S(key_passphrase_file),
        "passphrase of an encrypted key (first line), or empty"},
    {"Database", CONFIG_PATH, 0, 0, NULL, S(database),
        "LMDB directory of issued certificates (created mode 0700)"},
    {"DatabaseMaxMiB", CONFIG_INT, 1, 16L << 20, "16384", S(database_max_mib),
        "most the ledger may hold, in MiB (address space, not memory)"},
    {"ValidityDays", CONFIG_INT, 1, 36500, "365", S(validity_days),
        "days an issued certificate is valid"},
    {"SignatureTemplate", CONFIG_STRING, 0, 0, "IPSECIntermediateOffline",
        S(signature_template),
        "template for CSRs asking digitalSignature only (NDES)"},
    {"EncryptionTemplate", CONFIG_STRING, 0, 0, "IPSECIntermediateOffline",
        S(encryption_template),
        "template for CSRs asking keyEncipherment only (NDES)"},
    {"GeneralPurposeTemplate", CONFIG_STRING, 0, 0, "IPSECIntermediateOffline",
        S(general_purpose_template),
        "template for CSRs asking both, or neither (NDES)"},
    {"PendingDays", CONFIG_INT, 1, 365, "7", S(pending_days),
        "days a request waits for an operator's approval"},
    {"CRLURL", CONFIG_STRING, 0, 0, "", S(crl_url),
        "CRL distribution point in issued certificates (http://.../crl)"},
    {"CRLValidityHours", CONFIG_INT, 1, 8760, "168", S(crl_validity_hours),
        "nextUpdate of a CRL (it is re-issued at half of it)"},
    {"RefusalsKept", CONFIG_INT, 10, 100000000, "100000", S(refusals_kept),
        "refused requests the ledger keeps (scepctl list --refused); the "
        "oldest go"},
    {"Policies", CONFIG_STRING, 0, 0, "", S(policies),
        "issuance-policy plugins, each a [policy.NAME] section"},
    {"PluginDir", CONFIG_PATH, 0, 0, "", S(plugin_dir),
        "where Module = NAME finds scepd-NAME.so"},
    {"MinRSABits", CONFIG_INT, 2048, CA_RSA_MAX_BITS, "2048", S(min_rsa_bits),
        "smallest RSA key accepted in a request (templates never take less "
        "than 2048)"},
    {"CurveSecretKeyFile", CONFIG_PATH, 0, 0, "", S(curve.secret_key_file),
        "CurveZMQ secret key of the CA (scepctl keygen), mode 0600"},
    {"CurvePublicKeyFile", CONFIG_PATH, 0, 0, "", S(curve.public_key_file),
        "its public key, checked against the secret one"},
    {"CurveClients", CONFIG_STRING, 0, 0, "", S(curve.clients),
        "NAME:PUBKEYFILE of each client admitted (ra, scepctl)"},
    {"CallerUsers", CONFIG_STRING, 0, 0, "", S(curve.caller_users),
        "NAME:USER: over ipc:// a caller declaring NAME (ra) must run as USER "
        "or root"},
    {"AllowInsecureTransport", CONFIG_BOOL, 0, 1, "0", S(curve.allow_insecure),
        "1: tcp:// without CurveZMQ (unsafe)"},
    SANDBOX_CONFIG_KEYS(struct ca_settings, sandbox),
    CONFIG_END,
};
#undef S

/* The handlers share the service itself: there is one worker. */
static void *
ca_worker_init(void *service)
{
	return service;
}

/* Whether the CA signs with `key` (certificates and CRLs, SHA-256). */
static int
ca_key_type_ok(const EVP_PKEY *key)
{
	int type = EVP_PKEY_get_base_id(key);

	return type == EVP_PKEY_RSA || type == EVP_PKEY_RSA_PSS ||
	    type == EVP_PKEY_EC;
}

/* A CA key file and its passphrase file (none: ""), each for this
 * process alone; problems go to stderr naming [ca] `setting` or its
 * PassphraseFile. */
static EVP_PKEY *
ca_key_file_load(const char *path, const char *passphrase_file,
    const char *setting, const char *passphrase_setting)
{
	char err[512];
	EVP_PKEY *key;

	if (pki_check_private_file(path, err, sizeof(err)) != 0) {
		fprintf(stderr, "scepd-ca: [ca] %s: %s\n", setting, err);
		return NULL;
	}
	if (passphrase_file[0] != '\0' &&
	    pki_check_private_file(passphrase_file, err, sizeof(err)) != 0) {
		fprintf(
		    stderr, "scepd-ca: [ca] %s: %s\n", passphrase_setting, err);
		return NULL;
	}
	if ((key = pki_load_key(path, passphrase_file, err, sizeof(err))) ==
	    NULL)
		fprintf(stderr, "scepd-ca: [ca] %s: %s\n", setting, err);
	return key;
}

/*
 * The CA certificate and key: readable, a pair, a CA that may sign
 * certificates, within its validity, a key we sign with SHA-256.
 * Problems go to stderr naming the file.
 */
static int
ca_load_keys(struct ca *ca, const char *config_file)
{
	const struct ca_settings *s = &ca->settings;
	char err[512], where[160];
	const char *key_name = s->key;
	time_t now = time(NULL);
	int file = strcmp(s->signer, "file") == 0;

	if (!file) {
		/* The key is in a token: [ca] Key is not read at all. */
		if ((ca->cert = pki_load_cert(
		         s->certificate, err, sizeof(err))) == NULL) {
			fprintf(
			    stderr, "scepd-ca: [ca] Certificate: %s\n", err);
			return -1;
		}
		if (signer_load(&ca->signer, s->signer, config_file,
		        s->plugin_dir, "scepd-ca", "[ca] Signer", SIGNER_SIGNS,
		        &ca->key) != 0)
			return -1;
		snprintf(where, sizeof(where), "[signer.%s]", s->signer);
		key_name = where;
		if (pki_check_pair(ca->cert, ca->key, s->certificate, where,
		        err, sizeof(err)) != 0) {
			fprintf(stderr, "scepd-ca: %s: %s\n", where, err);
			return -1;
		}
		if (pki_check_key_works(
		        ca->cert, ca->key, 0, where, err, sizeof(err)) != 0) {
			fprintf(stderr, "scepd-ca: %s\n", err);
			return -1;
		}
		goto checked;
	}
	if (s->key[0] == '\0') {
		fprintf(stderr,
		    "scepd-ca: [ca] Key: is required (or Signer = NAME of a "
		    "[signer.NAME] section holding the key in a token)\n");
		return -1;
	}
	/* The key and its passphrase are for this process alone. */
	if ((ca->key = ca_key_file_load(s->key, s->key_passphrase_file, "Key",
	         "KeyPassphraseFile")) == NULL)
		return -1;
	if ((ca->cert = pki_load_cert(s->certificate, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "scepd-ca: [ca] Certificate: %s\n", err);
		return -1;
	}
	if (pki_check_pair(ca->cert, ca->key, s->certificate, s->key, err,
	        sizeof(err)) != 0) {
		fprintf(stderr, "scepd-ca: [ca] Key: %s\n", err);
		return -1;
	}
checked:
	if ((X509_get_extension_flags(ca->cert) & EXFLAG_CA) == 0) {
		fprintf(stderr,
		    "scepd-ca: [ca] Certificate: %s is not a CA certificate "
		    "(it lacks basicConstraints CA:TRUE)\n",
		    s->certificate);
		return -1;
	}
	if (pki_check_key_usage(ca->cert, X509v3_KU_KEY_CERT_SIGN,
	        s->certificate, "issuing certificates", err,
	        sizeof(err)) != 0) {
		fprintf(stderr, "scepd-ca: [ca] Certificate: %s\n", err);
		return -1;
	}
	if (!ca_key_type_ok(ca->key)) {
		fprintf(stderr,
		    "scepd-ca: [ca] Key: %s: only RSA and EC CA keys are "
		    "supported (signatures use SHA-256)\n",
		    key_name);
		return -1;
	}
	if (pki_time(X509_get0_notBefore(ca->cert), &ca->not_before) != 0 ||
	    pki_time(X509_get0_notAfter(ca->cert), &ca->not_after) != 0) {
		fprintf(stderr,
		    "scepd-ca: [ca] Certificate: %s: unreadable validity\n",
		    s->certificate);
		return -1;
	}
	if (ca->not_after <= now) {
		fprintf(stderr, "scepd-ca: [ca] Certificate: %s has expired\n",
		    s->certificate);
		return -1;
	}
	if (X509_digest(ca->cert, EVP_sha256(), ca->cert_sha256, NULL) != 1) {
		fprintf(stderr, "scepd-ca: [ca] Certificate: %s: no digest\n",
		    s->certificate);
		return -1;
	}
	if ((ca->previous_cas = pki_load_previous_cas(
	         s->previous_ca_certificate, "[ca] PreviousCACertificate",
	         ca->cert, err, sizeof(err))) == NULL) {
		fprintf(stderr, "scepd-ca: %s\n", err);
		return -1;
	}
	if (sk_X509_num(ca->previous_cas) > 0)
		log_warn("PreviousCACertificate: certificates of %d CA%s this "
		         "one replaced renew when in the ledger (%s)",
		    sk_X509_num(ca->previous_cas),
		    sk_X509_num(ca->previous_cas) == 1 ? "" : "s",
		    s->previous_ca_certificate);
	if (ca->not_after - now < (time_t)s->validity_days * 86400)
		log_warn("%s ends before ValidityDays = %ld: certificates "
		         "will end with it",
		    s->certificate, s->validity_days);
	ERR_clear_error();
	return 0;
}

/*
 * [ca] PreviousCAKey: the key of a CA this one replaced, one of
 * PreviousCACertificate's, kept to sign that CA's CRL (relying parties
 * check its certificates against a CRL of their issuer: without it a
 * revocation of one after the switch reaches none of them). Problems go
 * to stderr naming the setting.
 */
static int
ca_load_previous_key(struct ca *ca, const char *config_file)
{
	const struct ca_settings *s = &ca->settings;
	struct ca_crl_signer *prev = &ca->crl_previous;
	char err[512], where[160];
	const char *key_name = s->previous_ca_key;
	X509 *cert = NULL;
	time_t now = time(NULL);
	int file = strcmp(s->previous_ca_signer, "file") == 0;
	const char *setting = file ? "PreviousCAKey" : "PreviousCASigner";

	if (file && s->previous_ca_key[0] == '\0')
		return 0;
	if (!file &&
	    (s->previous_ca_key[0] != '\0' ||
	        s->previous_ca_key_passphrase_file[0] != '\0')) {
		fprintf(stderr,
		    "scepd-ca: [ca] PreviousCAKey: set with PreviousCASigner "
		    "= %s, whose token holds that key: leave it empty\n",
		    s->previous_ca_signer);
		return -1;
	}
	if (sk_X509_num(ca->previous_cas) == 0) {
		fprintf(stderr,
		    "scepd-ca: [ca] %s: set, but no PreviousCACertificate "
		    "names the CA it is the key of\n",
		    setting);
		return -1;
	}
	/* Every CA replaced has expired, and with it every certificate it
	 * issued: the key would sign nothing more. Not loaded, so that a
	 * token that lost it stops nothing; their last CRL stands (crl.c). */
	ca->previous_ended = 1;
	for (int i = 0; i < sk_X509_num(ca->previous_cas); i++) {
		time_t end;

		if (pki_time(
		        X509_get0_notAfter(sk_X509_value(ca->previous_cas, i)),
		        &end) != 0 ||
		    end > now)
			ca->previous_ended = 0;
	}
	if (ca->previous_ended) {
		log_warn("%s: not loaded: every CA in PreviousCACertificate "
		         "has expired, and the certificates they issued with "
		         "it; the last CRL of the one it was the key of is "
		         "served as it stands (the setting may go once that "
		         "CRL is published elsewhere)",
		    setting);
		return 0;
	}
	if (!file) {
		/* The key is in a token: PreviousCAKey is not read. */
		if (signer_load(&ca->previous_signer, s->previous_ca_signer,
		        config_file, s->plugin_dir, "scepd-ca",
		        "[ca] PreviousCASigner", SIGNER_SIGNS, &prev->key) != 0)
			return -1;
		snprintf(
		    where, sizeof(where), "[signer.%s]", s->previous_ca_signer);
		key_name = where;
	} else if ((prev->key = ca_key_file_load(s->previous_ca_key,
	                s->previous_ca_key_passphrase_file, "PreviousCAKey",
	                "PreviousCAKeyPassphraseFile")) == NULL)
		return -1;
	if (!ca_key_type_ok(prev->key)) {
		fprintf(stderr,
		    "scepd-ca: [ca] %s: %s: only RSA and EC keys are "
		    "supported (CRLs are signed with SHA-256)\n",
		    setting, key_name);
		return -1;
	}
	/* Of certificates of this key (the CA certified again with it),
	 * the one that ends last: an expired one would sign no CRL. */
	for (int i = 0; i < sk_X509_num(ca->previous_cas); i++) {
		X509 *c = sk_X509_value(ca->previous_cas, i);

		if (X509_check_private_key(c, prev->key) == 1 &&
		    (cert == NULL ||
		        ASN1_TIME_compare(X509_get0_notAfter(c),
		            X509_get0_notAfter(cert)) > 0))
			cert = c;
	}
	ERR_clear_error();
	if (cert == NULL) {
		fprintf(stderr,
		    "scepd-ca: [ca] %s: %s is the key of none of the "
		    "certificates in PreviousCACertificate (%s)\n",
		    setting, key_name, s->previous_ca_certificate);
		return -1;
	}
	/* A token's key: what the token says of it matched; does it sign? */
	if (!file &&
	    pki_check_key_works(
	        cert, prev->key, 0, key_name, err, sizeof(err)) != 0) {
		fprintf(stderr, "scepd-ca: [ca] PreviousCASigner: %s\n", err);
		return -1;
	}
	/* A CRL its certificate may not sign, relying parties refuse. */
	if (pki_check_key_usage(cert, X509v3_KU_CRL_SIGN,
	        s->previous_ca_certificate, "signing CRLs", err,
	        sizeof(err)) != 0) {
		fprintf(stderr, "scepd-ca: [ca] %s: %s\n", setting, err);
		return -1;
	}
	if (ca_crl_signer_previous(ca, cert, setting) != 0) {
		fprintf(stderr,
		    "scepd-ca: [ca] %s: its certificate in %s cannot be "
		    "read\n",
		    setting, s->previous_ca_certificate);
		return -1;
	}
	if (prev->not_after <= now)
		log_warn("%s: the certificate it is the key of has expired: "
		         "no CRL is signed with it, its last stands",
		    setting);
	else
		log_info("%s: the previous CA's CRL is signed with it, listing "
		         "this CA's revocations, until that CA's certificate "
		         "ends (%s)",
		    setting, key_name);
	ERR_clear_error();
	return 0;
}

#ifdef SCEPD_TEST_HOOKS
/* SCEPD_TEST_CA_CRASH=POINT:N (ca.h): test builds only. */
static void
ca_test_hooks_read(struct ca *ca)
{
	const char *v = getenv("SCEPD_TEST_CA_CRASH");
	const char *colon = v != NULL ? strchr(v, ':') : NULL;
	const char *alone = getenv("SCEPD_TEST_CA_CERT_ALONE");
	const char *hold = getenv("SCEPD_TEST_CA_HOLD");
	const char *age = getenv("SCEPD_TEST_CA_PENDING_AGE");
	const char *put_fails = getenv("SCEPD_TEST_CA_PENDING_PUT_FAILS");

	if (alone != NULL && strcmp(alone, "1") == 0) {
		ca->cert_alone = 1;
		log_warn("test hook: certificates are sent without their "
		         "SignedData (SignReply.certs_only)");
	}
	if (hold != NULL && strchr(hold, ':') != NULL) {
		const char *ms = strchr(hold, ':') + 1;

		ca->hold_after = atol(hold);
		ca->hold_ms = atol(ms);
		if (strchr(ms, ':') != NULL)
			ca->hold_gather = atol(strchr(ms, ':') + 1);
		log_warn("test hook: the CA will hold %ld ms after the batch "
		         "of issuance %ld%s",
		    ca->hold_ms, ca->hold_after,
		    ca->hold_gather > 0 ? ", gathering the next batch" : "");
	}
	if (getenv("SCEPD_TEST_CA_CHECK_MS") != NULL) {
		ca->check_ms = atol(getenv("SCEPD_TEST_CA_CHECK_MS"));
		log_warn("test hook: each SignRequest's checks take %ld ms "
		         "more",
		    ca->check_ms);
	}
	if (age != NULL) {
		ca->pending_age = atol(age);
		log_warn("test hook: pending requests are %ld s older than "
		         "their records say",
		    ca->pending_age);
	}
	if (put_fails != NULL && strcmp(put_fails, "1") == 0) {
		ca->pending_put_fails = 1;
		log_warn("test hook: pending requests' records are not "
		         "written (MDB_MAP_FULL)");
	}
	if (colon == NULL || (size_t)(colon - v) >= sizeof(ca->crash_point))
		return;
	memcpy(ca->crash_point, v, (size_t)(colon - v));
	ca->crash_point[colon - v] = '\0';
	ca->crash_at = atol(colon + 1);
	log_warn("test hook: the CA will crash after '%s' of issuance %ld",
	    ca->crash_point, ca->crash_at);
}
#endif

/* The most threads SignThreads = 0 starts: batches hold at most
 * RPC_BATCH_MAX requests, and the RA sends a few at a time. */
#define CA_SIGN_THREADS_AUTO_MAX 4
/*
 * SignThreads = 0 shares a batch only when a signature takes this long.
 * Handing one to another thread costs a wake-up: with an RSA 2048 CA
 * (0.25 ms a signature here) two threads gave 6 % fewer enrollments/s
 * and 0.13 ms more CA CPU per certificate with every service on one
 * 2-core host; with the RSA 3072 demo CA (1.6 ms) the CA alone signed
 * 56 % more certificates/s (tests/bench/RESULTS.md, session 11). Half a
 * millisecond lies well between the two, whatever else the machine does
 * while the CA times its key.
 */
#define CA_SIGN_THREADS_MIN_US 500

/*
 * How many threads sign a batch: as told, or one per processor for a
 * key slow enough to be worth it; one when the key is a signer plugin's
 * (an HSM's sessions are the plugin's business). Before the sandbox.
 */
static int
ca_sign_threads(const struct ca *ca)
{
	long n = ca->settings.sign_threads, us, cpus;

	if (ca->signer.p != NULL) {
		if (n > 1)
			log_warn("[ca] SignThreads = %ld not applied: the key "
			         "is [signer.%s]'s, which signs on one thread",
			    n, ca->signer.name);
		return 1;
	}
	if (n > 0)
		return (int)n;
	if ((cpus = service_processors()) < 2) {
		log_info("[ca] SignThreads = 0: one thread signs, on the one "
		         "processor this process may use");
		return 1;
	}
	if (cpus > CA_SIGN_THREADS_AUTO_MAX)
		cpus = CA_SIGN_THREADS_AUTO_MAX;
	if ((us = ca_issue_signature_us(ca)) < 0) {
		log_openssl(LOG_LEVEL_WARN, NULL,
		    "[ca] SignThreads = 0: one thread signs, a signature "
		    "could not be timed");
		return 1;
	}
	if (us < CA_SIGN_THREADS_MIN_US) {
		log_info("[ca] SignThreads = 0: one thread signs, a signature "
		         "takes %ld us (less than %d is not worth another "
		         "thread's wake-up)",
		    us, CA_SIGN_THREADS_MIN_US);
		return 1;
	}
	log_info("[ca] SignThreads = 0: %ld threads sign, one per processor "
	         "(a signature takes %ld us)",
	    cpus, us);
	return (int)cpus;
}

int
main(int argc, char **argv)
{
	struct ca ca;
	struct rpc_server_config server;
	struct rpc_curve *curve = NULL;
	const char *config_file = NULL;
	char err[512];
	long journalled;
	int loaded = 0, rc = 1, sign_threads;

	memset(&ca, 0, sizeof(ca));
	if ((config_file = service_config_arg(argc, argv, "scepd-ca", &rc)) ==
	    NULL)
		return rc;
	if (service_no_dumps("scepd-ca") != 0)
		return 1;
	rc = 1;
	log_init("scepd-ca", LOG_LEVEL_INFO);
	if (config_load(config_file, "ca", ca_config, &ca.settings) != 0)
		return 1;
	loaded = 1;
	if ((ca.sandbox = sandbox_new(
	         &ca.settings.sandbox, config_file, "ca", "scepd-ca")) == NULL)
		goto out;
	/* Between hosts: CurveZMQ, admitting the RA's and scepctl's keys. */
	if ((curve = rpc_curve_load(&ca.settings.curve, ca.settings.listen,
	         config_file, "ca")) == NULL)
		goto out;
	if (ca_crl_dp_load(&ca, err, sizeof(err)) != 0) {
		fprintf(stderr, "scepd-ca: [ca] CRLURL: %s\n", err);
		goto out;
	}
	if (ca_load_keys(&ca, config_file) != 0)
		goto out;
	if ((ca.akid = ca_akid_ext(ca.cert)) == NULL) {
		log_openssl(LOG_LEVEL_ERROR, NULL,
		    "no authorityKeyIdentifier from the CA certificate");
		goto out;
	}
	ca_crl_signer_own(&ca);
	if (ca_load_previous_key(&ca, config_file) != 0)
		goto out;
	if (ca_templates_load(&ca, config_file) != 0)
		goto out;
	if (ca_policies_load(&ca, config_file) != 0)
		goto out;
	if (ca_ledger_open(&ca, err, sizeof(err)) != 0) {
		fprintf(stderr, "scepd-ca: [ca] Database: %s\n", err);
		goto out;
	}
	if ((ca.sig_alg = ca_issue_learn_sig_alg(&ca)) == NULL) {
		fprintf(stderr, "scepd-ca: [ca] Key: cannot sign with it\n");
		goto out;
	}
#ifdef SCEPD_TEST_HOOKS
	ca_test_hooks_read(&ca);
#endif
	/* Before the count: a stale journal record is no longer waited for. */
	ca_pending_purge(&ca, 1);
	if ((journalled = ca_journal_count(&ca)) > 0)
		log_warn("%ld certificate(s) journalled but not in the ledger: "
		         "the CA stopped between the two; a device retrying "
		         "its transaction gets the journalled certificate",
		    journalled);
	sign_threads = ca_sign_threads(&ca);
	/* Everything is open: give up the rest before the first thread. */
	if (ca_sandbox_enter(&ca) != 0)
		goto out;
	if ((ca.signers = pool_start(sign_threads - 1, "scepd-ca-sign")) ==
	    NULL) {
		fprintf(stderr,
		    "scepd-ca: cannot start %d signing threads: %s\n",
		    sign_threads - 1, strerror(errno));
		goto out;
	}
	if ((ca.zmq_ctx = zmq_ctx_new()) == NULL) {
		fprintf(stderr, "scepd-ca: cannot start ZeroMQ\n");
		goto out;
	}
	log_info("CA %s, ValidityDays = %ld, MinRSABits = %ld, signing on %d "
	         "thread(s)",
	    ca.settings.certificate, ca.settings.validity_days,
	    ca.settings.min_rsa_bits, pool_threads(ca.signers));
	memset(&server, 0, sizeof(server));
	server.zmq_ctx = ca.zmq_ctx;
	server.endpoint = ca.settings.listen;
	server.routes = ca_routes;
	server.workers = 1;
	server.worker_init = ca_worker_init;
	server.service = &ca;
	server.max_message = RPC_MAX_CA_REQUEST;
	server.curve = curve;
	server.ready = ca_sandbox_ready;
	server.batch_body = SCEP__V1__REQUEST__BODY_SIGN;
	server.batch = ca_handle_sign_batch;
	rc = rpc_serve(&server) == 0 ? 0 : 1;
out:
	if (ca.zmq_ctx != NULL)
		zmq_ctx_term(ca.zmq_ctx);
	pool_stop(ca.signers);
	rpc_curve_free(curve);
	ca_ledger_close(&ca);
	ca_templates_free(&ca);
	ca_policies_free(&ca);
	X509_ALGOR_free(ca.sig_alg);
	X509_EXTENSION_free(ca.crl_dp);
	X509_EXTENSION_free(ca.akid);
	X509_EXTENSION_free(ca.crl_previous.akid);
	EVP_PKEY_free(ca.crl_previous.key);
	X509_free(ca.cert);
	sk_X509_pop_free(ca.previous_cas, X509_free);
	EVP_PKEY_free(ca.key);
	signer_free(&ca.signer); /* after the CA's reference to its key */
	signer_free(&ca.previous_signer);
	sandbox_free(ca.sandbox);
	if (loaded)
		config_free(ca_config, &ca.settings);
	if (rc == 1 && signer_exit_status() == SIGNER_EXIT_NO_RESTART &&
	    service_hold_wanted())
		service_hold();
	return rc == 1 ? signer_exit_status() : rc;
}
