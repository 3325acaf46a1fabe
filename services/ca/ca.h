/*
 * scepd-ca: holds the CA key, applies the issuance policy itself (whatever
 * the RA decided, it is the last line of defence), signs, and keeps the
 * ledger of issued certificates in LMDB. Issuance is idempotent by
 * transactionID: a retried transaction gets the certificate it already got.
 */
#ifndef SCEPD_CA_H
#define SCEPD_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "plugin.h"
#include "rpc.h"
#include "store.h"
#include "sandbox.h"
#include "signer_load.h"

#define CA_SERIAL_LEN 16 /* 127 random bits (issue.c: the top one clear) */
#define CA_SERIAL_HEX (2 * CA_SERIAL_LEN + 1) /* upper-case hex, with NUL */
/* Any certificate's serial (RFC 5280: at most 20 octets), as a key of the
 * revocations: one the ledger does not hold, signed before scepd. */
#define CA_SERIAL_HEX_ANY (2 * 20 + 1)
#define CA_TXID_MAX 255 /* bytes, without the NUL */
#define CA_TBS_HASH_LEN 32 /* SHA-256 */
/* A template's name and its NUL, as the journal and the ledger keep it. */
#define CA_TEMPLATE_NAME_MAX 128
/* Clock skew of devices and relying parties: a certificate is valid, and
 * a CRL current, a little before the CA made it. */
#define CA_BACKDATE_SECONDS 300
/* Larger RSA keys cost seconds of verification: refused before any, so
 * no template or MinRSABits may ask more. */
#define CA_RSA_MAX_BITS 8192

struct ca_settings {
	char *listen;
	char *certificate;
	char *previous_ca_certificate; /* CAs replaced: their certs renew */
	char *key;
	char *key_passphrase_file;
	char *previous_ca_key; /* signs the replaced CA's CRL; "": none */
	char *previous_ca_key_passphrase_file;
	char *previous_ca_signer; /* "file" (PreviousCAKey), or NAME */
	char *database;
	long database_max_mib; /* the LMDB map */
	long validity_days;
	long min_rsa_bits;
	/* NDES's template selection by the CSR's requested key usage. */
	char *signature_template;
	char *encryption_template;
	char *general_purpose_template;
	char *policies; /* issuance-policy instances, [policy.NAME] each */
	char *crl_url; /* CRL distribution point put in certificates */
	long pending_days; /* a pending request expires after these */
	long crl_validity_hours;
	long refusals_kept; /* events: the newest so many */
	char *plugin_dir;
	char *signer; /* "file" ([ca] Key), or a [signer.NAME] section */
	long sign_threads; /* 0: one per processor */
	struct rpc_curve_settings curve; /* CurveZMQ keys (rpc.h) */
	struct sandbox_settings sandbox; /* Sandbox, User */
};

/* A loaded issuance-policy plugin (policy.c). */
struct ca;
struct pool; /* pool.h */
struct ca_policy {
	char *name;
	const struct scepd_issuance_policy *p;
	void *state;
	void *dl;
	struct scepd_plugin_host host;
	const struct ca *ca;
	MDB_txn *txn; /* the signing transaction, during check */
};

/* A rule of a template's SAN policy: a GeneralName type and a pattern. */
enum ca_san_type {
	CA_SAN_DNS,
	CA_SAN_EMAIL,
	CA_SAN_URI,
	CA_SAN_IP,
	CA_SAN_UPN,
};
struct ca_san_rule {
	enum ca_san_type type;
	/* fnmatch(3), case-insensitive, except URIs: case-sensitive, and
	 * with "://" the authority apart (template.c template_uri_match) */
	char *pattern;
};

