/*
 * Runs scepd-ca, scepd-challenge, scepd-ra and scepd-frontend as children,
 * restarts one that dies with exponential back-off, and stops them all on
 * SIGINT/SIGTERM/SIGHUP (frontend first, so no new work arrives; CA last).
 * One that hangs is killed by the liveness checks (health.c) and then
 * restarted as one that died. A child gets SIGTERM when the launcher dies
 * however it dies: services left behind would hold the sockets and
 * databases a new scepd needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "clock.h"
#include "log.h"
#include "scepd.h"
#include "service.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 60000 /* a child that served this long starts over */
#define QUICK_EXIT_MS 2000 /* exit 1 this fast: a configuration error */
#define CONFIG_FAILURES 3

struct child {
	const char *name;
	pid_t pid; /* 0: not running */
	int64_t started_ms;
	int64_t restart_at_ms; /* 0: none scheduled */
	int backoff_ms;
	int config_failures; /* quick exits with status 1 in a row */
};

static int signal_pipe[2] = {-1, -1};
/* A stop signal came (SIGCHLD, also in the pipe, is none). */
static volatile sig_atomic_t stop_signalled;
/* A service's key store refused it (status 78): see service_hold. */
static int key_refused;
/* Started under nohup: SIGHUP stays ignored, in the services too (a
 * terminal's hangup reaches the whole process group). */
static int hup_ignored;
/* STABLE_MS; SCEPD_TEST_STABLE_MS in a build with test hooks. */
static int64_t stable_ms = STABLE_MS;

static void
on_signal(int sig)
{
	unsigned char b = (unsigned char)sig;
	int saved = errno;

	if (sig != SIGCHLD)
		stop_signalled = 1;
	(void)!write(signal_pipe[1], &b, 1);
	errno = saved;
}

extern char **environ;

/* Starts `c`; with ready_fd (a pipe's write end, else -1) passed on for
 * service_ready (lib/service.h). */
/* fork(); with test hooks, SCEPD_TEST_FORK_FAILS=NAME fails the first
 * fork of that service (EAGAIN), as a process limit would. */
static pid_t
fork_or_test_failure(const char *name)
{
#ifdef SCEPD_TEST_HOOKS
	static int failed;
	const char *fail = getenv("SCEPD_TEST_FORK_FAILS");

	if (!failed && fail != NULL && strcmp(fail, name) == 0) {
		failed = 1;
		errno = EAGAIN;
		return -1;
	}
#else
	(void)name;
#endif
	return fork();
}

static int
child_start_ready(struct child *c, const struct launch *launch, int ready_fd)
{
	char path[4096], ready_env[32];
	char *argv[] = {(char *)c->name, "--config", (char *)launch->config,
	    NULL, NULL, NULL};
	char **envp = environ;
	sigset_t stops, old;
	pid_t pid, launcher = getpid();
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/%s", launch->libexec, c->name);
	if (launch->listen != NULL && strcmp(c->name, "scepd-frontend") == 0) {
		argv[3] = "--listen";
		argv[4] = (char *)launch->listen;
	}
	/* Made before fork: the child may only exec. */
	if (ready_fd >= 0) {
		while (environ[n] != NULL)
			n++;
		if ((envp = calloc(n + 2, sizeof(*envp))) == NULL) {
			log_error("cannot start %s: out of memory", c->name);
			return -1;
		}
		memcpy(envp, environ, n * sizeof(*envp));
		snprintf(ready_env, sizeof(ready_env), SERVICE_READY_ENV "=%d",
		    ready_fd);
		envp[n] = ready_env;
	}
	/* Held until the child has its own handlers: a stop signal meant
	 * for it must not run ours in it, written to our pipe and lost. */
	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGHUP);
	sigaddset(&stops, SIGCHLD);
	sigprocmask(SIG_BLOCK, &stops, &old);
	pid = fork_or_test_failure(c->name);
	if (pid < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		log_error("cannot fork %s: %s", c->name, strerror(errno));
		if (envp != environ)
			free(envp);
		return -1;
	}
	if (pid == 0) {
		sigset_t none;

		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, hup_ignored ? SIG_IGN : SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Kept across exec; the launcher may have died already. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 ||
		    getppid() != launcher)
			_exit(1);
		if (ready_fd >= 0 && fcntl(ready_fd, F_SETFD, 0) != 0)
			_exit(1);
		execve(path, argv, envp);
		/* Only async-signal-safe calls here: the launcher has
		 * libzmq's threads, one may hold a lock strerror wants. */
		{
			static const char msg[] = "scepd: cannot run a "
			                          "service: exec failed (see "
			                          "the launcher's libexec "
			                          "directory)\n";

			(void)!write(2, msg, sizeof(msg) - 1);
			(void)!write(2, path, strlen(path));
			(void)!write(2, "\n", 1);
		}
		_exit(127);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (envp != environ)
		free(envp);
	c->pid = pid;
	c->started_ms = clock_monotonic_ms();
	c->restart_at_ms = 0;
	log_info("started %s (pid %d)", c->name, (int)pid);
	return 0;
}

