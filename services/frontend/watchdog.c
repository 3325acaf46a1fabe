/*
 * The whole-request deadline for what libmicrohttpd does not show us.
 * The access handler is called only once a request's headers are in, so a
 * client that dribbles header lines just faster than ConnectionTimeout
 * (slowloris) would hold its connection forever. Every connection is
 * listed here from its start; a thread shuts down the socket of any whose
 * current request has taken longer than RequestDeadline, and libmicrohttpd
 * then closes it as it would a client that went away. It waits two seconds
 * past the deadline so that a request whose headers arrive just late still
 * gets the access handler's 408 rather than a bare close. A request's time
 * runs from its request line; and from the connection's last answer (or
 * its start), ConnectionTimeout more is allowed for the wait and the
 * request together: counted from the last answer alone, a device that
 * sent its next request on a kept-alive connection after an idle while
 * had that much less. A request line and headers sent a byte at a time
 * are cut at ConnectionTimeout + RequestDeadline + 2 s at most.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "frontend.h"
#include "log.h"

#define WATCHDOG_GRACE_MS 2000

struct watch {
	struct watch *prev, *next;
	int fd;
	int64_t waiting_since_ms; /* since its last answer (or its start) */
	int64_t line_at_ms; /* its request line came; 0: none yet */
	int cut;
};

struct watchdog {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct watch *head;
	int64_t deadline_ms;
	int64_t idle_ms; /* ConnectionTimeout: the wait for a request line */
	int stop;
	pthread_t thread;
};

static void *
watchdog_main(void *arg)
{
	struct watchdog *w = arg;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		struct timespec until;
		int64_t now = clock_monotonic_ms();

		for (struct watch *x = w->head; x != NULL; x = x->next) {
			if (x->cut ||
			    (now - x->waiting_since_ms <= w->idle_ms +
			                w->deadline_ms + WATCHDOG_GRACE_MS &&
			        (x->line_at_ms == 0 ||
			            now - x->line_at_ms <=
			                w->deadline_ms + WATCHDOG_GRACE_MS)))
				continue;
			/* Under the lock, so the fd is still this
			 * connection's: CLOSED unlists it first. */
			shutdown(x->fd, SHUT_RDWR);
			x->cut = 1;
			log_warn(
			    "connection (fd %d) not done within "
			    "RequestDeadline = %lld s in [frontend]; closed",
			    x->fd, (long long)(w->deadline_ms / 1000));
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += 500 * 1000 * 1000;
		if (until.tv_nsec >= 1000 * 1000 * 1000) {
			until.tv_sec++;
			until.tv_nsec -= 1000 * 1000 * 1000;
		}
		pthread_cond_clockwait(
		    &w->wake, &w->lock, CLOCK_MONOTONIC, &until);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct watchdog *
watchdog_start(long deadline_s, long idle_s)
{
	struct watchdog *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->deadline_ms = (int64_t)deadline_s * 1000;
	w->idle_ms = (int64_t)idle_s * 1000;
	if (pthread_create(&w->thread, NULL, watchdog_main, w) != 0) {
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

void
watchdog_stop(struct watchdog *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	while (w->head != NULL) {
		struct watch *x = w->head;

		w->head = x->next;
		free(x);
	}
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

void
watchdog_notify(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
	struct watchdog *w = cls;
	struct watch *x = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *info = MHD_get_connection_info(
		    c, MHD_CONNECTION_INFO_CONNECTION_FD);

		if (info == NULL || (x = calloc(1, sizeof(*x))) == NULL)
			return;
		x->fd = info->connect_fd;
		x->waiting_since_ms = clock_monotonic_ms();
		pthread_mutex_lock(&w->lock);
		x->next = w->head;
		if (w->head != NULL)
			w->head->prev = x;
		w->head = x;
		pthread_mutex_unlock(&w->lock);
		*socket_context = x;
		return;
	}
	if (x == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		w->head = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	pthread_mutex_unlock(&w->lock);
	free(x);
	*socket_context = NULL;
}

/* The connection's request line is in (1) or its request answered (0). */
static void
watchdog_mark(struct watchdog *w, struct MHD_Connection *c, int in_request)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct watch *x;

	if (info == NULL || (x = info->socket_context) == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	if (in_request)
		x->line_at_ms = clock_monotonic_ms();
	else {
		x->waiting_since_ms = clock_monotonic_ms();
		x->line_at_ms = 0;
	}
	pthread_mutex_unlock(&w->lock);
}

void
watchdog_request_begun(struct watchdog *w, struct MHD_Connection *c)
{
	watchdog_mark(w, c, 1);
}

void
watchdog_request_done(struct watchdog *w, struct MHD_Connection *c)
{
	/* The next request on a kept-alive connection gets its own time. */
	watchdog_mark(w, c, 0);
}
