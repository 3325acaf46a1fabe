/*
 * scepd-ra: opens and builds the PKCS#7 envelopes. It holds the RA signing
 * and encryption keys, never the CA key (unless the operator made the CA
 * certificate serve as RA), and reaches the CA and the challenge service
 * only through proto/ messages.
 */
#ifndef SCEPD_RA_H
#define SCEPD_RA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <openssl/x509.h>

#include "rpc.h"
#include "sandbox.h"
#include "scep.h"
#include "signer_load.h"

struct ra_settings {
	char *listen;
	char *ca_endpoint;
	char *challenge_endpoint;
	char *ca_certificate;
	char *signing_certificate;
	char *signing_key;
	char *signing_signer; /* "file" (signing_key), or [signer.NAME] */
	char *encryption_certificate;
	char *encryption_key;
	char *encryption_signer;
	/* an RA encryption pair replaced: its envelopes still open */
	char *previous_encryption_certificate;
	char *previous_encryption_key;
	char *previous_encryption_signer;
	char *plugin_dir;
	char *key_passphrase_file;
	char *next_ca_certificate; /* rollover: the next CA (and RA) certs */
	char *previous_ca_certificate; /* CAs replaced: their certs renew */
	int allow_des;
	int allow_des3;
	int allow_sha1;
	long workers;
	long rpc_timeout;
	long envelope_key_memory; /* wrapped keys remembered; 0: none */
	char *ca_server_key; /* CAServerKey: the CA's public key file(s) */
	char *challenge_server_key; /* ChallengeServerKey */
	struct rpc_curve_settings curve; /* CurveZMQ keys (rpc.h) */
	struct sandbox_settings sandbox; /* Sandbox, User */
};

/* What every worker shares, read-only after start-up. */
struct ra {
	struct ra_settings settings;
	struct scep_alg_policy policy;
	X509 *sign_cert;
	EVP_PKEY *sign_key;
	/* What opens envelopes: [0] the RA's (EncryptionCertificate), [1]
	 * when set (cert not NULL), PreviousEncryptionCertificate's pair
	 * (devices that fetched it before the key was replaced still
	 * encrypt to it). */
	struct scep_ra_key enc[2];
	/* p NULL: the key is a file. Key operations come from every worker
	 * at once: the pkcs11 plugin's engine (libp11) serializes them per
	 * token slot. */
	struct signer sign_signer, enc_signer, previous_enc_signer;
	STACK_OF(X509) * ca_chain; /* CA first */
	STACK_OF(X509) * previous_cas; /* PreviousCACertificate; may be empty */
	uint8_t *cacert_body; /* the GetCACert answer */
	size_t cacert_len;
	const char *cacert_type;
	uint8_t *ca_der; /* the CA certificate, for thumbprints */
	size_t ca_der_len;
	char *caps; /* the GetCACaps answer */
	uint8_t *next_ca_body; /* the GetNextCACert answer, or NULL */
	size_t next_ca_len;
	void *zmq_ctx;
	struct rpc_curve *curve; /* own keys, the frontends' keys admitted */
	struct rpc_link *ca_link, *challenge_link; /* how workers reach them */
	/* The one thing workers change: the CA's, and the previous CA's
	 * ([ca] PreviousCAKey) for a GetCRL naming it. */
	struct ra_crl_cache *crl_cache, *previous_crl_cache;
	/* Each envelope's wrapped key and the content it came with: one
	 * reused with other content is refused (lib/wrapped_keys.c). NULL
	 * with EnvelopeKeyMemory = 0. Shared by the workers, locked within. */
	struct scep_wrapped_keys *wrapped_keys;
	/* Whether the keys that open envelopes still decrypt, those in a
	 * token (NULL: both are files). A token gone, or its session lost,
	 * fails every envelope as bad padding would: a FAILURE
	 * badMessageCheck each device takes as final. A thread of its own
	 * (ra_key_watch_main: a token call that hangs holds nothing else)
	 * tries them a minute apart, a second after refusals came, five
	 * seconds apart while one fails; while one fails, envelopes get 503. */
	struct ra_key_watch {
		atomic_int down; /* read by workers */
		atomic_uint refusals; /* envelopes refused, by workers */
		atomic_int stop;
		pthread_t thread;
		int started;
		const struct scep_ra_key *keys[2];
		const char *signers[2]; /* [signer.NAME] of each */
		size_t nkeys;
	} * enc_watch;
	/* The serving thread's: when it looked at them, and logged. */
	time_t wrapped_keys_looked, wrapped_keys_logged;
	int wrapped_keys_look_s; /* between looks: 60, a test's less */
#ifdef SCEPD_TEST_HOOKS
	/* SCEPD_TEST_RA_CA_LATE=1: every CA answer comes as the device's
	 * deadline passes (a budget of 0 left for what follows). */
	int test_ca_late;
	/* SCEPD_TEST_RA_NO_CONSUME=1: no "used" mark is sent for an issued
	 * certificate, as when the RA stops right after the CA's answer. */
	int test_no_consume;
#endif
	/* When the certificates above end (validity.c): for /metrics and
	 * the log. Not changed after start. */
	struct ra_expiry {
		const char *label; /* the metric's */
		const char *setting;
		const char *path;
		const char *renew; /* what to do; NULL: not logged */
		time_t not_after;
	} expiry[4];
	size_t n_expiry;
	/* The serving thread's (ra_validity_watch): when it logged them
	 * last and when it looks again. */
	time_t expiry_logged, expiry_next_log;
};

