/*
 * The SCEP codec against real client and server messages (tests/vectors)
 * and in round trips with freshly generated keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep.h"
#include "scep_client.h"

#define MMDM VECTORS_DIR "/micromdm-scep/"
#define JSCEP VECTORS_DIR "/jscep-cryptlib-samples/"

/* Keys and certificates shared by the round-trip tests. */
static struct {
	EVP_PKEY *client_key, *ra_key, *ca_key, *other_key;
	X509 *client_cert, *ra_cert, *ca_cert, *other_cert;
	X509 *issued;
	X509_REQ *csr;
} fx;

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static X509 *
load_cert(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	X509 *x;

	assert_non_null(b);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(x);
	return x;
}

static int
empty_pass(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

/* micromdm's test CA key is encrypted with an empty passphrase. */
static EVP_PKEY *
load_key(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	EVP_PKEY *k;

	assert_non_null(b);
	k = PEM_read_bio_PrivateKey(b, NULL, empty_pass, NULL);
	BIO_free(b);
	assert_non_null(k);
	return k;
}

static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
    long serial)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	assert_non_null(x);
	assert_non_null(name);
	assert_true(X509_set_version(x, 2));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_true(X509_NAME_add_entry_by_txt(
	    name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_set_subject_name(x, name));
	assert_true(X509_set_issuer_name(
	    x, issuer != NULL ? X509_get_subject_name(issuer) : name));
	assert_true(X509_set_pubkey(x, key));
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key,
	                EVP_sha256()) > 0);
	X509_NAME_free(name);
	return x;
}

static X509_REQ *
make_csr(EVP_PKEY *key, const char *cn, const char *challenge)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();

	assert_non_null(req);
	assert_true(X509_REQ_set_version(req, 0));
	assert_true(X509_NAME_add_entry_by_txt(
	    name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_REQ_set_subject_name(req, name));
	assert_true(X509_REQ_set_pubkey(req, key));
	if (challenge != NULL)
		assert_true(X509_REQ_add1_attr_by_NID(req,
		    NID_pkcs9_challengePassword, V_ASN1_PRINTABLESTRING,
		    (const unsigned char *)challenge, (int)strlen(challenge)));
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	X509_NAME_free(name);
	return req;
}

/* The CSR's own signature: MD5 never, SHA-1 as the policy says. */
static void
test_csr_digest_policy(void **state)
{
	static const struct scep_alg_policy no_sha1 = {0, 1, 0};
	X509_REQ *req = X509_REQ_new();
	const char *why = NULL;

	(void)state;
	assert_non_null(req);
	assert_int_equal(X509_REQ_set_pubkey(req, fx.client_key), 1);
	assert_true(X509_REQ_sign(req, fx.client_key, EVP_sha256()) > 0);
	assert_int_equal(scep_csr_digest_allowed(req, &no_sha1, &why), 1);
	assert_true(X509_REQ_sign(req, fx.client_key, EVP_sha1()) > 0);
	assert_int_equal(
	    scep_csr_digest_allowed(req, &scep_default_policy, &why), 1);
	assert_int_equal(scep_csr_digest_allowed(req, &no_sha1, &why), 0);
	assert_non_null(strstr(why, "AllowSHA1 = 1"));
	assert_true(X509_REQ_sign(req, fx.client_key, EVP_md5()) > 0);
	assert_int_equal(
	    scep_csr_digest_allowed(req, &scep_default_policy, &why), 0);
	assert_non_null(strstr(why, "MD5"));
	X509_REQ_free(req);
	/* RSASSA-PSS: the digest in its parameters. */
	assert_non_null(req = X509_REQ_new());
	assert_int_equal(X509_REQ_set_pubkey(req, fx.client_key), 1);
	for (int i = 0; i < 2; i++) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		EVP_PKEY_CTX *pctx = NULL;

		assert_int_equal(EVP_DigestSignInit(ctx, &pctx,
		                     i == 0 ? EVP_sha256() : EVP_sha1(), NULL,
		                     fx.client_key),
		    1);
		assert_true(EVP_PKEY_CTX_set_rsa_padding(
		                pctx, RSA_PKCS1_PSS_PADDING) > 0);
		assert_true(X509_REQ_sign_ctx(req, ctx) > 0);
		EVP_MD_CTX_free(ctx);
		assert_int_equal(scep_csr_digest_allowed(req, &no_sha1, &why),
		    i == 0 ? 1 : 0);
	}
	X509_REQ_free(req);
	/* Ed25519 names no digest: the device is told of its key (as the
	 * CA would), not of a digest it never chose. */
	{
		EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

		assert_non_null(ed);
		assert_non_null(req = X509_REQ_new());
		assert_int_equal(X509_REQ_set_pubkey(req, ed), 1);
		assert_true(X509_REQ_sign(req, ed, NULL) > 0);
		assert_int_equal(
		    scep_csr_digest_allowed(req, &scep_default_policy, &why),
		    0);
		assert_non_null(strstr(why, "Ed25519"));
		X509_REQ_free(req);
		EVP_PKEY_free(ed);
	}
}

static int
setup(void **state)
{
	(void)state;
	if (scep_init() != SCEP_OK || scep_load_single_des() != SCEP_OK)
		return -1;
	fx.client_key = EVP_RSA_gen(2048);
	fx.ra_key = EVP_RSA_gen(2048);
	fx.ca_key = EVP_RSA_gen(2048);
	fx.other_key = EVP_RSA_gen(2048);
	if (fx.client_key == NULL || fx.ra_key == NULL || fx.ca_key == NULL ||
	    fx.other_key == NULL)
		return -1;
	fx.ca_cert = make_cert(fx.ca_key, "Test CA", NULL, NULL, 1);
	fx.ra_cert =
	    make_cert(fx.ra_key, "test-MSCEP-RA", fx.ca_cert, fx.ca_key, 2);
	fx.other_cert =
	    make_cert(fx.other_key, "Other RA", fx.ca_cert, fx.ca_key, 3);
	fx.client_cert = make_cert(fx.client_key, "SCEP SIGNER", NULL, NULL, 7);
	fx.issued =
	    make_cert(fx.client_key, "device-1", fx.ca_cert, fx.ca_key, 1000);
	fx.csr = make_csr(fx.client_key, "device-1", "s3cret-OTP");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(fx.client_key);
	EVP_PKEY_free(fx.ra_key);
	EVP_PKEY_free(fx.ca_key);
	EVP_PKEY_free(fx.other_key);
	X509_free(fx.client_cert);
	X509_free(fx.ra_cert);
	X509_free(fx.ca_cert);
	X509_free(fx.other_cert);
	X509_free(fx.issued);
	X509_REQ_free(fx.csr);
	return 0;
}

static const char *
cn_of_req(X509_REQ *req, char *buf, size_t len)
{
	X509_NAME_get_text_by_NID(
	    X509_REQ_get_subject_name(req), NID_commonName, buf, (int)len);
	return buf;
}

/* --- real messages ------------------------------------------------------- */

static const uint8_t apple_nonce[] = {
    0xAE, 0x7F, 0xE8, 0x81, 0x6C, 0xC6, 0xBE, 0xDD};

static void
test_apple_pkcsreq(void **state)
{
	struct scep_request *req = NULL;
	uint8_t *der, *plain = NULL;
	size_t len, plain_len;
	X509 *ca = load_cert(MMDM "testca/ca.pem");
	EVP_PKEY *key = load_key(MMDM "testca/ca.key");
	X509_REQ *csr = NULL;
	char *challenge = NULL, cn[128];
	const char *why = NULL;
	int fi, cipher;

	(void)state;
	der = read_file(MMDM "PKCSReq.der", &len);
	assert_int_equal(
	    scep_request_parse(der, len, &scep_default_policy, &req, &fi, &why),
	    SCEP_OK);
	assert_non_null(req);
	assert_int_equal(req->message_type, SCEP_MSG_PKCSREQ);
	assert_string_equal(
	    req->transaction_id, "A13090761A30F66664F85D37433D2065E1112BA1");
	assert_int_equal(req->sender_nonce_len, 8);
	assert_memory_equal(req->sender_nonce, apple_nonce, 8);
	assert_int_equal(req->digest_nid, NID_sha1);
	assert_non_null(req->signer);
	X509_NAME_get_text_by_NID(
	    X509_get_subject_name(req->signer), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, "MDM SCEP SIGNER");
	assert_true(req->envelope_len > 1000);

	assert_int_equal(
	    scep_envelope_open(req->envelope, req->envelope_len, ca, key,
	        &scep_default_policy, &plain, &plain_len, &cipher, &fi, &why),
	    SCEP_OK);
	assert_int_equal(cipher, NID_des_ede3_cbc);
	assert_int_equal(
	    scep_csr_parse(plain, plain_len, &csr, &challenge, &fi, &why),
	    SCEP_OK);
	assert_int_equal(X509_REQ_get_version(csr), 2);
	assert_null(challenge);
	assert_string_equal(cn_of_req(csr, cn, sizeof(cn)),
	    "com.apple.security.scep.063D7953-1338-4BF0-8F99-913382996224");

	X509_REQ_free(csr);
	free(plain);
	scep_request_free(req);
	free(der);
	X509_free(ca);
	EVP_PKEY_free(key);
}

/* The same Apple request under a policy without SHA-1, then without 3DES:
 * refused with badAlg, and the caller still gets what it needs to answer. */
static void
test_apple_policy(void **state)
{
	struct scep_alg_policy no_sha1 = {0, 1, 0}, no_des3 = {0, 0, 1};
	struct scep_request *req = NULL;
	uint8_t *der, *plain = NULL;
	size_t len, plain_len;
	X509 *ca = load_cert(MMDM "testca/ca.pem");
	EVP_PKEY *key = load_key(MMDM "testca/ca.key");
	const char *why = NULL;
	int fi, cipher;

	(void)state;
	der = read_file(MMDM "PKCSReq.der", &len);
	assert_int_equal(
	    scep_request_parse(der, len, &no_sha1, &req, &fi, &why),
	    SCEP_E_ALGORITHM);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_ALG);
	assert_non_null(why);
	assert_non_null(strstr(why, "AllowSHA1 = 1"));
	assert_non_null(req);
	assert_string_equal(
	    req->transaction_id, "A13090761A30F66664F85D37433D2065E1112BA1");
	assert_int_equal(req->sender_nonce_len, 8);
	scep_request_free(req);

	assert_int_equal(
	    scep_request_parse(der, len, &no_des3, &req, &fi, &why), SCEP_OK);
	assert_int_equal(
	    scep_envelope_open(req->envelope, req->envelope_len, ca, key,
	        &no_des3, &plain, &plain_len, &cipher, &fi, &why),
	    SCEP_E_ALGORITHM);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_ALG);
	assert_int_equal(cipher, NID_des_ede3_cbc);
	assert_non_null(strstr(why, "AllowDES3 = 1"));
	assert_null(plain);

	scep_request_free(req);
	free(der);
	X509_free(ca);
	EVP_PKEY_free(key);
}

static const uint8_t cryptlib_nonce[] = {0xE8, 0xC5, 0x7D, 0x51, 0x69, 0x09,
    0x02, 0x6F, 0x34, 0x63, 0xF8, 0xE9, 0x07, 0xFC, 0x98, 0x56};

static void
test_cryptlib_pkcsreq(void **state)
{
	struct scep_request *req = NULL;
	uint8_t *der, *plain = NULL;
	size_t len, plain_len;
	X509_REQ *csr = NULL;
	char *challenge = NULL;
	const char *why = NULL;
	int fi, cipher;

	(void)state;
	der = read_file(JSCEP "scep_req2.der", &len);
	assert_int_equal(
	    scep_request_parse(der, len, NULL, &req, &fi, &why), SCEP_OK);
	assert_int_equal(req->message_type, SCEP_MSG_PKCSREQ);
	assert_string_equal(req->transaction_id, "7XXEY-ERLPU-2JDR9");
	assert_int_equal(req->digest_nid, NID_sha256);
	assert_int_equal(req->sender_nonce_len, 16);
	assert_memory_equal(req->sender_nonce, cryptlib_nonce, 16);

	/* Not for us: the envelope is read, refused to decrypt. */
	assert_int_equal(
	    scep_envelope_open(req->envelope, req->envelope_len, fx.ra_cert,
	        fx.ra_key, NULL, &plain, &plain_len, &cipher, &fi, &why),
	    SCEP_E_DECRYPT);
	assert_int_equal(cipher, NID_aes_128_cbc);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_MESSAGE_CHECK);
	scep_request_free(req);
	free(der);

	/* Its plaintext CSR: PrintableString challengePassword. */
	der = read_file(JSCEP "scep_req0.der", &len);
	assert_int_equal(
	    scep_csr_parse(der, len, &csr, &challenge, &fi, &why), SCEP_OK);
	assert_string_equal(challenge, "NQ3C6-GS3ZN-2XPGL-SEJTQ");
	free(challenge);
	X509_REQ_free(csr);
	free(der);
}

/* The captured PSS request with its SignerInfo's PSS parameters naming
 * SHA-384, not the digestAlgorithm's SHA-256 (first the hash, then
 * MGF1's): refused. */
