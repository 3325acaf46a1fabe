/*
 * scepd --data-dir DIR [--listen HOST:PORT] [--config FILE]
 * Start-up only: arguments, first-run initialisation (scepd-init), then
 * supervision.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "scepd.h"
#include "service.h"

extern char **environ;

#define S(field) offsetof(struct scepd_settings, field)
static const struct config_key scepd_config[] = {
    {"HealthCheckInterval", CONFIG_INT, 0, 3600, "5", S(health_interval),
        "seconds between liveness checks of each service; 0: none"},
    {"HealthCheckTimeout", CONFIG_INT, 1, 600, "5", S(health_timeout),
        "seconds a service has to answer one"},
    {"HealthCheckMisses", CONFIG_INT, 1, 100, "3", S(health_misses),
        "checks missed in a row: the service is killed and restarted"},
    {"HealthCheckGrace", CONFIG_INT, 0, 3600, "60", S(health_grace),
        "seconds after its start before a service that never answered "
        "is counted"},
    CONFIG_END,
};
#undef S

/* The length of DIR's absolute path (as getcwd and DIR spell it). */
static size_t
data_dir_path_len(const char *dir)
{
	char cwd[PATH_MAX];

	if (dir[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		return strlen(dir);
	return strlen(cwd) + 1 + strlen(dir);
}

/*
 * Takes DIR's lock for as long as this scepd runs (the descriptor stays
 * open): a second scepd on the same directory would take its services'
 * sockets and, stopping, unlink them under the first. A DIR not made yet
 * is no error unless `must_exist`.
 */
static int
lock_data_dir(const char *dir, int *fd, int must_exist)
{
	*fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0) {
		if (errno == ENOENT && !must_exist)
			return 0;
		fprintf(stderr, "scepd: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
		fprintf(stderr, "scepd: %s: %s\n", dir,
		    errno == EWOULDBLOCK
		        ? "another scepd serves this directory; stop it first"
		        : strerror(errno));
		close(*fd);
		*fd = -1;
		return -1;
	}
	return 0;
}

/*
 * Nothing of whoever started scepd reaches scepd-init or a service: a
 * descriptor left open (exec 9>>file, a supervisor's) is writable
 * whatever a sandbox says of files. Marked close-on-exec at start, before
 * any thread; scepd keeps them. close_range's flag needs Linux 5.11 (a
 * container may refuse it): else each descriptor listed in /proc.
 */
static void
inherited_fds_cloexec(void)
{
	struct dirent *e;
	DIR *d;

	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	if ((d = opendir("/proc/self/fd")) == NULL) {
		fprintf(stderr,
		    "scepd: warning: /proc/self/fd: %s: descriptors open "
		    "at start may reach the services\n",
		    strerror(errno));
		return;
	}
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);

		if (fd >= 3 && fd != dirfd(d))
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	closedir(d);
}

/*
 * Runs LIBEXEC/scepd-init on DIR and waits for it: 0 if DIR is a data
 * directory now. It prints what it made or why it could not.
 */
static int
run_init(const char *libexec, const char *dir, const char *listen,
    int service_users, int dir_lock)
{
	char path[PATH_MAX + 16];
	char *argv[] = {path, "--data-dir", (char *)dir, "--listen",
	    (char *)listen, "--locked-fd", "3", NULL, NULL};
	int n = 7;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int e, status;

	snprintf(path, sizeof(path), "%s/scepd-init", libexec);
	/* Inherited "ignore" would reap it before waitpid could. */
	signal(SIGCHLD, SIG_DFL);
	fflush(stdout);
	/* DIR's lock handed down as descriptor 3: scepd-init takes it for
	 * a first start made in place, and would wait for ours for ever. */
	if (dir_lock < 0)
		n = 5;
	argv[n] = service_users ? "--service-users" : NULL;
	argv[n + 1] = NULL;
	if ((e = posix_spawn_file_actions_init(&fa)) != 0) {
		fprintf(stderr, "scepd: %s: %s\n", path, strerror(e));
		return -1;
	}
	if (dir_lock < 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, dir_lock, 3)) == 0)
		e = posix_spawn(&pid, path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e != 0) {
		fprintf(stderr, "scepd: %s: %s\n", path, strerror(e));
		return -1;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "scepd: waiting for %s: %s\n", path,
			    strerror(errno));
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		fprintf(stderr, "scepd: %s killed by signal %d\n", path,
		    WTERMSIG(status));
	else
		fprintf(stderr, "scepd: %s exited with status %d\n", path,
		    WEXITSTATUS(status));
	return -1;
}

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: scepd [--data-dir DIR] [--listen HOST:PORT] "
	    "[--config FILE]\n"
	    "             [--service-users]\n"
	    "  DIR defaults to ./var and is initialised on first start "
	    "(demo CA,\n  RA certificates, scepd.conf, admin account); "
	    "HOST:PORT defaults to\n  127.0.0.1:8080. --service-users, "
	    "on a first start as root: each service\n  runs as a user of "
	    "its own (scepd-frontend, scepd-ra, scepd-challenge,\n  "
	    "scepd-ca: scripts/users.sh makes them).\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data-dir", required_argument, NULL, 'd'},
	    {"listen", required_argument, NULL, 'l'},
	    {"config", required_argument, NULL, 'c'},
	    {"service-users", no_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *data_dir = "./var", *listen = NULL, *config = NULL;
	char dir_abs[PATH_MAX], conf_abs[PATH_MAX + 16], self[PATH_MAX];
	char run_dir[PATH_MAX + 8];
	const char *sock;
	int dir_lock = -1; /* held until exit */
	struct launch launch;
	struct scepd_settings settings;
	int stop_grace_ms = 10000;
	ssize_t n;
	int c, service_users = 0;

	inherited_fds_cloexec();
	while ((c = getopt_long(argc, argv, "d:l:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			data_dir = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'u':
			service_users = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	log_init("scepd", LOG_LEVEL_INFO);
	if (listen != NULL && strchr(listen, ':') == NULL) {
		fprintf(stderr, "scepd: --listen wants HOST:PORT, not '%s'\n",
		    listen);
		return 1;
	}
	/* Seconds each service has to stop; more under valgrind, or for an
	 * HSM slow to close its session. Checked before anything is made. */
	if (getenv("SCEPD_STOP_TIMEOUT") != NULL) {
		char *end;
		long s = strtol(getenv("SCEPD_STOP_TIMEOUT"), &end, 10);

		if (*end != '\0' || s < 1 || s > 3600) {
			fprintf(stderr,
			    "scepd: SCEPD_STOP_TIMEOUT wants seconds, 1 to "
			    "3600, not '%s'\n",
			    getenv("SCEPD_STOP_TIMEOUT"));
			return 1;
		}
		stop_grace_ms = (int)s * 1000;
	}
	/* The services are installed beside scepd (SCEPD_LIBEXEC_DIR for
	 * tests that substitute them). */
	if (getenv("SCEPD_LIBEXEC_DIR") != NULL)
		snprintf(self, sizeof(self), "%s", getenv("SCEPD_LIBEXEC_DIR"));
	else if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		char *dir;

		self[n] = '\0';
		dir = dirname(self);
		memmove(self, dir, strlen(dir) + 1);
	} else {
		fprintf(stderr, "scepd: cannot find my own directory\n");
		return 1;
	}
	/* sun_path holds 108 bytes with its NUL: said before any key is
	 * made for a directory no service could serve from. */
	sock = service_users ? "run/challenge/challenge.sock"
	                     : "run/challenge.sock";
	if (config == NULL &&
	    data_dir_path_len(data_dir) + strlen(sock) + 1 >= 108) {
		fprintf(stderr,
		    "scepd: %s: a path of %zu bytes: its services' sockets "
		    "(%s) would be longer than a Unix socket's 107; use a "
		    "shorter one\n",
		    data_dir, data_dir_path_len(data_dir), sock);
		return 1;
	}
	if (config != NULL && service_users) {
		fprintf(stderr,
		    "scepd: --service-users is for a first start; with "
		    "--config FILE, FILE's User keys say who each service "
		    "runs as\n");
		return 1;
	}
	/* Before a first start made in place (a mount point) and after one
	 * made beside it and renamed in. */
	if (lock_data_dir(data_dir, &dir_lock, 0) != 0)
		return 1;
	if (config == NULL &&
	    run_init(self, data_dir, listen ? listen : "127.0.0.1:8080",
	        service_users, dir_lock) != 0)
		return 1;
	/* Made beside an empty DIR and renamed over it: the lock is on the
	 * directory that was replaced. */
	if (dir_lock >= 0) {
		struct stat held, now;

		if (fstat(dir_lock, &held) != 0 || stat(data_dir, &now) != 0 ||
		    held.st_dev != now.st_dev || held.st_ino != now.st_ino) {
			close(dir_lock);
			dir_lock = -1;
		}
	}
	if (dir_lock < 0 && lock_data_dir(data_dir, &dir_lock, 1) != 0)
		return 1;
	if (realpath(data_dir, dir_abs) == NULL) {
		fprintf(stderr, "scepd: %s: %s\n", data_dir, strerror(errno));
		return 1;
	}

	if (config == NULL)
		snprintf(conf_abs, sizeof(conf_abs), "%s/scepd.conf", dir_abs);
	else {
		/* The link itself, not its target: its relative paths are
		 * beside it (config_path_absolute). */
		char *abs = config_path_absolute(config);

		if (abs == NULL || strlen(abs) >= sizeof(conf_abs)) {
			fprintf(stderr, "scepd: %s: %s\n", config,
			    abs == NULL ? strerror(errno) : "path too long");
			free(abs);
			return 1;
		}
		memcpy(conf_abs, abs, strlen(abs) + 1);
		free(abs);
	}
	/* The launcher's own section; every problem listed, as a service
	 * lists its own. */
	memset(&settings, 0, sizeof(settings));
	if (config_load(conf_abs, "scepd", scepd_config, &settings) != 0) {
		fprintf(stderr, "scepd: [scepd] of %s: see above\n", conf_abs);
		return 1;
	}
	/* Each service says when its own section is missing; a section
	 * none of them reads only the one who reads the whole file can. */
	config_unread_sections(conf_abs);
	/* The services' ipc:// sockets live here. */
	snprintf(run_dir, sizeof(run_dir), "%s/run", dir_abs);
	/* 0711: services that run as users of their own pass through to
	 * the directories of their sockets (DIR itself stays as it is). */
	if (mkdir(run_dir, 0711) != 0 && errno != EEXIST) {
		fprintf(stderr, "scepd: %s: %s\n", run_dir, strerror(errno));
		return 1;
	}

	launch.data_dir = dir_abs;
	launch.config = conf_abs;
	launch.listen = listen;
	launch.libexec = self;
	launch.stop_grace_ms = stop_grace_ms;
	launch.settings = &settings;
	/* Not the services': one whose key store refused it exits, and the
	 * launcher, which never starts it again, is the one that holds. */
	launch.hold_on_key_refusal = service_hold_wanted();
	unsetenv(SERVICE_HOLD_ENV);
	return scepd_supervise(&launch);
}
