/*
 * The SCEP (RFC 8894) message codec on OpenSSL 3's PKCS7 API: the only
 * code that parses a pkiMessage. Server side: parse and verify a request,
 * open its envelope, read its CSR or other messageData, build a CertRep and
 * the GetCACert and GetNextCACert answers. Client side (tests and the
 * iOS-like client): build a request, read a CertRep and a GetNextCACert
 * answer.
 *
 * Parsers take untrusted bytes as (const uint8_t *, size_t), accept DER and
 * BER (indefinite lengths, constructed OCTET STRINGs), never exit, and on
 * failure return a negative scep_error plus the failInfo to answer with:
 * SCEP_FAILINFO_NONE means "not authentic enough for a CertRep" (HTTP 400).
 */
#ifndef SCEPD_SCEP_H
#define SCEPD_SCEP_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

enum scep_message_type {
	SCEP_MSG_CERTREP = 3,
	SCEP_MSG_RENEWALREQ = 17,
	SCEP_MSG_PKCSREQ = 19,
	SCEP_MSG_CERTPOLL = 20, /* GetCertInitial */
	SCEP_MSG_GETCERT = 21,
	SCEP_MSG_GETCRL = 22,
};

enum scep_pki_status {
	SCEP_STATUS_SUCCESS = 0,
	SCEP_STATUS_FAILURE = 2,
	SCEP_STATUS_PENDING = 3,
};

enum scep_failinfo {
	SCEP_FAILINFO_NONE = -1,
	SCEP_FAILINFO_BAD_ALG = 0,
	SCEP_FAILINFO_BAD_MESSAGE_CHECK = 1,
	SCEP_FAILINFO_BAD_REQUEST = 2,
	SCEP_FAILINFO_BAD_TIME = 3,
	SCEP_FAILINFO_BAD_CERT_ID = 4,
};

enum scep_error {
	SCEP_OK = 0,
	SCEP_E_NOMEM = -1,
	SCEP_E_PARSE = -2, /* not DER/BER of the expected structure */
	SCEP_E_CONTENT = -3, /* wrong content type or missing part */
	SCEP_E_SIGNATURE = -4, /* signature does not verify */
	SCEP_E_ATTRIBUTE = -5, /* a required signed attribute is missing/bad */
	SCEP_E_ALGORITHM = -6, /* algorithm refused by policy */
	SCEP_E_DECRYPT = -7, /* envelope cannot be opened by us */
	SCEP_E_CSR = -8, /* CSR unreadable or its signature is bad */
	SCEP_E_BUILD = -9, /* building a message failed */
	SCEP_E_KEY = -10, /* key refused before any signature math */
};
const char *scep_strerror(int err);
const char *scep_failinfo_name(int failinfo); /* "badAlg", ... */
const char *scep_message_type_name(int type); /* "PKCSReq", ... or "unknown" */

/* Registers SCEP's attribute OIDs with OpenSSL and loads its default
 * provider. Once, before any thread. */
int scep_init(void);

/*
 * Loads OpenSSL's legacy provider, where single DES lives (after
 * scep_init, before any thread): a server that allows DES (AllowDES = 1)
 * and clients that send or read it. Not loaded otherwise: with it, every
 * key parsed (certificates, CSRs) costs half as much again in OpenSSL 3.0's
 * decoder set-up. SCEP_E_ALGORITHM when the provider is not there.
 */
int scep_load_single_des(void);

/* Which algorithms a server accepts in requests. */
struct scep_alg_policy {
	int allow_des; /* single DES (RFC 8894 forbids it; legacy switch) */
	int allow_des3;
	int allow_sha1;
};
/* The defaults: AES always, 3DES and SHA-1 allowed, DES and MD5 refused. */
extern const struct scep_alg_policy scep_default_policy;

/*
 * The keys whose signatures a server checks, decided on the key alone
 * before any signature math (a signer certificate's, a CSR's): RSA of at
 * most SCEP_RSA_MAX_BITS with a public exponent of at most
 * SCEP_RSA_MAX_EXP_BITS, EC on a named curve (never explicit parameters),
 * Ed25519, Ed448. Minimum sizes are the CA's policy (MinRSABits).
 */