static void
pss_params_altered(uint8_t *der, size_t len)
{
	static const uint8_t pss_oid[] = {
	    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a};
	static const uint8_t sha256_oid[] = {
	    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
	struct scep_request *req = NULL;
	const char *why = NULL;
	size_t si = 0, hash[2], found = 0;
	int fi;

	/* The last rsassaPss: the SignerInfo's (the certificate's come
	 * before). */
	for (size_t i = 0; i + sizeof(pss_oid) <= len; i++)
		if (memcmp(der + i, pss_oid, sizeof(pss_oid)) == 0)
			si = i;
	assert_true(si > 0);
	for (size_t i = si; i + sizeof(sha256_oid) <= len && found < 2; i++)
		if (memcmp(der + i, sha256_oid, sizeof(sha256_oid)) == 0)
			hash[found++] = i + sizeof(sha256_oid) - 1;
	assert_int_equal(found, 2);
	for (size_t k = 0; k < 2; k++) {
		der[hash[k]] = 0x02; /* sha384 */
		assert_int_equal(
		    scep_request_parse(der, len, NULL, &req, &fi, &why),
		    SCEP_E_SIGNATURE);
		assert_null(req);
		der[hash[k]] = 0x01;
	}
}

/* strongSwan's pki --scep --rsa-padding pss (captured by
 * tests/fuzz/capture-corpus.sh pkipss): the pkiMessage signed with
 * RSASSA-PSS, which OpenSSL's PKCS#7 verifies only as PKCS#1 v1.5. It
 * verifies; a changed signature or content does not. */
static void
test_strongswan_pss_pkcsreq(void **state)
{
	struct scep_request *req = NULL;
	const char *why = NULL;
	size_t len;
	uint8_t *der =
	    read_file(CORPUS_DIR "/pkimessage/captured-pkipss.der", &len);
	int fi;

	(void)state;
	assert_int_equal(
	    scep_request_parse(der, len, NULL, &req, &fi, &why), SCEP_OK);
	assert_non_null(req->signer);
	assert_int_equal(req->message_type, SCEP_MSG_PKCSREQ);
	assert_int_equal(req->digest_nid, NID_sha256);
	scep_request_free(req);
	req = NULL;
	/* The signature's last byte; then a byte of the envelope (the
	 * messageDigest then differs). */
	for (size_t at = len - 1; at != 0; at = at == len - 1 ? 200 : 0) {
		der[at] ^= 0x01;
		why = NULL;
		assert_int_equal(
		    scep_request_parse(der, len, NULL, &req, &fi, &why),
		    SCEP_E_SIGNATURE);
		assert_null(req);
		assert_string_equal(
		    why, "the request's signature does not verify");
		der[at] ^= 0x01;
	}
	pss_params_altered(der, len);
	free(der);
}

/* NDES's CertRep carries no certificate: verified only with the RA cert. */
static void
test_ndes_certrep(void **state)
{
	struct scep_certrep *rep = NULL;
	X509 *ra = load_cert(MMDM "testca2/ca2.pem");
	X509 *wrong = load_cert(MMDM "testca/ca.pem");
	uint8_t *der;
	size_t len;

	(void)state;
	der = read_file(
	    MMDM "testca2/CertRep_NoCertificatesForSigners.der", &len);
	assert_int_equal(
	    scep_certrep_parse(der, len, ra, NULL, NULL, &rep), SCEP_OK);
	assert_int_equal(rep->pki_status, SCEP_STATUS_SUCCESS);
	assert_int_equal(rep->failinfo, SCEP_FAILINFO_NONE);
	assert_string_equal(
	    rep->transaction_id, "HVvzN0228V+AW+dUuDe8OPyDXD0=");
	assert_int_equal(rep->digest_nid, NID_sha1);
	assert_int_equal(rep->cipher_nid, NID_aes_128_cbc);
	assert_int_equal(rep->recipient_nonce_len, 16);
	assert_int_equal(rep->sender_nonce_len, 16);
	assert_int_equal(X509_cmp(rep->signer, ra), 0);
	/* No client key: the envelope is not opened. */
	assert_null(rep->certs);
	scep_certrep_free(rep);
	rep = NULL;

	assert_int_equal(scep_certrep_parse(der, len, NULL, NULL, NULL, &rep),
	    SCEP_E_CONTENT);
	assert_null(rep);
	assert_int_equal(scep_certrep_parse(der, len, wrong, NULL, NULL, &rep),
	    SCEP_E_CONTENT);
	assert_null(rep);

	free(der);
	X509_free(ra);
	X509_free(wrong);
}

static void
test_micromdm_and_cryptlib_certrep(void **state)
{
	struct scep_certrep *rep = NULL;
	X509 *ca = load_cert(MMDM "testca/ca.pem");
	uint8_t *der;
	size_t len;

	(void)state;
	der = read_file(MMDM "CertRep.der", &len);
	assert_int_equal(
	    scep_certrep_parse(der, len, ca, NULL, NULL, &rep), SCEP_OK);
	assert_int_equal(rep->pki_status, SCEP_STATUS_SUCCESS);
	assert_string_equal(
	    rep->transaction_id, "A13090761A30F66664F85D37433D2065E1112BA1");
	assert_int_equal(rep->recipient_nonce_len, 8);
	assert_memory_equal(rep->recipient_nonce, apple_nonce, 8);
	assert_int_equal(rep->cipher_nid, NID_des_cbc);
	scep_certrep_free(rep);
	rep = NULL;
	/* Its own included certificate verifies it as well. */
	assert_int_equal(
	    scep_certrep_parse(der, len, NULL, NULL, NULL, &rep), SCEP_OK);
	scep_certrep_free(rep);
	rep = NULL;
	free(der);

	/* cryptlib answers without a senderNonce. */
	der = read_file(JSCEP "scep_resp2.der", &len);
	assert_int_equal(
	    scep_certrep_parse(der, len, NULL, NULL, NULL, &rep), SCEP_OK);
	assert_int_equal(rep->pki_status, SCEP_STATUS_SUCCESS);
	assert_string_equal(rep->transaction_id, "7XXEY-ERLPU-2JDR9");
	assert_null(rep->sender_nonce);
	assert_int_equal(rep->recipient_nonce_len, 16);
	assert_memory_equal(rep->recipient_nonce, cryptlib_nonce, 16);
	assert_int_equal(rep->digest_nid, NID_sha256);
	assert_int_equal(rep->cipher_nid, NID_aes_128_cbc);
	scep_certrep_free(rep);
	free(der);
	X509_free(ca);
}

/* --- round trips --------------------------------------------------------- */

static uint8_t *
build_req(
    const EVP_CIPHER *cipher, int ber, X509 *recipient, int type, size_t *len)
{
	struct scep_pkcsreq_params p = {
	    .message_type = type,
	    .csr = fx.csr,
	    .signer = fx.client_cert,
	    .signer_key = fx.client_key,
	    .recipient = recipient,
	    .cipher = cipher,
	    .digest = EVP_sha256(),
	    .ber_indefinite = ber,
	};
	uint8_t *out = NULL;

	assert_int_equal(scep_pkcsreq_build(&p, &out, len), SCEP_OK);
	assert_non_null(out);
	return out;
}

static char *
expected_txid(void)
{
	unsigned char *spki = NULL, md[32];
	unsigned int mdlen = 0;
	char *hex = malloc(65);
	int n = i2d_PUBKEY(X509_REQ_get0_pubkey(fx.csr), &spki);

	assert_true(n > 0);
	assert_true(
	    EVP_Digest(spki, (size_t)n, md, &mdlen, EVP_sha256(), NULL));
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02X", md[i]);
	OPENSSL_free(spki);
	return hex;
}

/* Builds cp's CertRep, opens it as the client and checks that it brings
 * the issued certificate, then the CA's. The caller frees it. */
static struct scep_certrep *
certrep_issued_and_ca(const struct scep_certrep_params *cp)
{
	struct scep_certrep *rep = NULL;
	uint8_t *der = NULL;
	size_t len;

	assert_int_equal(scep_certrep_build(cp, &der, &len), SCEP_OK);
	assert_int_equal(scep_certrep_parse(der, len, fx.ra_cert,
	                     fx.client_cert, fx.client_key, &rep),
	    SCEP_OK);
	assert_int_equal(rep->pki_status, SCEP_STATUS_SUCCESS);
	assert_int_equal(sk_X509_num(rep->certs), 2);
	assert_int_equal(X509_cmp(sk_X509_value(rep->certs, 0), fx.issued), 0);
	assert_int_equal(X509_cmp(sk_X509_value(rep->certs, 1), fx.ca_cert), 0);
	free(der);
	return rep;
}

static void
check_certrep_success(const struct scep_request *req, int cipher_nid)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	struct scep_certrep_params cp = {
	    .transaction_id = req->transaction_id,
	    .recipient_nonce = req->sender_nonce,
	    .recipient_nonce_len = req->sender_nonce_len,
	    .pki_status = SCEP_STATUS_SUCCESS,
	    .issued = fx.issued,
	    .issued_chain = chain,
	    .recipient = req->signer,
	    .cipher = scep_reply_cipher(cipher_nid),
	    .signer = fx.ra_cert,
	    .signer_key = fx.ra_key,
	    .digest = scep_reply_digest(req->digest_nid),
	};
	struct scep_certrep *rep;
	uint8_t *ready = NULL;
	size_t ready_len = 0;

	assert_true(sk_X509_push(chain, fx.ca_cert));
	rep = certrep_issued_and_ca(&cp);
	assert_string_equal(rep->transaction_id, req->transaction_id);
	assert_int_equal(rep->recipient_nonce_len, req->sender_nonce_len);
	assert_memory_equal(
	    rep->recipient_nonce, req->sender_nonce, req->sender_nonce_len);
	assert_int_equal(rep->sender_nonce_len, 16);
	assert_memory_not_equal(rep->sender_nonce, req->sender_nonce, 16);
	assert_int_equal(rep->digest_nid, NID_sha256);
	assert_int_equal(rep->cipher_nid,
	    cipher_nid == NID_des_ede3_cbc ? NID_des_ede3_cbc : cipher_nid);
	scep_certrep_free(rep);

	/* The same certificates handed over as the CA sends them, a ready
	 * degenerate SignedData: enveloped as they come. */
	assert_true(sk_X509_insert(chain, fx.issued, 0));
	assert_int_equal(
	    scep_certs_only_build(chain, &ready, &ready_len), SCEP_OK);
	cp.issued = NULL;
	cp.issued_chain = NULL;
	cp.certs_only = ready;
	cp.certs_only_len = ready_len;
	scep_certrep_free(certrep_issued_and_ca(&cp));
	free(ready);
	sk_X509_free(chain);
}

static void
round_trip(const EVP_CIPHER *cipher, int ber)
{
	struct scep_request *req = NULL;
	uint8_t *der, *plain = NULL, *csr_der = NULL;
	size_t len, plain_len;
	X509_REQ *csr = NULL;
	char *challenge = NULL, *txid = expected_txid();
	const char *why = NULL;
	int fi, cipher_nid, csr_len;

	der = build_req(cipher, ber, fx.ra_cert, SCEP_MSG_PKCSREQ, &len);
	if (ber) {
		/* Outer SEQUENCE and [0] of indefinite length, as iOS. */
		assert_int_equal(der[0], 0x30);
		assert_int_equal(der[1], 0x80);
	} else {
		assert_int_equal(der[0], 0x30);
		assert_int_not_equal(der[1], 0x80);
	}
	assert_int_equal(
	    scep_request_parse(der, len, NULL, &req, &fi, &why), SCEP_OK);
	assert_int_equal(req->message_type, SCEP_MSG_PKCSREQ);
	assert_string_equal(req->transaction_id, txid);
	assert_int_equal(req->sender_nonce_len, 16);
	assert_int_equal(req->digest_nid, NID_sha256);
	assert_int_equal(X509_cmp(req->signer, fx.client_cert), 0);
	/* The inner EnvelopedData is streamed BER too. */
	assert_int_equal(req->envelope[1] == 0x80, ber);

	assert_int_equal(
	    scep_envelope_open(req->envelope, req->envelope_len, fx.ra_cert,
	        fx.ra_key, NULL, &plain, &plain_len, &cipher_nid, &fi, &why),
	    SCEP_OK);
	assert_int_equal(cipher_nid, EVP_CIPHER_get_nid(cipher));
	csr_len = i2d_X509_REQ(fx.csr, &csr_der);
	assert_int_equal(plain_len, (size_t)csr_len);
	assert_memory_equal(plain, csr_der, plain_len);
	assert_int_equal(
	    scep_csr_parse(plain, plain_len, &csr, &challenge, &fi, &why),
	    SCEP_OK);
	assert_string_equal(challenge, "s3cret-OTP");

	check_certrep_success(req, cipher_nid);

	OPENSSL_free(csr_der);
	free(challenge);
	X509_REQ_free(csr);
	free(plain);
	scep_request_free(req);
	free(der);
	free(txid);
}

static void
test_round_trip_der(void **state)
{
	(void)state;
	round_trip(EVP_aes_128_cbc(), 0);
	round_trip(EVP_aes_256_cbc(), 0);
	round_trip(EVP_des_ede3_cbc(), 0);
}

static void
test_round_trip_ber(void **state)
{
	(void)state;
	round_trip(EVP_aes_128_cbc(), 1);
	round_trip(EVP_aes_256_cbc(), 1);
	round_trip(EVP_des_ede3_cbc(), 1);
}

static struct scep_certrep *
certrep_status(
    int status, int failinfo, const char *text, uint8_t **der, size_t *len)
{
	static const uint8_t nonce[16] = {
	    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	struct scep_certrep_params cp = {
	    .transaction_id = "TXID-ab/c+d=",
	    .recipient_nonce = nonce,
	    .recipient_nonce_len = sizeof(nonce),
	    .pki_status = status,
	    .failinfo = failinfo,
	    .failinfo_text = text,
	    .recipient = fx.client_cert,
	    .cipher = EVP_aes_128_cbc(),
	    .signer = fx.ra_cert,
	    .signer_key = fx.ra_key,
	    .digest = EVP_sha256(),
	};
	struct scep_certrep *rep = NULL;

	assert_int_equal(scep_certrep_build(&cp, der, len), SCEP_OK);
	assert_int_equal(scep_certrep_parse(*der, *len, fx.ra_cert,
	                     fx.client_cert, fx.client_key, &rep),
	    SCEP_OK);
	assert_int_equal(rep->pki_status, status);
	assert_string_equal(rep->transaction_id, "TXID-ab/c+d=");
	assert_int_equal(rep->recipient_nonce_len, 16);
	assert_memory_equal(rep->recipient_nonce, nonce, 16);
	assert_int_equal(rep->cipher_nid, NID_undef);
	assert_null(rep->certs);
	assert_null(rep->crls);
	return rep;
}

/* eContent present but empty, as micromdm's server answers. */
static void
assert_empty_econtent(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);

	assert_non_null(p7);
	assert_true(PKCS7_type_is_signed(p7));
	assert_non_null(p7->d.sign->contents->d.data);
	assert_int_equal(ASN1_STRING_length(p7->d.sign->contents->d.data), 0);
	assert_int_equal(sk_X509_num(p7->d.sign->cert), 1);
	PKCS7_free(p7);
}

static void
test_certrep_failure_pending(void **state)
{
	struct scep_certrep *rep;
	uint8_t *der = NULL;
	size_t len;
	char text[64];

	(void)state;
	for (int fi = SCEP_FAILINFO_BAD_ALG; fi <= SCEP_FAILINFO_BAD_CERT_ID;
	     fi++) {
		snprintf(
		    text, sizeof(text), "refused: %s", scep_failinfo_name(fi));
		rep = certrep_status(SCEP_STATUS_FAILURE, fi, text, &der, &len);
		assert_int_equal(rep->failinfo, fi);
		assert_string_equal(rep->failinfo_text, text);
		assert_empty_econtent(der, len);
		scep_certrep_free(rep);
		free(der);
	}
	rep = certrep_status(
	    SCEP_STATUS_FAILURE, SCEP_FAILINFO_BAD_REQUEST, NULL, &der, &len);
	assert_null(rep->failinfo_text);
	scep_certrep_free(rep);
	free(der);
	/* Not UTF-8 (a plugin's reason cut within a character, Latin-1, a
	 * surrogate, an overlong '/'): each such byte '?', so that the
	 * UTF8String is one; whole characters kept. */
	rep = certrep_status(SCEP_STATUS_FAILURE, SCEP_FAILINFO_BAD_REQUEST,
	    "\"\xC3\xA9t\xC3\xA9\xF0\x9F\x94\x92 caf\xE9 \xED\xA0\x80 \xC0\xAF "
	    "\xC3",
	    &der, &len);
	assert_string_equal(rep->failinfo_text,
	    "\"\xC3\xA9t\xC3\xA9\xF0\x9F\x94\x92 caf? ??? ?? ?");
	scep_certrep_free(rep);
	free(der);

	rep = certrep_status(
	    SCEP_STATUS_PENDING, SCEP_FAILINFO_NONE, NULL, &der, &len);
	assert_int_equal(rep->failinfo, SCEP_FAILINFO_NONE);
	assert_empty_econtent(der, len);
	scep_certrep_free(rep);
	free(der);
}

