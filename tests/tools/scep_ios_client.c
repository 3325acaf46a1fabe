/*
 * scep_ios_client: enrolls exactly as iOS's SCEP payload does, so the
 * interop tests can play an iPad against scepd (see the NDES blog post in
 * shared/seed: "Settings/1.0 CFNetwork/467.12 Darwin/10.3.1", a query over
 * 2,700 characters, subject "O=Fabrikam,OU=IT,CN=Robs IPad").
 *
 *   GET ?operation=GetCACert&message=<CA name>   RA + CA (certs-only PKCS#7)
 *   GET ?operation=GetCACaps&message=<CA name>
 *   GET ?operation=PKIOperation&message=<base64> even when POSTPKIOperation
 *       is advertised; BER with indefinite lengths; base64 broken every 76
 *       characters with %0A (after the last line too), '+' and '/' left
 *       as they are, '=' as %3D.
 * Cipher AES-128-CBC if the caps say AES, else 3DES; digest SHA-512, else
 * SHA-256, else SHA-1. Signer: a self-signed certificate whose CN is an
 * upper-case random UUID. The CSR subject keeps the RDNs in the order given.
 *
 * Exit status: 0 SUCCESS (certificate written to --out), 2 FAILURE,
 * 3 PENDING, 1 any other error (HTTP status, bad reply, usage).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki.h"
#include "scep.h"
#include "scep_client.h"

#define USER_AGENT "Settings/1.0 CFNetwork/467.12 Darwin/10.3.1"
#define MIN_QUERY_LEN 2700
#define B64_LINE 76

enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_FAILURE_STATUS = 2,
	EXIT_PENDING = 3,
};

struct options {
	const char *url;
	const char *challenge;
	const char *subject;
	const char *out;
	const char *ca_name;
	int keysize;
	int force_plus;
	const char *key_file; /* reuse this key (a retry), or save a new one */
	/* Hostile variants for the bad-input tests; NULL/0 = as iOS does. */
	const char *cipher_name; /* envelope cipher instead of the caps' */
	const char *digest_name; /* pkiMessage digest instead of the caps' */
	const char *recipient_file; /* envelope to this cert, not the RA's */
	int signer_mismatch; /* sign with a key other than the CSR's */
	int signer_key_usage; /* the signer has keyUsage, no keyCertSign */
	const char *signer_type; /* "ec" or "ed25519": a signer not RSA */
	int key_usage; /* Apple's Key Usage: 1 sign, 4 encrypt, 5 both */
	const char *issuer_serial; /* GetCert/GetCRL: of this certificate */
	const char *renew_cert; /* sign with this certificate ... */
	const char *renew_key; /* ... and its key: a renewal */
	const char *san; /* subjectAltName in OpenSSL's syntax, or NULL */
	const char *second_san; /* in a second extensionRequest attribute */
	const char *csr_digest; /* sign the CSR with this digest */
	long nonce_len; /* 0: 16 bytes; SCEP_NONCE_EMPTY, SCEP_NONCE_NONE */
	int no_txid;
	const char *txid; /* --txid: this transactionID, not the key's hash */
	int bad_csr_signature; /* flip a bit of the CSR's signature */
	int rsa_params_absent; /* the CSR's RSA key without NULL parameters */
	const char *csr_file; /* send this request, not one made here */
	int message_type; /* what to send; PKCSReq normally */
	const char *ca_fingerprint; /* a profile's CAFingerprint, hex */
};

/* --source: the local address to connect from (any 127.0.0.0/8 on Linux),
 * so a test can be two clients at once. */
static const char *source_addr;

/* How this client asks: as iOS, from --source. */
static struct http_client
client_of(const struct options *o)
{
	struct http_client hc = {o->url, USER_AGENT, source_addr};

	return hc;
}

/* --- the device's key, signer and CSR ----------------------------------- */

/* An upper-case random (v4) UUID, as iOS names its SCEP signer. */
static void
random_uuid(char out[37])
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		memset(b, 0x5a, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37,
	    "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-"
	    "%02X%02X%02X%02X%02X%02X",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
	    b[11], b[12], b[13], b[14], b[15]);
}

/* Signed by a certificate named by a random UUID, as iOS's are; with
 * `key_usage`, one with keyUsage digitalSignature and keyEncipherment and
 * no keyCertSign, as micromdm's scepclient makes its "SCEP SIGNER". */
static X509 *
self_signed(EVP_PKEY *key, const EVP_MD *md, int key_usage)
{
	char uuid[37];
	X509 *x;
	X509_EXTENSION *ext;

	random_uuid(uuid);
	if ((x = scep_self_signed(key, uuid, md)) == NULL || !key_usage)
		return x;
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage,
	    "critical,digitalSignature,keyEncipherment");
	if (ext == NULL || !X509_add_ext(x, ext, -1) ||
	    X509_sign(x, key, md) <= 0) {
		X509_EXTENSION_free(ext);
		X509_free(x);
		return NULL;
	}
	X509_EXTENSION_free(ext);
	return x;
}