#define SCEP_RSA_MAX_BITS 8192
#define SCEP_RSA_MAX_EXP_BITS 64

/* --- server side ------------------------------------------------------ */

/* A verified pkiMessage (the outer SignedData). */
struct scep_request {
	int message_type; /* as sent; may be a type we do not handle */
	char *transaction_id;
	uint8_t *sender_nonce;
	size_t sender_nonce_len;
	X509 *signer; /* the certificate that signed it */
	int digest_nid; /* digest of the SignerInfo, e.g. NID_sha256 */
	uint8_t *envelope; /* pkcsPKIEnvelope, still encrypted (DER) */
	size_t envelope_len; /* 0 if the message carried no content */
};

/* Whether the CSR's own signature uses a digest the policy allows (MD5
 * never, SHA-1 only with allow_sha1): 1, or 0 with *why for the device. */
int scep_csr_digest_allowed(const X509_REQ *csr,
    const struct scep_alg_policy *policy, const char **why);
/*
 * Parses the outer SignedData, checks it has one SignerInfo whose
 * certificate is included, verifies the signature and the messageDigest,
 * and reads messageType, transactionID and senderNonce. The signer's
 * certificate is not checked against any CA here (clients sign with a
 * self-signed one). MD5 (always) and SHA-1 (unless policy allows) digests
 * are refused with SCEP_E_ALGORITHM after the signature verifies. A signer
 * key outside the limits above is refused before it is used, with
 * SCEP_E_KEY and SCEP_FAILINFO_NONE (nothing was authenticated). A signer
 * key that is not RSA is refused before its signature is checked, with
 * SCEP_E_ALGORITHM and SCEP_FAILINFO_BAD_ALG: *out is set without a
 * signer (the reply is a FAILURE to an unverified request).
 * On failure *failinfo says how to answer: SCEP_FAILINFO_NONE when the
 * message was not authentic (no CertRep possible, HTTP 400), otherwise a
 * failInfo for a signed CertRep, and then *out is still set so the caller
 * has the transactionID, nonce and signer to answer to.
 * *why is a static, human-readable reason (failInfoText / logs).
 */
int scep_request_parse(const uint8_t *der, size_t len,
    const struct scep_alg_policy *policy, struct scep_request **out,
    int *failinfo, const char **why);
void scep_request_free(struct scep_request *req);

/* What a request's envelope must hold, by messageType. */
enum scep_content_kind {
	SCEP_CONTENT_CSR, /* PKCSReq, RenewalReq */
	SCEP_CONTENT_ISSUER_SERIAL, /* GetCert, GetCRL */
	SCEP_CONTENT_ISSUER_SUBJECT, /* CertPoll (GetCertInitial) */
	SCEP_CONTENT_KINDS,
};

/* What scep_envelope_read found; the fields of its kind are set. */
struct scep_content {
	X509_REQ *csr; /* CSR: self-signature verified */
	/* CSR: the bytes it was read from, to pass on: csr's own i2d
	 * re-encodes it (its key was attached after the check). */
	uint8_t *csr_der;
	size_t csr_der_len;
	char *challenge; /* CSR: its challengePassword, NULL if none */
	X509_NAME *issuer; /* ISSUER_SERIAL, ISSUER_SUBJECT (DER) */
	X509_NAME *subject; /* ISSUER_SUBJECT */
	ASN1_INTEGER *serial; /* ISSUER_SERIAL */
};
/* Frees what it holds (the challenge wiped) and zeroes it. NULL-safe. */
void scep_content_clear(struct scep_content *c);

/* An RA encryption certificate and its key. */
struct scep_ra_key {
	X509 *cert;
	EVP_PKEY *key;
};

/*
 * The wrapped content-encryption keys an RA has unwrapped, each with the
 * content it came with (lib/wrapped_keys.c says why): a key seen before
 * with other content is refused by scep_envelope_read, as an envelope
 * that does not open is, without its content read. Shared by threads;
 * `capacity` keys (4 .. SCEP_WRAPPED_KEYS_MAX), the oldest forgotten.
 */
#define SCEP_WRAPPED_KEYS_MAX (16u << 20)
struct scep_wrapped_keys;
struct scep_wrapped_keys *scep_wrapped_keys_new(size_t capacity);
void scep_wrapped_keys_free(struct scep_wrapped_keys *w);
/* 1: `key` is new (now remembered with this content) or came with it
 * before; 0: it came with other content; -1: out of memory. The content
 * is `more` (DER, or a byte then DER) followed by `content`. */