static void
test_certrep_refuses_des(void **state)
{
	struct scep_certrep_params cp = {
	    .transaction_id = "T",
	    .pki_status = SCEP_STATUS_SUCCESS,
	    .issued = fx.issued,
	    .recipient = fx.client_cert,
	    .cipher = EVP_des_cbc(),
	    .signer = fx.ra_cert,
	    .signer_key = fx.ra_key,
	    .digest = EVP_sha256(),
	};
	uint8_t *der = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(scep_certrep_build(&cp, &der, &len), SCEP_E_ALGORITHM);
	assert_null(der);
	assert_true(scep_reply_cipher(NID_des_cbc) == EVP_des_ede3_cbc());
	assert_true(scep_reply_cipher(NID_des_ede3_cbc) == EVP_des_ede3_cbc());
	assert_true(scep_reply_cipher(NID_aes_256_cbc) == EVP_aes_256_cbc());
	assert_true(scep_reply_cipher(NID_aes_192_cbc) == EVP_aes_192_cbc());
	assert_true(scep_reply_cipher(NID_undef) == EVP_aes_128_cbc());
	assert_true(scep_reply_digest(NID_sha1) == EVP_sha256());
	assert_true(scep_reply_digest(NID_sha512) == EVP_sha512());
	assert_true(scep_reply_digest(NID_sha384) == EVP_sha384());
}

static void
test_des_envelope(void **state)
{
	struct scep_alg_policy des = {1, 1, 1};
	struct scep_request *req = NULL;
	uint8_t *der, *plain = NULL;
	size_t len, plain_len;
	const char *why = NULL;
	int fi, cipher;

	(void)state;
	der = build_req(EVP_des_cbc(), 0, fx.ra_cert, SCEP_MSG_PKCSREQ, &len);
	assert_int_equal(
	    scep_request_parse(der, len, NULL, &req, &fi, &why), SCEP_OK);
	assert_int_equal(scep_envelope_open(req->envelope, req->envelope_len,
	                     fx.ra_cert, fx.ra_key, &scep_default_policy,
	                     &plain, &plain_len, &cipher, &fi, &why),
	    SCEP_E_ALGORITHM);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_ALG);
	assert_int_equal(cipher, NID_des_cbc);
	assert_string_equal(why,
	    "single DES is refused (RFC 8894); set "
	    "AllowDES = 1 in the [ra] section to allow it");
	assert_int_equal(
	    scep_envelope_open(req->envelope, req->envelope_len, fx.ra_cert,
	        fx.ra_key, &des, &plain, &plain_len, &cipher, &fi, &why),
	    SCEP_OK);
	assert_int_equal(cipher, NID_des_cbc);
	assert_true(plain_len > 0);
	free(plain);
	scep_request_free(req);
	free(der);
}

/* Flips the last byte of the SignerInfo's signature (the last element of a
 * DER request without unsigned attributes) or a byte of the content. */
static void
test_tampered_signature(void **state)
{
	struct scep_request *req = NULL;
	uint8_t *der;
	size_t len;
	const char *why = NULL;
	int fi = 0;

	(void)state;
	der =
	    build_req(EVP_aes_128_cbc(), 0, fx.ra_cert, SCEP_MSG_PKCSREQ, &len);
	der[len - 1] ^= 0x01;
	assert_int_equal(scep_request_parse(der, len, NULL, &req, &fi, &why),
	    SCEP_E_SIGNATURE);
	assert_int_equal(fi, SCEP_FAILINFO_NONE);
	assert_null(req);
	der[len - 1] ^= 0x01;
	/* A byte inside the envelope: the messageDigest no longer matches. */
	der[200] ^= 0x01;
	assert_int_equal(scep_request_parse(der, len, NULL, &req, &fi, &why),
	    SCEP_E_SIGNATURE);
	assert_int_equal(fi, SCEP_FAILINFO_NONE);
	assert_null(req);
	free(der);

	/* A CertRep signed by someone else than the RA is refused. */
	{
		struct scep_certrep *rep = NULL;
		uint8_t *rd = NULL;
		size_t rl;

		rep = certrep_status(
		    SCEP_STATUS_PENDING, SCEP_FAILINFO_NONE, NULL, &rd, &rl);
		scep_certrep_free(rep);
		rep = NULL;
		assert_int_not_equal(
		    scep_certrep_parse(rd, rl, fx.other_cert, NULL, NULL, &rep),
		    SCEP_OK);
		assert_null(rep);
		rd[rl - 1] ^= 0x01;
		assert_int_equal(
		    scep_certrep_parse(rd, rl, fx.ra_cert, NULL, NULL, &rep),
		    SCEP_E_SIGNATURE);
		assert_null(rep);
		free(rd);
	}
}

static uint8_t *
envelope_of(const uint8_t *der, size_t len, size_t *env_len)
{
	struct scep_request *req = NULL;
	uint8_t *env;
	const char *why;
	int fi;

	assert_int_equal(
	    scep_request_parse(der, len, NULL, &req, &fi, &why), SCEP_OK);
	env = malloc(req->envelope_len);
	memcpy(env, req->envelope, req->envelope_len);
	*env_len = req->envelope_len;
	scep_request_free(req);
	return env;
}

/*
 * Wrong recipient, bad RSA block and bad CBC padding all give the same
 * error and reason. A bad RSA block makes the codec decrypt with a random
 * key (OpenSSL's defence against padding oracles, done as PKCS7_decrypt
 * does), which passes the CBC padding check about once in 256 tries: then
 * the result is garbage, never the CSR.
 */
static void
test_decrypt_failures_look_alike(void **state)
{
	uint8_t *der, *env, *plain = NULL, *out = NULL, *csr_der = NULL;
	size_t len, env_len, plain_len;
	const char *why = NULL, *why_first;
	const unsigned char *p;
	PKCS7 *p7;
	PKCS7_RECIP_INFO *ri;
	int fi, cipher, rc, n, csr_len;

	(void)state;
	csr_len = i2d_X509_REQ(fx.csr, &csr_der);

	/* Encrypted to another RA. */
	der = build_req(
	    EVP_aes_128_cbc(), 0, fx.other_cert, SCEP_MSG_PKCSREQ, &len);
	env = envelope_of(der, len, &env_len);
	assert_int_equal(scep_envelope_open(env, env_len, fx.ra_cert, fx.ra_key,
	                     NULL, &plain, &plain_len, &cipher, &fi, &why),
	    SCEP_E_DECRYPT);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_MESSAGE_CHECK);
	assert_null(plain);
	why_first = why;
	free(env);
	free(der);

	/* CBC padding: flip the top bit of the last byte of the next-to-last
	 * ciphertext block, i.e. of the padding length byte. */
	der =
	    build_req(EVP_aes_128_cbc(), 0, fx.ra_cert, SCEP_MSG_PKCSREQ, &len);
	env = envelope_of(der, len, &env_len);
	env[env_len - 1 - 16] ^= 0x80;
	assert_int_equal(scep_envelope_open(env, env_len, fx.ra_cert, fx.ra_key,
	                     NULL, &plain, &plain_len, &cipher, &fi, &why),
	    SCEP_E_DECRYPT);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_MESSAGE_CHECK);
	assert_string_equal(why, why_first);
	env[env_len - 1 - 16] ^= 0x80;

	/* RSA block: overwrite the encrypted key. */
	p = env;
	p7 = d2i_PKCS7(NULL, &p, (long)env_len);
	assert_non_null(p7);
	ri = sk_PKCS7_RECIP_INFO_value(p7->d.enveloped->recipientinfo, 0);
	memset(ri->enc_key->data, 0x55, (size_t)ri->enc_key->length);
	n = i2d_PKCS7(p7, &out);
	assert_true(n > 0);
	rc = scep_envelope_open(out, (size_t)n, fx.ra_cert, fx.ra_key, NULL,
	    &plain, &plain_len, &cipher, &fi, &why);
	if (rc == SCEP_OK) {
		assert_false(plain_len == (size_t)csr_len &&
		    memcmp(plain, csr_der, plain_len) == 0);
		free(plain);
	} else {
		assert_int_equal(rc, SCEP_E_DECRYPT);
		assert_int_equal(fi, SCEP_FAILINFO_BAD_MESSAGE_CHECK);
		assert_string_equal(why, why_first);
	}
	OPENSSL_free(out);
	PKCS7_free(p7);
	OPENSSL_free(csr_der);
	free(env);
	free(der);
	assert_int_equal(ERR_peek_error(), 0);
}

/* Keys a server must refuse before any math (tests/tools/scep_client.c). */
static EVP_PKEY *
fake_rsa(int bits, int e_bits)
{
	EVP_PKEY *pk = scep_fake_rsa_public(bits, e_bits);

	assert_non_null(pk);
	return pk;
}

static EVP_PKEY *
explicit_ec(void)
{
	EVP_PKEY *pk = scep_explicit_ec_key();

	assert_non_null(pk);
	return pk;
}

/* DER of a CSR holding `pub`, signed by `key` (the same key, or not). */
static uint8_t *
csr_der_with(EVP_PKEY *pub, EVP_PKEY *key, size_t *len)
{
	X509_REQ *req = make_csr(key, "device-1", "s3cret-OTP");
	unsigned char *der = NULL;
	uint8_t *out;
	int n;

	assert_true(X509_REQ_set_pubkey(req, pub));
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	n = i2d_X509_REQ(req, &der);
	assert_true(n > 0);
	out = malloc((size_t)n);
	memcpy(out, der, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(der);
	X509_REQ_free(req);
	return out;
}

/* The pkcsPKIEnvelope of a request carrying `content` to `recipient`. */
static uint8_t *
envelope_holding(
    const uint8_t *content, size_t len, X509 *recipient, size_t *env_len)
{
	struct scep_pkcsreq_params p = {
	    .message_type = SCEP_MSG_PKCSREQ,
	    .transaction_id = "oracle",
	    .signer = fx.client_cert,
	    .signer_key = fx.client_key,
	    .recipient = recipient,
	    .cipher = EVP_aes_128_cbc(),
	    .content = content,
	    .content_len = len,
	};
	uint8_t *der = NULL, *env;
	size_t der_len;

	assert_int_equal(scep_pkcsreq_build(&p, &der, &der_len), SCEP_OK);
	env = envelope_of(der, der_len, env_len);
	free(der);
	return env;
}

/* The RA's encryption pair as scep_envelope_read takes it. */
#define RA_KEYS (&(const struct scep_ra_key){fx.ra_cert, fx.ra_key})

/* scep_envelope_read of `env` as `kind`, which must fail with `why` (the
 * first call sets it) and a log detail containing `detail`. */
static void
read_refused(const uint8_t *env, size_t env_len, enum scep_content_kind kind,
    const char **why, const char *detail)
{
	struct scep_content c;
	const char *w = NULL, *d = NULL;
	int fi, cipher;

	assert_int_equal(scep_envelope_read(env, env_len, RA_KEYS, 1, NULL,
	                     NULL, kind, &c, &cipher, &fi, &w, &d),
	    SCEP_E_DECRYPT);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_MESSAGE_CHECK);
	assert_int_equal(cipher, NID_aes_128_cbc);
	assert_null(c.csr);
	assert_null(c.challenge);
	assert_null(c.issuer);
	if (*why == NULL)
		*why = w;
	assert_string_equal(w, *why);
	assert_non_null(d);
	if (detail != NULL && strstr(d, detail) == NULL)
		fail_msg("detail \"%s\" does not say \"%s\"", d, detail);
	assert_int_equal(ERR_peek_error(), 0);
}

/* The pkcsPKIEnvelope of a PKCSReq encrypted to `recipient`; free it. */
static uint8_t *
envelope_to(X509 *recipient, size_t *env_len)
{
	size_t len;
	uint8_t *der =
	    build_req(EVP_aes_128_cbc(), 0, recipient, SCEP_MSG_PKCSREQ, &len);
	uint8_t *env = envelope_of(der, len, env_len);

	free(der);
	return env;
}

/* scep_envelope_read of `env` (freed) with `keys`, which must open it to
 * the fixture's CSR: the note for the log, NULL when none. */
static const char *
read_opened(
    uint8_t *env, size_t env_len, const struct scep_ra_key *keys, size_t nkeys)
{
	struct scep_content c;
	const char *w = NULL, *d = "unset";
	int fi, cipher;

	assert_int_equal(scep_envelope_read(env, env_len, keys, nkeys, NULL,
	                     NULL, SCEP_CONTENT_CSR, &c, &cipher, &fi, &w, &d),
	    SCEP_OK);
	assert_string_equal(c.challenge, "s3cret-OTP");
	scep_content_clear(&c);
	free(env);
	return d;
}

/* Whether the note `d` says `what`. */
static void
assert_note(const char *d, const char *what)
{
	assert_non_null(d);
	if (strstr(d, what) == NULL)
		fail_msg("note \"%s\" does not say \"%s\"", d, what);
}

/*
 * An RA certificate reissued with the same key (a CA switch, a renewal
 * that keeps the key): a client that fetched the earlier one still
 * encrypts to it, and the RA's key opens it, with a note for the log.
 */
static void
test_envelope_read_earlier_ra_cert(void **state)
{
	X509 *earlier =
	    make_cert(fx.ra_key, "test-MSCEP-RA", fx.ca_cert, fx.ca_key, 99);
	size_t env_len;
	uint8_t *env;

	(void)state;
	assert_non_null(earlier);
	env = envelope_to(earlier, &env_len);
	assert_note(
	    read_opened(env, env_len, RA_KEYS, 1), "another certificate");
	/* Addressed to the RA's own certificate: no note. */
	env = envelope_to(fx.ra_cert, &env_len);
	assert_null(read_opened(env, env_len, RA_KEYS, 1));
	X509_free(earlier);
}

/* An EnvelopedData of the fixture's CSR with a RecipientInfo for `a`, then
 * one for `b` (checked: DER sorts a SET OF, so `a`'s serial must be the
 * lower). Free it. */
