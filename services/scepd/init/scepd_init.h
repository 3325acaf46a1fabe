/*
 * scepd-init: the first start of a one-machine data directory.
 */
#ifndef SCEPD_INIT_H
#define SCEPD_INIT_H

/* The text of deploy/scepd.conf.example (generated at build time). */
extern const char scepd_conf_example[];

/*
 * Makes `dir` a data directory (demo CA, RA certificates, configuration,
 * admin account) if it is missing or empty; prints what it made. 1:
 * initialised, 0: already one, -1: refused or failed (printed).
 * `locked_fd`: a descriptor of `dir` whose flock scepd holds (handed down
 * to its scepd-init), or -1: then an empty `dir` is locked here.
 */
int scepd_init(const char *dir, const char *listen, int locked_fd);

#endif
