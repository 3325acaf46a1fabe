/*
 * OpenSSL 3.0 decodes the public key of every certificate and request it
 * parses, and for each one sets up its decoder framework, walking every
 * key manager and decoder of every provider: ~125 us on this machine,
 * twenty times the rest of the parse, three times in an enrollment (the
 * device's certificate and its CSR in the RA, the CSR again in the CA).
 * Parsed in a library context holding only the null provider, the key is
 * left undecoded, as OpenSSL leaves a key of an unknown type; an RSA key
 * is then read by its own decoder (2 us), any other the usual way.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/provider.h>

#include "x509parse.h"

static OSSL_LIB_CTX *keyless_ctx;
static pthread_once_t keyless_once = PTHREAD_ONCE_INIT;

/* Kept for the life of the process: parses may run in any thread. */
static void
keyless_init(void)
{
	OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();

	if (ctx != NULL && OSSL_PROVIDER_load(ctx, "null") == NULL) {
		OSSL_LIB_CTX_free(ctx);
		ctx = NULL;
	}
	keyless_ctx = ctx; /* NULL: parses decode keys the usual way */
}

static void *
keyless_d2i(const unsigned char **in, long len, const ASN1_ITEM *it)
{
	pthread_once(&keyless_once, keyless_init);
	return ASN1_item_d2i_ex(NULL, in, len, it, keyless_ctx, NULL);
}

/* The key of a SubjectPublicKeyInfo; NULL if unreadable. */
static EVP_PKEY *
spki_key(X509_PUBKEY *spki)
{
	ASN1_OBJECT *alg = NULL;
	const unsigned char *bits = NULL, *p;
	unsigned char *der = NULL;
	EVP_PKEY *key = NULL;
	int bits_len = 0, n;

	if (spki == NULL ||
	    !X509_PUBKEY_get0_param(&alg, &bits, &bits_len, NULL, spki))
		return NULL;
	if (OBJ_obj2nid(alg) == NID_rsaEncryption) {
		/* The BIT STRING holds PKCS#1's RSAPublicKey, all of it. */
		p = bits;
		key = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, bits_len);
		if (key != NULL && p != bits + bits_len) {
			EVP_PKEY_free(key);
			key = NULL;
		}
	} else if ((n = i2d_X509_PUBKEY(spki, &der)) > 0) {
		p = der;
		key = d2i_PUBKEY(NULL, &p, n);
	}
	OPENSSL_free(der);
	return key;
}

/* X509_set_pubkey keeps the certificate's encoding (unlike a request's). */
static int
cert_attach_key(X509 *cert)
{
	EVP_PKEY *key = spki_key(X509_get_X509_PUBKEY(cert));
	int ok = key == NULL || X509_set_pubkey(cert, key);

	EVP_PKEY_free(key); /* the certificate holds its reference */
	return ok;
}

PKCS7 *
x509parse_pkcs7(const unsigned char **in, long len)
{
	PKCS7 *p7 = keyless_d2i(in, len, ASN1_ITEM_rptr(PKCS7));
	STACK_OF(X509) *certs = NULL;

	if (p7 != NULL && PKCS7_type_is_signed(p7) && p7->d.sign != NULL)
		certs = p7->d.sign->cert;
	for (int i = 0; i < sk_X509_num(certs); i++)
		if (!cert_attach_key(sk_X509_value(certs, i))) {
			PKCS7_free(p7);
			return NULL;
		}
	return p7;
}

X509 *
x509parse_cert(const unsigned char **in, long len)
{
	X509 *cert = keyless_d2i(in, len, ASN1_ITEM_rptr(X509));

	if (cert != NULL && !cert_attach_key(cert)) {
		X509_free(cert);
		cert = NULL;
	}
	return cert;
}

X509_REQ *
x509parse_req(const unsigned char **in, long len, EVP_PKEY **key)
{
	X509_REQ *req = keyless_d2i(in, len, ASN1_ITEM_rptr(X509_REQ));

	*key = req != NULL ? spki_key(X509_REQ_get_X509_PUBKEY(req)) : NULL;
	return req;
}

/* Whether `spki`, re-encoded from `key`, would be the same bytes. */
static int
spki_is_encoding_of(X509_PUBKEY *spki, EVP_PKEY *key)
{
	X509_PUBKEY *mine = NULL;
	unsigned char *a = NULL, *b = NULL;
	int na, nb, same;

	/* An RSA key read by spki_key has OpenSSL's legacy encoder: cheap. */
	if (EVP_PKEY_get_id(key) != EVP_PKEY_RSA ||
	    !X509_PUBKEY_set(&mine, key))
		return 0;
	na = i2d_X509_PUBKEY(spki, &a);
	nb = i2d_X509_PUBKEY(mine, &b);
	same = na > 0 && na == nb && memcmp(a, b, (size_t)na) == 0;
	OPENSSL_free(a);
	OPENSSL_free(b);
	X509_PUBKEY_free(mine);
	return same;
}

X509_REQ *
x509parse_req_keyed(
    X509_REQ *req, EVP_PKEY *key, const unsigned char *der, long len)
{
	const unsigned char *p = der;

	if (req == NULL || key == NULL)
		goto again;
	if (spki_is_encoding_of(X509_REQ_get_X509_PUBKEY(req), key) &&
	    X509_REQ_set_pubkey(req, key))
		return req;
again:
	X509_REQ_free(req);
	/* OpenSSL's own decoders may refuse what d2i_PublicKey read: then
	 * no request, rather than one whose key is missing. */
	if ((req = d2i_X509_REQ(NULL, &p, len)) != NULL &&
	    X509_REQ_get0_pubkey(req) == NULL) {
		X509_REQ_free(req);
		req = NULL;
	}
	return req;
}
