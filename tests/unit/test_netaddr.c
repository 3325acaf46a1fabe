/* lib/netaddr.c: TrustedProxies and the client named by X-Forwarded-For. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "netaddr.h"

/* The client forwarded_client finds, as text; NULL when it refuses. */
static const char *
client_of(const char *trusted_spec, const char *xff)
{
	static char text[64];
	struct netmask_list trusted;
	struct netaddr client;
	char err[160];
	int rc;

	assert_int_equal(
	    netmask_list_parse(trusted_spec, &trusted, err, sizeof(err)), 0);
	rc = forwarded_client(&trusted, xff, strlen(xff), &client);
	netmask_list_free(&trusted);
	if (rc != 0)
		return NULL;
	netaddr_format(&client, text, sizeof(text));
	return text;
}

static void
test_rightmost_untrusted_is_the_client(void **state)
{
	(void)state;
	/* What the client wrote itself (left) is never believed. */
	assert_string_equal(
	    client_of("127.0.0.1", "198.51.100.7, 203.0.113.9"), "203.0.113.9");
	/* A chain of trusted proxies is skipped from the right. */
	assert_string_equal(
	    client_of("10.0.0.0/8", "198.51.100.7,10.1.2.3 , 10.9.9.9"),
	    "198.51.100.7");
	/* Garbage left of the client is never read. */
	assert_string_equal(
	    client_of("127.0.0.1", "not an address, 203.0.113.9"),
	    "203.0.113.9");
	/* Everyone trusted: the leftmost. */
	assert_string_equal(
	    client_of("0.0.0.0/0", "192.0.2.1, 192.0.2.2"), "192.0.2.1");
}

static void
test_ports_brackets_and_mapped(void **state)
{
	(void)state;
	assert_string_equal(client_of("", "203.0.113.9:4711"), "203.0.113.9");
	assert_string_equal(client_of("", "[2001:db8::5]:443"), "2001:db8::5");
	assert_string_equal(client_of("", "[2001:db8::5]"), "2001:db8::5");
	assert_string_equal(client_of("", "2001:db8::5"), "2001:db8::5");
	/* One client whichever way its proxy wrote it. */
	assert_string_equal(client_of("", "::ffff:192.0.2.9"), "192.0.2.9");
	assert_string_equal(
	    client_of("10.0.0.0/8", "192.0.2.3, ::ffff:10.0.0.1"), "192.0.2.3");
}

static void
test_unreadable_entries_are_refused(void **state)
{
	(void)state;
	assert_null(client_of("", ""));
	assert_null(client_of("", "unknown"));
	assert_null(client_of("", "203.0.113.9, "));
	assert_null(client_of("", "203.0.113.9:"));
	assert_null(client_of("", "203.0.113.9:123456"));
	assert_null(client_of("", "203.0.113.9:65536"));
	assert_null(client_of("", "[2001:db8::5]:x"));
	assert_null(client_of("", "[2001:db8::5"));
	assert_null(client_of("", "203.0.113"));
	/* A trusted entry sends the reading further left, into garbage. */
	assert_null(client_of("127.0.0.1", "garbage, 127.0.0.1"));
}

