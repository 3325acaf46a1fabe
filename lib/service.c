#include <errno.h>
#include <sched.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"
#include "service.h"

long
service_processors(void)
{
	cpu_set_t set;
	long n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n < 1)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n;
}

int
service_no_dumps(const char *name)
{
	if (sandbox_no_dumps() != 0) {
		fprintf(
		    stderr, "%s: no core files: %s\n", name, strerror(errno));
		return -1;
	}
	return 0;
}

const char *
service_config_arg(int argc, char **argv, const char *name, int *status)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	int ch;

	*status = 1;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			printf("usage: %s --config FILE\n", name);
			*status = 0;
			return NULL;
		default:
			config = NULL;
			goto usage;
		}
	}
	if (config != NULL && optind == argc)
		return config;
usage:
	fprintf(stderr, "usage: %s --config FILE\n", name);
	return NULL;
}

int
service_hold_wanted(void)
{
	const char *v = getenv(SERVICE_HOLD_ENV);

	return v != NULL && strcmp(v, "1") == 0;
}

void
service_hold(void)
{
	sigset_t set;
	int sig = 0;

	log_error("the key store refused this service at start: holding, "
	          "not exiting (" SERVICE_HOLD_ENV "=1), as a restart "
	          "policy would start it again and each start tries the "
	          "token's PIN, which tokens lock after a few wrong tries; "
	          "correct the [signer.*] settings, then restart it");
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 || sigwait(&set, &sig) != 0)
		return;
	log_info("%s: the hold ends", strsignal(sig));
}

int
service_hangup_stops(void)
{
	struct sigaction now;

	return sigaction(SIGHUP, NULL, &now) == 0 && now.sa_handler != SIG_IGN;
}

void
service_ready(void)
{
	const char *v = getenv(SERVICE_READY_ENV);
	char *end;
	long fd;

	if (v == NULL)
		return;
	fd = strtol(v, &end, 10);
	unsetenv(SERVICE_READY_ENV);
	if (*end != '\0' || fd <= 2 || fd > 1024)
		return;
	(void)!write((int)fd, "1", 1);
	close((int)fd);
}
