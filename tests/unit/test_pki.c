/*
 * lib/pki.c on micromdm's published test CA: loading an encrypted key with
 * a passphrase file, matching certificate and key, key usage checks that
 * name the file at fault, thumbprints as `openssl x509 -fingerprint`
 * prints them, the issuer of a certificate among CAs of the same name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/x509v3.h>

#include "pki.h"

#define CA_PEM VECTORS_DIR "/micromdm-scep/testca/ca.pem"
#define CA_KEY VECTORS_DIR "/micromdm-scep/testca/ca.key"
#define CLIENT_KEY VECTORS_DIR "/micromdm-scep/testclient/client.key"
#define NDES_RA VECTORS_DIR "/micromdm-scep/testca2/ca2.pem"

/* A passphrase file holding `text` and a newline; caller unlinks. */
static void
passfile(char *path, size_t len, const char *text)
{
	FILE *f;

	snprintf(path, len, "/tmp/scepd-test-pass-%d", (int)getpid());
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "%s\n", text);
	fclose(f);
}

/* The test CA's certificate and key (ca.key is DES-EDE3 encrypted with an
 * empty passphrase), and another key. */
struct pair {
	X509 *ca;
	EVP_PKEY *key, *other;
};

static void
pair_load(struct pair *p)
{
	char pass[64], err[512];

	assert_non_null(p->ca = pki_load_cert(CA_PEM, err, sizeof(err)));
	passfile(pass, sizeof(pass), "");
	p->key = pki_load_key(CA_KEY, pass, err, sizeof(err));
	unlink(pass);
	assert_non_null(p->key);
	assert_non_null(
	    p->other = pki_load_key(CLIENT_KEY, NULL, err, sizeof(err)));
}

static void
pair_free(struct pair *p)
{
	EVP_PKEY_free(p->other);
	EVP_PKEY_free(p->key);
	X509_free(p->ca);
}

static void
test_encrypted_key_and_pair(void **state)
{
	struct pair p;
	char err[512];

	(void)state;
	pair_load(&p);
	assert_int_equal(
	    pki_check_pair(p.ca, p.key, CA_PEM, CA_KEY, err, sizeof(err)), 0);
	assert_int_equal(
	    pki_check_pair(p.ca, p.other, CA_PEM, CLIENT_KEY, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "ca.pem"));
	assert_non_null(strstr(err, "client.key"));
	pair_free(&p);
}

/* A key signs what its certificate verifies and opens what is encrypted
 * to it; another key does neither, and the error names where it came
 * from (what a token's key, answering to a certificate's name, is put
 * through at start). */
static void
test_key_works(void **state)
{
	struct pair p;
	char err[512];

	(void)state;
	pair_load(&p);
	assert_int_equal(
	    pki_check_key_works(p.ca, p.key, 0, "[signer.t]", err, sizeof(err)),
	    0);
	assert_int_equal(
	    pki_check_key_works(p.ca, p.key, 1, "[signer.t]", err, sizeof(err)),
	    0);
	assert_int_equal(pki_check_key_works(
	                     p.ca, p.other, 0, "[signer.t]", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "[signer.t]: the key does not sign"));
	assert_int_equal(pki_check_key_works(
	                     p.ca, p.other, 1, "[signer.t]", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "does not open"));
	pair_free(&p);
}

/* Without its passphrase the key does not load, and the error says which
 * file; a missing passphrase file is named too. */
