/*
 * The pool of pool.h. One batch at a time: pool_run publishes it under
 * the lock, wakes the helpers, and every thread (the caller included)
 * claims the next unclaimed item until none is left; pool_run then waits
 * for the helpers' last items. Batches are small (RPC_BATCH_MAX) and
 * each item is long (a signature), so one lock for claiming is enough.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t work; /* a batch was published, or stop */
	pthread_cond_t done; /* a helper finished its last item */
	pthread_t *threads;
	int started; /* helpers running */
	int stop;
	unsigned long batch; /* counts batches: a helper's wake-up test */
	pool_fn fn;
	void *arg;
	void *const *items;
	size_t n, next; /* items[next] is the next unclaimed */
	int busy; /* helpers inside the current batch */
	char name[16];
};

/* Runs the batch's unclaimed items one by one until none is left;
 * called and returns with p->lock held, which it drops around each. */
static void
pool_drain(struct pool *p)
{
	while (p->next < p->n) {
		void *item = p->items[p->next++];
		pool_fn fn = p->fn;
		void *arg = p->arg;

		pthread_mutex_unlock(&p->lock);
		fn(item, arg);
		pthread_mutex_lock(&p->lock);
	}
}

static void *
pool_helper(void *arg)
{
	struct pool *p = arg;
	unsigned long seen = 0;

	/* By the thread itself: naming another opens /proc, which a
	 * sandboxed service may not. */
	pthread_setname_np(pthread_self(), p->name);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && p->batch == seen)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		seen = p->batch;
		p->busy++;
		pool_drain(p);
		if (--p->busy == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct pool *
pool_start(int helpers, const char *name)
{
	struct pool *p;
	sigset_t all, old;
	int e = 0;

	if (helpers < 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	if (helpers > 0 &&
	    (p->threads = calloc((size_t)helpers, sizeof(*p->threads))) == NULL)
		goto fail;
	snprintf(p->name, sizeof(p->name), "%s", name);
	/* The helpers take no signal: the stop signals are for the thread
	 * that waits on them (rpc_serve's poll). They inherit this mask. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (p->started < helpers &&
	    (e = pthread_create(
	         &p->threads[p->started], NULL, pool_helper, p)) == 0)
		p->started++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		errno = e;
		goto fail;
	}
	return p;
fail:
	e = errno;
	pool_stop(p);
	errno = e;
	return NULL;
}

void
pool_run(struct pool *p, pool_fn fn, void *arg, void *const *items, size_t n)
{
	pthread_mutex_lock(&p->lock);
	p->fn = fn;
	p->arg = arg;
	p->items = items;
	p->n = n;
	p->next = 0;
	/* Only worth a wake-up when there is an item left for a helper. */
	if (n > 1 && p->started > 0) {
		p->batch++;
		pthread_cond_broadcast(&p->work);
	}
	pool_drain(p);
	/* A helper woken late finds nothing to claim and leaves at once. */
	while (p->busy > 0)
		pthread_cond_wait(&p->done, &p->lock);
	p->items = NULL;
	p->n = p->next = 0;
	pthread_mutex_unlock(&p->lock);
}

int
pool_threads(const struct pool *p)
{
	return p->started + 1;
}

void
pool_stop(struct pool *p)
{
	if (p == NULL)
		return;
	if (p->started > 0) {
		pthread_mutex_lock(&p->lock);
		p->stop = 1;
		pthread_cond_broadcast(&p->work);
		pthread_mutex_unlock(&p->lock);
		for (int i = 0; i < p->started; i++)
			pthread_join(p->threads[i], NULL);
	}
	pthread_cond_destroy(&p->done);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}
