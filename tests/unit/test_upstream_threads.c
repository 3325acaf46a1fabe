/* services/frontend/upstream_threads.c: UpstreamThreads = 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "frontend.h"

/* Four per core, at most 256, and no more than the context's ZeroMQ
 * sockets hold with a socket per RA and challenge endpoint each, and one
 * more (a socket replaced before libzmq freed the one it replaces). */
static void
test_default(void **state)
{
	static const struct {
		long cores;
		size_t sockets_each;
		long max_sockets, want;
	} cases[] = {
	    {2, 2, 1023, 8}, /* one RA, one challenge service */
	    {0, 2, 1023, 4}, /* cores unknown */
	    {64, 2, 1023, 256}, {128, 2, 1023, 256}, /* 512 uncapped */
	    {128, 6, 1023, 146}, /* 3 + 3 endpoints + 1: 1022 sockets */
	    {64, 4, 1023, 204}, /* 256 x 5 = 1280: too many */
	    {64, 4, 2048, 256}, /* ZMQ_MAX_SOCKETS raised */
	    {4, 2000, 1023, 1}, /* none fit: one all the same */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(
		    upstream_threads_default(cases[i].cores,
		        cases[i].sockets_each, cases[i].max_sockets),
		    cases[i].want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
