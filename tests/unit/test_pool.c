/* lib/pool.c: a batch shared out among the caller and helper threads. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pool.h"

struct counted {
	int calls; /* atomically: a second call would show */
	int slow; /* sleep first: pool_run must still wait for it */
	pthread_t by;
};

static void
count_call(void *item, void *arg)
{
	struct counted *c = item;

	if (c->slow)
		usleep(2000);
	c->by = pthread_self();
	__atomic_add_fetch(&c->calls, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

/* Every item of every batch is done once, and done when pool_run returns,
 * whatever the number of helpers and the batch's size. */
static void
test_each_item_once_before_return(void **state)
{
	struct counted items[17];
	void *ptrs[17];

	(void)state;
	for (int helpers = 0; helpers <= 3; helpers++) {
		struct pool *p = pool_start(helpers, "test-pool");

		assert_non_null(p);
		assert_int_equal(pool_threads(p), helpers + 1);
		for (int round = 0; round < 60; round++) {
			size_t n = (size_t)round % 18;
			int total = 0;

			memset(items, 0, sizeof(items));
			for (size_t i = 0; i < n; i++) {
				items[i].slow = (round + (int)i) % 5 == 0;
				ptrs[i] = &items[i];
			}
			pool_run(p, count_call, &total, ptrs, n);
			assert_int_equal(total, (int)n);
			for (size_t i = 0; i < n; i++)
				assert_int_equal(items[i].calls, 1);
			/* Untouched beyond n. */
			for (size_t i = n; i < 17; i++)
				assert_int_equal(items[i].calls, 0);
		}
		pool_stop(p);
	}
}

/* Two items that can only finish together: they do when a helper runs
 * one while the caller runs the other (a lone thread would wait out the
 * timeout on the first). */
struct rendezvous {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int arrived;
	int timed_out;
};

static void
meet(void *item, void *arg)
{
	struct rendezvous *r = arg;
	struct counted *c = item;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&r->lock);
	r->arrived++;
	pthread_cond_broadcast(&r->cond);
	while (r->arrived < 2) {
		if (pthread_cond_timedwait(&r->cond, &r->lock, &until) ==
		    ETIMEDOUT) {
			r->timed_out = 1;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	c->by = pthread_self();
	c->calls++;
}

static void
test_batch_runs_on_two_threads(void **state)
{
	struct rendezvous r = {
	    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
	struct counted items[2];
	void *ptrs[2] = {&items[0], &items[1]};
	struct pool *p = pool_start(1, "test-pool");

	(void)state;
	assert_non_null(p);
	for (int round = 0; round < 20; round++) {
		memset(items, 0, sizeof(items));
		r.arrived = 0;
		pool_run(p, meet, &r, ptrs, 2);
		assert_false(r.timed_out);
		assert_int_equal(items[0].calls, 1);
		assert_int_equal(items[1].calls, 1);
		assert_false(pthread_equal(items[0].by, items[1].by));
	}
	pool_stop(p);
}

static void
test_no_helpers_runs_on_the_caller(void **state)
{
	struct counted items[3];
	void *ptrs[3] = {&items[0], &items[1], &items[2]};
	struct pool *p = pool_start(0, "test-pool");
	int total = 0;

	(void)state;
	assert_non_null(p);
	memset(items, 0, sizeof(items));
	pool_run(p, count_call, &total, ptrs, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(items[i].calls, 1);
		assert_true(pthread_equal(items[i].by, pthread_self()));
	}
	pool_stop(p);
	errno = 0;
	assert_null(pool_start(-1, "test-pool"));
	assert_int_equal(errno, EINVAL);
	pool_stop(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_item_once_before_return),
	    cmocka_unit_test(test_batch_runs_on_two_threads),
	    cmocka_unit_test(test_no_helpers_runs_on_the_caller),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
