/*
 * scepd: the one-machine launcher. It initialises a data directory on
 * first start, then runs the four services as children and keeps them up.
 */
#ifndef SCEPD_LAUNCHER_H
#define SCEPD_LAUNCHER_H

struct launch {
	const char *data_dir; /* absolute */
	const char *config; /* the configuration file the services read */
	const char *listen; /* HOST:PORT given on the command line, or NULL */
	const char *libexec; /* directory of the service executables */
};

/* The text of deploy/scepd.conf.example (generated at build time). */
extern const char scepd_conf_example[];

/*
 * init.c: makes `dir` a data directory (demo CA, RA certificates,
 * configuration, admin account) if it is missing or empty; prints what it
 * made. 1: initialised, 0: already one, -1: refused or failed (printed).
 */
int scepd_init(const char *dir, const char *listen);

/* supervise.c: runs the services until SIGINT/SIGTERM. Exit status. */
int scepd_supervise(const struct launch *launch);

#endif