static void
test_wrong_or_missing_passphrase(void **state)
{
	char pass[64], err[512];
	EVP_PKEY *key;

	(void)state;
	passfile(pass, sizeof(pass), "not the passphrase");
	key = pki_load_key(CA_KEY, pass, err, sizeof(err));
	assert_null(key);
	assert_non_null(strstr(err, "ca.key"));
	unlink(pass);
	key = pki_load_key(CA_KEY, "/nonexistent/pass", err, sizeof(err));
	assert_null(key);
	assert_non_null(strstr(err, "/nonexistent/pass"));
	assert_null(pki_load_cert("/nonexistent/cert.pem", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/cert.pem"));
}

/* The test CA may sign certificates only; NDES's RA may only sign. */
static void
test_key_usage(void **state)
{
	char err[512];
	X509 *ca = pki_load_cert(CA_PEM, NULL, 0);
	X509 *ra = pki_load_cert(NDES_RA, err, sizeof(err));

	(void)state;
	assert_non_null(ca);
	assert_non_null(ra);
	assert_int_equal(pki_check_key_usage(ra, X509v3_KU_DIGITAL_SIGNATURE,
	                     NDES_RA, "signing", err, sizeof(err)),
	    0);
	assert_int_equal(
	    pki_check_key_usage(ra, X509v3_KU_KEY_ENCIPHERMENT, NDES_RA,
	        "receiving encrypted requests", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "ca2.pem"));
	assert_int_equal(pki_check_key_usage(ca, X509v3_KU_DIGITAL_SIGNATURE,
	                     CA_PEM, "signing", err, sizeof(err)),
	    -1);
	X509_free(ca);
	X509_free(ra);
}

/* A certificate of `subject`, issued under `issuer_name`, holding `key`
 * and signed with `signer`; a CA's when `ca`. */
static X509 *
cert_make(const X509_NAME *subject, const X509_NAME *issuer_name, EVP_PKEY *key,
    EVP_PKEY *signer, int ca)
{
	X509 *c = X509_new();
	X509_EXTENSION *bc = NULL;

	assert_non_null(c);
	assert_true(X509_set_version(c, 2));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(c), ca ? 7 : 8));
	assert_true(X509_set_subject_name(c, subject));
	assert_true(X509_set_issuer_name(c, issuer_name));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(c), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(c), 86400));
	assert_true(X509_set_pubkey(c, key));
	if (ca) {
		assert_non_null(bc = X509V3_EXT_conf_nid(NULL, NULL,
		                    NID_basic_constraints, "CA:TRUE"));
		assert_true(X509_add_ext(c, bc, -1));
		X509_EXTENSION_free(bc);
	}
	assert_true(X509_sign(c, signer, EVP_sha256()) > 0);
	return c;
}

/* After a CA switch that kept the CA's name: only the CA whose key signed
 * a certificate is its issuer, whatever the order of the list. */
static void
test_issuer_among(void **state)
{
	struct pair p;
	X509 *successor, *leaf;
	STACK_OF(X509) * cas;

	(void)state;
	pair_load(&p);
	/* The same name as the test CA, another key. */
	successor = cert_make(X509_get_subject_name(p.ca),
	    X509_get_subject_name(p.ca), p.other, p.other, 1);
	leaf = cert_make(X509_get_subject_name(p.ca),
	    X509_get_subject_name(p.ca), p.other, p.key, 0);
	assert_non_null(cas = sk_X509_new_null());
	assert_null(pki_issuer_among(leaf, cas));
	assert_true(sk_X509_push(cas, successor));
	assert_null(pki_issuer_among(leaf, cas));
	assert_true(sk_X509_push(cas, p.ca));
	assert_ptr_equal(pki_issuer_among(leaf, cas), p.ca);
	sk_X509_free(cas);
	X509_free(leaf);
	X509_free(successor);
	pair_free(&p);
}

static X509_NAME *
name_cn(const char *cn)
{
	X509_NAME *n = X509_NAME_new();

	assert_non_null(n);
	assert_true(X509_NAME_add_entry_by_txt(
	    n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0));
	return n;
}

/* pki_chain_root of the certificates given, NULL-terminated; *why. */
static X509 *
root_of(const char **why, ...)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *c, *root;
	va_list ap;

	assert_non_null(sk);
	va_start(ap, why);
	while ((c = va_arg(ap, X509 *)) != NULL)
		assert_true(sk_X509_push(sk, c) > 0);
	va_end(ap);
	*why = NULL;
	root = pki_chain_root(sk, why);
	sk_X509_free(sk);
	return root;
}

/* The root a profile's CAFingerprint names: where every chain among the
 * certificates ends, as Apple's client judges GetCACert's answer. */