/*
 * "O=Fabrikam,OU=IT,CN=Robs IPad" to a name with the RDNs in that order
 * (Apple's order: not reversed as RFC 4514 strings are). "\," escapes a
 * comma in a value.
 */
static X509_NAME *
parse_subject(const char *s)
{
	X509_NAME *name = NULL;
	char *buf = NULL, *type, *value, *w;
	const char *r;
	int ok = 0;

	if ((name = X509_NAME_new()) == NULL ||
	    (buf = malloc(strlen(s) + 1)) == NULL)
		goto out;
	r = s;
	while (*r != '\0') {
		/* One "TYPE=value" into buf, unescaping "\,". */
		w = buf;
		while (*r != '\0' && *r != ',') {
			if (r[0] == '\\' && r[1] != '\0')
				r++;
			*w++ = *r++;
		}
		*w = '\0';
		if (*r == ',')
			r++;
		type = buf;
		while (*type == ' ')
			type++;
		if ((value = strchr(type, '=')) == NULL || value == type) {
			fprintf(stderr, "subject: \"%s\" is not TYPE=value\n",
			    type);
			goto out;
		}
		*value++ = '\0';
		if (!X509_NAME_add_entry_by_txt(name, type, MBSTRING_UTF8,
		        (const unsigned char *)value, -1, -1, 0)) {
			fprintf(
			    stderr, "subject: unknown attribute %s\n", type);
			goto out;
		}
	}
	if (X509_NAME_entry_count(name) == 0) {
		fprintf(stderr, "subject: empty\n");
		goto out;
	}
	ok = 1;
out:
	free(buf);
	if (!ok) {
		X509_NAME_free(name);
		name = NULL;
	}
	return name;
}

/* The PKCS#10 request: subject as given, challengePassword, and the key
 * usage of an iOS payload asking for signing and encryption; or --csr's,
 * sent as it is written (OpenSSL keeps the bytes it read). */
static X509_REQ *
make_csr(const struct options *o, EVP_PKEY *key, const EVP_MD *md)
{
	X509_NAME *name;
	X509_REQ *req = NULL;
	FILE *f;

	if (o->csr_file != NULL) {
		if ((f = fopen(o->csr_file, "r")) != NULL) {
			req = PEM_read_X509_REQ(f, NULL, NULL, NULL);
			fclose(f);
		}
		if (req == NULL)
			fprintf(stderr, "--csr %s: not a PEM request\n",
			    o->csr_file);
		return req;
	}
	if ((name = parse_subject(o->subject)) == NULL)
		return NULL;
	req = scep_make_csr(name, o->challenge, o->key_usage, o->san, key, md);
	X509_NAME_free(name);
	return req;
}

/* The CSR's RSA AlgorithmIdentifier without the NULL parameters RFC 3279
 * asks for (some devices leave them out), signed again. */
static int
drop_rsa_params(X509_REQ *req, EVP_PKEY *key, const EVP_MD *md)
{
	X509_PUBKEY *spki = X509_REQ_get_X509_PUBKEY(req);
	const unsigned char *bits;
	unsigned char *copy;
	int len;

	if (!X509_PUBKEY_get0_param(NULL, &bits, &len, NULL, spki) ||
	    (copy = OPENSSL_memdup(bits, (size_t)len)) == NULL)
		return -1;
	if (!X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_rsaEncryption),
	        V_ASN1_UNDEF, NULL, copy, len)) {
		OPENSSL_free(copy);
		return -1;
	}
	return X509_REQ_sign(req, key, md) > 0 ? 0 : -1;
}

/* A second extensionRequest attribute holding subjectAltName `san`, signed
 * again: Microsoft's (msExtReq), as OpenSSL makes no second PKCS#9 one.
 * X509_REQ_get_extensions reads PKCS#9's alone; another reader may take
 * this one. */
static int
add_second_ext_req(
    X509_REQ *req, const char *san, EVP_PKEY *key, const EVP_MD *md)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ext =
	    X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	unsigned char *der = NULL;
	int len = -1, ok;

	if (exts != NULL && ext != NULL && sk_X509_EXTENSION_push(exts, ext))
		ext = NULL;
	if (ext == NULL)
		len = ASN1_item_i2d(
		    (ASN1_VALUE *)exts, &der, ASN1_ITEM_rptr(X509_EXTENSIONS));
	ok = len > 0 &&
	    X509_REQ_add1_attr_by_NID(
	        req, NID_ms_ext_req, V_ASN1_SEQUENCE, der, len) &&
	    X509_REQ_sign(req, key, md) > 0;
	OPENSSL_free(der);
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return ok ? 0 : -1;
}

/*
 * The query iOS sends: base64 in lines of 76 characters, each ended by
 * %0A; '+' and '/' unescaped, '=' as %3D. Sets *has_plus.
 */