/* [template.NAME]: what a certificate issued under it looks like. */
struct ca_template_settings {
	long validity_days; /* 0: [ca] ValidityDays */
	char *key_usage; /* "digitalSignature,keyEncipherment" */
	char *extended_key_usage; /* names or OIDs, comma separated */
	char *key_types; /* "RSA EC" */
	long min_rsa_bits;
	char *ec_curves; /* "P-256 P-384" */
	char *subject; /* "request", or a fixed DN taking the CN from it */
	char *allowed_sans; /* "DNS:*.example.com email:*@example.com" */
	int approval_required;
	long renewal_window; /* percent of the lifetime, at its end */
	int renewal_new_key;
	int renew_once; /* a certificate renewed once is not renewed again */
};
struct ca_template {
	char *name;
	struct ca_template_settings s;
	int allow_rsa, allow_ec;
	/* KeyUsage names more than keyEncipherment, which an EC key cannot
	 * do (RFC 5480): an EC certificate has some usage left. */
	int ec_usage_left;
	int curves[4]; /* NIDs, 0-terminated */
	X509_NAME *fixed_subject; /* NULL: the request's subject */
	struct ca_san_rule *sans;
	size_t nsans;
	/* Its certificates serve TLS servers (serverAuth, no EKU, or
	 * anyExtendedKeyUsage), mail (emailProtection, ...): the subject's
	 * host-name CN and emailAddress are then held to AllowedSANs. */
	int serves_tls, serves_mail;
};

/*
 * A key that signs CRLs: the CA's own, and with [ca] PreviousCAKey the
 * key of the CA it replaced, whose certificates relying parties check
 * against a CRL that CA signed (crl.c). Each CRL is kept in meta under
 * its own names.
 */
struct ca_crl_signer {
	X509 *cert; /* NULL: none (no PreviousCAKey) */
	EVP_PKEY *key;
	X509_EXTENSION *akid;
	time_t not_after; /* no CRL is signed past it */
	unsigned char cert_sha256[32];
	const char *crl_name, *made_name; /* its keys in meta */
	const char *whose; /* in log lines: "the CA's", "the previous CA's" */
	const char *setting; /* its key's: "Key", "PreviousCASigner", ... */
};

/* The service: read-only after start-up except through LMDB. */
struct ca {
	struct ca_settings settings;
	X509 *cert;
	STACK_OF(X509) * previous_cas; /* PreviousCACertificate; may be empty */
	EVP_PKEY *key;
	time_t not_before, not_after; /* of the CA certificate */
	unsigned char cert_sha256[32]; /* which CA certificate signed a CRL */
	MDB_env *env;
	struct store_map ledger_map; /* released after each issuance */
	MDB_dbi certs; /* serial (hex) -> ledger record */
	MDB_dbi txids; /* transactionID -> serial (hex) */
	MDB_dbi subjects; /* subject line -> serial (hex), duplicates */
	MDB_dbi events; /* time-ordered refusals, JSON */
	MDB_dbi revoked; /* serial (hex) -> revocation, JSON */
	/* "crl" -> DER, "crl_number" -> int64; "crl_previous": the replaced
	 * CA's CRL (PreviousCAKey) */
	MDB_dbi meta;
	MDB_dbi pending; /* transactionID -> pending request, JSON */
	time_t pending_purged_at; /* ca_pending_purge's last run */
	MDB_dbi journal; /* transactionID -> about to be signed (journal.c) */
	MDB_dbi renewed; /* serial (hex) -> the serial that renewed it */
	MDB_dbi compromised; /* key hash -> serial revoked for keyCompromise */
	/* The signature AlgorithmIdentifier X509_sign writes with our key,
	 * learnt at start: put in a certificate before its TBSCertificate is
	 * hashed for the journal, so that the hash is of what gets signed. */
	X509_ALGOR *sig_alg;
	X509_EXTENSION *crl_dp; /* from [ca] CRLURL; NULL: none */
	X509_EXTENSION *akid; /* of certificates and CRLs (issue.c) */
	/* The CA's own (borrowing the fields above) and the replaced CA's
	 * (its key and akid its own, its certificate in previous_cas). */
	struct ca_crl_signer crl_own, crl_previous;
	/* PreviousCAKey (or PreviousCASigner) set but not loaded: every CA
	 * in PreviousCACertificate has expired; their last CRL stands. */
	int previous_ended;
#ifdef SCEPD_TEST_HOOKS
	/* SCEPD_TEST_CA_CRASH=POINT:N: _exit at POINT (journal, signed,
	 * recorded) of this process's Nth issuance (sign.c). */
	char crash_point[16];
	long crash_at, issuances;
	/* SCEPD_TEST_CA_CERT_ALONE=1: answer SignRequest as a CA before
	 * SignReply.certs_only did (the RA then wraps the certificate). */
	int cert_alone;
	/* SCEPD_TEST_CA_HOLD=N:MS: once, after the batch of the Nth
	 * issuance, sleep MS ms before answering: what is sent meanwhile
	 * arrives as one batch. N:MS:G: instead, the next batch gathers G
	 * SignRequests, waiting at most MS ms from the first
	 * (rpc_test_gather_arm): a batch however slowly its requests come. */
	long hold_after, hold_ms, hold_gather;
	int held;
	/* SCEPD_TEST_CA_CHECK_MS=N: each SignRequest's checks take N ms
	 * more (a slow policy plugin). */
	long check_ms;
	/* SCEPD_TEST_CA_PENDING_AGE=S: pending requests are S seconds older
	 * than their records say (expiry and purge without waiting days). */
	long pending_age;
	/* SCEPD_TEST_CA_PENDING_PUT_FAILS=1: a pending request's record is
	 * not written (MDB_MAP_FULL), as when a large one finds no room. */
	int pending_put_fails;
#endif
	void *zmq_ctx;
	struct ca_template *templates;
	size_t ntemplates;
	const struct ca_template *by_usage[3]; /* enum ca_usage */
	struct config_pairs *config; /* [policy.*] */
	struct ca_policy *policies;
	size_t npolicies;
	struct signer signer; /* p NULL: the file signer */
	struct signer previous_signer; /* PreviousCASigner's; p NULL: none */
	/* The threads that sign a batch with the serving one ([ca]
	 * SignThreads); no helper at all when it signs alone. */
	struct pool *signers;
	struct sandbox *sandbox;
	struct sandbox_policy sandbox_policy;
	char sandbox_dirs[1024]; /* the policy's paths */
};