static void
test_trusted_proxies_list(void **state)
{
	struct netmask_list list;
	struct netaddr a;
	char err[160];

	(void)state;
	assert_int_equal(netmask_list_parse("10.0.0.0/8, 192.0.2.7 ::1\t"
	                                    "2001:db8::/32",
	                     &list, err, sizeof(err)),
	    0);
	assert_int_equal(list.n, 4);
	assert_int_equal(netaddr_parse("10.255.0.1", 10, &a), 0);
	assert_true(netmask_list_contains(&list, &a));
	assert_int_equal(netaddr_parse("11.0.0.1", 8, &a), 0);
	assert_false(netmask_list_contains(&list, &a));
	assert_int_equal(netaddr_parse("192.0.2.8", 9, &a), 0);
	assert_false(netmask_list_contains(&list, &a));
	assert_int_equal(netaddr_parse("2001:db8:ffff::1", 16, &a), 0);
	assert_true(netmask_list_contains(&list, &a));
	assert_int_equal(netaddr_parse("::ffff:10.0.0.1", 15, &a), 0);
	assert_true(netmask_list_contains(&list, &a));
	netmask_list_free(&list);

	assert_int_equal(netmask_list_parse("", &list, err, sizeof(err)), 0);
	assert_int_equal(list.n, 0);
	/* Errors name the entry. */
	assert_int_equal(netmask_list_parse("10.0.0.0/8 proxy.example", &list,
	                     err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "'proxy.example'"));
	assert_null(list.v);
	assert_int_equal(
	    netmask_list_parse("10.1.2.3/8", &list, err, sizeof(err)), -1);
	assert_int_equal(
	    netmask_list_parse("10.0.0.0/33", &list, err, sizeof(err)), -1);
	assert_int_equal(
	    netmask_list_parse("10.0.0.0/+8", &list, err, sizeof(err)), -1);
	assert_int_equal(
	    netmask_list_parse("10.0.0.0/", &list, err, sizeof(err)), -1);
}

static void
test_loopback(void **state)
{
	struct netaddr a;

	(void)state;
	assert_int_equal(netaddr_parse("127.0.0.2", 9, &a), 0);
	assert_true(netaddr_is_loopback(&a));
	assert_int_equal(netaddr_parse("::1", 3, &a), 0);
	assert_true(netaddr_is_loopback(&a));
	assert_int_equal(netaddr_parse("::ffff:127.0.0.1", 16, &a), 0);
	assert_true(netaddr_is_loopback(&a));
	assert_int_equal(netaddr_parse("128.0.0.1", 9, &a), 0);
	assert_false(netaddr_is_loopback(&a));
}

/* What a Host header names, as the admin page and /metrics judge it. */
static void
test_host_header(void **state)
{
	static const struct {
		const char *host, *name;
		int loopback;
	} ok[] = {
	    {"127.0.0.1:8080", "127.0.0.1", 1},
	    {"127.9.9.9", "127.9.9.9", 1},
	    {"LocalHost:8080", "localhost", 1},
	    {"[::1]:8080", "[::1]", 1},
	    {"[::1]", "[::1]", 1},
	    {"[::ffff:127.0.0.1]:80", "[::ffff:127.0.0.1]", 1},
	    {"evil.example:8080", "evil.example", 0},
	    {"localhost.evil.example", "localhost.evil.example", 0},
	    {"127.0.0.1.nip.io", "127.0.0.1.nip.io", 0},
	    {"10.0.0.1", "10.0.0.1", 0},
	    {"[2001:db8::1]:443", "[2001:db8::1]", 0},
	    {"scep_1.example", "scep_1.example", 0},
	};
	static const char *const bad[] = {"", ":8080", "::1", "[::1", "[::1]x",
	    "a b", "a/b", "a@b", "evil\r\nX: y", "[]"};
	char name[64];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (host_header_name(ok[i].host, name, sizeof(name)) != 0)
			fail_msg("%s refused", ok[i].host);
		assert_string_equal(name, ok[i].name);
		if (host_name_is_loopback(name) != ok[i].loopback)
			fail_msg("%s: loopback %d, want %d", ok[i].host,
			    !ok[i].loopback, ok[i].loopback);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (host_header_name(bad[i], name, sizeof(name)) == 0)
			fail_msg("\"%s\" accepted as %s", bad[i], name);
	assert_int_equal(host_header_name("abcdefgh", name, 8), -1);
	assert_int_equal(host_header_name("abcdefg", name, 8), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rightmost_untrusted_is_the_client),
	    cmocka_unit_test(test_ports_brackets_and_mapped),
	    cmocka_unit_test(test_unreadable_entries_are_refused),
	    cmocka_unit_test(test_trusted_proxies_list),
	    cmocka_unit_test(test_loopback),
	    cmocka_unit_test(test_host_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
