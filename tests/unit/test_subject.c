/* lib/subject.c: the subject text of a profile download. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "subject.h"

/*
 * Parses text and compares with want: "TYPE=value" per attribute, "|"
 * starting a new RDN and "+" joining one (a made-up notation with no
 * escapes, so that the expected result reads plainly).
 */
static void
want_rdns(const char *text, const char *const *want)
{
	struct subject *s = NULL;
	char err[256] = "unset";
	size_t n = 0, rdn = 0;

	if (subject_parse(text, strlen(text), &s, err, sizeof(err)) != 0)
		fail_msg("'%s' refused: %s", text, err);
	assert_non_null(s);
	assert_string_equal(err, "");
	for (; want[n] != NULL; n++) {
		const char *w = want[n];
		char got[512];

		assert_true(n < s->nattrs);
		if (w[0] == '|' || w[0] == '+') {
			if (w[0] == '|' && n > 0)
				rdn++;
			w++;
		}
		snprintf(got, sizeof(got), "%s=%s", s->attrs[n].type,
		    s->attrs[n].value);
		assert_string_equal(got, w);
		assert_int_equal(
		    s->attrs[n].value_len, strlen(s->attrs[n].value));
		assert_int_equal(s->attrs[n].rdn, rdn);
	}
	assert_int_equal(s->nattrs, n);
	assert_int_equal(s->nrdns, rdn + 1);
	subject_free(s);
}

/* Parses text[0..len), expecting a refusal that mentions `why`. */
static void
want_error_n(const char *text, size_t len, const char *why)
{
	struct subject *s = (struct subject *)0x1;
	char err[256];

	assert_int_equal(
	    subject_parse(text, len, &s, err, sizeof(err)), SUBJECT_EINVAL);
	assert_null(s);
	if (strstr(err, why) == NULL)
		fail_msg("'%.*s': error '%s' does not say '%s'", (int)len, text,
		    err, why);
	assert_null(strchr(err, '\n'));
}

static void
want_error(const char *text, const char *why)
{
	want_error_n(text, strlen(text), why);
}

static void
test_order_kept(void **state)
{
	(void)state;
	/* Apple's order, as given: never reversed into LDAP's. */
	want_rdns("O=Fabrikam,OU=IT,CN=Robs IPad",
	    (const char *[]){"|O=Fabrikam", "|OU=IT", "|CN=Robs IPad", NULL});
	want_rdns("CN=Robs IPad,OU=IT,O=Fabrikam",
	    (const char *[]){"|CN=Robs IPad", "|OU=IT", "|O=Fabrikam", NULL});
	want_rdns("CN=device", (const char *[]){"|CN=device", NULL});
	/* Repeated types stay separate RDNs, in order. */
	want_rdns("DC=com,DC=fabrikam,CN=x",
	    (const char *[]){"|0.9.2342.19200300.100.1.25=com",
	        "|0.9.2342.19200300.100.1.25=fabrikam", "|CN=x", NULL});
}

static void
test_multi_valued(void **state)
{
	(void)state;
	want_rdns("O=Fabrikam,OU=IT+L=Berlin,CN=Robs IPad",
	    (const char *[]){
	        "|O=Fabrikam", "|OU=IT", "+L=Berlin", "|CN=Robs IPad", NULL});
	want_rdns(
	    "CN=a+CN=b+O=c", (const char *[]){"|CN=a", "+CN=b", "+O=c", NULL});
}

static void
test_types(void **state)
{
	(void)state;
	/* Apple's six short names, whatever the spelling. */
	want_rdns("c=DE,st=Berlin,l=Berlin,o=F,ou=IT,cn=x",
	    (const char *[]){"|C=DE", "|ST=Berlin", "|L=Berlin", "|O=F",
	        "|OU=IT", "|CN=x", NULL});
	want_rdns("commonName=x,organizationName=y,2.5.4.11=z",
	    (const char *[]){"|CN=x", "|O=y", "|OU=z", NULL});
	/* Every other type as a dotted OID. */
	want_rdns("E=rob@fabrikam.example,emailAddress=a@b,UID=rob,"
	          "serialNumber=42,1.3.6.1.4.1.311.20.2.3=upn",
	    (const char *[]){"|1.2.840.113549.1.9.1=rob@fabrikam.example",
	        "|1.2.840.113549.1.9.1=a@b", "|0.9.2342.19200300.100.1.1=rob",
	        "|2.5.4.5=42", "|1.3.6.1.4.1.311.20.2.3=upn", NULL});
}

