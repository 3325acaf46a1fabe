/*
 * What the SCEP test clients share (scep_ios_client, and the benchmark's
 * scep_load): HTTP GET with libcurl, GetCACert and GetCACaps, the
 * device's self-signed signer and its CSR, and reading a request back for
 * the transactionID and senderNonce a CertRep must echo.
 *
 * Errors are printed to stderr with the words the interop tests expect.
 */
#ifndef SCEP_CLIENT_H
#define SCEP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Replies larger than this are cut off (a transport error). */
#define SCEP_CLIENT_MAX_BODY (1024 * 1024)

/* An HTTP answer. */
struct http_reply {
	uint8_t *body; /* NUL-terminated, so a text body is a string */
	size_t len;
	long code;
	char *content_type;
	char retry_after[16]; /* the Retry-After header, "" if none */
};

void http_reply_clear(struct http_reply *r);

/* libcurl's CURLOPT_WRITEFUNCTION appending to the struct http_reply
 * given as CURLOPT_WRITEDATA. */
size_t http_reply_append(char *ptr, size_t size, size_t nmemb, void *arg);

/* Where and as whom a client asks. */
struct http_client {
	const char *url; /* the SCEP URL, without a query */
	const char *user_agent; /* NULL: libcurl's default (none) */
	const char *source; /* local address to connect from, or NULL */
};

/* GET url?query. 0 when an HTTP answer came, whatever its status. */
int
http_get(const struct http_client *hc, const char *query, struct http_reply *r);

/* "a/b; charset=x" matches "a/b". */
int http_content_type_is(const char *content_type, const char *type);

/* The CA's certificates. The pointers borrow from `all`. */
struct scep_ca_certs {
	X509 *ra_enc; /* the recipient of our envelopes */
	X509 *ra_sig; /* the signer of CertReps */
	X509 *ca; /* the issuer; NULL when no certificate is a CA */
	STACK_OF(X509) * all;
};

void scep_ca_certs_clear(struct scep_ca_certs *c);

/*
 * GetCACert with `message` ca_name. One certificate alone serves as CA and
 * RA; among several, the RA certificates are picked as iOS does. With
 * `log` the answer and the names are printed there.
 */
int scep_get_ca_certs(const struct http_client *hc, const char *ca_name,
    FILE *log, struct scep_ca_certs *c);

/* GetCACaps: the body in *caps (malloc'ed). */
int scep_get_ca_caps(
    const struct http_client *hc, const char *ca_name, char **caps);

/* 1 when the GetCACaps body has `cap` alone on a line. */
int scep_has_cap(const char *caps, const char *cap);

/* "what: /O=../CN=.." on f. */
void scep_print_name(FILE *f, const char *what, X509 *x);

/* A self-signed certificate of `key` named CN=cn, valid for a year, as
 * a device signs its first request. */
X509 *scep_self_signed(EVP_PKEY *key, const char *cn, const EVP_MD *md);

/*
 * A PKCS#10 request for `subject`, with a challengePassword (none when
 * NULL; "" as an empty UTF8String), Apple's key usage (1 signing, 4
 * encryption, anything else both) and a subjectAltName in OpenSSL's
 * syntax (none when NULL), signed with `key`.
 */
X509_REQ *scep_make_csr(const X509_NAME *subject, const char *challenge,
    int key_usage, const char *san, EVP_PKEY *key, const EVP_MD *md);

/*
 * Reads one's own request back for the transactionID (*txid, malloc'ed)
 * and senderNonce (*nonce, malloc'ed, NULL when the request has none on
 * purpose), which a CertRep must echo.
 */
int scep_own_attributes(const uint8_t *msg, size_t len, char **txid,
    uint8_t **nonce, size_t *nonce_len);

/*
 * Keys a server must refuse before any math, made without the cost of
 * real ones: an RSA public key whose modulus is `bits` random bits (top
 * bit set) and whose exponent is 65537, or `e_bits` random bits when
 * e_bits > 0; an EC P-256 key with explicit curve parameters. NULL on
 * failure.
 */
EVP_PKEY *scep_fake_rsa_public(int bits, int e_bits);
EVP_PKEY *scep_explicit_ec_key(void);

/* CLOCK_MONOTONIC in milliseconds. */
double scep_now_ms(void);

/* qsort's comparison of doubles, ascending. */
int scep_cmp_double(const void *a, const void *b);

/*
 * A client of a service's RPC endpoint, as a peer declaring `origin`
 * would be (the tools that talk to the CA or the RA directly): plain
 * over ipc, or CurveZMQ with `key_file` (its secret key) to a server
 * whose public key is in `server_key` ("" for none). `tool` names the
 * program in errors. 0, or -1 with the reason on stderr;
 * scep_rpc_close frees what was made either way.
 */
struct rpc_client;
struct scep_rpc {
	void *ctx;
	struct rpc_curve *curve;
	struct rpc_link *link;
	struct rpc_client *client;
};
int scep_rpc_open(struct scep_rpc *r, const char *endpoint, const char *origin,
    const char *key_file, const char *server_key, const char *tool);
void scep_rpc_close(struct scep_rpc *r);

#endif
