/*
 * scepd: the one-machine launcher. It has scepd-init initialise a data
 * directory on first start, then runs the four services as children and
 * keeps them up.
 */
#ifndef SCEPD_LAUNCHER_H
#define SCEPD_LAUNCHER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <zmq.h>

/* [scepd] of the configuration: the launcher's own keys (main.c). */
struct scepd_settings {
	long health_interval; /* HealthCheckInterval, s; 0: no checks */
	long health_timeout; /* HealthCheckTimeout, s */
	long health_misses; /* HealthCheckMisses */
	long health_grace; /* HealthCheckGrace, s */
};

struct launch {
	const char *data_dir; /* absolute */
	const char *config; /* the configuration file the services read */
	const char *listen; /* HOST:PORT given on the command line, or NULL */
	const char *libexec; /* directory of the service executables */
	int stop_grace_ms; /* each service's time to stop (SCEPD_STOP_TIMEOUT) */
	const struct scepd_settings *settings;
	/* SCEPD_HOLD_ON_KEY_REFUSAL=1 (lib/service.h): after a service's
	 * key store refused it, the launcher holds instead of exiting. */
	int hold_on_key_refusal;
};

/*
 * main.c runs scepd-init (services/scepd/init/) from `libexec` first: it
 * makes the data directory on first start.
 */

/* supervise.c: runs the services until SIGINT/SIGTERM. Exit status. */
int scepd_supervise(const struct launch *launch);

/*
 * health.c: liveness checks of the running services, in supervise.c's
 * poll loop. health_new() reads the services' addresses from the
 * configuration and logs what it checks and what it cannot; NULL when
 * the checks are off. `names` (borrowed) are the children's executables
 * in their order ("scepd-ca", ...).
 */
struct health;
struct health *
health_new(const struct launch *launch, const char *const *names, size_t n);
void health_free(struct health *h);
/* The poll items of the checks in flight, in items[0..max): how many.
 * `*wait_ms` is lowered to when the next is due or times out. */
int health_poll_items(struct health *h, zmq_pollitem_t *items, int max,
    int64_t now, int64_t *wait_ms);
/* After the poll (`items` as filled), for child `i`: `pid` (0: not
 * running) started at `started_ms` (monotonic). Reads its answer, counts
 * a miss, sends the next check; past HealthCheckMisses, logs and sends
 * it SIGKILL (the caller reaps and restarts it). */
void health_step(struct health *h, size_t i, pid_t pid, int64_t started_ms,
    const zmq_pollitem_t *items, int64_t now);
/* How long child `i`, `pid`, has served at `now`: ms since its first
 * answer to a liveness check, 0 if none came; -1 if it is not checked
 * (checks off, or none for it). Good until health_step is told of
 * another child: the caller asks when it reaps one, before that. */
int64_t
health_served_ms(const struct health *h, size_t i, pid_t pid, int64_t now);
/* The status code of an HTTP answer that starts `buf`: 100 to 599; 0
 * when more bytes are needed to tell, -1 when it is not one. */
int health_http_status(const char *buf, size_t len);
/* "HOST:PORT", "[V6]:PORT", ":PORT" or "*:PORT" (host "": every address),
 * as the frontend reads its Listen. 0, or -1. */
int health_listen_split(
    const char *spec, char *host, size_t hostlen, char *port, size_t portlen);

/* A child killed with SIGKILL that has not exited after this long is
 * held in the kernel (state D: a disk or a network file system that does
 * not answer): logged, with where it waits. */
#define SCEPD_STUCK_AFTER_MS 10000
/* Logs that child `name`, `pid`, has not exited that long after
 * SIGKILL: its state and where in the kernel it waits, from /proc
 * ("state D (uninterruptible), waiting in request_wait_answer"), then
 * `then`: what the launcher does about it. 1 if logged; 0, and nothing
 * logged, when all its threads have ended (it is reaped next). */
int child_stuck_log(const char *name, pid_t pid, const char *then);
/* Whether the liveness checks sent child `i`, `pid`, SIGKILL: the stop
 * then gives it no grace. */
int health_killed(const struct health *h, size_t i, pid_t pid);

#endif