static uint8_t *
envelope_to_two(X509 *a, X509 *b, size_t *len)
{
	STACK_OF(X509) *to = sk_X509_new_null();
	unsigned char *csr = NULL, *der = NULL;
	const unsigned char *p;
	uint8_t *env;
	int csr_len = i2d_X509_REQ(fx.csr, &csr), n;
	BIO *in = BIO_new_mem_buf(csr, csr_len);
	PKCS7 *p7;

	assert_true(sk_X509_push(to, a) && sk_X509_push(to, b));
	p7 = PKCS7_encrypt(to, in, EVP_aes_128_cbc(), PKCS7_BINARY);
	assert_non_null(p7);
	n = i2d_PKCS7(p7, &der);
	assert_true(n > 0);
	*len = (size_t)n;
	PKCS7_free(p7);
	p = der;
	p7 = d2i_PKCS7(NULL, &p, n);
	assert_non_null(p7);
	assert_int_equal(ASN1_INTEGER_cmp(sk_PKCS7_RECIP_INFO_value(
	                                      p7->d.enveloped->recipientinfo, 0)
	                                      ->issuer_and_serial->serial,
	                     X509_get0_serialNumber(a)),
	    0);
	PKCS7_free(p7);
	BIO_free(in);
	OPENSSL_free(csr);
	sk_X509_free(to);
	env = malloc((size_t)n);
	assert_non_null(env);
	memcpy(env, der, (size_t)n);
	OPENSSL_free(der);
	return env;
}

/*
 * The RA's encryption key replaced by a new one (PreviousEncryption*):
 * an envelope to the earlier certificate opens with the earlier key,
 * given; without it, it fails like any envelope that does not open. The
 * RA's own certificate, and an earlier one of the RA's key, still open
 * with the RA's key, and the RA's own is used when both are named.
 */
static void
test_envelope_read_previous_ra_key(void **state)
{
	/* Serial 1, below the RA's 2: its RecipientInfo comes first in a
	 * DER SET OF (sorted), as the last case needs. */
	X509 *previous =
	    make_cert(fx.other_key, "test-MSCEP-RA", fx.ca_cert, fx.ca_key, 1);
	X509 *reissued =
	    make_cert(fx.ra_key, "test-MSCEP-RA", fx.ca_cert, fx.ca_key, 97);
	const struct scep_ra_key both[] = {
	    {fx.ra_cert, fx.ra_key}, {previous, fx.other_key}};
	const char *why = NULL;
	size_t env_len;
	uint8_t *env;

	(void)state;
	assert_non_null(previous);
	assert_non_null(reissued);
	/* Without the earlier pair: refused as any envelope that does not
	 * open (the RA's key was tried on it), the log naming the setting. */
	env = envelope_to(previous, &env_len);
	read_refused(env, env_len, SCEP_CONTENT_CSR, &why,
	    "PreviousEncryptionCertificate");
	assert_note(read_opened(env, env_len, both, 2),
	    "earlier RA encryption certificate");
	env = envelope_to(fx.ra_cert, &env_len);
	assert_null(read_opened(env, env_len, both, 2));
	env = envelope_to(reissued, &env_len);
	assert_note(read_opened(env, env_len, both, 2), "another certificate");
	/* Addressed to both, the earlier first. */
	env = envelope_to_two(previous, fx.ra_cert, &env_len);
	assert_null(read_opened(env, env_len, both, 2));
	X509_free(reissued);
	X509_free(previous);
}

/*
 * Issue 7's "answers that leak nothing": every way an envelope can fail
 * to open to a CSR gets one error, failInfo and text (only the log's
 * detail differs), whatever the step; a CSR key outside the limits is
 * one of them. Once the CSR's signature verified, its own faults are
 * answered plainly.
 */
static void
test_envelope_read_one_answer(void **state)
{
	struct scep_content c;
	const char *why = NULL, *why_names = NULL, *w = NULL, *d = NULL;
	uint8_t *der, *env, *content, *out = NULL;
	size_t len, env_len, content_len;
	unsigned char *csr_der = NULL;
	const unsigned char *p;
	EVP_PKEY *pk;
	PKCS7 *p7;
	int fi, cipher, n;

	(void)state;
	/* The good one. */
	der =
	    build_req(EVP_aes_128_cbc(), 0, fx.ra_cert, SCEP_MSG_PKCSREQ, &len);
	env = envelope_of(der, len, &env_len);
	free(der);
	assert_int_equal(scep_envelope_read(env, env_len, RA_KEYS, 1, NULL,
	                     NULL, SCEP_CONTENT_CSR, &c, &cipher, &fi, &w, &d),
	    SCEP_OK);
	assert_non_null(c.csr);
	assert_string_equal(c.challenge, "s3cret-OTP");
	assert_null(w);
	/* The CSR's bytes as sent, for the CA to check again. */
	n = i2d_X509_REQ(fx.csr, &csr_der);
	assert_int_equal(c.csr_der_len, (size_t)n);
	assert_memory_equal(c.csr_der, csr_der, (size_t)n);
	OPENSSL_free(csr_der);
	csr_der = NULL;
	scep_content_clear(&c);
	assert_null(c.csr);

	/* Bad CBC padding: the padding byte's block altered. */
	env[env_len - 1 - 16] ^= 0x80;
	read_refused(env, env_len, SCEP_CONTENT_CSR, &why, NULL);
	assert_non_null(strstr(why, "8192"));
	env[env_len - 1 - 16] ^= 0x80;

	/* Bad RSA block. */
	p = env;
	p7 = d2i_PKCS7(NULL, &p, (long)env_len);
	assert_non_null(p7);
	memset(sk_PKCS7_RECIP_INFO_value(p7->d.enveloped->recipientinfo, 0)
	           ->enc_key->data,
	    0x55,
	    (size_t)sk_PKCS7_RECIP_INFO_value(p7->d.enveloped->recipientinfo, 0)
	        ->enc_key->length);
	n = i2d_PKCS7(p7, &out);
	assert_true(n > 0);
	read_refused(out, (size_t)n, SCEP_CONTENT_CSR, &why, "unwrap");
	OPENSSL_free(out);
	PKCS7_free(p7);
	free(env);

	/* Another RA's envelope: the RA's key was tried on it. */
	der = build_req(
	    EVP_aes_128_cbc(), 0, fx.other_cert, SCEP_MSG_PKCSREQ, &len);
	env = envelope_of(der, len, &env_len);
	read_refused(env, env_len, SCEP_CONTENT_CSR, &why,
	    "no RecipientInfo names the RA certificate");
	read_refused(env, env_len, SCEP_CONTENT_ISSUER_SERIAL, &why_names,
	    "no RecipientInfo names the RA certificate");
	free(env);
	free(der);

	/* Not a CSR; and a CSR where an IssuerAndSerialNumber should be. */
	content = malloc(600);
	memset(content, 0x41, 600);
	env = envelope_holding(content, 600, fx.ra_cert, &env_len);
	read_refused(env, env_len, SCEP_CONTENT_CSR, &why, "PKCS#10");
	free(env);
	free(content);
	n = i2d_X509_REQ(fx.csr, &csr_der);
	env = envelope_holding(csr_der, (size_t)n, fx.ra_cert, &env_len);
	read_refused(env, env_len, SCEP_CONTENT_ISSUER_SERIAL, &why_names,
	    "IssuerAndSerialNumber");
	assert_string_not_equal(why_names, why);
	free(env);

	/* A CSR whose signature does not verify. */
	csr_der[n - 1] ^= 0x01;
	env = envelope_holding(csr_der, (size_t)n, fx.ra_cert, &env_len);
	read_refused(env, env_len, SCEP_CONTENT_CSR, &why, "self-signature");
	free(env);
	OPENSSL_free(csr_der);

	/* Keys refused before their signature is checked: 16384-bit RSA
	 * (no real key), a 65-bit exponent, an explicit curve. */
	pk = fake_rsa(16384, 17);
	content = csr_der_with(pk, fx.client_key, &content_len);
	env = envelope_holding(content, content_len, fx.ra_cert, &env_len);
	read_refused(env, env_len, SCEP_CONTENT_CSR, &why, "before any");
	free(env);
	free(content);
	EVP_PKEY_free(pk);
	pk = fake_rsa(2048, 65);
	content = csr_der_with(pk, fx.client_key, &content_len);
	env = envelope_holding(content, content_len, fx.ra_cert, &env_len);
	read_refused(env, env_len, SCEP_CONTENT_CSR, &why, "before any");
	free(env);
	free(content);
	EVP_PKEY_free(pk);
	pk = explicit_ec();
	content = csr_der_with(pk, pk, &content_len);
	env = envelope_holding(content, content_len, fx.ra_cert, &env_len);
	read_refused(env, env_len, SCEP_CONTENT_CSR, &why, "before any");
	free(env);
	free(content);
	/* scep_csr_parse refuses them alike. */
	content = csr_der_with(pk, pk, &content_len);
	assert_int_equal(
	    scep_csr_parse(content, content_len, &c.csr, &c.challenge, &fi, &w),
	    SCEP_E_CSR);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_MESSAGE_CHECK);
	free(content);
	EVP_PKEY_free(pk);

	/* Authentic (its signature verified), then refused plainly. */
	pk = EVP_RSA_gen(2048);
	{
		X509_REQ *two = make_csr(pk, "two", NULL);
		X509_ATTRIBUTE *attr = X509_ATTRIBUTE_create_by_NID(NULL,
		    NID_pkcs9_challengePassword, V_ASN1_UTF8STRING, "one", 3);

		assert_true(X509_ATTRIBUTE_set1_data(
		    attr, V_ASN1_UTF8STRING, "two", 3));
		assert_true(X509_REQ_add1_attr(two, attr));
		X509_ATTRIBUTE_free(attr);
		assert_true(X509_REQ_sign(two, pk, EVP_sha256()) > 0);
		csr_der = NULL;
		n = i2d_X509_REQ(two, &csr_der);
		X509_REQ_free(two);
	}
	env = envelope_holding(csr_der, (size_t)n, fx.ra_cert, &env_len);
	assert_int_equal(scep_envelope_read(env, env_len, RA_KEYS, 1, NULL,
	                     NULL, SCEP_CONTENT_CSR, &c, &cipher, &fi, &w, &d),
	    SCEP_E_CSR);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_REQUEST);
	assert_string_not_equal(w, why);
	assert_null(c.csr);
	free(env);
	OPENSSL_free(csr_der);
	EVP_PKEY_free(pk);
}

/* A signer certificate whose key is too costly to check is refused
 * before its signature is: not authenticated, so no CertRep (HTTP 400). */
/*
 * `env` with its content replaced: `plain` encrypted anew, under a new IV,
 * with the key its RecipientInfo wraps (unwrapped here with the RA's
 * key), the RecipientInfo kept. What one who copies a device's
 * RecipientInfo sends, though without the key: chosen blocks instead.
 */
static uint8_t *
envelope_recontent(const uint8_t *env, size_t env_len, const uint8_t *plain,
    size_t plain_len, size_t *out_len)
{
	const uint8_t *p = env;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)env_len);
	PKCS7_RECIP_INFO *ri;
	PKCS7_ENC_CONTENT *ec;
	EVP_PKEY_CTX *pctx;
	EVP_CIPHER_CTX *cctx;
	ASN1_OCTET_STRING *iv_os;
	uint8_t cek[512], iv[16], *ct, *out = NULL; /* the RSA size, given */
	size_t cek_len = sizeof(cek);
	int n, m, len;

	assert_non_null(p7);
	ri = sk_PKCS7_RECIP_INFO_value(p7->d.enveloped->recipientinfo, 0);
	ec = p7->d.enveloped->enc_data;
	assert_non_null(pctx = EVP_PKEY_CTX_new(fx.ra_key, NULL));
	assert_true(EVP_PKEY_decrypt_init(pctx) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0);
	assert_true(EVP_PKEY_decrypt(pctx, cek, &cek_len, ri->enc_key->data,
	                (size_t)ri->enc_key->length) > 0);
	assert_int_equal(cek_len, 16);
	EVP_PKEY_CTX_free(pctx);
	assert_int_equal(RAND_bytes(iv, sizeof(iv)), 1);
	ct = malloc(plain_len + 16);
	assert_non_null(cctx = EVP_CIPHER_CTX_new());
	assert_true(
	    EVP_EncryptInit_ex2(cctx, EVP_aes_128_cbc(), cek, iv, NULL));
	assert_true(EVP_EncryptUpdate(cctx, ct, &n, plain, (int)plain_len));
	assert_true(EVP_EncryptFinal_ex(cctx, ct + n, &m));
	EVP_CIPHER_CTX_free(cctx);
	assert_true(ASN1_OCTET_STRING_set(ec->enc_data, ct, n + m));
	iv_os = ASN1_OCTET_STRING_new();
	assert_true(ASN1_OCTET_STRING_set(iv_os, iv, sizeof(iv)));
	ASN1_TYPE_set(ec->algorithm->parameter, V_ASN1_OCTET_STRING, iv_os);
	assert_true((len = i2d_PKCS7(p7, &out)) > 0);
	*out_len = (size_t)len;
	PKCS7_free(p7);
	free(ct);
	OPENSSL_cleanse(cek, sizeof(cek));
	return out;
}

/* scep_envelope_read of `env` as `kind` with `seen`: its return. */
static int
read_seen(const uint8_t *env, size_t env_len, struct scep_wrapped_keys *seen,
    enum scep_content_kind kind, const char **why, const char **detail)
{
	struct scep_content c;
	int fi, cipher, rc;

	rc = scep_envelope_read(env, env_len, RA_KEYS, 1, NULL, seen, kind, &c,
	    &cipher, &fi, why, detail);
	assert_int_equal(fi,
	    rc == SCEP_OK ? SCEP_FAILINFO_NONE
	                  : SCEP_FAILINFO_BAD_MESSAGE_CHECK);
	scep_content_clear(&c);
	return rc;
}

/*
 * A device's RecipientInfo copied into another envelope (its own IV and
 * ciphertext) under a messageType whose content has no signature of its
 * own (GetCRL, GetCert, CertPoll): whether chosen blocks decrypted under
 * the device's key read as that content showed in the answer, a padding
 * oracle on its CSR. With the RA's memory of wrapped keys, the copy is
 * refused as an envelope that does not open is, while the same envelope
 * sent again still opens.
 */
