/*
 * The RA signs only the profiles the frontend makes (services/ra/
 * profile_check.c): one SCEP payload, certificate payloads of its own CA
 * chain, no key the frontend does not write. A frontend taken over must
 * not get a VPN, Wi-Fi or MDM payload, another trust anchor or an
 * device key open to all apps signed in the organization's name. Profiles from
 * tests/fuzz/corpus/profile (an issuing CA and its root in
 * profile-chain.pem), changed here one thing at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <plist/plist.h>

#include "profile_check.h"

static STACK_OF(X509) * chain; /* the issuing CA, its root */

static STACK_OF(X509) * chain_read(const char *path)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	FILE *fp = fopen(path, "r");
	X509 *x;

	assert_non_null(sk);
	assert_non_null(fp);
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL)
		assert_true(sk_X509_push(sk, x) > 0);
	fclose(fp);
	assert_true(sk_X509_num(sk) > 0);
	return sk;
}

static int
setup(void **state)
{
	(void)state;
	chain = chain_read(PROFILE_CHAIN);
	return sk_X509_num(chain) == 2 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	sk_X509_pop_free(chain, X509_free);
	return 0;
}

/* A file's bytes; *len its size. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	assert_non_null(buf = malloc((size_t)n + 1));
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* The check of `len` bytes at `buf` against `sk`: 0 or -1, why in `why`;
 * what it gives to sign in *signed_xml if asked (caller frees with
 * plist_to_xml_free), else freed. */
static int
check_bytes(const char *buf, size_t len, const STACK_OF(X509) * sk, char *why,
    size_t n, char **signed_xml)
{
	char *out = NULL;
	uint32_t out_len = 0;
	int rc;

	why[0] = '\0';
	rc = ra_profile_check(
	    (const uint8_t *)buf, len, sk, &out, &out_len, why, n);
	if (rc == 0) {
		assert_non_null(out);
		assert_int_equal(strlen(out), out_len);
	}
	if (signed_xml != NULL)
		*signed_xml = rc == 0 ? out : NULL;
	else if (rc == 0)
		plist_to_xml_free(out);
	return rc;
}

/* The check of corpus file `name` against `sk`: 0 or -1, why in `why`. */
static int
check_file(const char *name, const STACK_OF(X509) * sk, char *why, size_t n)
{
	char path[512];
	size_t len;
	char *buf;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", PROFILE_CORPUS, name);
	buf = slurp(path, &len);
	rc = check_bytes(buf, len, sk, why, n, NULL);
	free(buf);
	return rc;
}

/* The profile the frontend makes, parsed, to change. */
static plist_t
good_profile(void)
{
	char path[512];
	size_t len;
	char *buf;
	plist_t p = NULL;

	snprintf(path, sizeof(path), "%s/frontend-chain.xml", PROFILE_CORPUS);
	buf = slurp(path, &len);
	plist_from_xml(buf, (uint32_t)len, &p);
	free(buf);
	assert_non_null(p);
	return p;
}

/* The check of `p` written as XML against `sk`; frees `p`. */
static int
check_plist_against(plist_t p, const STACK_OF(X509) * sk, char *why, size_t n)
{
	char *xml = NULL;
	uint32_t len = 0;
	int rc;

	plist_to_xml(p, &xml, &len);
	plist_free(p);
	assert_non_null(xml);
	rc = check_bytes(xml, len, sk, why, n, NULL);
	plist_to_xml_free(xml);
	return rc;
}

static int
check_plist(plist_t p, char *why, size_t n)
{
	return check_plist_against(p, chain, why, n);
}

static plist_t
payloads_of(plist_t p)
{
	return plist_dict_get_item(p, "PayloadContent");
}

/* The SCEP payload's settings (the first payload, as the frontend puts
 * it). */
static plist_t
scep_settings(plist_t p)
{
	return plist_dict_get_item(
	    plist_array_get_item(payloads_of(p), 0), "PayloadContent");
}

static void
assert_refused(int rc, const char *why, const char *want)
{
	assert_int_equal(rc, -1);
	if (strstr(why, want) == NULL)
		fail_msg("refused for \"%s\", want \"%s\"", why, want);
}