static char *
ios_query(const uint8_t *msg, size_t len, int *has_plus)
{
	static const char prefix[] = "operation=PKIOperation&message=";
	unsigned char *b64 = NULL;
	char *q = NULL, *w;
	size_t b64len, cap;
	int n;

	*has_plus = 0;
	if (len > (size_t)INT32_MAX / 2)
		return NULL;
	if ((b64 = malloc(4 * ((len + 2) / 3) + 1)) == NULL)
		return NULL;
	n = EVP_EncodeBlock(b64, msg, (int)len);
	if (n < 0)
		goto out;
	b64len = (size_t)n;
	/* Worst case: every character as %3D, plus %0A per line. */
	cap = sizeof(prefix) + 3 * b64len + 3 * (b64len / B64_LINE + 1) + 1;
	if ((q = malloc(cap)) == NULL)
		goto out;
	w = q + (sizeof(prefix) - 1);
	memcpy(q, prefix, sizeof(prefix) - 1);
	for (size_t i = 0; i < b64len; i++) {
		if (b64[i] == '=') {
			memcpy(w, "%3D", 3);
			w += 3;
		} else {
			if (b64[i] == '+')
				*has_plus = 1;
			*w++ = (char)b64[i];
		}
		if ((i + 1) % B64_LINE == 0 || i + 1 == b64len) {
			memcpy(w, "%0A", 3);
			w += 3;
		}
	}
	*w = '\0';
out:
	free(b64);
	return q;
}

/* --- the enrollment ------------------------------------------------------ */

struct request {
	EVP_PKEY *key;
	X509 *signer;
	X509_REQ *csr;
	uint8_t *msg;
	size_t msg_len;
	char *query;
	char *txid;
	uint8_t *nonce;
	size_t nonce_len;
	EVP_PKEY *other_key; /* --signer-mismatch */
	X509 *other_signer;
	uint8_t *content; /* --issuer-serial */
	size_t content_len;
	X509 *recipient; /* --recipient */
};

static void
request_clear(struct request *rq)
{
	EVP_PKEY_free(rq->key);
	X509_free(rq->signer);
	X509_REQ_free(rq->csr);
	free(rq->msg);
	free(rq->query);
	free(rq->txid);
	free(rq->nonce);
	EVP_PKEY_free(rq->other_key);
	X509_free(rq->other_signer);
	free(rq->content);
	X509_free(rq->recipient);
	memset(rq, 0, sizeof(*rq));
}

/* The device's key: from --key when that file exists (a retry of the same
 * transaction: the transactionID is derived from the key), else new, and
 * saved to --key when given. */
static EVP_PKEY *
device_key(const struct options *o)
{
	EVP_PKEY *key = NULL;
	FILE *f;

	if (o->key_file != NULL && (f = fopen(o->key_file, "r")) != NULL) {
		key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		return key;
	}
	if ((key = EVP_RSA_gen((unsigned int)o->keysize)) == NULL)
		return NULL;
	if (o->key_file != NULL) {
		if ((f = fopen(o->key_file, "w")) == NULL ||
		    !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)) {
			if (f != NULL)
				fclose(f);
			EVP_PKEY_free(key);
			return NULL;
		}
		fclose(f);
	}
	return key;
}

/* GetCert and GetCRL carry IssuerAndSerialNumber of a certificate, and
 * a transactionID of their own. */
static int
issuer_serial_content(
    const struct options *o, struct request *rq, struct scep_pkcsreq_params *p)
{
	FILE *f = fopen(o->issuer_serial, "r");
	X509 *cert = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	unsigned char raw[16];
	static char txid[33];
	int rc = -1;

	if (f != NULL)
		fclose(f);
	if (cert == NULL) {
		fprintf(stderr, "cannot read %s\n", o->issuer_serial);
		return -1;
	}
	free(rq->content);
	rq->content = NULL;
	if (scep_issuer_serial_build(X509_get_issuer_name(cert),
	        X509_get0_serialNumber(cert), &rq->content,
	        &rq->content_len) == SCEP_OK &&
	    RAND_bytes(raw, sizeof(raw)) == 1) {
		for (int i = 0; i < 16; i++)
			snprintf(txid + 2 * i, 3, "%02X", raw[i]);
		p->csr = NULL;
		p->content = rq->content;
		p->content_len = rq->content_len;
		p->transaction_id = txid;
		rc = 0;
	}
	X509_free(cert);
	return rc;
}

/*
 * --signer-type: a signer certificate whose key is not RSA. "ec" signs with
 * a P-256 key (OpenSSL's PKCS#7 can); "ed25519" signs with an RSA key whose
 * certificate is then swapped for an Ed25519 one of the same issuer and
 * serial (swap_in_ed25519_signer), since OpenSSL 3.0 signs no PKCS#7 or
 * CMS with Ed25519: a server must refuse either before it checks the
 * signature.
 */
static int
other_signer(const struct options *o, const EVP_MD *md, struct request *rq,
    X509 **signer, EVP_PKEY **signer_key)
{
	int ec = strcmp(o->signer_type, "ec") == 0;

	EVP_PKEY_free(rq->other_key);
	X509_free(rq->other_signer);
	rq->other_signer = NULL;
	rq->other_key = ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
	if (rq->other_key == NULL ||
	    (rq->other_signer = self_signed(rq->other_key, md, 0)) == NULL) {
		fprintf(stderr, "--signer-type %s: no key\n", o->signer_type);
		return -1;
	}
	*signer = rq->other_signer;
	*signer_key = rq->other_key;
	return 0;
}