/* What the CSR's keyUsage asks for, as NDES reads it (Apple's 1, 4, 5). */
enum ca_usage {
	CA_USAGE_SIGNATURE = 0, /* digitalSignature alone */
	CA_USAGE_ENCRYPTION = 1, /* keyEncipherment alone */
	CA_USAGE_GENERAL = 2, /* both, or neither, or no keyUsage */
};

/* A refusal: the failInfo for the device's CertRep and a reason. */
struct ca_refusal {
	int fail_info; /* Scep__V1__FailInfo */
	char why[256];
};

/* csr.c: parses the PKCS#10 bytes, weighs the key's type and size (before
 * any signature math) and verifies the self-signature (`as_sent`: the
 * bytes the device signed; 0: a pending request as the CA kept it,
 * verified on arrival, without its challengePassword); the template is
 * picked from the CSR's key usage (*tpl is set as soon as it is known,
 * for the ledger, even when the request is refused). */
int
ca_csr_read(const struct ca *ca, const uint8_t *der, size_t len, int as_sent,
    X509_REQ **out, const struct ca_template **tpl, struct ca_refusal *refusal);
/* The template's policy on a request ca_csr_read gave: its key, subject,
 * subjectAltNames. */
int ca_csr_rules(const struct ca *ca, const struct ca_template *tpl,
    X509_REQ *req, struct ca_refusal *refusal);
/* Both. */
int
ca_csr_check(const struct ca *ca, const uint8_t *der, size_t len, int as_sent,
    X509_REQ **out, const struct ca_template **tpl, struct ca_refusal *refusal);
/* The request's subjectAltNames decoded: 0 (*names NULL when it asks
 * none), or -1 when the extension cannot be read whole or comes twice
 * (ca_csr_check refuses that). */
int ca_csr_san_names(X509_REQ *req, GENERAL_NAMES **names);
/* Whether every name of `a` is among `b`'s (GENERAL_NAME_cmp; NULL: none). */
int ca_names_within(const GENERAL_NAMES *a, const GENERAL_NAMES *b);
/* The requested SANs as "DNS:x" strings (malloc'ed array and strings,
 * NULL-terminated); NULL with none. */
char **ca_csr_sans(X509_REQ *req);
void ca_strings_free(char **v);

/* renewal.c: a renewal request signed with `old` (DER): 0 allowed, with
 * its serial in old_serial; -1 refused (refusal filled). */
int ca_renewal_check(const struct ca *ca, MDB_txn *txn, const uint8_t *old,
    size_t old_len, X509_REQ *csr, const struct ca_template *tpl, time_t now,
    struct ca_refusal *refusal, char old_serial[CA_SERIAL_HEX]);