static void
test_envelope_key_reused(void **state)
{
	struct scep_wrapped_keys *seen = scep_wrapped_keys_new(64), *other;
	uint8_t *env, *copy, *issuer_serial = NULL;
	size_t env_len, copy_len, is_len;
	const char *why = NULL, *refusal = NULL, *detail = NULL;
	uint64_t refused, forgotten;
	int64_t youngest;

	(void)state;
	assert_non_null(seen);
	env = envelope_to(fx.ra_cert, &env_len);
	assert_int_equal(
	    scep_issuer_serial_build(X509_get_issuer_name(fx.issued),
	        X509_get0_serialNumber(fx.issued), &issuer_serial, &is_len),
	    SCEP_OK);
	/* The device's envelope, the same content under its key. */
	copy =
	    envelope_recontent(env, env_len, issuer_serial, is_len, &copy_len);
	assert_int_equal(
	    read_seen(env, env_len, seen, SCEP_CONTENT_CSR, &why, &detail),
	    SCEP_OK);
	/* Without the memory, or to an RA that never saw the device's, the
	 * copy opens: what the oracle reads. */
	assert_int_equal(read_seen(copy, copy_len, NULL,
	                     SCEP_CONTENT_ISSUER_SERIAL, &why, &detail),
	    SCEP_OK);
	assert_non_null(other = scep_wrapped_keys_new(64));
	assert_int_equal(read_seen(copy, copy_len, other,
	                     SCEP_CONTENT_ISSUER_SERIAL, &why, &detail),
	    SCEP_OK);
	scep_wrapped_keys_free(other);
	/* After the device's: refused, as one that does not open is. */
	assert_int_equal(read_seen(copy, copy_len, seen,
	                     SCEP_CONTENT_ISSUER_SERIAL, &refusal, &detail),
	    SCEP_E_DECRYPT);
	assert_non_null(strstr(detail, "wrapped key came before with other"));
	/* The same answer as a ciphertext altered (its last byte). */
	copy[copy_len - 1] ^= 1;
	why = NULL;
	read_refused(copy, copy_len, SCEP_CONTENT_ISSUER_SERIAL, &why, NULL);
	assert_string_equal(refusal, why);
	copy[copy_len - 1] ^= 1;
	/* The device's own envelope again (a resend): still opens. */
	assert_int_equal(
	    read_seen(env, env_len, seen, SCEP_CONTENT_CSR, &why, &detail),
	    SCEP_OK);
	/* The same ciphertext read as another content: refused too. */
	assert_int_equal(read_seen(env, env_len, seen,
	                     SCEP_CONTENT_ISSUER_SUBJECT, &why, &detail),
	    SCEP_E_DECRYPT);
	scep_wrapped_keys_stats(seen, &refused, &forgotten, &youngest);
	assert_int_equal(refused, 2);
	assert_int_equal(forgotten, 0);
	assert_int_equal(youngest, -1);
	free(issuer_serial);
	free(copy);
	free(env);
	scep_wrapped_keys_free(seen);
}

/*
 * The memory is bounded: a full bucket forgets its oldest key, and says
 * how young the youngest forgotten was.
 */
static void
test_envelope_keys_forgotten(void **state)
{
	struct scep_wrapped_keys *seen = scep_wrapped_keys_new(4);
	uint8_t key[8] = {0}, content[4] = {1, 2, 3, 4}, other[4] = {9};
	uint64_t refused, forgotten;
	int64_t youngest;

	(void)state;
	assert_non_null(seen);
	assert_null(scep_wrapped_keys_new(3));
	assert_int_equal(scep_wrapped_keys_check(seen, key, sizeof(key),
	                     content, sizeof(content), NULL, 0),
	    1);
	assert_int_equal(scep_wrapped_keys_check(seen, key, sizeof(key), other,
	                     sizeof(other), NULL, 0),
	    0);
	/* Four more keys: one bucket of four, the first pushed out. */
	for (uint8_t i = 1; i <= 4; i++) {
		key[0] = i;
		assert_int_equal(scep_wrapped_keys_check(seen, key, sizeof(key),
		                     content, sizeof(content), NULL, 0),
		    1);
	}
	key[0] = 0;
	assert_int_equal(scep_wrapped_keys_check(seen, key, sizeof(key), other,
	                     sizeof(other), NULL, 0),
	    1);
	scep_wrapped_keys_stats(seen, &refused, &forgotten, &youngest);
	assert_int_equal(refused, 1);
	assert_int_equal(forgotten, 2);
	assert_true(youngest >= 0 && youngest < 60000);
	scep_wrapped_keys_free(seen);
}

static void
test_signer_key_refused_first(void **state)
{
	struct scep_request *req = NULL;
	struct scep_pkcsreq_params params = {
	    .message_type = SCEP_MSG_PKCSREQ,
	    .csr = fx.csr,
	    .recipient = fx.ra_cert,
	    .cipher = EVP_aes_128_cbc(),
	    .digest = EVP_sha256(),
	};
	EVP_PKEY *big = fake_rsa(16384, 17), *ec = explicit_ec();
	X509 *fake = X509_dup(fx.client_cert), *ec_cert;
	uint8_t *der = NULL;
	unsigned char *out = NULL;
	const unsigned char *p;
	const char *why = NULL;
	size_t len;
	PKCS7 *p7;
	int fi, n;

	(void)state;
	/* The signed request's certificate swapped for one of the same
	 * issuer and serial holding the 16384-bit key. */
	der =
	    build_req(EVP_aes_128_cbc(), 0, fx.ra_cert, SCEP_MSG_PKCSREQ, &len);
	p = der;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	assert_non_null(p7);
	assert_true(X509_set_pubkey(fake, big));
	assert_true(X509_sign(fake, fx.client_key, EVP_sha256()) > 0);
	X509_free(sk_X509_value(p7->d.sign->cert, 0));
	(void)sk_X509_set(p7->d.sign->cert, 0, fake);
	n = i2d_PKCS7(p7, &out);
	assert_true(n > 0);
	assert_int_equal(
	    scep_request_parse(out, (size_t)n, NULL, &req, &fi, &why),
	    SCEP_E_KEY);
	assert_int_equal(fi, SCEP_FAILINFO_NONE);
	assert_null(req);
	assert_non_null(strstr(why, "8192"));
	OPENSSL_free(out);
	PKCS7_free(p7);
	free(der);

	/* Signed with an explicit-curve key. */
	ec_cert = make_cert(ec, "explicit", NULL, NULL, 9);
	params.signer = ec_cert;
	params.signer_key = ec;
	assert_int_equal(scep_pkcsreq_build(&params, &der, &len), SCEP_OK);
	assert_int_equal(
	    scep_request_parse(der, len, NULL, &req, &fi, &why), SCEP_E_KEY);
	assert_null(req);
	free(der);
	X509_free(ec_cert);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(big);
	assert_int_equal(ERR_peek_error(), 0);
}

/* Parses `der` expecting a FAILURE badAlg for a signer not RSA: answerable
 * (transactionID and nonce kept), no signer handed out (nothing verified). */
static void
expect_signer_not_rsa(const uint8_t *der, size_t len)
{
	/* Nothing else of it is judged: not its SHA-1 either. */
	static const struct scep_alg_policy no_sha1 = {0, 1, 0};
	struct scep_request *req = NULL;
	const char *why = NULL;
	int fi;

	assert_int_equal(
	    scep_request_parse(der, len, &no_sha1, &req, &fi, &why),
	    SCEP_E_ALGORITHM);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_ALG);
	assert_non_null(req);
	assert_null(req->signer);
	assert_non_null(req->transaction_id);
	assert_int_equal(req->sender_nonce_len, 16);
	assert_int_equal(req->message_type, SCEP_MSG_PKCSREQ);
	assert_non_null(strstr(why, "RSA key"));
	scep_request_free(req);
}

/* A signer whose key is not RSA can receive no reply (RFC 8894 3.1: key
 * transport to it): FAILURE badAlg, decided before its signature is
 * checked, so a broken EC signature and an Ed25519 one (which OpenSSL 3.0's
 * PKCS#7 cannot check at all) get the same answer. */
static void
test_signer_not_rsa_refused_first(void **state)
{
	struct scep_pkcsreq_params params = {
	    .message_type = SCEP_MSG_PKCSREQ,
	    .csr = fx.csr,
	    .recipient = fx.ra_cert,
	    .cipher = EVP_aes_128_cbc(),
	    .digest = EVP_sha256(),
	};
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	X509 *ec_cert, *ed_cert = X509_dup(fx.client_cert);
	PKCS7_SIGNER_INFO *si;
	unsigned char *out = NULL;
	const unsigned char *p;
	uint8_t *der = NULL;
	size_t len;
	PKCS7 *p7;
	int n;

	(void)state;
	assert_non_null(ec);
	assert_non_null(ed);
	ec_cert = make_cert(ec, "ec signer", NULL, NULL, 11);
	params.signer = ec_cert;
	params.signer_key = ec;
	assert_int_equal(scep_pkcsreq_build(&params, &der, &len), SCEP_OK);
	expect_signer_not_rsa(der, len);
	free(der);
	params.digest = EVP_sha1();
	assert_int_equal(scep_pkcsreq_build(&params, &der, &len), SCEP_OK);
	expect_signer_not_rsa(der, len);
	params.digest = EVP_sha256();

	/* The same with its signature broken. */
	p = der;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	assert_non_null(p7);
	si = sk_PKCS7_SIGNER_INFO_value(p7->d.sign->signer_info, 0);
	si->enc_digest->data[si->enc_digest->length / 2] ^= 0x01;
	n = i2d_PKCS7(p7, &out);
	assert_true(n > 0);
	expect_signer_not_rsa(out, (size_t)n);
	OPENSSL_free(out);
	out = NULL;
	PKCS7_free(p7);
	free(der);

	/* An RSA-signed request whose certificate is swapped for an Ed25519
	 * one of the same issuer and serial. */
	der =
	    build_req(EVP_aes_128_cbc(), 0, fx.ra_cert, SCEP_MSG_PKCSREQ, &len);
	p = der;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	assert_non_null(p7);
	assert_true(X509_set_pubkey(ed_cert, ed));
	assert_true(X509_sign(ed_cert, ed, NULL) > 0);
	X509_free(sk_X509_value(p7->d.sign->cert, 0));
	(void)sk_X509_set(p7->d.sign->cert, 0, ed_cert);
	n = i2d_PKCS7(p7, &out);
	assert_true(n > 0);
	expect_signer_not_rsa(out, (size_t)n);
	OPENSSL_free(out);
	PKCS7_free(p7);
	free(der);
	X509_free(ec_cert);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
	assert_int_equal(ERR_peek_error(), 0);
}

static void
test_csr_bad_signature(void **state)
{
	unsigned char *der = NULL;
	X509_REQ *csr = NULL;
	X509_REQ *two = NULL;
	X509_ATTRIBUTE *attr;
	char *challenge = NULL;
	const char *why = NULL;
	int len, fi;

	(void)state;
	len = i2d_X509_REQ(fx.csr, &der);
	der[len - 1] ^= 0x01;
	assert_int_equal(
	    scep_csr_parse(der, (size_t)len, &csr, &challenge, &fi, &why),
	    SCEP_E_CSR);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_MESSAGE_CHECK);
	assert_null(csr);
	assert_null(challenge);
	OPENSSL_free(der);
	der = NULL;

	/* One challengePassword with two values: ambiguous, refused. */
	two = make_csr(fx.client_key, "two", NULL);
	attr = X509_ATTRIBUTE_create_by_NID(
	    NULL, NID_pkcs9_challengePassword, V_ASN1_UTF8STRING, "one", 3);
	assert_non_null(attr);
	assert_true(
	    X509_ATTRIBUTE_set1_data(attr, V_ASN1_UTF8STRING, "two", 3));
	assert_int_equal(X509_ATTRIBUTE_count(attr), 2);
	assert_true(X509_REQ_add1_attr(two, attr));
	X509_ATTRIBUTE_free(attr);
	assert_true(X509_REQ_sign(two, fx.client_key, EVP_sha256()) > 0);
	len = i2d_X509_REQ(two, &der);
	assert_int_equal(
	    scep_csr_parse(der, (size_t)len, &csr, &challenge, &fi, &why),
	    SCEP_E_CSR);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_REQUEST);
	OPENSSL_free(der);
	X509_REQ_free(two);
	der = NULL;

	/* UTF8String challenge is accepted. */
	two = make_csr(fx.client_key, "utf8", NULL);
	assert_true(X509_REQ_add1_attr_by_NID(two, NID_pkcs9_challengePassword,
	    V_ASN1_UTF8STRING, (const unsigned char *)"p\xc3\xa4ss", 5));
	assert_true(X509_REQ_sign(two, fx.client_key, EVP_sha256()) > 0);
	len = i2d_X509_REQ(two, &der);
	assert_int_equal(
	    scep_csr_parse(der, (size_t)len, &csr, &challenge, &fi, &why),
	    SCEP_OK);
	assert_string_equal(challenge, "p\xc3\xa4ss");
	free(challenge);
	X509_REQ_free(csr);
	OPENSSL_free(der);
	X509_REQ_free(two);
	der = NULL;

	/* BMPString and UniversalString (DirectoryString, RFC 2985): the
	 * password in UTF-8; one that is not Unicode is refused. */
	{
		static const struct {
			int type;
			const char *bytes;
			int len, ok;
		} cases[] = {
		    {V_ASN1_BMPSTRING, "\0p\0\xe4\0s\0s", 8, 1},
		    {V_ASN1_UNIVERSALSTRING, "\0\0\0p\0\0\0\xe4\0\0\0s\0\0\0s",
		        16, 1},
		    /* past U+10FFFF; an unpaired surrogate */
		    {V_ASN1_UNIVERSALSTRING, "\0\x11\0\0", 4, 0},
		    {V_ASN1_BMPSTRING, "\xd8\0\0p", 4, 0},
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			two = make_csr(fx.client_key, "wide", NULL);
			assert_true(X509_REQ_add1_attr_by_NID(two,
			    NID_pkcs9_challengePassword, cases[i].type,
			    (const unsigned char *)cases[i].bytes,
			    cases[i].len));
			assert_true(X509_REQ_sign(
			                two, fx.client_key, EVP_sha256()) > 0);
			len = i2d_X509_REQ(two, &der);
			assert_int_equal(scep_csr_parse(der, (size_t)len, &csr,
			                     &challenge, &fi, &why),
			    cases[i].ok ? SCEP_OK : SCEP_E_CSR);
			if (cases[i].ok)
				assert_string_equal(challenge, "p\xc3\xa4ss");
			else
				assert_null(challenge);
			free(challenge);
			challenge = NULL;
			X509_REQ_free(csr);
			csr = NULL;
			OPENSSL_free(der);
			der = NULL;
			X509_REQ_free(two);
		}
	}
}

/* A GetCRL request whose messageType is "22", then given again as `twice`
 * in a second attribute (`second` 1) or as a second value of the same
 * attribute (0); `twice` NULL: once. Its DER in *len bytes. */
