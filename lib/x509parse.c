/*
 * OpenSSL 3.0 decodes the public key of every certificate and request it
 * parses, and for each one sets up its decoder framework, walking every
 * key manager and decoder of every provider: ~125 us on this machine,
 * twenty times the rest of the parse, three times in an enrollment (the
 * device's certificate and its CSR in the RA, the CSR again in the CA).
 * Parsed in a library context holding only the null provider, the key is
 * left undecoded, as OpenSSL leaves a key of an unknown type; an RSA key
 * is then read by its own decoder (2 us). Any other key type (EC devices
 * are few) is parsed again the usual way: one decoder set-up, as before.
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

static int
spki_is_rsa(X509_PUBKEY *spki)
{
	ASN1_OBJECT *alg = NULL;

	return spki != NULL &&
	    X509_PUBKEY_get0_param(&alg, NULL, NULL, NULL, spki) &&
	    OBJ_obj2nid(alg) == NID_rsaEncryption;
}

/* An RSA SubjectPublicKeyInfo's key, read by RSA's own decoder; NULL if
 * unreadable. */
static EVP_PKEY *
rsa_key(X509_PUBKEY *spki)
{
	const unsigned char *bits = NULL, *p;
	EVP_PKEY *key;
	int bits_len = 0;

	if (!X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL, spki))
		return NULL;
	/* The BIT STRING holds PKCS#1's RSAPublicKey, all of it. */
	p = bits;
	key = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, bits_len);
	if (key != NULL && p != bits + bits_len) {
		EVP_PKEY_free(key);
		key = NULL;
	}
	return key;
}

/*
 * *cert with its key: an RSA key read and set (X509_set_pubkey keeps the
 * certificate's encoding, unlike a request's); with any other key type the
 * certificate is parsed again the usual way from its own bytes, one
 * decoder set-up as d2i_X509 makes (reading the key the usual way and
 * setting it would cost an encoder set-up more).
 */
static int
cert_keyed(X509 **cert)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *key;
	X509 *again;
	int n, ok;

	if (spki_is_rsa(X509_get_X509_PUBKEY(*cert))) {
		if ((key = rsa_key(X509_get_X509_PUBKEY(*cert))) == NULL)
			return 1; /* unreadable: as d2i_X509 leaves it */
		ok = X509_set_pubkey(*cert, key);
		EVP_PKEY_free(key); /* the certificate holds its reference */
		return ok;
	}
	if ((n = i2d_X509(*cert, &der)) <= 0)
		return 0;
	p = der;
	again = d2i_X509(NULL, &p, n);
	OPENSSL_free(der);
	if (again == NULL)
		return 0;
	X509_free(*cert);
	*cert = again;
	return 1;
}

PKCS7 *
x509parse_pkcs7(const unsigned char **in, long len)
{
	PKCS7 *p7 = keyless_d2i(in, len, ASN1_ITEM_rptr(PKCS7));
	STACK_OF(X509) *certs = NULL;

	if (p7 != NULL && PKCS7_type_is_signed(p7) && p7->d.sign != NULL)
		certs = p7->d.sign->cert;
	if (sk_X509_num(certs) > X509PARSE_PKCS7_CERTS_MAX) {
		PKCS7_free(p7);
		return NULL;
	}
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *cert = sk_X509_value(certs, i);

		if (!cert_keyed(&cert)) {
			PKCS7_free(p7);
			return NULL;
		}
		sk_X509_set(certs, i, cert);
	}
	return p7;
}

X509 *
x509parse_cert(const unsigned char **in, long len)
{
	X509 *cert = keyless_d2i(in, len, ASN1_ITEM_rptr(X509));

	if (cert != NULL && !cert_keyed(&cert)) {
		X509_free(cert);
		cert = NULL;
	}
	return cert;
}

X509_REQ *
x509parse_req(const unsigned char **in, long len, EVP_PKEY **key)
{
	const unsigned char *start = *in;
	X509_REQ *req = keyless_d2i(in, len, ASN1_ITEM_rptr(X509_REQ));

	*key = NULL;
	if (req == NULL)
		return NULL;
	if (spki_is_rsa(X509_REQ_get_X509_PUBKEY(req))) {
		*key = rsa_key(X509_REQ_get_X509_PUBKEY(req));
		return req;
	}
	/* Any other key type the usual way: one decoder set-up, as before. */
	X509_REQ_free(req);
	*in = start;
	if ((req = d2i_X509_REQ(NULL, in, len)) != NULL &&
	    (*key = X509_REQ_get0_pubkey(req)) != NULL)
		EVP_PKEY_up_ref(*key);
	return req;
}

/* Whether `spki`, re-encoded from `key`, would be the same bytes. */
static int
spki_is_encoding_of(X509_PUBKEY *spki, EVP_PKEY *key)
{
	X509_PUBKEY *mine = NULL;
	unsigned char *a = NULL, *b = NULL;
	int na, nb, same;

	/* rsa_key's key has OpenSSL's legacy encoder: cheap. */
	if (!X509_PUBKEY_set(&mine, key))
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
	if (!spki_is_rsa(X509_REQ_get_X509_PUBKEY(req)))
		return req; /* parsed the usual way: its key is in it */
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