/* A serial as typed (any case, leading zeros or not, hex pairs separated
 * by ':' or ' ' or not at all) as the ledger's key: 32 upper-case hex
 * digits. 0, or -1 when it cannot be one. */
int ca_serial_normalize(const char *in, char out[CA_SERIAL_HEX]);
/* The same for any serial of up to 20 octets (40 digits): 32 digits, or
 * as many as it has above that. */
int ca_serial_normalize_any(const char *in, char out[CA_SERIAL_HEX_ANY]);
/* 1 revoked, 0 not, -1 database error. */
int ca_ledger_is_revoked(const struct ca *ca, MDB_txn *txn, const char *serial);
/* SHA-256 of what makes `key` one key: an RSA modulus, an EC curve and x
 * (however a request encodes them). 0; 1 for another kind of key; -1 on
 * an error. */
int ca_key_hash(const EVP_PKEY *key, unsigned char out[32]);
/* 1 when `key` is that of a certificate revoked for keyCompromise (its
 * serial into `serial`), 0 when not, -1 on error (logged). */
int ca_ledger_compromised(const struct ca *ca, MDB_txn *txn,
    const EVP_PKEY *key, char serial[CA_SERIAL_HEX]);
/* sign.c: 1 when the CSR's key may not be certified (a certificate of
 * it was revoked for keyCompromise; `refusal` says so), 0 when it may, -1
 * on error (logged). */
int ca_key_refused(const struct ca *ca, MDB_txn *txn, X509_REQ *csr,
    struct ca_refusal *refusal);
/* Notes the key of ledger certificate `serial` as compromised (none of
 * a serial the ledger does not hold). An MDB_* code. */
int ca_ledger_compromised_put(
    const struct ca *ca, MDB_txn *txn, const char *serial);
/*
 * The `subjects` index key of a subject line: the line as name matching
 * sees it (letter case and runs of white space in values aside), or,
 * past what an LMDB key holds, "sha256:" and that form's hash in hex (a
 * subject line always holds '=', so no line is taken for a hash). The
 * key's length.
 */
#define CA_SUBJECT_KEY_MAX 500
size_t ca_subject_key(
    const char *subject, size_t len, char out[CA_SUBJECT_KEY_MAX + 1]);

/* policy.c */
int ca_policies_load(struct ca *ca, const char *config_file);
void ca_policies_free(struct ca *ca);
/* 0: every policy allows; -1 with the refusal (and *unavailable when a
 * policy could not decide: our outage, not the device's fault). */
int ca_policies_check(const struct ca *ca, MDB_txn *txn,
    const struct scepd_issuance_request *req, struct ca_refusal *refusal,
    int *unavailable);
/* The same for a checked CSR under `tpl` (the subject it will have, its
 * SANs), on the request path and at an operator's approval; the policies
 * are told the caller's `deadline_ms` (host->time_left_ms). */
int ca_policies_check_request(const struct ca *ca, MDB_txn *txn, X509_REQ *csr,
    const uint8_t *csr_der, size_t csr_len, const struct ca_template *tpl,
    char **sans, const char *txid, const char *requester, time_t now,
    int64_t deadline_ms, struct ca_refusal *refusal, int *unavailable,
    struct rpc_arena *arena);

/* template.c */
int ca_templates_load(struct ca *ca, const char *config_file);
void ca_templates_free(struct ca *ca);
enum ca_usage ca_csr_usage(X509_REQ *req);
/* 1 when `value` of `type` is allowed by the template, else 0. */
int ca_template_san_allowed(
    const struct ca_template *t, enum ca_san_type type, const char *value);
const char *ca_san_type_name(enum ca_san_type type);

/* issue.c */
/* 128 random bits, positive and non-zero; hex is upper case, 32 digits. */
int ca_serial_new(unsigned char serial[CA_SERIAL_LEN], char hex[CA_SERIAL_HEX]);
/* The issued subject: the template's fixed DN then the request's CN(s),
 * or the request's subject as sent. The caller frees it. */
X509_NAME *ca_issue_subject(const struct ca_template *t, X509_REQ *req);
/* `name` written anew, in DER (a multi-valued RDN's parts sorted as DER
 * sorts a SET): not the bytes OpenSSL read it from. NULL: no memory. */