/* One per worker thread: its own sockets to the CA and challenge. */
struct ra_worker {
	const struct ra *ra;
	struct rpc_client *ca;
	struct rpc_client *challenge;
};

/* validity.c: the RA's and the CA's certificates' ends of validity into
 * ra->expiry; each that has ended or ends within 30 days is logged. 0, or
 * -1 (to stderr) when one cannot be read. */
int ra_validity_check(struct ra *ra);
/* The server's idle call (`service` is the RA): logs those certificates
 * again as one enters its last 30 days or ends, and once a day while one
 * is in them or has ended: an RA may run for years without a restart. */
void ra_validity_watch(void *service);
/* `t` as "2028-12-05 06:29:36 UTC". */
void ra_date(time_t t, char *out, size_t len);

/* cacert.c: builds the GetCACert, GetCACaps and GetNextCACert answers at
 * start-up; a frontend gets all three in one reply. */
int ra_cacert_prepare(struct ra *ra);
void ra_handle_get_ca_cert(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* crl.c: the CA's CRL `der` as a SCEP GetCRL answers it (a certs-only
 * SignedData), built once for as long as the CA gives the same bytes and
 * copied into `arena`: 0, or -1. */
struct ra_crl_cache *ra_crl_cache_new(void);
void ra_crl_cache_free(struct ra_crl_cache *cache);
int ra_crl_answer(struct ra_crl_cache *cache, const uint8_t *der, size_t len,
    struct rpc_arena *arena, const uint8_t **out, size_t *out_len);

/* csrinfo.c: what a challenge validator is shown of a CSR (arena). */
char *ra_csr_subject(X509_REQ *csr, struct rpc_arena *arena);
size_t ra_csr_sans(X509_REQ *csr, char ***out, struct rpc_arena *arena);

/* metrics.c: PKIOperation outcomes, for /metrics. */
enum ra_outcome {
	RA_OUTCOME_SUCCESS,
	RA_OUTCOME_FAILURE,
	RA_OUTCOME_PENDING,
	RA_OUTCOME_UNAVAILABLE,
	RA_OUTCOME_RATE_LIMITED,
	RA_OUTCOME_UNANSWERABLE,
	RA_OUTCOME_COUNT,
};
void ra_count(enum ra_outcome outcome, int failinfo);
enum ra_legacy { RA_LEGACY_DES, RA_LEGACY_DES3, RA_LEGACY_SHA1, RA_LEGACY_N };
void ra_count_legacy(enum ra_legacy which);
void ra_handle_metrics(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* crl.c: the CA's CRL for the frontend's HTTP CRL distribution point. */
void ra_handle_get_crl(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* pkioperation.c */
void ra_handle_pki_operation(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* profile.c: SignProfile, CMS SignedData by the RA signing key. */
void ra_handle_sign_profile(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* routes.c: the service's route table (each handler takes a struct
 * ra_worker), ended by a zero body. */
extern const struct rpc_route ra_routes[];

/* sandbox.c: the RA's policy. ra_sandbox_enter() once the keys are read,
 * before ZeroMQ; ra_sandbox_ready() is rpc_server_config.ready. */
int ra_sandbox_enter(const struct ra *ra, const char *config_file);
int ra_sandbox_ready(void *service);
void ra_sandbox_free(void);

#endif
