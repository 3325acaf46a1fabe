/* lib/query.c: the raw query string of SCEP GET requests and its base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "query.h"

/* query_get on a NUL-terminated query; the value, or NULL. */
static char *
get(const char *query, const char *name, int want_rc)
{
	char *v = (char *)0x1;
	size_t len = 12345;

	assert_int_equal(
	    query_get(query, strlen(query), name, &v, &len), want_rc);
	if (want_rc != 1) {
		assert_null(v);
		assert_int_equal(len, 0);
		return NULL;
	}
	assert_non_null(v);
	assert_int_equal(len, strlen(v));
	return v;
}

static void
want_value(const char *query, const char *name, const char *want)
{
	char *v = get(query, name, 1);

	assert_string_equal(v, want);
	free(v);
}

static void
test_plus_stays_plus(void **state)
{
	(void)state;
	/* iOS and macOS send base64 with '+' and '/' unescaped. */
	want_value("operation=PKIOperation&message=MIAG+CSqG/Ib3DQ==",
	    "message", "MIAG+CSqG/Ib3DQ==");
	want_value("operation=PKI+Operation", "operation", "PKI+Operation");
}

static void
test_percent_decoding(void **state)
{
	char *v;
	size_t len;

	(void)state;
	want_value("message=AB%2BC%2fD%0AEF%0d%0A%3D%3D", "message",
	    "AB+C/D\nEF\r\n==");
	/* Names are decoded too, and compared without regard to case. */
	want_value("op%65ration=GetCACert", "operation", "GetCACert");
	want_value("Operation=GetCACaps", "operation", "GetCACaps");
	want_value("OPERATION=GetCACaps&message=x", "operation", "GetCACaps");
	/* %00 is data: the length tells, not the terminator. */
	assert_int_equal(query_get("m=a%00b", 7, "m", &v, &len), 1);
	assert_int_equal(len, 3);
	assert_memory_equal(v, "a\0b", 3);
	free(v);
	/* Malformed escapes in our parameter are refused... */
	get("message=AB%2", "message", QUERY_EINVAL);
	get("message=AB%zzCD", "message", QUERY_EINVAL);
	get("message=%", "message", QUERY_EINVAL);
	/* ...but do not matter in a parameter nobody asked for. */
	want_value("junk=%zz&operation=GetCACert", "operation", "GetCACert");
	want_value("%zz=1&operation=GetCACert", "operation", "GetCACert");
}

static void
test_missing(void **state)
{
	char *v = (char *)0x1;

	(void)state;
	get("", "operation", 0);
	get("message=abc", "operation", 0);
	get("operations=GetCACert&xoperation=1&operatio=2", "operation", 0);
	get("&&&=&==&", "operation", 0);
	assert_int_equal(query_get(NULL, 0, "operation", &v, NULL), 0);
	assert_null(v);
	/* A parameter without '=' is present with an empty value. */
	want_value("operation&message=x", "operation", "");
	want_value("operation=&message=x", "operation", "");
	/* Only `len` bytes count: the query need not be NUL-terminated. */
	assert_int_equal(
	    query_get("message=abc&operation=X", 11, "operation", &v, NULL), 0);
	assert_int_equal(
	    query_get("message=abcdef", 11, "message", &v, NULL), 1);
	assert_string_equal(v, "abc");
	free(v);
}

static void
test_duplicates(void **state)
{
	(void)state;
	/* Two operations are ambiguous: refused, not first- or last-wins. */
	get("operation=GetCACert&operation=PKIOperation", "operation",
	    QUERY_EDUP);
	get("operation=GetCACert&Operation=GetCACert", "operation", QUERY_EDUP);
	get("message=a&operation=GetCACaps&message=b", "message", QUERY_EDUP);
	/* A duplicate of another parameter does not matter. */
	want_value("x=1&x=2&operation=GetCACaps", "operation", "GetCACaps");
}

static void
decode_ok(const char *b64, const void *want, size_t want_len)
{
	uint8_t *out = NULL;
	size_t len = 0;

	assert_int_equal(query_base64_decode(b64, strlen(b64), &out, &len), 0);
	assert_int_equal(len, want_len);
	assert_memory_equal(out, want, want_len);
	free(out);
}