int scep_wrapped_keys_check(struct scep_wrapped_keys *w, const uint8_t *key,
    size_t key_len, const uint8_t *content, size_t content_len,
    const uint8_t *more, size_t more_len);
/* Refusals and keys forgotten since start, and the age of the youngest
 * forgotten since the last call (-1: none). */
void scep_wrapped_keys_stats(struct scep_wrapped_keys *w, uint64_t *refused,
    uint64_t *forgotten, int64_t *youngest_forgotten_ms);

/*
 * The server's one way into a request's pkcsPKIEnvelope: decrypts it with
 * the RA's certificate and key, keys[0], or with the key of an earlier RA
 * certificate of keys[1..nkeys-1] that a RecipientInfo names (and none
 * names the RA's), and reads what `kind` says it holds. Public
 * header fields decide first and answer distinctly: not an EnvelopedData
 * (badRequest), a cipher refused by policy (badAlg: single DES unless
 * allow_des, why naming "AllowDES = 1"; 3DES unless allow_des3; anything
 * but AES/3DES/DES). After that, every failure (no RecipientInfo for
 * a key's certificate, an RSA block that does not unwrap, bad CBC padding, content
 * that is not `kind`, a CSR key outside the limits above, a CSR
 * self-signature that does not verify) gets SCEP_E_DECRYPT, badMessageCheck
 * and one text per kind, after the same steps: one RSA decryption, the
 * whole content decrypted, and one read (a CSR's with its signature check)
 * of the content or, when that fails, of a stand-in. Only then is a CSR's
 * challengePassword read (SCEP_E_CSR, badRequest, when malformed).
 * With `seen` (NULL: not asked), a wrapped key that came before with
 * other content fails the same way, after the same steps.
 * *detail (static) says for the server's log what failed; never answer it.
 * On success it is NULL, or a note for the log: the envelope named an
 * earlier certificate of keys[1..], or a certificate none of them is (an
 * earlier one of the RA's key, still in a client's hands) and opened with
 * the RA's key all the same.
 * *cipher_nid is the content-encryption algorithm (also on refusal,
 * NID_undef if unreadable). On failure *out holds nothing.
 */
int scep_envelope_read(const uint8_t *env, size_t len,
    const struct scep_ra_key *keys, size_t nkeys,
    const struct scep_alg_policy *policy, struct scep_wrapped_keys *seen,
    enum scep_content_kind kind, struct scep_content *out, int *cipher_nid,
    int *failinfo, const char **why, const char **detail);

/*
 * Decrypts a pkcsPKIEnvelope as scep_envelope_read does and returns the
 * bytes (tests, tools): every failure after the policy check gets the
 * same error and why. *plain is malloc'ed; the caller frees it.
 */
int scep_envelope_open(const uint8_t *env, size_t len, X509 *ra_cert,
    EVP_PKEY *ra_key, const struct scep_alg_policy *policy, uint8_t **plain,
    size_t *plain_len, int *cipher_nid, int *failinfo, const char **why);

/*
 * Reads a PKCS#10 request (nothing after it), checks its key against the
 * limits above, verifies its self-signature and extracts the
 * challengePassword (PrintableString, UTF8String or IA5String; *challenge is
 * NULL when absent, malloc'ed otherwise). Accepts version 0 and Apple's 2.
 * Every failure up to the signature gets SCEP_E_CSR, badMessageCheck and
 * one text that names the key limits.
 */
int scep_csr_parse(const uint8_t *der, size_t len, X509_REQ **csr,
    char **challenge, int *failinfo, const char **why);

/*
 * The messageData of the other requests, from inside the decrypted
 * envelope (RFC 8894 3.3.3, 3.3.4): IssuerAndSerialNumber for GetCert and
 * GetCRL, IssuerAndSubject for CertPoll (GetCertInitial). DER or BER; bytes
 * after the structure are refused. The names come back re-encoded as DER
 * whatever the client sent, so they can be compared and stored as bytes.
 * On success the caller frees what it gets (X509_NAME_free,
 * ASN1_INTEGER_free); on failure every output is NULL and *failinfo is
 * badRequest. Whether the names or the serial match anything we issued is
 * the caller's question (badCertId).
 */