static void
test_frontends_profiles_are_signed(void **state)
{
	char why[160];

	(void)state;
	assert_int_equal(
	    check_file("frontend-chain.xml", chain, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	/* Without a root payload (a device that trusts the root already),
	 * the fingerprint the root's. */
	assert_int_equal(
	    check_file("frontend-no-root.xml", chain, why, sizeof(why)), 0);
	/* Written again by libplist, as the frontend writes it. */
	assert_int_equal(check_plist(good_profile(), why, sizeof(why)), 0);
}

static void
test_other_payloads_refused(void **state)
{
	char why[160];
	plist_t p = good_profile(), wifi = plist_new_dict();

	(void)state;
	plist_dict_set_item(
	    wifi, "PayloadType", plist_new_string("com.apple.wifi.managed"));
	plist_dict_set_item(wifi, "SSID_STR", plist_new_string("corp"));
	plist_array_append_item(payloads_of(p), wifi);
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a payload of type \"com.apple.wifi.managed\"");
	assert_refused(check_file("wifi-payload.xml", chain, why, sizeof(why)),
	    why, "com.apple.wifi.managed");
	/* No SCEP payload, or two. */
	p = good_profile();
	plist_array_remove_item(payloads_of(p), 0);
	assert_refused(
	    check_plist(p, why, sizeof(why)), why, "0 SCEP payloads, not one");
	assert_refused(check_file("two-scep.xml", chain, why, sizeof(why)), why,
	    "2 SCEP payloads, not one");
}

static void
test_keys_the_frontend_does_not_write_refused(void **state)
{
	char why[160];
	plist_t p = good_profile();

	(void)state;
	/* A device key every app may use. */
	plist_dict_set_item(
	    scep_settings(p), "AllowAllAppsAccess", plist_new_bool(1));
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a SCEP setting \"AllowAllAppsAccess\" scepd does not write");
	/* A profile that cannot be removed. */
	p = good_profile();
	plist_dict_set_item(p, "PayloadRemovalDisallowed", plist_new_bool(1));
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a profile key \"PayloadRemovalDisallowed\"");
	p = good_profile();
	plist_dict_set_item(plist_array_get_item(payloads_of(p), 1),
	    "PayloadScope", plist_new_string("System"));
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a payload key \"PayloadScope\"");
	/* A URL that is not http(s). */
	p = good_profile();
	plist_dict_set_item(
	    scep_settings(p), "URL", plist_new_string("ftp://scep.example/"));
	assert_refused(
	    check_plist(p, why, sizeof(why)), why, "without an http URL");
	/* A third party's profile (micromdm's test profile, against its own
	 * CA): keys scepd does not write. */
	STACK_OF(X509) *testca =
	    chain_read(VECTORS_DIR "/micromdm-scep/testca/ca.pem");
	assert_refused(check_file("micromdm-sceptest.mobileconfig", testca, why,
	                   sizeof(why)),
	    why, "scepd does not write");
	sk_X509_pop_free(testca, X509_free);
}

/* An array nested `depth` deep. */
static plist_t
nested(int depth)
{
	plist_t a = plist_new_array();

	for (int i = 1; i < depth; i++) {
		plist_t outer = plist_new_array();

		plist_array_append_item(outer, a);
		a = outer;
	}
	return a;
}

/*
 * Values of another shape than the frontend writes. Written again to be
 * signed, arrays nested thousands deep under Subject grew by their
 * indentation: a 256 KiB request became hundreds of megabytes.
 */
