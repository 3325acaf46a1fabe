/*
 * lib/log.c: one line per event, whatever the text it is given holds. A
 * device's transactionID is logged as sent: a line break or a terminal's
 * escape sequence in it must not make a line of its own, or redraw the
 * one before, that a reader or a restore script takes for the CA's. And
 * what a client chose made fit for one field of a line (log_escape).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* What log_event writes for these arguments, in `out`. */
static void
logged(const char *txid, const char *text, char *out, size_t size)
{
	char path[] = "/tmp/test_log.XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	log_event(LOG_LEVEL_INFO, txid, 7, "issued serial 0A to \"%s\"", text);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	n = pread(fd, out, size - 1, 0);
	assert_true(n > 0);
	out[n] = '\0';
	close(fd);
	unlink(path);
}

/* Line breaks, an escape sequence (cursor up, erase the line) and other
 * control bytes: one line, ending in its one '\n', the escape written as
 * \x1b and the rest of the text kept. */
static void
test_one_line_without_control_bytes(void **state)
{
	char out[4096];
	size_t len;

	(void)state;
	log_init("scepd-ca", LOG_LEVEL_INFO);
	logged("tx\x1b[1A\x1b[2K\rT scepd-ca[1] warn: revoked serial 0B\t(x)",
	    "CN=a\nT scepd-ca[1] warn: revoked serial 0C\x7f", out,
	    sizeof(out));
	len = strlen(out);
	assert_true(len > 1 && out[len - 1] == '\n');
	for (size_t i = 0; i + 1 < len; i++)
		assert_true((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
	assert_non_null(strstr(out,
	    " info txid=tx%1B[1A%1B[2K%0DT%20"
	    "scepd-ca[1]%20warn:%20revoked%20serial%20"
	    "0B%09(x) req=7: issued serial 0A to "
	    "\"CN=a T scepd-ca[1] warn: revoked "
	    "serial 0C\\x7f\"\n"));
}

/* A transactionID writes no fields of its own (a space and '=' encoded,
 * as in a path), and is logged whole up to the 256 bytes services keep. */
static void
test_txid_fields(void **state)
{
	char out[4096], txid[257], want[300];

	(void)state;
	log_init("scepd-ra", LOG_LEVEL_INFO);
	logged("X req=1: issued to 203.0.113.9 via /scep", "CN=x", out,
	    sizeof(out));
	assert_non_null(strstr(out,
	    " info txid=X%20req%3D1:%20issued%20to%20203.0.113.9%20via%20/scep "
	    "req=7: issued serial 0A to \"CN=x\"\n"));
	memset(txid, 'T', 255);
	txid[255] = 'Z';
	txid[256] = '\0';
	logged(txid, "CN=x", out, sizeof(out));
	snprintf(want, sizeof(want), " txid=%s req=7:", txid);
	assert_non_null(strstr(out, want));
}

/* Bytes that are not well-formed UTF-8 are escaped one by one (a lone
 * 0x9B is a CSI to a terminal not in UTF-8); well-formed UTF-8 is kept,
 * continuation bytes in 0x80-0x9F included (U+0117 is C4 97). */
static void
test_not_utf8(void **state)
{
	char out[4096];

	(void)state;
	log_init("scepd-frontend", LOG_LEVEL_INFO);
	logged("t",
	    "a\x9b[2J b\xc4\x97 c\xc0\xaf d\xed\xa0\x80 e\xf4\x90\x80\x80 "
	    "f\xf0\x9f\x98\x80 g\xe2\x82",
	    out, sizeof(out));
	assert_non_null(strstr(out,
	    "\"a\\x9b[2J b\xc4\x97 c\\xc0\\xaf d\\xed\\xa0\\x80 "
	    "e\\xf4\\x90\\x80\\x80 f\xf0\x9f\x98\x80 g\\xe2\\x82\"\n"));
}

/* A backslash, and a C1 control in UTF-8 (U+009B, a CSI to some
 * terminals), are escaped; other UTF-8 (an e with acute) is kept. */
static void
test_backslash_and_c1(void **state)
{
	char out[4096];

	(void)state;
	log_init("scepd-ca", LOG_LEVEL_INFO);
	logged("t", "a\\x1b b\xc2\x9b[2J c\xc3\xa9", out, sizeof(out));
	assert_non_null(
	    strstr(out, "\"a\\x5cx1b b\\xc2\\x9b[2J c\xc3\xa9\"\n"));
}

/* A line of the most text: cut, never split, never past its buffer. */
static void
test_long_line_cut(void **state)
{
	char out[8192], text[3000];
	size_t len;

	(void)state;
	memset(text, '\x01', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	logged(NULL, text, out, sizeof(out));
	len = strlen(out);
	assert_true(len <= 2048);
	assert_ptr_equal(strchr(out, '\n'), out + len - 1);
	assert_non_null(strstr(out, "\\x01\\x01\n"));
}

/* Fields a path would forge, and what reaches a terminal, are encoded; a
 * plain path is as it was; a short buffer cuts at a whole escape. */
static void
test_escape(void **state)
{
	static const struct {
		const char *in;
		size_t outlen;
		const char *want;
	} cases[] = {
	    {"/certsrv/mscep/mscep.dll", 64, "/certsrv/mscep/mscep.dll"},
	    {"/x status=200 client=203.0.113.9", 64,
	        "/x%20status%3D200%20client%3D203.0.113.9"},
	    {"\x1b[31m\t\"q\"\\%\x7f\xc3\xa9", 64,
	        "%1B[31m%09%22q%22%5C%25%7F%C3%A9"},
	    {"ab cd", 6, "ab%20"},
	    {"abc d", 6, "abc"},
	    {"abc", 1, ""},
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(out, 'X', sizeof(out));
		log_escape(out, cases[i].outlen, cases[i].in);
		assert_string_equal(out, cases[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_line_without_control_bytes),
	    cmocka_unit_test(test_long_line_cut),
	    cmocka_unit_test(test_backslash_and_c1),
	    cmocka_unit_test(test_txid_fields),
	    cmocka_unit_test(test_not_utf8),
	    cmocka_unit_test(test_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