static int
child_start(struct child *c, const struct launch *launch)
{
	return child_start_ready(c, launch, -1);
}

/* No fork (a process limit, memory): tried again after its back-off, at
 * the first start as after one, not at once in a loop nor given up. */
static void
child_start_later(struct child *c, int64_t now)
{
	c->restart_at_ms = now + c->backoff_ms;
	c->backoff_ms *= 2;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
}

/*
 * The CA first, alone, until it serves (service_ready) or CA_FIRST_MS
 * pass: the RA logs in to a token too, maybe the CA's, and two logins at
 * once failed with SoftHSM2. 1 when the others may start; 0 when they are
 * not to, the CA having exited refusing its key store (status 78: the
 * reaper stops everything, and the RA is not to try the PIN too) or a
 * stop signal come; -1 when the CA did not start.
 */
#define CA_FIRST_MS 15000
static int
ca_start_first(struct child *ca, const struct launch *launch)
{
	int ready[2], rc;
	int64_t until = clock_monotonic_ms() + CA_FIRST_MS;
	char b;
	siginfo_t si;

	if (pipe2(ready, O_CLOEXEC) != 0)
		return child_start(ca, launch) == 0 ? 1 : -1;
	rc = child_start_ready(ca, launch, ready[1]);
	close(ready[1]);
	if (rc != 0) {
		close(ready[0]);
		return -1;
	}
#ifdef SCEPD_TEST_HOOKS
	/* Tests: the CA's exit and its SIGCHLD both pending at the poll. */
	if (getenv("SCEPD_TEST_FIRST_POLL_MS") != NULL) {
		long ms = atol(getenv("SCEPD_TEST_FIRST_POLL_MS"));

		nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L},
		    NULL);
	}
#endif
	for (;;) {
		struct pollfd fds[2] = {
		    {ready[0], POLLIN, 0}, {signal_pipe[0], POLLIN, 0}};
		int64_t left = until - clock_monotonic_ms();

		if (left <= 0) {
			log_warn("%s does not serve %d s after its start: the "
			         "others start all the same",
			    ca->name, CA_FIRST_MS / 1000);
			break;
		}
		if (poll(fds, 2, (int)left) < 0 && errno != EINTR)
			break;
		/* A stop signal, left in its pipe for the main loop: the
		 * others need not start. A SIGCHLD there is the CA's exit,
		 * which closed its end of the pipe first: read below (taken
		 * for a stop, the others never started, whatever the CA's
		 * restarts did). */
		if (fds[1].revents != 0 && stop_signalled) {
			close(ready[0]);
			return 0;
		}
		if (fds[0].revents == 0) {
			if (fds[1].revents != 0) /* not yet seen closed */
				nanosleep(
				    &(struct timespec){0, 10000000L}, NULL);
			continue;
		}
		if (read(ready[0], &b, 1) != 1) {
			/* Closed unwritten: it is exiting, its descriptors
			 * closed before it can be waited for (2 s at most).
			 * Looked at, not reaped. */
			for (int i = 0; i < 100; i++) {
				struct timespec ts = {0, 20 * 1000 * 1000};

				memset(&si, 0, sizeof(si));
				if (waitid(P_PID, (id_t)ca->pid, &si,
				        WEXITED | WNOHANG | WNOWAIT) != 0 ||
				    si.si_pid == ca->pid)
					break;
				nanosleep(&ts, NULL);
			}
			if (si.si_pid == ca->pid && si.si_code == CLD_EXITED &&
			    si.si_status == 78) {
				close(ready[0]);
				return 0;
			}
		}
		break;
	}
	close(ready[0]);
	return 1;
}

static void
describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(
		    buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "stopped with status %d", status);
}