static unsigned char *
request_typed_twice(const char *twice, int second, int *len)
{
	PKCS7 *p7;
	PKCS7_SIGNER_INFO *si;
	X509_ATTRIBUTE *type = NULL;
	BIO *empty = BIO_new_mem_buf("", 0);
	unsigned char *der = NULL;
	static const unsigned char nonce[16] = {7};
	int nid = OBJ_txt2nid("2.16.840.1.113733.1.9.2");

	p7 = PKCS7_sign(NULL, NULL, NULL, NULL, PKCS7_PARTIAL | PKCS7_BINARY);
	si = PKCS7_sign_add_signer(
	    p7, fx.client_cert, fx.client_key, EVP_sha256(), PKCS7_NOSMIMECAP);
	assert_non_null(si);
	assert_non_null(type = X509_ATTRIBUTE_create_by_NID(
	                    NULL, nid, V_ASN1_PRINTABLESTRING, "22", 2));
	if (twice != NULL && !second)
		assert_true(X509_ATTRIBUTE_set1_data(
		    type, V_ASN1_PRINTABLESTRING, twice, (int)strlen(twice)));
	assert_non_null(X509at_add1_attr(&si->auth_attr, type));
	X509_ATTRIBUTE_free(type);
	/* Pushed: X509at_add1_attr refuses a second of a type. */
	if (twice != NULL && second) {
		assert_non_null(
		    type = X509_ATTRIBUTE_create_by_NID(NULL, nid,
		        V_ASN1_PRINTABLESTRING, twice, (int)strlen(twice)));
		assert_true(sk_X509_ATTRIBUTE_push(si->auth_attr, type) > 0);
	}
	assert_non_null(X509at_add1_attr_by_NID(&si->auth_attr,
	    OBJ_txt2nid("2.16.840.1.113733.1.9.7"), V_ASN1_PRINTABLESTRING,
	    (const unsigned char *)"abc", 3));
	assert_non_null(X509at_add1_attr_by_NID(&si->auth_attr,
	    OBJ_txt2nid("2.16.840.1.113733.1.9.5"), V_ASN1_OCTET_STRING, nonce,
	    16));
	assert_true(PKCS7_set_detached(p7, 1));
	assert_true(PKCS7_final(p7, empty, PKCS7_BINARY));
	*len = i2d_PKCS7(p7, &der);
	assert_true(*len > 0);
	PKCS7_free(p7);
	BIO_free(empty);
	return der;
}

/* A request without eContent (GetCRL-style): verifies, envelope_len 0. */
static void
test_request_without_content(void **state)
{
	struct scep_request *req = NULL;
	unsigned char *der;
	const char *why = NULL;
	int len, fi;

	(void)state;
	der = request_typed_twice(NULL, 0, &len);
	assert_int_equal(
	    scep_request_parse(der, (size_t)len, NULL, &req, &fi, &why),
	    SCEP_OK);
	assert_int_equal(req->message_type, SCEP_MSG_GETCRL);
	assert_string_equal(req->transaction_id, "abc");
	assert_int_equal(req->envelope_len, 0);
	assert_null(req->envelope);
	scep_request_free(req);
	OPENSSL_free(der);
}

/* A signed attribute twice, or with two values, is refused before any is
 * read: which one counts would be the SET's DER order's choice
 * (messageType {22, 19} was read as whichever sorts first). */
static void
test_attribute_twice_refused(void **state)
{
	static const struct {
		const char *twice;
		int second;
	} cases[] = {{"19", 1}, {"19", 0}, {"22", 1}, {NULL, 0}};
	struct scep_request *req;
	const char *why;
	unsigned char *der;
	int len, fi, rc;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		der =
		    request_typed_twice(cases[i].twice, cases[i].second, &len);
		req = NULL;
		why = NULL;
		rc =
		    scep_request_parse(der, (size_t)len, NULL, &req, &fi, &why);
		if (cases[i].twice == NULL) {
			/* the control: once, as any client sends it */
			assert_int_equal(rc, SCEP_OK);
			assert_int_equal(req->message_type, SCEP_MSG_GETCRL);
		} else {
			assert_int_equal(rc, SCEP_E_ATTRIBUTE);
			assert_string_equal(why,
			    "a signed attribute given twice, or with two "
			    "values");
		}
		scep_request_free(req);
		OPENSSL_free(der);
	}
}

/* CertPoll carries IssuerAndSubject: the CA's name and the subject. */
static void
test_certpoll_content(void **state)
{
	struct scep_request *req = NULL;
	uint8_t *der, *plain = NULL;
	size_t len, plain_len;
	const unsigned char *p;
	STACK_OF(ASN1_TYPE) * seq;
	X509_NAME *name, *issuer = NULL, *subject = NULL;
	uint8_t *built = NULL;
	size_t built_len;
	const char *why;
	int fi, cipher;

	(void)state;
	der = build_req(
	    EVP_aes_128_cbc(), 0, fx.ra_cert, SCEP_MSG_CERTPOLL, &len);
	assert_int_equal(
	    scep_request_parse(der, len, NULL, &req, &fi, &why), SCEP_OK);
	assert_int_equal(req->message_type, SCEP_MSG_CERTPOLL);
	assert_int_equal(
	    scep_envelope_open(req->envelope, req->envelope_len, fx.ra_cert,
	        fx.ra_key, NULL, &plain, &plain_len, &cipher, &fi, &why),
	    SCEP_OK);
	p = plain;
	seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)plain_len);
	assert_non_null(seq);
	assert_int_equal(sk_ASN1_TYPE_num(seq), 2);
	p = plain + 2;
	name = d2i_X509_NAME(NULL, &p, (long)plain_len - 2);
	assert_non_null(name);
	assert_int_equal(
	    X509_NAME_cmp(name, X509_get_subject_name(fx.ca_cert)), 0);
	X509_NAME_free(name);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	/* The same through the server's parser, and byte for byte what the
	 * builder makes of the two names. */
	assert_int_equal(scep_issuer_subject_parse(
	                     plain, plain_len, &issuer, &subject, &fi, &why),
	    SCEP_OK);
	assert_int_equal(
	    X509_NAME_cmp(issuer, X509_get_subject_name(fx.ca_cert)), 0);
	assert_int_equal(
	    X509_NAME_cmp(subject, X509_REQ_get_subject_name(fx.csr)), 0);
	assert_int_equal(
	    scep_issuer_subject_build(issuer, subject, &built, &built_len),
	    SCEP_OK);
	assert_int_equal(built_len, plain_len);
	assert_memory_equal(built, plain, plain_len);
	free(built);
	X509_NAME_free(issuer);
	X509_NAME_free(subject);
	free(plain);
	scep_request_free(req);
	free(der);
}

static void
test_certs_only(void **state)
{
	STACK_OF(X509) *in = sk_X509_new_null(), *out = NULL;
	const unsigned char *p;
	uint8_t *der = NULL;
	size_t len;
	PKCS7 *p7;

	(void)state;
	assert_true(sk_X509_push(in, fx.ra_cert));
	assert_true(sk_X509_push(in, fx.other_cert));
	assert_true(sk_X509_push(in, fx.ca_cert));
	assert_int_equal(scep_certs_only_build(in, &der, &len), SCEP_OK);
	p = der;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	assert_non_null(p7);
	assert_true(PKCS7_type_is_signed(p7));
	assert_int_equal(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 0);
	assert_true(PKCS7_type_is_data(p7->d.sign->contents));
	assert_null(p7->d.sign->contents->d.data);
	PKCS7_free(p7);
	assert_int_equal(scep_certs_only_parse(der, len, &out), SCEP_OK);
	assert_int_equal(sk_X509_num(out), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    X509_cmp(sk_X509_value(out, i), sk_X509_value(in, i)), 0);
	sk_X509_pop_free(out, X509_free);
	free(der);
	sk_X509_free(in);
	assert_int_not_equal(scep_certs_only_build(NULL, &der, &len), SCEP_OK);
}

/* Neither messageData parser nor the GetNextCACert reader takes `der`. */
static void
messagedata_refused(const uint8_t *der, size_t len)
{
	X509_NAME *issuer = (X509_NAME *)1, *subject = (X509_NAME *)1;
	ASN1_INTEGER *serial = (ASN1_INTEGER *)1;
	STACK_OF(X509) *certs = (STACK_OF(X509) *)1;
	const char *why = NULL;
	int fi = 0;

	assert_int_not_equal(
	    scep_issuer_serial_parse(der, len, &issuer, &serial, &fi, &why),
	    SCEP_OK);
	assert_null(issuer);
	assert_null(serial);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_REQUEST);
	assert_non_null(why);
	fi = 0;
	why = NULL;
	assert_int_not_equal(
	    scep_issuer_subject_parse(der, len, &issuer, &subject, &fi, &why),
	    SCEP_OK);
	assert_null(issuer);
	assert_null(subject);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_REQUEST);
	assert_non_null(why);
	assert_int_not_equal(
	    scep_next_ca_parse(der, len, NULL, &certs), SCEP_OK);
	assert_null(certs);
}

/* Every truncation of real and generated messages fails cleanly. */
static void
truncations(const uint8_t *der, size_t len, X509 *ra, EVP_PKEY *key)
{
	struct scep_request *req;
	struct scep_certrep *rep;
	X509_REQ *csr;
	uint8_t *plain;
	size_t plain_len;
	char *challenge;
	const char *why;
	int fi, cipher;

	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n > 0 ? n : 1);

		memcpy(copy, der, n);
		req = NULL;
		assert_int_not_equal(
		    scep_request_parse(copy, n, NULL, &req, &fi, &why),
		    SCEP_OK);
		assert_null(req);
		plain = NULL;
		assert_int_not_equal(
		    scep_envelope_open(copy, n, ra, key, NULL, &plain,
		        &plain_len, &cipher, &fi, &why),
		    SCEP_OK);
		assert_null(plain);
		csr = NULL;
		assert_int_not_equal(
		    scep_csr_parse(copy, n, &csr, &challenge, &fi, &why),
		    SCEP_OK);
		assert_null(csr);
		rep = NULL;
		assert_int_not_equal(
		    scep_certrep_parse(copy, n, NULL, NULL, NULL, &rep),
		    SCEP_OK);
		assert_null(rep);
		messagedata_refused(copy, n);
		free(copy);
	}
}

static void
test_truncated_input(void **state)
{
	static const char *files[] = {MMDM "PKCSReq.der", JSCEP "scep_req2.der",
	    JSCEP "scep_req1.der", JSCEP "scep_req0.der", MMDM "CertRep.der"};
	uint8_t *der, *env;
	size_t len, env_len;

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		der = read_file(files[i], &len);
		truncations(der, len, fx.ra_cert, fx.ra_key);
		free(der);
	}
	der =
	    build_req(EVP_aes_128_cbc(), 1, fx.ra_cert, SCEP_MSG_PKCSREQ, &len);
	truncations(der, len, fx.ra_cert, fx.ra_key);
	env = envelope_of(der, len, &env_len);
	truncations(env, env_len, fx.ra_cert, fx.ra_key);
	free(env);
	free(der);
	assert_int_equal(ERR_peek_error(), 0);
}

/* --- GetCert, GetCRL, CertPoll, GetNextCACert ---------------------------- */

/*
 * The same encoding with every constructed element (down to `depth` levels,
 * -1: all) given an indefinite length, as a streaming BER encoder would.
 * *out_len <= 2 * len: each header shrinks or grows by at most 2 bytes.
 */
static size_t
ber_of(const uint8_t *der, size_t len, int depth, uint8_t *out)
{
	const unsigned char *p = der, *end = der + len;
	unsigned char *o = out;

	while (p < end) {
		const unsigned char *start = p;
		long l;
		int tag, cls, r;

		r = ASN1_get_object(&p, &l, &tag, &cls, (long)(end - p));
		assert_int_equal(r & 0x80, 0);
		if ((r & V_ASN1_CONSTRUCTED) && depth != 0) {
			ASN1_put_object(&o, 2, 0, tag, cls);
			o += ber_of(p, (size_t)l, depth - 1, o);
			ASN1_put_eoc(&o);
		} else {
			memcpy(o, start, (size_t)(p - start) + (size_t)l);
			o += (p - start) + l;
		}
		p += l;
	}
	return (size_t)(o - out);
}

static uint8_t *
to_ber(const uint8_t *der, size_t len, int depth, size_t *out_len)
{
	uint8_t *out = malloc(2 * len + 16);

	assert_non_null(out);
	*out_len = ber_of(der, len, depth, out);
	assert_true(*out_len <= 2 * len + 16);
	assert_int_equal(out[1], 0x80);
	return out;
}

/* C=DE, O=Example Org, OU=PKI + CN=Issuing CA (one RDN, two values),
 * a UTF-8 L: several RDNs as real CAs have them. */
static X509_NAME *
make_name(const char *cn)
{
	X509_NAME *n = X509_NAME_new();

	assert_non_null(n);
	assert_true(X509_NAME_add_entry_by_txt(
	    n, "C", MBSTRING_ASC, (const unsigned char *)"DE", -1, -1, 0));
	assert_true(X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
	    (const unsigned char *)"Example Org", -1, -1, 0));
	assert_true(X509_NAME_add_entry_by_txt(n, "L", MBSTRING_UTF8,
	    (const unsigned char *)"M\xc3\xbcnchen", -1, -1, 0));
	assert_true(X509_NAME_add_entry_by_txt(
	    n, "OU", MBSTRING_ASC, (const unsigned char *)"PKI", -1, -1, 0));
	assert_true(X509_NAME_add_entry_by_txt(
	    n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, -1));
	assert_int_equal(X509_NAME_entry_count(n), 5);
	assert_int_equal(X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 4)),
	    X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 3)));
	return n;
}

static uint8_t *
name_der_of(const X509_NAME *n, size_t *len)
{
	unsigned char *der = NULL;
	int l = i2d_X509_NAME(n, &der);
	uint8_t *copy;

	assert_true(l > 0);
	copy = malloc((size_t)l);
	memcpy(copy, der, (size_t)l);
	OPENSSL_free(der);
	*len = (size_t)l;
	return copy;
}

/* A returned name equals `want` and re-encodes as its DER. */
static void
assert_name(X509_NAME *got, const X509_NAME *want)
{
	uint8_t *a, *b;
	size_t al, bl;

	assert_non_null(got);
	assert_int_equal(X509_NAME_cmp(got, want), 0);
	a = name_der_of(got, &al);
	b = name_der_of(want, &bl);
	assert_int_equal(al, bl);
	assert_memory_equal(a, b, al);
	free(a);
	free(b);
}

/* Every prefix, and the whole with a byte after it, is refused. */
static void
assert_prefixes_refused(const uint8_t *der, size_t len)
{
	uint8_t *longer = malloc(len + 1);

	for (size_t n = 0; n < len; n++)
		messagedata_refused(der, n);
	memcpy(longer, der, len);
	longer[len] = 0x00;
	messagedata_refused(longer, len + 1);
	free(longer);
}