X509_NAME *ca_issue_subject_der(const X509_NAME *name);
/* The certificate for `req`, everything but the signature; its signature
 * algorithm is ca->sig_alg. NULL and *why on failure. */
X509 *ca_issue_build(const struct ca *ca, const struct ca_template *tpl,
    X509_REQ *req, const unsigned char serial[CA_SERIAL_LEN], time_t now,
    const char **why);
/* SHA-256 of its TBSCertificate as it would be signed now. 0 or -1. */
int ca_issue_tbs_hash(X509 *cert, unsigned char out[CA_TBS_HASH_LEN]);
/* The AlgorithmIdentifier our key's signatures get (one signature of a
 * copy of the CA certificate, at start). NULL on failure. */
X509_ALGOR *ca_issue_learn_sig_alg(const struct ca *ca);
/* [ca] CRLURL made into ca->crl_dp once, at start (every certificate gets
 * a copy): 0 for none or a URL OpenSSL makes a CRL distribution point of
 * as written, else -1 with the reason in err. */
int ca_crl_dp_load(struct ca *ca, char *err, size_t errlen);
/* 1 when certificate `serial` is revoked for good, 0 when it is not
 * revoked or on hold (certificateHold, which scepctl unrevoke releases),
 * -1 when the ledger cannot be read. */
int
ca_crl_revoked_for_good(const struct ca *ca, MDB_txn *txn, const char *serial);
/* The authorityKeyIdentifier for what ca_cert signs (ca->akid), or NULL. */
X509_EXTENSION *ca_akid_ext(X509 *ca_cert);
/* Microseconds one signature with the CA's key takes, or -1; after
 * ca_issue_learn_sig_alg. */
long ca_issue_signature_us(const struct ca *ca);

/* journal.c */
struct ca_journal_entry {
	unsigned char serial[CA_SERIAL_LEN];
	int64_t built_at; /* the `now` the certificate was built with */
	unsigned char tbs_sha256[CA_TBS_HASH_LEN];
	char template_name[CA_TEMPLATE_NAME_MAX];
};
/* 0 found, 1 none, -1 error (logged). */
int ca_journal_get(const struct ca *ca, MDB_txn *txn, const char *txid,
    struct ca_journal_entry *out);
/* MDB_* codes. */
int ca_journal_put(const struct ca *ca, MDB_txn *txn, const char *txid,
    const struct ca_journal_entry *in);
int ca_journal_del(const struct ca *ca, MDB_txn *txn, const char *txid);
/* Commits *txn with the journal in it and begins the next one in *txn
 * (NULL when the commit or the begin failed). An MDB_* code. */
int ca_journal_commit(const struct ca *ca, MDB_txn **txn);
/* Records left by a crash between journal and ledger; -1 on error. */
long ca_journal_count(const struct ca *ca);
/* Whether record `j` is past any retry of its transaction at `now`: older
 * than PendingDays and CA_PENDING_KEPT_DAYS, the longest a transaction's
 * pending record is kept. Its certificate was never delivered: built now
 * it would be backdated that much, so a new one is issued instead. */
int ca_journal_stale(
    const struct ca *ca, const struct ca_journal_entry *j, time_t now);
/* Deletes the stale record `j` of `txid` in txn and logs it. MDB_* code. */
int ca_journal_abandon(const struct ca *ca, MDB_txn *txn, const char *txid,
    const struct ca_journal_entry *j);
/* Deletes every stale record in txn, logging each, and counts them in
 * *purged. An MDB_* code. */
int
ca_journal_purge(const struct ca *ca, MDB_txn *txn, time_t now, long *purged);

/* ledger.c */
struct ca_ledger_entry {
	const uint8_t *der; /* the certificate */
	size_t der_len;
	const char *subject; /* for operators: one line */
	const char *txid;
	const char *client_addr; /* "" when unknown */
	int64_t issued_at;
	int64_t not_after;
	const char *template_name;
	char *const *sans; /* NULL-terminated, or NULL */
	const char *renewal_of; /* the serial renewed, or NULL */
};
/* A stored record, pointing into LMDB's memory (valid with its txn). */
struct ca_ledger_view {
	const uint8_t *der;
	size_t der_len;
	const char *subject, *txid, *addr, *meta; /* not NUL-terminated */
	size_t subject_len, txid_len, addr_len, meta_len;
	int64_t issued_at, not_after;
};
/* 0, or -1 for a malformed record. */
int ca_ledger_view(const void *data, size_t size, struct ca_ledger_view *v);
/* The template a record's certificate was issued under, into `out`; -1
 * when the record does not say (version 1) or it does not fit. */
