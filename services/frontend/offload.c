/*
 * Requests that wait on another service (PKIOperation, the admin page, a
 * GetCACaps or CRL the cache no longer holds) are answered off the HTTP
 * threads: the HTTP thread suspends the connection and queues the request;
 * one of UpstreamThreads runs its handler, which may wait up to RPCTimeout
 * on the RA or the challenge service, holds the response it made, and
 * resumes the connection; the HTTP thread then sends it. An HTTP thread
 * thus never waits on a service: while the CA is slow or unreachable,
 * GetCACaps, GetCACert, /healthz and /metrics of other clients are still
 * answered at once (libmicrohttpd's documented suspend/resume pattern).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "frontend.h"
#include "log.h"

/* At a stop, how long the answers made meanwhile have to be sent. */
#define OFFLOAD_SEND_MS 2000

struct offload {
	struct frontend *fe;
	pthread_mutex_t lock;
	pthread_cond_t ready;
	struct request *head, *tail; /* FIFO, linked by next_queued */
	size_t queued;
	int refresh; /* cache_refresh() asked for */
	int stopping;
	/* Answered, not yet completed (offload_sent): atomic, not under
	 * `lock`, which every HTTP and upstream thread takes. */
	atomic_size_t resumed;
	pthread_t *threads;
	size_t nthreads;
};

/* The next request, or NULL with *refresh set when the cache is to be
 * refreshed first, or NULL when stopping with nothing queued. */
static struct request *
offload_next(struct offload *o, int *stopping, int *refresh)
{
	struct request *r = NULL;

	pthread_mutex_lock(&o->lock);
	while (o->head == NULL && !o->refresh && !o->stopping)
		pthread_cond_wait(&o->ready, &o->lock);
	*refresh = o->refresh && !o->stopping;
	if (*refresh)
		o->refresh = 0;
	else if ((r = o->head) != NULL) {
		o->head = r->next_queued;
		if (o->head == NULL)
			o->tail = NULL;
		r->next_queued = NULL;
		o->queued--;
	}
	*stopping = o->stopping;
	pthread_mutex_unlock(&o->lock);
	return r;
}

/*
 * A request that waited in the queue longer than RPCTimeout found every
 * thread busy for that long: the services are slow or gone, and a device
 * is better told to come back than kept waiting for its turn.
 */
static void
offload_run(struct offload *o, struct request *r, int stopping)
{
	struct frontend *fe = o->fe;
	struct MHD_Connection *c = r->conn;
	int64_t waited = clock_monotonic_ms() - r->queued_ms;

	if (stopping)
		r->held_result =
		    http_unavailable(c, r, "Server stopping; retry later.\n");
	else if (waited > fe->settings.rpc_timeout) {
		log_warn("%s %s from %s: waited %lld ms for one of the %zu "
		         "UpstreamThreads in [frontend] (RPCTimeout = %ld): "
		         "answered 503",
		    r->method, r->log_path, r->client, (long long)waited,
		    o->nthreads, fe->settings.rpc_timeout);
		r->held_result = http_unavailable(
		    c, r, "Service temporarily unavailable; retry later.\n");
	} else
		r->held_result = http_dispatch(fe, c, r);
	r->resumed = 1;
	atomic_fetch_add(&o->resumed, 1);
	/* r belongs to the HTTP thread again from here. */
	MHD_resume_connection(c);
}

static void *
offload_thread(void *arg)
{
	struct offload *o = arg;
	struct request *r;
	int stopping, refresh;

	/* For top -H and tests/bench/profile.sh: prctl(PR_SET_NAME), which
	 * the sandbox allows (another thread's name is a file to open). */
	pthread_setname_np(pthread_self(), "upstream");
	while ((r = offload_next(o, &stopping, &refresh)) != NULL || refresh)
		if (refresh)
			cache_refresh(o->fe);
		else
			offload_run(o, r, stopping);
	return NULL;
}

/*
 * The threads' ZeroMQ sockets must fit in the context: the default number
 * is made to; a number set may ask for more sockets than the context's
 * default 1023, which is raised for it (before any socket is made).
 */