static void
decode_bad(const char *b64)
{
	uint8_t *out = (uint8_t *)0x1;
	size_t len = 7;

	assert_int_equal(
	    query_base64_decode(b64, strlen(b64), &out, &len), QUERY_EINVAL);
	assert_null(out);
	assert_int_equal(len, 0);
}

static void
test_base64(void **state)
{
	(void)state;
	decode_ok("QUJD", "ABC", 3);
	decode_ok("QUJDRA==", "ABCD", 4);
	decode_ok("QUJD\nRA==\n", "ABCD", 4);
	decode_ok("QU\r\nJD RA\t==", "ABCD", 4);
	decode_ok("QUJDRA", "ABCD", 4); /* padding dropped */
	decode_ok("QUI", "AB", 2);
	decode_ok("+/+/", "\xfb\xff\xbf", 3);
	decode_bad("");
	decode_bad("\n\r \t");
	decode_bad("QUJD!");
	decode_bad("QUJD-RA=="); /* OpenSSL would stop at '-' */
	decode_bad("QUJD_A=="); /* base64url is not what SCEP sends */
	decode_bad("QUJDR"); /* 4n+1 characters */
	decode_bad("QQ==QUJD"); /* data after the padding */
	decode_bad("====");
	decode_bad("QUJD%0ARA=="); /* still percent-encoded */
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(1 << 20);

	assert_non_null(f);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	assert_true(*len > 0);
	return buf;
}

/* A real Apple PKCSReq as iOS puts it in a GET: base64 with %0A every 64
 * characters and '+' and '/' left as they are. */
static void
test_real_ios_request(void **state)
{
	size_t der_len, b64_len, qlen = 0, out_len = 0, msg_len = 0;
	uint8_t *der =
	    read_file(VECTORS_DIR "/micromdm-scep/PKCSReq.der", &der_len);
	char *b64, *query, *msg = NULL;
	uint8_t *out = NULL;
	int plus = 0;

	(void)state;
	b64 = malloc(der_len * 2 + 4);
	query = malloc(der_len * 3 + 128);
	assert_non_null(b64);
	assert_non_null(query);
	b64_len =
	    (size_t)EVP_EncodeBlock((unsigned char *)b64, der, (int)der_len);
	qlen = (size_t)sprintf(query, "operation=PKIOperation&message=");
	for (size_t i = 0; i < b64_len; i++) {
		if (i > 0 && i % 64 == 0)
			qlen += (size_t)sprintf(query + qlen, "%%0A");
		plus |= b64[i] == '+';
		query[qlen++] = b64[i];
	}
	query[qlen] = '\0';
	assert_true(plus); /* the point of the test */
	assert_int_equal(query_get(query, qlen, "message", &msg, &msg_len), 1);
	assert_non_null(strchr(msg, '\n'));
	assert_int_equal(query_base64_decode(msg, msg_len, &out, &out_len), 0);
	assert_int_equal(out_len, der_len);
	assert_memory_equal(out, der, der_len);
	free(out);
	free(msg);
	free(query);
	free(b64);
	free(der);
}

static void
test_huge_input(void **state)
{
	size_t n = 16u << 20, len = 0;
	char *big = malloc(n + 64), *v = NULL;
	uint8_t *out = NULL;

	(void)state;
	assert_non_null(big);
	/* 16 MiB of separators: nothing found, quickly. */
	memset(big, '&', n);
	assert_int_equal(query_get(big, n, "message", &v, &len), 0);
	/* 16 MiB of base64 behind message=, as one parameter. */
	memcpy(big, "message=", 8);
	memset(big + 8, 'A', n - 8);
	assert_int_equal(query_get(big, n, "message", &v, &len), 1);
	assert_int_equal(len, n - 8);
	assert_int_equal(query_base64_decode(v, len, &out, &len), 0);
	assert_int_equal(len, (n - 8) / 4 * 3);
	assert_int_equal(out[0], 0);
	assert_int_equal(out[len - 1], 0);
	free(out);
	free(v);
	/* The same base64 with a stray byte at the very end is refused. */
	memset(big, 'A', n);
	big[n - 1] = '*';
	out = NULL;
	assert_int_equal(query_base64_decode(big, n, &out, &len), QUERY_EINVAL);
	assert_null(out);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plus_stays_plus),
	    cmocka_unit_test(test_percent_decoding),
	    cmocka_unit_test(test_missing),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_real_ios_request),
	    cmocka_unit_test(test_huge_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
