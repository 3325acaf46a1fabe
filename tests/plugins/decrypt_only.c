/*
 * A signer whose key decrypts but cannot sign, as a token holds an
 * encryption key with CKA_DECRYPT and without CKA_SIGN (SoftHSM's import
 * cannot make one): the RA must take it as its EncryptionSigner.
 * [signer.NAME] Module = .../scepd-decrypt-only.so, KeyFile = PEM key.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* RSA_METHOD: what an engine key is */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "plugin.h"

struct decrypt_only {
	RSA_METHOD *method;
	EVP_PKEY *key;
};

/* Signing with PKCS#1 v1.5 is a private "encryption": refused. */
static int
decrypt_only_refuse(int flen, const unsigned char *from, unsigned char *to,
    RSA *rsa, int padding)
{
	(void)flen;
	(void)from;
	(void)to;
	(void)rsa;
	(void)padding;
	ERR_raise_data(ERR_LIB_RSA,
	    RSA_R_OPERATION_NOT_SUPPORTED_FOR_THIS_KEYTYPE,
	    "this key may decrypt, not sign (CKA_SIGN false)");
	return -1;
}

static void
decrypt_only_free(struct decrypt_only *s)
{
	EVP_PKEY_free(s->key);
	RSA_meth_free(s->method);
	free(s);
}

static int
decrypt_only_init(const struct scepd_plugin_host *host, void **state, char *err,
    size_t errlen)
{
	const char *path = host->config_get(host, "KeyFile");
	struct decrypt_only *s = calloc(1, sizeof(*s));
	EVP_PKEY *file_key = NULL;
	RSA *rsa = NULL;
	FILE *f;

	if (s == NULL || path == NULL || (f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "KeyFile: cannot read it");
		free(s);
		return -1;
	}
	file_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	/* A legacy RSA key with a method of its own is "foreign" to
	 * OpenSSL 3: its operations go through the method, as an engine's. */
	if (file_key == NULL || (rsa = EVP_PKEY_get1_RSA(file_key)) == NULL ||
	    (s->method = RSA_meth_dup(RSA_PKCS1_OpenSSL())) == NULL ||
	    RSA_meth_set_priv_enc(s->method, decrypt_only_refuse) != 1 ||
	    RSA_set_method(rsa, s->method) != 1 ||
	    (s->key = EVP_PKEY_new()) == NULL ||
	    EVP_PKEY_assign_RSA(s->key, rsa) != 1) {
		snprintf(err, errlen, "KeyFile: %s: not an RSA key", path);
		RSA_free(rsa);
		EVP_PKEY_free(file_key);
		decrypt_only_free(s);
		return -1;
	}
	EVP_PKEY_free(file_key);
	*state = s;
	return 0;
}

static struct evp_pkey_st *
decrypt_only_key(void *state)
{
	return ((struct decrypt_only *)state)->key;
}

static void
decrypt_only_destroy(void *state)
{
	decrypt_only_free(state);
}

static const char *const decrypt_only_keys[] = {"KeyFile", NULL};

__attribute__((visibility("default")))
const struct scepd_ca_signer scepd_ca_signer_v1 = {
    .abi_version = SCEPD_PLUGIN_ABI_VERSION,
    .name = "decrypt-only",
    .keys = decrypt_only_keys,
    .init = decrypt_only_init,
    .key = decrypt_only_key,
    .destroy = decrypt_only_destroy,
};