static long
offload_threads(struct frontend *fe, long threads)
{
	size_t each = rpc_link_endpoints(fe->ra_link) +
	    rpc_link_endpoints(fe->challenge_link);
	int max = zmq_ctx_get(fe->zmq_ctx, ZMQ_MAX_SOCKETS);
	long need;

	if (threads <= 0) {
		threads = upstream_threads_default(
		    sysconf(_SC_NPROCESSORS_ONLN), each, max);
		log_info("UpstreamThreads = 0 in [frontend]: %ld threads (four "
		         "per core, at most %d, and with %zu ZeroMQ sockets "
		         "each, one per RAEndpoint and ChallengeEndpoint, "
		         "within the %d of the context)",
		    threads, UPSTREAM_THREADS_MAX, each, max);
		return threads;
	}
	if ((need = threads * (long)each) <= max)
		return threads;
	if (zmq_ctx_set(fe->zmq_ctx, ZMQ_MAX_SOCKETS, (int)need) == 0 &&
	    zmq_ctx_get(fe->zmq_ctx, ZMQ_MAX_SOCKETS) >= need)
		log_info("UpstreamThreads = %ld in [frontend] with %zu ZeroMQ "
		         "sockets each: the context's limit raised from %d to "
		         "%ld",
		    threads, each, max, need);
	else
		log_warn("UpstreamThreads = %ld in [frontend] with %zu ZeroMQ "
		         "sockets each needs %ld, more than the %d of the "
		         "context: a thread that finds none answers 503; set "
		         "fewer",
		    threads, each, need, max);
	return threads;
}

struct offload *
offload_start(struct frontend *fe, long threads)
{
	struct offload *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return NULL;
	atomic_init(&o->resumed, 0);
	threads = offload_threads(fe, threads);
	o->fe = fe;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->ready, NULL);
	if ((o->threads = calloc((size_t)threads, sizeof(pthread_t))) == NULL) {
		offload_free(o);
		return NULL;
	}
	for (; o->nthreads < (size_t)threads; o->nthreads++)
		if (pthread_create(&o->threads[o->nthreads], NULL,
		        offload_thread, o) != 0) {
			offload_free(o);
			return NULL;
		}
	return o;
}

int
offload_submit(struct offload *o, struct MHD_Connection *c, struct request *r)
{
	pthread_mutex_lock(&o->lock);
	if (o->stopping) {
		pthread_mutex_unlock(&o->lock);
		return -1;
	}
	r->conn = c;
	r->offloaded = 1;
	r->queued_ms = clock_monotonic_ms();
	/* Before the request can reach a thread that resumes it. */
	MHD_suspend_connection(c);
	if (o->tail != NULL)
		o->tail->next_queued = r;
	else
		o->head = r;
	o->tail = r;
	o->queued++;
	pthread_cond_signal(&o->ready);
	pthread_mutex_unlock(&o->lock);
	return 0;
}

size_t
offload_queued(struct offload *o)
{
	size_t n;

	pthread_mutex_lock(&o->lock);
	n = o->queued;
	pthread_mutex_unlock(&o->lock);
	return n;
}

void
offload_refresh(struct offload *o)
{
	pthread_mutex_lock(&o->lock);
	o->refresh = 1;
	pthread_cond_signal(&o->ready);
	pthread_mutex_unlock(&o->lock);
}

/* Requests still queued are answered 503 and every suspended connection
 * is resumed before the threads end: libmicrohttpd must not be stopped
 * with a connection suspended. The HTTP threads still run: `o` stays,
 * stopping, until offload_free. */
void
offload_drain(struct offload *o)
{
	if (o == NULL)
		return;
	pthread_mutex_lock(&o->lock);
	o->stopping = 1;
	pthread_cond_broadcast(&o->ready);
	pthread_mutex_unlock(&o->lock);
	for (size_t i = 0; i < o->nthreads; i++)
		pthread_join(o->threads[i], NULL);
	o->nthreads = 0;
	/* The HTTP threads send what was answered (their 503s included):
	 * stopped now, libmicrohttpd would close those connections
	 * without a word, a certificate issued or a password made lost. A
	 * client that does not read gets OFFLOAD_SEND_MS. */
	for (int waited = 0; waited < OFFLOAD_SEND_MS; waited += 10) {
		if (atomic_load(&o->resumed) == 0)
			break;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
}

void
offload_sent(struct offload *o)
{
	atomic_fetch_sub(&o->resumed, 1);
}

void
offload_free(struct offload *o)
{
	if (o == NULL)
		return;
	offload_drain(o);
	free(o->threads);
	pthread_cond_destroy(&o->ready);
	pthread_mutex_destroy(&o->lock);
	free(o);
}