int scep_issuer_serial_parse(const uint8_t *der, size_t len, X509_NAME **issuer,
    ASN1_INTEGER **serial, int *failinfo, const char **why);
int scep_issuer_subject_parse(const uint8_t *der, size_t len,
    X509_NAME **issuer, X509_NAME **subject, int *failinfo, const char **why);

/* What a CertRep says. */
struct scep_certrep_params {
	const char *transaction_id;
	const uint8_t *recipient_nonce; /* the request's senderNonce */
	size_t recipient_nonce_len;
	int pki_status; /* enum scep_pki_status */
	int failinfo; /* with SCEP_STATUS_FAILURE */
	const char *failinfo_text; /* id-scep-failInfoText; may be NULL */
	X509 *issued; /* with SCEP_STATUS_SUCCESS */
	STACK_OF(X509) *
	    issued_chain; /* extra certs in the reply; may be NULL */
	/* Or, instead of issued, issued_chain and crl: the degenerate
	 * SignedData already built (DER), enveloped as it is. */
	const uint8_t *certs_only;
	size_t certs_only_len;
	X509 *recipient; /* the request's signer: envelope to it */
	const EVP_CIPHER *cipher; /* envelope cipher; never single DES */
	X509 *signer; /* RA signing certificate */
	EVP_PKEY *signer_key;
	const EVP_MD *digest;
	X509_CRL *crl; /* with SUCCESS: GetCRL's answer */
};
/*
 * Builds a DER CertRep with a fresh senderNonce. *out is malloc'ed.
 * SUCCESS envelopes to `recipient` a degenerate SignedData holding `issued`
 * (then `issued_chain`) and/or `crl`; one of the two is required, unless
 * the SignedData comes ready in `certs_only`. `issued`
 * need not certify the recipient's key: GetCert's answer is any certificate
 * the CA issued, encrypted to the requester's signer. FAILURE carries
 * failInfo (and failInfoText); PENDING neither, and no envelope (like
 * FAILURE, eContent is present and empty). Inputs are borrowed.
 */
int scep_certrep_build(
    const struct scep_certrep_params *params, uint8_t **out, size_t *out_len);

/*
 * The GetCACert answer: a degenerate certs-only SignedData (DER) holding
 * `certs` in order (RA signing, RA encryption, CA). *out is malloc'ed.
 */
int
scep_certs_only_build(STACK_OF(X509) * certs, uint8_t **out, size_t *out_len);
/* A degenerate certs-only SignedData holding the CRL `der` (GetCRL's
 * answer, enveloped as it is through scep_certrep_params.certs_only);
 * *out is malloc'ed. SCEP_E_PARSE when `der` is not one CRL. */
int scep_crl_only_build(
    const uint8_t *der, size_t len, uint8_t **out, size_t *out_len);

/*
 * The GetNextCACert answer (RFC 8894 4.7.1): a SignedData signed by the
 * current CA or RA (`signer`, whose certificate is included, no SCEP
 * attributes) over a degenerate certs-only SignedData holding `next_certs`
 * in order (the next CA certificate and any next RA certificates). `md`
 * NULL means SHA-256. *out (DER) is malloc'ed.
 */
int scep_next_ca_build(STACK_OF(X509) * next_certs, X509 *signer,
    EVP_PKEY *signer_key, const EVP_MD *md, uint8_t **out, size_t *out_len);

/* The cipher and digest a reply should use for a request that used
 * `cipher_nid` and `digest_nid`: AES unless the request used 3DES or DES
 * (then 3DES); SHA-256 unless the request's digest is stronger. */
const EVP_CIPHER *scep_reply_cipher(int cipher_nid);
const EVP_MD *scep_reply_digest(int digest_nid);

/* --- client side (tests, tools) ------------------------------------------ */