static int
swap_in_ed25519_signer(struct request *rq)
{
	const unsigned char *p = rq->msg;
	unsigned char *der = NULL;
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)rq->msg_len);
	X509 *cert = NULL;
	int n = -1;

	if (ed != NULL && p7 != NULL && PKCS7_type_is_signed(p7) &&
	    sk_X509_num(p7->d.sign->cert) == 1 &&
	    (cert = X509_dup(sk_X509_value(p7->d.sign->cert, 0))) != NULL &&
	    X509_set_pubkey(cert, ed) == 1 && X509_sign(cert, ed, NULL) > 0) {
		X509_free(sk_X509_value(p7->d.sign->cert, 0));
		(void)sk_X509_set(p7->d.sign->cert, 0, cert);
		cert = NULL;
		n = i2d_PKCS7(p7, &der);
	}
	X509_free(cert);
	PKCS7_free(p7);
	EVP_PKEY_free(ed);
	if (n <= 0) {
		fprintf(stderr, "--signer-type ed25519: cannot swap\n");
		ERR_print_errors_fp(stderr);
		return -1;
	}
	free(rq->msg);
	rq->msg = malloc((size_t)n);
	if (rq->msg == NULL) {
		OPENSSL_free(der);
		return -1;
	}
	memcpy(rq->msg, der, (size_t)n);
	rq->msg_len = (size_t)n;
	OPENSSL_free(der);
	return 0;
}

static int
build_request(const struct options *o, const struct scep_ca_certs *c,
    const EVP_CIPHER *cipher, const EVP_MD *md, struct request *rq)
{
	struct scep_pkcsreq_params p;
	int has_plus = 0, err;

	for (int attempt = 1;; attempt++) {
		request_clear(rq);
		if ((rq->key = device_key(o)) == NULL ||
		    (rq->signer = self_signed(
		         rq->key, md, o->signer_key_usage)) == NULL ||
		    (rq->csr = make_csr(o, rq->key, md)) == NULL) {
			fprintf(stderr, "key, signer or CSR: failed\n");
			ERR_print_errors_fp(stderr);
			return -1;
		}
		if (o->rsa_params_absent &&
		    drop_rsa_params(rq->csr, rq->key, md) != 0) {
			fprintf(stderr, "--rsa-params-absent: failed\n");
			return -1;
		}
		if (o->csr_digest != NULL &&
		    (EVP_get_digestbyname(o->csr_digest) == NULL ||
		        X509_REQ_sign(rq->csr, rq->key,
		            EVP_get_digestbyname(o->csr_digest)) <= 0)) {
			fprintf(
			    stderr, "--csr-digest %s: failed\n", o->csr_digest);
			ERR_print_errors_fp(stderr);
			return -1;
		}
		if (o->second_san != NULL &&
		    add_second_ext_req(rq->csr, o->second_san, rq->key, md) !=
		        0) {
			fprintf(stderr, "--second-ext-req-san: failed\n");
			ERR_print_errors_fp(stderr);
			return -1;
		}
		memset(&p, 0, sizeof(p));
		p.message_type = o->message_type;
		p.csr = rq->csr;
		p.signer = rq->signer;
		p.signer_key = rq->key;
		p.recipient = c->ra_enc;
		p.cipher = cipher;
		p.digest = md;
		if (o->digest_name != NULL &&
		    (p.digest = EVP_get_digestbyname(o->digest_name)) == NULL) {
			fprintf(stderr, "unknown digest %s\n", o->digest_name);
			return -1;
		}
		if (o->renew_cert != NULL) {
			FILE *cf = fopen(o->renew_cert, "r"),
			     *kf = fopen(o->renew_key, "r");

			if (cf != NULL)
				rq->other_signer =
				    PEM_read_X509(cf, NULL, NULL, NULL);
			if (kf != NULL)
				rq->other_key =
				    PEM_read_PrivateKey(kf, NULL, NULL, NULL);
			if (cf != NULL)
				fclose(cf);
			if (kf != NULL)
				fclose(kf);
			if (rq->other_signer == NULL || rq->other_key == NULL) {
				fprintf(stderr, "cannot read %s or %s\n",
				    o->renew_cert, o->renew_key);
				return -1;
			}
			p.signer = rq->other_signer;
			p.signer_key = rq->other_key;
		}
		if (o->signer_mismatch) {
			if ((rq->other_key = EVP_RSA_gen(2048)) == NULL ||
			    (rq->other_signer = self_signed(rq->other_key, md,
			         o->signer_key_usage)) == NULL)
				return -1;
			p.signer = rq->other_signer;
			p.signer_key = rq->other_key;
		}
		if (o->signer_type != NULL &&
		    other_signer(o, md, rq, &p.signer, &p.signer_key) != 0)
			return -1;
		if (o->recipient_file != NULL) {
			FILE *f = fopen(o->recipient_file, "r");

			if (f == NULL ||
			    (rq->recipient = PEM_read_X509(
			         f, NULL, NULL, NULL)) == NULL) {
				fprintf(stderr, "cannot read %s\n",
				    o->recipient_file);
				if (f != NULL)
					fclose(f);
				return -1;
			}
			fclose(f);
			p.recipient = rq->recipient;
		}
		if (o->issuer_serial != NULL &&
		    issuer_serial_content(o, rq, &p) != 0)
			return -1;
		p.sender_nonce_len = o->nonce_len;
		p.omit_transaction_id = o->no_txid;
		if (o->txid != NULL)
			p.transaction_id = o->txid;
		if (o->bad_csr_signature) {
			const ASN1_BIT_STRING *sig;

			X509_REQ_get0_signature(rq->csr, &sig, NULL);
			/* The signature is encoded from this field. */
			((ASN1_BIT_STRING *)sig)->data[sig->length / 2] ^= 0x01;
		}
		p.ber_indefinite = 1;
		if ((err = scep_pkcsreq_build(&p, &rq->msg, &rq->msg_len)) !=
		    SCEP_OK) {
			fprintf(stderr, "PKCSReq: %s\n", scep_strerror(err));
			return -1;
		}
		if (o->signer_type != NULL &&
		    strcmp(o->signer_type, "ed25519") == 0 &&
		    swap_in_ed25519_signer(rq) != 0)
			return -1;
		if ((rq->query = ios_query(rq->msg, rq->msg_len, &has_plus)) ==
		    NULL)
			return -1;
		if (!o->force_plus || has_plus || o->key_file != NULL)
			break;
		if (attempt >= 50) {
			fprintf(stderr, "no '+' in the base64 after %d keys\n",
			    attempt);
			return -1;
		}
		printf("no '+' in the base64: new key\n");
	}
	return scep_own_attributes(
	    rq->msg, rq->msg_len, &rq->txid, &rq->nonce, &rq->nonce_len);
}