int
ca_ledger_template(const struct ca_ledger_view *v, char *out, size_t outlen);
int ca_ledger_open(struct ca *ca, char *err, size_t errlen);
void ca_ledger_close(struct ca *ca);
/*
 * The certificate issued to `txid`: 0 with *der and *der_len pointing into
 * the transaction's memory (valid until it ends) and `serial` filled;
 * 1 when there is none; -1 on a database error (logged).
 */
int ca_ledger_find_txid(const struct ca *ca, MDB_txn *txn, const char *txid,
    const uint8_t **der, size_t *der_len, char serial[CA_SERIAL_HEX]);
/*
 * 0 when the certificate `der` was issued by a CA this one replaced and
 * [ca] PreviousCACertificate does not list, else 1 (unreadable ones too:
 * the callers' other checks refuse those).
 */
int ca_ledger_vouched(const struct ca *ca, const uint8_t *der, size_t len);
/* 1 when certificate `serial` was renewed (the last serial that renewed
 * it in `by`), 0 when not (or before this table was kept), -1 on error
 * (logged). */
int ca_ledger_renewed_by(const struct ca *ca, MDB_txn *txn, const char *serial,
    char by[CA_SERIAL_HEX]);
/* 1 when `serial` is in the ledger, 0 when not, -1 on error (logged). */
int
ca_ledger_serial_used(const struct ca *ca, MDB_txn *txn, const char *serial);
/* Records the certificate under `serial` and `txid`. An MDB_* code. */
int ca_ledger_put(const struct ca *ca, MDB_txn *txn, const char *serial,
    const struct ca_ledger_entry *entry);
/* Text a device or an operator gave as a JSON string, bytes that are not
 * UTF-8 as \xHH (jansson gives NULL for them). */
json_t *ca_ledger_text(const char *s);
/* What scepctl reject's reason may be: it goes to the device after
 * "rejected by the CA operator: " in a failInfoText of 255 bytes. */
#define CA_REJECT_REASON_MAX 200
#define CA_REJECT_REASON_MAX_TEXT "200"
/* Records a refusal (its own write transaction); logged on failure. */
void ca_ledger_refusal(const struct ca *ca, const char *txid,
    const char *client_addr, const char *subject, char *const *sans,
    const char *template_name, const char *why);