static void
test_chain_root(void **state)
{
	EVP_PKEY *k1 = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256"),
	         *ki = EVP_EC_gen("P-256"), *ko = EVP_EC_gen("P-256");
	X509_NAME *n1 = name_cn("Root 1"), *n2 = name_cn("Root 2"),
	          *ni = name_cn("Issuing CA"), *no = name_cn("Other CA");
	X509 *r1, *r2, *issuing, *cross, *other;
	const char *why;

	(void)state;
	assert_non_null(k1);
	assert_non_null(k2);
	assert_non_null(ki);
	assert_non_null(ko);
	r1 = cert_make(n1, n1, k1, k1, 1);
	r2 = cert_make(n2, n2, k2, k2, 1);
	issuing = cert_make(ni, n1, ki, k1, 1);
	/* Root 1's key certified by Root 2 (a root renewal's link). */
	cross = cert_make(n1, n2, k1, k2, 1);
	/* Another PKI's intermediate, under Root 2. */
	other = cert_make(no, n2, ko, k2, 1);
	assert_ptr_equal(root_of(&why, issuing, r1, NULL), r1);
	assert_ptr_equal(root_of(&why, r1, NULL), r1); /* its own root */
	/* Another PKI's root beside it: no chain leads there. */
	assert_ptr_equal(root_of(&why, issuing, r1, r2, NULL), r1);
	/* Through the link alone, every chain ends at Root 2. */
	assert_ptr_equal(root_of(&why, issuing, cross, r2, NULL), r2);
	assert_null(root_of(&why, issuing, NULL));
	assert_string_equal(
	    why, "holds no root (self-signed) certificate of the issuing CA");
	/* The issuing CA's issuer twice over: a device picks either. */
	assert_null(root_of(&why, issuing, r1, cross, r2, NULL));
	assert_non_null(strstr(why, "leads to more than one top"));
	assert_null(root_of(&why, issuing, cross, r1, r2, NULL));
	assert_non_null(strstr(why, "leads to more than one top"));
	/* Another PKI's chain beside it: two tops. */
	assert_null(root_of(&why, issuing, r1, other, r2, NULL));
	assert_non_null(strstr(why, "leads to more than one top"));
	/* So beside a CA that is its own root (the RA certificates it
	 * issued lead to it), not the other chain's root. */
	assert_null(root_of(&why, r1, other, r2, NULL));
	assert_non_null(strstr(why, "leads to more than one top"));
	X509_free(r1);
	X509_free(r2);
	X509_free(issuing);
	X509_free(cross);
	X509_free(other);
	X509_NAME_free(no);
	EVP_PKEY_free(ko);
	X509_NAME_free(n1);
	X509_NAME_free(n2);
	X509_NAME_free(ni);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(ki);
}

/* `openssl x509 -in testca/ca.pem -noout -fingerprint -sha256` printed
 * 46:C7:12:EA:...:C5:28; the admin page shows it without colons. */
static void
test_thumbprint(void **state)
{
	X509 *ca = pki_load_cert(CA_PEM, NULL, 0);
	char out[129];

	(void)state;
	assert_non_null(ca);
	assert_int_equal(pki_thumbprint(ca, EVP_sha256(), out, sizeof(out)), 0);
	assert_string_equal(out,
	    "46C712EA43DAE9FCBE309CD52442104D23E196CE"
	    "56516CDEECA093E443F1C528");
	X509_free(ca);
}

/* Written keys are private to their owner. */
static void
test_write_key_mode(void **state)
{
	char path[64], err[512];
	EVP_PKEY *key = pki_load_key(CLIENT_KEY, NULL, err, sizeof(err));
	struct stat st;

	(void)state;
	assert_non_null(key);
	snprintf(path, sizeof(path), "/tmp/scepd-test-key-%d", (int)getpid());
	assert_int_equal(pki_write_key(path, key), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	unlink(path);
	EVP_PKEY_free(key);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encrypted_key_and_pair),
	    cmocka_unit_test(test_key_works),
	    cmocka_unit_test(test_wrong_or_missing_passphrase),
	    cmocka_unit_test(test_key_usage),
	    cmocka_unit_test(test_thumbprint),
	    cmocka_unit_test(test_issuer_among),
	    cmocka_unit_test(test_chain_root),
	    cmocka_unit_test(test_write_key_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