static const char *
status_name(int status)
{
	switch (status) {
	case SCEP_STATUS_SUCCESS:
		return "SUCCESS";
	case SCEP_STATUS_FAILURE:
		return "FAILURE";
	case SCEP_STATUS_PENDING:
		return "PENDING";
	}
	return "unknown";
}

/* Writes the issued certificate: the one holding our public key. */
static int
write_issued(const struct options *o, const struct request *rq,
    const struct scep_certrep *rep)
{
	X509 *mine = NULL;
	FILE *f = NULL;
	int rc = -1;

	/* GetCRL: the CRL; GetCert: the certificate asked for, not ours. */
	if (o->issuer_serial != NULL) {
		X509_CRL *crl = sk_X509_CRL_value(rep->crls, 0);
		X509 *cert = sk_X509_value(rep->certs, 0);

		if ((crl == NULL && cert == NULL) ||
		    (f = fopen(o->out, "w")) == NULL) {
			fprintf(
			    stderr, "SUCCESS without a CRL or certificate\n");
			return -1;
		}
		rc = crl != NULL ? (PEM_write_X509_CRL(f, crl) ? 0 : -1)
		                 : (PEM_write_X509(f, cert) ? 0 : -1);
		printf("%s written\n", crl != NULL ? "CRL" : "certificate");
		return fclose(f) != 0 ? -1 : rc;
	}
	printf("CertRep: %d certificate(s)\n", sk_X509_num(rep->certs));
	for (int i = 0; i < sk_X509_num(rep->certs); i++) {
		X509 *x = sk_X509_value(rep->certs, i);

		if (X509_check_private_key(x, rq->key) == 1) {
			mine = x;
			break;
		}
	}
	ERR_clear_error();
	if (mine == NULL) {
		fprintf(stderr, "CertRep SUCCESS without our certificate\n");
		goto out;
	}
	scep_print_name(stdout, "issued", mine);
	if ((f = fopen(o->out, "w")) == NULL) {
		perror(o->out);
		goto out;
	}
	if (!PEM_write_X509(f, mine)) {
		fprintf(stderr, "%s: write failed\n", o->out);
		goto out;
	}
	rc = 0;
out:
	if (f != NULL && fclose(f) != 0)
		rc = -1;
	return rc;
}

/*
 * A profile's CAFingerprint checked as Apple's SCEP client checks it
 * (SecSCEPValidateCACertMessage): from each certificate of the GetCACert
 * answer, the chain built among them; the top of every chain of more than
 * one certificate hashed (SHA-1, or MD5 for 16 bytes) and compared; all
 * tops one certificate. This device knows no root beyond the answer.
 */
