/* lib/pool.c: a batch shared out among the caller and helper threads. */
#include <dirent.h>
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

/* How many threads of this process named `name` block every signal
 * (their SigBlk in /proc: 64 signals, SIGKILL and SIGSTOP never), and
 * how many such threads there are, in *named. */
static int
threads_blocking_all(const char *name, int *named)
{
	char path[300], line[256], comm[32];
	struct dirent *task;
	DIR *tasks = opendir("/proc/self/task");
	int blocking = 0;

	*named = 0;
	assert_non_null(tasks);
	while ((task = readdir(tasks)) != NULL) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
		    task->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) == NULL)
			comm[0] = '\0';
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
		if (strcmp(comm, name) != 0)
			continue;
		(*named)++;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status",
		    task->d_name);
		assert_non_null(f = fopen(path, "r"));
		while (fgets(line, sizeof(line), f) != NULL)
			if (strcmp(line, "SigBlk:\tfffffffe7ffbfeff\n") == 0)
				blocking++;
		fclose(f);
	}
	closedir(tasks);
	return blocking;
}

/* The helpers take no signal: the stop signals are for the thread that
 * waits on them. */
static void
test_helpers_block_signals(void **state)
{
	struct pool *p = pool_start(2, "test-sigmask");
	int named = 0, blocking = 0;

	(void)state;
	assert_non_null(p);
	/* Each helper names itself when it starts. */
	for (int i = 0; i < 200 && named < 2; i++) {
		blocking = threads_blocking_all("test-sigmask", &named);
		if (named < 2)
			usleep(10000);
	}
	assert_int_equal(named, 2);
	assert_int_equal(blocking, 2);
	/* The caller's own mask is as it was. */
	assert_int_equal(threads_blocking_all("test_pool", &named), 0);
	pool_stop(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_item_once_before_return),
	    cmocka_unit_test(test_batch_runs_on_two_threads),
	    cmocka_unit_test(test_no_helpers_runs_on_the_caller),
	    cmocka_unit_test(test_helpers_block_signals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