/* query.c: the ledger for scepctl list and show. */
void ca_handle_ledger_list(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
void ca_handle_ledger_show(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* crl.c */
/* ca->crl_own from the CA's certificate, key and akid (set before). */
void ca_crl_signer_own(struct ca *ca);
/* ca->crl_previous for `cert`, whose key ca->crl_previous.key holds
 * (checked by the caller; `setting` names it in logs): 0, or -1 when it
 * cannot be read. */
int ca_crl_signer_previous(struct ca *ca, X509 *cert, const char *setting);
void ca_handle_revoke(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
void ca_handle_revoke_import(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
void ca_handle_get_crl(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* pending.c: requests waiting for an operator (ApprovalRequired). */
/* Days the record of an expired or rejected request is kept (a poll is
 * told why), and a journal record past PendingDays (journal.c). */
#define CA_PENDING_KEPT_DAYS 7
int ca_pending_put(const struct ca *ca, MDB_txn *txn,
    const Scep__V1__SignRequest *in, const struct ca_template *tpl, time_t now);
/* What a request pending (or rejected) under a transactionID holds
 * against a new request under it (ca_pending_held). */
enum ca_pending_held {
	CA_PENDING_NONE, /* none is held, or one expired (PendingDays) */
	CA_PENDING_SAME, /* the same CSR, for the same template, waiting */
	CA_PENDING_OTHER_CSR, /* another CSR or template, same key, waiting */
	CA_PENDING_OTHER_KEY, /* another key's (or an unreadable CSR) */
};
/*
 * Whether `csr` asks for what certificate `serial` (`old`) holds: its
 * subject as asked or as template `tpl` gives it now (as X.509 name
 * matching compares names), the same subjectAltNames, and the template
 * the ledger recorded.
 * 1, 0, or -1 when memory or the ledger failed.
 */
int
ca_retry_asks_the_same(const struct ca *ca, MDB_txn *txn, const char *serial,
    X509 *old, X509_REQ *csr, const struct ca_template *tpl);
/* The refusal of a request under a transactionID whose certificate it
 * does not ask for (printf format: its serial). */
#define CA_RETRY_OTHER_REQUEST \
	"certificate %s of this transactionID (its key's) holds another " \
	"subject, subjectAltNames or template than this request asks: " \
	"enroll with a new key"
/* The same of a pending request. */
#define CA_PENDING_OTHER_REQUEST \
	"transactionID already pending approval with another CSR or " \
	"template: send the same request or poll (CertPoll)"
/* What is held under `txid` against the CSR `csr` (DER `der`, `len`)
 * for template `tpl` at `now`; -1 when the pending table cannot be
 * read. */
int ca_pending_held(const struct ca *ca, MDB_txn *txn, const char *txid,
    X509_REQ *csr, const uint8_t *der, size_t len,
    const struct ca_template *tpl, time_t now);
/* 1 when an operator rejected `txid` (why filled), else 0. */
int ca_pending_rejected(
    const struct ca *ca, MDB_txn *txn, const char *txid, char *why, size_t len);
/* Deletes the records of requests expired (PendingDays) or rejected more
 * than CA_PENDING_KEPT_DAYS ago, with their journal records, and stale
 * journal records (ca_journal_stale), at most once an hour (`force`:
 * now): the table would otherwise keep every request no operator decided
 * on. */
void ca_pending_purge(struct ca *ca, int force);
/* The record of a pending (or rejected, or expired) request, for
 * `scepctl list --pending`; NULL if unreadable. */
Scep__V1__LedgerEntry *ca_pending_entry(const struct ca *ca, const MDB_val *key,
    const MDB_val *val, struct rpc_arena *arena);
/* sign.c: whether the certificate a transactionID holds may not be
 * handed to it again (revoked, expired, its key compromised through
 * another certificate, or with `replaced_too` of a CA this one
 * replaced): 1 with `why` (failInfoText), 0, or -1 (the ledger). */
int ca_held_cert_refused(const struct ca *ca, MDB_txn *txn, const char *serial,
    X509 *cert, int replaced_too, char *why, size_t why_size);
void ca_handle_poll(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
void ca_handle_decide(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);

/* sandbox.c: the CA's policy. ca_sandbox_enter() once everything is
 * open, before ZeroMQ; ca_sandbox_ready() is rpc_server_config.ready. */
int ca_sandbox_enter(struct ca *ca);
int ca_sandbox_ready(void *service);
/* routes.c: the service's route table (each handler takes the struct
 * ca), ended by a zero body. */
extern const struct rpc_route ca_routes[];
#ifdef SCEPD_TEST_HOOKS
void ca_handle_sandbox_probe(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
#endif

/* sign.c */
/* The subject as one line, in the certificate's order (arena). */
char *ca_subject_line(const X509_NAME *name, struct rpc_arena *arena);
/* Builds a certificate for `csr` under `tpl`, journals it (committing
 * *txn and beginning another in it), signs it and records it in *txn
 * (not committed). A transaction journalled before gets the journalled
 * certificate. `entry` brings txid, client, SANs and renewal_of and gets
 * the rest; *der is OPENSSL_malloc'ed, and so is *issued (the signed
 * certificate) when `issued` is not NULL. 0, an MDB_* code, or -1 with
 * the reason in entry->subject. *txn may be NULL on return. */
int ca_issue_record(const struct ca *ca, MDB_txn **txn, X509_REQ *csr,
    const struct ca_template *tpl, time_t now, struct ca_ledger_entry *entry,
    char hex[CA_SERIAL_HEX], unsigned char **der, int *der_len, X509 **issued,
    struct rpc_arena *arena);
void ca_handle_sign(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena);
/* SignRequests that arrived together: their certificates share the
 * journal's and the ledger's commits (rpc_server_config.batch). */
size_t
ca_handle_sign_batch(void *worker, struct rpc_batch_item *items, size_t n);

#endif