static int
check_ca_fingerprint(const struct scep_ca_certs *c, const char *hex)
{
	unsigned char want[EVP_MAX_MD_SIZE], md[EVP_MAX_MD_SIZE];
	size_t want_len = strlen(hex) / 2;
	unsigned int md_len = 0;
	int n = sk_X509_num(c->all);
	X509 *top_seen = NULL;

	if ((want_len != 20 && want_len != 16) || strlen(hex) != 2 * want_len)
		goto bad_hex;
	for (size_t i = 0; i < want_len; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &want[i]) != 1)
			goto bad_hex;
	for (int i = 0; i < n; i++) {
		X509 *top = sk_X509_value(c->all, i);
		int length = 1;

		/* Up to n links: cross-certificates may make a loop. */
		while (length <= n && !pki_issued_by(top, top)) {
			X509 *up = NULL;

			for (int j = 0; j < n && up == NULL; j++)
				if (sk_X509_value(c->all, j) != top &&
				    pki_issued_by(
				        top, sk_X509_value(c->all, j)))
					up = sk_X509_value(c->all, j);
			if (up == NULL)
				break;
			top = up;
			length++;
		}
		if (length == 1)
			continue;
		if (top_seen == NULL) {
			if (X509_digest(top,
			        want_len == 20 ? EVP_sha1() : EVP_md5(), md,
			        &md_len) != 1 ||
			    md_len != want_len ||
			    memcmp(md, want, want_len) != 0) {
				scep_print_name(stdout,
				    "CAFingerprint: not of the top of the "
				    "chain",
				    top);
				return -1;
			}
			top_seen = top;
		} else if (X509_cmp(top, top_seen) != 0) {
			scep_print_name(stdout,
			    "CAFingerprint: chains of two tops, the other",
			    top);
			return -1;
		}
	}
	if (top_seen == NULL) {
		printf("CAFingerprint: no chain among the CA certificates\n");
		return -1;
	}
	scep_print_name(stdout, "CAFingerprint: matches", top_seen);
	return 0;
bad_hex:
	fprintf(stderr, "--ca-fingerprint: 40 or 32 hex digits\n");
	return -1;
}