static void
test_values_not_as_the_frontend_writes_them_refused(void **state)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char why[160];
	plist_t p = good_profile(), sans;

	(void)state;
	plist_dict_set_item(scep_settings(p), "Subject", nested(2000));
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a Subject that is not lists of [type, value] pairs");
	p = good_profile();
	plist_dict_set_item(
	    scep_settings(p), "Keysize", plist_new_string("2048"));
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a SCEP setting \"Keysize\" of another type than scepd writes");
	p = good_profile();
	plist_dict_set_item(p, "PayloadVersion", nested(3));
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a profile key \"PayloadVersion\" of another type than scepd "
	    "writes");
	p = good_profile();
	sans = plist_dict_get_item(scep_settings(p), "SubjectAltName");
	plist_dict_set_item(sans, "ntPrincipalName", plist_new_array());
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a SubjectAltName that is not scepd's lists of names");
	/* The device takes the CA the server gives by the fingerprint: none,
	 * or the issuing CA's (Apple's client hashes the top of the chain it
	 * builds, the root), is not what the frontend writes. */
	p = good_profile();
	plist_dict_remove_item(scep_settings(p), "CAFingerprint");
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a CAFingerprint not of the root of [ra] CACertificate");
	assert_int_equal(
	    X509_digest(sk_X509_value(chain, 0), EVP_sha1(), md, &mdlen), 1);
	p = good_profile();
	plist_dict_set_item(scep_settings(p), "CAFingerprint",
	    plist_new_data((const char *)md, mdlen));
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a CAFingerprint not of the root");
	/* Installed, a profile replaces the one of its PayloadIdentifier. */
	p = good_profile();
	plist_dict_set_item(
	    p, "PayloadIdentifier", plist_new_string("com.fabrikam.wifi"));
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a PayloadIdentifier not of scepd's");
	p = good_profile();
	plist_dict_set_item(plist_array_get_item(payloads_of(p), 1),
	    "PayloadIdentifier", plist_new_string("com.fabrikam.vpn"));
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a payload's PayloadIdentifier not under the profile's");
	/* ExternalURL's scheme in capitals, as the frontend takes it. */
	p = good_profile();
	plist_dict_set_item(scep_settings(p), "URL",
	    plist_new_string("HTTPS://SCEP.EXAMPLE/certsrv/mscep/mscep.dll"));
	assert_int_equal(check_plist(p, why, sizeof(why)), 0);
}

static void
test_certificates_not_of_the_chain_refused(void **state)
{
	STACK_OF(X509) *other = chain_read(PROFILE_OTHER_ROOT), *forged;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint8_t *der = NULL;
	const uint8_t *q;
	X509 *root;
	char why[160];
	plist_t p;
	int len;

	(void)state;
	assert_refused(check_file("other-root.xml", chain, why, sizeof(why)),
	    why, "a certificate not of [ra] CACertificate");
	/* The issuing CA made a trust anchor. */
	assert_refused(
	    check_file("intermediate-as-root.xml", chain, why, sizeof(why)),
	    why, "not self-signed");
	/* A certificate naming itself its issuer without its signature (as
	 * a link certificate of a key rollover may) is no trust anchor: the
	 * root with its signature's last byte changed, in the chain too. */
	assert_true((len = i2d_X509(sk_X509_value(chain, 1), &der)) > 0);
	der[len - 1] ^= 0x55;
	q = der;
	assert_non_null(root = d2i_X509(NULL, &q, len));
	assert_non_null(forged = sk_X509_new_null());
	assert_true(sk_X509_push(forged, X509_dup(sk_X509_value(chain, 0))));
	assert_true(sk_X509_push(forged, root));
	p = good_profile();
	plist_dict_set_item(plist_array_get_item(payloads_of(p), 1),
	    "PayloadContent", plist_new_data((const char *)der, len));
	/* Checked before the SCEP payload, whose CAFingerprint such a chain
	 * has no root for. */
	plist_array_append_item(payloads_of(p),
	    plist_copy(plist_array_get_item(payloads_of(p), 0)));
	plist_array_remove_item(payloads_of(p), 0);
	assert_refused(check_plist_against(p, forged, why, sizeof(why)), why,
	    "not self-signed");
	sk_X509_pop_free(forged, X509_free);
	OPENSSL_free(der);
	/* A fingerprint that makes the device take another CA. */
	assert_int_equal(
	    X509_digest(sk_X509_value(other, 0), EVP_sha1(), md, &mdlen), 1);
	p = good_profile();
	plist_dict_set_item(scep_settings(p), "CAFingerprint",
	    plist_new_data((const char *)md, mdlen));
	assert_refused(check_plist(p, why, sizeof(why)), why,
	    "a CAFingerprint not of the root of [ra] CACertificate");
	/* The frontend's own profile, to an RA whose chain is another. */
	assert_refused(
	    check_file("frontend-chain.xml", other, why, sizeof(why)), why,
	    "of [ra] CACertificate");
	sk_X509_pop_free(other, X509_free);
	/* An RA whose chain stops at the issuing CA knows no fingerprint a
	 * device would match. */
	assert_non_null(forged = sk_X509_new_null());
	assert_true(sk_X509_push(forged, X509_dup(sk_X509_value(chain, 0))));
	assert_refused(
	    check_file("frontend-no-root.xml", forged, why, sizeof(why)), why,
	    "[ra] CACertificate holds no root (self-signed) certificate of "
	    "the issuing CA");
	sk_X509_pop_free(forged, X509_free);
}