struct scep_pkcsreq_params {
	int message_type; /* SCEP_MSG_PKCSREQ, ...; sent as is */
	const char *transaction_id; /* NULL: hex SHA-256 of the CSR's key */
	X509_REQ *csr; /* NULL: send `content` instead */
	X509 *signer; /* self-signed or an existing cert */
	EVP_PKEY *signer_key;
	X509 *recipient; /* RA encryption certificate */
	const EVP_CIPHER *cipher;
	const EVP_MD *digest;
	int ber_indefinite; /* stream BER as iOS does */
	const uint8_t *content; /* envelope content when csr is NULL */
	size_t content_len;
	/* Hostile variants (tests): 0 means a 16-byte senderNonce; N > 0 that
	 * many bytes; SCEP_NONCE_EMPTY a zero-length one; SCEP_NONCE_NONE
	 * none. omit_transaction_id leaves the attribute out. */
	long sender_nonce_len;
	int omit_transaction_id;
	/* A hostile test's own pkcsPKIEnvelope (DER), signed as is: then
	 * recipient, cipher and content are not used, and the CSR (if any)
	 * only names the transactionID. */
	const uint8_t *envelope;
	size_t envelope_len;
};
#define SCEP_NONCE_EMPTY (-1L)
#define SCEP_NONCE_NONE (-2L)
/*
 * Builds a request (DER, or BER with indefinite lengths). *out malloc'ed.
 * The envelope holds the CSR, or for CertPoll with a CSR the
 * IssuerAndSubject of the recipient's issuer and the CSR's subject; with
 * csr NULL it holds `content` (made by the builders below) and
 * transaction_id is required.
 */
int scep_pkcsreq_build(
    const struct scep_pkcsreq_params *params, uint8_t **out, size_t *out_len);

/*
 * DER IssuerAndSerialNumber (GetCert, GetCRL) and IssuerAndSubject
 * (CertPoll) for scep_pkcsreq_params.content. Inputs are borrowed; *out
 * is malloc'ed.
 */
int scep_issuer_serial_build(const X509_NAME *issuer,
    const ASN1_INTEGER *serial, uint8_t **out, size_t *out_len);
int scep_issuer_subject_build(const X509_NAME *issuer, const X509_NAME *subject,
    uint8_t **out, size_t *out_len);

/* A CertRep as a client reads it. */
struct scep_certrep {
	int pki_status;
	int failinfo; /* SCEP_FAILINFO_NONE if absent */
	char *failinfo_text; /* NULL if absent */
	char *transaction_id;
	uint8_t *recipient_nonce;
	size_t recipient_nonce_len;
	uint8_t *sender_nonce;
	size_t sender_nonce_len;
	int digest_nid;
	int cipher_nid; /* of the envelope; NID_undef if none */
	X509 *signer;
	STACK_OF(X509) * certs; /* decrypted content; NULL if none */
	STACK_OF(X509_CRL) * crls; /* decrypted content; NULL if none */
};
/*
 * Verifies a CertRep's signature (against `ra_signer` when not NULL, else
 * its own included certificate) and, on SUCCESS, opens the envelope with the
 * client's certificate and key: its degenerate SignedData must hold
 * certificates (PKCSReq, CertPoll, GetCert) or CRLs (GetCRL) or both.
 * Without a client key the envelope's cipher is read, nothing decrypted.
 */
int scep_certrep_parse(const uint8_t *der, size_t len, X509 *ra_signer,
    X509 *client_cert, EVP_PKEY *client_key, struct scep_certrep **out);
void scep_certrep_free(struct scep_certrep *rep);

/* Reads a certs-only SignedData (GetCACert answer). */
int
scep_certs_only_parse(const uint8_t *der, size_t len, STACK_OF(X509) * *certs);

/*
 * Verifies a GetNextCACert answer and returns the next certificates, in
 * order. `signer` is the current CA or RA certificate (from GetCACert); with
 * NULL the answer's own included certificate verifies it, which proves
 * nothing (tests only). Bytes after either SignedData, a missing or
 * certificate-less inner SignedData, or CRLs in it are refused
 * (SCEP_E_PARSE, SCEP_E_CONTENT); a signer other than `signer` gives
 * SCEP_E_CONTENT, a bad signature SCEP_E_SIGNATURE. *certs is the
 * caller's (sk_X509_pop_free), NULL on failure.
 */
int scep_next_ca_parse(
    const uint8_t *der, size_t len, X509 *signer, STACK_OF(X509) * *certs);

#endif
