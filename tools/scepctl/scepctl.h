/*
 * scepctl: the operator's tool on the CA host. Each subcommand is a
 * function taking the data directory and its own arguments, returning the
 * exit status: 0 done, 1 refused or failed (reason on stderr), 2 usage.
 */
#ifndef SCEPCTL_H
#define SCEPCTL_H

/* The data directory, absolute, and its scepd.conf. */
struct scepctl {
	char *data_dir;
	char *conf;
};

/* challenge.c: one fresh one-time password from the challenge service. */
int scepctl_challenge(const struct scepctl *ctl, int argc, char **argv);
/* passwd.c: sets an admin account's password (read from stdin). */
int scepctl_passwd(const struct scepctl *ctl, int argc, char **argv);

#endif