static void
test_issuer_serial(void **state)
{
	X509_NAME *issuer = make_name("Issuing CA"), *got = NULL;
	ASN1_INTEGER *serials[4], *serial = NULL;
	BIGNUM *bn = BN_new();
	uint8_t *der = NULL, *ber;
	size_t len, ber_len;
	const char *why = NULL;
	int fi = 0;

	(void)state;
	/* 1, a 20-byte serial with the top bit set (21 bytes of DER), 0 and
	 * a negative one (non-conforming CAs issue them). */
	assert_true(BN_rand(bn, 160, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY));
	serials[0] = ASN1_INTEGER_new();
	assert_true(ASN1_INTEGER_set(serials[0], 1));
	serials[1] = BN_to_ASN1_INTEGER(bn, NULL);
	serials[2] = ASN1_INTEGER_new();
	assert_true(ASN1_INTEGER_set(serials[2], 0));
	serials[3] = ASN1_INTEGER_new();
	assert_true(ASN1_INTEGER_set(serials[3], -5));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(
		    scep_issuer_serial_build(issuer, serials[i], &der, &len),
		    SCEP_OK);
		assert_int_equal(der[0], 0x30);
		assert_int_not_equal(der[1], 0x80);
		assert_int_equal(scep_issuer_serial_parse(
		                     der, len, &got, &serial, &fi, &why),
		    SCEP_OK);
		assert_int_equal(fi, SCEP_FAILINFO_NONE);
		assert_null(why);
		assert_name(got, issuer);
		assert_int_equal(ASN1_INTEGER_cmp(serial, serials[i]), 0);
		X509_NAME_free(got);
		ASN1_INTEGER_free(serial);

		/* Indefinite lengths all the way down: the name still comes
		 * back as DER. */
		ber = to_ber(der, len, -1, &ber_len);
		assert_true(ber_len > len);
		assert_int_equal(scep_issuer_serial_parse(
		                     ber, ber_len, &got, &serial, &fi, &why),
		    SCEP_OK);
		assert_name(got, issuer);
		assert_int_equal(ASN1_INTEGER_cmp(serial, serials[i]), 0);
		X509_NAME_free(got);
		ASN1_INTEGER_free(serial);
		if (i == 1) {
			assert_prefixes_refused(der, len);
			assert_prefixes_refused(ber, ber_len);
		}
		free(ber);
		free(der);
		ASN1_INTEGER_free(serials[i]);
	}

	/* The certificate's own issuer and serial, as a client sends them. */
	assert_int_equal(
	    scep_issuer_serial_build(X509_get_issuer_name(fx.issued),
	        X509_get0_serialNumber(fx.issued), &der, &len),
	    SCEP_OK);
	assert_int_equal(
	    scep_issuer_serial_parse(der, len, &got, &serial, &fi, &why),
	    SCEP_OK);
	assert_name(got, X509_get_subject_name(fx.ca_cert));
	assert_int_equal(ASN1_INTEGER_get(serial), 1000);
	X509_NAME_free(got);
	ASN1_INTEGER_free(serial);
	/* An IssuerAndSubject is not an IssuerAndSerialNumber. */
	free(der);
	assert_int_equal(scep_issuer_subject_build(issuer,
	                     X509_get_subject_name(fx.issued), &der, &len),
	    SCEP_OK);
	assert_int_equal(
	    scep_issuer_serial_parse(der, len, &got, &serial, &fi, &why),
	    SCEP_E_PARSE);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_REQUEST);
	assert_non_null(why);
	free(der);
	assert_int_equal(scep_issuer_serial_build(NULL, serials[0], &der, &len),
	    SCEP_E_BUILD);
	assert_null(der);

	BN_free(bn);
	X509_NAME_free(issuer);
	assert_int_equal(ERR_peek_error(), 0);
}

static void
test_issuer_subject(void **state)
{
	X509_NAME *issuer = make_name("Issuing CA"), *subject;
	X509_NAME *got_issuer = NULL, *got_subject = NULL;
	ASN1_INTEGER *serial = NULL;
	uint8_t *der = NULL, *ber, *garbage;
	size_t len, ber_len;
	const char *why = NULL;
	int fi = 0;

	(void)state;
	subject = make_name("device-1");
	assert_int_equal(
	    scep_issuer_subject_build(issuer, subject, &der, &len), SCEP_OK);
	assert_int_equal(scep_issuer_subject_parse(
	                     der, len, &got_issuer, &got_subject, &fi, &why),
	    SCEP_OK);
	assert_int_equal(fi, SCEP_FAILINFO_NONE);
	assert_name(got_issuer, issuer);
	assert_name(got_subject, subject);
	X509_NAME_free(got_issuer);
	X509_NAME_free(got_subject);

	ber = to_ber(der, len, -1, &ber_len);
	assert_int_equal(scep_issuer_subject_parse(ber, ber_len, &got_issuer,
	                     &got_subject, &fi, &why),
	    SCEP_OK);
	assert_name(got_issuer, issuer);
	assert_name(got_subject, subject);
	X509_NAME_free(got_issuer);
	X509_NAME_free(got_subject);
	assert_prefixes_refused(der, len);
	assert_prefixes_refused(ber, ber_len);

	/* An IssuerAndSerialNumber is not an IssuerAndSubject. */
	assert_int_equal(
	    scep_issuer_serial_parse(der, len, &got_issuer, &serial, &fi, &why),
	    SCEP_E_PARSE);
	assert_null(got_issuer);
	assert_null(serial);

	/* A name with no RDN at all is a Name. */
	X509_NAME_free(subject);
	subject = X509_NAME_new();
	free(der);
	assert_int_equal(
	    scep_issuer_subject_build(issuer, subject, &der, &len), SCEP_OK);
	assert_int_equal(scep_issuer_subject_parse(
	                     der, len, &got_issuer, &got_subject, &fi, &why),
	    SCEP_OK);
	assert_int_equal(X509_NAME_entry_count(got_subject), 0);
	X509_NAME_free(got_issuer);
	X509_NAME_free(got_subject);

	/* Garbage of the right shape: a SEQUENCE of two INTEGERs. */
	garbage = (uint8_t *)"\x30\x06\x02\x01\x01\x02\x01\x02";
	assert_int_equal(scep_issuer_subject_parse(
	                     garbage, 8, &got_issuer, &got_subject, &fi, &why),
	    SCEP_E_PARSE);
	assert_int_equal(fi, SCEP_FAILINFO_BAD_REQUEST);
	assert_null(got_issuer);
	assert_null(got_subject);
	/* The CSR a PKCSReq carries. */
	{
		unsigned char *csr_der = NULL;
		int n = i2d_X509_REQ(fx.csr, &csr_der);

		messagedata_refused(csr_der, (size_t)n);
		OPENSSL_free(csr_der);
	}
	messagedata_refused(NULL, 0);

	free(ber);
	free(der);
	X509_NAME_free(issuer);
	X509_NAME_free(subject);
	assert_int_equal(ERR_peek_error(), 0);
}

/* A request with caller-made content, as the RA sees it: parsed, opened. */
static struct scep_request *
request_with_content(int type, const uint8_t *content, size_t content_len,
    int ber, uint8_t **plain, size_t *plain_len)
{
	struct scep_pkcsreq_params p = {
	    .message_type = type,
	    .transaction_id = "poll-or-get-1",
	    .signer = fx.client_cert,
	    .signer_key = fx.client_key,
	    .recipient = fx.ra_cert,
	    .cipher = EVP_aes_256_cbc(),
	    .digest = EVP_sha256(),
	    .ber_indefinite = ber,
	    .content = content,
	    .content_len = content_len,
	};
	struct scep_request *req = NULL;
	uint8_t *der = NULL;
	size_t len;
	const char *why = NULL;
	int fi, cipher;

	assert_int_equal(scep_pkcsreq_build(&p, &der, &len), SCEP_OK);
	assert_int_equal(der[1] == 0x80, ber);
	assert_int_equal(
	    scep_request_parse(der, len, NULL, &req, &fi, &why), SCEP_OK);
	assert_int_equal(req->message_type, type);
	assert_string_equal(req->transaction_id, "poll-or-get-1");
	assert_int_equal(req->sender_nonce_len, 16);
	assert_int_equal(req->envelope[1] == 0x80, ber);
	assert_int_equal(
	    scep_envelope_open(req->envelope, req->envelope_len, fx.ra_cert,
	        fx.ra_key, NULL, plain, plain_len, &cipher, &fi, &why),
	    SCEP_OK);
	assert_int_equal(cipher, NID_aes_256_cbc);
	assert_int_equal(*plain_len, content_len);
	assert_memory_equal(*plain, content, content_len);
	free(der);
	return req;
}

static void
test_request_content(void **state)
{
	struct scep_pkcsreq_params p = {
	    .message_type = SCEP_MSG_GETCERT,
	    .transaction_id = "T",
	    .signer = fx.client_cert,
	    .signer_key = fx.client_key,
	    .recipient = fx.ra_cert,
	    .cipher = EVP_aes_128_cbc(),
	};
	uint8_t *der = NULL, *content;
	size_t len, content_len;

	(void)state;
	/* Neither CSR nor content, or content without a transactionID. */
	assert_int_equal(scep_pkcsreq_build(&p, &der, &len), SCEP_E_BUILD);
	assert_null(der);
	assert_int_equal(
	    scep_issuer_serial_build(X509_get_issuer_name(fx.issued),
	        X509_get0_serialNumber(fx.issued), &content, &content_len),
	    SCEP_OK);
	p.content = content;
	p.content_len = content_len;
	p.transaction_id = NULL;
	assert_int_equal(scep_pkcsreq_build(&p, &der, &len), SCEP_E_BUILD);
	assert_null(der);
	free(content);
}

/* GetCert: the answer is any certificate the CA issued (here one for
 * another key), encrypted to the requester's signer. */
static void
test_getcert_round_trip(void **state)
{
	struct scep_request *req;
	struct scep_certrep *rep = NULL;
	X509_NAME *issuer = NULL;
	ASN1_INTEGER *serial = NULL;
	uint8_t *content, *plain = NULL, *der = NULL;
	size_t content_len, plain_len, len;
	const char *why = NULL;
	int fi;

	(void)state;
	assert_int_equal(
	    scep_issuer_serial_build(X509_get_issuer_name(fx.other_cert),
	        X509_get0_serialNumber(fx.other_cert), &content, &content_len),
	    SCEP_OK);
	for (int ber = 0; ber <= 1; ber++) {
		struct scep_certrep_params cp;

		req = request_with_content(SCEP_MSG_GETCERT, content,
		    content_len, ber, &plain, &plain_len);
		assert_int_equal(scep_issuer_serial_parse(plain, plain_len,
		                     &issuer, &serial, &fi, &why),
		    SCEP_OK);
		assert_int_equal(
		    X509_NAME_cmp(issuer, X509_get_issuer_name(fx.other_cert)),
		    0);
		assert_int_equal(ASN1_INTEGER_cmp(serial,
		                     X509_get0_serialNumber(fx.other_cert)),
		    0);

		memset(&cp, 0, sizeof(cp));
		cp.transaction_id = req->transaction_id;
		cp.recipient_nonce = req->sender_nonce;
		cp.recipient_nonce_len = req->sender_nonce_len;
		cp.pki_status = SCEP_STATUS_SUCCESS;
		cp.issued = fx.other_cert;
		cp.recipient = req->signer;
		cp.cipher = scep_reply_cipher(NID_aes_256_cbc);
		cp.signer = fx.ra_cert;
		cp.signer_key = fx.ra_key;
		assert_int_equal(scep_certrep_build(&cp, &der, &len), SCEP_OK);
		assert_int_equal(scep_certrep_parse(der, len, fx.ra_cert,
		                     fx.client_cert, fx.client_key, &rep),
		    SCEP_OK);
		assert_int_equal(rep->pki_status, SCEP_STATUS_SUCCESS);
		assert_string_equal(rep->transaction_id, "poll-or-get-1");
		assert_memory_equal(rep->recipient_nonce, req->sender_nonce,
		    req->sender_nonce_len);
		assert_int_equal(rep->cipher_nid, NID_aes_256_cbc);
		assert_int_equal(sk_X509_num(rep->certs), 1);
		assert_int_equal(
		    X509_cmp(sk_X509_value(rep->certs, 0), fx.other_cert), 0);
		assert_null(rep->crls);
		scep_certrep_free(rep);
		rep = NULL;
		free(der);
		X509_NAME_free(issuer);
		ASN1_INTEGER_free(serial);
		free(plain);
		scep_request_free(req);
	}
	free(content);
	assert_int_equal(ERR_peek_error(), 0);
}

static X509_CRL *
make_crl(void)
{
	X509_CRL *crl = X509_CRL_new();
	X509_REVOKED *rev = X509_REVOKED_new();
	ASN1_TIME *t = ASN1_TIME_new();

	assert_non_null(crl);
	assert_non_null(rev);
	assert_true(X509_CRL_set_version(crl, 1));
	assert_true(
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(fx.ca_cert)));
	assert_non_null(X509_gmtime_adj(t, 0));
	assert_true(X509_CRL_set1_lastUpdate(crl, t));
	assert_non_null(X509_gmtime_adj(t, 86400));
	assert_true(X509_CRL_set1_nextUpdate(crl, t));
	assert_true(X509_REVOKED_set_serialNumber(
	    rev, X509_get_serialNumber(fx.other_cert)));
	assert_non_null(X509_gmtime_adj(t, -60));
	assert_true(X509_REVOKED_set_revocationDate(rev, t));
	assert_true(X509_CRL_add0_revoked(crl, rev));
	assert_true(X509_CRL_sort(crl));
	assert_true(X509_CRL_sign(crl, fx.ca_key, EVP_sha256()) > 0);
	ASN1_TIME_free(t);
	return crl;
}

/* GetCRL: SUCCESS with the CRL and no certificate; the client reads the
 * CRL back from the envelope. */
static void
test_getcrl_round_trip(void **state)
{
	struct scep_request *req;
	struct scep_certrep *rep = NULL;
	struct scep_certrep_params cp;
	X509_CRL *crl = make_crl(), *got;
	X509_REVOKED *revoked = NULL;
	X509_NAME *issuer = NULL;
	ASN1_INTEGER *serial = NULL;
	uint8_t *content, *plain = NULL, *der = NULL;
	size_t content_len, plain_len, len;
	const char *why = NULL;
	int fi;

	(void)state;
	assert_int_equal(
	    scep_issuer_serial_build(X509_get_issuer_name(fx.issued),
	        X509_get0_serialNumber(fx.issued), &content, &content_len),
	    SCEP_OK);
	req = request_with_content(
	    SCEP_MSG_GETCRL, content, content_len, 1, &plain, &plain_len);
	assert_int_equal(scep_issuer_serial_parse(
	                     plain, plain_len, &issuer, &serial, &fi, &why),
	    SCEP_OK);
	assert_int_equal(
	    X509_NAME_cmp(issuer, X509_get_subject_name(fx.ca_cert)), 0);

	memset(&cp, 0, sizeof(cp));
	cp.transaction_id = req->transaction_id;
	cp.recipient_nonce = req->sender_nonce;
	cp.recipient_nonce_len = req->sender_nonce_len;
	cp.pki_status = SCEP_STATUS_SUCCESS;
	cp.recipient = req->signer;
	cp.cipher = EVP_aes_128_cbc();
	cp.signer = fx.ra_cert;
	cp.signer_key = fx.ra_key;
	/* Neither a certificate nor a CRL: nothing to answer with. */
	assert_int_equal(scep_certrep_build(&cp, &der, &len), SCEP_E_BUILD);
	assert_null(der);
	cp.crl = crl;
	assert_int_equal(scep_certrep_build(&cp, &der, &len), SCEP_OK);
	assert_int_equal(scep_certrep_parse(der, len, fx.ra_cert,
	                     fx.client_cert, fx.client_key, &rep),
	    SCEP_OK);
	assert_int_equal(rep->pki_status, SCEP_STATUS_SUCCESS);
	assert_int_equal(rep->cipher_nid, NID_aes_128_cbc);
	assert_null(rep->certs);
	assert_int_equal(sk_X509_CRL_num(rep->crls), 1);
	got = sk_X509_CRL_value(rep->crls, 0);
	assert_int_equal(X509_CRL_cmp(got, crl), 0);
	assert_int_equal(X509_CRL_get0_by_serial(got, &revoked,
	                     X509_get_serialNumber(fx.other_cert)),
	    1);
	assert_int_equal(X509_CRL_verify(got, fx.ca_key), 1);
	scep_certrep_free(rep);
	rep = NULL;
	/* Without the client's key only the cipher is read. */
	assert_int_equal(
	    scep_certrep_parse(der, len, fx.ra_cert, NULL, NULL, &rep),
	    SCEP_OK);
	assert_null(rep->certs);
	assert_null(rep->crls);
	scep_certrep_free(rep);
	rep = NULL;
	free(der);

	/* A certificate and a CRL together are both read back. */
	cp.issued = fx.issued;
	assert_int_equal(scep_certrep_build(&cp, &der, &len), SCEP_OK);
	assert_int_equal(scep_certrep_parse(der, len, fx.ra_cert,
	                     fx.client_cert, fx.client_key, &rep),
	    SCEP_OK);
	assert_int_equal(sk_X509_num(rep->certs), 1);
	assert_int_equal(sk_X509_CRL_num(rep->crls), 1);
	scep_certrep_free(rep);
	free(der);

	X509_NAME_free(issuer);
	ASN1_INTEGER_free(serial);
	free(plain);
	free(content);
	scep_request_free(req);
	X509_CRL_free(crl);
	assert_int_equal(ERR_peek_error(), 0);
}