/*
 * The delay before `c`, reaped after running `ran` ms, starts again; `why`
 * gets the reason the back-off was not reset, or "". A run that served
 * stable_ms resets it. Where liveness checks run, a child serves from its
 * first answer (`served`, health_served_ms's): one that never answered
 * did not serve, however long it ran (a CA hung in its HSM login, killed
 * 71 s after its start, would else log in again every 71 s for ever).
 */
static int
backoff_next(
    struct child *c, int64_t ran, int64_t served, char *why, size_t whylen)
{
	int backoff;

	why[0] = '\0';
	if (served == 0)
		snprintf(
		    why, whylen, ", never having answered a liveness check");
	else if ((served < 0 ? ran : served) < stable_ms)
		snprintf(why, whylen, ", less than %lld s after its %s",
		    (long long)(stable_ms / 1000),
		    served < 0 ? "start" : "first answer");
	else
		c->backoff_ms = BACKOFF_MIN_MS;
	backoff = c->backoff_ms;
	c->backoff_ms *= 2;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
	return backoff;
}

/* Reaps exited children; schedules restarts unless stopping. Returns -1
 * when a child keeps failing on its configuration. */
static int
reap(
    struct child *children, size_t n, const struct health *health, int stopping)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		char how[96], why[80];

		for (size_t i = 0; i < n; i++) {
			struct child *c = &children[i];
			int64_t ran, now;
			int backoff;

			if (c->pid != pid)
				continue;
			c->pid = 0;
			describe_status(status, how, sizeof(how));
			if (stopping) {
				log_info("%s %s", c->name, how);
				break;
			}
			now = clock_monotonic_ms();
			ran = now - c->started_ms;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 78) {
				/* SIGNER_EXIT_NO_RESTART (lib/signer_load.h) */
				log_error("%s %s: its key store refused it at "
				          "start (see above); not restarted, "
				          "as another start would try the "
				          "token's PIN again: stopping",
				    c->name, how);
				key_refused = 1;
				return -1;
			}
			/* 1: configuration error; 127: not runnable. */
			if (WIFEXITED(status) &&
			    (WEXITSTATUS(status) == 1 ||
			        WEXITSTATUS(status) == 127) &&
			    ran < QUICK_EXIT_MS) {
				if (++c->config_failures >= CONFIG_FAILURES) {
					log_error("%s %s %d times at start-up: "
					          "a configuration error (see "
					          "above); stopping",
					    c->name, how, c->config_failures);
					return -1;
				}
			} else
				c->config_failures = 0;
			backoff = backoff_next(c, ran,
			    health_served_ms(health, i, pid, now), why,
			    sizeof(why));
			c->restart_at_ms = now + backoff;
			log_warn("%s %s after %lld ms%s; restarting in %d ms",
			    c->name, how, (long long)ran, why, backoff);
			break;
		}
	}
	return 0;
}

/* SIGTERM in order, each given `grace_ms` from its own SIGTERM to finish
 * (with one for all, a service that took it, a hung one or a frontend
 * waiting on one, left none to the next, and the CA was killed in the
 * middle of its clean stop); SIGKILL what stays. One that SIGKILL does
 * not end either is held in the kernel: named and left behind, rather
 * than waited on for ever. How many were left. */
static int
stop_all(
    struct child *children, size_t n, const struct health *health, int grace_ms)
{
	int64_t until;
	int left = 0;

	for (size_t k = n; k-- > 0;) {
		struct child *c = &children[k];

		/* Killed by the liveness checks already: no grace to wait. */
		if (c->pid == 0 || health_killed(health, k, c->pid))
			continue;
		kill(c->pid, SIGTERM);
		until = clock_monotonic_ms() + grace_ms;
		while (c->pid != 0 && clock_monotonic_ms() < until) {
			struct timespec ts = {0, 20 * 1000 * 1000};

			nanosleep(&ts, NULL);
			reap(children, n, NULL, 1);
		}
	}
	for (size_t k = 0; k < n; k++) {
		if (children[k].pid == 0)
			continue;
		if (!health_killed(health, k, children[k].pid))
			log_warn("%s did not stop in time: SIGKILL",
			    children[k].name);
		kill(children[k].pid, SIGKILL);
	}
	until = clock_monotonic_ms() + SCEPD_STUCK_AFTER_MS;
	for (;;) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		size_t running = 0;

		reap(children, n, NULL, 1);
		for (size_t k = 0; k < n; k++)
			running += children[k].pid != 0;
		if (running == 0 || clock_monotonic_ms() >= until)
			break;
		nanosleep(&ts, NULL);
	}
	for (size_t k = 0; k < n; k++) {
		if (children[k].pid == 0)
			continue;
		left += child_stuck_log(children[k].name, children[k].pid,
		    "left behind, it holds its files and sockets until the "
		    "kernel lets it go");
	}
	return left;
}

