/*
 * The plugin ABI. A plugin is a shared object exporting one versioned table
 * of function pointers (SQLite's and nginx's way): the host reads the ABI
 * version first and refuses a table it does not know, before calling any
 * of its functions (the object's own constructors run when it is loaded).
 * Built-in plugins (`otp`, `static`) fill the same table.
 *
 * How it grows: a table, or a meaning, that changes is a new version,
 * which hosts of another refuse. The host structure only grows at its end
 * and says its size: a plugin built against a later header asks
 * SCEPD_PLUGIN_HOST_HAS before it uses a field an older host may lack.
 *
 * This header is the whole contract: a plugin includes it and nothing else
 * of scepd. Strings the host passes are valid for the duration of a call;
 * the host structure itself lives as long as the instance (until destroy),
 * so a plugin may keep it for logging.
 */
#ifndef SCEPD_PLUGIN_H
#define SCEPD_PLUGIN_H

#include <stddef.h>

#define SCEPD_PLUGIN_ABI_VERSION 2 /* 2: the host structure's size */

/* The symbol a challenge-validator shared object exports. */
#define SCEPD_CHALLENGE_VALIDATOR_SYMBOL "scepd_challenge_validator_v1"
/*
 * Optional, beside it: `const int scepd_challenge_validator_v1_concurrent =
 * 1;` says the plugin's instances share nothing (no globals; each its own
 * connection): the challenge service then starts one instance per worker
 * (init once each) and calls their `check` at once, and `consume` on
 * whichever instance (not necessarily the one whose `check` passed).
 * Without it: one instance, `check` and `consume` one at a time.
 */
#define SCEPD_CHALLENGE_VALIDATOR_CONCURRENT_SYMBOL \
	"scepd_challenge_validator_v1_concurrent"
/* The symbol an issuance-policy shared object exports (the CA loads it). */
#define SCEPD_ISSUANCE_POLICY_SYMBOL "scepd_issuance_policy_v1"

enum scepd_plugin_log_level {
	SCEPD_PLUGIN_LOG_DEBUG = 0,
	SCEPD_PLUGIN_LOG_INFO = 1,
	SCEPD_PLUGIN_LOG_WARN = 2,
	SCEPD_PLUGIN_LOG_ERROR = 3,
};

/* A certificate the CA issued, as an issuance policy sees it. */
struct scepd_issued_certificate {
	const char *serial; /* upper-case hex */
	long long issued_at, not_after; /* seconds since the epoch */
};