/*
 * CertPoll with caller-made IssuerAndSubject; the RA answers PENDING: no
 * envelope, pkiStatus 3, no failInfo even though the params' failinfo is 0
 * (badAlg) and a text is set, and the request's nonce echoed.
 */
static void
test_certpoll_pending(void **state)
{
	struct scep_request *req;
	struct scep_certrep *rep = NULL;
	struct scep_certrep_params cp;
	X509_NAME *issuer = NULL, *subject = NULL;
	uint8_t *content, *plain = NULL, *der = NULL;
	size_t content_len, plain_len, len;
	const unsigned char *p;
	PKCS7 *p7;
	PKCS7_SIGNER_INFO *si;
	ASN1_TYPE *status;
	const char *why = NULL;
	int fi;

	(void)state;
	assert_int_equal(
	    scep_issuer_subject_build(X509_get_subject_name(fx.ca_cert),
	        X509_REQ_get_subject_name(fx.csr), &content, &content_len),
	    SCEP_OK);
	req = request_with_content(
	    SCEP_MSG_CERTPOLL, content, content_len, 0, &plain, &plain_len);
	assert_int_equal(scep_issuer_subject_parse(
	                     plain, plain_len, &issuer, &subject, &fi, &why),
	    SCEP_OK);
	assert_int_equal(
	    X509_NAME_cmp(issuer, X509_get_subject_name(fx.ca_cert)), 0);
	assert_int_equal(
	    X509_NAME_cmp(subject, X509_REQ_get_subject_name(fx.csr)), 0);

	memset(&cp, 0, sizeof(cp));
	cp.transaction_id = req->transaction_id;
	cp.recipient_nonce = req->sender_nonce;
	cp.recipient_nonce_len = req->sender_nonce_len;
	cp.pki_status = SCEP_STATUS_PENDING;
	cp.failinfo_text = "not for PENDING";
	cp.recipient = req->signer;
	cp.signer = fx.ra_cert;
	cp.signer_key = fx.ra_key;
	assert_int_equal(scep_certrep_build(&cp, &der, &len), SCEP_OK);
	assert_int_equal(scep_certrep_parse(der, len, fx.ra_cert,
	                     fx.client_cert, fx.client_key, &rep),
	    SCEP_OK);
	assert_int_equal(rep->pki_status, SCEP_STATUS_PENDING);
	assert_int_equal(rep->failinfo, SCEP_FAILINFO_NONE);
	assert_null(rep->failinfo_text);
	assert_string_equal(rep->transaction_id, "poll-or-get-1");
	assert_int_equal(rep->recipient_nonce_len, req->sender_nonce_len);
	assert_memory_equal(
	    rep->recipient_nonce, req->sender_nonce, req->sender_nonce_len);
	assert_int_equal(rep->sender_nonce_len, 16);
	assert_memory_not_equal(rep->sender_nonce, req->sender_nonce, 16);
	assert_int_equal(rep->cipher_nid, NID_undef);
	assert_null(rep->certs);
	assert_null(rep->crls);
	scep_certrep_free(rep);

	/* On the wire: pkiStatus "3", no failInfo(Text), empty eContent. */
	assert_empty_econtent(der, len);
	p = der;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	assert_non_null(p7);
	si = sk_PKCS7_SIGNER_INFO_value(p7->d.sign->signer_info, 0);
	status = PKCS7_get_signed_attribute(
	    si, OBJ_txt2nid("2.16.840.1.113733.1.9.3"));
	assert_non_null(status);
	assert_int_equal(status->type, V_ASN1_PRINTABLESTRING);
	assert_int_equal(ASN1_STRING_length(status->value.asn1_string), 1);
	assert_memory_equal(
	    ASN1_STRING_get0_data(status->value.asn1_string), "3", 1);
	assert_null(PKCS7_get_signed_attribute(
	    si, OBJ_txt2nid("2.16.840.1.113733.1.9.4")));
	assert_null(
	    PKCS7_get_signed_attribute(si, OBJ_txt2nid("1.3.6.1.5.5.7.24.1")));
	PKCS7_free(p7);

	free(der);
	X509_NAME_free(issuer);
	X509_NAME_free(subject);
	free(plain);
	free(content);
	scep_request_free(req);
	assert_int_equal(ERR_peek_error(), 0);
}

/* GetNextCACert: signed by the current CA, the next CA and RA inside. */
static void
test_next_ca(void **state)
{
	EVP_PKEY *next_key = EVP_RSA_gen(2048);
	X509 *next_ca, *next_ra;
	STACK_OF(X509) *next = sk_X509_new_null(), *got = NULL;
	STACK_OF(X509) *cacerts = sk_X509_new_null();
	uint8_t *der = NULL, *ber, *other = NULL, *inner;
	unsigned char *cert_der = NULL;
	size_t len, ber_len, other_len;
	const unsigned char *p;
	PKCS7 *p7, *in7;
	PKCS7_SIGNER_INFO *si;
	ASN1_OCTET_STRING *os;
	int n;

	(void)state;
	assert_non_null(next_key);
	next_ca = make_cert(next_key, "Test CA 2", NULL, NULL, 11);
	next_ra =
	    make_cert(fx.other_key, "test-MSCEP-RA 2", next_ca, next_key, 12);
	assert_true(sk_X509_push(next, next_ca));
	assert_true(sk_X509_push(next, next_ra));
	assert_int_equal(scep_next_ca_build(next, fx.ca_cert, fx.ca_key,
	                     EVP_sha256(), &der, &len),
	    SCEP_OK);

	/* Its shape: one SignerInfo without SCEP attributes, the signer's
	 * certificate only, id-data content holding a degenerate SignedData. */
	p = der;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	assert_non_null(p7);
	assert_true(PKCS7_type_is_signed(p7));
	assert_int_equal(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 1);
	si = sk_PKCS7_SIGNER_INFO_value(p7->d.sign->signer_info, 0);
	assert_null(PKCS7_get_signed_attribute(
	    si, OBJ_txt2nid("2.16.840.1.113733.1.9.2")));
	assert_non_null(
	    PKCS7_get_signed_attribute(si, NID_pkcs9_messageDigest));
	assert_int_equal(sk_X509_num(p7->d.sign->cert), 1);
	assert_int_equal(
	    X509_cmp(sk_X509_value(p7->d.sign->cert, 0), fx.ca_cert), 0);
	assert_true(PKCS7_type_is_data(p7->d.sign->contents));
	os = p7->d.sign->contents->d.data;
	p = ASN1_STRING_get0_data(os);
	in7 = d2i_PKCS7(NULL, &p, ASN1_STRING_length(os));
	assert_non_null(in7);
	assert_true(PKCS7_type_is_signed(in7));
	assert_int_equal(sk_PKCS7_SIGNER_INFO_num(in7->d.sign->signer_info), 0);
	assert_int_equal(sk_X509_num(in7->d.sign->cert), 2);
	PKCS7_free(in7);
	PKCS7_free(p7);

	/* Verified against the current CA, or its own certificate. */
	assert_int_equal(
	    scep_next_ca_parse(der, len, fx.ca_cert, &got), SCEP_OK);
	assert_int_equal(sk_X509_num(got), 2);
	assert_int_equal(X509_cmp(sk_X509_value(got, 0), next_ca), 0);
	assert_int_equal(X509_cmp(sk_X509_value(got, 1), next_ra), 0);
	sk_X509_pop_free(got, X509_free);
	got = NULL;
	assert_int_equal(scep_next_ca_parse(der, len, NULL, &got), SCEP_OK);
	assert_int_equal(sk_X509_num(got), 2);
	sk_X509_pop_free(got, X509_free);
	got = NULL;

	/* Streamed BER around the signed content verifies the same. */
	ber = to_ber(der, len, 3, &ber_len);
	assert_int_equal(
	    scep_next_ca_parse(ber, ber_len, fx.ca_cert, &got), SCEP_OK);
	assert_int_equal(sk_X509_num(got), 2);
	sk_X509_pop_free(got, X509_free);
	got = NULL;
	free(ber);

	/* Another signer than the one expected. */
	assert_int_equal(
	    scep_next_ca_parse(der, len, fx.ra_cert, &got), SCEP_E_CONTENT);
	assert_null(got);
	assert_int_equal(scep_next_ca_build(next, fx.other_cert, fx.other_key,
	                     NULL, &other, &other_len),
	    SCEP_OK);
	assert_int_equal(scep_next_ca_parse(other, other_len, fx.ca_cert, &got),
	    SCEP_E_CONTENT);
	assert_null(got);
	free(other);

	/* Tampered: the signature, then a byte of the next CA certificate
	 * inside the signed content. */
	der[len - 1] ^= 0x01;
	assert_int_equal(
	    scep_next_ca_parse(der, len, fx.ca_cert, &got), SCEP_E_SIGNATURE);
	assert_null(got);
	der[len - 1] ^= 0x01;
	n = i2d_X509(next_ca, &cert_der);
	inner = memmem(der, len, cert_der, (size_t)n);
	assert_non_null(inner);
	inner[n / 2] ^= 0x01;
	assert_int_equal(
	    scep_next_ca_parse(der, len, fx.ca_cert, &got), SCEP_E_SIGNATURE);
	assert_null(got);
	assert_int_equal(
	    scep_next_ca_parse(der, len, NULL, &got), SCEP_E_SIGNATURE);
	inner[n / 2] ^= 0x01;
	OPENSSL_free(cert_der);
	assert_prefixes_refused(der, len);

	/* Not GetNextCACert answers: GetCACert's unsigned certs-only, a
	 * PENDING CertRep (no content). */
	assert_true(sk_X509_push(cacerts, fx.ra_cert));
	assert_true(sk_X509_push(cacerts, fx.ca_cert));
	assert_int_equal(
	    scep_certs_only_build(cacerts, &other, &other_len), SCEP_OK);
	assert_int_equal(
	    scep_next_ca_parse(other, other_len, NULL, &got), SCEP_E_CONTENT);
	free(other);
	scep_certrep_free(certrep_status(
	    SCEP_STATUS_PENDING, SCEP_FAILINFO_NONE, NULL, &other, &other_len));
	assert_int_equal(scep_next_ca_parse(other, other_len, fx.ra_cert, &got),
	    SCEP_E_CONTENT);
	assert_null(got);
	free(other);
	assert_int_equal(scep_next_ca_build(NULL, fx.ca_cert, fx.ca_key, NULL,
	                     &other, &other_len),
	    SCEP_E_BUILD);
	assert_null(other);

	free(der);
	sk_X509_free(cacerts);
	sk_X509_pop_free(next, X509_free);
	EVP_PKEY_free(next_key);
	assert_int_equal(ERR_peek_error(), 0);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(
	    scep_failinfo_name(SCEP_FAILINFO_BAD_ALG), "badAlg");
	assert_string_equal(
	    scep_failinfo_name(SCEP_FAILINFO_BAD_CERT_ID), "badCertId");
	assert_string_equal(
	    scep_message_type_name(SCEP_MSG_PKCSREQ), "PKCSReq");
	assert_string_equal(scep_message_type_name(99), "unknown");
	assert_string_equal(
	    scep_strerror(SCEP_E_DECRYPT), "envelope cannot be decrypted");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_apple_pkcsreq),
	    cmocka_unit_test(test_apple_policy),
	    cmocka_unit_test(test_cryptlib_pkcsreq),
	    cmocka_unit_test(test_strongswan_pss_pkcsreq),
	    cmocka_unit_test(test_ndes_certrep),
	    cmocka_unit_test(test_micromdm_and_cryptlib_certrep),
	    cmocka_unit_test(test_round_trip_der),
	    cmocka_unit_test(test_round_trip_ber),
	    cmocka_unit_test(test_certrep_failure_pending),
	    cmocka_unit_test(test_certrep_refuses_des),
	    cmocka_unit_test(test_des_envelope),
	    cmocka_unit_test(test_tampered_signature),
	    cmocka_unit_test(test_decrypt_failures_look_alike),
	    cmocka_unit_test(test_envelope_read_one_answer),
	    cmocka_unit_test(test_envelope_read_earlier_ra_cert),
	    cmocka_unit_test(test_envelope_read_previous_ra_key),
	    cmocka_unit_test(test_envelope_key_reused),
	    cmocka_unit_test(test_envelope_keys_forgotten),
	    cmocka_unit_test(test_signer_key_refused_first),
	    cmocka_unit_test(test_signer_not_rsa_refused_first),
	    cmocka_unit_test(test_csr_bad_signature),
	    cmocka_unit_test(test_request_without_content),
	    cmocka_unit_test(test_attribute_twice_refused),
	    cmocka_unit_test(test_certpoll_content),
	    cmocka_unit_test(test_certs_only),
	    cmocka_unit_test(test_truncated_input),
	    cmocka_unit_test(test_issuer_serial),
	    cmocka_unit_test(test_issuer_subject),
	    cmocka_unit_test(test_request_content),
	    cmocka_unit_test(test_getcert_round_trip),
	    cmocka_unit_test(test_getcrl_round_trip),
	    cmocka_unit_test(test_certpoll_pending),
	    cmocka_unit_test(test_next_ca),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_csr_digest_policy),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