int
scepd_supervise(const struct launch *launch)
{
	/* Start order; stop order is the reverse. */
	struct child children[] = {
	    {"scepd-ca", 0, 0, 0, BACKOFF_MIN_MS, 0},
	    {"scepd-challenge", 0, 0, 0, BACKOFF_MIN_MS, 0},
	    {"scepd-ra", 0, 0, 0, BACKOFF_MIN_MS, 0},
	    {"scepd-frontend", 0, 0, 0, BACKOFF_MIN_MS, 0},
	};
	const size_t n = sizeof(children) / sizeof(children[0]);
	const char *names[sizeof(children) / sizeof(children[0])];
	struct health *health = NULL;
	struct sigaction sa;
	int rc = 0, stopping = 0;

	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		log_error("pipe: %s", strerror(errno));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	{
		struct sigaction old_hup;

		/* Its terminal gone: stop in order; unless started under
		 * nohup, which asked to outlive it. */
		hup_ignored = sigaction(SIGHUP, NULL, &old_hup) == 0 &&
		    old_hup.sa_handler == SIG_IGN;
		if (!hup_ignored)
			sigaction(SIGHUP, &sa, NULL);
		else
			log_info("SIGHUP is ignored (nohup): the services "
			         "outlive the terminal too");
	}
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("data directory %s, configuration %s", launch->data_dir,
	    launch->config);
#ifdef SCEPD_TEST_HOOKS
	if (getenv("SCEPD_TEST_STABLE_MS") != NULL)
		stable_ms = atoll(getenv("SCEPD_TEST_STABLE_MS"));
#endif
	for (size_t i = 0; i < n; i++)
		names[i] = children[i].name;
	health = health_new(launch, names, n);
	switch (ca_start_first(&children[0], launch)) {
	case 0: /* the main loop stops what runs */
		break;
	case -1: /* no fork: the others start, the CA after its back-off */
		child_start_later(&children[0], clock_monotonic_ms());
		/* fall through */
	default:
		for (size_t i = 1; i < n; i++)
			if (child_start(&children[i], launch) != 0)
				child_start_later(
				    &children[i], clock_monotonic_ms());
	}

	while (!stopping) {
		/* The signal pipe, then the checks in flight. */
		zmq_pollitem_t
		    items[1 + sizeof(children) / sizeof(children[0])];
		int64_t wait = 1000, t = clock_monotonic_ms();
		unsigned char sig;
		int nitems;

		for (size_t i = 0; i < n; i++)
			if (children[i].restart_at_ms != 0 &&
			    children[i].restart_at_ms - t < wait)
				wait = children[i].restart_at_ms - t;
		if (wait < 0)
			wait = 0;
		memset(&items[0], 0, sizeof(items[0]));
		items[0].fd = signal_pipe[0];
		items[0].events = ZMQ_POLLIN;
		nitems =
		    1 + health_poll_items(health, items + 1, (int)n, t, &wait);
		if (zmq_poll(items, nitems, (long)wait) < 0 && errno != EINTR) {
			log_error("cannot wait for signals and liveness "
			          "checks: %s; stopping the services",
			    zmq_strerror(errno));
			rc = 1;
			break;
		}
		while (read(signal_pipe[0], &sig, 1) == 1) {
			if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
				log_info("%s: stopping the services",
				    strsignal(sig));
				stopping = 1;
			}
		}
		if (!stopping && reap(children, n, health, 0) != 0) {
			rc = 1;
			break;
		}
		t = clock_monotonic_ms();
		for (size_t i = 0; !stopping && i < n; i++)
			health_step(health, i, children[i].pid,
			    children[i].started_ms, items + 1, t);
		for (size_t i = 0; !stopping && i < n; i++) {
			struct child *c = &children[i];

			if (c->pid != 0 || c->restart_at_ms == 0 ||
			    c->restart_at_ms > t || child_start(c, launch) == 0)
				continue;
			child_start_later(c, t);
		}
	}
	if (stop_all(children, n, health, launch->stop_grace_ms) > 0)
		rc = 1;
	health_free(health);
	close(signal_pipe[0]);
	close(signal_pipe[1]);
	log_info("stopped");
	if (key_refused && launch->hold_on_key_refusal)
		service_hold();
	return rc;
}
