/*
 * lib/x509parse.c: requests, certificates and SignedData parsed without
 * OpenSSL's per-key decoder set-up must come out as d2i gives them: the
 * same key, the device's bytes kept (also a SubjectPublicKeyInfo that is
 * not DER-canonical: RSA without the NULL parameters), a request's key
 * only put in once it is asked for. The iPhone's 2016 request is read too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "x509parse.h"

static EVP_PKEY *rsa_key, *ec_key;

static int
setup(void **state)
{
	(void)state;
	rsa_key = EVP_RSA_gen(2048);
	ec_key = EVP_EC_gen("P-256");
	return rsa_key != NULL && ec_key != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec_key);
	return 0;
}

/* RSA's AlgorithmIdentifier without parameters (RFC 3279 asks for NULL;
 * some devices leave it out). */
static void
drop_rsa_params(X509_PUBKEY *spki)
{
	const unsigned char *bits;
	unsigned char *copy;
	int len;

	assert_true(X509_PUBKEY_get0_param(NULL, &bits, &len, NULL, spki));
	assert_non_null(copy = OPENSSL_memdup(bits, (size_t)len));
	assert_true(X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_rsaEncryption),
	    V_ASN1_UNDEF, NULL, copy, len));
}

static int
der_of_req(X509_REQ *req, unsigned char **der)
{
	int n = i2d_X509_REQ(req, der);

	assert_true(n > 0);
	return n;
}

static X509_REQ *
make_req(EVP_PKEY *key, int no_params)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_REQ_get_subject_name(req);

	assert_true(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"device", -1, -1, 0));
	assert_true(X509_REQ_set_pubkey(req, key));
	if (no_params)
		drop_rsa_params(X509_REQ_get_X509_PUBKEY(req));
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	return req;
}

static X509 *
make_cert(EVP_PKEY *key, int no_params)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);

	assert_true(X509_set_version(x, 2));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 7));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_true(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"SCEP SIGNER", -1, -1, 0));
	assert_true(X509_set_issuer_name(x, name));
	assert_true(X509_set_pubkey(x, key));
	if (no_params)
		drop_rsa_params(X509_get_X509_PUBKEY(x));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	return x;
}

static void
assert_same_spki(X509_PUBKEY *a, X509_PUBKEY *b)
{
	unsigned char *da = NULL, *db = NULL;
	int na = i2d_X509_PUBKEY(a, &da), nb = i2d_X509_PUBKEY(b, &db);

	assert_true(na > 0);
	assert_int_equal(na, nb);
	assert_memory_equal(da, db, (size_t)na);
	OPENSSL_free(da);
	OPENSSL_free(db);
}

/* Parsed, checked with the separate key, keyed: what d2i would give. */
static void
check_req(EVP_PKEY *key, int no_params)
{
	X509_REQ *made = make_req(key, no_params), *req;
	unsigned char *der = NULL, *again = NULL;
	const unsigned char *p;
	EVP_PKEY *pub = NULL;
	int n = der_of_req(made, &der), m;

	p = der;
	assert_non_null(req = x509parse_req(&p, n, &pub));
	assert_ptr_equal(p, der + n);
	/* An RSA key is not in yet; other types are parsed the usual way. */
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA)
		assert_null(X509_REQ_get0_pubkey(req));
	else
		assert_int_equal(
		    EVP_PKEY_eq(X509_REQ_get0_pubkey(req), key), 1);
	ERR_clear_error();
	assert_non_null(pub);
	assert_int_equal(EVP_PKEY_eq(pub, key), 1);
	assert_int_equal(X509_REQ_verify(req, pub), 1);

	assert_non_null(req = x509parse_req_keyed(req, pub, der, n));
	assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), key), 1);
	/* The device's SubjectPublicKeyInfo, byte for byte (no_params: not
	 * the one OpenSSL would encode from the key). */
	assert_same_spki(
	    X509_REQ_get_X509_PUBKEY(req), X509_REQ_get_X509_PUBKEY(made));
	/* Canonical requests re-encode to themselves either way. */
	if (!no_params) {
		m = der_of_req(req, &again);
		assert_int_equal(m, n);
		assert_memory_equal(again, der, (size_t)n);
		OPENSSL_free(again);
	}
	EVP_PKEY_free(pub);
	X509_REQ_free(req);
	X509_REQ_free(made);
	OPENSSL_free(der);
}

static void
test_req_rsa(void **state)
{
	(void)state;
	check_req(rsa_key, 0);
}

static void
test_req_rsa_without_params(void **state)
{
	(void)state;
	check_req(rsa_key, 1);
}

static void
test_req_ec(void **state)
{
	(void)state;
	check_req(ec_key, 0);
}

/* A request whose signature is wrong verifies no better parsed so. */
static void
test_req_bad_signature(void **state)
{
	X509_REQ *made = make_req(rsa_key, 0), *req;
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub = NULL;
	int n = der_of_req(made, &der);

	(void)state;
	der[n - 5] ^= 0x01; /* in the signature */
	p = der;
	assert_non_null(req = x509parse_req(&p, n, &pub));
	assert_non_null(pub);
	assert_int_not_equal(X509_REQ_verify(req, pub), 1);
	ERR_clear_error();
	EVP_PKEY_free(pub);
	X509_REQ_free(req);
	X509_REQ_free(made);
	OPENSSL_free(der);
}