static void
test_escapes(void **state)
{
	(void)state;
	want_rdns("O=Fabrikam\\, Inc.,CN=x",
	    (const char *[]){"|O=Fabrikam, Inc.", "|CN=x", NULL});
	want_rdns("CN=a\\+b\\;c\\<d\\>\\\"e\\\"\\=f\\#g\\\\h",
	    (const char *[]){"|CN=a+b;c<d>\"e\"=f#g\\h", NULL});
	/* Spaces around types and values go, escaped ones stay. */
	want_rdns(" O = Fabrikam , CN = Robs IPad ",
	    (const char *[]){"|O=Fabrikam", "|CN=Robs IPad", NULL});
	want_rdns("CN=\\ padded\\ ", (const char *[]){"|CN= padded ", NULL});
	want_rdns("CN=\\  two", (const char *[]){"|CN=  two", NULL});
}

static void
test_hex_escapes(void **state)
{
	(void)state;
	want_rdns("O=AT\\2BT,CN=\\41\\62c",
	    (const char *[]){"|O=AT+T", "|CN=Abc", NULL});
	/* Hex escapes of UTF-8, any case, as RFC 4514 writes é. */
	want_rdns("CN=\\C3\\A9t\\c3\\a9",
	    (const char *[]){"|CN=\xc3\xa9t\xc3\xa9", NULL});
	/* UTF-8 as is. */
	want_rdns("CN=iPhone von J\xc3\xbcrgen",
	    (const char *[]){"|CN=iPhone von J\xc3\xbcrgen", NULL});
	/* Half a UTF-8 sequence by hex is not text. */
	want_error("CN=\\C3", "not UTF-8 text");
	/* A NUL byte by hex is not text either. */
	want_error("CN=a\\00b", "not UTF-8 text");
	/* One hex digit is no escape. */
	want_error("CN=a\\4", "escape only");
}

static void
test_errors(void **state)
{
	char big[SUBJECT_TEXT_MAX + 2];
	struct subject *s = NULL;
	char err[256];
	size_t n;

	(void)state;
	want_error("", "subject is empty");
	want_error("Fabrikam", "attribute 1 is not TYPE=value");
	want_error("O=Fabrikam,,CN=x", "attribute 2 is not TYPE=value");
	want_error("=x", "attribute 1 is not TYPE=value");
	want_error("O=Fabrikam,CN=", "CN has an empty value");
	want_error("O=   ,CN=x", "O has an empty value");
	want_error("O=Fabrikam,XYZ=1", "unknown attribute type 'XYZ'");
	want_error("CN=a\\q", "escape only");
	want_error("CN=a\\", "ends with '\\'");
	want_error("CN=a,", "subject ends with ','");
	want_error("CN=a+", "subject ends with '+'");
	want_error("\x01\x02\xff", "attribute 1 is not TYPE=value");
	want_error("CN=\xff\xfe", "not UTF-8 text");
	want_error("CN=\xc0\xaf", "not UTF-8 text"); /* overlong '/' */
	want_error("CN=\xed\xa0\x80", "not UTF-8 text"); /* a surrogate */
	/* Control characters, NUL included, are no subject text. */
	want_error("CN=a\x01z", "not UTF-8 text");
	want_error("CN=a\tb", "not UTF-8 text");
	want_error("CN=a\x7f", "not UTF-8 text");
	want_error_n("CN=a\0b", 6, "not UTF-8 text");
	want_error_n("C\0N=a", 5, "attribute 1 is not TYPE=value");
	/* A control byte after '\' is named, not printed. */
	want_error("CN=a\\\x01", "byte 0x01");
	/* Limits. */
	memset(big, 'x', sizeof(big));
	memcpy(big, "CN=", 3);
	want_error_n(big, SUBJECT_TEXT_MAX + 1, "longer than 2048 bytes");
	assert_int_equal(
	    subject_parse(big, SUBJECT_TEXT_MAX, &s, err, sizeof(err)), 0);
	assert_int_equal(s->attrs[0].value_len, SUBJECT_TEXT_MAX - 3);
	subject_free(s);
	n = 0;
	for (int i = 0; i <= SUBJECT_ATTRS_MAX; i++)
		n += (size_t)snprintf(
		    big + n, sizeof(big) - n, "%sCN=%d", i ? "," : "", i);
	want_error_n(big, n, "more than 32 attributes");
	/* A type too long for any name. */
	memset(big, 'a', 100);
	memcpy(big + 100, "=x", 2);
	want_error_n(big, 102, "unknown attribute type");
	/* A too small error buffer is still terminated. */
	assert_int_equal(
	    subject_parse("Fabrikam", 8, &s, err, 5), SUBJECT_EINVAL);
	assert_string_equal(err, "subj");
	assert_int_equal(
	    subject_parse("Fabrikam", 8, &s, NULL, 0), SUBJECT_EINVAL);
	assert_null(s);
	assert_string_equal(subject_strerror(SUBJECT_EINVAL), "not a subject");
	subject_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_kept),
	    cmocka_unit_test(test_multi_valued),
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_escapes),
	    cmocka_unit_test(test_hex_escapes),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
