/*
 * Milliseconds (and microseconds) of CLOCK_MONOTONIC: for intervals and
 * timeouts inside one process (deadlines that cross processes are
 * wall-clock: rpc_now_ms).
 */
#ifndef SCEPD_CLOCK_H
#define SCEPD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t
clock_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The same in microseconds: for what takes less than a millisecond. */
static inline int64_t
clock_monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Milliseconds of CLOCK_BOOTTIME: CLOCK_MONOTONIC and the time the host
 * was suspended, for telling that a process was stopped meanwhile. */
static inline int64_t
clock_boottime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