static int
enroll(const struct options *o)
{
	struct scep_ca_certs c;
	struct request rq;
	struct http_reply r;
	struct http_client hc = client_of(o);
	struct scep_certrep *rep = NULL;
	char *caps = NULL;
	const EVP_CIPHER *cipher;
	const EVP_MD *md;
	size_t qlen;
	int err, rc = EXIT_ERROR;

	memset(&c, 0, sizeof(c));
	memset(&rq, 0, sizeof(rq));
	memset(&r, 0, sizeof(r));
	if (scep_get_ca_certs(&hc, o->ca_name, stdout, &c) != 0 ||
	    (o->ca_fingerprint != NULL &&
	        check_ca_fingerprint(&c, o->ca_fingerprint) != 0) ||
	    scep_get_ca_caps(&hc, o->ca_name, &caps) != 0)
		goto out;
	cipher =
	    scep_has_cap(caps, "AES") ? EVP_aes_128_cbc() : EVP_des_ede3_cbc();
	if (o->cipher_name != NULL &&
	    (cipher = EVP_get_cipherbyname(o->cipher_name)) == NULL) {
		fprintf(stderr, "unknown cipher %s\n", o->cipher_name);
		goto out;
	}
	md = scep_has_cap(caps, "SHA-512")  ? EVP_sha512()
	    : scep_has_cap(caps, "SHA-256") ? EVP_sha256()
	                                    : EVP_sha1();
	/* An RSA-512 key (a hostile test) cannot sign a SHA-512 digest. */
	if (o->keysize < 1024)
		md = EVP_sha256();
	printf("GetCACaps: POSTPKIOperation %s (unused: iOS GETs); "
	       "cipher %s, digest %s\n",
	    scep_has_cap(caps, "POSTPKIOperation") ? "advertised" : "absent",
	    EVP_CIPHER_get0_name(cipher), EVP_MD_get0_name(md));

	if (build_request(o, &c, cipher, md, &rq) != 0)
		goto out;
	qlen = strlen(rq.query);
	printf("PKIOperation: %zu bytes BER, query length %zu, txid %s\n",
	    rq.msg_len, qlen, rq.txid);
	if (o->keysize >= 2048 && qlen <= MIN_QUERY_LEN) {
		fprintf(stderr,
		    "query length %zu is not over %d: not what "
		    "an iPad sends\n",
		    qlen, MIN_QUERY_LEN);
		goto out;
	}
	if (http_get(&hc, rq.query, &r) != 0)
		goto out;
	printf("PKIOperation: HTTP %ld, %s, %zu bytes\n", r.code,
	    r.content_type != NULL ? r.content_type : "(no type)", r.len);
	if (r.code != 200) {
		fprintf(stderr, "PKIOperation: HTTP %ld: %.200s\n", r.code,
		    r.body != NULL ? (char *)r.body : "");
		if (r.retry_after[0] != '\0')
			printf("Retry-After: %s\n", r.retry_after);
		goto out;
	}
	if (!http_content_type_is(r.content_type, "application/x-pki-message"))
		fprintf(stderr, "warning: CertRep content type %s\n",
		    r.content_type != NULL ? r.content_type : "(none)");
	/* The reply is encrypted to whatever signed the request. */
	if ((err = scep_certrep_parse(r.body, r.len, c.ra_sig,
	         o->renew_cert != NULL ? rq.other_signer : rq.signer,
	         o->renew_cert != NULL ? rq.other_key : rq.key, &rep)) !=
	    SCEP_OK) {
		fprintf(stderr, "CertRep: %s\n", scep_strerror(err));
		goto out;
	}
	if (rep->transaction_id == NULL ||
	    strcmp(rep->transaction_id, rq.txid) != 0) {
		fprintf(stderr, "CertRep transactionID %s, sent %s\n",
		    rep->transaction_id != NULL ? rep->transaction_id : "-",
		    rq.txid);
		goto out;
	}
	if (rep->recipient_nonce_len != rq.nonce_len ||
	    memcmp(rep->recipient_nonce, rq.nonce, rq.nonce_len) != 0) {
		fprintf(stderr,
		    "CertRep recipientNonce is not our "
		    "senderNonce\n");
		goto out;
	}
	printf("pkiStatus: %s\n", status_name(rep->pki_status));
	printf("reply digest: %s\n", OBJ_nid2sn(rep->digest_nid));
	if (rep->cipher_nid != NID_undef)
		printf("reply cipher: %s\n", OBJ_nid2sn(rep->cipher_nid));
	if (rep->failinfo != SCEP_FAILINFO_NONE)
		printf("failInfo: %s\n", scep_failinfo_name(rep->failinfo));
	if (rep->failinfo_text != NULL)
		printf("failInfoText: %s\n", rep->failinfo_text);
	switch (rep->pki_status) {
	case SCEP_STATUS_SUCCESS:
		if (write_issued(o, &rq, rep) != 0)
			goto out;
		printf("written: %s\n", o->out);
		rc = EXIT_OK;
		break;
	case SCEP_STATUS_FAILURE:
		rc = EXIT_FAILURE_STATUS;
		break;
	case SCEP_STATUS_PENDING:
		rc = EXIT_PENDING;
		break;
	}
out:
	scep_certrep_free(rep);
	http_reply_clear(&r);
	request_clear(&rq);
	free(caps);
	scep_ca_certs_clear(&c);
	return rc;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: scep_ios_client --url URL --subject \"O=..,CN=..\" "
	    "--out FILE\n"
	    "         [--challenge PASSWORD] [--keysize BITS] "
	    "[--ca-name NAME] [--force-plus]\n"
	    "  URL e.g. http://127.0.0.1:8080/certsrv/mscep/mscep.dll\n"
	    "  --force-plus  new keys until the base64 holds a '+'\n"
	    "  hostile variants: --cipher NAME (e.g. des-cbc), --digest NAME\n"
	    "    (e.g. md5), --recipient CERT.pem (envelope to another cert),\n"
	    "    --signer-mismatch (sign with a key other than the CSR's)\n"
	    "    --signer-key-usage (the signer certificate has keyUsage\n"
	    "        digitalSignature, keyEncipherment, as micromdm's)\n"
	    "    --signer-type ec|ed25519 (a signer certificate not RSA)\n"
	    "  --ca-fingerprint HEX  a profile's CAFingerprint, checked as\n"
	    "                iOS does: the top of the chain GetCACert makes\n"
	    "  --key FILE    use the key in FILE (a retry of the same\n"
	    "                transaction), or save the new key there\n"
	    "  --message-type N  send messageType N instead of PKCSReq (19),\n"
	    "                    to test what a server does with it\n"
	    "  --source ADDR     connect from this local address\n"
	    "  --key-usage N     Apple's Key Usage: 1 signing, 4 encryption,\n"
	    "                    5 both (the default)\n"
	    "  --san SPEC        subjectAltName, e.g. DNS:a.example.com\n"
	    "  --csr-digest NAME sign the CSR with this digest (e.g. md5)\n"
	    "  --csr FILE        send this PEM request as it is written\n"
	    "                    (its key in --key; --subject and\n"
	    "                    --challenge then unused)\n"
	    "  --second-ext-req-san SPEC  a second extensionRequest\n"
	    "                    attribute (msExtReq) with this\n"
	    "                    subjectAltName\n"
	    "  --renew-cert FILE --renew-key FILE  sign with this certificate\n"
	    "                    and key (a renewal; with --message-type 17\n"
	    "                    a RenewalReq)\n"
	    "  --nonce-len N (0: empty), --no-nonce, --no-txid,\n"
	    "  --bad-csr-signature   hostile requests\n"
	    "  --txid TEXT       this transactionID (default: the key's hash)\n"
	    "  --rsa-params-absent   the CSR's RSA AlgorithmIdentifier "
	    "without\n"
	    "                    its NULL parameters (as some devices send)\n"
	    "  --issuer-serial CERT.pem  with --message-type 21 (GetCert) or\n"
	    "                    22 (GetCRL): ask about that certificate;\n"
	    "                    --out gets the certificate or the CRL\n"
	    "  A CertPoll is --message-type 20 with the --key of the\n"
	    "  PENDING request (the same transactionID)\n"
	    "exit: 0 SUCCESS, 2 FAILURE, 3 PENDING, 1 error\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"challenge", required_argument, NULL, 'c'},
	    {"subject", required_argument, NULL, 's'},
	    {"out", required_argument, NULL, 'o'},
	    {"keysize", required_argument, NULL, 'k'},
	    {"ca-name", required_argument, NULL, 'n'},
	    {"force-plus", no_argument, NULL, 'p'},
	    {"message-type", required_argument, NULL, 'm'},
	    {"key", required_argument, NULL, 'K'},
	    {"cipher", required_argument, NULL, 'C'},
	    {"digest", required_argument, NULL, 'D'},
	    {"recipient", required_argument, NULL, 'R'},
	    {"signer-mismatch", no_argument, NULL, 'M'},
	    {"signer-key-usage", no_argument, NULL, 1001},
	    {"signer-type", required_argument, NULL, 1002},
	    {"source", required_argument, NULL, 'A'},
	    {"key-usage", required_argument, NULL, 'U'},
	    {"renew-cert", required_argument, NULL, 'r'},
	    {"renew-key", required_argument, NULL, 'e'},
	    {"issuer-serial", required_argument, NULL, 'I'},
	    {"san", required_argument, NULL, 'N'},
	    {"second-ext-req-san", required_argument, NULL, 1003},
	    {"csr-digest", required_argument, NULL, 1004},
	    {"nonce-len", required_argument, NULL, 'L'},
	    {"no-nonce", no_argument, NULL, 'O'},
	    {"no-txid", no_argument, NULL, 'T'},
	    {"txid", required_argument, NULL, 'X'},
	    {"bad-csr-signature", no_argument, NULL, 'B'},
	    {"rsa-params-absent", no_argument, NULL, 'P'},
	    {"ca-fingerprint", required_argument, NULL, 1005},
	    {"csr", required_argument, NULL, 1006},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct options o;
	char *end;
	int ch, rc;

	memset(&o, 0, sizeof(o));
	o.keysize = 2048;
	o.message_type = SCEP_MSG_PKCSREQ;
	o.ca_name = "Fabrikam Issuing CA1";
	while ((ch = getopt_long(argc, argv,
	            "u:c:s:o:k:n:pm:K:C:D:R:MA:U:N:r:e:I:L:OTX:BPh", opts,
	            NULL)) != -1) {
		switch (ch) {
		case 'u':
			o.url = optarg;
			break;
		case 'c':
			o.challenge = optarg;
			break;
		case 's':
			o.subject = optarg;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'k':
			o.keysize = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o.keysize < 512 ||
			    o.keysize > 8192) {
				fprintf(stderr, "--keysize: 512..8192\n");
				return EXIT_ERROR;
			}
			break;
		case 'n':
			o.ca_name = optarg;
			break;
		case 1005:
			o.ca_fingerprint = optarg;
			break;
		case 1006:
			o.csr_file = optarg;
			break;
		case 'p':
			o.force_plus = 1;
			break;
		case 'K':
			o.key_file = optarg;
			break;
		case 'C':
			o.cipher_name = optarg;
			break;
		case 'D':
			o.digest_name = optarg;
			break;
		case 'R':
			o.recipient_file = optarg;
			break;
		case 'A':
			source_addr = optarg;
			break;
		case 'U':
			o.key_usage = atoi(optarg);
			if (o.key_usage != 1 && o.key_usage != 4 &&
			    o.key_usage != 5) {
				fprintf(stderr, "--key-usage: 1, 4 or 5\n");
				return 1;
			}
			break;
		case 'N':
			o.san = optarg;
			break;
		case 'r':
			o.renew_cert = optarg;
			break;
		case 'e':
			o.renew_key = optarg;
			break;
		case 'I':
			o.issuer_serial = optarg;
			break;
		case 'L':
			o.nonce_len = strtol(optarg, NULL, 10);
			if (o.nonce_len == 0)
				o.nonce_len = SCEP_NONCE_EMPTY;
			break;
		case 'O':
			o.nonce_len = SCEP_NONCE_NONE;
			break;
		case 'T':
			o.no_txid = 1;
			break;
		case 'X':
			o.txid = optarg;
			break;
		case 'B':
			o.bad_csr_signature = 1;
			break;
		case 'P':
			o.rsa_params_absent = 1;
			break;
		case 'M':
			o.signer_mismatch = 1;
			break;
		case 1001:
			o.signer_key_usage = 1;
			break;
		case 1003:
			o.second_san = optarg;
			break;
		case 1004:
			o.csr_digest = optarg;
			break;
		case 1002:
			if (strcmp(optarg, "ec") != 0 &&
			    strcmp(optarg, "ed25519") != 0) {
				fprintf(
				    stderr, "--signer-type: ec or ed25519\n");
				return EXIT_ERROR;
			}
			o.signer_type = optarg;
			break;
		case 'm':
			o.message_type = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o.message_type < 0 ||
			    o.message_type > 255) {
				fprintf(stderr, "--message-type: 0..255\n");
				return EXIT_ERROR;
			}
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_ERROR;
		}
	}
	if (o.url == NULL || o.subject == NULL || o.out == NULL ||
	    optind != argc || (o.renew_cert == NULL) != (o.renew_key == NULL)) {
		usage(stderr);
		return EXIT_ERROR;
	}
	/* Single DES too: old devices send it, NDES answers with it. */
	if (scep_init() != SCEP_OK || scep_load_single_des() != SCEP_OK ||
	    curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "initialisation failed\n");
		return EXIT_ERROR;
	}
	rc = enroll(&o);
	curl_global_cleanup();
	printf("exit %d\n", rc);
	return rc;
}
