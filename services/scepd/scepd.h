/*
 * scepd: the one-machine launcher. It has scepd-init initialise a data
 * directory on first start, then runs the four services as children and
 * keeps them up.
 */
#ifndef SCEPD_LAUNCHER_H
#define SCEPD_LAUNCHER_H

struct launch {
	const char *data_dir; /* absolute */
	const char *config; /* the configuration file the services read */
	const char *listen; /* HOST:PORT given on the command line, or NULL */
	const char *libexec; /* directory of the service executables */
	int stop_grace_ms; /* each service's time to stop (SCEPD_STOP_TIMEOUT) */
};

/*
 * main.c runs scepd-init (services/scepd/init/) from `libexec` first: it
 * makes the data directory on first start.
 */

/* supervise.c: runs the services until SIGINT/SIGTERM. Exit status. */
int scepd_supervise(const struct launch *launch);

#endif