static void
test_garbage(void **state)
{
	static const unsigned char junk[] = {0x30, 0x82, 0x01, 0x00, 0x02};
	const unsigned char *p = junk;
	EVP_PKEY *pub = (EVP_PKEY *)junk;

	(void)state;
	assert_null(x509parse_req(&p, sizeof(junk), &pub));
	assert_null(pub);
	p = junk;
	assert_null(x509parse_cert(&p, sizeof(junk)));
	p = junk;
	assert_null(x509parse_pkcs7(&p, sizeof(junk)));
	ERR_clear_error();
}

/* A SignedData's certificate gets its key and keeps its own bytes. */
static void
test_pkcs7_signer(void **state)
{
	X509 *signer = make_cert(rsa_key, 1), *got;
	BIO *data = BIO_new_mem_buf("pkiMessage", -1);
	PKCS7 *made, *p7;
	unsigned char *der = NULL, *cert_der = NULL, *got_der = NULL;
	const unsigned char *p;
	int n, cn, gn;

	(void)state;
	assert_non_null(made = PKCS7_sign(signer, rsa_key, NULL, data,
	                    PKCS7_BINARY | PKCS7_NOSMIMECAP));
	assert_true((n = i2d_PKCS7(made, &der)) > 0);
	p = der;
	assert_non_null(p7 = x509parse_pkcs7(&p, n));
	assert_ptr_equal(p, der + n);
	assert_int_equal(sk_X509_num(p7->d.sign->cert), 1);
	got = sk_X509_value(p7->d.sign->cert, 0);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(got), rsa_key), 1);
	cn = i2d_X509(signer, &cert_der);
	gn = i2d_X509(got, &got_der);
	assert_int_equal(gn, cn);
	assert_memory_equal(got_der, cert_der, (size_t)cn);
	/* Its signature still verifies over the bytes as received. */
	assert_int_equal(X509_verify(got, rsa_key), 1);
	assert_int_equal(PKCS7_verify(p7, NULL, NULL, NULL, NULL,
	                     PKCS7_NOVERIFY | PKCS7_BINARY),
	    1);
	OPENSSL_free(der);
	OPENSSL_free(cert_der);
	OPENSSL_free(got_der);
	PKCS7_free(p7);
	PKCS7_free(made);
	BIO_free(data);
	X509_free(signer);
}

/* A SignedData with X509PARSE_PKCS7_CERTS_MAX certificates is read, one
 * with more is refused before their keys are read (EC keys each cost a
 * decoder set-up: thousands in one request kept an RA worker busy). */
static void
test_pkcs7_certificates_capped(void **state)
{
	X509 *signer = make_cert(rsa_key, 0);
	STACK_OF(X509) *extra = sk_X509_new_null();

	(void)state;
	assert_non_null(extra);
	for (int total = 1; total <= X509PARSE_PKCS7_CERTS_MAX + 1; total++) {
		BIO *data = BIO_new_mem_buf("pkiMessage", -1);
		unsigned char *der = NULL;
		const unsigned char *p;
		PKCS7 *made, *p7;
		int n;

		assert_non_null(made = PKCS7_sign(signer, rsa_key, extra, data,
		                    PKCS7_BINARY | PKCS7_NOSMIMECAP));
		assert_true((n = i2d_PKCS7(made, &der)) > 0);
		p = der;
		p7 = x509parse_pkcs7(&p, n);
		if (total <= X509PARSE_PKCS7_CERTS_MAX) {
			assert_non_null(p7);
			assert_int_equal(sk_X509_num(p7->d.sign->cert), total);
		} else
			assert_null(p7);
		PKCS7_free(p7);
		PKCS7_free(made);
		OPENSSL_free(der);
		BIO_free(data);
		assert_true(sk_X509_push(extra, make_cert(ec_key, 0)) > 0);
	}
	sk_X509_pop_free(extra, X509_free);
	X509_free(signer);
}

static void
test_cert_ec(void **state)
{
	X509 *made = make_cert(ec_key, 0), *cert;
	unsigned char *der = NULL;
	const unsigned char *p;
	int n;

	(void)state;
	assert_true((n = i2d_X509(made, &der)) > 0);
	p = der;
	assert_non_null(cert = x509parse_cert(&p, n));
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), ec_key), 1);
	assert_int_equal(X509_verify(cert, ec_key), 1);
	X509_free(cert);
	X509_free(made);
	OPENSSL_free(der);
}

/* The iPhone's request of 2016 (BER, its signer certificate inside). */
static void
test_apple_request(void **state)
{
	unsigned char buf[16384];
	const unsigned char *p = buf;
	FILE *f = fopen(VECTORS_DIR "/micromdm-scep/PKCSReq.der", "rb");
	PKCS7 *p7;
	X509 *signer;
	size_t n;

	(void)state;
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	assert_true(n > 0 && n < sizeof(buf));
	assert_non_null(p7 = x509parse_pkcs7(&p, (long)n));
	assert_true(sk_X509_num(p7->d.sign->cert) >= 1);
	signer = sk_X509_value(p7->d.sign->cert, 0);
	assert_non_null(X509_get0_pubkey(signer));
	assert_int_equal(
	    EVP_PKEY_get_base_id(X509_get0_pubkey(signer)), EVP_PKEY_RSA);
	assert_int_equal(PKCS7_verify(p7, NULL, NULL, NULL, NULL,
	                     PKCS7_NOVERIFY | PKCS7_BINARY),
	    1);
	PKCS7_free(p7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_req_rsa),
	    cmocka_unit_test(test_req_rsa_without_params),
	    cmocka_unit_test(test_req_ec),
	    cmocka_unit_test(test_req_bad_signature),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_pkcs7_signer),
	    cmocka_unit_test(test_pkcs7_certificates_capped),
	    cmocka_unit_test(test_cert_ec),
	    cmocka_unit_test(test_apple_request),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