/* What the host offers a plugin. */
struct scepd_plugin_host {
	unsigned abi_version; /* SCEPD_PLUGIN_ABI_VERSION of the host */
	size_t size; /* sizeof(struct scepd_plugin_host) as the host knows it */
	const char *instance; /* the name it is configured under */
	/* A key of the plugin's configuration section, or NULL if unset.
	 * Only keys listed in the plugin's `keys` can be set at all. */
	const char *(*config_get)(
	    const struct scepd_plugin_host *host, const char *key);
	/* One log line, tagged with the instance name. */
	void (*log)(const struct scepd_plugin_host *host, int level,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
	void *opaque; /* the host's */
	/* The CA only (NULL elsewhere): calls `each` for every certificate
	 * issued with this subject line, as X.509 name matching sees it
	 * (letter case and runs of white space in values aside), and not
	 * revoked; stops
	 * early when `each` returns non-zero. Returns how many were seen,
	 * or -1 on error. */
	int (*issued_for_subject)(const struct scepd_plugin_host *host,
	    const char *subject,
	    int (*each)(void *ctx, const struct scepd_issued_certificate *c),
	    void *ctx);
	/* During a `check` (a validator's, a policy's): milliseconds until
	 * the caller stops waiting for its verdict (the device is then
	 * answered 503, and a verdict later is of no use); 0 or less: the
	 * time is up. LLONG_MAX when no deadline is known (`consume`). A
	 * plugin that asks a remote service bounds its wait by it. A host
	 * older than the field lacks it: SCEPD_PLUGIN_HOST_HAS. */
	long long (*time_left_ms)(const struct scepd_plugin_host *host);
	/* New fields go here, after the others. */
};

/* Whether the host's structure holds `field` (a host built before the
 * field was added does not). */
#define SCEPD_PLUGIN_HOST_HAS(host, field) \
	((host)->size >= \
	    offsetof(struct scepd_plugin_host, field) + sizeof((host)->field))

/* A PKCSReq's challenge, and what a validator may weigh with it. */
struct scepd_challenge_request {
	const char *challenge; /* "" when the request has none */
	const char *transaction_id;
	const char *path; /* the SCEP path it came in on, as configured */
	const unsigned char *csr_der;
	size_t csr_der_len;
	const char *csr_pem;
	const char *subject; /* RFC 4514, the request's RDN order, UTF-8 */
	const char *const *sans; /* "DNS:x", "email:x", ...; NULL-ended */
	const char *requester; /* client address as the frontend saw it */
};

enum scepd_verdict {
	SCEPD_VERDICT_ALLOW = 0,
	SCEPD_VERDICT_REFUSE = 1, /* FAILURE badRequest, `why` as text */
	SCEPD_VERDICT_UNAVAILABLE =
	    2, /* our outage: HTTP 503, device retries */
};

struct scepd_challenge_validator {
	unsigned abi_version; /* SCEPD_PLUGIN_ABI_VERSION; read first */
	const char *name;
	/* Configuration keys the plugin reads (NULL-ended); any other key in
	 * its section is a configuration error reported by the host. */
	const char *const *keys;
	/* 0, or -1 with a reason in err (a configuration error at start). */
	int (*init)(const struct scepd_plugin_host *host, void **state,
	    char *err, size_t errlen);
	/* Decides on a request. On refusal or outage, `why` (NUL-terminated,
	 * at most whylen bytes) says why, in words for the device's
	 * failInfoText and the log. Called from one thread at a time per
	 * instance (see ..._CONCURRENT_SYMBOL). */
	enum scepd_verdict (*check)(void *state,
	    const struct scepd_challenge_request *req, char *why,
	    size_t whylen);
	/* The certificate paid for by this request was issued (NULL: nothing
	 * to do). `req` carries the challenge, transaction_id, path and
	 * requester "-"; no CSR (csr_der and csr_pem NULL), subject "" and
	 * sans empty (a NULL-ended array of none). */
	void (*consume)(void *state, const struct scepd_challenge_request *req);
	void (*destroy)(void *state);
};

/* What the CA is about to issue, after its own checks passed. */
struct scepd_issuance_request {
	const char *subject; /* one line, in the certificate's RDN order */
	const char *const *sans; /* "DNS:x", ...; NULL-ended */
	const char *template_name;
	const char *transaction_id;
	const char *requester; /* client address as the frontend saw it */
	/* The request as the device sent it; at an operator's approval
	 * (ApprovalRequired) as the CA kept it: without its
	 * challengePassword, so its self-signature (verified when it came)
	 * no longer verifies. */
	const unsigned char *csr_der;
	size_t csr_der_len;
	long long now; /* seconds since the epoch */
};

/* A site's own rule before the CA signs (duplicate subjects, inventory
 * lookups). REFUSE reaches the device as FAILURE badRequest with `why`;
 * UNAVAILABLE as HTTP 503. Called from one thread at a time. */
struct scepd_issuance_policy {
	unsigned abi_version; /* SCEPD_PLUGIN_ABI_VERSION; read first */
	const char *name;
	const char *const *keys;
	int (*init)(const struct scepd_plugin_host *host, void **state,
	    char *err, size_t errlen);
	enum scepd_verdict (*check)(void *state,
	    const struct scepd_issuance_request *req, char *why, size_t whylen);
	void (*destroy)(void *state);
};

/*
 * A signer (a [signer.NAME] section, named by [ca] Signer, [ra]
 * SigningSigner or [ra] EncryptionSigner): where a private key lives.
 * `init` opens the key store (a PKCS#11 token: session and login now,
 * before the sandbox), `key` then hands the host an OpenSSL EVP_PKEY whose
 * public part is its certificate's and whose private operations happen in
 * the store. The key stays the plugin's: valid until `destroy`, never
 * freed by the host (which may take its own reference with
 * EVP_PKEY_up_ref). The CA signs from one thread at a time; the RA's
 * workers sign and decrypt from several at once. The built-in `file`
 * signer (key files) is the default and has no table. (The symbol keeps
 * its first name: the ABI is unchanged.)
 */
#define SCEPD_CA_SIGNER_SYMBOL "scepd_ca_signer_v1"

struct evp_pkey_st; /* OpenSSL's EVP_PKEY */

struct scepd_ca_signer {
	unsigned abi_version; /* SCEPD_PLUGIN_ABI_VERSION; read first */
	const char *name;
	const char *const *keys;
	int (*init)(const struct scepd_plugin_host *host, void **state,
	    char *err, size_t errlen);
	struct evp_pkey_st *(*key)(void *state);
	void (*destroy)(void *state);
};

#endif
