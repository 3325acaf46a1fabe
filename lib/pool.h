/*
 * A few threads that share one batch of independent items with the
 * thread that hands it over: the CA signs a batch's certificates on them
 * ([ca] SignThreads). pool_run returns once every item has been given to
 * the function exactly once; the caller works through items too, so a
 * pool of 0 helpers runs the batch on the caller alone.
 */
#ifndef SCEPD_POOL_H
#define SCEPD_POOL_H

#include <stddef.h>

struct pool;

typedef void (*pool_fn)(void *item, void *arg);

/*
 * `helpers` threads named `name` (at most 15 characters are kept), waiting
 * for work. NULL when a thread cannot be started (errno says why).
 */
struct pool *pool_start(int helpers, const char *name);
/* fn(items[i], arg) for each i < n, on the caller and the helpers. */
void
pool_run(struct pool *p, pool_fn fn, void *arg, void *const *items, size_t n);
/* The threads that run a batch: the helpers and the caller. */
int pool_threads(const struct pool *p);
/* Ends the helpers and frees the pool; NULL is allowed. Not while a
 * pool_run is under way: the same thread runs batches and stops. */
void pool_stop(struct pool *p);

#endif
