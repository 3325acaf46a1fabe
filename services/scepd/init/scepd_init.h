/*
 * scepd-init: the first start of a one-machine data directory.
 */
#ifndef SCEPD_INIT_H
#define SCEPD_INIT_H

#include <sys/types.h>

/* The text of deploy/scepd.conf.example (generated at build time). */
extern const char scepd_conf_example[];

/*
 * Makes `dir` a data directory (demo CA, RA certificates, configuration,
 * admin account) if it is missing or empty; prints what it made. 1:
 * initialised, 0: already one, -1: refused or failed (printed).
 * `locked_fd`: a descriptor of `dir` whose flock scepd holds (handed down
 * to its scepd-init), or -1: then an empty `dir` is locked here.
 */
int scepd_init(
    const char *dir, const char *listen, int locked_fd, int service_users);

/* --service-users (users.c). */
struct init_users {
	uid_t frontend_uid;
	gid_t frontend_gid;
};
/* The four users exist and DIR's parents let them through: 0, else -1
 * (printed). */
int init_users_check(const char *dir, struct init_users *u);
/* The configuration `text` with each service's User and each server's
 * sockets in a directory of their own; NULL (printed) on failure. */
char *init_users_config(const char *text);
/* An existing configuration (`conf`) gives each service a User: 0, else
 * -1 (printed: --service-users on a DIR made without it). */
int init_users_configured(const char *conf);
/* Modes and owners of a directory being made: 0, else -1 (printed). */
int init_users_apply(const char *build, const struct init_users *u);

#endif