static void
test_what_is_no_xml_profile_refused(void **state)
{
	char why[160], path[512];
	size_t len;
	char *buf;

	(void)state;
	assert_refused(
	    check_file("frontend-chain.bplist", chain, why, sizeof(why)), why,
	    "not an XML property list");
	snprintf(path, sizeof(path), "%s/frontend-chain.xml", PROFILE_CORPUS);
	buf = slurp(path, &len);
	assert_refused(check_bytes(buf, len / 2, chain, why, sizeof(why), NULL),
	    why, "not a property list");
	assert_refused(check_bytes(buf, 3, chain, why, sizeof(why), NULL), why,
	    "not an XML property list");
	free(buf);
	buf = "<?xml version=\"1.0\"?><plist version=\"1.0\"><array/></plist>";
	assert_refused(
	    check_bytes(buf, strlen(buf), chain, why, sizeof(why), NULL), why,
	    "no dictionary at the top");
}

/*
 * What is signed is the profile as read, written again: a key given twice
 * is read once by libplist (the last), and a device whose parser took the
 * other would otherwise get what was never checked. A Wi-Fi payload array
 * before the frontend's PayloadContent is not signed; after it, it is
 * what the RA reads, and refused.
 */
static void
test_what_is_signed_is_what_was_checked(void **state)
{
	static const char wifi[] =
	    "<key>PayloadContent</key><array><dict><key>PayloadType</key>"
	    "<string>com.apple.wifi.managed</string></dict></array>";
	char why[160], path[512], *signed_xml = NULL, *twice;
	const char *at;
	size_t len, head;
	char *buf;

	(void)state;
	snprintf(path, sizeof(path), "%s/frontend-chain.xml", PROFILE_CORPUS);
	buf = slurp(path, &len);
	/* The top dictionary's first key, as plistlib writes it. */
	assert_non_null(at = strstr(buf, "<dict>"));
	head = (size_t)(at - buf) + strlen("<dict>");
	assert_non_null(twice = malloc(len + sizeof(wifi)));
	memcpy(twice, buf, head);
	memcpy(twice + head, wifi, sizeof(wifi) - 1);
	memcpy(twice + head + sizeof(wifi) - 1, buf + head, len - head);
	assert_int_equal(check_bytes(twice, len + sizeof(wifi) - 1, chain, why,
	                     sizeof(why), &signed_xml),
	    0);
	assert_null(strstr(signed_xml, "com.apple.wifi.managed"));
	assert_non_null(strstr(signed_xml, "com.apple.security.scep"));
	/* Given again, what was signed reads the same. */
	assert_int_equal(check_bytes(signed_xml, strlen(signed_xml), chain, why,
	                     sizeof(why), NULL),
	    0);
	plist_to_xml_free(signed_xml);
	/* The Wi-Fi array last: it is the one read, and refused. */
	at = strstr(buf, "</dict>\n</plist>");
	assert_non_null(at);
	head = (size_t)(at - buf);
	memcpy(twice, buf, head);
	memcpy(twice + head, wifi, sizeof(wifi) - 1);
	memcpy(twice + head + sizeof(wifi) - 1, buf + head, len - head);
	assert_refused(check_bytes(twice, len + sizeof(wifi) - 1, chain, why,
	                   sizeof(why), NULL),
	    why, "com.apple.wifi.managed");
	free(twice);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frontends_profiles_are_signed),
	    cmocka_unit_test(test_other_payloads_refused),
	    cmocka_unit_test(test_keys_the_frontend_does_not_write_refused),
	    cmocka_unit_test(test_certificates_not_of_the_chain_refused),
	    cmocka_unit_test(
	        test_values_not_as_the_frontend_writes_them_refused),
	    cmocka_unit_test(test_what_is_no_xml_profile_refused),
	    cmocka_unit_test(test_what_is_signed_is_what_was_checked),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
