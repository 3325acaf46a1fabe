/*
 * How many UpstreamThreads by default: alone in its file so that a unit
 * test can call it.
 */
#include "frontend.h"

long
upstream_threads_default(long cores, size_t sockets_each, long max_sockets)
{
	long threads = 4 * (cores > 0 ? cores : 1);

	if (threads > UPSTREAM_THREADS_MAX)
		threads = UPSTREAM_THREADS_MAX;
	/* A thread past the limit could open no socket: its every request
	 * would be answered 503 ("cannot create a ZeroMQ client"). One more
	 * each: a call that times out closes its socket and opens another
	 * before libzmq's reaper has freed the first (an RA down, every
	 * thread retrying at once). */
	if (sockets_each > 0 && max_sockets > 0 &&
	    threads > max_sockets / (long)(sockets_each + 1))
		threads = max_sockets / (long)(sockets_each + 1);
	return threads > 0 ? threads : 1;
}
